"""A site without the Zaptec cloud: sessions from OCPP transactions, end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import duckdb
import pytest

from tests.sessions.helpers import cli


@pytest.fixture(scope="module")
def ocpp_site(tmp_path_factory):
    """firmware_ref's dataset with OCPP logs of every charger, its cloud dump removed."""
    root = tmp_path_factory.mktemp("ocpp-site") / "Garasje"
    cli(
        "sample", "--out", root, "--days", 4, "--chargers", 3, "--ocpp-chargers", "all",
        "--ocpp-interval", 900, "--json",
    )
    shutil.rmtree(root / "zaptec")
    return root


def test_ocpp_only_dataset_goes_through_the_demo(ocpp_site, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "zapanalytics", "demo", "--sample", str(ocpp_site), "--out", str(out),
         "--fuse", "32", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert "zaptec" not in summary["ingest"]
    ocpp = summary["ingest"]["ocpp"]
    assert ocpp["rows_in"] == ocpp["rows_stored"] > 0 and ocpp["rows_quarantined"] == 0

    con = duckdb.connect(str(out / "zap.duckdb"), read_only=True)
    try:
        installation = con.execute("SELECT name, timezone, main_fuse_a, source FROM installations").fetchall()
        assert installation == [("Garasje", "Europe/Oslo", 32.0, "site")]
        assert con.execute("SELECT count(*) FROM chargers WHERE installation_id IS NULL").fetchone()[0] == 0
        sessions, energy = con.execute(
            "SELECT count(*), sum(energy_kwh) FROM canonical_sessions WHERE source = 'ocpp'"
        ).fetchone()
        assert sessions == con.execute("SELECT count(*) FROM sessions").fetchone()[0] > 0
    finally:
        con.close()
    billing = summary["billing"]
    assert billing["total_energy_kwh"] == pytest.approx(energy, abs=0.001)
    # Billed per RFID token: the central system knows the idTag, not the user behind it.
    assert billing["users"] and all(u["user_id"].startswith("idtag:") for u in billing["users"])
    assert summary["audit"]["chargers"] == 3
    assert summary["replay"] is not None and not any("replay" in n for n in summary["notes"])
    assert (out / "report.html").stat().st_size > 0


def test_meter_values_without_sessions_replay(ocpp_site, tmp_path):
    db = tmp_path / "zap.duckdb"
    cli("ingest", "ocpp", "--db", db, "--logs", ocpp_site / "ocpp", "--json")
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM sessions")  # as a central system that saw only MeterValues
    con.execute(
        "INSERT INTO installations (installation_id, name, timezone, main_fuse_a, network_type, source,"
        " ingested_at) VALUES ('site', 'Garasje', 'Europe/Oslo', 32, 'TN', 'test', now())"
    )
    con.execute("UPDATE chargers SET installation_id = 'site'")
    assert con.execute("SELECT count(*) FROM meter_values").fetchone()[0] > 0
    con.close()
    from typer.testing import CliRunner

    from zapanalytics.cli import app

    run = CliRunner().invoke(app, ["replay", "--db", str(db), "--json"])
    # Exit 1 means "the replay found something" (a line over the fuse); never a crash.
    assert run.exit_code in (0, 1), run.output
    assert run.exception is None or isinstance(run.exception, SystemExit)
    result = json.loads(run.stdout)
    assert result["sessions"] == 0 and result["chargers"] == 3
    assert result["scenarios"][0]["peak_line_current_a"] > 0  # the meter values were replayed
