"""Late sessions, both session listings, syncs that always end, aborted runs, real state lists.

The "Done when" checks run through ``zapanalytics ingest zaptec`` against the fake on
127.0.0.1, as a user would run them; the rest drive :func:`sync_zaptec` directly.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from zapanalytics.ingest.zaptec.api import ZaptecApiError, ZaptecNotFound
from zapanalytics.ingest.zaptec.history import HISTORY_START_UTC, SyncStopped
from zapanalytics.ingest.zaptec.records import (
    RecordError,
    history_item_from_archived,
    session_rows,
)
from zapanalytics.ingest.zaptec.sync import sync_zaptec
from zapanalytics.store import read_only_store
from zapanalytics.testing import store_snapshot
from zapanalytics.testing.zaptec_account import FakeData, archived_item
from zapanalytics.testing.zaptec_fake import CAPTIVE_PORTAL_HTML

from . import state_lists
from .conftest import NOW, make_account
from .test_cli_zaptec import _env, _run_cli

LISTING = {"chargehistory": "/api/chargehistory", "archived": "/api/sessions/archived"}
DAY = dt.timedelta(days=1)
#: The first sync of the late-session tests, and the second.
T1 = dt.datetime(2025, 4, 25, tzinfo=dt.UTC)
T2 = dt.datetime(2025, 5, 2, tzinfo=dt.UTC)


def _stored_ids(db) -> set[str]:
    con = read_only_store(db)
    try:
        return {r[0] for r in con.execute("SELECT session_id FROM sessions").fetchall()}
    finally:
        con.close()


# -- late sessions: a charger offline for 40 days ------------------------------------------


@pytest.mark.parametrize("endpoint", ["archived", "chargehistory"])
def test_charger_offline_40_days_gets_all_its_sessions_on_the_next_plain_sync(
    start_fake, tmp_path, endpoint
):
    account = make_account(days=60, offline_fraction=0.0, void_fraction=0.0)
    offline = account.chargers[1]["Id"]
    held = set(account.take_offline(offline, T1 - 40 * DAY, T1 + DAY))
    assert len(held) >= 35, "the charger needs a few weeks of sessions held back"
    # A plain sync: the newer listing where the cloud has it, else the older one.
    fake = start_fake(account, rate_limit=None, now=T1, serve_archived=endpoint == "archived")
    db = tmp_path / "late.duckdb"
    first = _run_cli(["ingest", "zaptec", "--db", str(db)], _env(fake))
    assert first.returncode == 0, first.stderr
    assert not held & _stored_ids(db), "held-back sessions cannot be there yet"

    fake.now = T2  # the charger came back online at T1 + 1 day and uploaded them
    second = _run_cli(["ingest", "zaptec", "--db", str(db), "--json"], _env(fake))
    assert second.returncode == 0, second.stderr
    stored = _stored_ids(db)
    assert held <= stored
    assert stored == {s.item["Id"] for s in account.sessions if s.arrival <= T2}
    # They started up to 40 days before the first sync, far beyond any overlap from the
    # time of the last sync: the offline charger's window started before the gap.
    starts = [s.start for s in account.sessions if s.item["Id"] in held]
    assert min(starts) < T1 - 35 * DAY
    result = json.loads(second.stdout)
    assert result["endpoint"] == endpoint
    window = next(w for w in result["windows"] if w["charger_id"] == offline)
    assert dt.datetime.fromisoformat(window["from_utc"]) < T1 - 40 * DAY
    listing = [r for r in fake.log if r.path == LISTING[endpoint]]
    assert listing and not [r for r in fake.log if r.status == 500]


# -- every sync ends -----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["chargehistory", "archived"])
def test_unreadable_page_ends_the_sync_within_the_retry_budget(
    start_fake, account, tmp_path, endpoint
):
    """A captive portal answers the session listing with HTML and status 200."""
    fake = start_fake(account)  # Zaptec's 10 requests/s, 429 above
    body = CAPTIVE_PORTAL_HTML + "<!--" + "padding " * 25_000 + "-->"
    fake.inject(
        LISTING[endpoint], 200, body=body, headers={"Content-Type": "text/html"}, times=None
    )
    db = tmp_path / "portal.duckdb"
    args = ["ingest", "zaptec", "--db", str(db), "--retries", "0", "--endpoint", endpoint]
    done = _run_cli(args, _env(fake), timeout=120)

    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: GET {LISTING[endpoint]} page 0 for the installation")
    assert "is not JSON (text/html," in error and error.endswith("quarantined, sync stopped")
    assert "Traceback" not in done.stderr
    # Fetched once more, then given up: no loop over pages 0, 0, 1, 1, ...
    assert len(fake.requests(LISTING[endpoint])) == 2
    assert len(fake.log) <= 10
    assert fake.max_requests_per_second() <= 10
    assert not [r for r in fake.log if r.status == 429]

    con = read_only_store(db)
    try:
        runs = con.execute("SELECT status, error FROM ingest_runs").fetchall()
        quarantined = con.execute("SELECT table_name, reason, raw FROM quarantine").fetchall()
    finally:
        con.close()
    assert len(runs) == 1 and runs[0][0] == "failed"
    assert runs[0][1] == "SyncStopped: " + error.removeprefix("error: ")
    [(table, reason, raw)] = quarantined
    assert table == "sessions" and reason.startswith(f"{endpoint} page 0: not a readable page")
    # The raw body is kept as a bounded prefix.
    assert raw.startswith("<!DOCTYPE html>") and body.startswith(raw)
    assert 1_000 < len(raw) <= 65_536 < len(body)


def test_pages_and_cursors_cannot_loop(fake, make_client, store_factory):
    """``hasMore`` with a cursor already given stops the listing, and so does the budget."""
    fake.inject(
        "/api/sessions/archived",
        200,
        body='{"sessions":[],"cursor":"c1","hasMore":true}',
        times=None,
    )
    con = store_factory("loop")
    with pytest.raises(SyncStopped, match="cursor it had already given"):
        sync_zaptec(con, make_client(fake), endpoint="archived", with_states=False)
    assert len(fake.requests("/api/sessions/archived")) == 2
    fake.clear_faults()

    fake.inject("/api/chargehistory", 200, body='{"Pages":100000,"Data":[]}', times=1)
    result = sync_zaptec(con, make_client(fake), endpoint="chargehistory", with_states=False)
    assert result.history_pages == 1  # an empty page ends the listing, whatever Pages says


def test_page_limit_stops_the_sync_and_the_next_goes_on(fake, make_client, store_factory):
    con = store_factory("limited")
    options = dict(endpoint="archived", page_size=10, now=lambda: NOW)
    with pytest.raises(SyncStopped, match="stopped after 3 pages"):
        sync_zaptec(con, make_client(fake), max_pages=3, **options)
    assert con.execute("SELECT count(*) FROM sessions").fetchall() == [(30,)]
    sync_zaptec(con, make_client(fake), **options)
    clean = store_factory("clean")
    sync_zaptec(clean, make_client(fake), **options)
    assert store_snapshot(con) == store_snapshot(clean)


# -- killed runs -----------------------------------------------------------------------------


_KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from zapanalytics.ingest.door import IngestRun
    from zapanalytics.store import open_store

    con = open_store(sys.argv[1])
    run = IngestRun(con, "zaptec_api").__enter__()
    print(run.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_run_left_running_by_a_killed_process_is_marked_aborted_by_the_next(fake, tmp_path):
    db = tmp_path / "killed.duckdb"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore::FutureWarning"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    dead_run = killed.stdout.strip()
    con = read_only_store(db)
    try:
        assert con.execute("SELECT run_id, status FROM ingest_runs").fetchall() == [
            (dead_run, "running")
        ]
    finally:
        con.close()

    done = _run_cli(["ingest", "zaptec", "--db", str(db)], _env(fake))
    assert done.returncode == 0, done.stderr
    con = read_only_store(db)
    try:
        runs = con.execute(
            "SELECT run_id, status, error, finished_at FROM ingest_runs ORDER BY started_at"
        ).fetchall()
    finally:
        con.close()
    (old_id, old_status, old_error, old_end), (new_id, new_status, _, _) = runs
    assert (old_id, old_status, new_status) == (dead_run, "aborted", "ok")
    assert old_error == (
        f"aborted: its process ended before the run finished (found by run {new_id})"
    )
    assert old_end is None  # when it died is not known


def test_runs_alive_in_this_process_are_not_aborted(store_factory):
    from zapanalytics.ingest.door import IngestRun

    con = store_factory("nested")
    with IngestRun(con, "outer") as outer, IngestRun(con, "inner") as inner:
        assert inner.aborted_runs == [] and outer.aborted_runs == []
    statuses = dict(con.execute("SELECT source, status FROM ingest_runs").fetchall())
    assert statuses == {"outer": "ok", "inner": "ok"}


# -- both listings, one set of rows -----------------------------------------------------------


def test_both_listings_store_the_same_rows(fake, make_client, store_factory):
    stores = {}
    for endpoint in ("chargehistory", "archived"):
        con = store_factory(endpoint)
        result = sync_zaptec(con, make_client(fake), endpoint=endpoint, now=lambda: NOW)
        assert result.endpoint == endpoint and result.counts.rows_quarantined == 0
        stores[endpoint] = store_snapshot(
            con,
            ("sessions", "energy_details", "chargers"),
            exclude_columns=frozenset({"ingested_at"}),
        )
    assert stores["chargehistory"] == stores["archived"]
    assert len(stores["archived"]["sessions"]) > 50


def test_auto_takes_the_listing_the_cloud_has(start_fake, account, make_client, store_factory):
    without_archived = start_fake(account, rate_limit=None, serve_archived=False)
    con = store_factory("old_cloud")
    result = sync_zaptec(con, make_client(without_archived), now=lambda: NOW)
    assert result.endpoint == "chargehistory"
    assert [r.status for r in without_archived.requests("/api/sessions/archived")] == [404]
    assert con.execute("SELECT count(*) FROM sessions").fetchall() == [(len(account.sessions),)]

    retired = start_fake(account, rate_limit=None, serve_chargehistory=False)
    result = sync_zaptec(store_factory("new_cloud"), make_client(retired), now=lambda: NOW)
    assert result.endpoint == "archived" and not retired.requests("/api/chargehistory")

    # Asked for by name, a missing listing is an error, not a silent switch.
    with pytest.raises(ZaptecNotFound):
        sync_zaptec(store_factory("named"), make_client(without_archived), endpoint="archived")
    # A 5xx storm is not "no such listing": auto does not switch on it either.
    storm = start_fake(account, rate_limit=None)
    storm.inject("/api/sessions/archived", 503, times=None)
    with pytest.raises(ZaptecApiError, match="HTTP 503 after 4 attempts"):
        sync_zaptec(store_factory("storm"), make_client(storm))
    assert not storm.requests("/api/chargehistory")


def test_full_refetches_everything_and_changes_nothing(fake, make_client, store_factory):
    con = store_factory("full")
    sync_zaptec(con, make_client(fake), now=lambda: NOW)
    before = store_snapshot(con)
    again = sync_zaptec(con, make_client(fake), full=True, now=lambda: NOW)
    assert [(w.charger_id, w.from_utc) for w in again.windows] == [(None, HISTORY_START_UTC)]
    assert again.counts.rows_in > len(before["sessions"])
    assert store_snapshot(con) == before


def test_archived_session_maps_like_its_charge_history_item(account):
    """An archived item in the shape the public clients read maps to the charge-history row."""
    item = {
        "id": "b1e5a5f0-1111-4c8b-9d2f-000000000001",
        "externalId": "tx-42",
        "chargerId": "c0000000-0000-0000-0000-000000000001",
        "deviceId": "ZAP123456",
        "deviceName": "Carport",
        "chargerFirmwareVersion": "3.2.1.0",
        "startDateTime": "2026-01-05T10:00:00Z",
        "endDateTime": "2026-01-05T11:30:00Z",
        "recognizedDateTime": "2026-02-14T08:00:05Z",
        "energy": 12.34,
        "tokenName": "RFID-ABC",
        "offline": True,
        "reliableClock": False,
        "stoppedByRfid": True,
        "signed": False,
        "voided": False,
        "aborted": False,
        "ocppNative": False,
        "externallyAbandoned": False,
        "authorizedUser": {"id": "u-1", "email": "driver@example.com", "fullName": "Anne Driver"},
        "energyDetails": [
            {"timestamp": "2026-01-05T10:15:00Z", "energy": 5.0},
            {"timestamp": "2026-01-05T11:30:00Z", "energy": 7.34},
        ],
    }
    row, details = session_rows(history_item_from_archived(item), installation_id="inst")
    utc = dt.UTC
    assert row["end_utc"] == dt.datetime(2026, 1, 5, 11, 30, tzinfo=utc)
    assert row["cloud_end_utc"] == dt.datetime(2026, 2, 14, 8, 0, 5, tzinfo=utc)
    assert row["commit_metadata"] == 2 | 8 and row["is_offline"] and not row["is_void"]
    assert (row["user_id"], row["user_name"], row["token_name"]) == (
        "u-1",
        "Anne Driver",
        "RFID-ABC",
    )
    assert (row["firmware_version"], row["external_id"]) == ("3.2.1.0", "tx-42")
    assert [d["energy_kwh"] for d in details] == [5.0, 7.34] and not row["details_mismatch"]
    with pytest.raises(RecordError, match="voided"):
        history_item_from_archived({**item, "voided": "no"})
    # Every session of the fake account: the archived form maps to the very same rows.
    for session in account.sessions:
        assert session_rows(history_item_from_archived(archived_item(session.item))) == (
            session_rows(session.item)
        )


# -- real state lists ------------------------------------------------------------------------


def test_real_state_lists_ingest_without_quarantining_valid_states(start_fake, tmp_path):
    go = state_lists.state_items(state_lists.GO_CHARGER_ID, state_lists.GO_STATES)
    pro = state_lists.state_items(state_lists.PRO_CHARGER_ID, state_lists.PRO_STATES)
    installation = {
        "Id": state_lists.INSTALLATION_ID,
        "Name": "Enebolig",
        "NetworkType": 4,
        "TimeZoneIanaName": "Europe/Oslo",
        "MaxCurrent": 32.0,
    }
    chargers = [
        {"Id": charger_id, "DeviceId": serial, "InstallationId": state_lists.INSTALLATION_ID}
        for charger_id, serial in (
            (state_lists.GO_CHARGER_ID, "ZAP041234"),
            (state_lists.PRO_CHARGER_ID, "ZPR204321"),
        )
    ]
    data = FakeData(installations=[installation], chargers=chargers, observations=[*go, *pro])
    fake = start_fake(data, rate_limit=None)
    db = tmp_path / "states.duckdb"
    done = _run_cli(["ingest", "zaptec", "--db", str(db), "--json"], _env(fake))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows_quarantined"] == 0

    con = read_only_store(db)
    try:
        assert con.execute("SELECT count(*) FROM quarantine").fetchall() == [(0,)]
        states = {
            (charger_id, state_id): (ts, value)
            for charger_id, ts, state_id, value in con.execute(
                "SELECT charger_id, ts_utc, state_id, value FROM charger_states"
            ).fetchall()
        }
        registers = con.execute(
            "SELECT charger_id, ts_utc, energy_register_kwh FROM meter_values"
            " WHERE source = 'zaptec_ocmf' ORDER BY charger_id"
        ).fetchall()
        pro_voltage = con.execute(
            "SELECT max(voltage_l1_v), max(power_w) FROM meter_values"
            " WHERE source = 'zaptec_state' AND charger_id = ?",
            [state_lists.PRO_CHARGER_ID],
        ).fetchall()
    finally:
        con.close()
    assert len(states) == len(go) + len(pro)
    go_id, pro_id = state_lists.GO_CHARGER_ID, state_lists.PRO_CHARGER_ID
    assert states[(pro_id, 150)][1] == "Wifi" and states[(go_id, 150)][1] == "LTE"
    assert states[(pro_id, 802)][1] == "ZPR204321.local"
    assert states[(go_id, -1)][1] is None and states[(go_id, 722)][1] is None
    assert states[(go_id, 717)][1].startswith("\r\n")
    # One, two and three fraction digits, naive UTC.
    assert states[(go_id, 909)][0] == dt.datetime(2024, 12, 16, 13, 40, 52, 800_000, dt.UTC)
    assert states[(go_id, -2)][0] == dt.datetime(2025, 3, 10, 7, 58, 43, 520_000, dt.UTC)
    # The unsigned ZAPTEC GO fiscal record and the signed Pro one both give their register.
    assert registers == sorted(
        [
            (go_id, dt.datetime(2025, 3, 16, 16, tzinfo=dt.UTC), state_lists.GO_REGISTER_KWH),
            (
                pro_id,
                dt.datetime(2025, 3, 16, 15, 45, 0, 112_000, dt.UTC),
                state_lists.PRO_REGISTER_KWH,
            ),
        ]
    )
    assert pro_voltage == [(237.418, 11046.5986)]


def test_page_bodies_are_read_or_explained():
    from zapanalytics.ingest.zaptec.pages import (
        RawPage,
        describe_unreadable,
        parse_cursor_page,
        parse_envelope,
    )

    assert parse_cursor_page('{"sessions":[{"id":"a"}],"cursor":"c2","hasMore":true}') == (
        [{"id": "a"}],
        "c2",
        True,
    )
    assert parse_cursor_page('{"sessions":[],"cursor":null,"hasMore":false}') == ([], None, False)
    # "More" without a cursor to ask for it, or a cursor that is not text: unreadable.
    for body in (
        '{"sessions":[],"cursor":null,"hasMore":true}',
        '{"sessions":[],"cursor":7,"hasMore":false}',
        '{"Pages":1,"Data":[]}',
        "[]",
        CAPTIVE_PORTAL_HTML,
    ):
        assert parse_cursor_page(body) == (None, None, None), body
    assert parse_envelope('{"Pages":-1,"Data":[]}') == (None, None)
    assert parse_envelope('{"Pages":true,"Data":[]}') == (None, None)
    html = RawPage(0, CAPTIVE_PORTAL_HTML, None, content_type="text/html; charset=utf-8")
    assert describe_unreadable(html) == (
        f"not JSON (text/html, {len(CAPTIVE_PORTAL_HTML)} characters, beginning "
        "'<!DOCTYPE html><html><head><title>Wi-Fi login</title></head>')"
    )
    assert describe_unreadable(RawPage(0, "  ", None)) == "an empty body (no content type)"
    other = RawPage(0, '{"message":"maintenance"}', None, content_type="application/json")
    assert describe_unreadable(other).startswith("JSON of another shape (application/json")
