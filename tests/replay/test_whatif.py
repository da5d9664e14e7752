"""What-if simulation: exact energies, queues, capacity steps on a DST weekend, and the
recorded sessions under other fuses, charger counts and policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from tests.replay.conftest import recording_from_simulation
from zapanalytics.replay.demands import LimitSeries
from zapanalytics.replay.power import capacity_steps, hourly_energy
from zapanalytics.replay.whatif import Scenario, compare_scenarios, simulate_sessions

UTC_US = pl.Datetime("us", "UTC")
T0 = datetime(2025, 3, 29, 18, 0, tzinfo=UTC)


def _limits(amps: float) -> LimitSeries:
    return LimitSeries(np.array([T0.timestamp()]), np.full((1, 3), amps), np.zeros((1, 3)))


def _sessions(rows):
    """(session, charger, arrival h, departure h, kWh) of single-phase 16 A cars."""
    return pl.DataFrame(
        {
            "session_id": [r[0] for r in rows],
            "user_id": [r[0] for r in rows],
            "charger_id": [r[1] for r in rows],
            "arrival_utc": pl.Series([T0 + timedelta(hours=r[2]) for r in rows], dtype=UTC_US),
            "departure_utc": pl.Series([T0 + timedelta(hours=r[3]) for r in rows], dtype=UTC_US),
            "energy_requested_kwh": [r[4] for r in rows],
            "phases": [1] * len(rows),
            "car_max_current_a": [16.0] * len(rows),
            "min_current_a": [6.0] * len(rows),
        }
    )


CHARGERS = pl.DataFrame(
    {"charger_id": ["c1", "c2"], "phase_rotation": ["RST", "RST"], "max_current_a": [32.0, 32.0]}
)
ONE_HOUR_AT_16A_KWH = 16 * 230 / 1000  # 3.68


@pytest.mark.parametrize(
    ("policy", "full_hours"), [("equal_share", [2.0, 2.0]), ("first_come", [1.0, 2.0])]
)
def test_two_cars_on_one_line(policy, full_hours):
    sessions = _sessions([("s1", "c1", 0, 3, ONE_HOUR_AT_16A_KWH),
                          ("s2", "c2", 0, 3, ONE_HOUR_AT_16A_KWH)])  # fmt: skip
    out, load = simulate_sessions(sessions, CHARGERS, _limits(16.0), policy=policy,
                                  dynamic_phase_selection=False)  # fmt: skip
    hours = [(t - T0).total_seconds() / 3600 for t in out.sort("session_id")["full_utc"]]
    assert hours == pytest.approx(full_hours)
    assert out["energy_not_delivered_kwh"].to_list() == pytest.approx([0.0, 0.0])
    assert load["chargers_l1_a"].max() == pytest.approx(16.0)
    assert load["chargers_l2_a"].max() == 0.0


def test_first_come_leaves_the_second_car_short_when_it_leaves_early():
    sessions = _sessions([("s1", "c1", 0, 3, ONE_HOUR_AT_16A_KWH),
                          ("s2", "c2", 0, 1.5, ONE_HOUR_AT_16A_KWH)])  # fmt: skip
    out, _ = simulate_sessions(sessions, CHARGERS, _limits(16.0), policy="first_come",
                               dynamic_phase_selection=False)  # fmt: skip
    short = out.filter(pl.col("session_id") == "s2").row(0, named=True)
    assert short["energy_delivered_kwh"] == pytest.approx(ONE_HOUR_AT_16A_KWH / 2)
    assert short["energy_not_delivered_kwh"] == pytest.approx(ONE_HOUR_AT_16A_KWH / 2)
    assert short["wait_s"] == pytest.approx(3600.0)


def test_fewer_chargers_queue_the_next_car():
    sessions = _sessions([("s1", "c1", 0, 1, 1.0), ("s2", "c2", 0.5, 3, 1.0)])
    out, _ = simulate_sessions(sessions, CHARGERS.head(1), _limits(32.0), policy="reference")
    second = out.filter(pl.col("session_id") == "s2").row(0, named=True)
    assert second["charger_id"] == "c1"
    assert second["plugged_utc"] == T0 + timedelta(hours=1)
    assert second["wait_s"] == pytest.approx(1800.0)
    assert second["energy_not_delivered_kwh"] == pytest.approx(0.0)


def test_hourly_energy_is_exact():
    load = pl.DataFrame(
        {
            "start_utc": pl.Series([T0 + timedelta(minutes=30)], dtype=UTC_US),
            "end_utc": pl.Series([T0 + timedelta(hours=2, minutes=15)], dtype=UTC_US),
            "power_w": [7360.0],
        }
    )
    hourly = hourly_energy(load)
    assert hourly["hour_utc"].to_list() == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert hourly["energy_kwh"].to_list() == pytest.approx([3.68, 7.36, 1.84])


def test_capacity_step_uses_local_days_across_the_dst_change():
    # Oslo switches to summer time on 30 March 2025; 23:00 UTC on the 29th is already the
    # 30th locally, so the two evening hours count on two different days.
    hourly = pl.DataFrame(
        {
            "hour_utc": pl.Series(
                [
                    datetime(2025, 3, 29, 22, tzinfo=UTC),
                    datetime(2025, 3, 29, 23, tzinfo=UTC),
                    datetime(2025, 3, 31, 10, tzinfo=UTC),
                ],
                dtype=UTC_US,
            ),  # fmt: skip
            "energy_kwh": [11.0, 12.0, 4.0],
        }
    )
    steps = capacity_steps(hourly, "Europe/Oslo", prices_nok_per_month=[10 * k for k in range(10)])
    row = steps.row(0, named=True)
    assert row["month"] == "2025-03"
    assert row["top3_mean_kw"] == pytest.approx(9.0)
    assert (row["step_index"], row["step_label"], row["charge_nok"]) == (2, "5-10 kW", 20.0)


def test_scenarios_side_by_side_on_a_recording(healthy_tn):
    recording = recording_from_simulation(healthy_tn)
    results = compare_scenarios(
        recording,
        [Scenario("small fuse", main_fuse_a=40.0), Scenario("big fuse", main_fuse_a=100.0),
         Scenario("four chargers", n_chargers=4), Scenario("first come", policy="first_come")],
    )  # fmt: skip
    by_name = {r.scenario.name: r.summary for r in results}
    recorded, baseline = by_name["recorded"], by_name["baseline"]
    # The reference allocator on the recorded site gives back what was delivered.
    assert baseline["energy_delivered_kwh"] == pytest.approx(recorded["energy_delivered_kwh"],
                                                             rel=0.005)  # fmt: skip
    assert baseline["peak_line_current_a"] <= 32.0 + 1e-6
    # The workplace fuse is 63 A with 32 A available: 40 A leaves 9 A, 100 A leaves 69 A.
    assert by_name["small fuse"]["peak_line_current_a"] <= 9.0 + 1e-6
    assert by_name["small fuse"]["energy_not_delivered_kwh"] > baseline["energy_not_delivered_kwh"]
    assert by_name["big fuse"]["peak_line_current_a"] > 32.0
    assert by_name["big fuse"]["energy_not_delivered_kwh"] <= baseline["energy_not_delivered_kwh"]
    assert by_name["four chargers"]["chargers"] == 4
    assert by_name["four chargers"]["max_wait_s"] > baseline["max_wait_s"]
    assert by_name["first come"]["energy_requested_kwh"] == baseline["energy_requested_kwh"]
