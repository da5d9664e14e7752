"""The main job: a dataset directory → store → billing · audit · replay → report.

A *dataset directory* holds sources in their real formats, laid out as ``firmware_ref``
writes them and as ``data/sample`` ships: ``zaptec/`` (a Zaptec API dump), ``prices/<AREA>/``
(hvakosterstrommen.no days), ``han/`` (AMS HAN frames), ``submeter/`` (MID sub-meter CSV),
``ocpp/`` (OCPP 1.6J message logs) and ``keys/`` (OCMF public keys). Every part is
optional, but the sessions come from ``zaptec/`` or ``ocpp/``: a site without the cloud
(OCPP only) gets an installation made from the dataset's name (or the AMS meter's
``meters.json``), the given time zone and price area.

After the sources, one step links the copies of each charging (cloud, OCPP) to its
canonical session (:func:`zapanalytics.store.canonical.resolve_session_copies`).
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
from zapanalytics.store.canonical import resolve_session_copies
from zapanalytics.store.sites import (
    adopt_orphans,
    ensure_installation,
    site_installation_id,
    users_from_id_tags,
)

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
DEMO_STAGES = ("zaptec", "ocpp", "prices", "han", "submeter", "sessions", "report")
#: Zone of an installation no source describes, unless the caller gives one.
DEFAULT_TIMEZONE = "Europe/Oslo"


def has_sessions_source(root: str | Path) -> bool:
    """Whether a dataset directory holds a source of sessions (``zaptec/`` or ``ocpp/`` logs)."""
    root = Path(root)
    return (root / "zaptec").is_dir() or any((root / "ocpp").glob("*.jsonl"))


def _noop(stage: str) -> None:
    return None


def ingest_dataset(
    con: duckdb.DuckDBPyConnection,
    root: str | Path,
    *,
    price_area: str | None = "NO1",
    timezone: str = DEFAULT_TIMEZONE,
    installation_name: str | None = None,
    main_fuse_a: float | None = None,
    on_stage: Callable[[str], None] = _noop,
) -> dict[str, RunCounts]:
    """Load every source found in a dataset directory; return the counts per source.

    Each source enters through its own reader and the door, so re-running changes nothing.
    ``on_stage`` is called with each stage name of :data:`DEMO_STAGES` as it starts.
    ``timezone``, ``installation_name`` and ``main_fuse_a`` [A] describe a site no cloud
    dump describes.
    """
    from zapanalytics.ingest.meters.han import ingest_han, installation_of
    from zapanalytics.ingest.meters.submeter import ingest_submeter
    from zapanalytics.ingest.ocpp.load import load_spool, spool_from_message_logs
    from zapanalytics.ingest.prices.spot import load_prices

    root = Path(root)
    on_stage("zaptec")
    counts: dict[str, RunCounts] = {}
    if (root / "zaptec").is_dir():
        counts["zaptec"] = ingest_zaptec_dump(con, root, price_area=price_area)
    # Before the meters: a sub-meter is matched to its charger by serial, which an
    # OCPP-only site knows from the OCPP logs alone.
    on_stage("ocpp")
    ocpp_logs = sorted((root / "ocpp").glob("*.jsonl"))
    if ocpp_logs:
        with tempfile.TemporaryDirectory(prefix="zap-ocpp-") as spool:
            spool_from_message_logs(ocpp_logs, spool)
            counts["ocpp"] = load_spool(con, spool).counts
    han_files = sorted((root / "han").glob("*.hex"))
    site = {
        "installation_id": installation_of(han_files) if han_files else None,
        "name": installation_name,
        "timezone": timezone,
        "price_area": price_area,
        "main_fuse_a": main_fuse_a,
        "network_type": _han_network_type(root / "han" / "meters.json"),
    }
    _file_site(con, root, site)
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
    if han_files:
        counts["han"] = ingest_han(con, han_files)
    on_stage("submeter")
    submeter_files = sorted((root / "submeter").glob("*.csv"))
    if submeter_files:
        counts["submeter"] = ingest_submeter(con, submeter_files)
    on_stage("sessions")
    resolve_session_copies(con)
    return counts


def _han_network_type(path: Path) -> str | None:
    """``TN``/``IT`` as the AMS meter's ``meters.json`` (firmware_ref's layout) states it."""
    import json

    try:
        meters = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meters, dict):
        return None
    for meter in meters.values():
        if isinstance(meter, dict) and meter.get("network_type") in ("TN", "IT"):
            return str(meter["network_type"])
    return None


def _file_site(con: duckdb.DuckDBPyConnection, root: Path, site: dict) -> None:
    """Give chargers that no source filed under an installation (an OCPP-only site) one."""
    orphans = con.execute("SELECT count(*) FROM chargers WHERE installation_id IS NULL").fetchone()[0]
    installations = [r[0] for r in con.execute("SELECT installation_id FROM installations").fetchall()]
    if not orphans:
        return
    if len(installations) == 1:
        target = installations[0]
    elif installations:
        return  # several installations: which one the chargers belong to is not ours to guess
    else:
        name = site["name"] or root.resolve().name
        target = site["installation_id"] or site_installation_id(name)
        ensure_installation(
            con,
            target,
            name=name,
            timezone=site["timezone"],
            price_area=site["price_area"],
            source="site",
            main_fuse_a=site["main_fuse_a"],
            network_type=site["network_type"],
        )
        adopt_orphans(con, target)
        users_from_id_tags(con, target)
        return
    adopt_orphans(con, target)


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
    timezone: str = DEFAULT_TIMEZONE,
    installation_name: str | None = None,
    main_fuse_a: float | None = None,
    on_stage: Callable[[str], None] = _noop,
) -> DemoResult:
    """Ingest a dataset into ``out_dir/zap.duckdb``, bill, audit and replay it, and write
    ``out_dir/report.html``. Running it twice leaves the store unchanged.

    ``timezone``, ``installation_name`` and ``main_fuse_a`` [A] describe a site without a
    cloud dump (OCPP only).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = Path(sample_dir) if sample_dir is not None else bundled_sample_dir()
    database = out / "zap.duckdb"
    con = open_store(database)
    try:
        counts = ingest_dataset(
            con,
            sample,
            price_area=price_area,
            timezone=timezone,
            installation_name=installation_name,
            main_fuse_a=main_fuse_a,
            on_stage=on_stage,
        )
        on_stage("report")
        keys = sample / "keys"
        report = build_report(
            con,
            out / "report.html",
            flat_price_nok_per_kwh=price_nok_per_kwh,
            grid_company=grid_company,
            public_keys=keys if keys.is_dir() else None,
        )
        if report.billing is not None:
            # The month's sendable statements: one PDF per user, HTML, statements.csv.
            from zapanalytics.report.statements_files import write_statements

            write_statements(report.billing, out / "statements", plotlyjs="directory")
    finally:
        con.close()
    return DemoResult(database, counts, report)
