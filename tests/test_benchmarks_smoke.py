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


def test_ingest_peers_store_what_ours_stores_and_reject_what_ours_rejects(tmp_path):
    """B1's pandas and SQL peers are only fair while they do ours' work: on a small simulated
    dump with one bad item per contract check, each rejects the same items and stores the
    same sessions and details as ours."""
    from benchmarks.bench_ingest import verdicts_on_bad_items
    from benchmarks.datasets import charge_history_only, year_dump

    dump = year_dump(4, 8, tmp_path / "data")
    ok, detail = verdicts_on_bad_items(tmp_path, charge_history_only(dump, tmp_path / "history"))
    assert ok, detail
    assert "quarantined: ours 9, pandas 9, SQL 9" in detail


def test_ocpp_peers_store_the_generated_rows(tmp_path):
    """On a small spool, ours and both B1 OCPP peers store exactly the generated readings
    (and a second load by a peer changes nothing)."""
    import duckdb

    from benchmarks.bench_ingest import _differing
    from benchmarks.ocpp_spool_data import METER_COLUMNS, write_ocpp_spool
    from benchmarks.peers_ocpp import duckdb_ocpp, pandas_ocpp
    from zapanalytics.ingest.ocpp.load import load_spool
    from zapanalytics.store import open_store

    expected = tmp_path / "expected.parquet"
    write_ocpp_spool(tmp_path / "spool", 3_000, expected)
    columns = ", ".join(METER_COLUMNS)
    for name, load in (("ours", load_spool), ("pandas", pandas_ocpp), ("sql", duckdb_ocpp), ("sql", duckdb_ocpp)):
        con = open_store(tmp_path / f"{name}.duckdb")
        load(con, tmp_path / "spool")
        con.close()
        check = duckdb.connect()
        check.execute("SET TimeZone = 'UTC'")
        check.execute(f"ATTACH '{tmp_path / f'{name}.duckdb'}' AS loaded (READ_ONLY)")
        assert _differing(check, "loaded.meter_values", f"(SELECT {columns} FROM read_parquet('{expected}'))", columns) == 0
        assert check.execute("SELECT count(*) FROM loaded.chargers").fetchall()[0][0] == 500
        assert check.execute("SELECT count(*) FROM loaded.quarantine").fetchall()[0][0] == 0
        check.close()
