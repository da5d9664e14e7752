"""Gain errors from the HAN meter by regression, with no sub-meter."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from audit_helpers import build_han_frames, simulate_han_hours

from zapanalytics.audit.regression import (
    estimate_gains,
    fit_gains,
    hourly_energies,
    interpolate_register,
)

GAINS = {"ZPR-ok": 0.0, "ZPR-high": 0.018, "ZPR-low": -0.004}


@pytest.fixture(scope="module")
def year():
    return build_han_frames(GAINS, days=365, seed=21)


@pytest.fixture(scope="module")
def year_result(year):
    hourly = hourly_energies(year["meter_values"], year["reference_readings"], year["chargers"])
    # A perfectly known HAN meter: these tests are of the regression itself (the HAN
    # meter's own uncertainty is tested in test_han_meter_uncertainty).
    return hourly, estimate_gains(hourly, timezones="Europe/Oslo", han_uncertainty_pct=0.0)


def test_the_regression_recovers_the_injected_gain_within_its_interval(year_result):
    _, result = year_result
    rows = {row["charger_id"]: row for row in result.chargers.iter_rows(named=True)}

    for charger_id, gain in GAINS.items():
        row = rows[charger_id]
        assert row["ci_low_pct"] <= gain * 100 <= row["ci_high_pct"], row
        assert row["ci_low_pct"] < row["gain_error_pct"] < row["ci_high_pct"]
    assert rows["ZPR-high"]["verdict"] == "fail" and rows["ZPR-high"]["flagged"]
    assert not rows["ZPR-ok"]["flagged"] and not rows["ZPR-low"]["flagged"]
    assert rows["ZPR-ok"]["verdict"] in ("pass", "inconclusive")
    # A year of evening charging pins the gain to within about half a percent.
    width = rows["ZPR-high"]["ci_high_pct"] - rows["ZPR-high"]["ci_low_pct"]
    assert width < 1.0


def test_the_fit_reports_its_diagnostics(year_result):
    hourly, result = year_result
    fit = result.installations.row(0, named=True)
    assert fit["days"] >= 365
    assert fit["hours"] == hourly["hour_start_utc"].n_unique()
    assert 0.2 < fit["residual_std_kwh"] < 0.6  # the household noise put in: 0.35 kWh
    assert "hour-of-day" in fit["baseline"]


def test_hourly_energies_match_the_registers_and_skip_unknown_hours(year):
    hourly = hourly_energies(year["meter_values"], year["reference_readings"], year["chargers"])
    han = year["reference_readings"].sort("ts_utc")

    # Over the whole record, charger energies sum to their register differences.
    for charger_id in GAINS:
        own = year["meter_values"].filter(pl.col("charger_id") == charger_id)
        in_hours = hourly.filter(pl.col("charger_id") == charger_id)["charger_kwh"].sum()
        span = own["energy_register_kwh"].max() - own["energy_register_kwh"].min()
        assert in_hours == pytest.approx(span, abs=0.2)
    # Drop a day of HAN readings (25 hourly readings): the 26 hour boundaries between the
    # readings either side are unknown, so 27 hours disappear rather than being guessed.
    gap_start = han["ts_utc"][100]
    thinned = year["reference_readings"].filter(
        (pl.col("ts_utc") < gap_start) | (pl.col("ts_utc") > gap_start + timedelta(days=1))
    )
    thinned_hourly = hourly_energies(year["meter_values"], thinned, year["chargers"])
    missing = hourly["hour_start_utc"].n_unique() - thinned_hourly["hour_start_utc"].n_unique()
    assert missing == 27


def test_hours_of_load_balancing_are_left_out(year):
    values = year["meter_values"].with_columns(
        current_l1_a=pl.lit(16.0),
        current_offered_a=pl.when(pl.col("ts_utc").dt.hour() == 20)
        .then(pl.lit(10.0))
        .otherwise(pl.lit(32.0)),
    )

    kept = hourly_energies(values, year["reference_readings"], year["chargers"])
    everything = hourly_energies(
        values, year["reference_readings"], year["chargers"], exclude_limited_hours=False
    )

    # Readings stamped 20:xx belong to hours ending then: 19:00-20:00 and 20:00-21:00 go.
    removed = everything.join(kept, on=["hour_start_utc", "charger_id"], how="anti")
    assert set(removed["hour_start_utc"].dt.hour().unique()) == {19, 20}


def test_confidence_intervals_cover_the_truth_at_their_stated_rate():
    covered = trials = 0
    truth = np.array(list(GAINS.values())) * 100
    for seed in range(60):
        han, registers, day, hour = simulate_han_hours(GAINS, days=45, seed=1000 + seed)
        fit = fit_gains(han, registers, day, hour, confidence=0.95)
        covered += int(np.sum((fit.gain_low_pct <= truth) & (truth <= fit.gain_high_pct)))
        trials += truth.size
    assert 0.88 <= covered / trials <= 0.995


def test_chargers_that_never_charge_apart_cannot_be_separated():
    han, registers, day, hour = simulate_han_hours({"a": 0.0}, days=30, seed=5)
    twins = np.column_stack([registers[:, 0], registers[:, 0] * 2])
    with pytest.raises(ValueError, match="cannot be told apart"):
        fit_gains(han, twins, day, hour)


def test_a_charger_with_too_few_charging_hours_is_insufficient(year):
    hourly = hourly_energies(year["meter_values"], year["reference_readings"], year["chargers"])
    short = hourly.filter(
        pl.col("hour_start_utc") < hourly["hour_start_utc"].min() + timedelta(days=4)
    )

    result = estimate_gains(short, min_charging_hours=1000)

    assert set(result.chargers["verdict"]) == {"insufficient_data"}
    assert result.installations.is_empty()


def test_interpolation_rules():
    times = np.array([0.0, 3600.0, 7200.0, 20000.0, 30000.0, 40000.0])
    values = np.array([10.0, 12.0, 12.0, 12.0, 15.0, 1.0])
    grid = np.array([-10.0, 0.0, 1800.0, 5000.0, 15000.0, 25000.0, 35000.0, 50000.0])

    at = interpolate_register(times, values, grid, max_gap_s=5400)

    assert at[1] == 10.0 and at[2] == pytest.approx(11.0)
    assert at[3] == 12.0  # flat over a short gap
    assert at[4] == 12.0  # a long gap in which the register did not move is still known
    assert np.isnan(at[0]) and np.isnan(at[7])  # outside the readings
    assert np.isnan(at[5])  # a long gap in which energy flowed
    assert np.isnan(at[6])  # across a fall of the register
