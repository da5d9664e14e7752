"""Energy per user per quarter-hour: the hour rule, pro rata spreading, local boundaries."""

from __future__ import annotations

import polars as pl
import pytest
from billing_helpers import details_frame, sessions_frame, utc

from zapanalytics.billing.energy import (
    month_bounds,
    session_interval_energy,
    user_interval_energy,
    with_local_bins,
)


def _by_quarter(frame: pl.DataFrame) -> dict:
    return {
        (row["user_id"], row["interval_start_utc"].strftime("%H:%M")): round(row["energy_kwh"], 9)
        for row in frame.with_columns(pl.col("user_id").cast(pl.String)).iter_rows(named=True)
    }


def test_delta_on_the_hour_belongs_to_the_hour_before():
    sessions = sessions_frame(
        [
            {
                "session_id": "s",
                "user_id": "u",
                "start_utc": utc(2025, 10, 14, 16, 2),
                "end_utc": utc(2025, 10, 14, 17, 30),
                "energy_kwh": 14.75,
            }
        ]
    )
    details = details_frame(
        [
            ("s", utc(2025, 10, 14, 16, 2), 0.0),
            ("s", utc(2025, 10, 14, 16, 15), 2.5),  # covers 16:02-16:15 → quarter 16:00
            (
                "s",
                utc(2025, 10, 14, 17, 0),
                8.25,
            ),  # covers 16:15-17:00 → 2.75 in each of three quarters
            ("s", utc(2025, 10, 14, 17, 30), 4.0),  # covers 17:00-17:30 → 2.0 + 2.0
        ]
    )
    energy = user_interval_energy(sessions, details)
    assert _by_quarter(energy) == {
        ("u", "16:00"): 2.5,
        ("u", "16:15"): 2.75,
        ("u", "16:30"): 2.75,
        ("u", "16:45"): 2.75,
        ("u", "17:00"): 2.0,
        ("u", "17:15"): 2.0,
    }
    hourly = (
        with_local_bins(energy, "Europe/Oslo")
        .group_by("hour_start")
        .agg(pl.col("energy_kwh").sum())
        .collect()
    )
    # The 8.25 kWh stamped 17:00 UTC (19:00 CEST) stays in the 18:00 local hour.
    assert dict(zip(hourly["hour_start"].dt.hour(), hourly["energy_kwh"], strict=True)) == {
        18: 10.75,
        19: 4.0,
    }


def test_hourly_details_spread_evenly_over_quarters_and_sessions_without_details_pro_rata():
    sessions = sessions_frame(
        [
            {
                "session_id": "go",
                "user_id": "a",
                "start_utc": utc(2025, 10, 14, 16),
                "end_utc": utc(2025, 10, 14, 17),
                "energy_kwh": 4.0,
            },
            # No details (older firmware): 3 kWh over 16:00-16:45 → 1 kWh per quarter.
            {
                "session_id": "old",
                "user_id": "b",
                "start_utc": utc(2025, 10, 14, 16),
                "end_utc": utc(2025, 10, 14, 16, 45),
                "energy_kwh": 3.0,
            },
            # Details that carry no energy count as none: 2 kWh over 16:00-16:30.
            {
                "session_id": "zero",
                "user_id": "c",
                "start_utc": utc(2025, 10, 14, 16),
                "end_utc": utc(2025, 10, 14, 16, 30),
                "energy_kwh": 2.0,
            },
            # A void session carries no bill.
            {
                "session_id": "void",
                "user_id": "d",
                "start_utc": utc(2025, 10, 14, 16),
                "end_utc": utc(2025, 10, 14, 17),
                "energy_kwh": 9.0,
                "is_void": True,
            },
        ]
    )
    details = details_frame(
        [
            ("go", utc(2025, 10, 14, 16), 0.0),
            ("go", utc(2025, 10, 14, 17), 4.0),
            ("zero", utc(2025, 10, 14, 16), 0.0),
            ("zero", utc(2025, 10, 14, 16, 30), 0.0),
            ("void", utc(2025, 10, 14, 17), 9.0),
        ]
    )
    got = _by_quarter(user_interval_energy(sessions, details))
    assert got == {
        ("a", "16:00"): 1.0,
        ("a", "16:15"): 1.0,
        ("a", "16:30"): 1.0,
        ("a", "16:45"): 1.0,
        ("b", "16:00"): 1.0,
        ("b", "16:15"): 1.0,
        ("b", "16:30"): 1.0,
        ("c", "16:00"): 1.0,
        ("c", "16:15"): 1.0,
    }


