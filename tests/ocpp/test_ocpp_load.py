"""Spool to store: sessions, meter values, states, chargers; idempotence; quarantine reasons."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from ocpp_helpers import SpoolBuilder

from zapanalytics.ingest.door import IngestRun, frame_for
from zapanalytics.ingest.ocpp.load import load_spool, spool_from_message_logs
from zapanalytics.ingest.spool import segment_name
from zapanalytics.store import open_store

CP = "ZPR100001"


@pytest.fixture
def store(tmp_path):
    con = open_store(tmp_path / "store.duckdb")
    yield con
    con.close()


def _rows(con, sql, *params):
    result = con.execute(sql, list(params))
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def _quarantine(con) -> list[str]:
    return [r["reason"] for r in _rows(con, "SELECT reason FROM quarantine ORDER BY reason")]


def _basic_session(spool) -> int:
    spool.call(CP, "BootNotification", {"chargePointVendor": "Zaptec", "chargePointModel": "ZapCharger Pro",
                                        "firmwareVersion": "2.3.1.2"})
    spool.call(CP, "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging",
                                          "timestamp": "2025-03-01T10:00:01Z"})
    tx = spool.start(CP, 1_000_000, "2025-03-01T10:00:00Z")
    for minute, register in ((2, 1000.245), (4, 1000.490)):
        spool.meter(CP, f"2025-03-01T10:0{minute}:00Z", register, power_w=7360, offered_w=11040)
    spool.stop(CP, tx, 1_000_613, "2025-03-01T10:05:00Z", reason="EVDisconnected", transactionData=[
        {"timestamp": "2025-03-01T10:05:00Z", "sampledValue": [{"value": "1000613", "context": "Transaction.End"}]},
    ])
    spool.call(CP, "Heartbeat", {})
    return tx


def test_a_transaction_becomes_a_session_with_its_energy(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool")
    tx = _basic_session(spool)
    spool.close()
    report = load_spool(store, tmp_path / "spool")
    assert report.counts.rows_in == 7 == report.counts.rows_stored
    [session] = _rows(store, "SELECT * FROM sessions")
    assert session["session_id"] == f"ocpp:{CP}:{tx}" and session["external_id"] == str(tx)
    assert session["energy_kwh"] == pytest.approx(0.613)
    assert (session["meter_start_kwh"], session["meter_stop_kwh"]) == (1000.0, 1000.613)
    assert session["start_utc"] == dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC)
    assert session["end_utc"] == dt.datetime(2025, 3, 1, 10, 5, tzinfo=dt.UTC)
    assert session["token_name"] == "TAG-A" and session["source"] == "ocpp"
    meters = _rows(store, "SELECT * FROM meter_values ORDER BY ts_utc")
    assert [m["energy_register_kwh"] for m in meters] == [1000.245, 1000.49, 1000.613]
    assert meters[0]["power_w"] == 7360 and meters[0]["power_offered_w"] == 11040
    assert {m["source"] for m in meters} == {"ocpp"}
    [charger] = _rows(store, "SELECT * FROM chargers")
    assert (charger["charger_id"], charger["device_id"], charger["model"], charger["firmware_version"]) == (
        CP, CP, "Pro", "2.3.1.2")
    [state] = _rows(store, "SELECT * FROM charger_states")
    assert (state["state_id"], state["state_name"], state["value"]) == (-1601, "OcppConnectorStatus", "Charging")


def test_loading_twice_or_from_scratch_changes_nothing(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool")
    _basic_session(spool)
    spool.meter(CP, "2025-03-01T10:06:00Z", 999.0)  # a decreasing register: quarantined
    spool.close()
    tables = ("sessions", "meter_values", "charger_states", "chargers", "quarantine")

    def snapshot():
        return {t: sorted(map(repr, store.execute(f"SELECT * EXCLUDE (run_id) FROM {t}" if t == "quarantine"
                                                  else f"SELECT * FROM {t}").fetchall())) for t in tables}

    first = load_spool(store, tmp_path / "spool")
    before = snapshot()
    again = load_spool(store, tmp_path / "spool")
    assert again.lines_read == 0
    store.execute("DELETE FROM ocpp_spool_progress")
    replay = load_spool(store, tmp_path / "spool")
    assert replay.lines_read == first.lines_read
    assert replay.counts.rows_quarantined == first.counts.rows_quarantined == 1
    assert snapshot() == before


def test_loads_only_new_lines_while_the_spool_grows(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool")
    tx = spool.start(CP, 5_000, "2025-03-01T10:00:00Z")
    spool.meter(CP, "2025-03-01T10:02:00Z", 5.100)
    first = load_spool(store, tmp_path / "spool")
    assert first.lines_read == 2
    [open_session] = _rows(store, "SELECT end_utc, energy_kwh FROM sessions")
    assert open_session == {"end_utc": None, "energy_kwh": None}
    spool.meter(CP, "2025-03-01T10:04:00Z", 5.200)
    spool.stop(CP, tx, 5_300, "2025-03-01T10:06:00Z")
    second = load_spool(store, tmp_path / "spool")
    assert second.lines_read == 2 and second.segments_read == 1
    [closed] = _rows(store, "SELECT end_utc, energy_kwh FROM sessions")
    assert closed["energy_kwh"] == pytest.approx(0.3)
    assert store.execute("SELECT count(*) FROM meter_values").fetchall()[0][0] == 2
    spool.close()


def test_an_unfinished_last_line_waits_for_the_next_run(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool")
    spool.meter(CP, "2025-03-01T10:02:00Z", 5.100)
    index = spool.writer.active_index
    line = json.dumps({"ts": "2025-03-01T12:00:00+00:00", "charge_point_id": CP, "direction": "in",
                       "message": json.dumps([2, "late", "Heartbeat", {}]), "reply": '[3,"late",{}]'}) + "\n"
    path = tmp_path / "spool" / segment_name(index, sealed=False)
    with open(path, "ab") as handle:
        handle.write(line[:20].encode())
    first = load_spool(store, tmp_path / "spool")
    assert first.lines_read == 1 and first.pending_tail_bytes == 20
    with open(path, "ab") as handle:
        handle.write(line[20:].encode())
    second = load_spool(store, tmp_path / "spool")
    assert second.lines_read == 1 and second.actions == {"Heartbeat": 1}


def test_a_decreasing_register_is_quarantined_with_both_readings(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool")
    spool.meter(CP, "2025-03-01T10:00:00Z", 100.0)
    spool.meter(CP, "2025-03-01T10:10:00Z", 101.0)
    spool.meter(CP, "2025-03-01T10:20:00Z", 99.5)   # register reset: below 101.0
    spool.meter(CP, "2025-03-01T10:30:00Z", 102.0)  # continues normally
    load_spool(store, tmp_path / "spool")
    assert [r[0] for r in store.execute("SELECT energy_register_kwh FROM meter_values ORDER BY ts_utc").fetchall()] \
        == [100.0, 101.0, 102.0]
    [reason] = _quarantine(store)
    assert "decreased" in reason and "99.5 kWh" in reason and "101 kWh" in reason and CP in reason
    # Against the store too: a later run offering an old, higher reading between stored ones.
    spool.meter(CP, "2025-03-01T10:25:00Z", 150.0)  # above the stored 102.0 at 10:30
    spool.meter(CP, "2025-03-01T10:40:00Z", 101.5)  # below the stored 102.0 at 10:30
    report = load_spool(store, tmp_path / "spool")
    assert report.counts.rows_quarantined == 2
    reasons = _quarantine(store)
    assert any("above the later reading 102 kWh" in r for r in reasons)
    assert any("101.5 kWh" in r and "below 102 kWh" in r for r in reasons)
    spool.close()


def test_bad_records_are_quarantined_with_a_reason_and_counted(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool")
    spool.meter(CP, "2099-01-01T00:00:00Z", 10.0)                               # far future
    spool.meter(CP, "2025-03-01T10:00:00", 10.0)                                # no UTC offset
    spool.call(CP, "MeterValues", {"connectorId": 1, "meterValue": [
        {"timestamp": "2025-03-01T10:00:00Z", "sampledValue": [{"value": "ten"}]}]})  # not a number
    spool.raw(CP, "[2, 'single quotes']", '[4,"-1","FormationViolation","frame is not valid JSON",{}]')
    spool.call(CP, "FlyToTheMoon", {})
    spool.stop(CP, 424242, 5000, "2025-03-01T11:00:00Z")                        # never started
    tx = spool.start(CP, 9_000, "2025-03-01T12:00:00Z")
    spool.stop(CP, tx, 8_000, "2025-03-01T13:00:00Z")                           # meterStop < meterStart
    spool.meter(CP, "2025-03-01T10:00:00Z", 0.0, power_w=-50)                   # negative power
    spool.close()
    report = load_spool(store, tmp_path / "spool")
    counts = report.counts
    assert counts.rows_in == 9 == counts.rows_stored + counts.rows_quarantined
    assert counts.rows_quarantined == 8
    reasons = "\n".join(_quarantine(store))
    for expected in ("plausible_time", "has no UTC offset", "'ten' is not a number",
                     "CALLERROR FormationViolation", "CALLERROR NotImplemented",
                     "no StartTransaction for transaction ocpp:ZPR100001:424242",
                     "meterStop 8 kWh is below meterStart 9 kWh", "meter_values.power_w"):
        assert expected in reasons
    raws = [r[0] for r in store.execute("SELECT raw FROM quarantine").fetchall()]
    assert any("single quotes" in raw for raw in raws)  # the spool line is kept whole
    # The session whose stop was refused stays open with its start.
    [session] = _rows(store, "SELECT meter_start_kwh, end_utc FROM sessions")
    assert session == {"meter_start_kwh": 9.0, "end_utc": None}


def test_samples_of_one_instant_merge_and_contradictions_are_refused(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool")
    spool.meter(CP, "2025-03-01T10:00:00Z", 50.0)
    spool.meter(CP, "2025-03-01T10:00:00Z", power_w=7000)    # same instant, another measurand
    load_spool(store, tmp_path / "spool")
    [row] = _rows(store, "SELECT energy_register_kwh, power_w FROM meter_values")
    assert row == {"energy_register_kwh": 50.0, "power_w": 7000.0}
    spool.meter(CP, "2025-03-01T10:00:00Z", 50.0, power_w=6500)  # contradicts the stored power
    report = load_spool(store, tmp_path / "spool")
    assert report.counts.rows_quarantined == 1
    assert "contradicts the stored row: power_w stored 7000.0 vs 6500.0" in _quarantine(store)[0]
    assert _rows(store, "SELECT power_w FROM meter_values") == [{"power_w": 7000.0}]
    spool.close()


def test_a_charger_known_from_the_cloud_keeps_its_id_and_row(tmp_path, store):
    cloud_id = "c0000000-0000-4000-8000-00000000000a"
    with IngestRun(store, "zaptec_files") as run:
        run.admit(["{}"], {"chargers": frame_for("chargers", [{
            "charger_id": cloud_id, "device_id": CP, "installation_id": "inst-1", "name": "Plass 1",
            "model": "Pro", "_record": 0}])}, record_table="chargers")
    spool = SpoolBuilder(tmp_path / "spool")
    _basic_session(spool)
    spool.close()
    load_spool(store, tmp_path / "spool")
    [charger] = _rows(store, "SELECT * FROM chargers")
    assert (charger["charger_id"], charger["name"], charger["source"]) == (cloud_id, "Plass 1", "zaptec_files")
    assert {r[0] for r in store.execute("SELECT DISTINCT charger_id FROM meter_values").fetchall()} == {cloud_id}
    [session] = _rows(store, "SELECT charger_id, installation_id FROM sessions")
    assert session == {"charger_id": cloud_id, "installation_id": "inst-1"}


def test_firmware_updates_in_one_batch_end_with_the_latest(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool")
    for version in ("2.1.0.0", "2.2.0.0", "2.3.1.2"):
        spool.call(CP, "BootNotification", {"chargePointVendor": "Zaptec", "chargePointModel": "Go",
                                            "firmwareVersion": version})
    spool.close()
    report = load_spool(store, tmp_path / "spool")
    assert report.counts.rows_quarantined == 0 and report.phases == 3
    assert _rows(store, "SELECT firmware_version, model FROM chargers") == [
        {"firmware_version": "2.3.1.2", "model": "Go"}]


def test_segments_are_read_in_order_and_checkpointed(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool", max_segment_bytes=600)
    for minute in range(12):
        spool.meter(CP, f"2025-03-01T10:{minute:02d}:00Z", 100.0 + minute)
    spool.close()
    report = load_spool(store, tmp_path / "spool")
    assert report.segments_read > 3 and report.counts.rows_stored == 12
    progress = pl.DataFrame(_rows(store, "SELECT * FROM ocpp_spool_progress ORDER BY segment"))
    assert progress["done"].all() and progress["lines_loaded"].sum() == 12


SAMPLE_OCPP = Path(__file__).resolve().parents[2] / "data" / "sample" / "ocpp"


@pytest.mark.skipif(not any(SAMPLE_OCPP.glob("*.jsonl")), reason="no bundled OCPP logs")
def test_message_logs_load_with_their_own_transaction_ids(tmp_path, store):
    logs = sorted(SAMPLE_OCPP.glob("*.jsonl"))
    written = spool_from_message_logs(logs, tmp_path / "spool")
    report = load_spool(store, tmp_path / "spool")
    assert report.lines_read == written and report.counts.rows_quarantined == 0
    expected = {}
    for log in logs:
        frames = [json.loads(line)["message"] for line in log.read_text().splitlines() if line.strip()]
        answers = {f[1]: f[2] for f in frames if f[0] == 3}
        for frame in frames:
            if frame[0] == 2 and frame[2] == "StartTransaction":
                expected[f"ocpp:{log.stem}:{answers[frame[1]]['transactionId']}"] = frame[3]["meterStart"]
    stored = dict(store.execute("SELECT session_id, meter_start_kwh FROM sessions").fetchall())
    assert stored.keys() == expected.keys()
    assert all(stored[k] * 1000 == pytest.approx(v) for k, v in expected.items())
    assert store.execute("SELECT count(*) FROM sessions WHERE energy_kwh IS NULL").fetchall()[0][0] == 0


def test_hostile_lines_are_quarantined_not_fatal(tmp_path, store):
    spool = SpoolBuilder(tmp_path / "spool")
    spool.meter(CP, "2025-03-01T10:00:00Z", 10.0)
    deep = '[2,"d","DataTransfer",{"vendorId":"x","data":' + "[" * 50_000 + "]" * 50_000 + "}]"
    spool.raw(CP, deep, '[3,"d",{}]')
    spool.raw(CP, json.dumps([2, "y", "MeterValues", {"connectorId": 1, "meterValue": [
        {"timestamp": "0001-01-01T00:00:00+01:00", "sampledValue": [{"value": "1"}]}]}]), '[3,"y",{}]')
    spool.raw(CP, json.dumps([2, "h", "StartTransaction", {"connectorId": 1, "idTag": "A",
                                                          "meterStart": 10**400, "timestamp": "2025-03-01T10:00:00Z"}]),
              '[3,"h",{"idTagInfo":{"status":"Accepted"},"transactionId":5}]')
    spool.raw(CP, json.dumps([2, "s", "Authorize", {"idTag": "\udcff"}]), '[3,"s",{}]')
    index = spool.writer.active_index
    spool.close()
    with open(tmp_path / "spool" / segment_name(index, sealed=True), "ab") as handle:
        handle.write(b'{"ts":"2025-03-01T12:00:00+00:00","charge_point_id":"CP","direction":"in",'
                     b'"message":"[2,\\"b\\",\\"Authorize\\",{\\"idTag\\":\\"\xe6\xff\\"}]"}\n')
    report = load_spool(store, tmp_path / "spool")
    assert (report.counts.rows_in, report.counts.rows_stored, report.counts.rows_quarantined) == (6, 1, 5)
    reasons = "\n".join(_quarantine(store))
    for expected in ("nests too deeply", "outside the years 1-9999", "beyond any meter's register",
                     "lone surrogate", "not valid UTF-8"):
        assert expected in reasons
