"""The Spark engine: the same kernels over the same dataset, one group per Arrow batch.

Each input table is read with the schema the manifest records (partition columns as
text), filtered to the run's partitions, and its rows are given the key of every group
that needs them (a session row also belongs to the next month's bill; a price row to every
installation of its price area). The inputs are then stacked into one frame, their
columns prefixed ``<table>__`` so that two tables' like-named columns never have to agree
on a type, and ``groupBy(keys).applyInArrow`` hands each group to the kernel, which gets
its tables back exactly as the local engine reads them. (``cogroup`` would take two inputs
only; the kernels read up to six tables.)

The executors need ``zapanalytics`` importable (installed, or shipped with
``--py-files``); see ``docs/scale.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from zapanalytics.dataset import NO_INSTALLATION, UNDATED, arrow_schema, read_manifest, spark_schema
from zapanalytics.engines.kernels import KERNELS, RESULT_SCHEMA, TableInput
from zapanalytics.engines.plan import run_scope, shift_month

if TYPE_CHECKING:  # pyspark is an optional extra
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkUnavailable", "run_spark", "spark_session"]

_GROUP_COLUMNS = ("_g_installation", "_g_month", "_g_charger")
_TABLE_COLUMN = "_table"
_SEPARATOR = "__"
_RESULT_DDL = "group_key string, document_json string"


class SparkUnavailable(RuntimeError):
    """pyspark or a Java runtime is missing."""


def spark_session(
    master: str = "local[*]",
    *,
    app_name: str = "zapanalytics",
    config: Mapping[str, str] | None = None,
) -> SparkSession:
    """A Spark session for the kernels (or the active one when already running).

    The session time zone is UTC (the dataset's instants are UTC; months come from the
    partition values, never from Spark's clock), Arrow is on, and the Python workers run
    the interpreter that runs this (so they import the same ``zapanalytics``).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable(
            "pyspark is not installed; install the 'spark' extra (pip install 'zapanalytics[spark]')"
        ) from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    )
    for name, value in (config or {}).items():
        builder = builder.config(name, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # Java missing or the JVM failed to start
        raise SparkUnavailable(
            f"cannot start Spark ({master}): {str(exc).splitlines()[0]}"
        ) from exc


def _month_expression(column: str, offset: int):
    from pyspark.sql import functions as F

    # Partition months are YYYY-MM text; add_months works on dates.
    return F.date_format(
        F.add_months(F.to_date(F.concat(F.col(column), F.lit("-01"))), offset), "yyyy-MM"
    )


def session_frame(spark: SparkSession, rows: list[tuple], ddl: str) -> DataFrame:
    """A small driver-side frame (group targets, price areas)."""
    return spark.createDataFrame(rows, ddl)


def _read(spark: SparkSession, root: Path, table: str, columns: list) -> DataFrame:
    return (
        spark.read.schema(spark_schema(columns))
        .option("basePath", str(root / table))
        .parquet(str(root / table))
    )


def _keyed_input(
    spark: SparkSession,
    root: Path,
    manifest: dict[str, Any],
    source: TableInput,
    group_by: str,
    scope,
) -> DataFrame:
    from pyspark.sql import functions as F

    columns = manifest["tables"][source.table]["columns"]
    frame = _read(spark, root, source.table, columns)
    for column, value in source.where:
        frame = frame.filter(F.col(column) == F.lit(value))
    if source.by_price_area:
        areas = [(i, a) for i, a in scope.price_areas.items() if i in scope.installations and a]
        owners = session_frame(spark, areas, "_g_installation string, _area string")
        frame = (
            frame.filter(F.col("installation") == NO_INSTALLATION)
            .join(owners, frame["price_area"] == owners["_area"])
            .drop("_area")
        )
    else:
        frame = frame.filter(F.col("installation").isin(list(scope.installations))).withColumn(
            "_g_installation", F.col("installation")
        )
    if group_by == "installation_month":
        targets = session_frame(
            spark, list(scope.targets), "_t_installation string, _t_month string"
        )
        offsets = source.month_offsets or (0,)
        # A row of partition month p serves the group month p - offset.
        dated = frame.filter(F.col("month") != UNDATED).withColumn(
            "_row_month", F.explode(F.array(*[_month_expression("month", -o) for o in offsets]))
        )
        dated = dated.join(
            targets,
            (dated["_g_installation"] == targets["_t_installation"])
            & (dated["_row_month"] == targets["_t_month"]),
        )
        undated = frame.filter(F.col("month") == UNDATED)
        undated = undated.join(targets, undated["_g_installation"] == targets["_t_installation"])
        frame = (
            dated.unionByName(undated, allowMissingColumns=True)
            .withColumn("_g_month", F.col("_t_month"))
            .drop("_t_installation", "_t_month", "_row_month")
        )
    else:
        if scope.month is not None:
            offsets = source.month_offsets or (0,)
            months = [shift_month(scope.month, o) for o in offsets] + [UNDATED]
            frame = frame.filter(F.col("month").isin(months))
        frame = frame.withColumn("_g_month", F.lit(None).cast("string"))
    if group_by == "charger":
        # (installation, charger), as the local loop splits each installation's rows.
        frame = frame.withColumn("_g_charger", F.col("charger_id")).filter(
            F.col("_g_charger").isNotNull()
        )
    else:
        frame = frame.withColumn("_g_charger", F.lit(None).cast("string"))
    names = [name for name, _ in columns]
    return frame.select(
        F.lit(source.table).alias(_TABLE_COLUMN),
        *[F.col(c) for c in _GROUP_COLUMNS],
        *[F.col(f"`{n}`").alias(f"{source.table}{_SEPARATOR}{n}") for n in names],
    )


def _group_function(kernel_name: str, tables: dict[str, list], params: dict[str, Any]):
    """The function Spark calls per group: unstack the inputs, run the kernel."""

    def run_group(stacked: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        from zapanalytics.engines.kernels import KERNELS as kernels

        kernel = kernels[kernel_name]
        first = stacked.slice(0, 1).to_pylist()[0] if stacked.num_rows else {}
        inputs = {}
        for name, columns in tables.items():
            schema = arrow_schema(columns)
            own = stacked.filter(pc.equal(stacked.column(_TABLE_COLUMN), name))
            prefixed = [f"{name}{_SEPARATOR}{c}" for c, _ in columns]
            inputs[name] = own.select(prefixed).rename_columns([c for c, _ in columns]).cast(schema)
        if kernel.group_by == "charger":
            key = {"charger": first.get("_g_charger")}
        else:
            key = {"installation": first.get("_g_installation")}
            if kernel.group_by == "installation_month":
                key["month"] = first.get("_g_month")
        return kernel.function(inputs, key, params).cast(RESULT_SCHEMA)

    return run_group


def run_spark(
    dataset: str | Path,
    kernel_name: str,
    *,
    spark: SparkSession | None = None,
    master: str = "local[*]",
    installations: Iterable[str] | None = None,
    month: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Run one kernel over a dataset on Spark; the same result as :func:`~zapanalytics.engines.local.run_local`.

    Parameters
    ----------
    dataset : str or Path
        A directory written by ``export --dataset`` that every executor can read.
    kernel_name : str
        A key of :data:`zapanalytics.engines.kernels.KERNELS`.
    spark : SparkSession, optional
        A running session (default: :func:`spark_session` with ``master``).
    master : str
        Spark master URL when no session is given (``local[*]``, ``spark://host:7077``).
    installations, month, params
        As for :func:`~zapanalytics.engines.local.run_local`.

    Returns
    -------
    pyarrow.Table
        :data:`~zapanalytics.engines.kernels.RESULT_SCHEMA` rows sorted by ``group_key``.
    """
    from functools import reduce

    from zapanalytics.engines.local import installation_price_areas

    kernel = KERNELS[kernel_name]
    root = Path(dataset).resolve()
    manifest = read_manifest(root)
    areas = installation_price_areas(root, manifest)
    scope = run_scope(manifest, kernel, installations=installations, month=month, price_areas=areas)
    if not scope.installations or (kernel.group_by == "installation_month" and not scope.targets):
        return RESULT_SCHEMA.empty_table()
    session = spark or spark_session(master)
    run_params = dict(params or {})
    if month is not None:
        run_params["month"] = month
    parts = [
        _keyed_input(session, root, manifest, s, kernel.group_by, scope) for s in kernel.inputs
    ]
    stacked = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    tables = {s.table: manifest["tables"][s.table]["columns"] for s in kernel.inputs}
    grouped = stacked.groupBy(*_GROUP_COLUMNS).applyInArrow(
        _group_function(kernel_name, tables, run_params), _RESULT_DDL
    )
    rows = grouped.toArrow()
    return rows.cast(RESULT_SCHEMA).sort_by("group_key")
