"""One session per charging: the cloud, OCPP and the portal each report it; one row counts."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
import pytest

from tests.sessions.helpers import (
    charge_history,
    cli,
    is_void,
    rewrite_charge_history,
    write_portal_csv,
)
from zapanalytics.store import open_store
from zapanalytics.store.canonical import PRECEDENCE, link_session_copies, resolve_session_copies

T0 = dt.datetime(2025, 10, 6, 16, 0, tzinfo=dt.UTC)


def _session(session_id, source, start_min, end_min, *, charger="uuid-1", signed=None, void=False):
    return {
        "session_id": session_id,
        "charger_id": charger,
        "source": source,
        "start_utc": T0 + dt.timedelta(minutes=start_min),
        "end_utc": None if end_min is None else T0 + dt.timedelta(minutes=end_min),
        "is_void": void,
        "signed_session": signed,
    }


def _frame(rows):
    return pl.DataFrame(
        rows,
        schema={
            "session_id": pl.String,
            "charger_id": pl.String,
            "source": pl.String,
            "start_utc": pl.Datetime("us", "UTC"),
            "end_utc": pl.Datetime("us", "UTC"),
            "is_void": pl.Boolean,
            "signed_session": pl.String,
        },
    )


CHARGERS = pl.DataFrame({"charger_id": ["uuid-1", "ZPR1"], "device_id": ["ZPR1", "ZPR1"]})


def test_three_copies_of_one_charging_link_to_the_signed_cloud_session():
    sessions = _frame(
        [
            # The portal's minute-rounded start and the charger's OCPP transaction, filed under
            # the serial, are the same charging as the signed cloud session.
            _session("portal:abc", "portal", 0.7, 300),
            _session("ocpp:ZPR1:17", "ocpp", 0.2, 300, charger="ZPR1"),
            _session("c-1", "zaptec_api", 0, 300, signed="OCMF|{}|{}"),
            # The next evening's charging, from the cloud only.
            _session("c-2", "zaptec_api", 1440, 1700),
        ]
    )
    links = {r["session_id"]: r for r in link_session_copies(sessions, CHARGERS).to_dicts()}
    assert {k: v["canonical_session_id"] for k, v in links.items()} == {
        "portal:abc": "c-1",
        "ocpp:ZPR1:17": "c-1",
        "c-1": "c-1",
        "c-2": "c-2",
    }
    assert links["c-1"]["duplicate_reason"] is None and links["c-2"]["duplicate_reason"] is None
    assert links["ocpp:ZPR1:17"]["duplicate_reason"].startswith(
        "ocpp copy of the cloud signed session c-1: same charger ZPR1"
    )
    assert "portal copy" in links["portal:abc"]["duplicate_reason"]
    assert "precedence cloud signed > cloud > ocpp > portal" in links["portal:abc"]["duplicate_reason"]
    # The order the rows arrive in never changes the decision.
    shuffled = link_session_copies(sessions.reverse(), CHARGERS)
    assert shuffled.equals(link_session_copies(sessions, CHARGERS))


def test_without_the_cloud_ocpp_outranks_the_portal_and_ties_go_by_id():
    sessions = _frame(
        [_session("portal:x", "portal", 1, None), _session("ocpp:ZPR1:5", "ocpp", 0, 60, charger="ZPR1")]
    )
    links = dict(link_session_copies(sessions, CHARGERS).select("session_id", "canonical_session_id").iter_rows())
    assert links == {"portal:x": "ocpp:ZPR1:5", "ocpp:ZPR1:5": "ocpp:ZPR1:5"}
    assert PRECEDENCE["ocpp"] < PRECEDENCE["portal"]


def test_two_chargings_are_never_merged():
    sessions = _frame(
        [
            # One system lists two chargings that touch: both stay.
            _session("c-1", "zaptec_api", 0, 60),
            _session("c-2", "zaptec_api", 61, 120),
            # An OCPP transaction between them overlaps each by less than half of itself.
            _session("ocpp:ZPR1:9", "ocpp", 55, 66, charger="ZPR1"),
            # The same start on another charger is another charging.
            _session("c-3", "zaptec_api", 0, 60, charger="uuid-2"),
            # A void cloud session is replaced by another one; the copies never match it.
            _session("c-void", "zaptec_api", 200, 201, void=True),
            _session("ocpp:ZPR1:10", "ocpp", 200, 201, charger="ZPR1"),
        ]
    )
    links = dict(link_session_copies(sessions, CHARGERS).select("session_id", "canonical_session_id").iter_rows())
    assert all(links[sid] == sid for sid in links)


def test_an_ocpp_row_matching_two_cloud_sessions_joins_only_the_closer():
    sessions = _frame(
        [
            _session("c-1", "zaptec_api", 0, 100),
            _session("c-2", "zaptec_files", 1, 100),  # a second cloud row cannot join c-1's group
            _session("ocpp:ZPR1:1", "ocpp", 0.5, 100, charger="ZPR1"),
        ]
    )
    links = dict(link_session_copies(sessions, CHARGERS).select("session_id", "canonical_session_id").iter_rows())
    assert links["c-1"] == "c-1" and links["c-2"] == "c-2"
    assert links["ocpp:ZPR1:1"] in ("c-1", "c-2")


def _sessions_table(db) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql("SELECT * FROM sessions ORDER BY session_id").pl()
    finally:
        con.close()


def test_cloud_ocpp_and_portal_copies_through_the_cli(site_copy, tmp_path):
    db = tmp_path / "zap.duckdb"
    items = charge_history(site_copy)
    # OCPP first, then the cloud (whose ingestion links nothing itself), then the portal.
    cli("ingest", "ocpp", "--db", db, "--logs", site_copy / "ocpp", "--json")
    cli("ingest", "zaptec", "--db", db, "--dump", site_copy, "--price-area", "NO1", "--json")
    con = duckdb.connect(str(db), read_only=True)
    ocpp_rows = con.execute("SELECT count(*) FROM sessions WHERE source = 'ocpp'").fetchone()[0]
    # Before any step links the new cloud rows, the view already counts each charging once.
    assert con.execute("SELECT count(*) FROM canonical_sessions").fetchone()[0] == len(items)
    assert con.execute("SELECT count(*) FROM session_copies").fetchone()[0] == ocpp_rows > 0
    con.close()

    export = write_portal_csv(items, tmp_path / "UsageReport_20251001-20251010_Garasje.csv")
    result = cli("ingest", "portal", "--db", db, "--file", export, "--json")
    non_void = [i for i in items if not is_void(i)]
    # Compared with one row per charging: the OCPP copies are no false differences.
    assert result["summary"] == {"match": len(non_void)}
    assert result["ingest"] == {"rows_in": len(non_void), "rows_stored": len(non_void), "rows_quarantined": 0}

    table = _sessions_table(db)
    assert table.height == len(items) + ocpp_rows + len(non_void)
    canonical = table.filter(pl.col("canonical_session_id") == pl.col("session_id"))
    assert sorted(canonical["session_id"]) == sorted(i["Id"] for i in items)
    copies = table.filter(pl.col("canonical_session_id") != pl.col("session_id"))
    assert copies["source"].value_counts().sort("source").rows() == [
        ("ocpp", ocpp_rows),
        ("portal", len(non_void)),
    ]
    assert copies["duplicate_reason"].null_count() == 0
    # Each copy names the cloud session of its own charging (same charger serial, same start).
    by_id = {i["Id"]: i for i in items}
    serials = dict(
        duckdb.connect(str(db), read_only=True).execute("SELECT charger_id, device_id FROM chargers").fetchall()
    )
    for copy in copies.iter_rows(named=True):
        cloud = by_id[copy["canonical_session_id"]]
        assert serials.get(copy["charger_id"], copy["charger_id"]) == cloud["DeviceId"]
        start = dt.datetime.fromisoformat(cloud["StartDateTime"]).replace(tzinfo=dt.UTC)
        assert abs(copy["start_utc"] - start) < dt.timedelta(seconds=1)
    # A charging with all three copies: one canonical row, two linked copies.
    tripled = copies.group_by("canonical_session_id").agg(pl.col("source").sort()).filter(
        pl.col("source").list.len() == 2
    )
    assert tripled.height == ocpp_rows
    assert tripled["source"].to_list()[0] == ["ocpp", "portal"]

    sessions_csv, copies_csv = tmp_path / "sessions.csv", tmp_path / "copies.csv"
    assert cli("export", "--db", db, "--table", "sessions", "--out", sessions_csv, "--json")["rows"] == len(items)
    exported_copies = cli("export", "--db", db, "--table", "session_copies", "--out", copies_csv, "--json")
    assert exported_copies["rows"] == ocpp_rows + len(non_void)
    assert pl.read_csv(copies_csv)["canonical_session_id"].is_in([i["Id"] for i in items]).all()

    # Re-running every ingestion changes nothing, bookkeeping included.
    cli("ingest", "ocpp", "--db", db, "--logs", site_copy / "ocpp", "--json")
    cli("ingest", "zaptec", "--db", db, "--dump", site_copy, "--price-area", "NO1", "--json")
    again = cli("ingest", "portal", "--db", db, "--file", export, "--json")
    assert again["summary"] == result["summary"]
    assert _sessions_table(db).equals(table)
    con = open_store(db)
    try:
        assert resolve_session_copies(con).changed == 0
    finally:
        con.close()


def test_a_portal_row_the_cloud_lacks_is_counted_once(site_copy, tmp_path):
    """A charging only the portal lists is a session of its own; the others are copies."""
    db = tmp_path / "zap.duckdb"
    items = charge_history(site_copy)
    kept = [i for i in items if not is_void(i)]
    export = write_portal_csv(kept, tmp_path / "export.csv")
    missing = kept[3]
    # The cloud dump loses one session the portal still lists.
    rewrite_charge_history(site_copy, lambda page: [i for i in page if i["Id"] != missing["Id"]])
    cli("ingest", "zaptec", "--db", db, "--dump", site_copy, "--json")
    result = cli("ingest", "portal", "--db", db, "--file", export, "--json")
    assert result["summary"] == {"match": len(kept) - 1, "only_in_portal": 1}
    con = duckdb.connect(str(db), read_only=True)
    try:
        sources = dict(con.execute("SELECT source, count(*) FROM canonical_sessions GROUP BY 1").fetchall())
        assert sources == {"zaptec_files": len(items) - 1, "portal": 1}
        energy = con.execute(
            "SELECT energy_kwh FROM canonical_sessions WHERE source = 'portal'"
        ).fetchone()[0]
        assert energy == pytest.approx(missing["Energy"])
    finally:
        con.close()


def test_a_run_relinks_only_the_chargers_it_wrote_to_and_agrees_with_a_full_pass(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    old = T0 - dt.timedelta(days=30)
    new = T0 + dt.timedelta(days=1)
    rows = [
        # Charger uuid-1 (device ZPR1, also seen by OCPP as ZPR1): written long ago.
        {**_session("cloud-a", "zaptec_api", 0, 60), "ingested_at": old},
        {**_session("ocpp-a", "ocpp", 0, 61, charger="ZPR1"), "ingested_at": old},
        # Charger uuid-2: written by this run, with an OCPP copy under its serial.
        {**_session("cloud-b", "zaptec_api", 0, 60, charger="uuid-2"), "ingested_at": new},
        {**_session("ocpp-b", "ocpp", 0, 59, charger="ZPR2"), "ingested_at": old},
    ]
    for row in rows:
        con.execute(
            "INSERT INTO sessions (session_id, charger_id, source, start_utc, end_utc, is_void,"
            " signed_session, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [row[c] for c in ("session_id", "charger_id", "source", "start_utc", "end_utc", "is_void",
                              "signed_session", "ingested_at")],
        )  # fmt: skip
    for charger, device in (("uuid-1", "ZPR1"), ("uuid-2", "ZPR2")):
        con.execute(
            "INSERT INTO chargers (charger_id, device_id, source, ingested_at) VALUES (?, ?, 'zaptec_api', ?)",
            [charger, device, old],
        )
    scoped = resolve_session_copies(con, since=new - dt.timedelta(seconds=1))
    links = dict(con.execute("SELECT session_id, canonical_session_id FROM sessions").fetchall())
    # Only uuid-2 and the charge point of its serial were read; uuid-1's rows wait.
    assert scoped.sessions == 2
    assert links == {"cloud-a": None, "ocpp-a": None, "cloud-b": "cloud-b", "ocpp-b": "cloud-b"}
    full = resolve_session_copies(con)
    assert full.changed == 2 and full.sessions == 4
    assert resolve_session_copies(con).changed == 0
    links = dict(con.execute("SELECT session_id, canonical_session_id FROM sessions").fetchall())
    assert links["ocpp-a"] == "cloud-a"
    con.close()
