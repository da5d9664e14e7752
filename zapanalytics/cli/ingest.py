"""``zapanalytics ingest zaptec``: load Zaptec data into the store."""

from __future__ import annotations

from pathlib import Path

import typer

from zapanalytics.cli import ingest_app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, print_json
from zapanalytics.schemas import PRICE_AREAS


@ingest_app.command("zaptec")
def ingest_zaptec(
    db: Path = typer.Option(..., "--db", help="DuckDB store file (created if missing)."),
    dump: Path = typer.Option(
        None, "--dump", help="Read a saved API dump directory instead of calling the API."
    ),
    price_area: str = typer.Option(None, "--price-area", help="Spot price area, NO1–NO5."),
    as_json: bool = typer.Option(False, "--json", help="Print the run counts as JSON."),
) -> None:
    """Load installations, chargers, charge history and state observations.

    Example: zapanalytics ingest zaptec --db out/zap.duckdb --dump data/sample --price-area NO1
    """
    from zapanalytics.ingest.zaptec_files import ingest_zaptec_dump
    from zapanalytics.store import open_store

    if price_area is not None and price_area not in PRICE_AREAS:
        raise UserError(f"--price-area must be one of {', '.join(PRICE_AREAS)}, not {price_area!r}")
    if dump is None:
        raise UserError("give --dump DIR (a saved Zaptec API dump)")
    if not dump.exists():
        raise UserError(f"no such directory: {dump}")
    con = open_store(db)
    try:
        counts = ingest_zaptec_dump(con, dump, price_area=price_area)
    finally:
        con.close()
    if as_json:
        print_json(counts.as_dict())
    else:
        console.print(
            f"records in {counts.rows_in}, stored {counts.rows_stored}, "
            f"quarantined {counts.rows_quarantined}"
        )
