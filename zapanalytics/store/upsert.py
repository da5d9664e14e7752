"""Idempotent batch upserts into the store.

Both writers insert keys the table does not hold with a plain ``INSERT … SELECT`` behind an
anti-join, and update a stored row only where a content column differs; an unchanged row
(its ``ingested_at`` included) is never rewritten, so re-running an ingestion changes
nothing. :func:`upsert` writes a polars frame; :func:`merge_staged` writes a relation that
a bulk loader staged inside DuckDB.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

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


def merge_staged(
    con: duckdb.DuckDBPyConnection,
    table: str,
    staged: str,
    columns: Sequence[str],
    *,
    on_conflict: str = "update",
    keep_when_null: Collection[str] = (),
) -> None:
    """Write the rows of the relation ``staged`` into ``table`` by primary key.

    Stored keys are updated only where a compared column differs (``IS DISTINCT FROM``);
    new keys are inserted behind an anti-join. A batch much smaller than the table goes
    through ``INSERT … ON CONFLICT`` instead, whose index probes cost the batch, not the table. Keys must be unique within ``staged`` for
    ``"update"``; with ``"ignore"`` the first row of a repeated key is kept.
    The caller manages the transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store connection.
    table : str
        Target table.
    staged : str
        A table or view name (a registered frame or a temporary table).
    columns : sequence of str
        The columns ``staged`` provides, all of them columns of ``table``, key included.
    on_conflict : {"update", "ignore"}
        ``"ignore"`` leaves a stored row as it is.
    keep_when_null : collection of str
        Columns whose stored value a NULL in ``staged`` must not overwrite.
    """
    if on_conflict not in ("update", "ignore"):
        raise ValueError(f"on_conflict must be 'update' or 'ignore', not {on_conflict!r}")
    known = set(table_columns(con, table))
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise KeyError(f"columns {sorted(unknown)} are not in table {table!r}")
    key = primary_key(con, table)
    target, source = _quote(table), _quote(staged)
    matches = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in key)
    content = [c for c in columns if c not in key]
    compared = [c for c in content if c not in _BOOKKEEPING_COLUMNS]

    def incoming(c: str) -> str:
        if c in keep_when_null:
            return f"coalesce(s.{_quote(c)}, t.{_quote(c)})"
        return f"s.{_quote(c)}"

    col_list = ", ".join(_quote(c) for c in columns)
    rows = source
    if on_conflict == "ignore":
        # As ON CONFLICT DO NOTHING did: a key repeated in ``staged`` keeps its first row.
        keys = ", ".join(_quote(k) for k in key)
        rows = (
            f"(SELECT {col_list} FROM (SELECT *, row_number() OVER () AS _arrival FROM {source})"  # noqa: S608
            f" QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _arrival) = 1)"
        )
    values = ", ".join("s." + _quote(c) for c in columns)
    if _few_against_many(con, table, source):
        # A small batch into a large table: the primary-key index finds the stored keys; a
        # set-based anti-join would read the whole table for every batch.
        if on_conflict == "update" and content:

            def excluded(c: str) -> str:
                if c in keep_when_null:
                    return f"coalesce(EXCLUDED.{_quote(c)}, {target}.{_quote(c)})"
                return f"EXCLUDED.{_quote(c)}"

            assignments = ", ".join(f"{_quote(c)} = {excluded(c)}" for c in content)
            changed = (
                " OR ".join(f"{target}.{_quote(c)} IS DISTINCT FROM {excluded(c)}" for c in compared)
                or "FALSE"
            )
            clause = (
                f" ON CONFLICT ({', '.join(_quote(k) for k in key)})"
                f" DO UPDATE SET {assignments} WHERE {changed}"
            )
        else:
            clause = " ON CONFLICT DO NOTHING"
        con.execute(
            f"INSERT INTO {target} ({col_list}) SELECT {values} FROM {rows} AS s{clause}"  # noqa: S608
        ).fetchall()
        return
    if on_conflict == "update" and compared:
        assignments = ", ".join(f"{_quote(c)} = {incoming(c)}" for c in content)
        changed = " OR ".join(f"t.{_quote(c)} IS DISTINCT FROM {incoming(c)}" for c in compared)
        con.execute(
            f"UPDATE {target} AS t SET {assignments} FROM {source} AS s"  # noqa: S608
            f" WHERE {matches} AND ({changed})"
        ).fetchall()
    con.execute(
        f"INSERT INTO {target} ({col_list}) SELECT {values}"  # noqa: S608
        f" FROM {rows} AS s WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {matches})"
    ).fetchall()


#: A batch this many times smaller than the table it goes into is written through the index.
_INDEX_WRITE_RATIO = 8


def _few_against_many(con: duckdb.DuckDBPyConnection, table: str, staged: str) -> bool:
    """Whether ``staged`` is small next to ``table`` (DuckDB's estimate of the stored rows)."""
    stored = con.execute(
        "SELECT estimated_size FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
        [table],
    ).fetchone()
    if not stored or not stored[0]:
        return False
    offered = con.execute(f"SELECT count(*) FROM {staged}").fetchone()[0]  # noqa: S608
    return stored[0] > _INDEX_WRITE_RATIO * max(offered, 1)


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
    # Checked before registering: it also ends any result the caller left pending, which
    # DuckDB 2 would otherwise refuse the registration for.
    unknown = set(frame.columns) - set(table_columns(con, table))
    if unknown:
        raise KeyError(f"columns {sorted(unknown)} are not in table {table!r}")
    view = f"_upsert_{uuid.uuid4().hex}"
    con.register(view, frame.to_arrow())
    try:
        if not in_transaction:
            con.execute("BEGIN TRANSACTION")
        try:
            merge_staged(
                con, table, view, frame.columns,
                on_conflict=on_conflict, keep_when_null=keep_when_null,
            )
            if not in_transaction:
                con.execute("COMMIT")
        except Exception:
            if not in_transaction:
                con.execute("ROLLBACK")
            raise
    finally:
        con.unregister(view)
    return frame.height
