"""Shared benchmark plumbing: alternating repetitions, medians, peak RSS, result rows.

Each ``benchmarks/bench_*.py`` defines ``main(argv)`` and, when given ``--result FILE``,
writes its :class:`Result` rows there as JSON for ``benchmarks/run.py`` to collect.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter for this process (Linux ≥ 4.0; no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """Peak resident set size of this process since the last reset [MiB]."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclasses.dataclass
class Timing:
    """Median wall time of repeated runs and the peak RSS seen while they ran."""

    median_s: float
    runs_s: list[float]
    peak_rss_mb: float
    value: Any = None


def alternate(
    candidates: dict[str, Callable[[], Any]],
    repeats: int = 3,
    setup: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, Timing]:
    """Run each candidate ``repeats`` times, alternating between them; medians per candidate.

    Peak RSS is measured per candidate by resetting the counter before each of its runs.
    ``setup[name]``, when given, runs untimed before each run of that candidate (a fresh
    store to load into, say).
    """
    runs: dict[str, list[float]] = {name: [] for name in candidates}
    peaks: dict[str, float] = {name: 0.0 for name in candidates}
    values: dict[str, Any] = {}
    setup = setup or {}
    for _ in range(repeats):
        for name, function in candidates.items():
            if name in setup:
                setup[name]()
            reset_peak_rss()
            start = time.perf_counter()
            values[name] = function()
            runs[name].append(time.perf_counter() - start)
            peaks[name] = max(peaks[name], peak_rss_mb())
    return {
        name: Timing(statistics.median(runs[name]), runs[name], peaks[name], values.get(name))
        for name in candidates
    }


@dataclasses.dataclass
class Result:
    """One row of the benchmark table."""

    workload: str
    ours: str
    ours_value: float
    comparator: str | None = None
    comparator_value: float | None = None
    unit: str = "s"
    higher_is_better: bool = False
    peak_rss_mb: float | None = None
    agree: bool | None = None
    target: str | None = None
    met: bool | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better ours is than the comparator (> 1 means ahead)."""
        if not self.comparator_value or not self.ours_value:
            return None
        if self.higher_is_better:
            return self.ours_value / self.comparator_value
        return self.comparator_value / self.ours_value

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio}


def argument_parser(description: str) -> argparse.ArgumentParser:
    """The common options of every benchmark script."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--result", type=Path, help="write result rows as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="a small scale, for a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    return parser


def emit(results: Sequence[Result], destination: Path | None) -> None:
    """Print the rows for a person and, when asked, write them for the runner."""
    for row in results:
        ratio = f"{row.ratio:.1f}x" if row.ratio else "–"
        comparator = (
            f" | {row.comparator}: {row.comparator_value:.4g} {row.unit}" if row.comparator else ""
        )
        memory = f" | peak RSS {row.peak_rss_mb:.0f} MiB" if row.peak_rss_mb else ""
        verdict = "" if row.met is None else (" | target met" if row.met else " | TARGET MISSED")
        print(f"{row.workload}: {row.ours} {row.ours_value:.4g} {row.unit}{comparator} | ratio {ratio}{memory}{verdict}")
        if row.notes:
            print(f"    {row.notes}")
    if destination is not None:
        destination.write_text(json.dumps([r.as_dict() for r in results], indent=2))
