"""Portal reports (installation report, CSV/XLSX consumption export) against stored sessions."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import openpyxl
import polars as pl
import pytest
from typer.testing import CliRunner

from zapanalytics.cli import app
from zapanalytics.ingest.portal import export as portal
from zapanalytics.ingest.zaptec.sync import sync_zaptec

from .conftest import NOW

OSLO = ZoneInfo("Europe/Oslo")
FROM = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
TO = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)


@pytest.fixture
def synced(fake, make_client, store_factory):
    con = store_factory("portal")
    sync_zaptec(con, make_client(fake), now=lambda: NOW, pages_per_batch=20)
    return con


@pytest.mark.parametrize("group_by", ["charger", "user", "card"])
def test_installation_report_agrees_with_synced_sessions(
    synced, fake, make_client, account, group_by
):
    installation_id = next(iter(account.installations))
    reported = portal.fetch_installation_report(
        make_client(fake), installation_id, FROM, TO, group_by=group_by
    )
    stored = portal.store_totals(
        portal.stored_sessions(synced, installation_id, FROM, TO), group_by
    )
    table = portal.reconcile_totals(reported, stored)
    assert table.height == reported.height >= 2
    assert table["status"].to_list() == ["match"] * table.height
    non_void = [s for s in account.sessions if not s.item["CommitMetadata"] & 32]
    assert table["sessions_portal"].sum() == len(non_void)


def test_installation_report_differences_are_listed(synced, fake, make_client, account):
    installation_id = next(iter(account.installations))
    # One session vanishes from the store, another changes energy.
    victim, changed = [s.item for s in account.sessions if not s.item["CommitMetadata"] & 32][:2]
    synced.execute("DELETE FROM energy_details WHERE session_id = ?", [victim["Id"]])
    synced.execute("DELETE FROM sessions WHERE session_id = ?", [victim["Id"]])
    synced.execute(
        "UPDATE sessions SET energy_kwh = energy_kwh + 1.25 WHERE session_id = ?", [changed["Id"]]
    )
    reported = portal.fetch_installation_report(make_client(fake), installation_id, FROM, TO)
    stored = portal.store_totals(
        portal.stored_sessions(synced, installation_id, FROM, TO), "charger"
    )
    table = portal.reconcile_totals(reported, stored)
    by_group = {row["group"]: row for row in table.iter_rows(named=True)}
    assert by_group[victim["DeviceName"]]["status"] == "count_differs"
    if changed["DeviceName"] != victim["DeviceName"]:
        row = by_group[changed["DeviceName"]]
        assert row["status"] == "energy_differs" and row["energy_diff_kwh"] == pytest.approx(-1.25)
    assert (table["status"] == "match").sum() == table.height - len(
        {victim["DeviceName"], changed["DeviceName"]}
    )


def test_report_frame_reads_timespan_durations_and_refuses_bad_shapes():
    report = {
        "totalUserChargerReportModel": [
            {
                "GroupAsString": "Plass 1",
                "TotalChargeSessionCount": 3,
                "TotalChargeSessionEnergy": 21.5,
                "TotalChargeSessionDuration": "1.02:30:00",
            },
            {
                "GroupAsString": "Plass 2",
                "TotalChargeSessionCount": 1,
                "TotalChargeSessionEnergy": 4,
                "TotalChargeSessionDuration": 1.5,
            },
        ]
    }
    frame = portal.installation_report_frame(report)
    assert frame["duration_h"].to_list() == [26.5, 1.5]
    with pytest.raises(portal.PortalReportError, match="energy is not a number"):
        portal.installation_report_frame(
            {
                "totalUserChargerReportModel": [
                    {
                        "GroupAsString": "x",
                        "TotalChargeSessionCount": 1,
                        "TotalChargeSessionEnergy": "4,5",
                    }
                ]
            }
        )
    with pytest.raises(portal.PortalReportError, match="no totalUserChargerReportModel"):
        portal.installation_report_frame({"Data": []})


def _export_rows(con, installation_id):
    stored = portal.stored_sessions(con, installation_id)
    return stored.sort("start_utc").to_dicts()


def _local_text(when: dt.datetime) -> str:
    return when.astimezone(OSLO).strftime("%d.%m.%Y %H:%M")


def test_csv_export_is_reconciled_session_by_session(synced, account, tmp_path):
    installation_id = next(iter(account.installations))
    sessions = _export_rows(synced, installation_id)
    lines = ["Lader;Starttid;Bruker;Energi (kWh)"]
    for s in sessions[1:-1]:  # the first stored session is missing from the export
        energy = s["energy_kwh"] + (2.0 if s is sessions[2] else 0.0)
        energy_text = f"{energy:.3f}".replace(".", ",")  # decimal comma, as in Norway
        lines.append(
            f"{s['charger_name']};{_local_text(s['start_utc'])};{s['user_name']};{energy_text}"
        )
    lines.append(f"Plass 1;{_local_text(NOW)};Gjest;5,000")  # not in the store
    lines.append("Plass 1;01.03.2025 10:00;Gjest;mye")  # unreadable energy
    path = tmp_path / "UsageReport.csv"
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")

    export = portal.read_consumption_export(path)
    table = portal.reconcile_sessions(export, portal.stored_sessions(synced, installation_id))
    counts = dict(table.group_by("status").len().iter_rows())
    assert counts == {
        "match": len(sessions) - 3,
        "energy_differs": 1,
        "only_in_portal": 1,
        "only_in_store": 2,
        "unreadable": 1,
    }
    differs = table.filter(pl.col("status") == "energy_differs").row(0, named=True)
    assert differs["session_id"] == sessions[2]["session_id"]
    assert differs["energy_diff_kwh"] == pytest.approx(2.0)
    missing = set(table.filter(pl.col("status") == "only_in_store")["session_id"])
    assert missing == {sessions[0]["session_id"], sessions[-1]["session_id"]}


def test_xlsx_export_matches_by_charger_and_local_time_across_dst_fall_back(tmp_path):
    # 26 Oct 2025: 02:30 local happens twice (CEST then CET).
    first = dt.datetime(2025, 10, 26, 0, 30, tzinfo=dt.UTC)  # 02:30 CEST
    second = dt.datetime(2025, 10, 26, 1, 30, tzinfo=dt.UTC)  # 02:30 CET
    store = pl.DataFrame(
        {
            "session_id": ["a", "b"],
            "charger_name": ["Plass 1", "Plass 2"],
            "device_id": ["ZPR1", "ZPR2"],
            "start_utc": [first, second],
            "energy_kwh": [3.0, 4.0],
        },
        schema_overrides={"start_utc": pl.Datetime("us", "UTC")},
    )
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Device name", "Start", "Energy (kWh)"])
    # Excel holds naive local times: the export's convention, not ours.
    sheet.append(["Plass 1", dt.datetime(2025, 10, 26, 2, 30), 3.0])  # noqa: DTZ001
    sheet.append(["Plass 2", dt.datetime(2025, 10, 26, 2, 30), 4.0004])  # noqa: DTZ001
    path = tmp_path / "export.xlsx"
    book.save(path)
    export = portal.read_consumption_export(path)
    table = portal.reconcile_sessions(export, store)
    assert table["status"].to_list() == ["match", "match"]
    assert table["session_id"].to_list() == ["a", "b"]


def test_export_without_needed_columns_or_as_xls_is_refused(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("Name,Comment\nx,y\n")
    with pytest.raises(portal.PortalReportError, match="need an energy column"):
        portal.read_consumption_export(path)
    xls = tmp_path / "UsageReport_20250101-20250131_Test.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(portal.PortalReportError, match="legacy .xls"):
        portal.read_consumption_export(xls)


def test_cli_portal_reports_differences(synced, account, tmp_path):
    installation_id = next(iter(account.installations))
    sessions = _export_rows(synced, installation_id)
    path = tmp_path / "export.csv"
    rows = ["Session id,Energy (kWh)"] + [
        f"{s['session_id']},{s['energy_kwh'] + (0.5 if i == 0 else 0):.3f}"
        for i, s in enumerate(sessions)
    ]
    path.write_text("\n".join(rows) + "\n")
    db = synced.execute("PRAGMA database_list").fetchall()[0][2]
    synced.close()
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "portal", "--db", db, "--file", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["summary"] == {"energy_differs": 1, "match": len(sessions) - 1}
    result = runner.invoke(app, ["ingest", "portal", "--db", db, "--file", str(path)])
    assert result.exit_code == 0
    assert result.output.startswith(f"energy_differs 1, match {len(sessions) - 1}")
    assert "Differences" in result.output and "0.5" in result.output


def test_a_sync_folds_the_installation_an_export_made_into_the_clouds(
    synced, fake, make_client, account, store_factory, tmp_path
):
    """An owner who billed from the export first, then got API access: one installation."""
    cloud_installation = next(iter(account.installations))
    sessions = [s for s in _export_rows(synced, cloud_installation) if s["end_utc"] is not None]
    lines = ["Ladestasjon;Starttid;Sluttid;Bruker;Energi (kWh)"]
    for s in sessions:
        energy_text = f"{s['energy_kwh']:.3f}".replace(".", ",")
        lines.append(
            f"{s['charger_name']};{_local_text(s['start_utc'])};{_local_text(s['end_utc'])};"
            f"{s['user_name']};{energy_text}"
        )
    lines.append(f"Plass 1;{_local_text(NOW)};{_local_text(NOW)};Gjest;5,000")  # not in the cloud
    path = tmp_path / "UsageReport_20250301-20250401_Hjemme.csv"
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    db = tmp_path / "owner.duckdb"
    made = CliRunner().invoke(
        app, ["ingest", "portal", "--db", str(db), "--file", str(path), "--price-area", "NO3", "--json"]
    )
    assert made.exit_code == 0, made.output
    portal_installation = json.loads(made.stdout)["installation_id"]

    con = store_factory("owner")
    result = sync_zaptec(con, make_client(fake), now=lambda: NOW, pages_per_batch=20)
    (fold,) = result.as_dict()["folded"]
    assert fold["portal_installation_id"] == portal_installation
    assert fold["cloud_installation_id"] == cloud_installation and fold["refused"] is None
    assert fold["sessions_moved"] == len(sessions) + 1
    assert con.execute("SELECT installation_id, price_area FROM installations").fetchall() == [
        (cloud_installation, "NO3")
    ]
    # The portal's chargers were known by name only; each now is the cloud's charger.
    assert con.execute("SELECT count(*) FROM chargers WHERE charger_id LIKE 'portal:%'").fetchone()[0] == 0
    canonical = dict(con.execute("SELECT source, count(*) FROM canonical_sessions GROUP BY 1").fetchall())
    assert canonical == {"zaptec_api": len(account.sessions), "portal": 1}
    again = sync_zaptec(con, make_client(fake), now=lambda: NOW, pages_per_batch=20)
    assert again.folded == []
