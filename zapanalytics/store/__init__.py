"""The DuckDB store: one file, one writer, a versioned schema and idempotent upserts.

The tables and columns created by the migrations in ``migrations/`` are the contract
between ingestion and every analysis; see ``docs/glossary.md``.
"""

from zapanalytics.store.connection import StoreLockedError, open_store, read_only_store
from zapanalytics.store.upsert import primary_key, table_columns, upsert

CONTRACT_TABLES = (
    "installations",
    "chargers",
    "sessions",
    "energy_details",
    "meter_values",
    "charger_states",
    "reference_readings",
    "prices",
    "ingest_runs",
    "quarantine",
)

__all__ = [
    "CONTRACT_TABLES",
    "StoreLockedError",
    "open_store",
    "primary_key",
    "read_only_store",
    "table_columns",
    "upsert",
]