def test_unsorted_details_give_the_same_energy():
    sessions = sessions_frame(
        [
            {
                "session_id": "x",
                "user_id": "u",
                "start_utc": utc(2025, 3, 1, 10),
                "end_utc": utc(2025, 3, 1, 12),
                "energy_kwh": 6.0,
            },
            {
                "session_id": "y",
                "user_id": "v",
                "start_utc": utc(2025, 3, 1, 10),
                "end_utc": utc(2025, 3, 1, 11),
                "energy_kwh": 2.0,
            },
        ]
    )
    rows = [
        ("x", utc(2025, 3, 1, 10), 0.0),
        ("x", utc(2025, 3, 1, 11), 2.0),
        ("x", utc(2025, 3, 1, 12), 4.0),
        ("y", utc(2025, 3, 1, 10, 30), 1.0),
        ("y", utc(2025, 3, 1, 11), 1.0),
    ]
    ordered = user_interval_energy(sessions, details_frame(rows))
    shuffled = user_interval_energy(sessions, details_frame([rows[i] for i in (4, 1, 3, 0, 2)]))
    assert _by_quarter(ordered) == _by_quarter(shuffled)
    assert ordered["energy_kwh"].sum() == pytest.approx(8.0)


def test_session_across_local_midnight_splits_by_local_day():
    # 23:00-01:00 Oslo (CEST, UTC+2) = 21:00-23:00 UTC: 2 kWh on the 14th, 3 kWh on the 15th.
    sessions = sessions_frame(
        [
            {
                "session_id": "n",
                "user_id": "u",
                "start_utc": utc(2025, 10, 14, 21),
                "end_utc": utc(2025, 10, 14, 23),
                "energy_kwh": 5.0,
            }
        ]
    )
    details = details_frame(
        [
            ("n", utc(2025, 10, 14, 21), 0.0),
            ("n", utc(2025, 10, 14, 22), 2.0),
            ("n", utc(2025, 10, 14, 23), 3.0),
        ]
    )
    daily = (
        with_local_bins(user_interval_energy(sessions, details), "Europe/Oslo")
        .group_by("day")
        .agg(pl.col("energy_kwh").sum())
        .sort("day")
        .collect()
    )
    assert [(d.day, e) for d, e in daily.iter_rows()] == [(14, 2.0), (15, 3.0)]


def test_session_across_a_month_boundary_splits_at_local_midnight():
    # 22:00 Oslo 31 Oct → 02:00 Oslo 1 Nov (CET, UTC+1), no details: 8 kWh pro rata, 2 h in each month.
    sessions = sessions_frame(
        [
            {
                "session_id": "m",
                "user_id": "u",
                "start_utc": utc(2025, 10, 31, 21),
                "end_utc": utc(2025, 11, 1, 1),
                "energy_kwh": 8.0,
            }
        ]
    )
    details = details_frame([])
    october = month_bounds("2025-10", "Europe/Oslo")
    november = month_bounds("2025-11", "Europe/Oslo")
    assert october == (utc(2025, 9, 30, 22), utc(2025, 10, 31, 23))
    in_october = user_interval_energy(sessions, details, start_utc=october[0], end_utc=october[1])
    in_november = user_interval_energy(
        sessions, details, start_utc=november[0], end_utc=november[1]
    )
    assert in_october["energy_kwh"].sum() == pytest.approx(4.0)
    assert in_november["energy_kwh"].sum() == pytest.approx(4.0)
    months = with_local_bins(in_october, "Europe/Oslo").select("month").unique().collect()
    assert months["month"].to_list() == ["2025-10"]


def test_dst_fall_back_keeps_the_two_local_two_oclock_hours_apart():
    # 26 Oct 2025: 02:00-03:00 Oslo happens twice (00:00 UTC in CEST, 01:00 UTC in CET).
    sessions = sessions_frame(
        [
            {
                "session_id": "d",
                "user_id": "u",
                "start_utc": utc(2025, 10, 26, 0),
                "end_utc": utc(2025, 10, 26, 2),
                "energy_kwh": 3.0,
            }
        ]
    )
    details = details_frame(
        [
            ("d", utc(2025, 10, 26, 0), 0.0),
            ("d", utc(2025, 10, 26, 1), 1.0),
            ("d", utc(2025, 10, 26, 2), 2.0),
        ]
    )
    hourly = (
        with_local_bins(user_interval_energy(sessions, details), "Europe/Oslo")
        .group_by("hour_start")
        .agg(pl.col("energy_kwh").sum())
        .sort("hour_start")
        .collect()
    )
    assert hourly.height == 2
    assert hourly["hour_start"].dt.hour().to_list() == [2, 2]
    assert hourly["energy_kwh"].to_list() == [1.0, 2.0]
    assert [ts.utcoffset().total_seconds() / 3600 for ts in hourly["hour_start"]] == [2.0, 1.0]


def test_per_session_listing_keeps_the_owner():
    sessions = sessions_frame(
        [
            {
                "session_id": "s",
                "user_id": "u",
                "user_name": "Kari",
                "start_utc": utc(2025, 1, 5, 8),
                "end_utc": utc(2025, 1, 5, 9),
                "energy_kwh": 2.0,
            }
        ]
    )
    listing = session_interval_energy(sessions, details_frame([]))
    assert listing["session_id"].unique().to_list() == ["s"]
    assert listing["user_id"].unique().to_list() == ["u"]
    assert listing["energy_kwh"].sum() == pytest.approx(2.0)
