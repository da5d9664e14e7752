"""Opening the store and applying its migrations."""

from __future__ import annotations

import datetime as dt
import re
from importlib import resources
from pathlib import Path

import duckdb


class StoreLockedError(RuntimeError):
    """Another process holds the store open for writing."""


def _migration_scripts() -> list[tuple[int, str, str]]:
    """Return ``(version, name, sql)`` for every shipped migration, in order."""
    scripts = []
    for entry in resources.files("zapanalytics.store.migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        version = int(name.split("_", 1)[0])
        scripts.append((version, name.removesuffix(".sql"), entry.read_text("utf-8")))
    scripts.sort()
    versions = [v for v, _, _ in scripts]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return scripts


def _apply_migrations(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    for version, name, sql in _migration_scripts():
        if version in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [version, name, dt.datetime.now(dt.UTC)],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise


def _connect(path: str | Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    target = str(path)
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(target, read_only=read_only)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            pid = re.search(r"\(PID (\d+)\)", text)
            holder = f"another process (PID {pid.group(1)})" if pid else "another process"
            if not read_only and "read-only mode" in text:
                # DuckDB says the holder only reads (e.g. a notebook): a writer must wait for it.
                raise StoreLockedError(
                    f"the store {target} is open for reading in {holder}, e.g. a notebook; "
                    "DuckDB lets no process write while another has the file open. "
                    "Close that connection and retry."
                ) from exc
            raise StoreLockedError(
                f"the store {target} is open for writing in {holder}; "
                "DuckDB allows one writer. Close that process (or read a copy) and retry."
            ) from exc
        raise
    con.execute("SET TimeZone = 'UTC'")
    return con


def open_store(path: str | Path = ":memory:") -> duckdb.DuckDBPyConnection:
    """Open (or create) the store for writing and bring its schema up to date.

    Parameters
    ----------
    path : str or Path
        A DuckDB file, or ``":memory:"``.

    Returns
    -------
    duckdb.DuckDBPyConnection
        A connection whose session time zone is UTC.

    Raises
    ------
    StoreLockedError
        When another process holds the file open for writing.
    """
    con = _connect(path, read_only=False)
    _apply_migrations(con)
    return con


def read_only_store(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open an existing store for reading only (notebooks, reports)."""
    return _connect(path, read_only=True)
