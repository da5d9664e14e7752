"""Read helpers over the store contract, returning polars frames."""

from __future__ import annotations

import duckdb
import polars as pl


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """Run ``sql`` with positional ``params`` and return the result as a polars frame."""
    return con.sql(sql, params=params or None).pl()


def table(con: duckdb.DuckDBPyConnection, name: str) -> pl.DataFrame:
    """The whole table ``name`` as a polars frame (contract tables only)."""
    from zapanalytics.store import CONTRACT_TABLES

    if name not in CONTRACT_TABLES:
        raise KeyError(f"{name!r} is not a store table")
    return frame(con, f'SELECT * FROM "{name}"')  # noqa: S608 - name checked above


def canonical_sessions(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per charging: the canonical sessions, copies left out (see migration 0011 and
    :mod:`zapanalytics.store.canonical`)."""
    return frame(con, "SELECT * FROM canonical_sessions ORDER BY start_utc, session_id")


def installation_timezone(con: duckdb.DuckDBPyConnection, installation_id: str | None = None) -> str:
    """The IANA zone of an installation (the first one when not given); Europe/Oslo if none."""
    rows = con.execute(
        "SELECT timezone FROM installations WHERE ? IS NULL OR installation_id = ?"
        " ORDER BY installation_id LIMIT 1",
        [installation_id, installation_id],
    ).fetchall()
    return rows[0][0] if rows else "Europe/Oslo"


def installation_price_area(con: duckdb.DuckDBPyConnection, installation_id: object) -> str | None:
    """The stored price area (NO1…NO5) of an installation; None when unknown.

    The cloud does not report it, so a later ingestion without ``--price-area`` keeps the
    one given earlier (or carried over from a portal installation) instead of clearing it.
    """
    if not isinstance(installation_id, str):
        return None
    rows = con.execute(
        "SELECT price_area FROM installations WHERE installation_id = ?", [installation_id]
    ).fetchall()
    return rows[0][0] if rows else None


def interval_energy(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Energy per session interval with the session's user and charger.

    Returns ``session_id, charger_id, user_id, user_name, ts_utc, energy_kwh`` where
    ``ts_utc`` is the end of the interval. Sessions without EnergyDetails appear with one
    row stamped at their end, carrying the whole session energy. Void sessions are left out.
    """
    return frame(
        con,
        """
        WITH billable AS (
            SELECT * FROM canonical_sessions WHERE NOT coalesce(is_void, FALSE)
        )
        SELECT s.session_id, s.charger_id, s.user_id, s.user_name, d.ts_utc, d.energy_kwh
        FROM billable s JOIN energy_details d USING (session_id)
        UNION ALL
        SELECT s.session_id, s.charger_id, s.user_id, s.user_name,
               coalesce(s.end_utc, s.start_utc) AS ts_utc, coalesce(s.energy_kwh, 0) AS energy_kwh
        FROM billable s
        WHERE NOT EXISTS (SELECT 1 FROM energy_details d WHERE d.session_id = s.session_id)
        ORDER BY ts_utc, session_id
        """,
    )


def data_quality(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per source: runs, records in, stored and quarantined, and the last run's status."""
    return frame(
        con,
        """
        SELECT source, count(*) AS runs, sum(rows_in) AS rows_in,
               sum(rows_stored) AS rows_stored, sum(rows_quarantined) AS rows_quarantined,
               arg_max(status, started_at) AS last_status, max(started_at) AS last_run_utc
        FROM ingest_runs GROUP BY source ORDER BY source
        """,
    )
