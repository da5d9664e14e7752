"""The store as an incremental, Hive-partitioned Parquet dataset: the hand-off to Spark.

``export --dataset DIR`` writes every contract table (and the ``canonical_sessions`` view,
which billing and replay read) to ``DIR/<table>/installation=<id>/month=<YYYY-MM>/data.parquet``:

* ``installation`` is the row's installation id (borrowed from its session or charger where
  the table has none); ``_none`` for rows that belong to no installation (prices, runs).
* ``month`` is the installation's local calendar month of the row's instant (UTC for rows
  without an installation); ``_all`` for the undated tables ``installations`` and
  ``chargers``.

The partition directories are named ``installation``/``month``, not after a contract
column, so every contract column (``installation_id`` included, NULL where the store has
NULL) comes from the file with the store's type, and no reader's partition inference can
turn an id such as ``00123`` into a number. Readers still give the partition columns'
type: :func:`spark_schema` and :func:`duckdb_relation` do, from the column types the
manifest records.

A second export rewrites only the partitions whose rows changed. Each partition's content
is summarised in DuckDB set-wise (row count plus two order-independent sums of the rows'
64-bit hashes) and compared with ``DIR/_manifest.json``; a changed partition is written
to a hidden temporary file beside its target and renamed over it, so a reader sees the old
file or the new one, never half of one. The manifest is replaced the same way last; an
export that stops half-way leaves a manifest that is merely behind, and the next export
rewrites what differs.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from zapanalytics.store import CONTRACT_TABLES, table_columns

__all__ = [
    "DATASET_TABLES",
    "MANIFEST_NAME",
    "DatasetError",
    "ExportSummary",
    "arrow_schema",
    "duckdb_relation",
    "export_dataset",
    "partition_path",
    "read_manifest",
    "read_partitions",
    "spark_schema",
]

MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = 1
DATA_FILE = "data.parquet"
#: Partition values of rows that have no installation, and of undated tables.
NO_INSTALLATION = "_none"
UNDATED = "_all"
NO_INSTANT = "_none"
#: Rows fetched per query when writing partitions: bounds the memory an export holds
#: (a partition larger than this is fetched alone).
ROWS_PER_BATCH = 2_000_000

#: The contract tables and the canonical view (what billing and replay read).
DATASET_TABLES = (*CONTRACT_TABLES, "canonical_sessions")

# How each table reaches an installation and which instant dates a row (None: undated).
# Tables without an installation of their own borrow it from the session or the charger.
_PARTITIONING: dict[str, tuple[str, str | None, str]] = {
    "installations": ("t.installation_id", None, ""),
    "chargers": ("t.installation_id", None, ""),
    "sessions": ("t.installation_id", "t.start_utc", ""),
    "canonical_sessions": ("t.installation_id", "t.start_utc", ""),
    "energy_details": (
        "s.installation_id",
        "t.ts_utc",
        "LEFT JOIN sessions s ON s.session_id = t.session_id",
    ),
    "meter_values": (
        "c.installation_id",
        "t.ts_utc",
        "LEFT JOIN chargers c ON c.charger_id = t.charger_id",
    ),
    "charger_states": (
        "c.installation_id",
        "t.ts_utc",
        "LEFT JOIN chargers c ON c.charger_id = t.charger_id",
    ),
    "reference_readings": (
        "coalesce(t.installation_id, c.installation_id)",
        "t.ts_utc",
        "LEFT JOIN chargers c ON c.charger_id = t.charger_id",
    ),
    "prices": ("NULL", "t.start_utc", ""),
    "ingest_runs": ("NULL", "t.started_at", ""),
    "quarantine": ("NULL", "t.quarantined_at", ""),
}

# The store's column types and how Arrow and Spark spell them.
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "BOOLEAN": pa.bool_(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "SMALLINT": pa.int16(),
    "TINYINT": pa.int8(),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
}
_SPARK_TYPES = {
    "VARCHAR": "string",
    "DOUBLE": "double",
    "FLOAT": "float",
    "BOOLEAN": "boolean",
    "INTEGER": "int",
    "BIGINT": "bigint",
    "SMALLINT": "smallint",
    "TINYINT": "tinyint",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "DATE": "date",
}
#: The partition columns every dataset table carries; text, always.
PARTITION_COLUMNS = ("installation", "month")


class DatasetError(ValueError):
    """A dataset that cannot be written or read as asked."""


@dataclass
class ExportSummary:
    """What one ``export --dataset`` did.

    Attributes
    ----------
    path : Path
        The dataset directory.
    tables : dict
        Per table: ``rows``, ``partitions``, ``written`` (partitions rewritten),
        ``unchanged`` and ``removed``.
    written : list of str
        ``<table>/installation=<id>/month=<m>`` of every partition rewritten.
    """

    path: Path
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "tables": self.tables,
            "partitions_written": len(self.written),
            "written": self.written,
        }


def partition_path(table: str, installation: str, month: str) -> str:
    """Relative directory of one partition, e.g. ``sessions/installation=<id>/month=2025-10``."""
    return f"{table}/installation={_escape(installation)}/month={_escape(month)}"


def _escape(value: str) -> str:
    # Hive escapes these in directory names (Spark unescapes them on read); ids are
    # UUIDs or serials in practice, so this rarely changes anything.
    return "".join(
        f"%{ord(c):02X}" if c in "\"#%'*/:=?\\{}[]^" or ord(c) < 32 else c for c in value
    )


def _store_types(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    if not rows:
        raise DatasetError(f"the store has no table or view {table!r}")
    return [(name, kind) for name, kind in rows]


def arrow_schema(columns: Sequence[Sequence[str]], *, partitions: bool = False) -> pa.Schema:
    """Arrow schema of a dataset table from its ``[name, store type]`` pairs (the manifest's)."""
    fields = []
    for name, kind in columns:
        if kind not in _ARROW_TYPES:
            raise DatasetError(f"column {name} has type {kind}, which the dataset does not map")
        fields.append(pa.field(name, _ARROW_TYPES[kind]))
    if partitions:
        fields += [pa.field(c, pa.string()) for c in PARTITION_COLUMNS]
    return pa.schema(fields)


def spark_schema(columns: Sequence[Sequence[str]]) -> str:
    """Spark DDL schema of a dataset table, partition columns as strings.

    Read with ``spark.read.schema(spark_schema(...)).parquet(path)``: given a schema,
    Spark takes the partition columns' type from it instead of guessing one.
    """
    parts = [f"`{name}` {_SPARK_TYPES[kind]}" for name, kind in columns]
    parts += [f"`{c}` string" for c in PARTITION_COLUMNS]
    return ", ".join(parts)


def duckdb_relation(
    con: duckdb.DuckDBPyConnection, dataset: str | Path, table: str
) -> duckdb.DuckDBPyRelation:
    """One dataset table as a DuckDB relation, partition columns typed as text."""
    files = str(Path(dataset) / table / "*" / "*" / "*.parquet")
    return con.sql(
        "SELECT * FROM read_parquet(?, hive_partitioning = true, "
        "hive_types = {'installation': VARCHAR, 'month': VARCHAR})",
        params=[files],
    )


def read_manifest(dataset: str | Path) -> dict[str, Any]:
    """The dataset's manifest (an empty one when the directory has none yet)."""
    path = Path(dataset) / MANIFEST_NAME
    if not path.exists():
        return {"format": MANIFEST_FORMAT, "tables": {}}
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DatasetError(f"{path} has format {manifest.get('format')!r}, not {MANIFEST_FORMAT}")
    return manifest


def _partition_query(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, list[str]]:
    installation, instant, join = _PARTITIONING[table]
    columns = (
        table_columns(con, table)
        if table != "canonical_sessions"
        else [name for name, _ in _store_types(con, table)]
    )
    selected = ", ".join(f't."{c}"' for c in columns)
    if instant is None:
        month = f"'{UNDATED}'"
        instant_sql = "NULL::TIMESTAMPTZ"
    else:
        # The installation's local month; rows with no installation use UTC.
        month = (
            f"coalesce(strftime(timezone(coalesce(i.timezone, 'UTC'), {instant}), '%Y-%m'), "
            f"'{NO_INSTANT}')"
        )
        instant_sql = instant
    query = f"""
        SELECT {selected},
               coalesce({installation}, '{NO_INSTALLATION}') AS _installation,
               {month} AS _month,
               {instant_sql} AS _instant,
               hash(t) AS _row_hash
        FROM "{table}" t {join}
        LEFT JOIN installations i ON i.installation_id = {installation}
    """  # noqa: S608 - table and columns come from the store's own catalogue
    return query, columns


def _content_hash(rows: int, xor_hash: int, sum_hash: int) -> str:
    return hashlib.sha256(f"{rows}:{xor_hash}:{sum_hash}".encode()).hexdigest()


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def _partition_stats(con: duckdb.DuckDBPyConnection, query: str) -> dict[tuple[str, str], dict]:
    rows = con.execute(
        f"""
        SELECT _installation, _month, count(*), bit_xor(_row_hash),
               sum(_row_hash::HUGEINT)::VARCHAR, min(_instant), max(_instant)
        FROM ({query}) GROUP BY _installation, _month
        """  # noqa: S608 - the query is built above from the catalogue
    ).fetchall()
    return {
        (installation, month): {
            "rows": count,
            "sha256": _content_hash(count, xor_hash, sum_hash),
            "min_utc": _iso(first),
            "max_utc": _iso(last),
        }
        for installation, month, count, xor_hash, sum_hash, first, last in rows
    }


def _write_atomically(table: pa.Table, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _batches(keys: list, rows: dict, limit: int) -> Iterable[list]:
    """``keys`` in runs whose rows add up to at most ``limit`` (one key at least)."""
    batch: list = []
    total = 0
    for key in keys:
        if batch and total + rows[key] > limit:
            yield batch
            batch, total = [], 0
        batch.append(key)
        total += rows[key]
    if batch:
        yield batch


def _write_partitions(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    table: str,
    query: str,
    columns: list[str],
    schema: pa.Schema,
    keys: list[tuple[str, str]],
    rows_per_key: dict[tuple[str, str], int],
) -> None:
    selected = ", ".join(f'"{c}"' for c in columns)
    for batch in _batches(keys, rows_per_key, ROWS_PER_BATCH):
        wanted = pa.table(
            {
                "_installation": pa.array([k[0] for k in batch], pa.string()),
                "_month": pa.array([k[1] for k in batch], pa.string()),
            }
        )
        con.register("_dataset_wanted", wanted)
        try:
            rows = con.sql(
                f"""
                SELECT {selected}, _installation, _month FROM ({query})
                JOIN _dataset_wanted USING (_installation, _month)
                ORDER BY _installation, _month, _row_hash
                """  # noqa: S608 - names from the catalogue
            ).to_arrow_table()
        finally:
            con.unregister("_dataset_wanted")
        # One pass splits the batch: rows arrive sorted by partition.
        installations = rows.column("_installation").to_pylist()
        months = rows.column("_month").to_pylist()
        data = rows.select(columns).cast(schema)
        start = 0
        for index in range(1, len(installations) + 1):
            if index == len(installations) or (installations[index], months[index]) != (
                installations[start],
                months[start],
            ):
                if start < len(installations):
                    target = root / partition_path(table, installations[start], months[start])
                    _write_atomically(data.slice(start, index - start), target / DATA_FILE)
                start = index


def _remove_partition(root: Path, table: str, installation: str, month: str) -> None:
    directory = root / partition_path(table, installation, month)
    (directory / DATA_FILE).unlink(missing_ok=True)
    for folder in (directory, directory.parent):
        try:
            folder.rmdir()
        except OSError:  # not empty: other months or files someone else put there
            break


def export_dataset(
    con: duckdb.DuckDBPyConnection,
    out: str | Path,
    *,
    tables: Sequence[str] = DATASET_TABLES,
    now: dt.datetime | None = None,
) -> ExportSummary:
    """Write or bring up to date the Parquet dataset of a store.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The store (read-only is enough).
    out : str or Path
        Dataset directory; created when missing.
    tables : sequence of str
        Tables to export (default: every contract table and ``canonical_sessions``).
    now : datetime, optional
        Time recorded as a rewritten partition's ``written_utc`` (default: the clock).

    Returns
    -------
    ExportSummary
        Per table: rows, partitions, and how many were rewritten, kept or removed.
    """
    unknown = [t for t in tables if t not in _PARTITIONING]
    if unknown:
        raise DatasetError(f"unknown table {unknown[0]!r}; choose from {', '.join(DATASET_TABLES)}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".export.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes
        except BlockingIOError:
            raise DatasetError(
                f"another export is writing {root}; try again when it is done"
            ) from None
        return _export_locked(con, root, tables, now)


def _export_locked(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    tables: Sequence[str],
    now: dt.datetime | None,
) -> ExportSummary:
    # Files of an export that was stopped half-way: never read (hidden), removed now.
    for stale in root.glob("*/*/*/.*.tmp"):
        stale.unlink(missing_ok=True)
    manifest = read_manifest(root)
    hash_function = f"duckdb {duckdb.__version__} hash"
    if manifest.get("hash_function") != hash_function:
        manifest["tables"] = {}  # hashes of another DuckDB do not compare: rewrite all
    written_utc = _iso(now or dt.datetime.now(dt.UTC))
    summary = ExportSummary(root)
    new_tables: dict[str, Any] = dict(manifest["tables"])
    for table in tables:
        store_types = _store_types(con, table)
        query, columns = _partition_query(con, table)
        column_types = [[name, kind] for name, kind in store_types if name in columns]
        schema = arrow_schema(column_types)
        previous = manifest["tables"].get(table, {})
        old_partitions = (
            previous.get("partitions", {}) if previous.get("columns") == column_types else {}
        )
        stats = _partition_stats(con, query)
        changed = []
        partitions: dict[str, dict] = {}
        for (installation, month), stat in sorted(stats.items()):
            key = partition_path(table, installation, month)
            old = old_partitions.get(key)
            on_disk = (root / key / DATA_FILE).exists()
            if old is not None and old["sha256"] == stat["sha256"] and on_disk:
                partitions[key] = old
                continue
            changed.append((installation, month))
            partitions[key] = {
                "installation": installation,
                "month": month,
                **stat,
                "file": f"{key}/{DATA_FILE}",
                "written_utc": written_utc,
            }
        _write_partitions(
            con,
            root,
            table,
            query,
            columns,
            schema,
            changed,
            {k: stats[k]["rows"] for k in changed},
        )
        removed = [entry for key, entry in old_partitions.items() if key not in partitions]
        for entry in removed:
            _remove_partition(root, table, entry["installation"], entry["month"])
        new_tables[table] = {"columns": column_types, "partitions": partitions}
        summary.tables[table] = {
            "rows": sum(p["rows"] for p in partitions.values()),
            "partitions": len(partitions),
            "written": len(changed),
            "unchanged": len(partitions) - len(changed),
            "removed": len(removed),
        }
        summary.written += [partition_path(table, *k) for k in changed]
    document = {
        "format": MANIFEST_FORMAT,
        "hash_function": hash_function,
        "partitioning": {
            "columns": list(PARTITION_COLUMNS),
            "installation": f"the row's installation id; {NO_INSTALLATION} when it has none",
            "month": f"YYYY-MM in the installation's zone (UTC without one); {UNDATED} for undated tables",
        },
        "tables": new_tables,
    }
    target = root / MANIFEST_NAME
    temporary = target.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", "utf-8")
    os.replace(temporary, target)
    return summary


def read_partitions(
    dataset: str | Path,
    table: str,
    *,
    installations: Iterable[str] | None = None,
    months: Iterable[str] | None = None,
    manifest: dict[str, Any] | None = None,
) -> pa.Table:
    """Rows of ``table`` in the named partitions, typed by the manifest, partition columns added.

    Parameters
    ----------
    dataset : str or Path
    table : str
    installations, months : iterable of str, optional
        Partition values to keep (default: all). Undated tables ignore ``months``.
    manifest : dict, optional
        An already read manifest.

    Returns
    -------
    pyarrow.Table
        The table's columns in the store's types, then ``installation`` and ``month``.
    """
    manifest = manifest or read_manifest(dataset)
    entry = manifest["tables"].get(table)
    if entry is None:
        raise DatasetError(f"the dataset at {dataset} has no table {table!r}; export it first")
    schema = arrow_schema(entry["columns"], partitions=True)
    wanted_installations = None if installations is None else set(installations)
    wanted_months = None if months is None else set(months)
    parts = []
    for partition in entry["partitions"].values():
        if (
            wanted_installations is not None
            and partition["installation"] not in wanted_installations
        ):
            continue
        if (
            wanted_months is not None
            and partition["month"] != UNDATED
            and partition["month"] not in wanted_months
        ):
            continue
        data = pq.read_table(Path(dataset) / partition["file"])
        size = data.num_rows
        data = data.append_column(
            "installation", pa.array([partition["installation"]] * size, pa.string())
        )
        data = data.append_column("month", pa.array([partition["month"]] * size, pa.string()))
        parts.append(data.cast(schema))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts)
