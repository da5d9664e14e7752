"""Charger readings in ``meter_values`` derived from stored Zaptec state observations.

Zaptec reports a charger's measurements as state observations (``charger_states``):
one row per (charger, time, state id) with the value as text. The analyses read
``meter_values``, so :func:`derive_meter_values` turns the observations into its rows:

* **Signed meter values** (state 554, ``SignedMeterValue``): a periodic OCMF fiscal
  record ("F" pagination) holding the lifetime import register ``RV`` [kWh] and the
  meter's reading time ``TM``. One row per record, stamped at ``TM`` (the meter's
  clock, not the cloud's arrival time), source ``zaptec_ocmf``. Records are read with
  :func:`zapanalytics.audit.ocmf.parse`, except those in Zaptec's exact canonical form,
  which are read column-wise to the same result (a year of a fleet's hourly records
  is close to a million); their signatures are checked by the audit, not here.
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
from collections.abc import Callable, Iterable, Sequence
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
    "carry_states_forward",
    "derive_meter_values",
    "read_signed_meter_values",
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
OCMF_BATCH = 100_000
#: Numeric observations per batch (whole chargers per batch).
STATE_BATCH = 1_000_000

# Zaptec's periodic fiscal record exactly as the chargers write it: fixed key order, one
# reading, plain strings, a base64 signature. Every text this matches is one that
# parse() reads without complaint and signed_reading() accepts, with the same TM and RV
# (a test holds the two to that); anything else goes through parse().
_TEXT = r'[^"\\\x00-\x1f|]*'
_TM = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3}"
    r"[+-](?:[01][0-9]|2[0-3]):[0-5][0-9] [UISR]"
)
_RV = r"(?:0|[1-9][0-9]{0,6})(?:\.[0-9]{1,6})?"
_CANONICAL_FISCAL = (
    r"^OCMF\|\{"
    + ",".join(f'"{key}":"{_TEXT}"' for key in ("FV", "GI", "GS", "GV"))
    + r',"PG":"F[0-9]+","MF":"'
    + _TEXT
    + r'","RD":\[\{"TM":"'
    + _TM
    + r'","RV":'
    + _RV
    + r',"RI":"1-0:1\.8\.0","RU":"kWh","ST":"G"\}\]\}\|'
    r'\{"SA":"' + _TEXT + r'","SE":"base64","SD":"'
    r'(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"\}$'
)
# In a canonical record no string holds a quote, so the first "RD" is the readings.
_CANONICAL_READING = (
    r'"RD":\[\{"TM":"([0-9-]{10}T[0-9:]{8}),([0-9]{3})([+-][0-9:]{5}) [UISR]","RV":([0-9.]+),'
)


def _filters(
    charger_ids: Iterable[str] | None, since_utc: dt.datetime | None
) -> tuple[str, list[Any]]:
    """A WHERE fragment (starting with AND) selecting chargers and times."""
    sql, params = "", []
    if charger_ids is not None:
        sql += " AND list_contains(?::VARCHAR[], charger_id)"
        params.append(list(charger_ids))
    if since_utc is not None:
        if since_utc.tzinfo is None:
            raise ValueError("since_utc must be tz-aware")
        sql += " AND ts_utc >= ?"
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


def read_signed_meter_values(values: pl.Series) -> pl.DataFrame:
    """The register readings of many periodic signed records at once.

    Records in Zaptec's canonical fiscal form are read column-wise; every other record
    goes through :func:`signed_reading` (and so :func:`zapanalytics.audit.ocmf.parse`).
    Both give the same result for a canonical record.

    Parameters
    ----------
    values : polars.Series of str
        OCMF records (state 554 values).

    Returns
    -------
    polars.DataFrame
        One row per value: ``ts_utc`` (TM in UTC), ``energy_register_kwh`` [kWh] and
        ``reason`` (null when read; else why the record gives no reading).
    """
    values = values.cast(pl.String)
    # Matching without captures is fast; the captures come from the short reading part.
    canonical = values.str.contains(_CANONICAL_FISCAL).fill_null(False)
    groups = values.str.extract_groups(_CANONICAL_READING)
    fast = pl.DataFrame({"g": groups, "canonical": canonical}).select(
        ts_utc=pl.when("canonical").then(
            pl.concat_str(
                pl.col("g").struct.field("1"),
                pl.lit("."),
                pl.col("g").struct.field("2"),
                pl.col("g").struct.field("3"),
            ).str.to_datetime(
                "%Y-%m-%dT%H:%M:%S%.3f%:z", strict=False, time_zone="UTC", time_unit="us"
            )
        ),
        energy_register_kwh=pl.when("canonical").then(
            pl.col("g").struct.field("4").cast(pl.Float64, strict=False)
        ),
        reason=pl.lit(None, pl.String),
    )
    slow = fast["ts_utc"].is_null().arg_true().to_list()
    if not slow:
        return fast
    texts = values.gather(slow).to_list()
    times, energies, reasons = [], [], []
    for text in texts:
        reading = signed_reading(text)
        if isinstance(reading, str):
            times.append(None)
            energies.append(None)
            reasons.append(reading)
        else:
            times.append(reading[0])
            energies.append(reading[1])
            reasons.append(None)
    read = pl.DataFrame(
        {
            "ts_utc": pl.Series(times, dtype=pl.Datetime("us", "UTC")),
            "energy_register_kwh": pl.Series(energies, dtype=pl.Float64),
            "reason": pl.Series(reasons, dtype=pl.String),
        }
    )
    return (
        fast.with_row_index("i")
        .update(read.with_columns(i=pl.Series(slow, dtype=pl.UInt32)), on="i", include_nulls=True)
        .drop("i")
    )


def _derive_signed(
    con: duckdb.DuckDBPyConnection, run: IngestRun, where: str, params: list[Any]
) -> RunCounts:
    counts = RunCounts()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _signed_states AS "  # noqa: S608 - constants, placeholders
        "SELECT row_number() OVER (ORDER BY charger_id, ts_utc) - 1 AS n, charger_id, ts_utc, "
        "state_name, value FROM charger_states "
        f"WHERE state_id = {SIGNED_METER_VALUE_STATE_ID}{where}",
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
    readings = read_signed_meter_values(batch["value"])
    rejected = [
        Rejection(index, "meter_values", f"state 554: {reason}")
        for index, reason in enumerate(readings["reason"].to_list())
        if reason is not None
    ]
    columns = _empty_meter_frame(batch.height)
    columns["charger_id"] = batch["charger_id"]
    columns["ts_utc"] = readings["ts_utc"]
    columns["source"] = pl.Series("source", [OCMF_SOURCE] * batch.height, pl.String)
    columns["energy_register_kwh"] = readings["energy_register_kwh"]
    frame = (
        pl.DataFrame(columns)
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(RECORD_COLUMN))
        .filter(readings["reason"].is_null())
    )
    charger_ids = batch["charger_id"].to_list()
    observed = batch["ts_utc"].to_list()
    names = batch["state_name"].to_list()
    values = batch["value"]

    def raw(index: int) -> str:
        return _observation_json(
            charger_ids[index],
            observed[index],
            [(SIGNED_METER_VALUE_STATE_ID, names[index], values[index])],
        )

    return run.admit(
        _LazyRaw(batch.height, raw), {"meter_values": frame}, rejected, record_table="meter_values"
    )


# -- numeric states, pivoted ----------------------------------------------------------------


def _observations_sql(where: str, seed_where: str) -> str:
    """Numeric observations with their value read (``number``) and judged (``bad``).

    ``seed`` rows (the last observation of each state before the selected span) give
    the states' values at its start but are not emitted.
    """
    ids = ", ".join(str(i) for i in NUMERIC_STATES)
    bounds = " ".join(
        f"WHEN {state_id} THEN number < {low!r} OR number > {high!r}"
        for state_id, (_, low, high) in NUMERIC_STATES.items()
    )
    # Built from this module's constants and placeholders only.
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
        )
        SELECT charger_id, ts_utc, state_id, value, seed,
            value IS NOT NULL AND (
                number IS NULL OR NOT isfinite(number) OR CASE state_id {bounds} END
            ) AS bad,
            number
        FROM parsed
    """  # noqa: S608


