"""An owner who started from the portal export and later syncs the cloud has one installation.

The store after "portal export, then the cloud" must be the store after "the cloud, then the
portal export": same installation, chargers, sessions and bill; re-reading either source
afterwards changes nothing.
"""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from tests.sessions.helpers import MONTH, charge_history, cli, write_portal_csv, write_portal_xlsx
from zapanalytics.billing.monthly import set_installation_settings
from zapanalytics.ingest.portal.fold import fold_portal_installations, match_chargers
from zapanalytics.store import open_store

NAME = "Solsikken borettslag - garasje"
PRICE_DAYS = ("--from", "2025-10-01", "--to", "2025-10-10")
SESSION_COLUMNS = (
    "session_id, charger_id, installation_id, source, start_utc, end_utc, energy_kwh,"
    " canonical_session_id, duplicate_reason IS NULL AS canonical"
)


def _table(db, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def _store(db) -> dict[str, pl.DataFrame]:
    return {
        "installations": _table(
            db,
            "SELECT installation_id, name, timezone, price_area, grid_company, county, source"
            " FROM installations ORDER BY 1",
        ),
        "chargers": _table(db, "SELECT charger_id, device_id, installation_id, name FROM chargers ORDER BY 1"),
        "sessions": _table(db, f"SELECT {SESSION_COLUMNS} FROM sessions ORDER BY session_id"),  # noqa: S608
        "canonical": _table(
            db,
            "SELECT session_id, charger_id, installation_id, user_id, start_utc, end_utc, energy_kwh"
            " FROM canonical_sessions ORDER BY session_id",
        ),
    }


def _bill(db) -> dict:
    result = cli("bill", "--db", db, "--month", MONTH, "--method", "spot", "--json")
    return {
        "total": result["total_cost_nok"],
        "users": sorted((u["user_name"], round(u["energy_kwh"], 6), u["cost_nok"]) for u in result["users"]),
    }


def _prices(db, site) -> None:
    cli("ingest", "prices", "--db", db, "--area", "NO1", *PRICE_DAYS, "--source", site / "prices", "--json")


@pytest.mark.parametrize("export_kind", ["xlsx with serials", "csv without serials"])
def test_portal_first_then_the_cloud_gives_the_cloud_first_store(site_copy, tmp_path, export_kind):
    items = charge_history(site_copy)
    if export_kind == "xlsx with serials":
        export = write_portal_xlsx(items, tmp_path / "UsageReport_20251001-20251010_Garasje.xlsx", installation=NAME)
    else:
        export = write_portal_csv(items, tmp_path / "UsageReport_20251001-20251010_Garasje.csv")
        # The Norwegian portal wording without the serial column: chargers known by name only.
        lines = export.read_text("utf-8-sig").splitlines()
        kept = ["Ladestasjon;Bruker;Starttid;Sluttid;Energi (kWh)"]
        kept += [";".join(p for i, p in enumerate(line.split(";")) if i != 1) for line in lines[1:]]
        export.write_text("\ufeff" + "\r\n".join(kept) + "\r\n", "utf-8")
    cloud_first, portal_first = tmp_path / "cloud_first.duckdb", tmp_path / "portal_first.duckdb"

    cli("ingest", "zaptec", "--db", cloud_first, "--dump", site_copy, "--price-area", "NO1", "--json")
    cli("ingest", "portal", "--db", cloud_first, "--file", export, "--json")

    made = cli(
        "ingest", "portal", "--db", portal_first, "--file", export, "--installation-name", NAME,
        "--price-area", "NO1", "--timezone", "Europe/Oslo", "--json",
    )
    portal_installation = made["installation_id"]
    con = open_store(portal_first)
    try:
        # Owner settings made on the portal installation, which no source reports.
        set_installation_settings(con, portal_installation, grid_company="elvia", county="Oslo")
    finally:
        con.close()
    # The cloud comes later, without --price-area: the owner's area carries over.
    cli("ingest", "zaptec", "--db", portal_first, "--dump", site_copy, "--json")

    con = open_store(cloud_first)
    try:
        set_installation_settings(
            con, con.execute("SELECT installation_id FROM installations").fetchone()[0],
            grid_company="elvia", county="Oslo",
        )
    finally:
        con.close()
    expected, folded = _store(cloud_first), _store(portal_first)
    assert folded["installations"]["source"].to_list() == ["zaptec_files"]
    assert folded["installations"]["price_area"].to_list() == ["NO1"]
    for table, frame in expected.items():
        assert folded[table].equals(frame), table
    assert folded["sessions"]["source"].value_counts().sort("source")["count"].to_list() == [
        len([i for i in items if not i["CommitMetadata"] & 32]),
        len(items),
    ]
    for db in (cloud_first, portal_first):
        _prices(db, site_copy)
    assert _bill(portal_first) == _bill(cloud_first)

    # Re-reading either source afterwards changes nothing.
    again = cli("ingest", "portal", "--db", portal_first, "--file", export, "--json")
    assert again["ingest"]["rows_stored"] == made["ingest"]["rows_stored"]
    cli("ingest", "zaptec", "--db", portal_first, "--dump", site_copy, "--json")
    after = _store(portal_first)
    for table, frame in folded.items():
        assert after[table].equals(frame), table
    con = open_store(portal_first)
    try:
        assert fold_portal_installations(con) == []
    finally:
        con.close()


def test_ocpp_rows_follow_the_fold_and_issued_statements_stay_as_issued(site_copy, tmp_path):
    items = charge_history(site_copy)
    export = write_portal_xlsx(items, tmp_path / "export.xlsx", installation=NAME)
    cloud_first, portal_first = tmp_path / "cloud_first.duckdb", tmp_path / "portal_first.duckdb"
    cli("ingest", "zaptec", "--db", cloud_first, "--dump", site_copy, "--price-area", "NO1", "--json")
    cli("ingest", "ocpp", "--db", cloud_first, "--logs", site_copy / "ocpp", "--json")
    cli("ingest", "portal", "--db", cloud_first, "--file", export, "--json")

    made = cli("ingest", "portal", "--db", portal_first, "--file", export, "--price-area", "NO1", "--json")
    cli("ingest", "ocpp", "--db", portal_first, "--logs", site_copy / "ocpp", "--json")
    _prices(portal_first, site_copy)
    cli("bill", "--db", portal_first, "--month", MONTH, "--method", "spot", "--out", tmp_path / "sent", "--json")
    issued = _table(portal_first, "SELECT * FROM issued_statements")
    assert issued["installation_id"].to_list() == [made["installation_id"]]
    cli("ingest", "zaptec", "--db", portal_first, "--dump", site_copy, "--json")

    expected, folded = _store(cloud_first), _store(portal_first)
    for table, frame in expected.items():
        assert folded[table].equals(frame), table
    assert set(folded["sessions"]["source"]) == {"zaptec_files", "ocpp", "portal"}
    # OCPP meter values name the cloud's charger, as on the cloud-first store.
    meter = "SELECT charger_id, source, count(*) AS n FROM meter_values GROUP BY ALL ORDER BY ALL"
    assert _table(portal_first, meter).equals(_table(cloud_first, meter))
    # Each charging counts once, now as the cloud's session.
    canonical = _table(portal_first, "SELECT source, count(*) AS n FROM canonical_sessions GROUP BY 1")
    assert canonical.rows() == [("zaptec_files", len(items))]
    # The statement sent stays as it was sent, under the id it was sent with.
    assert _table(portal_first, "SELECT * FROM issued_statements").equals(issued)
    _prices(cloud_first, site_copy)
    assert _bill(portal_first) == _bill(cloud_first)


def _frame(rows, *, cloud: bool) -> pl.DataFrame:
    schema = {"charger_id": pl.String, "device_id": pl.String, "name": pl.String}
    if cloud:
        schema["installation_id"] = pl.String
    return pl.DataFrame(rows, schema=schema, orient="row")


CLOUD = _frame(
    [
        ("uuid-a1", "ZPR000001", "Plass 1", "inst-a"),
        ("uuid-a2", "ZPR000002", "Plass 2", "inst-a"),
        ("uuid-b1", "ZPR000003", "Plass 1", "inst-b"),
    ],
    cloud=True,
)


def test_chargers_pair_by_serial_then_by_name_within_the_same_installation():
    portal = _frame([("ZPR000001", "ZPR000001", "Plass 1"), ("portal:Plass 2", None, " plass 2 ")], cloud=False)
    pairs, refused = match_chargers(portal, CLOUD)
    assert refused is None
    assert pairs.rows() == [("ZPR000001", "uuid-a1", "inst-a"), ("portal:Plass 2", "uuid-a2", "inst-a")]


def test_an_ambiguous_match_is_refused_with_the_reason():
    by_name = _frame([("portal:Plass 1", None, "Plass 1")], cloud=False)
    pairs, refused = match_chargers(by_name, CLOUD)
    assert pairs.is_empty() and "several chargers for portal:Plass 1" in refused
    spread = _frame([("ZPR000001", "ZPR000001", None), ("ZPR000003", "ZPR000003", None)], cloud=False)
    pairs, refused = match_chargers(spread, CLOUD)
    assert pairs.is_empty() and "2 cloud installations (inst-a, inst-b)" in refused
    unknown = _frame([("ZPR000009", "ZPR000009", "Plass 9")], cloud=False)
    pairs, refused = match_chargers(unknown, CLOUD)
    assert pairs.is_empty() and refused is None  # nothing the cloud reports: nothing to fold
