"""Simulated charge points over real websockets: scripted and replayed traffic end to end."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from pathlib import Path

import pytest
from ocpp_helpers import PASSWORDS, running

from zapanalytics.ingest.ocpp.load import load_spool
from zapanalytics.ingest.ocpp.sim import (
    TRANSACTION_REF,
    ScriptedTransaction,
    SimulatorOptions,
    messages_from_log,
    run_charge_point,
    run_fleet,
    transaction_messages,
)
from zapanalytics.store import open_store

T0 = dt.datetime(2025, 3, 29, 22, 0, tzinfo=dt.UTC)  # the night Europe/Oslo moves to summer time


def test_scripted_transactions_carry_their_ground_truth():
    transactions = [
        ScriptedTransaction("TAG-A", T0, duration_s=3600 + 17, power_w=7360.0),
        ScriptedTransaction("TAG-B", T0 + dt.timedelta(hours=3), duration_s=1800, power_w=11000.0),
    ]
    messages, truth = transaction_messages(transactions, register_start_wh=2_000_000, sample_interval_s=120)
    assert truth == {0: round(7360 * 3617 / 3600), 1: 5500}
    starts = [m for m in messages if m.action == "StartTransaction"]
    stops = [m for m in messages if m.action == "StopTransaction"]
    assert [s.payload["meterStart"] for s in starts] == [2_000_000, 2_000_000 + truth[0]]
    assert [s.payload["meterStop"] - t.payload["meterStart"] for s, t in zip(stops, starts, strict=True)] == [
        truth[0], truth[1]]
    registers = [
        float(m.payload["meterValue"][0]["sampledValue"][0]["value"]) for m in messages if m.action == "MeterValues"
    ]
    assert registers == sorted(registers) and len(registers) == 30 + 14
    assert all(m.payload["transactionId"] == TRANSACTION_REF for m in messages if m.transaction_ref is not None)
    assert [m.sim_utc for m in messages] == sorted(m.sim_utc for m in messages)


def _fleet(count: int) -> dict:
    scripts = {}
    for n in range(count):
        transactions = [
            ScriptedTransaction(f"TAG-{n}", T0 + dt.timedelta(hours=4 * k, minutes=n), 5400 + 61 * n, 3700.0 + 900 * k)
            for k in range(2)
        ]
        scripts[f"ZPR{200000 + n}"] = transaction_messages(transactions, sample_interval_s=300)
    return scripts


def test_fleet_with_dropped_connections_stores_each_transactions_true_energy(tmp_path):
    scripts = _fleet(4)
    passwords = {cp: f"pw-{cp}" for cp in scripts}

    async def scenario():
        async with running(tmp_path / "spool", credentials=passwords) as central:
            options = SimulatorOptions(url=f"ws://127.0.0.1:{central.port}/ocpp", drop_after_messages=9)
            return await run_fleet(scripts, options, passwords=passwords)

    results = asyncio.run(scenario())
    con = open_store(tmp_path / "store.duckdb")
    report = load_spool(con, tmp_path / "spool")
    assert report.counts.rows_quarantined == 0
    for charge_point_id, result in results.items():
        assert result.connections == 2 and result.unsent == 0  # dropped mid-transaction, resumed
        for index, transaction_id in result.transaction_ids.items():
            [(energy, end)] = con.execute(
                "SELECT energy_kwh, end_utc FROM sessions WHERE session_id = ?",
                [f"ocpp:{charge_point_id}:{transaction_id}"],
            ).fetchall()
            assert energy * 1000 == pytest.approx(result.energy_wh[index], abs=1e-6)
            assert end is not None
        acknowledged = {
            dt.datetime.fromisoformat(a.payload["meterValue"][0]["timestamp"])
            for a in result.acknowledged if a.action == "MeterValues"
        }
        stored = {r[0] for r in con.execute(
            "SELECT ts_utc FROM meter_values WHERE charger_id = ?", [charge_point_id]).fetchall()}
        assert acknowledged <= stored
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == 8
    con.close()


def _write_log(path, charge_point_id: str) -> int:
    """An OCPP message log as firmware_ref writes it, with the original central system's ids."""
    frames = [
        ("2025-03-29T22:00:00Z", "cp->cs", [2, "1", "BootNotification",
                                            {"chargePointVendor": "Zaptec", "chargePointModel": "Go"}]),
        ("2025-03-29T22:00:00Z", "cs->cp", [3, "1", {"status": "Accepted", "currentTime": "2025-03-29T22:00:00Z",
                                                     "interval": 300}]),
        ("2025-03-29T22:01:00Z", "cp->cs", [2, "2", "StartTransaction",
                                            {"connectorId": 1, "idTag": "RFID-1", "meterStart": 10_000,
                                             "timestamp": "2025-03-29T22:01:00Z"}]),
        ("2025-03-29T22:01:00Z", "cs->cp", [3, "2", {"idTagInfo": {"status": "Accepted"}, "transactionId": 77}]),
        ("2025-03-29T22:03:00Z", "cp->cs", [2, "3", "MeterValues", {"connectorId": 1, "transactionId": 77,
                                            "meterValue": [{"timestamp": "2025-03-29T22:03:00Z", "sampledValue": [
                                                {"value": "10.250", "unit": "kWh"}]}]}]),
        ("2025-03-29T22:03:00Z", "cs->cp", [3, "3", {}]),
        ("2025-03-29T22:05:00Z", "cp->cs", [2, "4", "StopTransaction",
                                            {"transactionId": 77, "meterStop": 10_480,
                                             "timestamp": "2025-03-29T22:05:00Z"}]),
    ]
    with open(path, "w", encoding="utf-8") as handle:
        for ts, direction, frame in frames:
            handle.write(json.dumps({"ts": ts, "charge_point_id": charge_point_id, "direction": direction,
                                     "message": frame}) + "\n")
    return 480


