"""Build the one-file report from a store: findings first, then overview, billing, audit,
replay and usage.

Each analysis runs through the same functions the CLI commands use; the report only lays
their results out. A part that cannot run on the store (no prices for the month, no
reference meter) says so in its section instead of failing the report. The first
section says in one sentence per finding what happened, where and when, each linked to
the chart of its own window.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import duckdb

from zapanalytics.report import blocks
from zapanalytics.report.document import Section, report_path, write_document
from zapanalytics.report.sections import overview_section, usage_section
from zapanalytics.store import queries


@dataclasses.dataclass
class ReportResult:
    """The report written and the results it shows (the same numbers the JSON outputs hold)."""

    path: Path
    month: str | None
    billing: dict[str, Any] | None
    audit: dict[str, Any] | None
    replay: dict[str, Any] | None
    notes: list[str]


def latest_month(con: duckdb.DuckDBPyConnection) -> str | None:
    """The most recent local month (``YYYY-MM``) in which a session ended."""
    timezone = queries.installation_timezone(con)
    rows = con.execute(
        "SELECT strftime(timezone(?, max(coalesce(end_utc, start_utc))), '%Y-%m') FROM canonical_sessions",
        [timezone],
    ).fetchall()
    return rows[0][0] if rows and rows[0][0] else None


def _note_section(anchor: str, title: str, message: str) -> Section:
    return blocks.section(anchor, title, [blocks.notes(message)])


def summary_section(findings: list[blocks.Finding], notes: list[str]) -> Section:
    """The first screen: one sentence per finding, linked to its chart."""
    parts = [blocks.findings(findings)] if findings else [
        blocks.paragraph("No finding: the meters, signatures and load balancing conform.")
    ]
    return blocks.section("summary", "Findings", [*parts, blocks.notes(*notes)])


def bill_for_report(
    con: duckdb.DuckDBPyConnection,
    month: str,
    *,
    flat_price_nok_per_kwh: float,
    grid_company: str | None,
) -> tuple[dict[str, Any], list[str]]:
    """The month's statement document: ``full`` where prices and a tariff allow, else
    ``spot``, else ``flat``; the notes say why a simpler method was used."""
    from zapanalytics.billing.monthly import BillingError, bill_month
    from zapanalytics.billing.rates import RateTableError
    from zapanalytics.billing.split import MissingPricesError
    from zapanalytics.billing.statements import statement_document

    notes: list[str] = []
    attempts = (
        ("full", {"grid_company": grid_company}),
        ("spot", {}),
        ("flat", {"price_nok_per_kwh": flat_price_nok_per_kwh}),
    )
    for method, options in attempts:
        try:
            return statement_document(bill_month(con, month, method, **options)), notes
        except (BillingError, MissingPricesError, RateTableError, ValueError) as exc:
            notes.append(f"{method} billing not possible for {month}: {exc}")
    raise RuntimeError("; ".join(notes))


def build_report(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    *,
    month: str | None = None,
    flat_price_nok_per_kwh: float = 2.50,
    grid_company: str | None = None,
    public_keys: str | Path | dict[str, str] | None = None,
) -> ReportResult:
    """Write the report for ``month`` (default: the latest with sessions) to ``path`` (a
    directory, or a path ending with a separator, gets ``report.html`` inside it)."""
    from zapanalytics.audit.keys import read_key_map
    from zapanalytics.audit.store_audit import audit_store
    from zapanalytics.report.audit_section import audit_findings, audit_section
    from zapanalytics.report.billing_section import billing_section

    notes: list[str] = []
    month = month or latest_month(con)
    timezone = queries.installation_timezone(con)
    sections = [overview_section(con)]
    first_screen: list[blocks.Finding] = []

    document = None
    if month is None:
        sections.append(_note_section("billing", "Billing", "No sessions in the store: nothing to bill."))
    else:
        document, billing_notes = bill_for_report(
            con, month, flat_price_nok_per_kwh=flat_price_nok_per_kwh, grid_company=grid_company
        )
        notes.extend(billing_notes)
        sections.append(billing_section(document, billing_notes))

    keys = read_key_map(public_keys) if isinstance(public_keys, str | Path) else public_keys
    audit = audit_store(con, public_keys=keys)
    sections.append(audit_section(audit, timezone))
    first_screen += audit_findings(audit, timezone)

    replay_payload = None
    try:
        from zapanalytics.replay import load_recording, run_replay
        from zapanalytics.report.replay_section import replay_findings, replay_section

        replay = run_replay(load_recording(con))
    except ValueError as exc:
        notes.append(f"load-balancing replay not possible: {exc}")
        sections.append(_note_section("replay", "Load balancing", f"Not possible on this store: {exc}"))
    else:
        replay_payload = replay.as_dict()
        sections.append(replay_section(replay))
        first_screen = replay_findings(replay) + first_screen

    sections.append(usage_section(con, month))
    installation = con.execute("SELECT name FROM installations ORDER BY installation_id LIMIT 1").fetchall()
    title = installation[0][0] if installation and installation[0][0] else "zapanalytics report"
    subtitle = f"Charging report · {month}" if month else "Charging report"
    sections.insert(0, summary_section(first_screen, notes))
    written = write_document(report_path(path), title, subtitle, sections)
    return ReportResult(written, month, document, audit.as_dict(), replay_payload, notes)
