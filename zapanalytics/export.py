"""Exports of store tables: CSV, XLSX, and Hive-partitioned Parquet.

The Parquet export is the hand-off to bigger engines: a dataset partitioned by
``installation_id`` and ``month`` (the installation's local calendar month) that DuckDB,
Spark or Trino read unchanged with the same column contract as the store. CSV and XLSX
cells pass through a formula guard, so a user name such as ``=HYPERLINK(...)`` stays text.

``sessions`` exports one row per charging (the ``canonical_sessions`` view), the rows every
bill is made of; the other copies of a charging (an OCPP transaction or a portal row that a
cloud session stands for) export as ``session_copies``, each naming its canonical session.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import polars as pl

from zapanalytics.spreadsheet import guard_formula
from zapanalytics.store import CONTRACT_TABLES, table_columns

FORMATS = ("csv", "xlsx", "parquet")
#: What an export name reads when it is not the table of that name.
_RELATIONS = {"sessions": "canonical_sessions", "session_copies": "session_copies"}
#: Every name ``export_table`` accepts.
EXPORT_TABLES = (*CONTRACT_TABLES, "session_copies")
#: Excel's sheet limit; a larger table must go to CSV or Parquet.
XLSX_MAX_ROWS = 1_048_575

# How each table reaches an installation and which instant dates a row. Tables without
# an installation of their own borrow it from the session or the charger.
_PARTITION_SOURCES = {
    "installations": ("t.installation_id", "t.ingested_at", ""),
    "chargers": ("t.installation_id", "t.ingested_at", ""),
    "sessions": ("t.installation_id", "t.start_utc", ""),
    "session_copies": ("t.installation_id", "t.start_utc", ""),
    "energy_details": ("s.installation_id", "t.ts_utc", "LEFT JOIN sessions s USING (session_id)"),
    "meter_values": ("c.installation_id", "t.ts_utc", "LEFT JOIN chargers c USING (charger_id)"),
    "charger_states": ("c.installation_id", "t.ts_utc", "LEFT JOIN chargers c USING (charger_id)"),
    "reference_readings": ("t.installation_id", "t.ts_utc", ""),
    "prices": ("NULL", "t.start_utc", ""),
    "ingest_runs": ("NULL", "t.started_at", ""),
    "quarantine": ("NULL", "t.quarantined_at", ""),
}


class ExportError(ValueError):
    """An export that cannot be made as asked (unknown table or format, too many rows)."""


def _partitioned_query(con: duckdb.DuckDBPyConnection, table: str) -> str:
    installation, instant, join = _PARTITION_SOURCES[table]
    relation = _RELATIONS.get(table, table)
    columns = ", ".join(f't."{c}"' for c in table_columns(con, relation))
    # The month is the installation's local month; rows with no installation use UTC.
    return f"""
        SELECT {columns},
               coalesce({installation}, '_none') AS installation_id_part,
               strftime(timezone(coalesce(i.timezone, 'UTC'), {instant}), '%Y-%m') AS month
        FROM "{relation}" t {join}
        LEFT JOIN installations i ON i.installation_id = {installation}
    """  # noqa: S608 - table and columns come from the store's own catalogue


def export_table(
    con: duckdb.DuckDBPyConnection, table: str, fmt: str, out: str | Path
) -> tuple[Path, int]:
    """Write ``table`` to ``out`` in ``fmt``; return the path written and the row count.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The store.
    table : str
        A contract table (see ``docs/glossary.md``) or ``session_copies``; ``sessions`` is
        one row per charging (the canonical sessions).
    fmt : {"csv", "xlsx", "parquet"}
        CSV and XLSX write one file; Parquet writes a directory partitioned as
        ``installation_id=<id>/month=<YYYY-MM>/`` (``_none`` where a row has no installation).
    out : str or Path
        Target file (CSV/XLSX) or directory (Parquet; replaced if it exists).
    """
    if table not in EXPORT_TABLES:
        raise ExportError(f"unknown table {table!r}; choose one of {', '.join(EXPORT_TABLES)}")
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    target = Path(out)
    if fmt == "parquet":
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        query = _partitioned_query(con, table)
        count = con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0]  # noqa: S608
        # DuckDB names Hive directories after the columns; rename the helper column on write.
        renamed = f"SELECT * EXCLUDE (installation_id_part), installation_id_part AS installation_id_p FROM ({query})"  # noqa: S608
        copy = f"COPY ({renamed}) TO ? (FORMAT parquet, PARTITION_BY (installation_id_p, month))"
        con.execute(copy, [str(target)]).fetchall()
        for directory in target.glob("installation_id_p=*"):
            directory.rename(directory.with_name(directory.name.replace("installation_id_p=", "installation_id=", 1)))
        return target, count
    relation = _RELATIONS.get(table, table)
    frame = con.sql(f'SELECT * FROM "{relation}"').pl()  # noqa: S608 - table checked above
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        _write_csv(frame, target)
    else:
        if frame.height > XLSX_MAX_ROWS:
            raise ExportError(f"{table} has {frame.height} rows, more than a worksheet holds; use csv or parquet")
        _write_xlsx(frame, target)
    return target, frame.height


def _cells(frame: pl.DataFrame):
    for row in frame.iter_rows():
        yield [guard_formula(v) if isinstance(v, str) else v for v in row]


def _plain(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps as ISO-8601 text in UTC, so spreadsheets do not shift them."""
    return frame.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f%:z") for c, t in frame.schema.items() if isinstance(t, pl.Datetime)
    )


def _write_csv(frame: pl.DataFrame, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(frame.columns)
        writer.writerows(_cells(_plain(frame)))


def _write_xlsx(frame: pl.DataFrame, path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title="data")
    sheet.append(frame.columns)
    for row in _cells(_plain(frame)):
        sheet.append(row)
    book.save(path)
