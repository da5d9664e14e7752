"""The store contract: tables, columns, migrations, upserts and the single-writer rule."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import polars as pl
import pytest

from zapanalytics.store import CONTRACT_TABLES, open_store, primary_key, table_columns, upsert

# The public contract as the foundation issue states it: these names must never change.
CONTRACT = {
    "installations": ["installation_id", "name", "timezone", "network_type", "phase_count",
                      "main_fuse_a", "max_current_a", "price_area", "source", "ingested_at"],
    "chargers": ["charger_id", "device_id", "installation_id", "circuit_id", "name", "model",
                 "firmware_version", "min_current_a", "max_current_a", "phase_rotation", "source",
                 "ingested_at"],
    "sessions": ["session_id", "charger_id", "installation_id", "user_id", "user_name",
                 "token_name", "start_utc", "end_utc", "energy_kwh", "meter_start_kwh",
                 "meter_stop_kwh", "commit_metadata", "is_void", "is_aborted", "is_offline",
                 "signed_session", "source", "ingested_at"],
    "energy_details": ["session_id", "ts_utc", "energy_kwh"],
    "meter_values": ["charger_id", "ts_utc", "source", "energy_register_kwh", "power_w",
                     "current_l1_a", "current_l2_a", "current_l3_a", "voltage_l1_v",
                     "voltage_l2_v", "voltage_l3_v", "current_offered_a", "temperature_c"],
    "charger_states": ["charger_id", "ts_utc", "state_id", "state_name", "value"],
    "reference_readings": ["meter_id", "ts_utc", "kind", "installation_id", "charger_id",
                           "energy_import_kwh", "power_w", "current_l1_a", "current_l2_a",
                           "current_l3_a", "voltage_l1_v", "voltage_l2_v", "voltage_l3_v"],
    "prices": ["price_area", "start_utc", "end_utc", "spot_nok_per_kwh", "spot_eur_per_kwh",
               "source"],
    "ingest_runs": ["run_id", "source", "started_at", "finished_at", "rows_in", "rows_stored",
                    "rows_quarantined", "status", "error"],
    "quarantine": ["run_id", "source", "table_name", "reason", "raw"],
}
KEYS = {
    "installations": ("installation_id",),
    "chargers": ("charger_id",),
    "sessions": ("session_id",),
    "energy_details": ("session_id", "ts_utc"),
    "meter_values": ("charger_id", "ts_utc", "source"),
    "charger_states": ("charger_id", "ts_utc", "state_id"),
    "reference_readings": ("meter_id", "ts_utc"),
    "prices": ("price_area", "start_utc"),
}


@pytest.mark.parametrize("table", sorted(CONTRACT))
def test_contract_columns_exist_in_order(table):
    con = open_store()
    columns = table_columns(con, table)
    assert list(columns[: len(CONTRACT[table])]) == CONTRACT[table]
    if table in KEYS:
        assert primary_key(con, table) == KEYS[table]


def test_contract_tables_list_matches():
    assert set(CONTRACT_TABLES) == set(CONTRACT)


def test_timestamps_are_timestamptz_and_session_zone_is_utc():
    con = open_store()
    types = dict(
        con.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
            " WHERE column_name LIKE '%_utc' OR column_name IN ('ingested_at', 'started_at')"
        ).fetchall()
    )
    assert types and all(t == "TIMESTAMP WITH TIME ZONE" for t in types.values()), types
    assert con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] == "UTC"


def test_migrations_are_recorded_once(tmp_path):
    path = tmp_path / "s.duckdb"
    con = open_store(path)
    first = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    con.close()
    con = open_store(path)
    again = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert first == again and first[0] == (1, "0001_core")


def _price_frame(value: float) -> pl.DataFrame:
    start = dt.datetime(2025, 10, 26, 0, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "price_area": ["NO1"],
            "start_utc": [start],
            "end_utc": [start + dt.timedelta(hours=1)],
            "spot_nok_per_kwh": [value],
            "spot_eur_per_kwh": [value / 11.7],
            "source": ["test"],
        },
        schema_overrides={"start_utc": pl.Datetime("us", "UTC"), "end_utc": pl.Datetime("us", "UTC")},
    )


def test_upsert_updates_changed_rows_and_ignores_identical_ones():
    con = open_store()
    upsert(con, "prices", _price_frame(1.0))
    upsert(con, "prices", _price_frame(1.0))
    assert con.execute("SELECT count(*), max(spot_nok_per_kwh) FROM prices").fetchall() == [(1, 1.0)]
    upsert(con, "prices", _price_frame(2.0))
    assert con.execute("SELECT count(*), max(spot_nok_per_kwh) FROM prices").fetchall() == [(1, 2.0)]


def test_upsert_rejects_unknown_columns():
    con = open_store()
    with pytest.raises(KeyError, match="not in table"):
        upsert(con, "prices", _price_frame(1.0).with_columns(pl.lit(1).alias("bogus")))


def test_a_second_writer_gets_a_clear_error(tmp_path):
    path = tmp_path / "locked.duckdb"
    con = open_store(path)
    probe = (
        "import sys\n"
        "from zapanalytics.store import open_store, StoreLockedError\n"
        f"try:\n    open_store({str(path)!r})\n"
        "except StoreLockedError as exc:\n    print('LOCKED', exc); sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    con.close()
    assert result.returncode == 3, result.stderr
    assert "one writer" in result.stdout