def carry_states_forward(observations: pl.DataFrame) -> pl.DataFrame:
    """One row per (charger, observation time) with every state's latest value.

    Parameters
    ----------
    observations : polars.DataFrame
        ``charger_id``, ``ts_utc``, ``state_id``, ``value`` (text), ``seed`` (bool: only
        carries a value into the span), ``bad`` (bool: the value did not parse) and
        ``number`` (the value read).

    Returns
    -------
    polars.DataFrame
        ``charger_id``, ``ts_utc``, ``bad``, ``bad_values`` and one column per
        :data:`NUMERIC_STATES` entry: the value of the state's latest observation at or
        before the row's time, null when that observation was bad or there is none.
    """
    observations = observations.with_columns(
        pl.col("ts_utc").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
        number=pl.when(pl.col("bad")).then(None).otherwise(pl.col("number")),
    ).sort("ts_utc")
    emitted = observations.filter(~pl.col("seed"))
    problems = (
        emitted.filter("bad")
        .sort("state_id")
        .group_by("charger_id", "ts_utc")
        .agg(
            bad_values=pl.format(
                "state {} value {}", pl.col("state_id"), pl.col("value").str.slice(0, 40)
            ).str.join("; ")
        )
    )
    rows = (
        emitted.select("charger_id", "ts_utc")
        .unique()
        .join(problems, on=["charger_id", "ts_utc"], how="left")
        .with_columns(bad=pl.col("bad_values").is_not_null())
        .sort("ts_utc")
    )
    for state_id, (column, _, _) in NUMERIC_STATES.items():
        latest = observations.filter(pl.col("state_id") == state_id).select(
            "charger_id", "ts_utc", pl.col("number").alias(column)
        )
        # Both sides are sorted by time; one state has one observation per instant.
        rows = rows.join_asof(
            latest, on="ts_utc", by="charger_id", strategy="backward", check_sortedness=False
        )
    return rows.sort("charger_id", "ts_utc")