def test_a_message_log_replays_with_new_transaction_ids(tmp_path):
    charge_point_id = "ZPR100001"
    expected_wh = _write_log(tmp_path / f"{charge_point_id}.jsonl", charge_point_id)
    messages = messages_from_log(tmp_path / f"{charge_point_id}.jsonl")
    assert [m.action for m in messages] == ["BootNotification", "StartTransaction", "MeterValues", "StopTransaction"]
    assert [m.transaction_ref for m in messages] == [None, None, 0, 0]

    async def scenario():
        async with running(tmp_path / "spool") as central:
            options = SimulatorOptions(url=f"ws://127.0.0.1:{central.port}/ocpp",
                                       password=PASSWORDS[charge_point_id], time_scale=math.inf)
            return await run_charge_point(charge_point_id, messages, options)

    result = asyncio.run(scenario())
    assert len(result.acknowledged) == 4
    [transaction_id] = result.transaction_ids.values()
    assert transaction_id != 77
    stop = result.acknowledged[-1]
    assert stop.payload["transactionId"] == transaction_id
    con = open_store(tmp_path / "store.duckdb")
    load_spool(con, tmp_path / "spool")
    [(energy,)] = con.execute("SELECT energy_kwh FROM sessions").fetchall()
    assert energy * 1000 == pytest.approx(expected_wh)
    con.close()


def test_a_wrong_password_stops_the_simulator_with_the_refusal(tmp_path):
    messages, _ = transaction_messages([ScriptedTransaction("T", T0, 600, 7000.0)])

    async def scenario():
        async with running(tmp_path / "spool") as central:
            options = SimulatorOptions(url=f"ws://127.0.0.1:{central.port}/ocpp", password="nope")
            return await run_charge_point("ZPR100001", messages, options)

    with pytest.raises(Exception, match="401"):
        asyncio.run(scenario())


SAMPLE_OCPP = Path(__file__).resolve().parents[2] / "data" / "sample" / "ocpp"


@pytest.mark.skipif(not any(SAMPLE_OCPP.glob("*.jsonl")), reason="no bundled OCPP logs")
def test_the_bundled_firmware_ref_logs_replay_into_sessions_with_their_energy(tmp_path):
    logs = sorted(SAMPLE_OCPP.glob("*.jsonl"))
    truth: dict[str, list[int]] = {}
    for log in logs:
        frames = [json.loads(line)["message"] for line in log.read_text().splitlines() if line.strip()]
        starts = [f[3]["meterStart"] for f in frames if f[0] == 2 and f[2] == "StartTransaction"]
        stops = [f[3]["meterStop"] for f in frames if f[0] == 2 and f[2] == "StopTransaction"]
        truth[log.stem] = [stop - start for start, stop in zip(starts, stops, strict=True)]

    async def scenario():
        async with running(tmp_path / "spool", credentials=None) as central:
            options = SimulatorOptions(url=f"ws://127.0.0.1:{central.port}/ocpp")
            return await run_fleet({log.stem: (messages_from_log(log), {}) for log in logs}, options)

    results = asyncio.run(scenario())
    con = open_store(tmp_path / "store.duckdb")
    report = load_spool(con, tmp_path / "spool")
    assert report.counts.rows_quarantined == 0
    for charge_point_id, energies in truth.items():
        result = results[charge_point_id]
        assert result.unsent == 0 and len(result.transaction_ids) == len(energies) > 0
        for index, transaction_id in result.transaction_ids.items():
            [(energy,)] = con.execute(
                "SELECT energy_kwh FROM sessions WHERE session_id = ?",
                [f"ocpp:{charge_point_id}:{transaction_id}"],
            ).fetchall()
            assert energy * 1000 == pytest.approx(energies[index], abs=1e-6)
        meter_messages = sum(1 for a in result.acknowledged if a.action == "MeterValues")
        stored = con.execute("SELECT count(*) FROM meter_values WHERE charger_id = ?",
                             [charge_point_id]).fetchall()[0][0]
        assert stored >= meter_messages
    con.close()
