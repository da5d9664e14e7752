"""``zapanalytics demo``: the whole pipeline on the bundled sample."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, print_json


@app.command()
def demo(
    out: Path = typer.Option(Path("out"), "--out", help="Directory for zap.duckdb and report.html."),
    sample: Path = typer.Option(None, "--sample", help="Sample directory (default: the bundled data/sample)."),
    price: float = typer.Option(2.50, "--price", help="Flat price, NOK/kWh incl. VAT."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Ingest the sample, split costs per user at a flat price, and write an offline HTML report.

    Example: zapanalytics demo --out out
    """
    from zapanalytics.pipeline import bundled_sample_dir, run_demo

    sample_dir = sample or bundled_sample_dir()
    if not sample_dir.is_dir():
        raise UserError(f"no sample data at {sample_dir}; run `zapanalytics sample --out {sample_dir}`")
    result = run_demo(out, sample_dir, price_nok_per_kwh=price)
    if as_json:
        print_json(
            {
                "database": str(result.database),
                "report": str(result.report),
                "ingest": result.ingest.as_dict(),
                "users": result.per_user.to_dicts(),
            }
        )
        return
    table = Table(title=f"Cost per user at {price:.2f} NOK/kWh")
    for column, justify in (("user", "left"), ("sessions", "right"), ("kWh", "right"), ("NOK", "right")):
        table.add_column(column, justify=justify)
    for row in result.per_user.iter_rows(named=True):
        table.add_row(
            str(row["user_name"] or row["user_id"] or "(no user)"),
            str(row["sessions"]),
            f"{row['energy_kwh']:.2f}",
            f"{row['cost_nok']:.2f}",
        )
    table.add_section()
    table.add_row(
        "total",
        str(int(result.per_user["sessions"].sum())),
        f"{result.per_user['energy_kwh'].sum():.2f}",
        f"{result.per_user['cost_nok'].sum():.2f}",
    )
    console.print(table)
    counts = result.ingest
    console.print(
        f"records in {counts.rows_in}: stored {counts.rows_stored}, quarantined {counts.rows_quarantined}"
    )
    console.print(f"database: {result.database}\nreport:   {result.report}")