def _derive_numeric(
    con: duckdb.DuckDBPyConnection,
    run: IngestRun,
    charger_ids: Iterable[str] | None,
    since_utc: dt.datetime | None,
) -> RunCounts:
    where, params = _filters(charger_ids, since_utc)
    ids = ", ".join(str(i) for i in NUMERIC_STATES)
    sizes = con.execute(
        f"SELECT charger_id, count(*) FROM charger_states WHERE state_id IN ({ids}){where} "  # noqa: S608
        "GROUP BY 1 ORDER BY 1",
        params,
    ).fetchall()
    # Batches hold whole chargers, so a state carries forward within its batch.
    batches: list[list[str]] = [[]]
    observations = 0
    for charger_id, size in sizes:
        if batches[-1] and observations + size > STATE_BATCH:
            batches.append([])
            observations = 0
        batches[-1].append(charger_id)
        observations += size
    columns = [column for column, _, _ in NUMERIC_STATES.values()]
    counts = RunCounts()
    for members in batches:
        if not members:
            continue
        own_where, own_params = _filters(members, since_utc)
        if since_utc is None:
            seed_where, seed_params = " AND false", []
        else:
            seed_where, seed_params = _filters(members, None)
            seed_where += " AND ts_utc < ?"
            seed_params.append(since_utc)
        observed = con.sql(
            _observations_sql(own_where, seed_where), params=[*own_params, *seed_params]
        ).pl()
        batch = carry_states_forward(observed).filter(
            pl.col("bad") | pl.any_horizontal(pl.col(columns).is_not_null())
        )
        if batch.height:
            counts += _admit_numeric(con, run, batch)
    return counts


def _admit_numeric(
    con: duckdb.DuckDBPyConnection, run: IngestRun, batch: pl.DataFrame
) -> RunCounts:
    schema = polars_schema("meter_values")
    frame = batch.with_columns(
        pl.col("ts_utc").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
        source=pl.lit(STATE_SOURCE),
    )
    frame = frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ]
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
    charger_ids = frame["charger_id"]
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
        _LazyRaw(frame.height, raw), {"meter_values": frame}, rejected, record_table="meter_values"
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
