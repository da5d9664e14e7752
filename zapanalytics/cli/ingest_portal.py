"""``zapanalytics ingest portal``: the Zaptec portal's reports and exports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from zapanalytics.cli import ingest_app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.ingest_common import (
    DEFAULT_BASE_URL,
    check_area,
    open_store,
    parse_day,
    zaptec_client,
)
from zapanalytics.cli.output import console, print_json


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
    installation_name: Annotated[
        str | None,
        typer.Option(
            "--installation-name",
            help="Name of the installation an export creates on an empty store "
            "(default: the export's installation column or its UsageReport_… file name).",
        ),
    ] = None,
    timezone: Annotated[
        str,
        typer.Option("--timezone", help="IANA zone of an installation the export creates."),
    ] = "Europe/Oslo",
    price_area: Annotated[
        str | None,
        typer.Option("--price-area", help="Price area (NO1…NO5) of an installation the export creates."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every row as JSON.")] = False,
) -> None:
    """Ingest a portal export as a source of sessions and list how it differs from the others.

    With --file, the consumption export's rows are stored as sessions (source portal) and
    matched session by session against the canonical sessions of the other sources; a row
    another source also lists is kept as a copy of that session. On an empty store the
    export creates the installation (--installation-name, --timezone, --price-area) and
    its chargers, so `zapanalytics bill` works from the export alone.

    Without it, the installation report is fetched from the API (needs --from and --to) and compared per group.

    Example: zapanalytics ingest portal --db out/zap.duckdb --file UsageReport.xlsx
    """
    from zapanalytics.ingest.portal import export as portal

    from_utc = to_utc = None
    ingested = None
    if group_by not in portal.GROUP_BY:
        raise UserError(f"--group-by must be one of {', '.join(portal.GROUP_BY)}")
    check_area(price_area)
    con = open_store(db)
    try:
        if file is not None and not file.is_file():
            raise UserError(f"--file: no such file: {file}")
        if file is not None and installation is None and not _installations(con):
            installation = _create_installation(con, file, installation_name, timezone, price_area)
        installation_id, zone = _pick_installation(con, installation)
        if from_day:
            from_utc = _local_midnight(parse_day(from_day, "--from"), zone)
        if to_day:
            to_utc = _local_midnight(parse_day(to_day, "--to") + dt.timedelta(days=1), zone)
        if file is not None:
            from zapanalytics.ingest.portal.source import ingest_portal_rows, portal_rows

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
            chargers = con.sql("SELECT charger_id, device_id, name FROM chargers").pl()
            rows = portal_rows(export, table, stored, chargers, installation_id=installation_id)
            ingested = ingest_portal_rows(con, rows)
        else:
            if from_utc is None or to_utc is None:
                raise UserError("without --file, give --from and --to for the installation report")
            with zaptec_client(base_url) as client:
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
        payload = {"installation_id": installation_id, "summary": summary, "rows": table.to_dicts()}
        if ingested is not None:
            payload["ingest"] = ingested.as_dict()
        print_json(payload)
        return
    _print_differences(table, summary)
    if ingested is not None:
        console.print(
            f"portal export: {ingested.rows_in} rows in, {ingested.rows_stored} stored as sessions"
            f" (copies of a session another source lists are linked to it), "
            f"{ingested.rows_quarantined} quarantined",
            highlight=False,
            soft_wrap=True,
        )


def _installations(con: Any) -> list[tuple[str, str]]:
    return con.execute("SELECT installation_id, timezone FROM installations ORDER BY 1").fetchall()


def _create_installation(
    con: Any, file: Path, name: str | None, timezone: str, price_area: str | None
) -> str:
    """The installation an export brings to an empty store; its id."""
    from zapanalytics.ingest.portal import export as portal
    from zapanalytics.ingest.portal.source import SOURCE, installation_name_from_file
    from zapanalytics.store.sites import check_timezone, ensure_installation, site_installation_id

    try:
        check_timezone(timezone)
    except ValueError as exc:
        raise UserError(f"--timezone: {exc}") from None
    if name is None:
        try:
            export = portal.read_consumption_export(file, timezone=timezone)
        except portal.PortalReportError as exc:
            raise UserError(str(exc)) from None
        named = export["installation"].drop_nulls().unique().sort().to_list()
        if len(named) > 1:
            raise UserError(
                f"the export lists {len(named)} installations ({', '.join(named)[:200]}); "
                "export one installation at a time"
            )
        name = named[0] if named else installation_name_from_file(file)
    if not name:
        raise UserError(
            "the store holds no installation and the export does not name one; "
            "give --installation-name (and --timezone, --price-area)"
        )
    installation_id = site_installation_id(name)
    ensure_installation(
        con, installation_id, name=name, timezone=timezone, price_area=price_area, source=SOURCE
    )
    return installation_id


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
