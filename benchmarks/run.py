"""Run every benchmark script, collect its rows, write results and the README table.

Each ``benchmarks/bench_*.py`` runs in its own process (so one workload's memory does not
colour another's) with a time limit. Data that several scripts share (a simulated year of a
100-charger co-op, :mod:`benchmarks.datasets`) is made once per run in a temporary cache.
Results go to ``benchmarks/results/latest.json`` and ``benchmarks/results/latest.md``; the
README's table between the bench markers is replaced (full runs of every script only).

Run: ``make bench`` or ``.venv/bin/python -m benchmarks.run [--quick] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.datasets import CACHE_ENV

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
#: The issue's memory target for every workload [MiB].
MEMORY_TARGET_MB = 2048.0
#: Scripts that need more than the default time limit [s]: B1 loads 10 M OCPP lines five
#: ways; F1 clones a year of a co-op to 50 installations and runs it locally and on Spark.
SCRIPT_BUDGETS = {"bench_ingest": 2700, "bench_fleet": 3600}
#: A 1-minute load average above this when the run starts means other work shares the
#: machine; later readings include the benchmarks' own threads, so they cannot tell.
QUIET_LOAD = 1.0


def _fmt(value, unit: str) -> str:
    if value is None:
        return "–"
    return f"{value:,.3g} {unit}" if abs(value) < 1000 else f"{value:,.0f} {unit}"


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def missed(rows: list[dict]) -> list[str]:
    """Every target a row missed, with the figure that missed it."""
    out = []
    for r in rows:
        if r.get("met") is False:
            ratio = f" (ratio {r['ratio']:.2f}×)" if r.get("ratio") else ""
            out.append(f"{r['workload']}: {r.get('target')}{ratio}")
        if (r.get("peak_rss_mb") or 0) > MEMORY_TARGET_MB:
            out.append(f"{r['workload']}: peak RSS {r['peak_rss_mb']:,.0f} MiB, over 2 GB")
    return out


def markdown(rows: list[dict], date: str, run: dict | None = None) -> str:
    run = run or {}
    machine = f"Measured {date} on this project's {os.cpu_count()}-core machine (`make bench`)"
    if run.get("seconds") is not None:
        machine += f" in {run['seconds'] / 60:.1f} min"
    if run.get("load_start") is not None:
        machine += (
            f"; 1-minute load average {run['load_start']:.1f} at the start, "
            f"{run['load_end']:.1f} at the end"
        )
        if run["load_start"] > QUIET_LOAD:
            machine += " (the machine was busy when the run started: wall times are pessimistic)"
    lines = [
        machine + ".",
        "Ratio: how many times ours is ahead of the comparator (> 1: ahead). Memory target:",
        "every workload under 2 GB peak RSS (ours; comparators' in the notes). Each comparator,",
        "and why it is fair, is described in the README's Benchmarks section; B1's peers do the",
        "same checks, quarantine and upsert as ours (`benchmarks/peers_*.py`) and must store the same rows.",
        "",
        "| workload | ours | comparator | ratio | peak RSS | agree | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours = f"{r['ours']}: {_fmt(r['ours_value'], r['unit'])}"
        comp = f"{r['comparator']}: {_fmt(r['comparator_value'], r['unit'])}" if r.get("comparator") else "–"
        ratio = f"{r['ratio']:.2f}×" if r.get("ratio") else "–"
        rss = f"{r['peak_rss_mb']:,.0f} MiB" if r.get("peak_rss_mb") else "–"
        if (r.get("peak_rss_mb") or 0) > MEMORY_TARGET_MB:
            rss = f"**{rss} (> 2 GB)**"
        agree = {True: "yes", False: "**no**", None: "–"}[r.get("agree")]
        target = r.get("target") or "–"
        if r.get("met") is False:
            target += " — **missed**"
        elif r.get("met") is True:
            target += " — met"
        lines.append(f"| {r['workload']} | {ours} | {comp} | {ratio} | {rss} | {agree} | {target} |")
        if r.get("notes"):
            lines.append(f"| ↳ | {r['notes']} | | | | | |")
    misses = missed(rows)
    if misses:
        lines += ["", "Targets missed (the reasons are in the notes above, and under \"Why the missed targets are missed\" below the table):", ""]
        lines += [f"- {m}" for m in misses]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="run only these bench_* names")
    parser.add_argument("--quick", action="store_true", help="small scales (smoke run)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per benchmark script")
    parser.add_argument("--repeats", type=int, default=None, help="passed to every script")
    args = parser.parse_args(argv)
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only or s.stem.removeprefix("bench_") in args.only]
    rows: list[dict] = []
    failures: list[str] = []
    timings: list[dict] = []
    load_start = _load()
    began = time.perf_counter()
    cache = tempfile.TemporaryDirectory(prefix="zapanalytics_bench_")
    env = {**os.environ, CACHE_ENV: cache.name}
    for script in scripts:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            result_path = Path(handle.name)
        command = [sys.executable, "-m", f"benchmarks.{script.stem}", "--result", str(result_path)]
        if args.quick:
            command.append("--quick")
        if args.repeats:
            command += ["--repeats", str(args.repeats)]
        print(f"== {script.stem}", flush=True)
        started, load_before = time.perf_counter(), _load()
        try:
            budget = max(args.timeout, SCRIPT_BUDGETS.get(script.stem, 0))
            completed = subprocess.run(command, cwd=ROOT, timeout=budget, env=env)
            if completed.returncode != 0:
                failures.append(f"{script.stem}: exit code {completed.returncode}")
            if result_path.exists() and result_path.stat().st_size:
                rows.extend(json.loads(result_path.read_text()))
        except subprocess.TimeoutExpired:
            failures.append(f"{script.stem}: exceeded {budget} s")
        finally:
            result_path.unlink(missing_ok=True)
            timings.append({
                "script": script.stem, "seconds": round(time.perf_counter() - started, 1),
                "load_before": round(load_before, 2), "load_after": round(_load(), 2),
            })  # fmt: skip
            print(f"== {script.stem}: {timings[-1]['seconds']} s", flush=True)
    cache.cleanup()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "date": date, "seconds": round(time.perf_counter() - began, 1), "cpus": os.cpu_count(),
        "load_start": round(load_start, 2), "load_end": round(_load(), 2),
        "quick": args.quick, "scripts": timings, "rows": rows, "failures": failures,
        "missed": missed(rows),
    }  # fmt: skip
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    table = markdown(rows, date, payload)
    if failures:
        table += "\nNot measured: " + "; ".join(failures) + "\n"
    (RESULTS / "latest.md").write_text(table)
    if not args.quick and not args.only:
        text = README.read_text()
        if START in text and END in text:
            text = re.sub(re.escape(START) + r".*?" + re.escape(END), f"{START}\n{table}{END}", text, flags=re.S)
        else:
            text += f"\n## Benchmarks\n\n{START}\n{table}{END}\n"
        README.write_text(text)
    print(table)
    print(f"total {payload['seconds']} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
