"""Test doubles that ship with the package, so tests, benchmarks and the demo share them.

:mod:`zapanalytics.testing.zaptec_fake` serves a Zaptec API dump over real HTTP on
127.0.0.1 with the cloud's paging, rate-limit, token and error behaviour.
"""

from __future__ import annotations

import duckdb

#: Columns that record when or by which run a row was written, not what it says.
VOLATILE_COLUMNS = frozenset({"ingested_at", "run_id", "quarantined_at", "updated_at"})


def store_snapshot(
    con: duckdb.DuckDBPyConnection,
    tables: tuple[str, ...] | None = None,
    *,
    exclude_columns: frozenset[str] = VOLATILE_COLUMNS,
) -> dict[str, list[tuple]]:
    """Every row of ``tables`` (default: the contract tables but ``ingest_runs``), sorted,
    without bookkeeping columns, so two stores can be compared for equal content."""
    from zapanalytics.store import CONTRACT_TABLES, table_columns

    chosen = tables or tuple(t for t in CONTRACT_TABLES if t != "ingest_runs")
    snapshot = {}
    for table in chosen:
        columns = [c for c in table_columns(con, table) if c not in exclude_columns]
        listed = ", ".join(f'"{c}"' for c in columns)
        rows = con.execute(f'SELECT {listed} FROM "{table}" ORDER BY ALL').fetchall()  # noqa: S608
        snapshot[table] = rows
    return snapshot
