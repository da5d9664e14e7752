"""``zapanalytics ingest portal``: the Zaptec portal's reports and exports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from zapanalytics.cli import ingest_app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.ingest_common import DEFAULT_BASE_URL, open_store, parse_day, zaptec_client
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
    as_json: Annotated[bool, typer.Option("--json", help="Print every row as JSON.")] = False,
) -> None:
    """Reconcile a portal report against the stored sessions and list the differences.

    With --file, the consumption export is matched session by session.

    Without it, the installation report is fetched from the API (needs --from and --to) and compared per group.

    Example: zapanalytics ingest portal --db out/zap.duckdb --file UsageReport.xlsx
    """
    from zapanalytics.ingest.portal import export as portal

    from_utc = to_utc = None
    if group_by not in portal.GROUP_BY:
        raise UserError(f"--group-by must be one of {', '.join(portal.GROUP_BY)}")
    con = open_store(db)
    try:
        installation_id, zone = _pick_installation(con, installation)
        if from_day:
            from_utc = _local_midnight(parse_day(from_day, "--from"), zone)
        if to_day:
            to_utc = _local_midnight(parse_day(to_day, "--to") + dt.timedelta(days=1), zone)
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
