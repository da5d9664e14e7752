"""F1: a fleet through the kernels, locally and on Spark ``local[2]``.

Setup (not timed): ``firmware_ref`` simulates one co-op (4 chargers, sub-meters, HAN, OCPP,
signed minute registers) for ``--days`` days; it is ingested into a store and cloned in the
store to ``--size`` installations (every id prefixed with the clone's number, so each is its
own installation, charger and session), and ``export --dataset`` writes the dataset (timed
on its own: the export is a workload too).

Timed, medians of ``--repeats`` (one by default: at the full size a single pass of the four
kernels on both engines takes about a quarter of an hour on two cores): each kernel (billing per installation-month, accuracy per
charger, gain per installation, replay per installation) over the whole fleet with the local
loop and with Spark ``local[2]`` (the Spark session's start-up is reported apart, not
timed in). Rows/s counts the dataset rows the kernel's inputs hold. They agree when the two
engines' results are equal row for row.

The crossover on paper: from the two timings, the local loop's cost per group ``w`` [s] and
Spark's fixed cost per job ``o`` [s] (``T_spark - T_local / 2`` on two cores); on a cluster
with ``c`` cores Spark wins once ``G * w > o + G * w / c``, i.e. from ``G* = o / (w (1 - 1/c))``
groups on.

Run: ``.venv/bin/python -m benchmarks.bench_fleet [--quick] [--size 50] [--days 365]``
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Result, alternate, argument_parser, emit

START = dt.date(2025, 1, 1)
SEED = 16
#: Cluster sizes the crossover is stated for [cores].
CLUSTER_CORES = (16, 64, 256)
_ID_COLUMNS = (
    "installation_id",
    "charger_id",
    "session_id",
    "meter_id",
    "replaced_by_session_id",
    "canonical_session_id",
)
_CLONED_TABLES = (
    "installations",
    "chargers",
    "sessions",
    "energy_details",
    "meter_values",
    "charger_states",
    "reference_readings",
)


def build_fleet(root: Path, size: int, days: int, meter_interval_s: float) -> tuple[Path, int]:
    """A store with ``size`` installations cloned from one simulated co-op; its path and
    the seconds the simulation and ingestion took."""
    from firmware_ref.dataset import DatasetSpec, generate_dataset
    from zapanalytics.pipeline import ingest_dataset
    from zapanalytics.store import open_store

    began = time.perf_counter()
    spec = DatasetSpec(
        days=days,
        n_chargers=4,
        seed=SEED,
        start=START,
        kind="coop",
        meter_value_interval_s=meter_interval_s,
    )
    generate_dataset(root / "base", spec)
    database = root / "fleet.duckdb"
    con = open_store(database)
    try:
        ingest_dataset(con, root / "base")
        (base,) = con.execute("SELECT installation_id FROM installations").fetchall()[0]
        for table in _CLONED_TABLES:
            columns = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}  # noqa: S608
            rewritten = [c for c in _ID_COLUMNS if c in columns]
            owner = (
                "installation_id = ?"
                if "installation_id" in columns
                else "charger_id IN (SELECT charger_id FROM chargers WHERE installation_id = ?)"
                if "charger_id" in columns
                else "session_id IN (SELECT session_id FROM sessions WHERE installation_id = ?)"
            )
            for number in range(1, size):
                replace = ", ".join(f"'{number:04d}-' || {c} AS {c}" for c in rewritten)
                con.execute(
                    f"INSERT INTO {table} SELECT * REPLACE ({replace}) FROM {table} WHERE {owner}",  # noqa: S608
                    [base],
                ).fetchall()
    finally:
        con.close()
    return database, time.perf_counter() - began


def _input_rows(dataset: Path, kernel: str) -> int:
    from zapanalytics.dataset import read_manifest
    from zapanalytics.engines.kernels import KERNELS

    manifest = read_manifest(dataset)
    tables = {source.table for source in KERNELS[kernel].inputs}
    return sum(p["rows"] for t in tables for p in manifest["tables"][t]["partitions"].values())


def crossover_groups(local_s: float, spark_s: float, groups: int, cores: int) -> float | None:
    """Groups from which a ``cores``-core cluster beats the local loop (see module notes)."""
    per_group = local_s / max(groups, 1)
    overhead = max(spark_s - local_s / 2, 0.0)
    if per_group <= 0 or cores <= 1:
        return None
    return overhead / (per_group * (1 - 1 / cores))


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50, help="installations in the fleet")
    parser.add_argument("--days", type=int, default=365, help="days simulated")
    parser.add_argument(
        "--meter-interval", type=float, default=60.0, help="signed register interval [s]"
    )
    parser.set_defaults(repeats=1)
    args = parser.parse_args(argv)
    size, days = (3, 7) if args.quick else (args.size, args.days)
    from zapanalytics.dataset import export_dataset
    from zapanalytics.engines.local import run_local
    from zapanalytics.engines.spark import run_spark, spark_session
    from zapanalytics.store import read_only_store

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="zap_fleet_") as scratch:
        root = Path(scratch)
        database, made_s = build_fleet(root, size, days, args.meter_interval)
        print(f"fleet: {size} installations × {days} d made in {made_s:.0f} s", flush=True)
        con = read_only_store(database)
        try:
            began = time.perf_counter()
            summary = export_dataset(con, root / "dataset")
            export_s = time.perf_counter() - began
        finally:
            con.close()
        dataset = root / "dataset"
        total_rows = sum(t["rows"] for t in summary.tables.values())
        size_mb = sum(f.stat().st_size for f in dataset.rglob("*.parquet")) / 2**20
        meter = summary.tables["meter_values"]
        results.append(
            Result(
                workload="F1 export --dataset",
                ours="first export",
                ours_value=export_s,
                notes=f"{total_rows:,} rows, {size_mb:,.1f} MiB Parquet, "
                f"{total_rows / export_s:,.0f} rows/s; meter_values {meter['rows']:,} rows in "
                f"{meter['partitions']} partitions",
            )
        )
        began = time.perf_counter()
        spark = spark_session(
            "local[2]",
            config={
                "spark.sql.shuffle.partitions": "4",
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
            },
        )
        spark.sparkContext.setLogLevel("ERROR")
        start_s = time.perf_counter() - began
        try:
            # The first job starts the Python workers and their imports: timed apart.
            began = time.perf_counter()
            run_spark(dataset, "accuracy", spark=spark)
            warm_s = time.perf_counter() - began
            print(f"Spark local[2]: session {start_s:.1f} s, first jobs {warm_s:.1f} s", flush=True)
            for kernel, params in (
                ("billing", {"method": "spot", "now": "2030-01-01T00:00:00+00:00"}),
                ("accuracy", {}),
                ("gain", {}),
                ("replay", {}),
            ):
                timings = alternate(
                    {
                        "local": lambda k=kernel, p=params: run_local(dataset, k, params=p),
                        "spark": lambda k=kernel, p=params: run_spark(
                            dataset, k, spark=spark, params=p
                        ),
                    },
                    repeats=args.repeats,
                )
                local, distributed = timings["local"], timings["spark"]
                groups = local.value.num_rows
                rows = _input_rows(dataset, kernel)
                crossover = ", ".join(
                    f"{c} cores ≥ {g:,.0f} groups"
                    for c in CLUSTER_CORES
                    if (g := crossover_groups(local.median_s, distributed.median_s, groups, c))
                    is not None
                )
                agree = local.value.to_pylist() == distributed.value.to_pylist()
                results.append(
                    Result(
                        workload=f"F1 {kernel} ({groups} groups)",
                        ours="spark local[2]",
                        ours_value=distributed.median_s,
                        comparator="local loop",
                        comparator_value=local.median_s,
                        peak_rss_mb=local.peak_rss_mb,
                        agree=agree,
                        notes=("equal results; " if agree else "RESULTS DIFFER; ")
                        + f"{rows / local.median_s:,.0f} rows/s local, "
                        f"{rows / distributed.median_s:,.0f} rows/s spark; session start "
                        f"{start_s:.0f} s and first jobs {warm_s:.0f} s not timed; "
                        f"crossover on paper: {crossover}",
                    )
                )
        finally:
            spark.stop()
    emit(results, args.result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
