"""Power and energy of recordings and scenarios: hourly energy, the capacity step, the
household behind the same meter, and the voltage that turns currents into metered energy.

The capacity step (*kapasitetsledd*) follows the billing's rule
(:func:`zapanalytics.billing.tariff.capacity_peaks`): the mean of the three highest hourly
energies on three different local days of a month, placed in a step table. The table is
a plain parameter here; prices belong to the billing tariffs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from firmware_ref.grid import is_neutral_network
from zapanalytics.replay.intervals import UTC_DTYPE, epoch_s, from_epoch_s, sum_over_keys
from zapanalytics.replay.recording import NOMINAL_VOLTAGE_V, Recording

#: Lower bounds [kW] of the usual capacity steps of Norwegian grid tariffs since 2022.
CAPACITY_STEPS_KW: tuple[float, ...] = (0, 2, 5, 10, 15, 20, 25, 50, 75, 100)


def hourly_energy(load: pl.DataFrame, power: str = "power_w") -> pl.DataFrame:
    """Energy per clock hour (UTC hours; Norwegian offsets are whole hours) of a power step
    frame [kWh], computed exactly from the steps.

    Returns
    -------
    polars.DataFrame
        ``hour_utc`` (start of the hour), ``energy_kwh``.
    """
    if load.is_empty():
        return pl.DataFrame(schema={"hour_utc": UTC_DTYPE, "energy_kwh": pl.Float64})
    start = epoch_s(load["start_utc"])
    end = epoch_s(load["end_utc"])
    watts = load[power].fill_null(0.0).to_numpy().astype(float)
    knots = np.concatenate([start, end[-1:]])
    cumulative = np.concatenate([[0.0], np.cumsum(watts * (end - start) / 3.6e6)])
    first = math.floor(start[0] / 3600.0) * 3600.0
    last = math.ceil(end[-1] / 3600.0) * 3600.0
    hours = np.arange(first, last + 1.0, 3600.0)
    at = np.interp(hours, knots, cumulative, left=0.0, right=float(cumulative[-1]))
    return pl.DataFrame(
        {"hour_utc": from_epoch_s("hour_utc", hours[:-1]), "energy_kwh": np.diff(at)}
    )


def capacity_steps(
    hourly: pl.DataFrame,
    timezone: str,
    *,
    steps_kw: Sequence[float] = CAPACITY_STEPS_KW,
    prices_nok_per_month: Sequence[float] | None = None,
) -> pl.DataFrame:
    """Capacity step per local month: mean of the three highest hourly energies on three
    different days (the billing's rule, :func:`zapanalytics.billing.tariff.capacity_peaks`),
    placed in a step table.

    Parameters
    ----------
    hourly : polars.DataFrame
        ``hour_utc, energy_kwh`` (an hour's kWh is its mean kW).
    timezone : str
        IANA zone of the installation (days and months are local).
    steps_kw : sequence of float
        Lower bounds of the steps [kW], ascending from 0.
    prices_nok_per_month : sequence of float, optional
        Price of each step [NOK/month]; adds ``charge_nok``.

    Returns
    -------
    polars.DataFrame
        ``month, top3_mean_kw, step_index, step_label`` (+ ``charge_nok``).
    """
    from zapanalytics.billing.tariff import capacity_peaks

    bounds = [float(b) for b in steps_kw]
    if prices_nok_per_month is not None and len(prices_nok_per_month) != len(bounds):
        raise ValueError("give one price per capacity step")
    labels = [f"{lo:g}-{hi:g} kW" for lo, hi in zip(bounds, bounds[1:], strict=False)] + [
        f">{bounds[-1]:g} kW"
    ]
    schema = {"month": pl.String, "top3_mean_kw": pl.Float64, "step_index": pl.Int32,
              "step_label": pl.String}  # fmt: skip
    if hourly.is_empty():
        return pl.DataFrame(schema=schema)
    local = pl.col("hour_utc").dt.convert_time_zone(timezone)
    load = hourly.select(
        local.dt.strftime("%Y-%m").alias("month"),
        local.dt.date().alias("day"),
        local.alias("hour_start"),
        "energy_kwh",
    )
    peaks = capacity_peaks(load, "three_daily_peaks")
    # A month with fewer than three days counts the missing ones as zero, as the bills do.
    monthly = (
        load.select("month").unique()
        .join(peaks.group_by("month").agg((pl.col("energy_kwh").sum() / 3.0).alias("top3_mean_kw")),
              on="month", how="left")
        .with_columns(pl.col("top3_mean_kw").fill_null(0.0))
        .sort("month")
    )  # fmt: skip
    index = (
        np.searchsorted(np.asarray(bounds), monthly["top3_mean_kw"].to_numpy(), side="right") - 1
    )
    index = np.clip(index, 0, len(bounds) - 1)
    out = monthly.with_columns(
        pl.col("top3_mean_kw").round(3),
        pl.Series("step_index", index, dtype=pl.Int32),
        pl.Series("step_label", [labels[i] for i in index], dtype=pl.String),
    )
    if prices_nok_per_month is not None:
        out = out.with_columns(
            pl.Series("charge_nok", [float(prices_nok_per_month[i]) for i in index])
        )
    return out


def household_power(recording: Recording) -> pl.DataFrame | None:
    """The household's power behind the same meter, from HAN minus chargers [W] (unity
    power factor at nominal voltage); None without HAN readings."""
    steps = recording.line_steps
    if steps["han_l1_a"].null_count() == steps.height:
        return None
    per_line = (
        NOMINAL_VOLTAGE_V
        if is_neutral_network(recording.installation.network_type)
        else (NOMINAL_VOLTAGE_V / math.sqrt(3.0))
    )
    return steps.select(
        "start_utc", "end_utc",
        (pl.sum_horizontal([pl.col(f"household_l{k}_a").fill_null(0.0) for k in (1, 2, 3)])
         * per_line).alias("power_w"),
    )  # fmt: skip


def site_hourly(load: pl.DataFrame, household: pl.DataFrame | None) -> pl.DataFrame:
    chargers = hourly_energy(load)
    if household is None or household.is_empty():
        return chargers
    house = hourly_energy(household)
    return (
        pl.concat([chargers, house])
        .group_by("hour_utc")
        .agg(pl.col("energy_kwh").sum())
        .sort("hour_utc")
    )


def effective_voltage(recording: Recording) -> float:
    """Voltage that turns the recorded currents into the recorded session energies [V].

    The sessions' metered energy divided by the energy the measured currents give at
    nominal voltage, times the nominal voltage; the nominal 230 V when the recording has
    no currents or the ratio is implausible (beyond ±10 %).
    """
    recorded_kwh = float(recording.sessions["energy_kwh"].fill_null(0.0).sum())
    power = recorded_power(recording)
    if power.is_empty() or recorded_kwh <= 0.0:
        return NOMINAL_VOLTAGE_V
    ends = power["start_utc"].shift(-1).fill_null(pl.lit(recording.end_utc, dtype=UTC_DTYPE))
    hours = (ends - power["start_utc"]).dt.total_microseconds().to_numpy() / 3.6e9
    estimate_kwh = float(np.sum(power["power_w"].to_numpy() * hours)) / 1000.0
    if estimate_kwh <= 0.0:
        return NOMINAL_VOLTAGE_V
    ratio = recorded_kwh / estimate_kwh
    return NOMINAL_VOLTAGE_V * ratio if 0.9 <= ratio <= 1.1 else NOMINAL_VOLTAGE_V


def recorded_power(recording: Recording) -> pl.DataFrame:
    """Chargers' power per line-step interval from the measured terminal currents [W]."""
    cached = recording.cache.get("recorded_power")
    if cached is not None:
        return cached
    network = recording.installation.network_type
    steps = recording.charger_steps
    terminals = pl.sum_horizontal("current_t1_a", "current_t2_a", "current_t3_a")
    if is_neutral_network(network):
        power = terminals * NOMINAL_VOLTAGE_V
    else:
        # Star: 230/√3 V per terminal; a line-to-line pair: 230 V on the pair (115 V each).
        per_terminal = pl.when(pl.col("active_terminals") == 2).then(NOMINAL_VOLTAGE_V / 2.0)
        power = terminals * per_terminal.otherwise(NOMINAL_VOLTAGE_V / math.sqrt(3.0))
    frame = steps.with_columns(power.alias("power_w"))
    summed = sum_over_keys(frame, ["power_w"], by=["charger_id"], start_utc=recording.start_utc,
                           end_utc=recording.end_utc)  # fmt: skip
    out = summed.select("start_utc", "power_w")
    recording.cache["recorded_power"] = out
    return out
