"""The main job: sample (or dump) → store → billing → report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

import zapanalytics
from zapanalytics.billing.flat import flat_split
from zapanalytics.ingest.door import RunCounts
from zapanalytics.ingest.zaptec_files import ingest_zaptec_dump
from zapanalytics.report import write_document
from zapanalytics.report.sections import flat_billing_section, overview_section, usage_section
from zapanalytics.store import open_store, queries

#: Default flat price for the demo [NOK/kWh incl. VAT]; owners pass their own.
DEMO_FLAT_PRICE_NOK_PER_KWH = 2.50


def bundled_sample_dir() -> Path:
    """``data/sample`` of the source checkout this package was installed from."""
    return Path(zapanalytics.__file__).resolve().parent.parent / "data" / "sample"


@dataclasses.dataclass
class DemoResult:
    """What :func:`run_demo` produced."""

    database: Path
    report: Path
    ingest: RunCounts
    per_user: pl.DataFrame


def run_demo(
    out_dir: str | Path,
    sample_dir: str | Path | None = None,
    *,
    price_nok_per_kwh: float = DEMO_FLAT_PRICE_NOK_PER_KWH,
    price_area: str | None = "NO1",
) -> DemoResult:
    """Ingest the sample into ``out_dir/zap.duckdb``, bill it, and write ``out_dir/report.html``.

    Running it twice leaves the store unchanged (ingestion is idempotent).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = Path(sample_dir) if sample_dir is not None else bundled_sample_dir()
    database = out / "zap.duckdb"
    con = open_store(database)
    try:
        counts = ingest_zaptec_dump(con, sample, price_area=price_area)
        sessions = queries.table(con, "sessions")
        per_user = flat_split(sessions, price_nok_per_kwh)
        installation = con.execute("SELECT name FROM installations ORDER BY installation_id LIMIT 1").fetchall()
        title = installation[0][0] if installation and installation[0][0] else "zapanalytics report"
        sections = [
            overview_section(con),
            flat_billing_section(per_user, price_nok_per_kwh),
            usage_section(con),
        ]
        report = write_document(out / "report.html", title, "Charging report", sections)
    finally:
        con.close()
    return DemoResult(database, report, counts, per_user)
