"""Idempotent batch upserts into the store."""

from __future__ import annotations

import uuid
from collections.abc import Collection

import duckdb
import polars as pl

# Columns that record *when* a row was written: they change only when the content does.
_BOOKKEEPING_COLUMNS = frozenset({"ingested_at"})


def primary_key(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, ...]:
    """Return the primary-key columns of ``table`` as declared in the store."""
    row = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints()"
        " WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [table],
    ).fetchall()
    if not row:
        raise KeyError(f"table {table!r} has no primary key")
    return tuple(row[0][0])


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, ...]:
    """Return the columns of ``table`` in their declared order."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
        [table],
    ).fetchall()
    if not rows:
        raise KeyError(f"no table {table!r} in the store")
    return tuple(r[0] for r in rows)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def upsert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pl.DataFrame,
    *,
    in_transaction: bool = False,
    on_conflict: str = "update",
    keep_when_null: Collection[str] = (),
) -> int:
    """Insert or update ``frame`` into ``table`` by primary key.

    Rows whose key already exists are updated only when a content column differs,
    so re-running an ingestion leaves the table (including ``ingested_at``) unchanged.
    Duplicate keys inside ``frame`` must have been resolved by the caller
    (:func:`zapanalytics.ingest.door.admit` does so).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store connection.
    table : str
        Target table name.
    frame : polars.DataFrame
        Rows to write; its columns must be a subset of the table's.
    in_transaction : bool, default False
        When True the caller manages the transaction; otherwise the upsert runs in its own.
    on_conflict : {"update", "ignore"}, default "update"
        ``"ignore"`` keeps the stored row as it is when the key exists.
    keep_when_null : collection of str
        Columns whose stored value a NULL in ``frame`` must not overwrite (settings a user
        gave that the source does not report, such as an installation's price area).

    Returns
    -------
    int
        The number of rows offered.
    """
    if frame.height == 0:
        return 0
    columns = table_columns(con, table)
    unknown = set(frame.columns) - set(columns)
    if unknown:
        raise KeyError(f"columns {sorted(unknown)} are not in table {table!r}")
    key = primary_key(con, table)
    content = [c for c in frame.columns if c not in key]
    compared = [c for c in content if c not in _BOOKKEEPING_COLUMNS]
    view = f"_upsert_{uuid.uuid4().hex}"
    col_list = ", ".join(_quote(c) for c in frame.columns)
    sql = f"INSERT INTO {_quote(table)} ({col_list}) SELECT {col_list} FROM {view}"  # noqa: S608
    if on_conflict not in ("update", "ignore"):
        raise ValueError(f"on_conflict must be 'update' or 'ignore', not {on_conflict!r}")
    if content and on_conflict == "update":
        def incoming(c: str) -> str:
            if c in keep_when_null:
                return f"coalesce(EXCLUDED.{_quote(c)}, {_quote(table)}.{_quote(c)})"
            return f"EXCLUDED.{_quote(c)}"

        assignments = ", ".join(f"{_quote(c)} = {incoming(c)}" for c in content)
        changed = (
            " OR ".join(f"{_quote(table)}.{_quote(c)} IS DISTINCT FROM {incoming(c)}" for c in compared)
            or "FALSE"
        )
        sql += (
            f" ON CONFLICT ({', '.join(_quote(c) for c in key)})"
            f" DO UPDATE SET {assignments} WHERE {changed}"
        )
    else:
        sql += " ON CONFLICT DO NOTHING"
    con.register(view, frame.to_arrow())
    try:
        if not in_transaction:
            con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql).fetchall()  # duckdb 2 keeps results pending until read
            if not in_transaction:
                con.execute("COMMIT")
        except Exception:
            if not in_transaction:
                con.execute("ROLLBACK")
            raise
    finally:
        con.unregister(view)
    return frame.height
