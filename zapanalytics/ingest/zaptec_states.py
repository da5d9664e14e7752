"""Charger readings in ``meter_values`` derived from stored Zaptec state observations.

Zaptec reports a charger's measurements as state observations (``charger_states``):
one row per (charger, time, state id) with the value as text. The analyses read
``meter_values``, so :func:`derive_meter_values` turns the observations into its rows:

* **Signed meter values** (state 554, ``SignedMeterValue``): a periodic OCMF fiscal
  record ("F" pagination) holding the lifetime import register ``RV`` [kWh] and the
  meter's reading time ``TM``. One row per record, stamped at ``TM`` (the meter's
  clock, not the cloud's arrival time), source ``zaptec_ocmf``. Records are read with
  :func:`zapanalytics.audit.ocmf.parse`; their signatures are checked by the audit,
  not here.
* **Numeric states**, pivoted to one row per (charger, observation time), source
  ``zaptec_state``: 501-503 phase voltages [V], 507-509 phase currents [A], 513
  ``TotalChargePower`` [W], 708 ``ChargeCurrentSet`` (the current offered) [A] and 201
  ``TemperatureInternal5`` [°C]. A state holds until it is observed again, so every
  row carries each state's latest value at that time (Zaptec sends changes, not
  samples); a row at which nothing was observed does not exist.

A value that is not a number, or is outside what the store accepts, is quarantined
with the raw observations of its instant (the record is the instant), and the state
counts as unknown from then until its next good observation: it is neither dropped
nor papered over by the previous value. Upserts make the derivation idempotent; each
record (a signed observation, or an instant) counts once in the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import duckdb
import polars as pl

from zapanalytics.ingest.door import RECORD_COLUMN, IngestRun, Rejection, RunCounts
from zapanalytics.schemas import (
    MAX_CHARGER_CURRENT_A,
    MAX_REGISTER_KWH,
    MAX_VOLTAGE_V,
    polars_schema,
)

__all__ = [
    "NUMERIC_STATES",
    "OCMF_SOURCE",
    "SIGNED_METER_VALUE_STATE_ID",
    "STATE_SOURCE",
    "derive_meter_values",
    "signed_reading",
]

SIGNED_METER_VALUE_STATE_ID = 554
OCMF_SOURCE = "zaptec_ocmf"
STATE_SOURCE = "zaptec_state"

#: State id -> (meter_values column, lowest and highest value the store accepts).
NUMERIC_STATES: dict[int, tuple[str, float, float]] = {
    501: ("voltage_l1_v", 0.0, MAX_VOLTAGE_V),
    502: ("voltage_l2_v", 0.0, MAX_VOLTAGE_V),
    503: ("voltage_l3_v", 0.0, MAX_VOLTAGE_V),
    507: ("current_l1_a", 0.0, MAX_CHARGER_CURRENT_A),
    508: ("current_l2_a", 0.0, MAX_CHARGER_CURRENT_A),
    509: ("current_l3_a", 0.0, MAX_CHARGER_CURRENT_A),
    513: ("power_w", 0.0, 3 * MAX_CHARGER_CURRENT_A * MAX_VOLTAGE_V),
    708: ("current_offered_a", 0.0, MAX_CHARGER_CURRENT_A),
    201: ("temperature_c", -60.0, 150.0),
}

#: Signed records per batch (each holds ~600 bytes of text).
OCMF_BATCH = 50_000
#: Pivoted rows per batch.
STATE_BATCH = 250_000
#: From this many signed records on, they are parsed in worker processes.
PARALLEL_FROM = 40_000


def _filters(
    charger_ids: Iterable[str] | None, since_utc: dt.datetime | None, *, alias: str = ""
) -> tuple[str, list[Any]]:
    """A WHERE fragment (starting with AND) selecting chargers and times."""
    prefix = f"{alias}." if alias else ""
    sql, params = "", []
    if charger_ids is not None:
        sql += f" AND list_contains(?::VARCHAR[], {prefix}charger_id)"
        params.append(list(charger_ids))
    if since_utc is not None:
        if since_utc.tzinfo is None:
            raise ValueError("since_utc must be tz-aware")
        sql += f" AND {prefix}ts_utc >= ?"
        params.append(since_utc)
    return sql, params


class _LazyRaw(Sequence[str]):
    """Raw observations of each record, written out only for the records quarantined."""

    def __init__(self, size: int, build: Callable[[int], str]):
        self._size = size
        self._build = build

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        if not -self._size <= index < self._size:
            raise IndexError(index)
        return self._build(index % self._size)


def _observation_json(charger_id: str, ts_utc: dt.datetime, rows: list[tuple]) -> str:
    return json.dumps(
        {
            "charger_id": charger_id,
            "ts_utc": ts_utc.isoformat(),
            "observations": [
                {"state_id": state_id, "state_name": name, "value": value}
                for state_id, name, value in rows
            ],
        },
        ensure_ascii=False,
    )


def _empty_meter_frame(height: int) -> dict[str, pl.Series]:
    return {
        name: pl.Series(name, [None] * height, dtype=dtype)
        for name, dtype in polars_schema("meter_values").items()
    }


# -- signed meter values (state 554) ------------------------------------------------------


def signed_reading(value: str | None) -> tuple[dt.datetime, float] | str:
    """The register reading of a periodic signed record, or why there is none.

    Parameters
    ----------
    value : str or None
        The observation's ``ValueAsString``: an OCMF record.

    Returns
    -------
    (datetime, float) or str
        ``(TM in UTC, RV [kWh])`` of the record's first register reading, or the reason
        it cannot be used: the record does not parse, holds no import-register reading
        in kWh or Wh, or the meter flags the reading (status other than ``G``, error flag
        ``E`` energy or ``t`` time unusable).
    """
    from zapanalytics.audit.ocmf import OcmfError, parse

    if value is None or not value.strip():
        return "the signed meter value is empty"
    try:
        record = parse(value)
    except OcmfError as exc:
        return f"the OCMF record does not parse: {exc.reason}"
    reading = next((r for r in record.readings if r.energy_kwh is not None), None)
    if reading is None:
        return "the OCMF record holds no register reading in kWh or Wh"
    if reading.obis is not None and ":1.8." not in reading.obis:
        return f"the OCMF reading is register {reading.obis}, not the active import (1.8.x)"
    if reading.status not in (None, "G"):
        return f"the meter flags the OCMF reading with status {reading.status!r} (not G)"
    unusable = [flag for flag in ("E", "t") if flag in reading.error_flags]
    if unusable:
        return f"the OCMF reading carries error flags {reading.error_flags!r}"
    energy = reading.energy_kwh
    if not 0 <= energy <= MAX_REGISTER_KWH:
        return f"the OCMF register {energy!r} kWh is outside 0..{MAX_REGISTER_KWH:g} kWh"
    return reading.time_utc, energy


def _signed_readings(values: list[str | None]) -> list[tuple[dt.datetime, float] | str]:
    if len(values) < PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        return [signed_reading(v) for v in values]
    # Parsing is pure Python; worker processes use the other cores. Spawned, not
    # forked: the parent holds a DuckDB connection and its threads.
    import multiprocessing

    workers = min(os.cpu_count() or 2, 8)
    chunk = max(len(values) // (workers * 4), 1000)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(signed_reading, values, chunksize=chunk))


def _derive_signed(
    con: duckdb.DuckDBPyConnection, run: IngestRun, where: str, params: list[Any]
) -> RunCounts:
    counts = RunCounts()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _signed_states AS "
        "SELECT row_number() OVER (ORDER BY charger_id, ts_utc) - 1 AS n, charger_id, ts_utc, "
        "state_name, value FROM charger_states "
        f"WHERE state_id = {SIGNED_METER_VALUE_STATE_ID}{where}",  # noqa: S608 - fixed text
        params,
    )
    try:
        total = con.execute("SELECT count(*) FROM _signed_states").fetchall()[0][0]
        for start in range(0, total, OCMF_BATCH):
            batch = con.sql(
                "SELECT charger_id, ts_utc, state_name, value FROM _signed_states "
                "WHERE n >= ? AND n < ? ORDER BY n",
                params=[start, start + OCMF_BATCH],
            ).pl()
            counts += _admit_signed(run, batch)
    finally:
        con.execute("DROP TABLE IF EXISTS _signed_states")
    return counts


def _admit_signed(run: IngestRun, batch: pl.DataFrame) -> RunCounts:
    charger_ids = batch["charger_id"].to_list()
    observed = batch["ts_utc"].to_list()
    names = batch["state_name"].to_list()
    values = batch["value"].to_list()
    readings = _signed_readings(values)
    keep, times, registers, rejected = [], [], [], []
    for index, reading in enumerate(readings):
        if isinstance(reading, str):
            rejected.append(Rejection(index, "meter_values", f"state 554: {reading}"))
            continue
        keep.append(index)
        times.append(reading[0])
        registers.append(reading[1])
    columns = _empty_meter_frame(len(keep))
    columns["charger_id"] = pl.Series("charger_id", [charger_ids[i] for i in keep], pl.String)
    columns["ts_utc"] = pl.Series("ts_utc", times, pl.Datetime("us", "UTC"))
    columns["source"] = pl.Series("source", [OCMF_SOURCE] * len(keep), pl.String)
    columns["energy_register_kwh"] = pl.Series("energy_register_kwh", registers, pl.Float64)
    frame = pl.DataFrame(columns).with_columns(pl.Series(RECORD_COLUMN, keep, pl.Int64))

    def raw(index: int) -> str:
        return _observation_json(
            charger_ids[index],
            observed[index],
            [(SIGNED_METER_VALUE_STATE_ID, names[index], values[index])],
        )

    return run.admit(
        _LazyRaw(len(values), raw), {"meter_values": frame}, rejected, record_table="meter_values"
    )


# -- numeric states, pivoted ----------------------------------------------------------------


def _pivot_sql(where: str, seed_where: str) -> str:
    """Observations -> one row per (charger, time) with each state's latest value.

    ``seed`` rows (the last observation of each state before the selected span) feed
    the carry-forward but are not emitted.
    """
    ids = ", ".join(str(i) for i in NUMERIC_STATES)
    bounds = " ".join(
        f"WHEN {state_id} THEN number < {low!r} OR number > {high!r}"
        for state_id, (_, low, high) in NUMERIC_STATES.items()
    )
    carried = ",\n".join(
        f"last_value(CASE WHEN bool_or(state_id = {state_id}) THEN "
        f"{{'v': max(number) FILTER (WHERE state_id = {state_id} AND NOT bad)}} END "
        f"IGNORE NULLS) OVER w AS s{state_id}"
        for state_id in NUMERIC_STATES
    )
    return f"""
        WITH selected AS (
            SELECT charger_id, ts_utc, state_id, value, false AS seed
            FROM charger_states WHERE state_id IN ({ids}){where}
            UNION ALL
            SELECT charger_id, max(ts_utc), state_id, arg_max(value, ts_utc), true
            FROM charger_states WHERE state_id IN ({ids}){seed_where}
            GROUP BY charger_id, state_id
        ),
        parsed AS (
            SELECT *, TRY_CAST(replace(trim(value), ',', '.') AS DOUBLE) AS number
            FROM selected
        ),
        judged AS (
            SELECT *,
                value IS NOT NULL AND (
                    number IS NULL OR NOT isfinite(number) OR CASE state_id {bounds} END
                ) AS bad
            FROM parsed
        )
        SELECT charger_id, ts_utc, bool_and(seed) AS seed, bool_or(bad) AS bad,
            string_agg(
                CASE WHEN bad THEN 'state ' || state_id || ' value ' || left(value, 40) END,
                '; ' ORDER BY state_id
            ) AS bad_values,
            {carried}
        FROM judged
        GROUP BY charger_id, ts_utc
        WINDOW w AS (PARTITION BY charger_id ORDER BY ts_utc ROWS UNBOUNDED PRECEDING)
    """


def _derive_numeric(
    con: duckdb.DuckDBPyConnection,
    run: IngestRun,
    charger_ids: Iterable[str] | None,
    since_utc: dt.datetime | None,
) -> RunCounts:
    where, params = _filters(charger_ids, since_utc)
    if since_utc is None:
        seed_where, seed_params = " AND false", []
    else:
        seed_where, seed_params = _filters(charger_ids, None)
        seed_where += " AND ts_utc < ?"
        seed_params.append(since_utc)
    columns = [column for column, _, _ in NUMERIC_STATES.values()]
    values = ", ".join(
        f"s{state_id}.v AS {column}" for state_id, (column, _, _) in NUMERIC_STATES.items()
    )
    any_value = " OR ".join(f"{column} IS NOT NULL" for column in columns)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _state_rows AS "
        "SELECT row_number() OVER (ORDER BY charger_id, ts_utc) - 1 AS n, * FROM ("
        f"SELECT charger_id, ts_utc, bad, bad_values, {values} "
        f"FROM ({_pivot_sql(where, seed_where)}) WHERE NOT seed"
        f") WHERE bad OR {any_value}",
        [*params, *seed_params],
    )
    counts = RunCounts()
    try:
        total = con.execute("SELECT count(*) FROM _state_rows").fetchall()[0][0]
        for start in range(0, total, STATE_BATCH):
            batch = con.sql(
                "SELECT * EXCLUDE (n) FROM _state_rows WHERE n >= ? AND n < ? ORDER BY n",
                params=[start, start + STATE_BATCH],
            ).pl()
            counts += _admit_numeric(con, run, batch)
    finally:
        con.execute("DROP TABLE IF EXISTS _state_rows")
    return counts


def _admit_numeric(
    con: duckdb.DuckDBPyConnection, run: IngestRun, batch: pl.DataFrame
) -> RunCounts:
    schema = polars_schema("meter_values")
    frame = batch.with_columns(
        pl.col("ts_utc").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
        source=pl.lit(STATE_SOURCE),
        **{
            name: pl.lit(None, dtype)
            for name, dtype in schema.items()
            if name not in batch.columns and name != "source"
        },
    )
    frame = frame.select(
        [pl.col(name).cast(dtype) for name, dtype in schema.items()]
        + [pl.int_range(pl.len(), dtype=pl.Int64).alias(RECORD_COLUMN)]
    )
    bad = batch.with_row_index("record").filter("bad")
    rejected = [
        Rejection(
            int(row["record"]),
            "meter_values",
            f"charger_states: {row['bad_values']} is not a number in the range the store "
            "accepts; the state is unknown until it is observed again",
        )
        for row in bad.iter_rows(named=True)
    ]
    charger_ids = batch["charger_id"]
    times = frame["ts_utc"]
    ids = list(NUMERIC_STATES)

    def raw(index: int) -> str:
        charger_id, ts_utc = charger_ids[index], times[index]
        rows = con.execute(
            "SELECT state_id, state_name, value FROM charger_states "
            "WHERE charger_id = ? AND ts_utc = ? AND list_contains(?::INTEGER[], state_id) "
            "ORDER BY state_id",
            [charger_id, ts_utc, ids],
        ).fetchall()
        return _observation_json(charger_id, ts_utc, rows)

    return run.admit(
        _LazyRaw(batch.height, raw), {"meter_values": frame}, rejected, record_table="meter_values"
    )


def derive_meter_values(
    con: duckdb.DuckDBPyConnection,
    run: IngestRun,
    *,
    charger_ids: Iterable[str] | None = None,
    since_utc: dt.datetime | None = None,
) -> RunCounts:
    """Turn stored Zaptec state observations into ``meter_values`` rows.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store holding ``charger_states``.
    run : IngestRun
        The open run the rows are admitted under (e.g. the dump's or the sync's).
    charger_ids : iterable of str, optional
        Only these chargers; default all.
    since_utc : datetime, optional
        Only observations at or after this time (tz-aware); earlier observations still
        give the states' values at its start.

    Returns
    -------
    RunCounts
        One record per signed observation and per (charger, time) of numeric states;
        ``rows_in = rows_stored + rows_quarantined``.
    """
    charger_ids = None if charger_ids is None else list(charger_ids)
    where, params = _filters(charger_ids, since_utc)
    counts = _derive_signed(con, run, where, params)
    counts += _derive_numeric(con, run, charger_ids, since_utc)
    return counts
