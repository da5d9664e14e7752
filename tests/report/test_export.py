"""Exports: CSV/XLSX with formula-guarded cells, Parquet partitioned by installation and month."""

from __future__ import annotations

import copy
import csv

import duckdb
import pytest
from openpyxl import load_workbook

from tests.conftest import dump_sessions, write_dump
from zapanalytics.export import ExportError, export_table
from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.store import open_store

HOSTILE = "=HYPERLINK(\"http://example.invalid\",\"x\")"


@pytest.fixture
def store(tmp_path):
    items = dump_sessions()
    evil = copy.deepcopy(items[1])
    evil["Id"] = "5e550000-0000-4000-8000-000000000099"
    evil["UserFullName"] = HOSTILE
    evil["StartDateTime"] = evil["EndDateTime"] = evil["CommitEndDateTime"] = "2025-11-01T00:30:00"
    evil["EnergyDetails"] = [{"Timestamp": "2025-11-01T00:30:00+00:00", "Energy": 1.0}]
    evil["Energy"] = 1.0
    con = open_store(tmp_path / "s.duckdb")
    ingest_zaptec_dump(con, write_dump(tmp_path / "dump", [*items, evil]))
    yield con
    con.close()


def test_csv_guards_formulas_and_keeps_numbers(store, tmp_path):
    path, rows = export_table(store, "sessions", "csv", tmp_path / "s.csv")
    assert rows == 5
    with path.open(encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    names = {r["user_name"] for r in records}
    assert "'" + HOSTILE in names and HOSTILE not in names
    assert sorted(float(r["energy_kwh"]) for r in records) == [1.0, 7.0, 11.0, 14.75, 23.5]
    assert all(r["start_utc"].endswith("+00:00") for r in records)


def test_xlsx_guards_formulas(store, tmp_path):
    path, rows = export_table(store, "sessions", "xlsx", tmp_path / "s.xlsx")
    sheet = load_workbook(path).active
    header = [c.value for c in sheet[1]]
    column = header.index("user_name")
    names = [row[column].value for row in sheet.iter_rows(min_row=2)]
    assert len(names) == rows == 5
    assert "'" + HOSTILE in names
    assert not any(isinstance(n, str) and n.startswith("=") for n in names)


def test_parquet_is_hive_partitioned_by_installation_and_local_month(store, tmp_path):
    target, rows = export_table(store, "energy_details", "parquet", tmp_path / "ed")
    months = sorted(p.name for p in target.glob("installation_id=*/month=*"))
    assert months == ["month=2025-10", "month=2025-11"]
    read = duckdb.sql(
        f"SELECT installation_id, month, count(*), sum(energy_kwh) FROM read_parquet('{target}/**/*.parquet',"
        " hive_partitioning = true) GROUP BY ALL ORDER BY month"
    ).fetchall()
    stored = store.execute("SELECT count(*), sum(energy_kwh) FROM energy_details").fetchall()[0]
    assert sum(r[2] for r in read) == rows == stored[0]
    assert sum(r[3] for r in read) == pytest.approx(stored[1])
    # 00:30 UTC on 1 Nov is 01:30 local: November, while 26 Oct stays in October.
    assert [r[1] for r in read] == ["2025-10", "2025-11"]


def test_unknown_table_or_format_is_refused(store, tmp_path):
    with pytest.raises(ExportError, match="unknown table"):
        export_table(store, "sessions; DROP TABLE sessions", "csv", tmp_path / "x.csv")
    with pytest.raises(ExportError, match="unknown format"):
        export_table(store, "sessions", "json", tmp_path / "x.json")
