"""The replay on a store: a simulated Zaptec dump ingested through the door, then
``load_recording`` and ``zapanalytics replay``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from firmware_ref.formats.zaptec_api import write_zaptec_api
from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.replay import check_conformance, load_recording
from zapanalytics.store import open_store


def _store(tmp_path, result):
    write_zaptec_api(result, tmp_path)
    database = tmp_path / "zap.duckdb"
    con = open_store(database)
    try:
        counts = ingest_zaptec_dump(con, tmp_path)
    finally:
        con.close()
    assert counts.rows_quarantined == 0
    return database


@pytest.fixture(scope="module")
def faulty_store(tmp_path_factory, faulty_tn):
    return _store(tmp_path_factory.mktemp("faulty"), faulty_tn[0])


@pytest.fixture(scope="module")
def healthy_store(tmp_path_factory, healthy_tn):
    return _store(tmp_path_factory.mktemp("healthy"), healthy_tn)


def test_store_recording_infers_rotations_and_finds_the_fault(faulty_store, faulty_tn):
    result, fault = faulty_tn
    con = open_store(faulty_store)
    try:
        # The Zaptec dump carries AvailableCurrent, which the ingestion does not store yet.
        recording = load_recording(con, available_current_a=32.0)
    finally:
        con.close()
    truth = dict(zip(result.chargers["charger_id"], result.chargers["phase_rotation"], strict=True))
    inferred = dict(zip(recording.chargers["charger_id"], recording.chargers["phase_rotation"],
                        strict=True))  # fmt: skip
    assert set(recording.chargers["phase_rotation_source"]) <= {"observed", "pattern"}
    assert inferred == truth
    findings = check_conformance(recording)
    kinds = sorted({f.kind for f in findings})
    assert kinds == ["over_draw", "phase_overload"]
    assert {f.charger_id for f in findings} == {fault.charger_id}


def test_cli_json_reports_findings_and_exits_1(faulty_store, faulty_tn):
    _, fault = faulty_tn
    runner = CliRunner()
    outcome = runner.invoke(
        app,
        [
            "replay",
            "--db",
            str(faulty_store),
            "--available",
            "32",
            "--fuse",
            "80",
            "--chargers",
            "8",
            "--policy",
            "equal_share",
            "--json",
        ],  # fmt: skip
    )
    assert outcome.exit_code == 1, outcome.output
    payload = json.loads(outcome.stdout)
    assert {"findings", "fairness", "scenarios"} <= set(payload)
    keys = {"kind", "start_utc", "end_utc", "charger_id", "phase", "magnitude_a", "constraint"}
    assert all(keys <= set(f) for f in payload["findings"])
    over = [f for f in payload["findings"] if f["kind"] == "over_draw"]
    assert [f["charger_id"] for f in over] == [fault.charger_id]
    assert over[0]["magnitude_a"] == pytest.approx(fault.magnitude, abs=0.01)
    names = [s["scenario"]["name"] for s in payload["scenarios"]]
    assert names == ["recorded", "baseline", "fuse 80 A, 8 chargers, equal_share"]
    what_if = payload["scenarios"][2]
    assert what_if["chargers"] == 8 and what_if["main_fuse_a"] == 80.0
    assert payload["fairness"]["summary"]["sessions"] == payload["sessions"]


def test_cli_healthy_store_exits_0_and_writes_out(healthy_store, tmp_path):
    runner = CliRunner()
    out = tmp_path / "replay"
    outcome = runner.invoke(app, ["replay", "--db", str(healthy_store), "--available", "32",
                                  "--out", str(out)])  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    assert "no load-balancing findings" in outcome.stdout
    written = json.loads((out / "replay.json").read_text())
    assert written["findings"] == []
    assert (out / "findings.csv").read_text().startswith("kind,start_utc")


def test_cli_rejects_unknown_policy(healthy_store):
    outcome = CliRunner().invoke(app, ["replay", "--db", str(healthy_store), "--policy", "fastest"])
    assert isinstance(outcome.exception, UserError)
    assert "--policy must be one of" in str(outcome.exception)


def test_cli_missing_store_is_a_one_line_error(tmp_path):
    command = [sys.executable, "-c", "from zapanalytics.cli import main; main()",
               "replay", "--db", str(tmp_path / "none.duckdb")]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip().splitlines() == [
        f"error: no store at {tmp_path / 'none.duckdb'}"
    ]
