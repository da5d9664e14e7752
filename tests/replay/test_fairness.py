"""Jain's index, max-min shortfall, per-user energy and waits."""

from __future__ import annotations

import polars as pl
import pytest

from tests.replay.builders import at, drawing, recording
from zapanalytics.replay.fairness import fairness_report, jain_index


@pytest.mark.parametrize(
    ("shares", "expected"), [([1, 1, 1], 1.0), ([1, 0, 0], 1 / 3), ([2, 1], 0.9), ([5], 1.0)]
)
def test_jain_index(shares, expected):
    assert jain_index(shares) == pytest.approx(expected)


def test_jain_index_of_nothing_is_undefined():
    assert jain_index([0.0, 0.0]) != jain_index([0.0, 0.0])  # NaN


def _unfair():
    rows = [
        ("b", 0, 708, 16), ("b", 0, 710, 3), *drawing("b", 1, 16, 16, 16),
        ("a", 10, 708, 22), ("a", 10, 710, 3), ("b", 10, 708, 10),
        *drawing("b", 10.1, 10, 10, 10), *drawing("a", 10.2, 22, 22, 22),
        ("a", 40, 710, 5), ("a", 40, 708, 0), *drawing("a", 40, 0, 0, 0),
    ]  # fmt: skip
    return recording(rows, [("sa", "a", 10, 60), ("sb", "b", 0, 60)], {"a": "RST", "b": "RST"})


def test_intervals_measure_the_unfair_split():
    report = fairness_report(_unfair())
    shared = report.intervals.filter(pl.col("active_sessions") == 2)
    assert shared["start_utc"].to_list() == [at(10)]
    assert shared["end_utc"].to_list() == [at(40)]
    # Shares by car maximum: recorded a 22/22, b 10/16; max-min fair a 16/22, b 16/16.
    assert shared["jain_index"][0] == pytest.approx(1.625**2 / (2 * (1 + 0.625**2)))
    fair_a = 16 / 22
    assert shared["jain_index_fair"][0] == pytest.approx((fair_a + 1) ** 2 / (2 * (fair_a**2 + 1)))
    assert shared["max_min_shortfall_a"][0] == pytest.approx(6.0)
    assert shared["total_shortfall_a"][0] == pytest.approx(6.0)
    summary = report.summary
    assert summary["max_min_shortfall_a"] == pytest.approx(6.0)
    assert summary["shortfall_time_share"] == pytest.approx(1.0)
    assert summary["mean_jain_index"] == pytest.approx(shared["jain_index"][0], abs=1e-4)


def test_waits_and_users():
    requested = pl.DataFrame({"session_id": ["sa", "sb"], "energy_requested_kwh": [5.0, 8.0]})
    report = fairness_report(_unfair(), requested=requested)
    waits = dict(zip(report.waits["session_id"], report.waits["wait_s"], strict=True))
    assert waits == {"sa": pytest.approx(12.0), "sb": pytest.approx(60.0)}
    users = {row["user_id"]: row for row in report.users.iter_rows(named=True)}
    assert users["user-sa"]["sessions_full"] == 1
    assert users["user-sb"]["sessions_left_charging"] == 1
    # Each session delivered 5 kWh (builders); b asked for 8.
    assert users["user-sb"]["energy_not_delivered_kwh"] == pytest.approx(3.0)
    assert users["user-sa"]["energy_not_delivered_kwh"] == pytest.approx(0.0)
