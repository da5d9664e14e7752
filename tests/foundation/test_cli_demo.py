"""The console script: help, the demo, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import duckdb

from tests.foundation.test_store import CONTRACT

SCRIPT = [sys.executable, "-m", "zapanalytics"]


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*SCRIPT, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_help_lists_the_commands():
    result = _run("--help")
    assert result.returncode == 0
    for command in ("demo", "ingest"):
        assert re.search(rf"│ {command}\b", result.stdout), command


def test_demo_writes_store_and_offline_report(tmp_path, zaptec_dump):
    out = tmp_path / "demo"
    result = _run("demo", "--out", str(out), "--sample", str(zaptec_dump), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for counts in summary["ingest"].values():
        assert counts["rows_in"] == counts["rows_stored"] + counts["rows_quarantined"]
    billing = summary["billing"]
    # The built dump has no prices, so the month is billed at the flat price.
    assert billing["method"] == "flat" and billing["month"] == "2025-10"
    users = {u["user_name"]: u for u in billing["users"]}
    # Kari: sessions 1 (14.75 kWh) and 3 (23.5 kWh); Ola: session 2 (11 kWh); session 4 is void.
    assert users["Kari Nordmann"]["energy_kwh"] == 38.25
    assert users["Ola Nordmann"]["energy_kwh"] == 11.0
    assert users["Ola Nordmann"]["cost_nok"] == 27.5
    assert any("no spot prices" in note for note in summary["notes"])

    con = duckdb.connect(str(out / "zap.duckdb"), read_only=True)
    for table, columns in CONTRACT.items():
        present = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " ORDER BY ordinal_position", [table]).fetchall()]
        assert present[: len(columns)] == columns
    con.close()

    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Plotly.newPlot" in page and "Kari Nordmann" in page
    # Self-contained: no script or stylesheet is fetched from anywhere.
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=\"?https?:", page)


def test_user_errors_are_one_line_without_traceback(tmp_path):
    result = _run("ingest", "zaptec", "--db", str(tmp_path / "x.duckdb"), "--dump", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: no such directory")


def test_demo_refuses_a_folder_without_sessions_sources(tmp_path):
    (tmp_path / "prices").mkdir()  # prices alone say nothing about chargings
    result = _run("demo", "--out", str(tmp_path / "out"), "--sample", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "neither a zaptec/ dump nor ocpp/*.jsonl logs" in result.stderr
