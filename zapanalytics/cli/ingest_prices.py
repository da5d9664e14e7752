"""``zapanalytics ingest prices``: day-ahead spot prices into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zapanalytics.cli import ingest_app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.ingest_common import open_store, parse_day
from zapanalytics.cli.output import console, print_json


@ingest_app.command("prices")
def ingest_prices(
    db: Annotated[Path, typer.Option("--db", help="DuckDB store file (created if missing).")],
    area: Annotated[str, typer.Option("--area", help="Price area, NO1–NO5.")],
    from_day: Annotated[str, typer.Option("--from", help="First delivery day, YYYY-MM-DD.")],
    to_day: Annotated[str, typer.Option("--to", help="Last delivery day (included), YYYY-MM-DD.")],
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Directory of price files (hvakosterstrommen JSON, ENTSO-E XML) or a base URL "
            "(default: hvakosterstrommen.no).",
        ),
    ] = None,
    eur_nok: Annotated[
        float | None,
        typer.Option("--eur-nok", help="NOK per EUR, to price ENTSO-E rows (published in EUR)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Load day-ahead spot prices for an area and a range of delivery days.

    Example: zapanalytics ingest prices --db out/zap.duckdb --area NO1 --from 2025-03-01 --to 2025-03-31 --source data/sample

    Documents are read within limits (bytes per document, JSON nesting); raise one with its
    ZAPANALYTICS_MAX_* environment variable. A document that cannot be read is quarantined
    whole, named under "problem:", and the run ends 'partial'.
    """
    from zapanalytics.ingest.prices.spot import load_prices
    from zapanalytics.schemas import PRICE_AREAS

    if area not in PRICE_AREAS:
        raise UserError(f"--area must be one of {', '.join(PRICE_AREAS)}, not {area!r}")
    first, last = parse_day(from_day, "--from"), parse_day(to_day, "--to")
    if last < first:
        raise UserError("--to is before --from")
    if eur_nok is not None and not 0 < eur_nok < 1000:
        raise UserError("--eur-nok must be a positive exchange rate")
    if source is not None and not source.startswith(("http://", "https://")):
        if not Path(source).is_dir():
            raise UserError(f"--source: no such directory: {source}")
    con = open_store(db)
    try:
        result = load_prices(
            con, area=area, first_day=first, last_day=last, source=source, eur_nok=eur_nok
        )
    except ValueError as exc:  # an unusable limit in ZAPANALYTICS_MAX_*
        raise UserError(str(exc)) from None
    finally:
        con.close()
    if as_json:
        print_json(result.as_dict())
        return
    counts = result.counts
    console.print(
        f"{area}: {len(result.days_loaded)} day(s) with prices, {len(result.missing_days)} missing; "
        f"records in {counts.rows_in}, stored {counts.rows_stored}, "
        f"quarantined {counts.rows_quarantined}",
        highlight=False,
        soft_wrap=True,
    )
    if result.missing_days:
        shown = ", ".join(d.isoformat() for d in result.missing_days[:10])
        more = " …" if len(result.missing_days) > 10 else ""
        console.print(f"missing: {shown}{more}", highlight=False, soft_wrap=True)
    for problem in result.problems[:20]:
        console.print(f"problem: {problem}", markup=False, highlight=False, soft_wrap=True)
