"""Incremental sync from the fake into the store: full, incremental, resumed, storms, bad pages."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import pytest

from zapanalytics.ingest.zaptec import sync as zaptec_sync
from zapanalytics.ingest.zaptec.api import ZaptecApiError
from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.ingest.zaptec.records import parse_zaptec_time
from zapanalytics.ingest.zaptec.sync import (
    DEFAULT_OVERLAP,
    HISTORY_START_UTC,
    SyncState,
    plan_window,
    read_sync_state,
    sync_zaptec,
)
from zapanalytics.testing import store_snapshot
from zapanalytics.testing.zaptec_fake import ZaptecFake

from .conftest import NOW, make_account

PAGE = 10  # small pages so a 20-day history spans many of them


def _sync(con, client, *, now=NOW, **options):
    options.setdefault("page_size", PAGE)
    options.setdefault("pages_per_batch", 2)
    return sync_zaptec(con, client, now=lambda: now, **options)


def _clean_snapshot(store_factory, make_client, fake, *, now=NOW, name="clean"):
    con = store_factory(name)
    _sync(con, make_client(fake), now=now)
    return store_snapshot(con), store_snapshot(con, ("zaptec_sync_state",))


def _history_requests(fake: ZaptecFake, since_index: int = 0):
    return [r for r in fake.log[since_index:] if r.path == "/api/chargehistory"]


def test_full_sync_maps_every_session(fake, make_client, store_factory, account):
    con = store_factory()
    result = _sync(con, make_client(fake))

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
    assert state.cursor_utc == NOW and state.pending_next_page is None


def test_second_sync_fetches_only_new_pages_and_matches_a_clean_sync(
    start_fake, make_client, store_factory
):
    """Sync at T1, then at T2: the second asks from T1 − overlap and finds a late offline
    session that started before T1 but reached the cloud after it."""
    account = make_account(days=30, offline_fraction=0.15)
    t1 = dt.datetime(2025, 3, 15, tzinfo=dt.UTC)
    t2 = dt.datetime(2025, 4, 5, tzinfo=dt.UTC)
    fake = start_fake(account, rate_limit=None, now=t1)
    late = [
        s
        for s in account.sessions
        if t1 - DEFAULT_OVERLAP <= s.start < t1 and s.arrival is not None and s.arrival > t1
    ]
    assert late, "the fixture needs a session committed late across the cursor"

    con = store_factory("incremental")
    first = _sync(con, make_client(fake), now=t1)
    stored = {r[0] for r in con.execute("SELECT session_id FROM sessions").fetchall()}
    assert not {s.item["Id"] for s in late} & stored

    fake.now = t2
    mark = len(fake.log)
    second = _sync(con, make_client(fake), now=t2)
    requests = _history_requests(fake, mark)
    assert {r.query["from"] for r in requests} == {"2025-03-08T00:00:00Z"}
    assert {r.query["to"] for r in requests} == {"2025-04-05T00:00:00Z"}
    asked = [s for s in account.sessions if t1 - DEFAULT_OVERLAP <= s.start and s.arrival <= t2]
    assert second.history_pages == math.ceil(len(asked) / PAGE) == len(requests)
    assert second.history_pages < first.history_pages + second.history_pages - 1
    stored = {r[0] for r in con.execute("SELECT session_id FROM sessions").fetchall()}
    assert {s.item["Id"] for s in late} <= stored

    clean, clean_state = _clean_snapshot(store_factory, make_client, fake, now=t2)
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


def test_sync_killed_after_n_pages_resumes_identical(fake, make_client, store_factory):
    con = store_factory("killed")

    def kill_at_page(installation_id, page_index, total):
        if page_index == 5:
            raise _Killed

    with pytest.raises(_Killed):
        _sync(con, make_client(fake), on_page=kill_at_page)
    status = con.execute("SELECT status FROM ingest_runs").fetchall()
    assert status == [("failed",)]
    state = read_sync_state(
        con, con.execute("SELECT installation_id FROM installations").fetchall()[0][0]
    )
    assert state.pending_next_page == 4  # pages 0–3 were stored in two batches of two

    mark = len(fake.log)
    resumed = _sync(con, make_client(fake))
    assert resumed.windows[state.installation_id].resumed
    assert int(_history_requests(fake, mark)[0].query["pageindex"]) == 4

    clean, clean_state = _clean_snapshot(store_factory, make_client, fake)
    assert store_snapshot(con) == clean
    assert store_snapshot(con, ("zaptec_sync_state",)) == clean_state


def test_sync_killed_between_store_and_checkpoint_resumes_identical(
    fake, make_client, store_factory, monkeypatch
):
    con = store_factory("between")
    real_write = zaptec_sync._write_sync_state
    calls = []

    def flaky_write(con_, state):
        calls.append(state.pending_next_page)
        if len(calls) == 3:  # after the second batch is stored, before its checkpoint
            raise _Killed
        real_write(con_, state)

    monkeypatch.setattr(zaptec_sync, "_write_sync_state", flaky_write)
    with pytest.raises(_Killed):
        _sync(con, make_client(fake))
    monkeypatch.setattr(zaptec_sync, "_write_sync_state", real_write)
    assert calls == [0, 2, 4]
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


def test_malformed_page_is_quarantined_with_its_raw_json(fake, make_client, store_factory, account):
    broken = '{"Pages": 9, "Data": [{"Id": "truncated'
    fake.inject("/api/chargehistory", 200, body=broken, query={"PageIndex": "1"}, times=2)
    bad_item = dict(account.sessions[-1].item, Energy="12,5 kWh")
    account.add_sessions([bad_item])
    con = store_factory("malformed")
    result = _sync(con, make_client(fake))

    assert result.pages_quarantined == 1
    quarantined = con.execute(
        "SELECT table_name, reason, raw FROM quarantine ORDER BY raw"
    ).fetchall()
    reasons = {raw: reason for _, reason, raw in quarantined}
    assert reasons[broken].startswith("chargehistory page 1: not a readable")
    item_raw = [raw for raw in reasons if raw != broken]
    assert len(item_raw) == 1 and "Energy: expected a number" in reasons[item_raw[0]]
    assert json.loads(item_raw[0])["Id"] == bad_item["Id"]
    # The page was asked for twice before it was given up.
    assert [r.query["pageindex"] for r in _history_requests(fake)].count("1") == 2
    counts = result.counts
    assert counts.rows_quarantined == 2
    assert counts.rows_in == counts.rows_stored + counts.rows_quarantined
    n_items = len(account.sessions)
    stored = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
    assert stored == n_items - PAGE - 1


def test_saved_responses_reingest_to_the_same_sessions(fake, make_client, store_factory, tmp_path):
    con = store_factory("api")
    _sync(con, make_client(fake), save_dir=tmp_path / "saved")
    assert (tmp_path / "saved" / "zaptec" / "chargehistory" / "page_0000.json").exists()
    from_files = store_factory("files")
    counts = ingest_zaptec_dump(from_files, tmp_path / "saved")
    assert counts.rows_quarantined == 0
    exclude = frozenset({"ingested_at", "source"})
    for table in ("sessions", "energy_details", "charger_states", "installations"):
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


def test_late_sessions_found_when_from_filters_on_end_time(start_fake, make_client, store_factory):
    account = make_account(days=30, offline_fraction=0.15)
    t1, t2 = dt.datetime(2025, 3, 15, tzinfo=dt.UTC), dt.datetime(2025, 4, 5, tzinfo=dt.UTC)
    fake = start_fake(account, rate_limit=None, now=t1, history_filter_field="EndDateTime")
    con = store_factory("by_end")
    _sync(con, make_client(fake), now=t1)
    fake.now = t2
    _sync(con, make_client(fake), now=t2)
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


def test_plan_window():
    now = dt.datetime(2025, 6, 1, 12, 30, 15, 999, tzinfo=dt.UTC)
    empty = SyncState("i")
    first = plan_window(empty, now=now)
    assert (first.from_utc, first.to_utc, first.start_page) == (
        HISTORY_START_UTC,
        now.replace(microsecond=0),
        0,
    )
    cursor = dataclasses.replace(empty, cursor_utc=dt.datetime(2025, 5, 1, tzinfo=dt.UTC))
    assert plan_window(cursor, now=now).from_utc == dt.datetime(2025, 4, 24, tzinfo=dt.UTC)
    since = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert plan_window(cursor, now=now, since=since).from_utc == since
    pending = dataclasses.replace(
        cursor,
        pending_from_utc=since,
        pending_to_utc=dt.datetime(2025, 5, 31, tzinfo=dt.UTC),
        pending_next_page=7,
    )
    resumed = plan_window(pending, now=now)
    assert resumed.resumed and resumed.start_page == 7 and resumed.to_utc.day == 31
    assert plan_window(pending, now=now, since=since).start_page == 7
    other = plan_window(pending, now=now, since=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    assert not other.resumed and other.start_page == 0
