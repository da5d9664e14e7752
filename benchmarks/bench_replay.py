"""B3: replay a year of 100 chargers, and the same sessions through ACN-Sim.

Setup (not timed): ``firmware_ref`` simulates a housing co-op with 100 chargers for a year,
one of which ignores its allocation for 20 minutes (:mod:`benchmarks.datasets`, shared with
the other workloads of a run); the Zaptec API dump it writes is ingested into a DuckDB store
through the ingestion door.

Timed, alternating, medians of ``--repeats``:

* **replay**: ``load_recording`` from the store plus ``run_replay`` (reference-allocator
  replay, conformance, fairness, the recorded and baseline scenarios) — target < 30 s.
  It agrees when the findings are exactly the injected fault: one over-draw on the faulty
  charger and the line overload it caused.
* **sessions through a policy**: the recorded sessions through our event-driven what-if
  (``simulate_sessions``) with ``equal_share`` and ``first_come``, against ACN-Sim's
  ``RoundRobin`` and ``SortedSchedulingAlgo`` (first come, first served) on the same
  sessions (one-minute periods). ACN-Sim steps every minute and takes hours for a year, so
  it runs on the first ``--acn-days`` days of arrivals and its time is scaled to the year
  by the number of sessions; ours runs the whole year. Agreement: delivered energy on the
  subset within 1 %. Target ≥ 20×.

Run: ``.venv/bin/python -m benchmarks.bench_replay [--quick] [--acn-days 1] [--repeats N]``
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl

from benchmarks.datasets import YearDump, ingested_store, year_dump
from benchmarks.harness import Result, alternate, argument_parser, emit, peak_rss_mb, reset_peak_rss
from zapanalytics.replay import load_recording, run_replay
from zapanalytics.replay.acn import acnsim_status, compare_with_acnsim, on_period_grid
from zapanalytics.replay.demands import site_limits
from zapanalytics.replay.power import effective_voltage
from zapanalytics.replay.whatif import scenario_sessions, simulate_sessions
from zapanalytics.store import read_only_store

REPLAY_TARGET_S = 30.0
PEER_TARGET_RATIO = 20.0


def build_store(root: Path, chargers: int, days: int) -> tuple[Path, YearDump]:
    """The co-op's Zaptec dump ingested into a store (both shared with the other workloads)."""
    dump = year_dump(chargers, days, root)
    database, _ = ingested_store(dump)
    return database, dump


def replay_once(database: Path):
    con = read_only_store(database)
    try:
        recording = load_recording(con)
    finally:
        con.close()
    return run_replay(recording)


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--acn-days", type=float, default=1.0, help="ACN-Sim subset [days]")
    args = parser.parse_args(argv)
    chargers, days = (20, 30) if args.quick else (100, 365)
    acn_days = min(args.acn_days, 0.5) if args.quick else args.acn_days
    rows: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as tmp:
        began = time.perf_counter()
        database, dump = build_store(Path(tmp), chargers, days)
        print(f"setup: {dump.described}, simulated, dumped and ingested (or taken from the "
              f"run's cache) in {time.perf_counter() - began:.0f} s")  # fmt: skip

        timing = alternate({"replay": lambda: replay_once(database)}, repeats=args.repeats)[
            "replay"
        ]
        result = timing.value
        kinds = sorted({f.kind for f in result.findings})
        blamed = {f.charger_id for f in result.findings}
        agree = (
            dump.fault_triggered
            and kinds == ["over_draw", "phase_overload"]
            and blamed == {dump.fault_charger_id}
        )
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings_s.items())
        print(f"replay: {timing.median_s:.1f} s median of {timing.runs_s}; last run: {steps}; "
              f"{len(result.findings)} findings ({', '.join(kinds) or 'none'})")  # fmt: skip
        rows.append(
            Result(
                workload=f"B3 replay {chargers} chargers × {days} d",
                ours="load + conformance + fairness + baseline",
                ours_value=timing.median_s,
                peak_rss_mb=timing.peak_rss_mb,
                agree=agree,
                target=f"< {REPLAY_TARGET_S:g} s",
                met=timing.median_s < REPLAY_TARGET_S,
                notes=f"{result.recording.sessions.height} sessions; {steps}",
            )
        )
        rows.extend(
            _peer_rows(
                result.recording, acn_days, args.repeats, f"{chargers} chargers × {days} d"
            )
        )
    emit(rows, args.result)


def _peer_rows(recording, acn_days: float, repeats: int, scale: str) -> list[Result]:
    ok, reason = acnsim_status()
    if not ok:
        print(f"ACN-Sim skipped: {reason}")
        return [Result(workload="B3 sessions through a policy", ours="what-if", ours_value=0.0,
                       comparator="ACN-Sim", notes=f"skipped: {reason}")]  # fmt: skip
    sessions = scenario_sessions(recording)
    limits = site_limits(recording)
    volts = effective_voltage(recording)
    first = recording.start_utc
    subset = sessions.filter(pl.col("arrival_utc") < first + timedelta(days=acn_days))
    year = on_period_grid(sessions, first, 1.0).with_columns(
        (pl.col("car_max_current_a") + 1e-9).floor(), (pl.col("min_current_a") - 1e-9).ceil()
    )
    rows = []
    for policy, algorithm in (("equal_share", "RoundRobin"), ("first_come", "FCFS")):
        full = alternate(
            {"ours": lambda p=policy: simulate_sessions(
                year, recording.chargers, limits, network_type=recording.installation.network_type,
                policy=p, dynamic_phase_selection=False, voltage_v=volts)},
            repeats=repeats,
        )["ours"]  # fmt: skip
        reset_peak_rss()
        comparison = compare_with_acnsim(subset, recording.chargers, limits,
                                         network_type=recording.installation.network_type,
                                         policies=(policy,), voltage_v=volts)[0]  # fmt: skip
        acn_rss = peak_rss_mb()
        n_subset = comparison.sessions.height
        scaled = comparison.acn_s * year.height / max(n_subset, 1)
        relative = comparison.relative_difference
        print(f"{policy}: ours {full.median_s:.2f} s for {year.height} sessions; ACN-Sim "
              f"{algorithm} {comparison.acn_s:.1f} s for {n_subset} sessions ({acn_days:g} days) "
              f"-> {scaled:,.0f} s scaled to all sessions; subset ours {comparison.ours_s:.3f} s; "
              f"delivered {comparison.ours_total_kwh:.1f} vs {comparison.acn_total_kwh:.1f} kWh")  # fmt: skip
        rows.append(
            Result(
                workload=f"B3 sessions through {policy}, {scale}",
                ours="what-if (event-driven)",
                ours_value=full.median_s,
                comparator=f"ACN-Sim {algorithm} (scaled)",
                comparator_value=scaled,
                peak_rss_mb=max(full.peak_rss_mb, acn_rss),
                agree=relative is not None and relative < 0.01,
                target=f"≥ {PEER_TARGET_RATIO:g}× ACN-Sim",
                met=full.median_s > 0 and scaled / full.median_s >= PEER_TARGET_RATIO,
                notes=(
                    f"ACN-Sim ran the first {acn_days:g} days ({n_subset} sessions, one-minute "
                    f"periods) in {comparison.acn_s:.1f} s, scaled by sessions to "
                    f"{year.height}; on that subset ours took {comparison.ours_s:.3f} s "
                    f"({comparison.acn_s / max(comparison.ours_s, 1e-9):,.0f}x); delivered "
                    f"energy differs by {100 * (relative or 0):.2f} %"
                ),
            )
        )
    return rows


if __name__ == "__main__":
    main()
