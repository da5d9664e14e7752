"""Each charger's meter against a reference sub-meter, the way a test lab compares them.

Method
------
1. **Pair.** The two registers are compared at common instants: the reading times of
   the sparser of the two (hourly signed records against a sub-meter read every 15
   minutes, say; the charger's when both are as dense). The other register is
   interpolated linearly to those instants, and the interpolation carries its own
   uncertainty (:mod:`zapanalytics.audit.accuracy_pairing`): the readings' rounding and
   how far the power changed inside the interval interpolated across. At an instant
   that falls on the other meter's reading, or in an interval without a power change,
   the interpolation is exact up to the rounding.
2. **Intervals.** Consecutive instants give the energy each meter registered over the
   same interval. The charger's current (its largest phase current, held between
   observations; from ``meter_values`` of any source and the reference's own readings)
   averaged over the time it drew current classifies the interval into a current
   band: below 10 % of the charger's Imax, 10-50 %, above 50 %. Idle intervals (no
   current, no energy) join whatever surrounds them.
3. **Windows.** Consecutive intervals in one band (with idle ones between) are gathered
   into windows, each as short as it can be while (a) each register steps at least
   ``min_steps`` (100, as labs require for a quantisation error of 1 % or less) times
   and (b) the standard uncertainty from resolution, interpolation and timing stays
   within ``target_uncertainty_pct``. Windows end where the pairing is exact when they
   can: a window that would end on an instant in mid-change grows until it reaches a
   quieter one.
4. **Error and uncertainty per window.** The error is
   ``(E_charger / E_reference - 1) * 100`` [%]. Its standard uncertainty combines
   (GUM, root sum of squares) the registers' resolution at both edges, the
   interpolation's shape term at both edges, and the clocks (the power at each edge
   times ``clock_uncertainty_s``, a rectangular bound); the reference meter's own error
   is added per band.
5. **Bands and verdicts.** Per charger and band, the energy-weighted error with an
   expanded uncertainty (k = 2) from the larger of the windows' scatter and their
   resolution, interpolation and timing uncertainty, plus the reference's, judged against
   the ±1 % claim, the EN 50470-3 class limit and the MID MPE
   (:mod:`zapanalytics.audit.limits`): pass, fail or inconclusive
   (:mod:`zapanalytics.audit.accuracy_verdicts`).

Assumptions: the reference meter and the charger's meter measure the same circuit with
no load in between; registers round (or truncate) to a fixed step; the reference's
error is within its class limit; the charger's power (or current) observations, held
until the next one, bound how its power changed between readings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from zapanalytics.audit.accuracy_pairing import StepProfile, epoch_s, register_at
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
        "source": pl.String,
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
        "u_interpolation_pct": pl.Float64,
        "u_timing_pct": pl.Float64,
        "charger_q_kwh": pl.Float64,
        "reference_q_kwh": pl.Float64,
    }
)
_DEFAULT_IMAX_A = 32.0
#: Voltage for power from phase currents when no voltage was observed [V].
NOMINAL_VOLTAGE_V = 230.0


def infer_resolution_kwh(values: np.ndarray | pl.Series, *, sample: int = 5000) -> float:
    """The register step of a series of readings [kWh]: the coarsest decimal that fits.

    Parameters
    ----------
    values : array or Series
        Register readings [kWh].
    sample : int
        Distinct readings inspected (spread over the whole range: a register idle at a
        round number for days says nothing of its step).

    Returns
    -------
    float
        ``10 ** -k`` for the smallest ``k`` (0..6) at which every reading is a whole
        number of steps; 1e-6 when none is.
    """
    array = np.unique(np.asarray(values, dtype=float))
    array = array[np.isfinite(array)]
    if array.size > sample:
        array = array[np.linspace(0, array.size - 1, sample).astype(int)]
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


def _resolution(values: np.ndarray, given: float | None, stored: float | None = None) -> float:
    if given is not None:
        return float(given)
    if stored is not None and np.isfinite(stored) and stored > 0:
        return float(stored)
    return infer_resolution_kwh(values)


def _profiles(
    meter_values: pl.DataFrame, references: pl.DataFrame
) -> tuple[StepProfile, StepProfile]:
    """The charger's largest phase current [A] and its power [kW], held between
    observations, from its meter values (any source) and its reference's readings."""
    parts = []
    for frame in (meter_values, references):
        phases = [c for c in ("current_l1_a", "current_l2_a", "current_l3_a") if c in frame.columns]
        if frame.is_empty() or not phases:
            continue
        current = pl.max_horizontal(phases)
        summed = pl.sum_horizontal(phases)
        total = pl.when(pl.any_horizontal(pl.col(phases).is_not_null())).then(summed)
        voltage = (
            pl.mean_horizontal(
                v for v in ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v") if v in frame.columns
            )
            if any(v in frame.columns for v in ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v"))
            else pl.lit(None, pl.Float64)
        )
        power = pl.col("power_w") / 1000 if "power_w" in frame.columns else pl.lit(None, pl.Float64)
        parts.append(
            frame.select(
                t=pl.col("ts_utc").dt.epoch("us").cast(pl.Float64) / 1e6,
                current_a=current.cast(pl.Float64),
                power_kw=pl.coalesce(
                    power, total * voltage.fill_null(NOMINAL_VOLTAGE_V) / 1000
                ).cast(pl.Float64),
            )
        )
    if not parts:
        empty = StepProfile(np.empty(0), np.empty(0))
        return empty, empty
    samples = pl.concat(parts)
    t = samples["t"].to_numpy()
    return (
        StepProfile.from_samples(t, samples["current_a"].fill_null(np.nan).to_numpy()),
        StepProfile.from_samples(t, samples["power_kw"].fill_null(np.nan).to_numpy()),
    )


@dataclass(frozen=True)
class _Pairs:
    """Both registers at common instants, with each instant's variances [kWh^2]."""

    times_s: np.ndarray
    charger_kwh: np.ndarray
    reference_kwh: np.ndarray
    var_resolution: np.ndarray
    var_shape: np.ndarray
    var_clock: np.ndarray


def _pair_registers(
    charger: tuple[np.ndarray, np.ndarray, float],
    reference: tuple[np.ndarray, np.ndarray, float],
    power: StepProfile,
    *,
    max_gap_s: float,
    clock_uncertainty_s: float,
) -> _Pairs:
    (c_times, c_values, c_q), (r_times, r_values, r_q) = charger, reference
    low = max(c_times[0], r_times[0])
    high = min(c_times[-1], r_times[-1])
    c_in = (c_times >= low) & (c_times <= high)
    r_in = (r_times >= low) & (r_times <= high)
    profile = None if power.empty else power
    if c_in.sum() <= r_in.sum():
        at = c_times[c_in]
        other = register_at(
            r_times, r_values, at, resolution_kwh=r_q, max_gap_s=max_gap_s, power=profile
        )
        charger_kwh, reference_kwh = c_values[c_in], other.value_kwh
        var_resolution = c_q**2 / 12 + other.var_resolution_kwh2
    else:
        at = r_times[r_in]
        other = register_at(
            c_times, c_values, at, resolution_kwh=c_q, max_gap_s=max_gap_s, power=profile
        )
        charger_kwh, reference_kwh = other.value_kwh, r_values[r_in]
        var_resolution = r_q**2 / 12 + other.var_resolution_kwh2
    var_clock = (other.power_kw * clock_uncertainty_s / 3600.0) ** 2 / 3
    return _Pairs(at, charger_kwh, reference_kwh, var_resolution, other.var_shape_kwh2, var_clock)


def _keep_instants(variance: np.ndarray, busy: np.ndarray) -> np.ndarray:
    """Instants worth considering as window edges: the ends of every interval that is
    not plainly idle, and in each idle stretch the quietest instant (the latest of
    equals). ``busy`` flags the intervals between consecutive instants."""
    n = variance.size
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    keep[:-1] |= busy
    keep[1:] |= busy
    inner = np.flatnonzero(~keep)
    if inner.size:
        stretch = np.cumsum(np.concatenate([[1], np.diff(inner) != 1]))
        order = np.lexsort((-inner, variance[inner], stretch))
        first = np.ones(order.size, dtype=bool)
        first[1:] = stretch[order][1:] != stretch[order][:-1]
        keep[inner[order][first]] = True
    return keep


def _band_index(mean_a: np.ndarray, imax_a: float) -> np.ndarray:
    # Rounded to a micro-ampere: 16 A held for an hour is 16 A, on the band's edge.
    fraction = np.round(mean_a, 6) / imax_a
    band = np.where(fraction < 0.1, 0, np.where(fraction <= 0.5, 1, 2))
    return np.where(np.isfinite(fraction), band, -1)


def _pair_windows(
    pairs: _Pairs,
    current: StepProfile,
    *,
    charger_q: float,
    reference_q: float,
    imax_a: float,
    min_steps: int,
    target_uncertainty_pct: float | None,
    charging_above_a: float,
) -> list[dict]:
    """Windows over one charger's paired instants (see the module notes, steps 2-4):
    rows with ``band``, energies, current, ``intervals``, the edges' times and the
    standard uncertainties [%]."""
    known = np.isfinite(pairs.charger_kwh) & np.isfinite(pairs.reference_kwh)
    times = pairs.times_s[known]
    if times.size < 2:
        return []
    c_kwh, r_kwh = pairs.charger_kwh[known], pairs.reference_kwh[known]
    var_res = pairs.var_resolution[known]
    var_shape = pairs.var_shape[known]
    var_clock = pairs.var_clock[known]
    variance = var_res + var_shape + var_clock
    # An instant the other register could not be known at breaks the sequence.
    unknown = np.flatnonzero(~known)
    breaks = np.zeros(times.size - 1, dtype=bool)
    if unknown.size:
        position = np.cumsum(known) - 1  # index among known instants
        after = position[unknown]  # the known instant just before each unknown one
        after = after[(after >= 0) & (after < times.size - 1)]
        breaks[after] = True

    def intervals(index: np.ndarray):
        e_c, e_r = np.diff(c_kwh[index]), np.diff(r_kwh[index])
        mean_a, low_a, charging_s = current.held_over(
            times[index][:-1], times[index][1:], above=charging_above_a
        )
        return e_c, e_r, mean_a, low_a, charging_s

    everything = np.arange(times.size)
    e_c, e_r, _, _, charging_s = intervals(everything)
    # No current drawn and one register still: idle. (The other may have moved by the
    # interpolation's error; that stays in the window's energies and uncertainty.)
    idle = (charging_s == 0) & ((e_c < 1.5 * charger_q) | (e_r < 1.5 * reference_q))
    valid = (e_c >= -1e-9) & (e_r >= -1e-9) & ~breaks
    keep = _keep_instants(variance, ~(idle & valid))
    index = np.flatnonzero(keep)
    e_c, e_r, mean_a, low_a, charging_s = intervals(index)
    # Merged intervals lie inside idle stretches: flags carry over by counting.
    bad_before = np.concatenate([[0], np.cumsum(~valid)])
    busy_before = np.concatenate([[0], np.cumsum(~idle)])
    valid_k = (bad_before[index[1:]] - bad_before[index[:-1]]) == 0
    idle_k = (busy_before[index[1:]] - busy_before[index[:-1]]) == 0
    band_k = _band_index(mean_a, imax_a)

    c_list, r_list = c_kwh[index].tolist(), r_kwh[index].tolist()
    var_list = variance[index].tolist()
    windows: list[dict] = []
    start: int | None = None
    band = -1
    charged = False
    weighted_a = seconds = 0.0
    lowest_a = np.inf
    count = 0
    target = None if target_uncertainty_pct is None else target_uncertainty_pct / 100
    min_c, min_r = (min_steps - 1e-6) * charger_q, (min_steps - 1e-6) * reference_q
    # The reference energy a window from each edge needs at least [kWh], with the
    # quietest edge of the pair at its other end.
    if target is None:
        needed = [min_r] * index.size
    else:
        floor = float(np.min(variance[index]))
        needed = np.maximum(min_r, np.sqrt(variance[index] + floor) / target).tolist()

    valid_l, idle_l, band_l = valid_k.tolist(), idle_k.tolist(), band_k.tolist()
    mean_l, low_l, secs_l = mean_a.tolist(), low_a.tolist(), charging_s.tolist()
    for i in range(len(valid_l)):
        if not valid_l[i] or (not idle_l[i] and band_l[i] < 0):
            start, band, charged = None, -1, False
            continue
        if start is None:
            start = i
        if idle_l[i]:
            if not charged:
                if var_list[i + 1] <= var_list[start]:
                    start = i + 1
                continue
        else:
            if band_l[i] != band:
                if charged:
                    start = i  # the window so far is too short; begin at this interval
                band, charged = band_l[i], False
            if not charged:
                weighted_a = seconds = 0.0
                lowest_a = np.inf
                count = 0
                charged = True
            weighted_a += mean_l[i] * secs_l[i]
            seconds += secs_l[i]
            lowest_a = min(lowest_a, low_l[i])
            count += 1
            # Starting afresh at the next instant may close a window sooner than carrying a
            # noisy first edge (a change of power just at it) along.
            spent = r_list[i + 1] - r_list[start]
            if spent + needed[i + 1] < needed[start]:
                start, charged = i + 1, False
                continue
        end = i + 1
        energy_c = c_list[end] - c_list[start]
        energy_r = r_list[end] - r_list[start]
        if energy_c < min_c or energy_r < min_r:
            continue
        total = var_list[start] + var_list[end]
        if target is not None and total > (target * energy_r) ** 2:
            continue
        windows.append(
            {
                "band": CURRENT_BANDS[band],
                "start": int(index[start]),
                "end": int(index[end]),
                "intervals": count,
                "charger_energy_kwh": energy_c,
                "reference_energy_kwh": energy_r,
                "mean_current_a": weighted_a / seconds if seconds else float("nan"),
                "min_current_a": lowest_a,
            }
        )
        start, charged = end, False
    for window in windows:
        s, e = window.pop("start"), window.pop("end")
        energy = window["reference_energy_kwh"]
        window["start_s"], window["end_s"] = times[s], times[e]
        window["u_resolution_pct"] = np.sqrt(var_res[s] + var_res[e]) / energy * 100
        window["u_interpolation_pct"] = np.sqrt(var_shape[s] + var_shape[e]) / energy * 100
        window["u_timing_pct"] = np.sqrt(var_clock[s] + var_clock[e]) / energy * 100
    return windows


def accuracy_windows(
    meter_values: pl.DataFrame,
    reference_readings: pl.DataFrame,
    chargers: pl.DataFrame | None = None,
    *,
    source: str | None = None,
    min_steps: int = 100,
    charger_resolution_kwh: float | None = None,
    reference_resolution_kwh: float | None = None,
    max_interpolation_gap_s: float = 3600.0,
    clock_uncertainty_s: float = 1.0,
    target_uncertainty_pct: float | None = 0.2,
    charging_above_a: float = 0.5,
    default_imax_a: float = _DEFAULT_IMAX_A,
) -> pl.DataFrame:
    """Comparison windows of each charger's register against its sub-meter.

    Parameters
    ----------
    meter_values : polars.DataFrame
        The ``meter_values`` table (``charger_id``, ``ts_utc``, ``source``,
        ``energy_register_kwh``; phase currents, ``power_w`` and voltages of any source
        describe the charger's load between register readings).
    reference_readings : polars.DataFrame
        The ``reference_readings`` table; rows of kind ``submeter`` with a
        ``charger_id`` are used (their ``energy_resolution_kwh`` when given).
    chargers : polars.DataFrame, optional
        The ``chargers`` table, for each charger's ``max_current_a`` (Imax).
    source : str, optional
        The ``meter_values`` source of the charger's register; default: of each
        charger's register sources (compared one at a time, never mixed: they stamp
        with different clocks) the one whose windows cover the most reference energy.
    min_steps : int
        Register steps each meter must make per window.
    charger_resolution_kwh, reference_resolution_kwh : float, optional
        Register steps [kWh]; default: the reference's stored resolution, else
        inferred from the readings.
    max_interpolation_gap_s : float
        Readings of the interpolated register further apart than this are not
        interpolated between while energy flowed [s].
    clock_uncertainty_s : float
        Uncertainty of the two meters' clocks against each other [s].
    target_uncertainty_pct : float or None
        Windows grow until resolution, interpolation and timing stay within this
        standard uncertainty [%] (0.2 %: a fifth of the ±1 % claim, the usual ratio for
        a test); ``None`` keeps only ``min_steps``.
    charging_above_a : float
        A charger draws current above this [A].
    default_imax_a : float
        Imax for chargers without ``max_current_a`` [A].

    Returns
    -------
    polars.DataFrame
        One row per window (:data:`WINDOW_SCHEMA`): ``charger_id``, ``meter_id``,
        ``source`` (of the charger's register), ``band``, ``start_utc``, ``end_utc``, ``intervals`` (those with current),
        energies [kWh], register steps, current (time-weighted mean and lowest while
        drawing current) [A], ``imax_a``, ``error_pct`` and the standard uncertainties
        ``u_resolution_pct``, ``u_interpolation_pct``, ``u_timing_pct``, and the
        resolutions used.
    """
    meter_values, reference_readings = utc_frame(meter_values), utc_frame(reference_readings)
    registers = meter_values.filter(pl.col("energy_register_kwh").is_not_null())
    if source is not None:
        registers = registers.filter(pl.col("source") == source)
    references = reference_readings.filter(
        (pl.col("kind") == "submeter")
        & pl.col("charger_id").is_not_null()
        & pl.col("energy_import_kwh").is_not_null()
    )
    imax: dict[str, float] = {}
    if chargers is not None and "max_current_a" in chargers.columns:
        imax = {
            c: float(a)
            for c, a in chargers.select("charger_id", "max_current_a").iter_rows()
            if a is not None and a > 0
        }
    rows: list[dict] = []
    for (charger_id, meter_id), reference in references.group_by(
        "charger_id", "meter_id", maintain_order=True
    ):
        reference = reference.sort("ts_utc").unique("ts_utc", keep="first", maintain_order=True)
        own = registers.filter(pl.col("charger_id") == charger_id)
        if reference.height < 2 or own.height < 2:
            continue
        r_values = reference["energy_import_kwh"].to_numpy().astype(float)
        stored_q = (
            reference["energy_resolution_kwh"].max()
            if "energy_resolution_kwh" in reference.columns
            else None
        )
        reference_q = _resolution(r_values, reference_resolution_kwh, stored_q)
        current, power = _profiles(
            meter_values.filter(pl.col("charger_id") == charger_id), reference
        )
        charger_imax = imax.get(charger_id, default_imax_a)
        # Each register source on its own (they stamp with different clocks); the one
        # whose windows cover the most reference energy is kept.
        best: list[dict] = []
        for (register_source,), series in own.group_by("source", maintain_order=True):
            series = series.sort("ts_utc").unique("ts_utc", keep="first", maintain_order=True)
            if series.height < 2:
                continue
            c_values = series["energy_register_kwh"].to_numpy().astype(float)
            charger_q = _resolution(c_values, charger_resolution_kwh)
            pairs = _pair_registers(
                (epoch_s(series["ts_utc"]), c_values, charger_q),
                (epoch_s(reference["ts_utc"]), r_values, reference_q),
                power,
                max_gap_s=max_interpolation_gap_s,
                clock_uncertainty_s=clock_uncertainty_s,
            )
            found = [
                {
                    **window,
                    "charger_id": charger_id,
                    "meter_id": meter_id,
                    "source": register_source,
                    "imax_a": charger_imax,
                    "charger_q_kwh": charger_q,
                    "reference_q_kwh": reference_q,
                }
                for window in _pair_windows(
                    pairs,
                    current,
                    charger_q=charger_q,
                    reference_q=reference_q,
                    imax_a=charger_imax,
                    min_steps=min_steps,
                    target_uncertainty_pct=target_uncertainty_pct,
                    charging_above_a=charging_above_a,
                )
            ]
            covered = sum(w["reference_energy_kwh"] for w in found)
            if covered > sum(w["reference_energy_kwh"] for w in best):
                best = found
        rows.extend(best)
    if not rows:
        return pl.DataFrame(schema=WINDOW_SCHEMA)
    frame = pl.DataFrame(rows, infer_schema_length=None)
    as_time = pl.from_epoch((pl.col("start_s") * 1e6).round().cast(pl.Int64), time_unit="us")
    return (
        frame.with_columns(
            start_utc=as_time.dt.replace_time_zone("UTC"),
            end_utc=pl.from_epoch(
                (pl.col("end_s") * 1e6).round().cast(pl.Int64), time_unit="us"
            ).dt.replace_time_zone("UTC"),
            charger_steps=pl.col("charger_energy_kwh") / pl.col("charger_q_kwh"),
            reference_steps=pl.col("reference_energy_kwh") / pl.col("reference_q_kwh"),
            error_pct=(pl.col("charger_energy_kwh") / pl.col("reference_energy_kwh") - 1) * 100,
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
    referenced = reference_readings.filter(
        (pl.col("kind") == "submeter") & pl.col("charger_id").is_not_null()
    )["charger_id"].unique()
    verdicts = accuracy_verdicts(
        bands, chargers, criterion=criterion, with_reference=referenced.to_list()
    )
    return AccuracyAudit(windows=windows, bands=bands, chargers=verdicts)
