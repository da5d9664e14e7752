"""Registers read at different rates: interpolation, its stated uncertainty, and the
accuracy audit on sparse registers (hourly charger readings, hourly references)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from audit_helpers import build_metered

from zapanalytics.audit.accuracy import accuracy_bands, accuracy_verdicts, audit_accuracy
from zapanalytics.audit.accuracy_pairing import StepProfile, register_at
from zapanalytics.audit.evidence import on_cloud_time

GAINS = {"ZPR-ok": 0.0, "ZPR-high": 0.018, "ZPR-low": -0.003}


def test_a_register_is_exact_at_its_readings_and_linear_between():
    times = np.array([0.0, 900.0, 1800.0])
    values = np.array([10.0, 12.0, 12.0])

    at = register_at(
        times, values, np.array([0.0, 450.0, 1800.0]), resolution_kwh=0.01, max_gap_s=3600
    )

    assert at.value_kwh.tolist() == [10.0, 11.0, 12.0]
    assert at.var_shape_kwh2[0] == 0 and at.var_shape_kwh2[2] == 0
    assert at.var_resolution_kwh2[0] == pytest.approx(0.01**2 / 12)
    # Half-way, two rounding errors of half weight each: half the variance of one.
    assert at.var_resolution_kwh2[1] == pytest.approx(0.01**2 / 24)


def test_a_constant_power_makes_the_line_exact_and_a_step_is_bounded():
    # A quarter-hour read at its ends: either 8/3 kW throughout, or nothing until 300 s
    # and 4 kW from then on; the register rises 2/3 kWh either way.
    times = np.array([0.0, 900.0])
    values = np.array([100.0, 100.0 + 2 / 3])
    steady = StepProfile.from_samples(np.array([-60.0]), np.array([8 / 3]))
    stepped = StepProfile.from_samples(np.array([-60.0, 300.0]), np.array([0.0, 4.0]))
    at_s = np.array([150.0, 300.0, 600.0])

    flat = register_at(times, values, at_s, resolution_kwh=0.001, max_gap_s=3600, power=steady)
    step = register_at(times, values, at_s, resolution_kwh=0.001, max_gap_s=3600, power=stepped)

    assert np.all(flat.var_shape_kwh2 == 0)
    # The true register with the step: nothing before 300 s, then 4 kW.
    true_kwh = 100.0 + np.clip(at_s - 300.0, 0, None) / 3600 * 4.0
    error = np.abs(step.value_kwh - true_kwh)
    bound = np.sqrt(3 * step.var_shape_kwh2)  # the rectangular bound itself
    assert np.all(error <= bound + 1e-12)
    assert error.max() > 0.05  # a real error, which the bound covers
    # The worst case (all of the change right at the instant) reaches the bound.
    assert error[1] == pytest.approx(bound[1], rel=0.35)


def test_without_power_observations_the_neighbouring_averages_bound_the_shape():
    times = np.array([0.0, 900.0, 1800.0, 2700.0])
    values = np.array([0.0, 0.0, 2.0, 4.0])  # idle, then 8 kW

    at = register_at(times, values, np.array([1350.0, 2250.0]), resolution_kwh=0.01, max_gap_s=900)

    # Between idle and 8 kW the change may lie anywhere: bounded by 8 kW. An interval
    # whose neighbours average the same as it is taken as steady.
    assert np.sqrt(3 * at.var_shape_kwh2[0]) == pytest.approx(0.25 * 900 / 3600 * 8.0)
    assert at.var_shape_kwh2[1] == 0


def test_unknown_outside_across_long_gaps_with_energy_and_across_resets():
    times = np.array([0.0, 900.0, 9000.0, 9900.0, 10800.0])
    values = np.array([5.0, 6.0, 9.0, 1.0, 1.0])

    at = register_at(
        times,
        values,
        np.array([-1.0, 450.0, 5000.0, 9500.0, 10000.0]),
        resolution_kwh=0.01,
        max_gap_s=3600,
    )

    assert np.isnan(at.value_kwh[[0, 2, 3]]).all()
    assert at.value_kwh[1] == pytest.approx(5.5) and at.value_kwh[4] == 1.0


def test_step_profiles_hold_values_between_observations():
    profile = StepProfile.from_samples(
        np.array([0.0, 100.0, 200.0, 300.0]), np.array([0, 16, 8, 0])
    )

    low, high = profile.range_over(np.array([50.0, 150.0, 350.0]), np.array([150.0, 160.0, 400.0]))
    mean, lowest, seconds = profile.held_over(np.array([50.0]), np.array([250.0]), above=0.5)

    assert low.tolist() == [0.0, 16.0, 0.0] and high.tolist() == [16.0, 16.0, 0.0]
    # 100 s at 16 A and 50 s at 8 A while drawing current.
    assert seconds[0] == pytest.approx(150.0)
    assert mean[0] == pytest.approx((100 * 16 + 50 * 8) / 150)
    assert lowest[0] == 8.0


def _hourly(meter_values: pl.DataFrame) -> pl.DataFrame:
    """The registers read once an hour (a minute past), the currents still every minute
    as state rows of their own source (as Zaptec reports them)."""
    registers = meter_values.filter(
        (pl.col("ts_utc").dt.minute() == 1) & (pl.col("ts_utc").dt.second() == 0)
    ).select("charger_id", "ts_utc", "energy_register_kwh", source=pl.lit("zaptec_ocmf"))
    states = meter_values.select(
        "charger_id",
        "ts_utc",
        "current_l1_a",
        "current_l2_a",
        "current_l3_a",
        source=pl.lit("zaptec_state"),
    )
    return pl.concat([registers, states], how="diagonal_relaxed")


@pytest.fixture(scope="module")
def metered():
    return build_metered(gains=GAINS, days=6, seed=5)


def _truth(charger_id: str) -> float:
    return GAINS[charger_id] * 100


def _covered(windows: pl.DataFrame, sigmas: float = 3.0) -> bool:
    total = (
        windows["u_resolution_pct"] ** 2
        + windows["u_interpolation_pct"] ** 2
        + windows["u_timing_pct"] ** 2
    ).sqrt()
    truth = windows["charger_id"].replace_strict(GAINS, return_dtype=pl.Float64) * 100
    return bool(((windows["error_pct"] - truth).abs() <= sigmas * total).all())


def test_hourly_charger_registers_against_a_minute_reference(metered):
    audit = audit_accuracy(
        _hourly(metered["meter_values"]), metered["reference_readings"], metered["chargers"]
    )

    verdicts = dict(audit.chargers.select("charger_id", "verdict").iter_rows())
    assert verdicts == {"ZPR-high": "fail", "ZPR-low": "pass", "ZPR-ok": "pass"}
    windows = audit.windows
    assert set(windows["source"]) == {"zaptec_ocmf"}
    assert windows["charger_steps"].min() >= 100 and windows["reference_steps"].min() >= 100
    # Hourly readings mid-charge change power inside the reference's minute only at
    # stage changes; the stated uncertainty covers every window's error.
    assert _covered(windows)
    for row in audit.bands.iter_rows(named=True):
        assert abs(row["error_pct"] - _truth(row["charger_id"])) <= row["expanded_uncertainty_pct"]


def test_a_dense_charger_against_an_hourly_reference_is_paired_the_other_way(metered):
    reference = metered["reference_readings"].filter(
        (pl.col("ts_utc").dt.minute() == 0) & (pl.col("ts_utc").dt.second() == 2)
    )

    audit = audit_accuracy(metered["meter_values"], reference, metered["chargers"])

    verdicts = dict(audit.chargers.select("charger_id", "verdict").iter_rows())
    assert verdicts["ZPR-high"] == "fail" and verdicts["ZPR-ok"] == "pass"
    # Windows begin and end at the reference's reading times.
    assert audit.windows["start_utc"].dt.minute().unique().to_list() == [0]
    assert _covered(audit.windows)


def test_windows_avoid_edges_where_the_power_changes(metered):
    hourly = _hourly(metered["meter_values"])

    windows = audit_accuracy(hourly, metered["reference_readings"], metered["chargers"]).windows

    # Each window's interpolation share stays within the 0.2 % target with the rest.
    combined = (
        windows["u_resolution_pct"] ** 2
        + windows["u_interpolation_pct"] ** 2
        + windows["u_timing_pct"] ** 2
    ).sqrt()
    assert combined.max() <= 0.2 + 1e-9


def test_a_band_with_too_few_windows_is_shown_but_does_not_decide():
    def window(band: str, error: float) -> dict:
        return {
            "charger_id": "ZPR-x",
            "meter_id": "m",
            "source": "ocpp",
            "band": band,
            "start_utc": datetime(2025, 10, 1, tzinfo=UTC),
            "end_utc": datetime(2025, 10, 1, 1, tzinfo=UTC),
            "intervals": 10,
            "charger_energy_kwh": 10.0 * (1 + error / 100),
            "reference_energy_kwh": 10.0,
            "charger_steps": 10000.0,
            "reference_steps": 1000.0,
            "mean_current_a": 16.0 if band == "10_to_50pct_imax" else 30.0,
            "min_current_a": 16.0,
            "imax_a": 32.0,
            "error_pct": error,
            "u_resolution_pct": 0.05,
            "u_interpolation_pct": 0.0,
            "u_timing_pct": 0.01,
            "charger_q_kwh": 0.001,
            "reference_q_kwh": 0.01,
        }

    rows = [window("10_to_50pct_imax", e) for e in (0.1, -0.1, 0.05, 0.0)]
    lone = [window("above_50pct_imax", 0.1)]
    verdicts = accuracy_verdicts(accuracy_bands(pl.DataFrame(rows + lone)))
    row = verdicts.row(0, named=True)
    assert row["verdict"] == "pass"
    assert "above_50pct_imax" in row["evidence"] and "inconclusive" in row["evidence"]

    only_lone = accuracy_verdicts(accuracy_bands(pl.DataFrame(lone)))
    assert only_lone["verdict"].to_list() == ["inconclusive"]


def test_registers_of_a_drifting_clock_go_onto_the_cloud_time():
    start = datetime(2025, 10, 1, tzinfo=UTC)
    offsets = pl.DataFrame(
        {
            "charger_id": ["a", "a"],
            "ts_utc": [start, start + timedelta(days=10)],
            "offset_s": [90.0, 130.0],
        }
    ).with_columns(pl.col("ts_utc").cast(pl.Datetime("us", "UTC")))
    frame = pl.DataFrame(
        {
            "charger_id": ["a", "a", "b"],
            "ts_utc": [start + timedelta(days=5), start + timedelta(days=20), start],
        }
    ).with_columns(pl.col("ts_utc").cast(pl.Datetime("us", "UTC")))

    moved = on_cloud_time(frame, offsets).sort("charger_id", "ts_utc")

    assert moved["ts_utc"].to_list() == [
        start + timedelta(days=5) - timedelta(seconds=110),  # between measurements
        start + timedelta(days=20) - timedelta(seconds=130),  # held beyond them
        start,  # a charger whose clock is right is left alone
    ]
