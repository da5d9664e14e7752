"""``zapanalytics export``: a store table as CSV, XLSX or Hive-partitioned Parquet."""

from __future__ import annotations

from pathlib import Path

import typer

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, print_json


@app.command()
def export(
    db: Path = typer.Option(..., "--db", help="DuckDB store file."),
    table: str = typer.Option(
        None, "--table",
        help="Store table, e.g. sessions (one row per charging), session_copies or energy_details.",
    ),
    fmt: str = typer.Option("csv", "--format", help="csv, xlsx or parquet."),
    out: Path = typer.Option(None, "--out", help="Output file (csv/xlsx) or directory (parquet)."),
    dataset: Path = typer.Option(
        None, "--dataset", help="Bring every table's incremental Parquet dataset in DIR up to date."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Export a table; Parquet is partitioned by installation_id and month for DuckDB/Spark/Trino.

    Example: zapanalytics export --db out/zap.duckdb --table sessions --format parquet --out out/parquet/sessions
    """
    from zapanalytics.export import ExportError, export_table
    from zapanalytics.store import read_only_store

    if not db.exists():
        raise UserError(f"no such store: {db}")
    if dataset is not None:
        from zapanalytics.engines.cli import export_dataset_command

        return export_dataset_command(db, dataset, as_json=as_json)
    if table is None or out is None:
        raise UserError("give --table and --out (or --dataset DIR)")
    con = read_only_store(db)
    try:
        path, rows = export_table(con, table, fmt, out)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    finally:
        con.close()
    if as_json:
        print_json({"table": table, "format": fmt, "path": str(path), "rows": rows})
    else:
        console.print(f"{rows} rows of {table} → {path}")
