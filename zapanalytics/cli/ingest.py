"""``zapanalytics ingest zaptec|prices|portal``: load sources into the store."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from zapanalytics.cli import ingest_app
from zapanalytics.cli.errors import UserError, err_console
from zapanalytics.cli.output import console, print_json

DEFAULT_BASE_URL = "https://api.zaptec.com"


def _parse_when(value: str, option: str) -> dt.datetime:
    """A date (midnight UTC) or an ISO-8601 time with an offset, as an aware UTC datetime."""
    text = value.strip()
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return dt.datetime.combine(day, dt.time(), dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{option}: expected YYYY-MM-DD or an ISO time, not {value!r}") from None
    if when.tzinfo is None:
        raise UserError(f"{option}: give a UTC offset (e.g. {text}+00:00) or a plain date")
    return when.astimezone(dt.UTC)


def _parse_day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{option}: expected a date YYYY-MM-DD, not {value!r}") from None


def _check_area(price_area: str | None) -> None:
    from zapanalytics.schemas import PRICE_AREAS

    if price_area is not None and price_area not in PRICE_AREAS:
        raise UserError(f"--price-area must be one of {', '.join(PRICE_AREAS)}, not {price_area!r}")


def _credentials() -> tuple[str, str]:
    """User name and password from ZAPTEC_USERNAME / ZAPTEC_PASSWORD, else a prompt."""
    username = os.environ.get("ZAPTEC_USERNAME") or None
    password = os.environ.get("ZAPTEC_PASSWORD") or None
    try:
        if username is None:
            username = typer.prompt("Zaptec user name", err=True)
        if password is None:
            password = typer.prompt("Zaptec password", hide_input=True, err=True)
    except typer.Abort:
        raise UserError(
            "no Zaptec credentials: set ZAPTEC_USERNAME and ZAPTEC_PASSWORD, or run in a terminal"
        ) from None
    if not username or not password:
        raise UserError("no Zaptec credentials: the user name and password must not be empty")
    return username, password


@contextlib.contextmanager
def _zaptec_client(base_url: str, retries: int = 6) -> Iterator[Any]:
    """An API client whose auth failures become one-line user errors."""
    from zapanalytics.ingest.zaptec_api import RetryPolicy, ZaptecAuthError, ZaptecClient

    username, password = _credentials()
    client = ZaptecClient(
        username, password, base_url=base_url, retry=RetryPolicy(max_retries=retries)
    )
    try:
        yield client
    except ZaptecAuthError as exc:
        raise UserError(str(exc)) from None
    finally:
        client.close()


def _open_store(db: Path) -> Any:
    from zapanalytics.store import StoreLockedError, open_store

    try:
        return open_store(db)
    except StoreLockedError as exc:
        raise UserError(str(exc)) from None


@contextlib.contextmanager
def _page_progress(enabled: bool) -> Iterator[Any]:
    """A rich progress bar per installation, advanced per charge-history page."""
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
            if installation_id not in tasks:
                tasks[installation_id] = progress.add_task(
                    f"charge history {installation_id[:8]}", total=total
                )
            task = tasks[installation_id]
            done = page_index + 1 if total is None else min(page_index + 1, total)
            progress.update(task, completed=done, total=total)

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
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Sync installations, chargers, charge history and charger state from the Zaptec cloud.

    Credentials come from ZAPTEC_USERNAME / ZAPTEC_PASSWORD or a prompt.

    A second run fetches only what is new; an interrupted run resumes where it stopped.

    Example: zapanalytics ingest zaptec --db out/zap.duckdb --price-area NO1
    """
    _check_area(price_area)
    if dump is not None:
        if installation or since or save:
            raise UserError("--installation, --since and --save apply to the API, not to --dump")
        _ingest_dump(db, dump, price_area, as_json)
        return
    if overlap_days < 0:
        raise UserError("--overlap-days must not be negative")
    if not 0 <= retries <= 20:
        raise UserError("--retries must be between 0 and 20")
    since_utc = _parse_when(since, "--since") if since else None
    from zapanalytics.ingest.zaptec_sync import sync_zaptec

    con = _open_store(db)
    try:
        with (
            _zaptec_client(base_url, retries) as client,
            _page_progress(not as_json) as on_page,
        ):
            result = sync_zaptec(
                con,
                client,
                installation_ids=installation or None,
                since=since_utc,
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
        f"{result.history_pages} charge-history page(s), {result.requests} request(s)",
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
    from zapanalytics.ingest.zaptec_files import ingest_zaptec_dump

    if not dump.exists():
        raise UserError(f"no such directory: {dump}")
    con = _open_store(db)
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
    """
    from zapanalytics.ingest.prices import load_prices
    from zapanalytics.schemas import PRICE_AREAS

    if area not in PRICE_AREAS:
        raise UserError(f"--area must be one of {', '.join(PRICE_AREAS)}, not {area!r}")
    first, last = _parse_day(from_day, "--from"), _parse_day(to_day, "--to")
    if last < first:
        raise UserError("--to is before --from")
    if eur_nok is not None and not 0 < eur_nok < 1000:
        raise UserError("--eur-nok must be a positive exchange rate")
    if source is not None and not source.startswith(("http://", "https://")):
        if not Path(source).is_dir():
            raise UserError(f"--source: no such directory: {source}")
    con = _open_store(db)
    try:
        result = load_prices(
            con, area=area, first_day=first, last_day=last, source=source, eur_nok=eur_nok
        )
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


@ingest_app.command("portal")
def ingest_portal(
    db: Annotated[Path, typer.Option("--db", help="DuckDB store holding the synced sessions.")],
    file: Annotated[
        Path | None,
        typer.Option("--file", help="The portal's consumption export (CSV or XLSX)."),
    ] = None,
    installation: Annotated[
        str | None,
        typer.Option(
            "--installation", help="Installation id (needed when the store holds several)."
        ),
    ] = None,
    from_day: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (installation's time zone).")
    ] = None,
    to_day: Annotated[
        str | None, typer.Option("--to", help="Last day (included), YYYY-MM-DD.")
    ] = None,
    group_by: Annotated[
        str, typer.Option("--group-by", help="Installation report grouping: user, charger or card.")
    ] = "charger",
    base_url: Annotated[
        str,
        typer.Option("--base-url", envvar="ZAPTEC_BASE_URL", help="Zaptec API base URL."),
    ] = DEFAULT_BASE_URL,
    tolerance_kwh: Annotated[
        float, typer.Option("--tolerance-kwh", help="Energy differences up to this are rounding.")
    ] = 0.001,
    as_json: Annotated[bool, typer.Option("--json", help="Print every row as JSON.")] = False,
) -> None:
    """Reconcile a portal report against the stored sessions and list the differences.

    With --file, the consumption export is matched session by session.

    Without it, the installation report is fetched from the API (needs --from and --to) and compared per group.

    Example: zapanalytics ingest portal --db out/zap.duckdb --file UsageReport.xlsx
    """
    from zapanalytics.ingest import portal_export as portal

    from_utc = to_utc = None
    if group_by not in portal.GROUP_BY:
        raise UserError(f"--group-by must be one of {', '.join(portal.GROUP_BY)}")
    con = _open_store(db)
    try:
        installation_id, zone = _pick_installation(con, installation)
        if from_day:
            from_utc = _local_midnight(_parse_day(from_day, "--from"), zone)
        if to_day:
            to_utc = _local_midnight(_parse_day(to_day, "--to") + dt.timedelta(days=1), zone)
        if file is not None:
            if not file.is_file():
                raise UserError(f"--file: no such file: {file}")
            try:
                export = portal.read_consumption_export(file, timezone=zone)
            except portal.PortalReportError as exc:
                raise UserError(str(exc)) from None
            if from_utc is None and to_utc is None:
                first, last = portal.export_window(export)
                if first is not None and last is not None:
                    from_utc = first - portal.START_TOLERANCE
                    to_utc = last + portal.START_TOLERANCE
            stored = portal.stored_sessions(con, installation_id, from_utc, to_utc)
            table = portal.reconcile_sessions(export, stored, tolerance_kwh=tolerance_kwh)
        else:
            if from_utc is None or to_utc is None:
                raise UserError("without --file, give --from and --to for the installation report")
            with _zaptec_client(base_url) as client:
                reported = portal.fetch_installation_report(
                    client, installation_id, from_utc, to_utc, group_by=group_by
                )
            stored = portal.stored_sessions(con, installation_id, from_utc, to_utc)
            table = portal.reconcile_totals(
                reported, portal.store_totals(stored, group_by), tolerance_kwh=tolerance_kwh
            )
    finally:
        con.close()
    statuses = table.group_by("status").len().sort("status")
    summary = {row["status"]: row["len"] for row in statuses.iter_rows(named=True)}
    if as_json:
        print_json(
            {"installation_id": installation_id, "summary": summary, "rows": table.to_dicts()}
        )
        return
    _print_differences(table, summary)


def _pick_installation(con: Any, wanted: str | None) -> tuple[str, str]:
    rows = con.execute("SELECT installation_id, timezone FROM installations ORDER BY 1").fetchall()
    if wanted is not None:
        for installation_id, zone in rows:
            if installation_id == wanted:
                return installation_id, zone
        raise UserError(f"--installation {wanted!r} is not in the store; sync it first")
    if len(rows) == 1:
        return rows[0][0], rows[0][1]
    if not rows:
        raise UserError("the store holds no installation; run `zapanalytics ingest zaptec` first")
    raise UserError("the store holds several installations; choose one with --installation")


def _local_midnight(day: dt.date, zone: str) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(day, dt.time(), ZoneInfo(zone)).astimezone(dt.UTC)


def _print_differences(table: Any, summary: dict[str, int]) -> None:
    from rich.table import Table
    from rich.text import Text

    differences = table.filter(table["status"] != "match")
    console.print(
        ", ".join(f"{status} {count}" for status, count in summary.items()) or "nothing to compare",
        highlight=False,
        soft_wrap=True,
    )
    if differences.height == 0:
        console.print("the report agrees with the stored sessions", highlight=False, soft_wrap=True)
        return
    view = Table(title="Differences (portal − store)")
    for column in differences.columns:
        view.add_column(column, overflow="fold")
    for row in differences.head(200).iter_rows():
        # Text, not markup: user and charger names are data, never rich markup.
        view.add_row(*(Text("" if value is None else str(value)) for value in row))
    console.print(view)
    if differences.height > 200:
        console.print(
            f"… {differences.height - 200} more; use --json for all",
            highlight=False,
            soft_wrap=True,
        )
