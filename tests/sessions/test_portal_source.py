"""The portal export as the only source: an owner without API access can bill."""

from __future__ import annotations

import duckdb
import pytest

from tests.sessions.helpers import (
    MONTH,
    charge_history,
    cli,
    is_void,
    rewrite_charge_history,
    write_portal_csv,
    write_portal_xlsx,
)
from zapanalytics.ingest.portal.export import read_consumption_export

PRICE_DAYS = ("--from", "2025-10-01", "--to", "2025-10-10")


def _without_energy_details(site):
    """The API as a DetailLevel=0 client reads it: per-session totals, like the portal."""

    def strip(items):
        for item in items:
            item["EnergyDetails"] = None
        return items

    rewrite_charge_history(site, strip)


def _bill(db) -> dict:
    return cli("bill", "--db", db, "--month", MONTH, "--method", "spot", "--json")


def _per_user(bill: dict) -> dict[str, tuple[float, float]]:
    return {u["user_name"]: (round(u["energy_kwh"], 6), u["cost_nok"]) for u in bill["users"]}


def test_portal_export_alone_bills_like_the_api_to_the_ore(site_copy, tmp_path):
    _without_energy_details(site_copy)
    items = charge_history(site_copy)
    name = "Solsikken borettslag - garasje"
    export = write_portal_xlsx(items, tmp_path / "UsageReport_20251001-20251010_Garasje.xlsx", installation=name)

    api_db, portal_db = tmp_path / "api.duckdb", tmp_path / "portal.duckdb"
    cli("ingest", "zaptec", "--db", api_db, "--dump", site_copy, "--price-area", "NO1", "--json")
    created = cli(
        "ingest", "portal", "--db", portal_db, "--file", export, "--price-area", "NO1",
        "--timezone", "Europe/Oslo", "--json",
    )
    non_void = [i for i in items if not is_void(i)]
    assert created["ingest"] == {"rows_in": len(non_void), "rows_stored": len(non_void), "rows_quarantined": 0}
    assert created["summary"] == {"only_in_portal": len(non_void)}
    for db in (api_db, portal_db):
        cli("ingest", "prices", "--db", db, "--area", "NO1", *PRICE_DAYS, "--source", site_copy / "prices", "--json")

    con = duckdb.connect(str(portal_db), read_only=True)
    try:
        assert con.execute("SELECT name, timezone, price_area, source FROM installations").fetchall() == [
            (name, "Europe/Oslo", "NO1", "portal")
        ]
        chargers = con.execute("SELECT device_id, name FROM chargers ORDER BY device_id").fetchall()
        assert chargers == sorted({(i["DeviceId"], i["DeviceName"]) for i in non_void})
    finally:
        con.close()

    api_bill, portal_bill = _bill(api_db), _bill(portal_db)
    assert portal_bill["method"] == api_bill["method"] == "spot"
    assert _per_user(portal_bill) == _per_user(api_bill)
    assert portal_bill["total_cost_nok"] == api_bill["total_cost_nok"] > 0

    # Reading the same export again changes nothing.
    before = duckdb.connect(str(portal_db), read_only=True)
    snapshot = before.sql("SELECT * FROM sessions ORDER BY session_id").pl()
    before.close()
    cli("ingest", "portal", "--db", portal_db, "--file", export, "--json")
    after = duckdb.connect(str(portal_db), read_only=True)
    assert after.sql("SELECT * FROM sessions ORDER BY session_id").pl().equals(snapshot)
    after.close()


def test_portal_export_on_an_empty_store_needs_a_name_and_quarantines_bad_rows(site_copy, tmp_path):
    items = [i for i in charge_history(site_copy) if not is_void(i)][:4]
    export = write_portal_csv(items, tmp_path / "export.csv")
    text = export.read_text("utf-8").rstrip("\r\n")
    # An unreadable energy and an end before the start: each row goes to quarantine.
    text += "\r\nPlass 09;ZPR000009;Gjest;01.10.2025 10:00:00;01.10.2025 11:00:00;mye"
    text += "\r\nPlass 09;ZPR000009;Gjest;01.10.2025 12:00:00;01.10.2025 11:00:00;1,5\r\n"
    export.write_text(text, "utf-8")
    db = tmp_path / "zap.duckdb"
    from typer.testing import CliRunner

    from zapanalytics.cli import app

    refused = CliRunner().invoke(app, ["ingest", "portal", "--db", str(db), "--file", str(export)])
    assert refused.exit_code != 0
    assert "give --installation-name" in str(refused.exception)

    result = cli("ingest", "portal", "--db", db, "--file", export, "--installation-name", "Hjemme", "--json")
    assert result["ingest"] == {"rows_in": 6, "rows_stored": 4, "rows_quarantined": 2}
    con = duckdb.connect(str(db), read_only=True)
    try:
        reasons = [r[0] for r in con.execute("SELECT reason FROM quarantine ORDER BY reason").fetchall()]
        assert any("mye" in r for r in reasons) and any("end_not_before_start" in r for r in reasons)
        assert con.execute("SELECT count(*) FROM canonical_sessions").fetchone()[0] == 4
        users = {r[0] for r in con.execute("SELECT user_id FROM sessions").fetchall()}
        assert users == {f"portal-user:{i['UserFullName'].lower()}" for i in items}
    finally:
        con.close()


@pytest.mark.parametrize(
    ("header", "energy", "start"),
    [
        # As Zaptec billing tools publish their session sheets.
        ("Session ID,Device ID,Start Date/Time,End Date/Time,Duration,Energy (kWh)", "12.5", "2025-10-01 18:00:00"),
        # Norwegian portal wording, thousands grouped with a dot and decimal comma.
        ("Installasjon;Ladestasjon;Brukernavn;Starttidspunkt;Sluttidspunkt;Forbruk", '"1.012,5"', "01.10.2025 18:00"),
    ],
)
def test_published_export_shapes_are_read(tmp_path, header, energy, start):
    delimiter = ";" if ";" in header else ","
    cells = {
        "Session ID": "s-1", "Device ID": "ZPR111111", "Start Date/Time": start,
        "End Date/Time": "2025-10-01 20:00:00", "Duration": "2:00", "Energy (kWh)": energy,
        "Installasjon": "Garasje", "Ladestasjon": "Plass 1", "Brukernavn": "Kari",
        "Starttidspunkt": start, "Sluttidspunkt": "01.10.2025 20:00", "Forbruk": energy,
    }
    line = delimiter.join(cells[h] for h in header.split(delimiter))
    path = tmp_path / "export.csv"
    path.write_text(f"{header}\n{line}\n", "utf-8")
    row = read_consumption_export(path).row(0, named=True)
    assert row["problem"] is None
    assert row["start_utc"].isoformat() == "2025-10-01T16:00:00+00:00"  # CEST
    assert row["end_utc"].isoformat() == "2025-10-01T18:00:00+00:00"
    assert row["energy_kwh"] == (12.5 if delimiter == "," else 1012.5)
