"""Each charger's meter against a reference sub-meter, the way a test lab compares them.

Method
------
1. **Align.** Every charger register reading (``meter_values``) is paired with the
   reference reading (``reference_readings`` of kind ``submeter`` on the same charger)
   nearest in time, within ``match_tolerance_s``.
2. **Intervals.** Consecutive pairs give the energy each meter registered over the same
   interval, and the current (the largest phase current, from the charger or else the
   reference) classifies the interval into a current band: below 10 % of the charger's
   Imax, 10-50 %, above 50 %.
3. **Windows.** Consecutive charging intervals in one band are gathered into windows
   long enough for the registers' resolution: each register must step at least
   ``min_steps`` (100, as labs require for a quantisation error of 1 % or less) times.
4. **Error and uncertainty per window.** The error is
   ``(E_charger / E_reference - 1) * 100`` [%]. Its standard uncertainty combines
   (GUM, root sum of squares) the registers' resolution (each reading is rounded, so a
   difference of two readings has variance ``q^2 / 6``, for both meters), the timing
   mismatch at the window's two edges (the power at the edge times the readings' time
   difference plus the clocks' uncertainty, a rectangular bound) and the reference
   meter's own error (its class limit as a rectangular bound, unless given).
5. **Bands and verdicts.** Per charger and band, the energy-weighted error with an
   expanded uncertainty (k = 2) from the larger of the windows' scatter and their
   resolution-and-timing uncertainty, plus the reference's, judged against the ±1 %
   claim, the EN 50470-3 class limit and the MID MPE
   (:mod:`zapanalytics.audit.limits`): pass, fail or inconclusive. A charger fails
   when any band fails and passes when every measured band passes.

Assumptions: the reference meter and the charger's meter measure the same circuit with
no load in between; registers round (or truncate) to a fixed step; the reference's
error is within its class limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from zapanalytics.audit.accuracy_verdicts import (
    CRITERIA,
    CURRENT_BANDS,
    accuracy_bands,
    accuracy_verdicts,
)
from zapanalytics.audit.findings import utc_frame

__all__ = [
    "CRITERIA",
    "CURRENT_BANDS",
    "WINDOW_SCHEMA",
    "AccuracyAudit",
    "accuracy_bands",
    "accuracy_verdicts",
    "accuracy_windows",
    "audit_accuracy",
    "infer_resolution_kwh",
    "pick_register_source",
]

_UTC = pl.Datetime("us", "UTC")
#: Columns of :func:`accuracy_windows` output.
WINDOW_SCHEMA = pl.Schema(
    {
        "charger_id": pl.String,
        "meter_id": pl.String,
        "band": pl.String,
        "start_utc": _UTC,
        "end_utc": _UTC,
        "intervals": pl.UInt32,
        "charger_energy_kwh": pl.Float64,
        "reference_energy_kwh": pl.Float64,
        "charger_steps": pl.Float64,
        "reference_steps": pl.Float64,
        "mean_current_a": pl.Float64,
        "min_current_a": pl.Float64,
        "imax_a": pl.Float64,
        "error_pct": pl.Float64,
        "u_resolution_pct": pl.Float64,
        "u_timing_pct": pl.Float64,
        "charger_q_kwh": pl.Float64,
        "reference_q_kwh": pl.Float64,
    }
)
_DEFAULT_IMAX_A = 32.0
# For the power at a band's upper edge: three phases at 230 V.
NOMINAL_VOLTAGE_V = 230.0
PHASES = 3


def infer_resolution_kwh(values: np.ndarray | pl.Series, *, sample: int = 5000) -> float:
    """The register step of a series of readings [kWh]: the coarsest decimal that fits.

    Parameters
    ----------
    values : array or Series
        Register readings [kWh].
    sample : int
        Readings inspected (the first ones).

    Returns
    -------
    float
        ``10 ** -k`` for the smallest ``k`` (0..6) at which every reading is a whole
        number of steps; 1e-6 when none is.
    """
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)][:sample]
    if array.size == 0:
        return 1e-6
    for decimals in range(7):
        scaled = array * 10.0**decimals
        if np.max(np.abs(scaled - np.round(scaled))) < 1e-3:
            return 10.0**-decimals
    return 1e-6


def pick_register_source(meter_values: pl.DataFrame, source: str | None) -> pl.DataFrame:
    """Register readings of one source per charger: ``source``, or each charger's most
    complete one."""
    registers = meter_values.filter(pl.col("energy_register_kwh").is_not_null())
    if source is not None:
        return registers.filter(pl.col("source") == source)
    # Without a choice, each charger's most complete source: sources stamp the same
    # register with different clocks, so they are never mixed.
    best = (
        registers.group_by("charger_id", "source")
        .agg(count=pl.len())
        .sort("count", "source", descending=[True, False])
        .unique("charger_id", keep="first")
    )
    return registers.join(best.select("charger_id", "source"), on=["charger_id", "source"])


def _resolutions(frame: pl.DataFrame, key: str, column: str, given: float | None) -> pl.DataFrame:
    keys = frame[key].unique().to_list()
    if given is not None:
        values = [given] * len(keys)
    else:
        values = [
            infer_resolution_kwh(frame.filter(pl.col(key) == k)[column].to_numpy()) for k in keys
        ]
    return pl.DataFrame(
        {key: keys, "resolution": values}, schema={key: pl.String, "resolution": pl.Float64}
    )


def accuracy_windows(
    meter_values: pl.DataFrame,
    reference_readings: pl.DataFrame,
    chargers: pl.DataFrame | None = None,
    *,
    source: str | None = None,
    min_steps: int = 100,
    charger_resolution_kwh: float | None = None,
    reference_resolution_kwh: float | None = None,
    match_tolerance_s: float = 30.0,
    max_interval_s: float = 900.0,
    clock_uncertainty_s: float = 1.0,
    target_uncertainty_pct: float | None = 0.2,
    default_imax_a: float = _DEFAULT_IMAX_A,
) -> pl.DataFrame:
    """Comparison windows of each charger's register against its sub-meter.

    Parameters
    ----------
    meter_values : polars.DataFrame
        The ``meter_values`` table (``charger_id``, ``ts_utc``, ``source``,
        ``energy_register_kwh``, ``current_l1_a``..``current_l3_a``).
    reference_readings : polars.DataFrame
        The ``reference_readings`` table; rows of kind ``submeter`` with a
        ``charger_id`` are used.
    chargers : polars.DataFrame, optional
        The ``chargers`` table, for each charger's ``max_current_a`` (Imax).
    source : str, optional
        The ``meter_values`` source to use; default: each charger's most complete.
    min_steps : int
        Register steps each meter must make per window.
    charger_resolution_kwh, reference_resolution_kwh : float, optional
        Register steps [kWh]; inferred from the readings when not given.
    match_tolerance_s : float
        Largest time between a charger reading and its reference reading [s].
    max_interval_s : float
        Longer gaps between readings end a window [s].
    clock_uncertainty_s : float
        Uncertainty of each reading's time stamp [s]. The visible mismatch between a
        charger reading and its reference reading is corrected for (with the power at
        that moment); a tenth of it counts as uncertainty on top.
    target_uncertainty_pct : float or None
        Windows are also made long enough that resolution and timing, at the band's
        highest power, stay within this standard uncertainty [%] (0.2 %: a fifth of the
        ±1 % claim, the usual ratio for a test); ``None`` keeps only ``min_steps``.
    default_imax_a : float
        Imax for chargers without ``max_current_a`` [A].

    Returns
    -------
    polars.DataFrame
        One row per window: ``charger_id``, ``meter_id``, ``band``, ``start_utc``,
        ``end_utc``, ``intervals``, ``charger_energy_kwh``, ``reference_energy_kwh``,
        ``charger_steps``, ``reference_steps``, ``mean_current_a``, ``min_current_a``,
        ``imax_a``, ``error_pct``, ``u_resolution_pct``, ``u_timing_pct`` (standard
        uncertainties) and the resolutions used.
    """
    meter_values, reference_readings = utc_frame(meter_values), utc_frame(reference_readings)
    charger_series = pick_register_source(meter_values, source)
    phase_columns = [
        c for c in ("current_l1_a", "current_l2_a", "current_l3_a") if c in charger_series.columns
    ]
    charger_series = charger_series.select(
        "charger_id",
        "ts_utc",
        charger_kwh="energy_register_kwh",
        charger_current_a=pl.max_horizontal(phase_columns) if phase_columns else pl.lit(None),
    ).cast({"charger_current_a": pl.Float64})
    references = reference_readings.filter(
        (pl.col("kind") == "submeter")
        & pl.col("charger_id").is_not_null()
        & pl.col("energy_import_kwh").is_not_null()
    )
    ref_phases = [
        c for c in ("current_l1_a", "current_l2_a", "current_l3_a") if c in references.columns
    ]
    references = references.select(
        "charger_id",
        "meter_id",
        ref_ts="ts_utc",
        reference_kwh="energy_import_kwh",
        reference_current_a=pl.max_horizontal(ref_phases) if ref_phases else pl.lit(None),
    ).cast({"reference_current_a": pl.Float64})

    charger_q = _resolutions(charger_series, "charger_id", "charger_kwh", charger_resolution_kwh)
    reference_q = _resolutions(references, "meter_id", "reference_kwh", reference_resolution_kwh)
    if chargers is not None and "max_current_a" in chargers.columns:
        imax = chargers.select("charger_id", imax_a=pl.col("max_current_a").cast(pl.Float64))
    else:
        imax = pl.DataFrame(schema={"charger_id": pl.String, "imax_a": pl.Float64})

    tolerance = f"{int(match_tolerance_s * 1_000_000)}us"
    aligned = (
        charger_series.sort("ts_utc")
        .join_asof(
            references.sort("ref_ts"),
            left_on="ts_utc",
            right_on="ref_ts",
            by="charger_id",
            strategy="nearest",
            tolerance=tolerance,
            # Both sides are sorted by time just above; polars cannot check it per group.
            check_sortedness=False,
        )
        .drop_nulls(["reference_kwh"])
        .sort("charger_id", "ts_utc")
        .join(charger_q.rename({"resolution": "charger_q_kwh"}), on="charger_id", how="left")
        .join(reference_q.rename({"resolution": "reference_q_kwh"}), on="meter_id", how="left")
        .join(imax, on="charger_id", how="left")
        .with_columns(imax_a=pl.col("imax_a").fill_null(default_imax_a))
    )
    by_charger = ("charger_id", "meter_id")
    intervals = (
        aligned.with_columns(
            charger_delta_kwh=pl.col("charger_kwh").diff().over(by_charger),
            reference_step_kwh=pl.col("reference_kwh").diff().over(by_charger),
            interval_s=pl.col("ts_utc").diff().over(by_charger).dt.total_microseconds() / 1e6,
            previous_ts=pl.col("ts_utc").shift(1).over(by_charger),
            previous_ref_ts=pl.col("ref_ts").shift(1).over(by_charger),
            # Reference reading time minus charger reading time [s].
            offset_s=(pl.col("ref_ts") - pl.col("ts_utc")).dt.total_microseconds() / 1e6,
            current_a=pl.mean_horizontal(
                pl.coalesce("charger_current_a", "reference_current_a"),
                pl.coalesce("charger_current_a", "reference_current_a").shift(1).over(by_charger),
            ),
        )
        .with_columns(
            power_kw=pl.when(
                pl.col("interval_s").is_between(0, max_interval_s, closed="right")
            ).then(pl.col("charger_delta_kwh") / (pl.col("interval_s") / 3600)),
        )
        .with_columns(
            # A reference read offset_s late holds the energy of the next offset_s (one read
            # early lacks that of the last): shift it to the charger's reading time using
            # the power of the interval the offset falls in.
            edge_correction_kwh=(
                pl.when(pl.col("offset_s") > 0)
                .then(pl.col("power_kw").shift(-1).over(by_charger))
                .otherwise(pl.col("power_kw"))
                .fill_null(0.0)
                * pl.col("offset_s")
                / 3600
            ),
        )
        .with_columns(
            reference_delta_kwh=pl.col("reference_step_kwh")
            - pl.col("edge_correction_kwh")
            + pl.col("edge_correction_kwh").shift(1).over(by_charger),
            edge_uncertainty_s=clock_uncertainty_s + 0.1 * pl.col("offset_s").abs(),
        )
        .with_columns(
            previous_edge_uncertainty_s=pl.col("edge_uncertainty_s").shift(1).over(by_charger),
        )
    )
    fraction = pl.col("current_a") / pl.col("imax_a")
    usable = (
        pl.col("interval_s").is_between(0, max_interval_s, closed="right")
        & (pl.col("charger_delta_kwh") >= 0)
        & (pl.col("reference_step_kwh") >= 0)
        & ((pl.col("charger_delta_kwh") > 0) | (pl.col("reference_step_kwh") > 0))
        & (pl.col("previous_ref_ts") != pl.col("ref_ts"))
        & pl.col("current_a").is_not_null()
    ).fill_null(False)
    band_index = pl.when(fraction < 0.1).then(0).when(fraction <= 0.5).then(1).otherwise(2)
    intervals = intervals.with_columns(
        band=pl.lit(pl.Series(CURRENT_BANDS)).get(band_index),
        band_power_kw=pl.lit(pl.Series([0.1, 0.5, 1.0])).get(band_index)
        * pl.col("imax_a")
        * NOMINAL_VOLTAGE_V
        * PHASES
        / 1000,
        usable=usable,
    )
    # A run is a stretch of usable intervals in one band; windows are cut from runs.
    intervals = intervals.with_columns(
        run=(
            (~pl.col("usable"))
            | (pl.col("band") != pl.col("band").shift(1).over(by_charger))
            | (~pl.col("usable").shift(1).over(by_charger).fill_null(False))
        )
        .cum_sum()
        .over(by_charger)
    ).filter("usable")
    # Window length: at least min_steps register steps, and, at the band's highest
    # power, enough energy for resolution and timing to stay within the target.
    typical_edge_s = pl.col("edge_uncertainty_s").median().over("charger_id")
    budget_kwh = (
        (pl.col("charger_q_kwh") ** 2 + pl.col("reference_q_kwh") ** 2) / 6
        + 2 * (pl.col("band_power_kw") * typical_edge_s / 3600) ** 2 / 3
    ).sqrt()
    steps_kwh = pl.max_horizontal("charger_q_kwh", "reference_q_kwh") * min_steps
    target = (
        pl.max_horizontal(steps_kwh, budget_kwh / (target_uncertainty_pct / 100))
        if target_uncertainty_pct
        else steps_kwh
    )
    intervals = intervals.with_columns(
        window=(
            (
                pl.col("reference_step_kwh").cum_sum().over(*by_charger, "run")
                - pl.col("reference_step_kwh")
            )
            / target
        )
        .floor()
        .cast(pl.Int64)
    )
    windows = (
        intervals.group_by(*by_charger, "run", "window", maintain_order=True)
        .agg(
            band=pl.col("band").first(),
            start_utc=pl.col("previous_ts").first(),
            end_utc=pl.col("ts_utc").last(),
            intervals=pl.len(),
            charger_energy_kwh=pl.col("charger_delta_kwh").sum(),
            reference_energy_kwh=pl.col("reference_delta_kwh").sum(),
            reference_register_kwh=pl.col("reference_step_kwh").sum(),
            mean_current_a=(pl.col("current_a") * pl.col("reference_step_kwh")).sum()
            / pl.col("reference_step_kwh").sum(),
            min_current_a=pl.col("current_a").min(),
            imax_a=pl.col("imax_a").first(),
            charger_q_kwh=pl.col("charger_q_kwh").first(),
            reference_q_kwh=pl.col("reference_q_kwh").first(),
            start_power_kw=pl.col("power_kw").first(),
            end_power_kw=pl.col("power_kw").last(),
            start_edge_s=pl.col("previous_edge_uncertainty_s").first(),
            end_edge_s=pl.col("edge_uncertainty_s").last(),
        )
        .with_columns(
            charger_steps=pl.col("charger_energy_kwh") / pl.col("charger_q_kwh"),
            reference_steps=pl.col("reference_register_kwh") / pl.col("reference_q_kwh"),
        )
        .filter(
            (pl.col("charger_steps") >= min_steps - 1e-6)
            & (pl.col("reference_steps") >= min_steps - 1e-6)
        )
    )
    energy = pl.col("reference_energy_kwh")
    timing_kwh_sq = (
        (pl.col("start_power_kw").fill_null(0.0) * pl.col("start_edge_s").fill_null(0.0) / 3600)
        ** 2
        + (pl.col("end_power_kw").fill_null(0.0) * pl.col("end_edge_s") / 3600) ** 2
    ) / 3
    resolution_kwh_sq = (pl.col("charger_q_kwh") ** 2 + pl.col("reference_q_kwh") ** 2) / 6
    return (
        windows.with_columns(
            error_pct=(pl.col("charger_energy_kwh") / energy - 1) * 100,
            u_resolution_pct=resolution_kwh_sq.sqrt() / energy * 100,
            u_timing_pct=timing_kwh_sq.sqrt() / energy * 100,
        )
        .select(WINDOW_SCHEMA.names())
        .cast(WINDOW_SCHEMA)
        .sort("charger_id", "start_utc")
    )


@dataclass(frozen=True)
class AccuracyAudit:
    """Windows, band results and per-charger verdicts of one accuracy audit."""

    windows: pl.DataFrame
    bands: pl.DataFrame
    chargers: pl.DataFrame

    def as_dict(self) -> dict:
        return {
            "chargers": self.chargers.to_dicts(),
            "bands": self.bands.to_dicts(),
            "windows": self.windows.height,
        }


def audit_accuracy(
    meter_values: pl.DataFrame,
    reference_readings: pl.DataFrame,
    chargers: pl.DataFrame | None = None,
    *,
    criterion: str = "claim",
    window_options: dict | None = None,
    band_options: dict | None = None,
) -> AccuracyAudit:
    """Run :func:`accuracy_windows`, :func:`accuracy_bands` and :func:`accuracy_verdicts`.

    ``window_options`` and ``band_options`` pass keyword arguments to the first two.
    """
    windows = accuracy_windows(meter_values, reference_readings, chargers, **(window_options or {}))
    bands = accuracy_bands(windows, **(band_options or {}))
    verdicts = accuracy_verdicts(bands, chargers, criterion=criterion)
    return AccuracyAudit(windows=windows, bands=bands, chargers=verdicts)
