"""The peer: the same sessions through ACN-Sim agree on delivered energy where the
policies coincide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from zapanalytics.replay.acn import acnsim_status, compare_with_acnsim
from zapanalytics.replay.demands import LimitSeries

available, why = acnsim_status()
needs_acnsim = pytest.mark.skipif(not available, reason=why)

UTC_US = pl.Datetime("us", "UTC")
T0 = datetime(2025, 10, 6, 5, 0, tzinfo=UTC)
CHARGERS = pl.DataFrame(
    {
        "charger_id": ["c1", "c2", "c3", "c4", "c5"],
        "phase_rotation": ["RST", "STR", "TRS", "RST", "STR"],
        "max_current_a": [32.0] * 5,
    }
)


def _sessions():
    """Morning arrivals at a workplace: three-phase 16 A and single-phase 32 A cars."""
    rows = [
        ("a", "c1", 0, 240, 3, 16.0, 14.0),
        ("b", "c2", 7, 200, 1, 32.0, 12.0),
        ("c", "c3", 12, 300, 3, 16.0, 20.0),
        ("d", "c4", 25, 150, 3, 16.0, 9.0),
        ("e", "c5", 31, 260, 1, 32.0, 15.0),
    ]
    return pl.DataFrame(
        {
            "session_id": [r[0] for r in rows],
            "user_id": [r[0] for r in rows],
            "charger_id": [r[1] for r in rows],
            "arrival_utc": pl.Series([T0 + timedelta(minutes=r[2]) for r in rows], dtype=UTC_US),
            "departure_utc": pl.Series([T0 + timedelta(minutes=r[3]) for r in rows], dtype=UTC_US),
            "phases": [r[4] for r in rows],
            "car_max_current_a": [r[5] for r in rows],
            "energy_requested_kwh": [r[6] for r in rows],
            "min_current_a": [6.0] * len(rows),
        }
    )


def _limits(amps):
    return LimitSeries(np.array([T0.timestamp()]), np.full((1, 3), amps), np.zeros((1, 3)))


@needs_acnsim
def test_uncongested_both_deliver_every_request():
    for comparison in compare_with_acnsim(_sessions(), CHARGERS, _limits(200.0)):
        assert comparison.skipped is None
        table = comparison.sessions
        assert table["ours_kwh"].to_list() == pytest.approx(table["energy_requested_kwh"].to_list())
        # ACN-Sim's last period rounds the pilot down to a whole ampere.
        assert table["acn_kwh"].to_list() == pytest.approx(table["ours_kwh"].to_list(), abs=0.02)


@needs_acnsim
def test_congested_equal_share_and_first_come_agree_with_acnsim():
    comparisons = compare_with_acnsim(_sessions(), CHARGERS, _limits(32.0), period_min=5.0)
    assert [c.policy for c in comparisons] == ["equal_share", "first_come"]
    for comparison in comparisons:
        assert comparison.skipped is None
        table = comparison.sessions
        # Congestion: someone leaves short in both.
        assert (table["ours_kwh"] < table["energy_requested_kwh"] - 0.1).any()
        # Whole-ampere pilots once a minute against continuous allocation at each event.
        assert comparison.relative_difference < 0.01
        gap = (table["ours_kwh"] - table["acn_kwh"]).abs() / table["energy_requested_kwh"]
        assert gap.max() < 0.05


@needs_acnsim
def test_it_sites_are_skipped_with_the_reason():
    comparisons = compare_with_acnsim(_sessions(), CHARGERS, _limits(32.0), network_type="IT")
    assert all(c.skipped and "phase angle" in c.skipped for c in comparisons)
    assert all(c.sessions.is_empty() for c in comparisons)


def test_a_missing_acnsim_is_a_stated_skip_not_an_error():
    comparisons = compare_with_acnsim(_sessions(), CHARGERS, _limits(32.0), network_type="TN")
    if available:
        assert all(c.skipped is None for c in comparisons)
    else:
        assert all(c.skipped and why in c.skipped for c in comparisons)
