"""``zapanalytics demo`` and ``zapanalytics report``: the main job and its report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, print_json, working


def _summary_table(document: dict) -> Table:
    table = Table(title=f"{document['month']} · {document['method']} · NOK incl. VAT")
    for column, justify in (("user", "left"), ("kWh", "right"), ("NOK", "right")):
        table.add_column(column, justify=justify)
    for user in sorted(document["users"], key=lambda u: -u["cost_nok"]):
        name = user["user_name"] or user["user_id"] or "(no user)"
        table.add_row(Text(name), f"{user['energy_kwh']:,.2f}", f"{user['cost_nok']:,.2f}")
    table.add_section()
    table.add_row("total", f"{document['total_energy_kwh']:,.2f}", f"{document['total_cost_nok']:,.2f}")
    return table


def _audit_line(audit: dict) -> str:
    summary = audit["summary"]
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(summary["accuracy_verdicts"].items()))
    findings = ", ".join(f"{k} {v}" for k, v in sorted(summary["findings"].items())) or "none"
    return f"audit: accuracy {verdicts or '–'}; findings {findings}"


@app.command()
def demo(
    out: Path = typer.Option(Path("out"), "--out", help="Directory for zap.duckdb and report.html."),
    sample: Path = typer.Option(None, "--sample", help="Dataset directory (default: the bundled data/sample)."),
    price: float = typer.Option(2.50, "--price", help="Flat price when spot billing is impossible, NOK/kWh incl. VAT."),
    timezone: str = typer.Option(
        "Europe/Oslo", "--timezone", help="IANA zone of a site without a zaptec/ dump (OCPP only)."
    ),
    installation_name: str = typer.Option(
        None, "--installation-name", help="Name of a site without a zaptec/ dump (default: the folder's name)."
    ),
    fuse: float = typer.Option(
        None, "--fuse", min=1.0, max=4000.0,
        help="Main fuse [A] of a site without a zaptec/ dump, for the load-balancing replay.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Ingest the sample, bill the month per user, audit the meters, replay the load
    balancing, and write one offline HTML report.

    The dataset needs a zaptec/ dump or OCPP logs in ocpp/ (an OCPP-only site).

    Example: zapanalytics demo --out out
    """
    from zapanalytics.pipeline import bundled_sample_dir, has_sessions_source, run_demo
    from zapanalytics.store.sites import check_timezone

    sample_dir = sample or bundled_sample_dir()
    if not has_sessions_source(sample_dir):
        raise UserError(
            f"no dataset at {sample_dir} (neither a zaptec/ dump nor ocpp/*.jsonl logs); "
            f"run `zapanalytics sample --out {sample_dir}`"
        )
    try:
        check_timezone(timezone)
    except ValueError as exc:
        raise UserError(f"--timezone: {exc}") from None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from zapanalytics.cli.errors import err_console
    from zapanalytics.pipeline import DEMO_STAGES

    labels = {
        "zaptec": "Zaptec charge history and states",
        "prices": "spot prices",
        "han": "AMS/HAN meter",
        "submeter": "MID sub-meters",
        "ocpp": "OCPP message logs",
        "sessions": "one session per charging",
        "report": "billing, audit, replay and report",
    }
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=err_console, transient=True, disable=as_json,
    ) as progress:
        task = progress.add_task("starting", total=len(DEMO_STAGES))

        def on_stage(stage: str) -> None:
            progress.update(task, completed=DEMO_STAGES.index(stage), description=labels[stage])

        result = run_demo(
            out, sample_dir, price_nok_per_kwh=price, timezone=timezone,
            installation_name=installation_name, main_fuse_a=fuse, on_stage=on_stage,
        )
    report = result.report
    if as_json:
        print_json(
            {
                "database": str(result.database),
                "report": str(report.path),
                "ingest": {name: counts.as_dict() for name, counts in result.ingest.items()},
                "billing": report.billing,
                "audit": report.audit["summary"] if report.audit else None,
                "replay": {k: report.replay[k] for k in ("findings", "fairness", "scenarios")}
                if report.replay
                else None,
                "notes": report.notes,
            }
        )
        return
    for name, counts in result.ingest.items():
        console.print(
            f"{name}: {counts.rows_in} records in, {counts.rows_stored} stored, "
            f"{counts.rows_quarantined} quarantined",
            markup=False,
            highlight=False,
        )
    if report.billing:
        console.print(_summary_table(report.billing))
    if report.audit:
        console.print(_audit_line(report.audit), markup=False, highlight=False)
    if report.replay is not None:
        kinds = sorted({f["kind"] for f in report.replay["findings"]})
        console.print(
            f"replay: {len(report.replay['findings'])} findings ({', '.join(kinds) or 'none'})",
            markup=False,
            highlight=False,
        )
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(f"database: {result.database}\nreport:   {report.path}", markup=False, highlight=False)


@app.command()
def report(
    db: Path = typer.Option(..., "--db", help="DuckDB store."),
    out: str = typer.Option(
        "out/", "--out",
        help="The report file (e.g. board.html), or a directory for report.html (an existing one, or a path ending with /).",
    ),
    month: str = typer.Option(None, "--month", help="Month to bill, YYYY-MM (default: the latest)."),
    public_keys: Path = typer.Option(None, "--public-keys", help="OCMF public keys: a directory or JSON map."),
    grid_company: str = typer.Option(None, "--grid-company", help="Grid tariff for the full bill, e.g. elvia."),
    price: float = typer.Option(2.50, "--price", help="Flat price when spot billing is impossible."),
    as_json: bool = typer.Option(False, "--json", help="Print what the report shows as JSON."),
) -> None:
    """Write one self-contained HTML report (overview, billing, audit, replay, usage).

    Example: zapanalytics report --db out/zap.duckdb --out out --month 2025-10
    """
    from zapanalytics.audit.keys import KeyMapError
    from zapanalytics.report.build import build_report
    from zapanalytics.store import read_only_store

    if not db.exists():
        raise UserError(f"no such store: {db}")
    con = read_only_store(db)
    try:
        with working("billing, auditing and replaying", quiet=as_json):
            result = build_report(
                con, out, month=month, flat_price_nok_per_kwh=price,
                grid_company=grid_company, public_keys=public_keys,
            )
    except KeyMapError as exc:
        raise UserError(f"--public-keys {exc}") from None
    finally:
        con.close()
    if as_json:
        print_json({"report": str(result.path), "month": result.month, "billing": result.billing,
                    "audit": result.audit, "replay": result.replay, "notes": result.notes})
    else:
        console.print(f"report: {result.path}", markup=False, highlight=False)
