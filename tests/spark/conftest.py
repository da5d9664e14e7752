"""One fleet dataset and one ``local[2]`` Spark session for the whole run.

The fleet: three firmware_ref installations of different kinds (a co-op on TN with the
sample faults, a home, a workplace on IT) from 24 October to 2 November 2025 (the DST
change of 26 October, and two months), ingested into one store and exported as a dataset.
Under pytest-xdist each worker is its own session: the first to ask builds the fleet into
the run's shared temporary directory under a file lock; the others read it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FLEET = (
    # (name, kind, chargers, seed, network)
    ("coop", "coop", 4, 1, "TN"),
    ("home", "home", 2, 2, "TN"),
    ("workplace", "workplace", 3, 3, "IT"),
)
FLEET_START = dt.date(2025, 10, 24)
FLEET_DAYS = 10


@dataclass(frozen=True)
class Fleet:
    store: Path
    dataset: Path


def _build_fleet(root: Path) -> None:
    from firmware_ref.dataset import DatasetSpec, generate_dataset
    from zapanalytics.dataset import export_dataset
    from zapanalytics.pipeline import ingest_dataset
    from zapanalytics.store import open_store

    con = open_store(root / "zap.duckdb")
    try:
        for name, kind, chargers, seed, network in FLEET:
            spec = DatasetSpec(
                days=FLEET_DAYS, n_chargers=chargers, seed=seed, start=FLEET_START, kind=kind,
                network=network,
            )  # fmt: skip
            generate_dataset(root / name, spec)
            ingest_dataset(con, root / name)
        export_dataset(con, root / "dataset")
    finally:
        con.close()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory, request) -> Fleet:
    """The three-installation store and its dataset, built once per run (read-only)."""
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    shared = (
        tmp_path_factory.mktemp("fleet")
        if worker is None
        else tmp_path_factory.getbasetemp().parent / "fleet-shared"
    )
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (shared / "done").exists():
            _build_fleet(shared)
            (shared / "done").touch()
    return Fleet(shared / "zap.duckdb", shared / "dataset")


def _why_no_spark() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (the 'spark' extra, which `make test` installs)"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").exists()):
        return "no Java runtime (apt-get install openjdk-17-jre-headless; `make test` does)"
    return None


@pytest.fixture(scope="session")
def spark():
    """One ``local[2]`` session for every spark test: UI off, bound to 127.0.0.1."""
    reason = _why_no_spark()
    if reason:
        pytest.skip(reason)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from zapanalytics.engines.spark import spark_session

    session = spark_session(
        "local[2]",
        app_name="zapanalytics-tests",
        config={
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.memory": "1g",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
