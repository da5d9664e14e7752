"""The demo writes one PDF per user; each PDF's text holds that user's sessions and total."""

from __future__ import annotations

import csv
from zoneinfo import ZoneInfo

import pypdf

from zapanalytics.report.statement_text import money, number
from zapanalytics.store import read_only_store


def test_demo_pdfs_hold_each_users_sessions_and_total(demo_out):
    folders = sorted((demo_out / "statements").glob("statements_*"))
    folders = [f for f in folders if f.is_dir()]
    assert len(folders) == 1
    folder = folders[0]
    month = folder.name.split("_")[1]
    with (folder / "statements.csv").open(encoding="utf-8") as handle:
        index = list(csv.DictReader(handle))
    assert index and all((folder / row["file"]).is_file() for row in index)
    con = read_only_store(demo_out / "zap.duckdb")
    try:
        zone = ZoneInfo(con.execute("SELECT timezone FROM installations LIMIT 1").fetchall()[0][0])
        checked_sessions = 0
        for row in index:
            text = "\n".join(
                page.extract_text() for page in pypdf.PdfReader(folder / row["file"]).pages
            )
            assert row["user_name"] in text
            assert f"Sum: {money(float(row['total_nok']), 'nb')} NOK" in text
            if not row["user_id"]:
                continue
            # Every session of the user that lies wholly inside the month, with its start, end
            # and kWh as the store has them (one row per charging).
            sessions = con.execute(
                "SELECT start_utc, end_utc, energy_kwh FROM canonical_sessions"
                " WHERE user_id = ? AND NOT coalesce(is_void, FALSE) AND energy_kwh > 0",
                [row["user_id"]],
            ).fetchall()
            for start, end, energy in sessions:
                start_local, end_local = start.astimezone(zone), end.astimezone(zone)
                if start_local.strftime("%Y-%m") != month or end_local.strftime("%Y-%m") != month:
                    continue
                line = f"{start_local:%Y-%m-%d %H:%M} {end_local:%Y-%m-%d %H:%M}"
                assert line in text, (row["file"], line)
                assert number(energy, "nb") in text, (row["file"], energy)
                checked_sessions += 1
        assert checked_sessions > 0
    finally:
        con.close()
