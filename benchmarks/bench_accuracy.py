"""Accuracy audit of one-minute readings: a year for 100 chargers by default.

Each charger has a one-minute register (1 Wh steps) and phase currents, and a MID
sub-meter read two seconds later (10 Wh steps); one charger in ten reads +1.8 % high.
The audit runs a charger at a time, as ``zapanalytics audit --db`` does, so memory
holds one charger's year at once. A second run gives the same chargers as Zaptec
reports them: the register once an hour (signed meter values), the currents when they
change, the sub-meter every 15 minutes; the registers are paired by interpolation.
Prints the time to pair and build windows, the rows per second and whether exactly the
faulty chargers fail.

Run: ``.venv/bin/python -m benchmarks.bench_accuracy [--quick] [--chargers 100] [--days 365]``
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from benchmarks.harness import Result, argument_parser, emit, peak_rss_mb, reset_peak_rss
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


def sparse(meter: pl.DataFrame, reference: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The same charger as Zaptec reports it: the register once an hour (signed values),
    its currents when they change; the sub-meter every 15 minutes."""
    registers = meter.filter(pl.col("ts_utc").dt.minute() == 0).select(
        "charger_id", "ts_utc", "energy_register_kwh", source=pl.lit("zaptec_ocmf")
    )
    changes = meter.filter(
        pl.col("current_l1_a").round(0) != pl.col("current_l1_a").round(0).shift(1)
    ).select(
        "charger_id",
        "ts_utc",
        "current_l1_a",
        "current_l2_a",
        "current_l3_a",
        source=pl.lit("zaptec_state"),
    )
    return (
        pl.concat([registers, changes], how="diagonal_relaxed"),
        reference.filter(pl.col("ts_utc").dt.minute() % 15 == 0),
    )


def run(chargers: pl.DataFrame, days: int, *, hourly: bool) -> dict:
    rng = np.random.default_rng(2025)
    faulty = {cid for i, cid in enumerate(chargers["charger_id"]) if i % 10 == 3}
    windows_s = 0.0
    rows = 0
    windows = []
    for charger_id in chargers["charger_id"]:
        meter, reference = charger_year(
            charger_id, 0.018 if charger_id in faulty else 0.0, days, rng
        )
        if hourly:
            meter, reference = sparse(meter, reference)
        began = time.perf_counter()
        windows.append(accuracy_windows(meter, reference, chargers))
        windows_s += time.perf_counter() - began
        rows += meter.height + reference.height
    began = time.perf_counter()
    all_windows = pl.concat(windows)
    verdicts = accuracy_verdicts(accuracy_bands(all_windows), chargers)
    judge_s = time.perf_counter() - began
    failed = set(verdicts.filter(pl.col("verdict") == "fail")["charger_id"])
    return {
        "rows": rows,
        "windows_s": windows_s,
        "judge_s": judge_s,
        "windows": all_windows.height,
        "exact": failed == faulty,
        "failed": len(failed),
        "passed": verdicts.filter(pl.col("verdict") == "pass").height,
        "chargers": verdicts.height,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=None)
    parser.add_argument("--days", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.chargers or (10 if args.quick else 100)
    days = args.days or (30 if args.quick else 365)
    chargers = pl.DataFrame(
        {"charger_id": [f"ZPR{i:06d}" for i in range(n)], "max_current_a": 32.0}
    )
    results = []
    for hourly, label in (
        (False, "one-minute charger and sub-meter registers"),
        (True, "hourly charger registers, 15-min sub-meter"),
    ):
        reset_peak_rss()
        outcome = run(chargers, days, hourly=hourly)
        total = outcome["windows_s"] + outcome["judge_s"]
        print(f"{n} chargers x {days} days, {label}: {outcome['rows']:,} rows")
        print(
            f"  pair + window, one charger a time {outcome['windows_s']:8.1f} s "
            f"({outcome['rows'] / outcome['windows_s']:,.0f} rows/s, {outcome['windows']:,} windows)"
        )
        print(f"  bands + verdicts                  {outcome['judge_s']:8.2f} s")
        print(
            f"  verdicts: {outcome['failed']} fail "
            f"({'exactly the +1.8 % meters' if outcome['exact'] else 'MISMATCH'}), "
            f"{outcome['passed']} pass, "
            f"{outcome['chargers'] - outcome['failed'] - outcome['passed']} inconclusive"
        )
        results.append(
            Result(
                workload=f"B4 accuracy audit, {n} chargers × {days} d, {label}",
                ours="accuracy_windows + bands + verdicts",
                ours_value=total,
                peak_rss_mb=peak_rss_mb(),
                agree=outcome["exact"],
                unit="s",
                notes=f"{outcome['rows']:,} rows ({outcome['rows'] / total:,.0f} rows/s), "
                f"{outcome['windows']:,} windows; {outcome['passed']} pass, "
                f"{outcome['failed']} fail (agree: exactly the +1.8 % meters fail); one run, "
                "no peer to alternate with",
            )
        )
    emit(results, args.result)
    return 0 if all(r.agree for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
