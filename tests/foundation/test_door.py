"""Bad input at the door: every bad record quarantined with a reason naming the field."""

from __future__ import annotations

import copy
import json

import pytest

from tests.conftest import dump_sessions, write_dump
from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.store import CONTRACT_TABLES, open_store


def _snapshot(con) -> dict[str, list[tuple]]:
    tables = [t for t in CONTRACT_TABLES if t != "ingest_runs"]
    return {
        t: sorted(
            con.execute(
                f'SELECT * EXCLUDE (run_id) FROM "{t}"' if t == "quarantine" else f'SELECT * FROM "{t}"'
            ).fetchall(),
            key=repr,
        )
        for t in tables
    }


def _bad(mutate) -> list[dict]:
    items = dump_sessions()
    bad = copy.deepcopy(items[0])
    bad["Id"] = "bad-0000"
    mutate(bad)
    return [*items, bad]


BAD_RECORDS = {
    "negative energy": (lambda s: s.update(Energy=-3.0), "sessions.energy_kwh"),
    "end before start": (
        lambda s: s.update(CommitEndDateTime="2025-10-24T15:00:00", EndDateTime="2025-10-24T15:00:00"),
        "end_not_before_start",
    ),
    "naive timestamp where an offset is required": (
        lambda s: s["EnergyDetails"][1].update(Timestamp="2025-10-24T16:15:00.01"),
        "EnergyDetails[1].Timestamp: naive timestamp",
    ),
    "unparseable timestamp": (
        lambda s: s.update(StartDateTime="24.10.2025 16:15"),
        "StartDateTime: not an ISO-8601 timestamp",
    ),
    "unknown enum value": (lambda s: s.update(CommitMetadata="Signed"), "CommitMetadata"),
    "far-future date": (lambda s: s.update(StartDateTime="2099-01-01T00:00:00"), "plausible_time"),
    "missing id": (lambda s: s.pop("Id"), "Id: missing"),
}


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_bad_record_is_quarantined_and_nothing_else_lost(tmp_path, kind):
    mutate, reason_part = BAD_RECORDS[kind]
    root = write_dump(tmp_path / "dump", _bad(mutate))
    con = open_store()
    counts = ingest_zaptec_dump(con, root)
    assert counts.rows_in == counts.rows_stored + counts.rows_quarantined
    assert counts.rows_quarantined == 1
    (table, reason, raw), = con.execute("SELECT table_name, reason, raw FROM quarantine").fetchall()
    assert table == "sessions"
    assert reason_part in reason
    assert json.loads(raw)["EnergyDetails"], "the raw payload is kept whole"
    # The four good sessions all arrived, with all their interval rows.
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == 4
    assert con.execute("SELECT count(*) FROM energy_details").fetchall()[0][0] == 13
    run = con.execute("SELECT rows_in, rows_stored, rows_quarantined, status FROM ingest_runs").fetchall()
    assert run == [(counts.rows_in, counts.rows_stored, 1, "ok")]


def test_unknown_network_type_is_quarantined(tmp_path):
    root = write_dump(tmp_path / "dump")
    path = next((root / "zaptec").glob("installation_*.json"))
    item = json.loads(path.read_text())
    item["NetworkType"] = 9
    path.write_text(json.dumps(item))
    con = open_store()
    ingest_zaptec_dump(con, root)
    reason, = con.execute("SELECT reason FROM quarantine WHERE table_name = 'installations'").fetchall()[0]
    assert "NetworkType" in reason


def test_malformed_json_page_is_quarantined_whole(tmp_path):
    root = write_dump(tmp_path / "dump")
    page = root / "zaptec" / "chargehistory" / "page_0001.json"
    page.write_text('{"Pages": 2, "Data": [{"Id": "x", ')
    con = open_store()
    counts = ingest_zaptec_dump(con, root)
    assert counts.rows_in == counts.rows_stored + counts.rows_quarantined
    reason, raw = con.execute("SELECT reason, raw FROM quarantine").fetchall()[0]
    assert "malformed JSON" in reason and raw.startswith('{"Pages": 2')
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == 2


def test_duplicate_key_with_different_content_is_quarantined(tmp_path):
    items = dump_sessions()
    twin = copy.deepcopy(items[1])
    twin["Energy"] = 99.0
    root = write_dump(tmp_path / "dump", [*items, twin], page_size=10)
    con = open_store()
    counts = ingest_zaptec_dump(con, root)
    assert counts.rows_quarantined == 1
    reason, raw = con.execute("SELECT reason, raw FROM quarantine").fetchall()[0]
    assert "duplicate key (session_id=" in reason and json.loads(raw)["Energy"] == 99.0
    assert con.execute("SELECT energy_kwh FROM sessions WHERE session_id LIKE '%2'").fetchall() == [(11.0,)]


def test_reingesting_changes_nothing(tmp_path):
    root = write_dump(tmp_path / "dump", _bad(BAD_RECORDS["negative energy"][0]))
    path = tmp_path / "s.duckdb"
    con = open_store(path)
    first = ingest_zaptec_dump(con, root)
    before = _snapshot(con)
    second = ingest_zaptec_dump(con, root)
    assert _snapshot(con) == before
    assert first == second
    runs = con.execute("SELECT count(*), sum(rows_quarantined) FROM ingest_runs").fetchall()[0]
    assert runs == (2, 2)


def test_reingest_without_price_area_keeps_the_users_setting(tmp_path):
    root = write_dump(tmp_path / "dump")
    con = open_store()
    ingest_zaptec_dump(con, root, price_area="NO1")
    ingest_zaptec_dump(con, root)
    assert con.execute("SELECT price_area FROM installations").fetchall() == [("NO1",)]
    ingest_zaptec_dump(con, root, price_area="NO2")
    assert con.execute("SELECT price_area FROM installations").fetchall() == [("NO2",)]
