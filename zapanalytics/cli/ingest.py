"""``zapanalytics ingest zaptec``: sync from the Zaptec cloud API or load a saved dump."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from zapanalytics.cli import ingest_app
from zapanalytics.cli.errors import UserError, err_console
from zapanalytics.cli.ingest_common import (
    DEFAULT_BASE_URL,
    check_area,
    open_store,
    parse_when,
    zaptec_client,
)
from zapanalytics.cli.output import console, print_json


@contextlib.contextmanager
def _page_progress(enabled: bool) -> Iterator[Any]:
    """A rich progress bar per installation, advanced per session page."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_page(installation_id: str, page_index: int, total: int | None) -> None:
            # Windows are per charger and cursor pages have no total: count pages read.
            if installation_id not in tasks:
                tasks[installation_id] = progress.add_task(
                    f"session pages {installation_id[:8]}", total=None
                )
            progress.advance(tasks[installation_id])

        yield on_page


@ingest_app.command("zaptec")
def ingest_zaptec(
    db: Annotated[Path, typer.Option("--db", help="DuckDB store file (created if missing).")],
    installation: Annotated[
        list[str] | None,
        typer.Option("--installation", help="Only this installation id (repeatable)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Charge history from this date (default: where the last sync ended)."
        ),
    ] = None,
    base_url: Annotated[
        str,
        typer.Option("--base-url", envvar="ZAPTEC_BASE_URL", help="Zaptec API base URL."),
    ] = DEFAULT_BASE_URL,
    price_area: Annotated[
        str | None, typer.Option("--price-area", help="Spot price area, NO1–NO5.")
    ] = None,
    dump: Annotated[
        Path | None,
        typer.Option("--dump", help="Read a saved API dump directory instead of calling the API."),
    ] = None,
    save: Annotated[
        Path | None,
        typer.Option("--save", help="Also save every API response as a dump under this directory."),
    ] = None,
    overlap_days: Annotated[
        float,
        typer.Option(
            "--overlap-days",
            help="Days before the last sync asked again, for late offline sessions.",
        ),
    ] = 7.0,
    states: Annotated[
        bool,
        typer.Option(
            "--states/--no-states",
            help="Also read each charger's current state (one request per charger).",
        ),
    ] = True,
    retries: Annotated[
        int,
        typer.Option(
            "--retries", help="Retries of a failed call (429, 5xx, network) before giving up."
        ),
    ] = 6,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Fetch the whole session history again (stored rows stay as they are)."
        ),
    ] = False,
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            help="Session listing: archived (/api/sessions/archived), chargehistory, or auto "
            "(archived where the cloud has it).",
        ),
    ] = "auto",
    max_pages: Annotated[
        int,
        typer.Option("--max-pages", help="Session pages one run reads at most (100 sessions each)."),
    ] = 20_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Sync installations, chargers, charge history and charger state from the Zaptec cloud.

    Credentials come from ZAPTEC_USERNAME / ZAPTEC_PASSWORD or a prompt.

    Each charger is asked for from its last stored session (less --overlap-days), so a
    charger that was offline gets all its sessions once they reach the cloud; an
    interrupted run resumes from what it stored. An unreadable page ends the run (failed,
    page quarantined, exit code 1).

    Example: zapanalytics ingest zaptec --db out/zap.duckdb --price-area NO1
    """
    check_area(price_area)
    if dump is not None:
        if installation or since or save or full:
            raise UserError(
                "--installation, --since, --full and --save apply to the API, not to --dump"
            )
        _ingest_dump(db, dump, price_area, as_json)
        return
    if overlap_days < 0:
        raise UserError("--overlap-days must not be negative")
    if not 0 <= retries <= 20:
        raise UserError("--retries must be between 0 and 20")
    if max_pages < 1:
        raise UserError("--max-pages must be at least 1")
    if full and since:
        raise UserError("--full fetches everything; leave out --since")
    from zapanalytics.ingest.zaptec.sync import ENDPOINTS, sync_zaptec

    if endpoint not in ENDPOINTS:
        raise UserError(f"--endpoint must be one of {', '.join(ENDPOINTS)}, not {endpoint!r}")
    since_utc = parse_when(since, "--since") if since else None

    con = open_store(db)
    try:
        with (
            zaptec_client(base_url, retries) as client,
            _page_progress(not as_json) as on_page,
        ):
            result = sync_zaptec(
                con,
                client,
                installation_ids=installation or None,
                since=since_utc,
                full=full,
                endpoint=endpoint,
                max_pages=max_pages,
                price_area=price_area,
                overlap=dt.timedelta(days=overlap_days),
                save_dir=save,
                with_states=states,
                on_page=on_page,
            )
    finally:
        con.close()
    if as_json:
        print_json(result.as_dict())
        return
    counts = result.counts
    console.print(
        f"synced {len(result.installations)} installation(s): records in {counts.rows_in}, "
        f"stored {counts.rows_stored}, quarantined {counts.rows_quarantined}; "
        f"{result.history_pages} session page(s) from {result.endpoint or 'no listing'}, "
        f"{result.requests} request(s)",
        highlight=False,
        soft_wrap=True,
    )
    if result.pages_quarantined:
        console.print(
            f"{result.pages_quarantined} unreadable page(s) quarantined",
            highlight=False,
            soft_wrap=True,
        )
    if result.sessions_flagged:
        console.print(
            f"{result.sessions_flagged} session(s) whose EnergyDetails do not add up to Energy "
            "(stored, flagged in sessions.details_mismatch)",
            highlight=False,
        )
    if result.chargers_without_state:
        console.print(
            f"no state for {len(result.chargers_without_state)} charger(s) (404)", highlight=False
        )


def _ingest_dump(db: Path, dump: Path, price_area: str | None, as_json: bool) -> None:
    from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump

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
            f"quarantined {counts.rows_quarantined}",
            highlight=False,
        )
