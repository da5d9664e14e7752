"""Incremental sync from the fake into the store: full, incremental, resumed, storms, bad pages.

Most run through both session listings (``chargehistory`` and ``archived``), which must give
the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from zapanalytics.ingest.zaptec import sync as zaptec_sync
from zapanalytics.ingest.zaptec.api import ZaptecApiError
from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.ingest.zaptec.history import HistoryWindow, SyncStopped, plan_windows
from zapanalytics.ingest.zaptec.records import parse_zaptec_time
from zapanalytics.ingest.zaptec.sync import (
    DEFAULT_OVERLAP,
    HISTORY_START_UTC,
    read_sync_state,
    sync_zaptec,
)
from zapanalytics.testing import store_snapshot
from zapanalytics.testing.zaptec_fake import ZaptecFake

from .conftest import NOW, make_account

PAGE = 10  # small pages so a 20-day history spans many of them
ENDPOINTS = ["chargehistory", "archived"]
LISTING = {"chargehistory": "/api/chargehistory", "archived": "/api/sessions/archived"}


def _sync(con, client, *, now=NOW, **options):
    options.setdefault("page_size", PAGE)
    options.setdefault("pages_per_batch", 2)
    options.setdefault("endpoint", "chargehistory")
    return sync_zaptec(con, client, now=lambda: now, **options)


def _clean_snapshot(store_factory, make_client, fake, *, now=NOW, name="clean", **options):
    con = store_factory(name)
    _sync(con, make_client(fake), now=now, **options)
    return store_snapshot(con), store_snapshot(con, ("zaptec_sync_state",))


def _history_requests(fake: ZaptecFake, since_index: int = 0, endpoint="chargehistory"):
    return [r for r in fake.log[since_index:] if r.path == LISTING[endpoint]]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_full_sync_maps_every_session(fake, make_client, store_factory, account, endpoint):
    con = store_factory()
    result = _sync(con, make_client(fake), endpoint=endpoint)
    assert result.endpoint == endpoint
    assert len(_history_requests(fake, endpoint=endpoint)) == result.history_pages

    items = [s.item for s in account.sessions]
    counts = result.counts
    assert counts.rows_in == counts.rows_stored + counts.rows_quarantined
    assert counts.rows_quarantined == 0
    assert result.history_pages == math.ceil(len(items) / PAGE)
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == len(items)
    n_details = sum(len(i.get("EnergyDetails") or []) for i in items)
    assert con.execute("SELECT count(*) FROM energy_details").fetchall()[0][0] == n_details

    rows = {r["session_id"]: r for r in con.sql("SELECT * FROM sessions").pl().to_dicts()}
    voids = [i for i in items if i["CommitMetadata"] & 32]
    offline = [i for i in items if i["CommitMetadata"] & 2]
    assert voids and offline
    for item in voids:
        row = rows[item["Id"]]
        assert row["is_void"] and row["replaced_by_session_id"] == item["ReplacedBySessionId"]
        assert row["replaced_by_session_id"] in rows
    for item in offline:
        row = rows[item["Id"]]
        assert row["is_offline"]
        # The real end is CommitEndDateTime; the cloud closed the session days later.
        assert row["end_utc"] == parse_zaptec_time(item["CommitEndDateTime"], "c")
        assert row["cloud_end_utc"] - row["end_utc"] > dt.timedelta(hours=20)

    # Meter start/stop come from the SignedSession's B and E readings.
    signed = [i for i in items if i.get("SignedSession")]
    for item in signed:
        payload = json.loads(item["SignedSession"].split("|", 1)[1])
        row = rows[item["Id"]]
        assert row["meter_start_kwh"] == payload["RD"][0]["RV"]
        assert row["meter_stop_kwh"] == payload["RD"][-1]["RV"]

    # EnergyDetails that do not add up to Energy: stored and flagged, the rest not.
    flagged = {sid for sid, r in rows.items() if r["details_mismatch"]}
    expected = {
        i["Id"]
        for i in items
        if i.get("EnergyDetails")
        and abs(sum(p["Energy"] for p in i["EnergyDetails"]) - i["Energy"]) > 0.01
    }
    assert expected and flagged == expected
    assert result.sessions_flagged == len(expected)
    for sid in expected:
        assert rows[sid]["energy_kwh"] - rows[sid]["energy_details_sum_kwh"] == pytest.approx(0.5)

    states = con.execute(
        "SELECT state_id, state_name, value FROM charger_states ORDER BY state_id"
    ).fetchall()
    assert (-1, "Pulse", None) in states
    assert any(s[0] == 501 and s[1] == "VoltagePhase1" and float(s[2]) > 200 for s in states)
    installation = con.execute("SELECT timezone, network_type, phase_count FROM installations")
    assert installation.fetchall() == [("Europe/Oslo", "TN", 3)]
    # Chargers missing CircuitId in the list got theirs from the hierarchy (or none at all).
    circuits = dict(con.execute("SELECT charger_id, circuit_id FROM chargers").fetchall())
    assert circuits == {c["Id"]: c.get("CircuitId") for c in account.chargers}

    state = read_sync_state(con, next(iter(account.installations)))
    assert state.cursor_utc == NOW
    # The charger list carries no firmware; the sessions do, and the chargers get it.
    firmware = con.execute("SELECT DISTINCT firmware_version FROM chargers").fetchall()
    assert firmware == [("5.0.2.1",)]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_second_sync_asks_each_charger_from_its_last_session_and_matches_a_clean_sync(
    start_fake, make_client, store_factory, endpoint
):
    """Sync at T1, then at T2: the second asks each charger from its last stored session
    less the overlap, and finds the late offline sessions that started before T1 but reached
    the cloud after it."""
    account = make_account(days=30, offline_fraction=0.15)
    t1 = dt.datetime(2025, 3, 15, tzinfo=dt.UTC)
    t2 = dt.datetime(2025, 4, 5, tzinfo=dt.UTC)
    fake = start_fake(account, rate_limit=None, now=t1)
    late = [
        s for s in account.sessions if s.start < t1 and s.arrival is not None and s.arrival > t1
    ]
    assert late, "the fixture needs a session committed late across the first sync"

    con = store_factory("incremental")
    first = _sync(con, make_client(fake), now=t1, endpoint=endpoint)
    stored = {r[0] for r in con.execute("SELECT session_id FROM sessions").fetchall()}
    assert not {s.item["Id"] for s in late} & stored
    last_start = dict(
        con.execute("SELECT charger_id, max(start_utc) FROM sessions GROUP BY 1").fetchall()
    )

    fake.now = t2
    mark = len(fake.log)
    second = _sync(con, make_client(fake), now=t2, endpoint=endpoint)
    requests = _history_requests(fake, mark, endpoint)
    first_pages = {
        r.query["chargerid"]: r.query["from"] for r in requests if "cursor" not in r.query
    }
    assert first_pages == {
        charger_id: (start - DEFAULT_OVERLAP).strftime("%Y-%m-%dT%H:%M:%SZ")
        for charger_id, start in last_start.items()
    }
    assert {r.query["to"] for r in requests} == {"2025-04-05T00:00:00Z"}
    assert second.history_pages == len(requests) < first.history_pages + second.history_pages - 1
    stored = {r[0] for r in con.execute("SELECT session_id FROM sessions").fetchall()}
    assert {s.item["Id"] for s in late} <= stored
    assert stored == {s.item["Id"] for s in account.sessions if s.arrival <= t2}

    clean, clean_state = _clean_snapshot(
        store_factory, make_client, fake, now=t2, endpoint=endpoint
    )
    incremental = store_snapshot(con)
    # /state is a snapshot per poll: the incremental store also keeps the T1 snapshot.
    # The meter values derived from those snapshots are kept likewise.
    for table in ("charger_states", "meter_values"):
        rows, clean_rows = set(incremental.pop(table)), set(clean.pop(table))
        assert clean_rows < rows, table
        assert all(row[1] <= t1 for row in rows - clean_rows), table
    assert incremental == clean
    assert store_snapshot(con, ("zaptec_sync_state",)) == clean_state


class _Killed(Exception):
    pass


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_sync_killed_after_n_pages_resumes_identical(
    fake, make_client, store_factory, account, endpoint
):
    con = store_factory("killed")

    def kill_at_page(installation_id, page_index, total):
        if page_index == 5:
            raise _Killed

    with pytest.raises(_Killed):
        _sync(con, make_client(fake), on_page=kill_at_page, endpoint=endpoint)
    status = con.execute("SELECT status FROM ingest_runs").fetchall()
    assert status == [("failed",)]
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == 4 * PAGE

    mark = len(fake.log)
    resumed = _sync(con, make_client(fake), endpoint=endpoint)
    # The stored pages are the resume point: each charger is asked for from its last
    # stored session, not from the start of history.
    assert all(w.charger_id and w.from_utc > HISTORY_START_UTC for w in resumed.windows)
    assert len(_history_requests(fake, mark, endpoint)) == resumed.history_pages
    assert resumed.history_pages < math.ceil(len(account.sessions) / PAGE)

    clean, clean_state = _clean_snapshot(store_factory, make_client, fake, endpoint=endpoint)
    assert store_snapshot(con) == clean
    assert store_snapshot(con, ("zaptec_sync_state",)) == clean_state


def test_sync_killed_while_storing_a_batch_resumes_identical(
    fake, make_client, store_factory, monkeypatch
):
    con = store_factory("between")
    real_admit = zaptec_sync.admit_history_pages
    calls = []

    def failing_admit(run, batch, **options):
        calls.append(len(batch))
        if len(calls) == 3:  # the third batch dies before its transaction commits
            raise _Killed
        return real_admit(run, batch, **options)

    monkeypatch.setattr(zaptec_sync, "admit_history_pages", failing_admit)
    with pytest.raises(_Killed):
        _sync(con, make_client(fake))
    monkeypatch.setattr(zaptec_sync, "admit_history_pages", real_admit)
    assert calls == [2, 2, 2]
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == 4 * PAGE
    _sync(con, make_client(fake))
    clean, _ = _clean_snapshot(store_factory, make_client, fake)
    assert store_snapshot(con) == clean


def test_5xx_storm_fails_clearly_and_leaves_whole_pages(fake, make_client, store_factory, account):
    con = store_factory("storm")
    storm = []

    def start_storm(installation_id, page_index, total):
        if page_index == 2 and not storm:
            storm.append(fake.inject("/api/chargehistory", 503, times=None))

    with pytest.raises(ZaptecApiError) as caught:
        _sync(con, make_client(fake), on_page=start_storm, prefetch=1)
    assert "HTTP 503" in str(caught.value) and "after 4 attempts" in str(caught.value)
    run = con.execute("SELECT status, error FROM ingest_runs").fetchall()[0]
    assert run[0] == "failed" and "HTTP 503" in run[1]

    # Whatever is stored is whole: every stored session has all its EnergyDetails.
    items = {s.item["Id"]: s.item for s in account.sessions}
    stored = con.execute(
        "SELECT s.session_id, count(d.ts_utc) FROM sessions s"
        " LEFT JOIN energy_details d USING (session_id) GROUP BY 1"
    ).fetchall()
    assert stored and len(stored) % PAGE == 0
    for session_id, n_details in stored:
        assert n_details == len(items[session_id].get("EnergyDetails") or [])

    fake.clear_faults()
    _sync(con, make_client(fake))
    clean, _ = _clean_snapshot(store_factory, make_client, fake)
    assert store_snapshot(con) == clean


def test_malformed_page_is_quarantined_and_stops_the_sync(
    fake, make_client, store_factory, account
):
    """A page still unreadable when fetched again is quarantined and ends the sync: storing
    later pages would move the chargers' windows past the sessions it held."""
    broken = '{"Pages": 9, "Data": [{"Id": "truncated'
    fake.inject("/api/chargehistory", 200, body=broken, query={"PageIndex": "1"}, times=2)
    bad_item = dict(account.sessions[0].item, Energy="12,5 kWh")
    account.add_sessions([bad_item])
    con = store_factory("malformed")
    with pytest.raises(SyncStopped) as stopped:
        _sync(con, make_client(fake), pages_per_batch=5)
    message = str(stopped.value)
    assert "\n" not in message and "page 1" in message and "JSON of another shape" not in message
    assert "not JSON" in message and "quarantined, sync stopped" in message
    run = con.execute(
        "SELECT status, error, rows_in, rows_stored, rows_quarantined FROM ingest_runs"
    )
    status, error, rows_in, rows_stored, rows_quarantined = run.fetchall()[0]
    assert status == "failed" and error.startswith("SyncStopped: GET /api/chargehistory page 1")
    assert rows_in == rows_stored + rows_quarantined

    quarantined = con.execute("SELECT reason, raw FROM quarantine ORDER BY raw").fetchall()
    reasons = {raw: reason for reason, raw in quarantined}
    assert reasons[broken].startswith("chargehistory page 1: not a readable page")
    item_raw = [raw for raw in reasons if raw != broken]
    assert len(item_raw) == 1 and "Energy: expected a number" in reasons[item_raw[0]]
    assert json.loads(item_raw[0])["Id"] == bad_item["Id"]
    # The page was asked for twice before it was given up, and nothing after it.
    pages = [r.query["pageindex"] for r in _history_requests(fake)]
    assert pages.count("1") == 2 and max(int(p) for p in pages) <= 2
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == PAGE - 1

    # Once the page reads again, the next sync goes on from the sessions before it.
    _sync(con, make_client(fake))
    stored = {r[0] for r in con.execute("SELECT session_id FROM sessions").fetchall()}
    assert stored == {s.item["Id"] for s in account.sessions} - {bad_item["Id"]}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_saved_responses_reingest_to_the_same_sessions(
    fake, make_client, store_factory, tmp_path, endpoint
):
    con = store_factory("api")
    _sync(con, make_client(fake), save_dir=tmp_path / "saved", endpoint=endpoint)
    folder = "chargehistory" if endpoint == "chargehistory" else "sessions_archived"
    assert (tmp_path / "saved" / "zaptec" / folder / "page_0000.json").exists()
    from_files = store_factory("files")
    counts = ingest_zaptec_dump(from_files, tmp_path / "saved")
    assert counts.rows_quarantined == 0
    exclude = frozenset({"ingested_at", "source"})
    for table in ("sessions", "energy_details", "charger_states", "installations", "chargers"):
        assert store_snapshot(con, (table,), exclude_columns=exclude) == store_snapshot(
            from_files, (table,), exclude_columns=exclude
        )


