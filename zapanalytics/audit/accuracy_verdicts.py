"""Band results and verdicts of the sub-meter comparison (see :mod:`.accuracy`).

Per charger and current band: the energy-weighted error, its expanded uncertainty
(k = 2) from the larger of the windows' scatter and their resolution-and-timing
uncertainty plus the reference meter's own, and a verdict against each criterion of
:mod:`zapanalytics.audit.limits`. A charger fails when any band fails and passes when
every band measured with enough windows (``min_windows``) passes; a band with fewer
windows is shown with its numbers and an inconclusive verdict but does not decide the
charger's (a meter is judged at the currents it was seen at, and says which those are).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import polars as pl

from zapanalytics.audit.limits import (
    EN50470_3_LIMITS_PCT,
    MID_TEMPERATURE_BANDS,
    judge,
    limit_pct,
)

__all__ = ["CRITERIA", "CURRENT_BANDS", "accuracy_bands", "accuracy_verdicts"]

#: Current bands, as fractions of the charger's maximum current.
CURRENT_BANDS = ("below_10pct_imax", "10_to_50pct_imax", "above_50pct_imax")
CRITERIA = ("claim", "en50470_3", "mid")


def _reference_uncertainty_pct(
    reference_uncertainty_pct: float | None, reference_class: str
) -> float:
    if reference_uncertainty_pct is not None:
        return reference_uncertainty_pct
    # Only the class is known: its limit as a rectangular bound.
    return EN50470_3_LIMITS_PCT[reference_class][1] / math.sqrt(3)


def accuracy_bands(
    windows: pl.DataFrame,
    *,
    meter_class: str = "B",
    itr_a: float = 0.5,
    temperature_band: str = MID_TEMPERATURE_BANDS[0],
    reference_class: str = "C",
    reference_uncertainty_pct: float | None = None,
    coverage_factor: float = 2.0,
    min_windows: int = 3,
    single_phase_chargers: Iterable[str] = (),
) -> pl.DataFrame:
    """Error per charger and current band, with its expanded uncertainty and verdicts.

    Parameters
    ----------
    windows : polars.DataFrame
        :func:`accuracy_windows` output.
    meter_class : {"A", "B", "C"}
        Class of the charger's meter (Zaptec's MID meters are class B).
    itr_a : float
        The meter's transitional current [A].
    temperature_band : str
        MID temperature band (:data:`zapanalytics.audit.limits.MID_TEMPERATURE_BANDS`).
    reference_class : {"A", "B", "C"}
        Class of the reference meter; its limit counts as a rectangular bound.
    reference_uncertainty_pct : float, optional
        The reference's standard uncertainty [%], when known (e.g. from calibration);
        overrides ``reference_class``.
    coverage_factor : float
        k for the expanded uncertainty (2: about 95 %).
    min_windows : int
        Fewer windows in a band give an inconclusive verdict.
    single_phase_chargers : iterable of str
        Chargers that charge on one phase: their (polyphase) meters are judged by MID's
        row for a single-phase load (``verdict_mid`` only).

    Returns
    -------
    polars.DataFrame
        Per ``charger_id`` and ``band``: ``windows``, energies [kWh], ``error_pct``,
        ``u_windows_pct`` (scatter of the window errors), ``u_resolution_timing_pct``
        (resolution, interpolation and timing together), ``sufficient`` (enough windows),
        ``u_reference_pct``, ``expanded_uncertainty_pct``, current range [A], and per
        criterion ``limit_<c>_pct`` and ``verdict_<c>``.
    """
    u_reference = _reference_uncertainty_pct(reference_uncertainty_pct, reference_class)
    single_phase = set(single_phase_chargers)
    grouped = (
        windows.with_columns(
            u_abs_sq=(
                (
                    pl.col("u_resolution_pct") ** 2
                    + pl.col("u_interpolation_pct").fill_null(0.0) ** 2
                    + pl.col("u_timing_pct") ** 2
                )
                * (pl.col("reference_energy_kwh") / 100) ** 2
            ),
        )
        .group_by("charger_id", "band", maintain_order=True)
        .agg(
            windows=pl.len(),
            charger_energy_kwh=pl.col("charger_energy_kwh").sum(),
            reference_energy_kwh=pl.col("reference_energy_kwh").sum(),
            u_resolution_timing_pct=pl.col("u_abs_sq").sum().sqrt()
            / pl.col("reference_energy_kwh").sum()
            * 100,
            u_windows_pct=pl.col("error_pct").std(ddof=1) / pl.len().sqrt(),
            min_current_a=pl.col("min_current_a").min(),
            mean_current_a=(pl.col("mean_current_a") * pl.col("reference_energy_kwh")).sum()
            / pl.col("reference_energy_kwh").sum(),
            max_current_a=pl.col("mean_current_a").max(),
        )
        .with_columns(
            error_pct=(pl.col("charger_energy_kwh") / pl.col("reference_energy_kwh") - 1) * 100,
            u_reference_pct=pl.lit(u_reference),
        )
        .with_columns(
            expanded_uncertainty_pct=coverage_factor
            * (
                pl.max_horizontal(pl.col("u_windows_pct").fill_null(0.0), "u_resolution_timing_pct")
                ** 2
                + pl.col("u_reference_pct") ** 2
            ).sqrt()
        )
    )
    rows = []
    for row in grouped.iter_rows(named=True):
        for criterion in CRITERIA:
            options = {"meter_class": meter_class, "itr_a": itr_a, "temperature_band": temperature_band}
            try:
                limit = limit_pct(
                    criterion, row["min_current_a"], **options,
                    single_phase_load=row["charger_id"] in single_phase,
                )  # fmt: skip
            except KeyError:
                # No sourced single-phase figure for this class: the balanced row, the
                # tighter limit, so a meter is never passed on a guessed one.
                limit = limit_pct(criterion, row["min_current_a"], **options)
            row["sufficient"] = row["windows"] >= min_windows
            verdict = (
                judge(row["error_pct"], row["expanded_uncertainty_pct"], limit)
                if row["sufficient"]
                else "inconclusive"
            )
            row[f"limit_{criterion}_pct"] = limit
            row[f"verdict_{criterion}"] = verdict
        rows.append(row)
    order = {band: index for index, band in enumerate(CURRENT_BANDS)}
    schema = {
        **grouped.schema,
        "sufficient": pl.Boolean,
        **{f"limit_{c}_pct": pl.Float64 for c in CRITERIA},
        **{f"verdict_{c}": pl.String for c in CRITERIA},
    }
    frame = pl.DataFrame(rows, schema=schema)
    return frame.sort("charger_id", pl.col("band").replace_strict(order, return_dtype=pl.Int8))


def _evidence(bands: pl.DataFrame, criterion: str) -> str:
    parts = []
    for row in bands.iter_rows(named=True):
        parts.append(
            f"{row['band']}: {row['error_pct']:+.2f} % ± {row['expanded_uncertainty_pct']:.2f} % "
            f"(k=2; {row['windows']} windows, {row['reference_energy_kwh']:.1f} kWh, "
            f"{row['min_current_a']:.1f}-{row['max_current_a']:.1f} A) against "
            f"±{row[f'limit_{criterion}_pct']:g} %: {row[f'verdict_{criterion}']}"
        )
    return "; ".join(parts)


def _combine(verdicts: list[str], sufficient: list[bool]) -> str:
    """Fail if a band fails; pass if every band with enough windows passes (and there is
    one); a band with too few windows is reported but not judged."""
    judged = [v for v, enough in zip(verdicts, sufficient, strict=True) if enough]
    if "fail" in judged:
        return "fail"
    if judged and all(v == "pass" for v in judged):
        return "pass"
    return "inconclusive"


def accuracy_verdicts(
    bands: pl.DataFrame,
    chargers: pl.DataFrame | None = None,
    *,
    criterion: str = "claim",
    with_reference: Iterable[str] = (),
) -> pl.DataFrame:
    """A verdict per charger: fail if any band fails, pass if every band measured with
    enough windows passes.

    Parameters
    ----------
    bands : polars.DataFrame
        :func:`accuracy_bands` output.
    chargers : polars.DataFrame, optional
        The ``chargers`` table: chargers without a reference get ``inconclusive``.
    criterion : {"claim", "en50470_3", "mid"}
        The criterion of the main ``verdict`` column; every criterion has its own.
    with_reference : iterable of str
        Chargers that have reference readings (their evidence, when no window formed,
        says so rather than that there is no reference).

    Returns
    -------
    polars.DataFrame
        ``charger_id``, ``verdict``, ``verdict_<criterion>`` for each criterion,
        ``error_pct`` and ``expanded_uncertainty_pct`` over all bands (energy-weighted
        error; the largest band uncertainty), ``windows``, ``reference_energy_kwh``,
        ``bands_measured`` and ``evidence`` (one line per band).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}")
    rows = []
    for (charger_id,), group in bands.group_by("charger_id", maintain_order=True):
        row = {"charger_id": charger_id}
        for c in CRITERIA:
            row[f"verdict_{c}"] = _combine(
                group[f"verdict_{c}"].to_list(), group["sufficient"].to_list()
            )
        row["verdict"] = row[f"verdict_{criterion}"]
        energy = group["reference_energy_kwh"].sum()
        row["error_pct"] = (group["charger_energy_kwh"].sum() / energy - 1) * 100
        row["expanded_uncertainty_pct"] = group["expanded_uncertainty_pct"].max()
        row["windows"] = int(group["windows"].sum())
        row["reference_energy_kwh"] = energy
        row["bands_measured"] = ",".join(group["band"].to_list())
        row["evidence"] = _evidence(group, criterion)
        rows.append(row)
    schema = {
        "charger_id": pl.String,
        **{f"verdict_{c}": pl.String for c in CRITERIA},
        "verdict": pl.String,
        "error_pct": pl.Float64,
        "expanded_uncertainty_pct": pl.Float64,
        "windows": pl.Int64,
        "reference_energy_kwh": pl.Float64,
        "bands_measured": pl.String,
        "evidence": pl.String,
    }
    frame = pl.DataFrame(rows, schema=schema)
    if chargers is not None:
        missing = chargers.select("charger_id").filter(
            ~pl.col("charger_id").is_in(frame["charger_id"].implode())
        )
        if not missing.is_empty():
            referenced = list(with_reference)
            filler = missing.with_columns(
                *[pl.lit("inconclusive").alias(f"verdict_{c}") for c in CRITERIA],
                verdict=pl.lit("inconclusive"),
                windows=pl.lit(0, pl.Int64),
                evidence=pl.when(pl.col("charger_id").is_in(referenced))
                .then(
                    pl.lit(
                        "a reference meter, but no comparison window: too little energy "
                        "registered for the resolution and uncertainty a window needs"
                    )
                )
                .otherwise(pl.lit("no reference meter readings for this charger")),
            )
            frame = pl.concat([frame, filler], how="diagonal_relaxed")
    return frame.select(schema.keys()).sort("charger_id")
