"""What every B1 peer loader does to the store, written once: upsert, quarantine, run row.

The peers (:mod:`benchmarks.peers_zaptec`, :mod:`benchmarks.peers_ocpp`) are what a competent
user would write without zapanalytics: pandas frames or DuckDB SQL. To be fair they do the
same store work as ours:

* **idempotent upsert**: rows whose key is new are inserted plainly (anti-join); rows whose
  key exists are updated only where a content column differs (``IS DISTINCT FROM``), so a
  re-run changes nothing;
* **quarantine**: every rejected source record goes to ``quarantine`` with its reason and
  raw payload (bounded prefix, size, sha256), once per distinct payload;
* **run bookkeeping**: an ``ingest_runs`` row with ``rows_in = rows_stored + rows_quarantined``.

Staged rows are a table or view the caller made in DuckDB (a registered pandas frame, or a
temporary table built in SQL).
"""

# ruff: noqa: S608 - table and column names come from this module's callers' constants

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence

import duckdb

#: Raw payloads keep this prefix in quarantine [characters], as ours does.
MAX_RAW_CHARS = 65_536
#: Columns never compared when deciding whether a stored row changed.
BOOKKEEPING = ("ingested_at",)


def upsert_staged(
    con: duckdb.DuckDBPyConnection,
    table: str,
    staged: str,
    columns: Sequence[str],
    key: Sequence[str],
) -> None:
    """Insert new keys of ``staged`` into ``table`` and update changed existing ones.

    ``staged`` holds at most one row per key (the caller resolved duplicates).
    """
    content = [c for c in columns if c not in key]
    compared = [c for c in content if c not in BOOKKEEPING]
    on_key = " AND ".join(f"t.{k} = s.{k}" for k in key)
    if compared:
        changed = " OR ".join(f"t.{c} IS DISTINCT FROM s.{c}" for c in compared)
        assignments = ", ".join(f"{c} = s.{c}" for c in content)
        con.execute(f"UPDATE {table} AS t SET {assignments} FROM {staged} AS s WHERE {on_key} AND ({changed})")
    names = ", ".join(columns)
    con.execute(
        f"INSERT INTO {table} ({names}) SELECT {', '.join(f's.{c}' for c in columns)} "
        f"FROM {staged} AS s WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {on_key})"
    )


def quarantine_rows(
    run_id: str, source: str, table_name: str, rejected: Sequence[tuple[str, str]], now: dt.datetime
) -> list[tuple]:
    """Quarantine rows for ``(reason, raw)`` pairs, in the store's column order."""
    rows = []
    for reason, raw in rejected:
        data = raw.encode("utf-8", "surrogatepass")
        rows.append((
            run_id, source, table_name, reason[:2000], raw[:MAX_RAW_CHARS],
            hashlib.sha256(data).hexdigest(), now, len(data), len(raw) > MAX_RAW_CHARS, None,
        ))  # fmt: skip
    return rows


QUARANTINE_COLUMNS = (
    "run_id", "source", "table_name", "reason", "raw", "raw_sha256", "quarantined_at",
    "raw_size_bytes", "raw_truncated", "source_file",
)  # fmt: skip


def insert_quarantine(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Add quarantine rows; a payload already quarantined for the same source stays as it is."""
    if rows:
        con.executemany(
            f"INSERT INTO quarantine ({', '.join(QUARANTINE_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(QUARANTINE_COLUMNS))}) ON CONFLICT DO NOTHING",
            rows,
        )


def quarantine_from_sql(con: duckdb.DuckDBPyConnection, run_id: str, source: str, table_name: str,
                        rejected: str, now: dt.datetime) -> int:  # fmt: skip
    """Quarantine the records of ``rejected`` (a relation with ``reason`` and ``raw`` text)."""
    con.execute(
        f"INSERT INTO quarantine ({', '.join(QUARANTINE_COLUMNS)}) "
        f"SELECT ?, ?, ?, left(reason, 2000), left(raw, {MAX_RAW_CHARS}), sha256(raw), ?, "
        f"strlen(raw), length(raw) > {MAX_RAW_CHARS}, NULL FROM {rejected} "
        "ON CONFLICT DO NOTHING",
        [run_id, source, table_name, now],
    )
    return con.execute(f"SELECT count(*) FROM {rejected}").fetchall()[0][0]


class PeerRun:
    """An ``ingest_runs`` row, opened on enter and closed with the counts on exit."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: str):
        self.con, self.source = con, source
        self.run_id = uuid.uuid4().hex
        self.started = dt.datetime.now(dt.UTC)
        self.rows_in = self.rows_stored = self.rows_quarantined = 0

    def __enter__(self) -> PeerRun:
        self.con.execute(
            "INSERT INTO ingest_runs (run_id, source, started_at, status) VALUES (?, ?, ?, 'running')",
            [self.run_id, self.source, self.started],
        )
        return self

    def count(self, rows_in: int, quarantined: int) -> None:
        self.rows_in += rows_in
        self.rows_quarantined += quarantined
        self.rows_stored += rows_in - quarantined

    def __exit__(self, exc_type, exc, tb) -> None:
        self.con.execute(
            "UPDATE ingest_runs SET finished_at = ?, rows_in = ?, rows_stored = ?, "
            "rows_quarantined = ?, status = ? WHERE run_id = ?",
            [dt.datetime.now(dt.UTC), self.rows_in, self.rows_stored, self.rows_quarantined,
             "ok" if exc is None else "failed", self.run_id],
        )  # fmt: skip