def test_several_installations_each_get_a_cursor(start_fake, make_client, store_factory):
    account = make_account(installations=2, chargers=2, days=10)
    fake = start_fake(account, rate_limit=None)
    con = store_factory("two")
    result = _sync(con, make_client(fake), price_area="NO1")
    assert sorted(result.installations) == sorted(account.installations)
    per_installation = dict(
        con.execute("SELECT installation_id, count(*) FROM sessions GROUP BY 1").fetchall()
    )
    expected = {}
    for s in account.sessions:
        expected[s.installation_id] = expected.get(s.installation_id, 0) + 1
    assert per_installation == expected
    cursors = con.execute("SELECT cursor_utc FROM zaptec_sync_state").fetchall()
    assert cursors == [(NOW,), (NOW,)]
    # A later sync without --price-area keeps the area set before.
    _sync(con, make_client(fake), installation_ids=[result.installations[0]])
    areas = con.execute("SELECT DISTINCT price_area FROM installations").fetchall()
    assert areas == [("NO1",)]


@pytest.mark.parametrize(
    ("endpoint", "filter_option"),
    [
        ("chargehistory", {"history_filter_field": "EndDateTime"}),
        ("archived", {"archived_filter_field": "recognizedDateTime"}),
    ],
)
def test_late_sessions_found_when_from_filters_on_arrival(
    start_fake, make_client, store_factory, endpoint, filter_option
):
    account = make_account(days=30, offline_fraction=0.15)
    t1, t2 = dt.datetime(2025, 3, 15, tzinfo=dt.UTC), dt.datetime(2025, 4, 5, tzinfo=dt.UTC)
    fake = start_fake(account, rate_limit=None, now=t1, **filter_option)
    con = store_factory("by_end")
    _sync(con, make_client(fake), now=t1, endpoint=endpoint)
    fake.now = t2
    _sync(con, make_client(fake), now=t2, endpoint=endpoint)
    stored = {r[0] for r in con.execute("SELECT session_id FROM sessions").fetchall()}
    assert stored == {s.item["Id"] for s in account.sessions if s.arrival <= t2}


