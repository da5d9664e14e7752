"""Benchmark data made with ``firmware_ref``, shared by the scripts of one ``make bench`` run.

Simulating a year of a 100-charger co-op and writing its Zaptec API dump takes about a
minute; three workloads (B1 ingest, B3 replay, the Zaptec sync) start from that dump. The
runner points :data:`CACHE_ENV` at a temporary directory for the whole run, so the dump is
made once; a script run on its own makes it in its own temporary directory. Making the
data is never part of a timed run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

CACHE_ENV = "ZAPANALYTICS_BENCH_CACHE"
#: The charger (0-based index) that ignores its allocation for 20 minutes.
FAULTY_CHARGER_INDEX = 7
SEED = 11
START = dt.date(2025, 1, 1)


@dataclasses.dataclass(frozen=True)
class YearDump:
    """A simulated co-op written as a Zaptec API dump (``root / "zaptec"``)."""

    root: Path
    chargers: int
    days: int
    sessions: int
    fault_charger_id: str
    fault_triggered: bool
    made_in_s: float
    from_cache: bool

    @property
    def described(self) -> str:
        return f"firmware_ref co-op, {self.chargers} chargers × {self.days} d, seed {SEED}"


def _main_fuse_a(chargers: int) -> float:
    # A 250 A supply for a large co-op keeps the load balancer busy without starving it.
    return 250.0 if chargers >= 50 else 63.0


def _build(target: Path, chargers: int, days: int) -> dict:
    from firmware_ref.faults import IgnoreAllocation
    from firmware_ref.formats.zaptec_api import write_zaptec_api
    from firmware_ref.simulate import SimulationConfig, simulate

    config = SimulationConfig(
        kind="coop",
        n_chargers=chargers,
        days=days,
        start=START,
        main_fuse_a=_main_fuse_a(chargers),
        sign_ocmf=False,  # signing costs ~0.2 ms a record; no workload here verifies them
        # 100 chargers behind one 250 A supply is more than one Pro installation may have (the
        # manual: 63 A); it stands for a large site's year in one store, and keeps the data
        # the same as the earlier published runs (19,734 sessions, 1.01 M details).
        enforce_product_limits=chargers < 50,
        faults=(IgnoreAllocation(min(FAULTY_CHARGER_INDEX, chargers - 1)),),
    )
    result = simulate(config, SEED)
    write_zaptec_api(result, target)
    fault = result.faults[0]
    return {
        "sessions": int(result.stats["sessions"]),
        "fault_charger_id": fault.charger_id,
        "fault_triggered": bool(fault.details.get("triggered")),
    }


def year_dump(chargers: int, days: int, scratch: Path) -> YearDump:
    """The co-op's Zaptec dump: from the run's cache when there is one, else made in ``scratch``.

    Parameters
    ----------
    chargers : int
        Chargers in the co-op.
    days : int
        Simulated days from 2025-01-01.
    scratch : Path
        A directory of the caller's, used when no cache is configured.
    """
    cache = os.environ.get(CACHE_ENV)
    base = Path(cache) if cache else scratch
    target = base / f"coop_{chargers}x{days}_seed{SEED}"
    meta_path = target / "bench_meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return YearDump(target, chargers, days, made_in_s=meta.pop("made_in_s"),
                        from_cache=True, **meta)  # fmt: skip
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    began = time.perf_counter()
    meta = _build(target, chargers, days)
    meta["made_in_s"] = round(time.perf_counter() - began, 1)
    meta_path.write_text(json.dumps(meta))
    return YearDump(target, chargers, days, made_in_s=meta.pop("made_in_s"),
                    from_cache=False, **meta)  # fmt: skip


def charge_history_only(dump: YearDump, destination: Path) -> Path:
    """A view of the dump without the state observations: installation, chargers and
    charge history only (symbolic links, nothing copied). Returns the view's root."""
    source = dump.root / "zaptec"
    view = destination / "zaptec"
    view.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name != "observations.jsonl":
            (view / entry.name).symlink_to(entry.resolve())
    return destination


def ingested_store(dump: YearDump) -> tuple[Path, float | None]:
    """The whole dump (observations included) ingested into a store next to it, once.

    Returns the store's path and the seconds the ingestion took (None when it was there
    already). Open it read-only, or copy it: other workloads of the run use it too.
    """
    from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
    from zapanalytics.store import open_store

    database = dump.root / "ingested.duckdb"
    if database.exists():
        return database, None
    partial = dump.root / "ingesting.duckdb"
    partial.unlink(missing_ok=True)
    began = time.perf_counter()
    con = open_store(partial)
    try:
        ingest_zaptec_dump(con, dump.root)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    partial.rename(database)
    return database, time.perf_counter() - began


def table_counts(database: Path, tables: tuple[str, ...]) -> dict[str, int]:
    """Rows per table of a store, read-only."""
    import duckdb

    con = duckdb.connect(str(database), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}  # noqa: S608
    finally:
        con.close()
