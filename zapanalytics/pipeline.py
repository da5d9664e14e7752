"""The main job: a dataset directory → store → billing · audit · replay → report.

A *dataset directory* holds sources in their real formats, laid out as ``firmware_ref``
writes them and as ``data/sample`` ships: ``zaptec/`` (a Zaptec API dump), ``prices/<AREA>/``
(hvakosterstrommen.no days), ``han/`` (AMS HAN frames), ``submeter/`` (MID sub-meter CSV),
``ocpp/`` (OCPP 1.6J message logs) and ``keys/`` (OCMF public keys). Every part but
``zaptec/`` is optional.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb

import zapanalytics
from zapanalytics.ingest.door import RunCounts
from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.report.build import ReportResult, build_report
from zapanalytics.store import open_store

#: Default flat price when a month cannot be billed at spot [NOK/kWh incl. VAT].
DEMO_FLAT_PRICE_NOK_PER_KWH = 2.50
#: Grid company of the bundled sample's area (Oslo, NO1).
DEMO_GRID_COMPANY = "elvia"


def bundled_sample_dir() -> Path:
    """``data/sample`` of the source checkout this package was installed from."""
    return Path(zapanalytics.__file__).resolve().parent.parent / "data" / "sample"


def _price_days(directory: Path) -> list[dt.date]:
    days = []
    for path in directory.glob("*.json"):
        try:
            days.append(dt.date.fromisoformat(path.stem))
        except ValueError:
            continue
    return sorted(days)


#: Stages of the main job, in order, as reported to a progress callback.
DEMO_STAGES = ("zaptec", "prices", "han", "submeter", "ocpp", "report")


def _noop(stage: str) -> None:
    return None


def ingest_dataset(
    con: duckdb.DuckDBPyConnection,
    root: str | Path,
    *,
    price_area: str | None = "NO1",
    on_stage: Callable[[str], None] = _noop,
) -> dict[str, RunCounts]:
    """Load every source found in a dataset directory; return the counts per source.

    Each source enters through its own reader and the door, so re-running changes nothing.
    ``on_stage`` is called with each stage name of :data:`DEMO_STAGES` as it starts.
    """
    from zapanalytics.ingest.meters.han import ingest_han
    from zapanalytics.ingest.meters.submeter import ingest_submeter
    from zapanalytics.ingest.ocpp.load import load_spool, spool_from_message_logs
    from zapanalytics.ingest.prices.spot import load_prices

    root = Path(root)
    on_stage("zaptec")
    counts: dict[str, RunCounts] = {"zaptec": ingest_zaptec_dump(con, root, price_area=price_area)}
    on_stage("prices")
    prices = root / "prices"
    if prices.is_dir():
        total = RunCounts()
        for area_dir in sorted(p for p in prices.iterdir() if p.is_dir()):
            days = _price_days(area_dir)
            if days:
                total += load_prices(
                    con, area=area_dir.name, first_day=days[0], last_day=days[-1], source=prices
                ).counts
        counts["prices"] = total
    on_stage("han")
    han_files = sorted((root / "han").glob("*.hex"))
    if han_files:
        counts["han"] = ingest_han(con, han_files)
    on_stage("submeter")
    submeter_files = sorted((root / "submeter").glob("*.csv"))
    if submeter_files:
        counts["submeter"] = ingest_submeter(con, submeter_files)
    on_stage("ocpp")
    ocpp_logs = sorted((root / "ocpp").glob("*.jsonl"))
    if ocpp_logs:
        with tempfile.TemporaryDirectory(prefix="zap-ocpp-") as spool:
            spool_from_message_logs(ocpp_logs, spool)
            counts["ocpp"] = load_spool(con, spool).counts
    return counts


@dataclasses.dataclass
class DemoResult:
    """What :func:`run_demo` produced."""

    database: Path
    ingest: dict[str, RunCounts]
    report: ReportResult


def run_demo(
    out_dir: str | Path,
    sample_dir: str | Path | None = None,
    *,
    price_nok_per_kwh: float = DEMO_FLAT_PRICE_NOK_PER_KWH,
    price_area: str | None = "NO1",
    grid_company: str | None = DEMO_GRID_COMPANY,
    on_stage: Callable[[str], None] = _noop,
) -> DemoResult:
    """Ingest a dataset into ``out_dir/zap.duckdb``, bill, audit and replay it, and write
    ``out_dir/report.html``. Running it twice leaves the store unchanged.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = Path(sample_dir) if sample_dir is not None else bundled_sample_dir()
    database = out / "zap.duckdb"
    con = open_store(database)
    try:
        counts = ingest_dataset(con, sample, price_area=price_area, on_stage=on_stage)
        on_stage("report")
        keys = sample / "keys"
        report = build_report(
            con,
            out / "report.html",
            flat_price_nok_per_kwh=price_nok_per_kwh,
            grid_company=grid_company,
            public_keys=keys if keys.is_dir() else None,
        )
    finally:
        con.close()
    return DemoResult(database, counts, report)