def test_sync_respects_the_rate_limit_end_to_end(start_fake, account, store_factory):
    from zapanalytics.ingest.zaptec.api import ZaptecClient

    from .conftest import PASSWORD, USERNAME

    fake = start_fake(account)  # Zaptec's 10 requests/s, 429 above
    con = store_factory("rate")
    with ZaptecClient(USERNAME, PASSWORD, base_url=fake.base_url) as client:
        sync_zaptec(con, client, now=lambda: NOW, page_size=3, prefetch=3)
    assert len(fake.log) > 25
    assert fake.max_requests_per_second() <= 10
    assert not [r for r in fake.log if r.status == 429]


def test_plan_windows():
    now = dt.datetime(2025, 6, 1, 12, 30, 15, 999, tzinfo=dt.UTC)
    to = now.replace(microsecond=0)
    chargers = ["b", "a", "c"]
    # Nothing stored: one window over the installation's whole history.
    assert plan_windows("i", chargers, {}, now=now) == [
        HistoryWindow("i", None, HISTORY_START_UTC, to)
    ]
    cursors = {
        "a": dt.datetime(2025, 5, 20, tzinfo=dt.UTC),
        "b": dt.datetime(2025, 1, 10, tzinfo=dt.UTC),  # offline since January
        "gone": dt.datetime(2025, 5, 1, tzinfo=dt.UTC),  # no longer listed
    }
    windows = plan_windows("i", chargers, cursors, now=now)
    assert windows == [
        HistoryWindow("i", "a", dt.datetime(2025, 5, 13, tzinfo=dt.UTC), to),
        HistoryWindow("i", "b", dt.datetime(2025, 1, 3, tzinfo=dt.UTC), to),
        HistoryWindow("i", "c", HISTORY_START_UTC, to),  # nothing stored for it yet
    ]
    day = dt.timedelta(days=1)
    assert plan_windows("i", chargers, cursors, now=now, overlap=day)[0].from_utc.day == 19
    since = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert plan_windows("i", chargers, cursors, now=now, since=since) == [
        HistoryWindow("i", None, since, to)
    ]
    assert plan_windows("i", chargers, cursors, now=now, full=True) == [
        HistoryWindow("i", None, HISTORY_START_UTC, to)
    ]
    # A cursor after "now" (a charger clock ahead) never gives a window that ends first.
    ahead = {"a": now + 30 * day}
    assert plan_windows("i", ["a"], ahead, now=now)[0].from_utc == to
