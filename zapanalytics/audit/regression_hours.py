"""Hourly energies for the HAN gain regression: the HAN meter's and each charger's, per hour.

Registers are interpolated linearly to the hour boundaries (readings at least every 15
minutes keep the error small); an hour is kept only when the HAN meter and every charger
of the installation are known in it, and hours of load balancing are left out where the
offered current is known (:mod:`.regression` explains why). Also the share of charging
that ran on one phase, which decides MID's row for the HAN meter's limit.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from zapanalytics.audit.findings import utc_frame

__all__ = [
    "HOURLY_SCHEMA",
    "hourly_energies",
    "interpolate_register",
    "is_single_phase_load",
    "single_phase_share",
]


#: Columns of :func:`hourly_energies` output.
HOURLY_SCHEMA = pl.Schema(
    {
        "installation_id": pl.String,
        "meter_id": pl.String,
        "hour_start_utc": pl.Datetime("us", "UTC"),
        "han_kwh": pl.Float64,
        "charger_id": pl.String,
        "charger_kwh": pl.Float64,
    }
)


def interpolate_register(
    times_s: np.ndarray, values_kwh: np.ndarray, grid_s: np.ndarray, *, max_gap_s: float
) -> np.ndarray:
    """A cumulative register at the grid times, linear between readings.

    Parameters
    ----------
    times_s : array
        Reading times [s since epoch], sorted.
    values_kwh : array
        Register readings [kWh].
    grid_s : array
        Times to read the register at [s since epoch].
    max_gap_s : float
        Readings further apart than this are not interpolated between, unless the
        register did not move (nothing happened in the gap) [s].

    Returns
    -------
    numpy.ndarray
        The register at each grid time [kWh]; NaN where unknown (outside the readings,
        across a long gap, or across a fall of the register).
    """
    result = np.full(grid_s.shape, np.nan)
    if times_s.size == 0:
        return result
    right = np.searchsorted(times_s, grid_s, side="left")
    exact = (right < times_s.size) & (times_s[np.minimum(right, times_s.size - 1)] == grid_s)
    result[exact] = values_kwh[right[exact]]
    inside = ~exact & (right > 0) & (right < times_s.size)
    left = right[inside] - 1
    upper = right[inside]
    gap = times_s[upper] - times_s[left]
    rise = values_kwh[upper] - values_kwh[left]
    ok = (rise >= 0) & ((gap <= max_gap_s) | (rise == 0))
    fraction = (grid_s[inside] - times_s[left]) / gap
    values = values_kwh[left] + fraction * rise
    values[~ok] = np.nan
    result[inside] = values
    return result


def _epoch_s(series: pl.Series) -> np.ndarray:
    return series.dt.epoch("us").to_numpy().astype(np.float64) / 1e6


def hourly_energies(
    meter_values: pl.DataFrame,
    reference_readings: pl.DataFrame,
    chargers: pl.DataFrame,
    *,
    source: str | None = None,
    max_gap_s: float = 5400.0,
    exclude_limited_hours: bool = True,
) -> pl.DataFrame:
    """Hourly HAN energy and each charger's hourly energy, per installation.

    Parameters
    ----------
    meter_values : polars.DataFrame
        The ``meter_values`` table (registers; ``current_offered_a`` and currents when
        known, to find load-balanced hours).
    reference_readings : polars.DataFrame
        The ``reference_readings`` table; rows of kind ``han`` with an
        ``energy_import_kwh`` register are used.
    chargers : polars.DataFrame
        The ``chargers`` table (``charger_id``, ``installation_id``, ``max_current_a``).
    source : str, optional
        The ``meter_values`` source; default: for each charger the register series that
        knows the most hours.
    max_gap_s : float
        See :func:`interpolate_register`.
    exclude_limited_hours : bool
        Leave out hours in which a charger delivered energy while offered less than its
        maximum current (load balancing), when the offered current is known.

    Returns
    -------
    polars.DataFrame
        Long format: ``installation_id``, ``meter_id``, ``hour_start_utc``,
        ``han_kwh``, ``charger_id``, ``charger_kwh``; one row per hour and charger,
        only for hours in which the HAN meter and every charger are known.
    """
    meter_values, reference_readings = utc_frame(meter_values), utc_frame(reference_readings)
    han = reference_readings.filter(
        (pl.col("kind") == "han")
        & pl.col("energy_import_kwh").is_not_null()
        & pl.col("installation_id").is_not_null()
    ).sort("ts_utc")
    registers = meter_values.filter(pl.col("energy_register_kwh").is_not_null())
    if source is not None:
        registers = registers.filter(pl.col("source") == source)
    registers = registers.sort("ts_utc")
    frames = []
    for (installation_id, meter_id), readings in han.group_by(
        "installation_id", "meter_id", maintain_order=True
    ):
        members = chargers.filter(pl.col("installation_id") == installation_id)["charger_id"]
        if members.is_empty():
            continue
        times = _epoch_s(readings["ts_utc"])
        grid = np.arange(np.ceil(times[0] / 3600) * 3600, times[-1] + 1, 3600.0)
        if grid.size < 2:
            continue
        han_at = interpolate_register(
            times, readings["energy_import_kwh"].to_numpy(), grid, max_gap_s=max_gap_s
        )
        columns = {"hour_start_utc": grid[:-1], "han_kwh": np.diff(han_at)}
        for charger_id in members.to_list():
            own = registers.filter(pl.col("charger_id") == charger_id)
            columns[charger_id] = _hourly_register_energy(own, grid, max_gap_s)
        wide = pl.DataFrame(columns).with_columns(
            hour_start_utc=pl.from_epoch(pl.col("hour_start_utc").cast(pl.Int64), time_unit="s")
            .dt.replace_time_zone("UTC")
            .dt.cast_time_unit("us")
        )
        known = pl.all_horizontal(
            pl.exclude("hour_start_utc").is_not_nan() & (pl.exclude("hour_start_utc") >= 0)
        )
        wide = wide.filter(known)
        if exclude_limited_hours:
            limited = _limited_hours(meter_values, chargers, members)
            wide = wide.join(limited, on="hour_start_utc", how="anti")
        frames.append(
            wide.unpivot(
                index=["hour_start_utc", "han_kwh"],
                variable_name="charger_id",
                value_name="charger_kwh",
            ).with_columns(installation_id=pl.lit(installation_id), meter_id=pl.lit(meter_id))
        )
    if not frames:
        return pl.DataFrame(schema=HOURLY_SCHEMA)
    return pl.concat(frames).select(HOURLY_SCHEMA.names()).cast(HOURLY_SCHEMA)


def _hourly_register_energy(
    registers: pl.DataFrame, grid: np.ndarray, max_gap_s: float
) -> np.ndarray:
    """A charger's energy per hour of ``grid`` from the register series (source) that
    knows the most hours; sources stamp with different clocks, so they are not mixed."""
    best = np.full(grid.size - 1, np.nan)
    best_known = -1
    for _, series in registers.group_by("source", maintain_order=True):
        series = series.unique("ts_utc", keep="first", maintain_order=True)
        at = interpolate_register(
            _epoch_s(series["ts_utc"]),
            series["energy_register_kwh"].to_numpy(),
            grid,
            max_gap_s=max_gap_s,
        )
        energy = np.diff(at)
        known = int(np.isfinite(energy).sum())
        if known > best_known:
            best, best_known = energy, known
    return best


def _limited_hours(
    meter_values: pl.DataFrame, chargers: pl.DataFrame, members: pl.Series
) -> pl.DataFrame:
    """Hours in which a charger drew current while offered less than its maximum."""
    empty = pl.DataFrame(schema={"hour_start_utc": pl.Datetime("us", "UTC")})
    if "current_offered_a" not in meter_values.columns or "max_current_a" not in chargers.columns:
        return empty
    phases = [
        c for c in ("current_l1_a", "current_l2_a", "current_l3_a") if c in meter_values.columns
    ]
    drawing = pl.max_horizontal(phases) > 0.5 if phases else pl.col("power_w") > 50
    # A reading stamps the interval that ends at it: 12:00:00 belongs to 11:00-12:00.
    return (
        meter_values.filter(pl.col("charger_id").is_in(members.implode()))
        .join(chargers.select("charger_id", "max_current_a"), on="charger_id")
        .filter(drawing & (pl.col("current_offered_a") < pl.col("max_current_a") - 0.5))
        .select(hour_start_utc=(pl.col("ts_utc") - pl.duration(microseconds=1)).dt.truncate("1h"))
        .unique()
    )


def single_phase_share(meter_values: pl.DataFrame, *, drawing_a: float = 1.0) -> float | None:
    """Share of the charging samples in which only one phase carried current.

    Parameters
    ----------
    meter_values : polars.DataFrame
        ``meter_values`` rows with ``current_l1_a`` … ``current_l3_a``.
    drawing_a : float
        A phase carries current above this [A].

    Returns
    -------
    float or None
        The share [0..1]; None when no sample shows phase currents while charging.
    """
    phases = [c for c in ("current_l1_a", "current_l2_a", "current_l3_a") if c in meter_values.columns]
    if len(phases) < 3 or meter_values.is_empty():
        return None
    carrying = pl.sum_horizontal([(pl.col(c).fill_null(0.0) > drawing_a).cast(pl.Int8) for c in phases])
    counts = meter_values.select(
        charging=(carrying > 0).sum(), single=(carrying == 1).sum()
    ).row(0, named=True)
    return counts["single"] / counts["charging"] if counts["charging"] else None


def is_single_phase_load(meter_values: pl.DataFrame, *, site_phase_count: int | None = None) -> bool:
    """Whether MID's row for a polyphase meter on a single-phase load applies.

    It does on a single-phase installation (``site_phase_count == 1``), and where most of the
    charging samples carry current on one phase only (see :func:`single_phase_share`).
    """
    if site_phase_count == 1:
        return True
    share = single_phase_share(meter_values)
    return share is not None and share > 0.5
