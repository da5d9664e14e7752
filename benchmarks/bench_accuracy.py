"""Accuracy audit of one-minute readings: a year for 100 chargers by default.

Each charger has a one-minute register (1 Wh steps) and phase currents, and a MID
sub-meter read two seconds later (10 Wh steps); one charger in ten reads +1.8 % high.
The audit runs a charger at a time, as ``zapanalytics audit --db`` does, so memory
holds one charger's year at once. Prints the time to build windows, the rows per second
and whether exactly the faulty chargers fail.

Run: ``.venv/bin/python benchmarks/bench_accuracy.py [--chargers 100] [--days 365]``
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from zapanalytics.audit.accuracy import accuracy_bands, accuracy_verdicts, accuracy_windows

START = datetime(2025, 1, 1, tzinfo=UTC)


def charger_year(
    charger_id: str, gain: float, days: int, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One charger's ``meter_values`` and its sub-meter's ``reference_readings``."""
    minutes = days * 1440
    current = np.zeros(minutes)
    starts = np.arange(days) * 1440 + rng.integers(16 * 60, 20 * 60, days)
    charging = rng.random(days) < 0.7
    for start, high, mid, tail in zip(
        starts[charging],
        rng.integers(60, 240, days)[charging],
        rng.integers(30, 120, days)[charging],
        rng.integers(30, 90, days)[charging],
        strict=True,
    ):
        current[start : start + high] = 30.0
        current[start + high : start + high + mid] = 12.0
        current[start + high + mid : start + high + mid + tail] = 2.0
    current = np.where(current > 0, current + rng.normal(0, 0.2, minutes), 0.0)
    true_kwh = 1000.0 + np.concatenate([[0.0], np.cumsum(3 * 230.0 * current / 60_000)[:-1]])
    lag_kwh = 3 * 230.0 * current / 3_600_000 * 2
    times = pl.datetime_range(
        START, START + timedelta(minutes=minutes - 1), "1m", time_zone="UTC", eager=True
    ).dt.cast_time_unit("us")
    meter = pl.DataFrame(
        {
            "charger_id": charger_id,
            "ts_utc": times,
            "source": "ocpp",
            "energy_register_kwh": np.floor(true_kwh * (1 + gain) * 1000) / 1000,
            "current_l1_a": current,
            "current_l2_a": current,
            "current_l3_a": current,
        }
    )
    reference = pl.DataFrame(
        {
            "meter_id": f"sub-{charger_id}",
            "ts_utc": times + timedelta(seconds=2),
            "kind": "submeter",
            "charger_id": charger_id,
            "energy_import_kwh": np.floor((true_kwh + lag_kwh) * 100) / 100,
        }
    )
    return meter, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    rng = np.random.default_rng(2025)
    chargers = pl.DataFrame(
        {"charger_id": [f"ZPR{i:06d}" for i in range(args.chargers)], "max_current_a": 32.0}
    )
    faulty = {cid for i, cid in enumerate(chargers["charger_id"]) if i % 10 == 3}
    generate_s = windows_s = 0.0
    rows = 0
    windows = []
    for charger_id in chargers["charger_id"]:
        t0 = time.perf_counter()
        meter, reference = charger_year(
            charger_id, 0.018 if charger_id in faulty else 0.0, args.days, rng
        )
        t1 = time.perf_counter()
        windows.append(accuracy_windows(meter, reference, chargers))
        t2 = time.perf_counter()
        generate_s += t1 - t0
        windows_s += t2 - t1
        rows += meter.height + reference.height
    t3 = time.perf_counter()
    all_windows = pl.concat(windows)
    verdicts = accuracy_verdicts(accuracy_bands(all_windows), chargers)
    judge_s = time.perf_counter() - t3
    failed = set(verdicts.filter(pl.col("verdict") == "fail")["charger_id"])
    passed = verdicts.filter(pl.col("verdict") == "pass").height
    print(
        f"{args.chargers} chargers x {args.days} days of one-minute readings: "
        f"{rows:,} rows (charger + sub-meter)"
    )
    print(f"generate (not part of the audit)   {generate_s:8.1f} s")
    print(
        f"align + window, one charger a time {windows_s:8.1f} s  "
        f"({rows / windows_s:,.0f} rows/s, {all_windows.height:,} windows)"
    )
    print(f"bands + verdicts                   {judge_s:8.2f} s")
    print(
        f"verdicts: {len(failed)} fail ({'exactly the +1.8 % meters' if failed == faulty else 'MISMATCH'}),"
        f" {passed} pass, {verdicts.height - len(failed) - passed} inconclusive"
    )


if __name__ == "__main__":
    main()
