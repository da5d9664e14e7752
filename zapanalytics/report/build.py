"""Build the one-file report from a store: overview, billing, audit, replay, usage.

Each analysis runs through the same functions the CLI commands use; the report only lays
their results out. A part that cannot run on the store (no prices for the month, no
reference meter) says so in its section instead of failing the report.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any

import duckdb

from zapanalytics.report.document import Section, write_document
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
    return Section(anchor, title, f'<p class="note">{html.escape(message)}</p>')


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
    """Write the report for ``month`` (default: the latest with sessions) to ``path``."""
    from zapanalytics.audit.keys import read_key_map
    from zapanalytics.audit.report import audit_sections
    from zapanalytics.audit.store_audit import audit_store
    from zapanalytics.report.billing_section import billing_section

    notes: list[str] = []
    month = month or latest_month(con)
    sections = [overview_section(con)]

    document = None
    if month is None:
        sections.append(_note_section("billing", "Billing", "No sessions in the store: nothing to bill."))
    else:
        document, billing_notes = bill_for_report(
            con, month, flat_price_nok_per_kwh=flat_price_nok_per_kwh, grid_company=grid_company
        )
        notes.extend(billing_notes)
        section = billing_section(document)
        for note in billing_notes:
            section.body_html = f'<p class="note">{html.escape(note)}</p>' + section.body_html
        sections.append(section)

    keys = read_key_map(public_keys) if isinstance(public_keys, str | Path) else public_keys
    audit = audit_store(con, public_keys=keys)
    audit_parts = audit_sections(audit)
    sections.append(
        Section(
            "audit",
            "Meter audit",
            "".join(f"<h3>{html.escape(part.title)}</h3>{part.body_html}" for part in audit_parts),
        )
    )

    replay_payload = None
    try:
        from zapanalytics.replay import load_recording, run_replay
        from zapanalytics.report.replay_section import replay_section

        replay = run_replay(load_recording(con))
    except ValueError as exc:
        notes.append(f"load-balancing replay not possible: {exc}")
        sections.append(_note_section("replay", "Load balancing", f"Not possible on this store: {exc}"))
    else:
        replay_payload = replay.as_dict()
        sections.append(replay_section(replay))

    sections.append(usage_section(con, month))
    installation = con.execute("SELECT name FROM installations ORDER BY installation_id LIMIT 1").fetchall()
    title = installation[0][0] if installation and installation[0][0] else "zapanalytics report"
    subtitle = f"Charging report · {month}" if month else "Charging report"
    written = write_document(path, title, subtitle, sections)
    return ReportResult(written, month, document, audit.as_dict(), replay_payload, notes)
