"""Step frames: hold, combine, runs, merging and summing over keys."""

from __future__ import annotations

import polars as pl
import pytest

from tests.replay.builders import at
from zapanalytics.replay.intervals import combine_steps, hold_steps, runs, sum_over_keys

UTC_US = pl.Datetime("us", "UTC")


def _points(rows):
    return pl.DataFrame(
        {
            "key": [r[0] for r in rows],
            "ts_utc": pl.Series([at(r[1]) for r in rows], dtype=UTC_US),
            "value": [r[2] for r in rows],
        }
    )


def test_hold_steps_forward_fills_and_ends_at_the_next_change():
    steps = hold_steps(_points([("a", 0, 1.0), ("a", 10, None), ("a", 20, 3.0), ("b", 5, 7.0)]),
                       by=["key"], end_utc=at(30))  # fmt: skip
    a = steps.filter(pl.col("key") == "a")
    assert a["value"].to_list() == [1.0, 1.0, 3.0]
    assert a["end_utc"].to_list() == [at(10), at(20), at(30)]
    assert steps.filter(pl.col("key") == "b")["end_utc"].to_list() == [at(30)]


def test_combine_steps_splits_at_the_union_of_change_points():
    left = hold_steps(_points([("a", 0, 1.0), ("a", 10, 2.0)]), by=["key"], end_utc=at(20))
    right = hold_steps(_points([("a", 5, 9.0)]), by=["key"], end_utc=at(20)).rename(
        {"value": "other"}
    )
    merged = combine_steps(left, right, by=["key"])
    assert merged["start_utc"].to_list() == [at(0), at(5), at(10)]
    assert merged["value"].to_list() == [1.0, 1.0, 2.0]
    assert merged["other"].to_list() == [None, 9.0, 9.0]


def test_runs_drop_transients_then_merge_close_ones():
    steps = hold_steps(
        _points([("a", 0, 0.0), ("a", 1, 5.0), ("a", 1.1, 0.0), ("a", 3, 5.0), ("a", 6, 0.0),
                 ("a", 8, 6.0), ("a", 10, 0.0), ("a", 40, 4.0), ("a", 45, 0.0)]),
        by=["key"], end_utc=at(60),
    )  # fmt: skip
    found = runs(steps, pl.col("value") > 1.0, by=["key"],
                 aggregations=[pl.col("value").max().alias("peak")],
                 min_duration_s=15.0, merge_gap_s=600.0)  # fmt: skip
    # The 6-second blip is dropped; 3-6 and 8-10 min merge; 40-45 min is separate (30 min apart).
    assert found["start_utc"].to_list() == [at(3), at(40)]
    assert found["end_utc"].to_list() == [at(10), at(45)]
    assert found["peak"].to_list() == [6.0, 4.0]
    assert found["duration_s"].to_list() == [420.0, 300.0]


def test_sum_over_keys_counts_gaps_as_zero():
    steps = pl.DataFrame(
        {
            "key": ["a", "a", "b"],
            "start_utc": pl.Series([at(0), at(20), at(5)], dtype=UTC_US),
            "end_utc": pl.Series([at(10), at(30), at(25)], dtype=UTC_US),
            "x": [1.0, 2.0, 10.0],
        }
    )
    total = sum_over_keys(steps, ["x"], by=["key"], start_utc=at(0), end_utc=at(40))
    assert total["start_utc"].to_list() == [at(0), at(5), at(10), at(20), at(25), at(30)]
    assert total["x"].to_list() == pytest.approx([1.0, 11.0, 10.0, 12.0, 2.0, 0.0])
    assert total["end_utc"].to_list()[-1] == at(40)
