"""End to end through the CLI: SIGKILL the central system mid-run, restart it, lose nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from zapanalytics.ingest.ocpp.load import load_spool
from zapanalytics.ingest.ocpp.sim import (
    ScriptedTransaction,
    SimulatorOptions,
    run_fleet,
    transaction_messages,
)
from zapanalytics.store import open_store

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from zapanalytics.cli import main; main()"]
T0 = dt.datetime(2025, 10, 25, 20, 0, tzinfo=dt.UTC)  # spans the night Europe/Oslo leaves summer time


def _serve(spool: Path, credentials: Path, port: int) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [*CLI, "ocpp", "serve", "--host", "127.0.0.1", "--port", str(port), "--spool", str(spool),
         "--credentials", str(credentials)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    if "ws://127.0.0.1:" not in line:
        process.kill()
        raise AssertionError(f"server did not start: {line!r} {process.stderr.read()}")
    return process, int(line.split("ws://127.0.0.1:")[1].split("/")[0])


class _Loader(threading.Thread):
    """Loads the spool into the store over and over while the server writes it."""

    def __init__(self, spool: Path, db: Path):
        super().__init__(daemon=True)
        self.spool, self.db = spool, db
        self.stop = threading.Event()
        self.runs = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            con = open_store(self.db)
            try:
                while not self.stop.is_set():
                    if (self.spool / "spool.json").exists():
                        load_spool(con, self.spool)
                        self.runs += 1
                    time.sleep(0.2)
                load_spool(con, self.spool)
            finally:
                con.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def test_sigkill_during_a_load_run_loses_no_acknowledged_message(tmp_path):
    scripts = {}
    for n in range(8):
        transactions = [
            ScriptedTransaction(f"TAG-{n}", T0 + dt.timedelta(hours=3 * k, minutes=7 * n), 7200 + 113 * n, 7400.0)
            for k in range(3)
        ]
        scripts[f"ZPR{300000 + n}"] = transaction_messages(transactions, sample_interval_s=120)
    passwords = {cp: f"secret-{cp}" for cp in scripts}
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps(passwords))
    spool, db = tmp_path / "spool", tmp_path / "store.duckdb"

    server, port = _serve(spool, credentials, 0)
    loader = _Loader(spool, db)
    loader.start()
    span_s = max((m[0][-1].sim_utc - m[0][0].sim_utc).total_seconds() for m in scripts.values())
    killed = {}

    async def chaos():
        await asyncio.sleep(1.2)
        server.send_signal(signal.SIGKILL)
        server.wait()
        killed["at"] = time.monotonic()
        await asyncio.sleep(0.5)
        killed["server"] = _serve(spool, credentials, port)[0]

    async def scenario():
        options = SimulatorOptions(url=f"ws://127.0.0.1:{port}/ocpp", time_scale=span_s / 3.5,
                                   reconnect_delay_s=0.1)
        fleet = asyncio.create_task(run_fleet(scripts, options, passwords=passwords))
        await chaos()
        return await fleet

    try:
        results = asyncio.run(scenario())
    finally:
        for process in (server, killed.get("server")):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
        loader.stop.set()
        loader.join(timeout=60)
    assert loader.error is None
    assert loader.runs >= 3  # loads really overlapped the traffic

    reconnected = [r for r in results.values() if r.connections >= 2]
    assert reconnected, "the kill happened after the simulators had finished"
    con = open_store(db)
    try:
        acknowledged = [a for r in results.values() for a in r.acknowledged]
        assert all(r.unsent == 0 for r in results.values())
        stored_meters = {
            (cp, ts) for cp, ts in con.execute("SELECT charger_id, ts_utc FROM meter_values").fetchall()
        }
        acked_meters = {
            (a.charge_point_id, dt.datetime.fromisoformat(a.payload["meterValue"][0]["timestamp"]))
            for a in acknowledged if a.action == "MeterValues"
        }
        assert acked_meters and acked_meters <= stored_meters
        stored_states = con.execute("SELECT count(*) FROM charger_states").fetchall()[0][0]
        acked_states = {(a.charge_point_id, a.payload["timestamp"]) for a in acknowledged
                        if a.action == "StatusNotification"}
        assert stored_states == len(acked_states)
        sessions = dict(con.execute("SELECT session_id, energy_kwh FROM sessions").fetchall())
        truth = {
            f"ocpp:{cp}:{tx}": result.energy_wh[index]
            for cp, result in results.items() for index, tx in result.transaction_ids.items()
        }
        assert set(sessions) == set(truth) and len(truth) == 24
        for session_id, energy_wh in truth.items():
            assert sessions[session_id] * 1000 == pytest.approx(energy_wh, abs=1e-6)
        assert con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == 0
    finally:
        con.close()


def test_cli_ingest_reports_json_and_refuses_bad_usage(tmp_path):
    from ocpp_helpers import SpoolBuilder

    spool = SpoolBuilder(tmp_path / "spool")
    spool.meter("ZPR100001", "2025-03-01T10:00:00Z", 12.5)
    spool.meter("ZPR100001", "2025-03-01T10:05:00Z", 12.0)  # decreasing: quarantined
    spool.close()
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([*CLI, "ingest", "ocpp", "--spool", str(tmp_path / "spool"),
                           "--db", str(tmp_path / "s.duckdb"), "--json"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["rows_in"], report["rows_stored"], report["rows_quarantined"]) == (2, 1, 1)
    refused = subprocess.run([*CLI, "ocpp", "serve", "--spool", str(tmp_path / "other")],
                             cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2
    assert "--credentials" in refused.stderr and "Traceback" not in refused.stderr
    missing = subprocess.run([*CLI, "ingest", "ocpp", "--spool", str(tmp_path / "nowhere"),
                              "--db", str(tmp_path / "s.duckdb")], cwd=ROOT, capture_output=True, text=True,
                             env=env, timeout=120)
    assert missing.returncode == 2 and "no such spool directory" in missing.stderr
