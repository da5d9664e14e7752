"""The benchmark scripts stay runnable by ``make bench``: importable, with ``main(argv)``
taking the harness's options. Nothing is measured here (benchmarks are run on demand)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from benchmarks import run

SCRIPTS = sorted(p.stem for p in (Path(__file__).parent.parent / "benchmarks").glob("bench_*.py"))


def test_every_issue_workload_has_a_script():
    assert {"bench_ingest", "bench_billing", "bench_replay", "bench_ocmf", "bench_accuracy",
            "bench_ocpp"} <= set(SCRIPTS)  # fmt: skip


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_takes_the_runner_options(name, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    assert list(inspect.signature(module.main).parameters) == ["argv"]
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])  # parses the options and stops before any work
    assert stop.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--result", "--quick", "--repeats"):
        assert option in help_text, f"{name} does not take {option}"


def test_table_flags_missed_targets_and_memory():
    rows = [
        {"workload": "B9 fast", "ours": "ours", "ours_value": 2.0, "comparator": "peer",
         "comparator_value": 30.0, "unit": "s", "ratio": 15.0, "peak_rss_mb": 3000.0,
         "agree": True, "target": "≥ 10×", "met": True, "notes": ""},
        {"workload": "B9 slow", "ours": "ours", "ours_value": 20.0, "comparator": "peer",
         "comparator_value": 30.0, "unit": "s", "ratio": 1.5, "peak_rss_mb": 100.0,
         "agree": False, "target": "≥ 10×", "met": False, "notes": "why it missed"},
    ]  # fmt: skip
    table = run.markdown(rows, "2026-01-01", {"seconds": 60.0, "load_start": 0.5, "load_end": 0.7})
    assert "| B9 slow |" in table and "≥ 10× — **missed**" in table and "≥ 10× — met" in table
    assert "**3,000 MiB (> 2 GB)**" in table and "**no**" in table
    assert run.missed(rows) == [
        "B9 fast: peak RSS 3,000 MiB, over 2 GB",
        "B9 slow: ≥ 10× (ratio 1.50×)",
    ]
