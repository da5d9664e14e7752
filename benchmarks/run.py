"""Run every benchmark script, collect its rows, write results and the README table.

Each ``benchmarks/bench_*.py`` runs in its own process (so one workload's memory does not
colour another's) with a time limit. Results go to ``benchmarks/results/latest.json`` and
``benchmarks/results/latest.md``; the README's table between the bench markers is replaced.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _fmt(value, unit: str) -> str:
    if value is None:
        return "–"
    return f"{value:,.3g} {unit}" if abs(value) < 1000 else f"{value:,.0f} {unit}"


def markdown(rows: list[dict], date: str) -> str:
    lines = [
        f"Measured {date} on this project's 2-core machine (`make bench`).",
        "",
        "| workload | ours | comparator | ratio | peak RSS | agree | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours = f"{r['ours']}: {_fmt(r['ours_value'], r['unit'])}"
        comp = f"{r['comparator']}: {_fmt(r['comparator_value'], r['unit'])}" if r.get("comparator") else "–"
        ratio = f"{r['ratio']:.1f}×" if r.get("ratio") else "–"
        rss = f"{r['peak_rss_mb']:.0f} MiB" if r.get("peak_rss_mb") else "–"
        agree = {True: "yes", False: "**no**", None: "–"}[r.get("agree")]
        target = r.get("target") or "–"
        if r.get("met") is False:
            target += " — **missed**"
        elif r.get("met") is True:
            target += " — met"
        lines.append(f"| {r['workload']} | {ours} | {comp} | {ratio} | {rss} | {agree} | {target} |")
        if r.get("notes"):
            lines.append(f"| ↳ | {r['notes']} | | | | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="run only these bench_* names")
    parser.add_argument("--quick", action="store_true", help="small scales (smoke run)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per benchmark script")
    args = parser.parse_args(argv)
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only or s.stem.removeprefix("bench_") in args.only]
    rows: list[dict] = []
    failures: list[str] = []
    began = time.perf_counter()
    for script in scripts:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            result_path = Path(handle.name)
        command = [sys.executable, "-m", f"benchmarks.{script.stem}", "--result", str(result_path)]
        if args.quick:
            command.append("--quick")
        print(f"== {script.stem}", flush=True)
        try:
            completed = subprocess.run(command, cwd=ROOT, timeout=args.timeout)
            if completed.returncode != 0:
                failures.append(f"{script.stem}: exit code {completed.returncode}")
            if result_path.exists() and result_path.stat().st_size:
                rows.extend(json.loads(result_path.read_text()))
        except subprocess.TimeoutExpired:
            failures.append(f"{script.stem}: exceeded {args.timeout} s")
        finally:
            result_path.unlink(missing_ok=True)
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"date": date, "seconds": round(time.perf_counter() - began, 1), "rows": rows, "failures": failures}
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    table = markdown(rows, date)
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
