"""Plain MeterValues spool lines read in bulk, in DuckDB SQL: the loader's fast path.

MeterValues are nearly all of a spool. :func:`read_meter_values_sql` takes a batch of spool
bytes as one buffer (:func:`read_block`; an Arrow view of it, no Python object per line)
and reads the plain lines in two columnar steps:

1. polars cuts each line into its fields: a line exactly as the server writes it (a
   pattern that only valid JSON with these five text fields can match) splits at fixed
   separators, without a JSON parser;
2. DuckDB reads each frame's payload with ``json_transform`` and explicit types, unnests
   and pivots the sampled values to the ``meter_values`` columns in SQL, and runs the store
   contract's checks generated from the pandera schema (:mod:`zapanalytics.contract_sql`).

It yields exactly the rows :func:`zapanalytics.ingest.ocpp.records.meter_value_rows` would;
the tests load spools both ways and compare the stores and the quarantine.

Only *plain* lines take this path: a compact ``[2,"id","MeterValues",{...}]`` frame the
server answered with a CALLRESULT, timestamps in the usual ``2025-01-31T12:00:00Z`` shapes,
numbers in plain decimal notation and units the reader knows. Every other line, and every
record with a row the contract would refuse, is handed back to the per-record reader, which
decides and explains; so the door writes the same quarantine reasons as before, and the two
paths cannot disagree on what they both accept. Where DuckDB's reading could differ from
Python's, the line is handed back too: a key given twice in an object (Python keeps the
last value, DuckDB the first), a trailing comma (DuckDB takes it), any escape but ``\"``,
a time DuckDB would roll over or Python cannot hold (hour 24, second 60, year 0 or 9999),
deep nesting (Python's recursion limit), and a three-phase sum whose float rounding could
differ from :func:`math.fsum`'s.
"""

# ruff: noqa: S608 - the SQL is built from this module's constants and generated contract checks

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from zapanalytics.contract_sql import any_failure_sql, contract_checks
from zapanalytics.ingest.ocpp.blocks import LineBlock, non_ascii_lines
from zapanalytics.ingest.ocpp.records import METER_COLUMNS

_SOURCE = "ocpp"
_CALLS = "_ocpp_bulk_calls"
_PLAIN = "_ocpp_bulk_plain"
_MV = "_ocpp_bulk_meter_values"
_ROWS = "_ocpp_bulk_rows"

# --------------------------------------------------------------------------- Arrow

#: Lines per Arrow batch handed to DuckDB.
_SCAN_ROWS = 8192


def _arrow_lines(block: LineBlock, masked: Sequence[int]) -> pa.Table:
    """The block as an Arrow table ``(record, line)`` over the same buffer.

    Each line keeps its newline (JSON whitespace). ``masked`` lines are blanked (spaces, so
    the offsets hold), which no plain-line test passes: they are not valid text for DuckDB.
    """
    data = block.data  # may run on past the last line: Arrow reads only up to the last offset
    if masked:
        buffer = bytearray(data)
        for index in masked:
            start, end = int(block.starts[index]), int(block.starts[index + 1]) - 1
            buffer[start:end] = b" " * (end - start)
        data = bytes(buffer)
    count = len(block)
    lines = pa.LargeStringArray.from_buffers(
        count, pa.py_buffer(block.starts.astype(np.int64, copy=False)), pa.py_buffer(data)
    )
    table = pa.table({"record": pa.array(np.arange(count, dtype=np.int64)), "line": lines})
    # Batches let DuckDB scan the lines on several threads.
    return pa.Table.from_batches(table.to_batches(max_chunksize=_SCAN_ROWS))


# --------------------------------------------------------------------------- SQL

#: The shapes the plain path reads; anything else goes to the per-record reader. Tighter
#: than ISO 8601 where DuckDB and Python disagree (hour 24, offsets beyond 23:59).
_TIMESTAMP = (
    r"^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
_NUMBER = r"^-?\d{1,15}(\.\d{1,15})?([eE][+-]?\d{1,2})?$"
#: A text field holding a number, null, array or object: DuckDB would coerce it, the
#: per-record reader refuses it (or reads null as absent, which the key count cannot tell).
#: A space after the colon is enough to be handed back.
_NON_TEXT_FIELD = r'"(?:value|context|format|measurand|phase|location|unit|timestamp)":[^"]'
#: DuckDB's JSON reader takes a comma before a closing bracket, Python's refuses it.
_TRAILING_COMMA = r", *[\]}]"
#: Python's reader gives up on deep nesting (its recursion limit), DuckDB's does not: a
#: payload with this many brackets may nest that deep [brackets].
_MAX_OPENINGS = 400
_TEXT_KEYS = ("value", "context", "format", "measurand", "phase", "location", "unit")
_PAYLOAD_TYPE = (
    '{"meterValue": [{"timestamp": "VARCHAR", "sampledValue": [{'
    + ", ".join(f'"{k}": "VARCHAR"' for k in _TEXT_KEYS)
    + "}]}]}"
)


#: A spool line as the server writes it, with nothing escaped but the quotes of the frame
#: and its answer: ``{"ts":…,"charge_point_id":…,"direction":"in","message":…,"reply":…}``.
#: Such a line is valid JSON whose object has exactly these five text fields (in the
#: server's order, each once), and each field's text lies between fixed separators (a
#: separator's bare quote cannot occur inside a JSON string). The pattern also holds the
#: shapes the plain path reads: a received time with an offset, a compact MeterValues CALL
#: ``[2,"id","MeterValues",{…}]`` and a CALLRESULT ``[3,"id",{…}]`` answer.
_TEXT = r'[^"\\\x00-\x1f]'
_QUOTED = r'(?:[^"\\\x00-\x1f]|\\")'
_SEPARATORS = ('{"ts":"', '","charge_point_id":"', '","direction":"in","message":"', '","reply":"', '"}\n')
#: Where the payload object starts in the escaped message.
_PAYLOAD_START = '\\"MeterValues\\",{'


def _literal(text: str) -> str:
    """``text`` as a regular expression matching itself (Rust's regex syntax)."""
    return "".join("\\n" if c == "\n" else "\\" + c if c in "{}[]()\\" else c for c in text)


#: Years 1000-9998: Python's datetime refuses year 0, and a time in 9999 may overflow UTC.
_YEAR = r"(?:[1-8]\d{3}|9[0-8]\d{2}|99[0-8]\d|999[0-8])"
_PLAIN_LINE = (
    "^" + _literal(_SEPARATORS[0]) + _YEAR + _TIMESTAMP.removeprefix(r"^[1-9]\d{3}").removesuffix("$")
    + _literal(_SEPARATORS[1]) + _TEXT + "+"
    + _literal(_SEPARATORS[2]) + r'\[2,\\"[^"\\{]{1,36}\\",' + _literal(_PAYLOAD_START) + _QUOTED + r"*\}\]"
    + _literal(_SEPARATORS[3]) + r'\[3,\\"[^"\\]{1,36}\\",\{' + _QUOTED + r"*\}\]"
    + _literal(_SEPARATORS[4]) + "$"
)


def _between(line: pl.Expr, start: pl.Expr, end: pl.Expr) -> pl.Expr:
    # Clipped: on a line that is not plain the separators may come in any order.
    return line.str.slice(start, (end - start).clip(lower_bound=0))


def _unescaped(text: pl.Expr) -> pl.Expr:
    """The JSON string's text: the plain-line pattern lets no escape but ``\"`` through."""
    return text.str.replace_all('\\"', '"', literal=True)


def _plain_calls(lines: pl.DataFrame) -> pl.DataFrame:
    """The lines that may be plain MeterValues, split into their fields (polars string work).

    Returns ``record``, ``ts``, ``cp``, ``payload`` (the frame's object), ``reply`` and
    ``key_tokens`` (keys in the payload other than ``connectorId`` and ``transactionId``).
    The JSON of the payload and answer is read in SQL.
    """
    line = pl.col("line")
    found = [line.str.find(sep, literal=True) for sep in _SEPARATORS[1:4]]
    payload_start = line.str.find(_PAYLOAD_START, literal=True) + len(_PAYLOAD_START) - 1
    # Fields are cut before filtering (one select runs its expressions in parallel, and the
    # long lines are not copied); a line that is not plain yields nonsense, dropped here.
    fields = lines.lazy().select(
        "record",
        plain=line.str.contains(_PLAIN_LINE),
        ts=_between(line, pl.lit(len(_SEPARATORS[0])), found[0]),
        cp=_between(line, found[0] + len(_SEPARATORS[1]), found[1]),
        payload=_unescaped(_between(line, payload_start, found[2] - 1)),
        reply=_unescaped(_between(line, found[2] + len(_SEPARATORS[3]), line.str.len_bytes() - len(_SEPARATORS[4]))),
    )
    payload = pl.col("payload")
    # No control character passes the line pattern, so a space is the only whitespace left.
    return fields.filter(
        pl.col("plain") & ~payload.str.contains(_NON_TEXT_FIELD) & ~payload.str.contains(_TRAILING_COMMA)
        & ~payload.str.contains('" ', literal=True) & ~pl.col("reply").str.contains(_TRAILING_COMMA)
        & (payload.str.count_matches("[", literal=True) + payload.str.count_matches("{", literal=True)
           < _MAX_OPENINGS)
    ).with_columns(
        key_tokens=(payload.str.count_matches('":', literal=True)
                    - payload.str.contains('"connectorId":', literal=True).cast(pl.Int64)
                    - payload.str.contains('"transactionId":', literal=True).cast(pl.Int64)),
    ).drop("plain").collect()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _unit_factor(table: dict) -> str:
    whens = " ".join(
        f"WHEN unit = {_quote(name)} THEN {factor!r}::DOUBLE" for name, factor in table.items() if name is not None
    )
    return f"CASE WHEN unit IS NULL THEN {table[None]!r}::DOUBLE {whens} END"


#: measurand → (column, unit factors), as :mod:`~zapanalytics.ingest.ocpp.records` reads them.
_TOTALS = {
    "Energy.Active.Import.Register": ("energy_register_kwh", {None: 0.001, "Wh": 0.001, "kWh": 1.0}),
    "Power.Active.Import": ("power_w", {None: 1.0, "W": 1.0, "kW": 1000.0}),
    "Power.Offered": ("power_offered_w", {None: 1.0, "W": 1.0, "kW": 1000.0}),
    "Current.Offered": ("current_offered_a", {None: 1.0, "A": 1.0}),
}
_PER_PHASE = {
    "Current.Import": ("current_l{}_a", {None: 1.0, "A": 1.0}),
    "Voltage": ("voltage_l{}_v", {None: 1.0, "V": 1.0}),
}
_PHASE_INDEX = "CASE WHEN phase IN ('L1', 'L1-N') THEN 1 WHEN phase IN ('L2', 'L2-N') THEN 2 WHEN phase IN ('L3', 'L3-N') THEN 3 END"
#: Outlet (the default) before Inlet; other locations are not the charger's meter.
_ELECTRICAL = "CASE WHEN location IS NULL OR location = 'Outlet' THEN 0 WHEN location = 'Inlet' THEN 1 END"


def _sample_sql() -> str:
    """Per sample: target column, unit factor, priority and whether it is a phase total."""
    column, factor = [], []
    for measurand, (target, units) in _TOTALS.items():
        chosen = f"measurand = {_quote(measurand)} AND electrical IS NOT NULL"
        column.append(f"WHEN {chosen} THEN {_quote(target)}")
        factor.append(f"WHEN {chosen} THEN {_unit_factor(units)}")
    for measurand, (pattern, units) in _PER_PHASE.items():
        chosen = f"measurand = {_quote(measurand)} AND electrical IS NOT NULL AND phase_index IS NOT NULL"
        column.append(f"WHEN {chosen} THEN replace({_quote(pattern)}, '{{}}', phase_index::VARCHAR)")
        factor.append(f"WHEN {chosen} THEN {_unit_factor(units)}")
    column.append("WHEN measurand = 'Temperature' THEN 'temperature_c'")
    factor.append(
        "WHEN measurand = 'Temperature' THEN CASE WHEN unit IS NULL OR unit IN ('Celsius', 'Fahrenheit', 'K')"
        " THEN 1.0::DOUBLE END"
    )
    totals = ", ".join(_quote(m) for m in _TOTALS)
    return f"""
        CASE {' '.join(column)} END AS col,
        CASE {' '.join(factor)} END AS factor,
        CASE WHEN measurand = 'Temperature' THEN CASE WHEN location IS NULL OR location = 'Body' THEN 0 ELSE 1 END
             ELSE electrical END AS priority,
        measurand IN ({totals}) AS total"""


def _statements(now: dt.datetime) -> tuple[str, str, str, str, str]:
    """The SQL of a batch: plain records, one row per meterValue, the rows with each record's
    verdict, the records handed back, and the rows read."""
    plain = f"""
        CREATE OR REPLACE TEMP TABLE {_PLAIN} AS
        -- try(): a payload that is not JSON reads as NULL, as one without meterValue does;
        -- either is handed back.
        SELECT record, cp, struct_extract(try(json_transform(payload, {_quote(_PAYLOAD_TYPE)})), 'meterValue') AS mvs,
               key_tokens
        FROM {_CALLS}
        WHERE json_valid(reply) AND try_cast(ts AS TIMESTAMPTZ) IS NOT NULL
    """
    present = " + ".join(f"(v.x.{k} IS NOT NULL)::INTEGER" for k in _TEXT_KEYS)
    order = "priority::BIGINT * 4294967296 + s_no"  # most trusted location, then sample order
    aggregates = []
    for target, _ in _TOTALS.values():
        aggregates.append(f"arg_min(reading, {order}) FILTER (WHERE col = '{target}' AND phase IS NULL) AS {target}__pick")
        aggregates += [
            f"arg_min(reading, s_no) FILTER (WHERE col = '{target}' AND phase_index = {p}) AS {target}__p{p}"
            for p in (1, 2, 3)
        ]
    per_phase = [pattern.format(p) for pattern, _ in _PER_PHASE.values() for p in (1, 2, 3)]
    aggregates += [f"arg_min(reading, {order}) FILTER (WHERE col = '{c}') AS {c}" for c in per_phase]
    aggregates.append(f"arg_min(reading, {order}) FILTER (WHERE col = 'temperature_c') AS temperature_c")
    number = "TRY_CAST(value AS DOUBLE)"
    # One row per meterValue: its samples read and pivoted to the meter columns.
    per_mv = f"""
        CREATE OR REPLACE TEMP TABLE {_MV} AS
        WITH mv AS (
            SELECT record, m.i AS mv_no, m.x.sampledValue AS svs
            FROM (SELECT record, unnest(list_transform(mvs, lambda x, i: {{'x': x, 'i': i}})) AS m
                  FROM {_PLAIN} WHERE mvs IS NOT NULL)
        ), typed AS (
            SELECT record, mv_no, v.i AS s_no, v.x IS NULL AS missing,
                   {present} AS fields,
                   v.x.value AS value, coalesce(v.x.measurand, 'Energy.Active.Import.Register') AS measurand,
                   v.x.phase AS phase, v.x.location AS location, v.x.unit AS unit,
                   v.x.format IS NOT DISTINCT FROM 'SignedData' AS signed
            FROM (SELECT record, mv_no, unnest(list_transform(svs, lambda x, i: {{'x': x, 'i': i}})) AS v
                  FROM mv)
        ), located AS (
            SELECT *, {_PHASE_INDEX} AS phase_index, {_ELECTRICAL} AS electrical FROM typed
        ), annotated AS (
            SELECT *, {_sample_sql()} FROM located
        ), readings AS (
            SELECT record, mv_no, s_no, missing, fields, phase, phase_index, priority, factor, value,
                   CASE WHEN NOT signed THEN col END AS col,
                   CASE WHEN signed OR col IS NULL THEN NULL
                        WHEN col <> 'temperature_c' THEN {number} * factor
                        WHEN unit = 'Fahrenheit' THEN ({number} - 32.0::DOUBLE) * 5.0::DOUBLE / 9.0::DOUBLE
                        WHEN unit = 'K' THEN {number} - 273.15::DOUBLE
                        ELSE {number} END AS reading,
                   missing OR (NOT signed AND col IS NOT NULL AND (factor IS NULL OR value IS NULL
                               OR NOT regexp_matches(value, {_quote(_NUMBER)}))) AS bad
            FROM annotated
        ), pivoted AS (
            SELECT record, mv_no, bool_or(bad) AS bad_sample, sum(fields) AS fields,
                   {', '.join(aggregates)}
            FROM readings GROUP BY record, mv_no
        )
        SELECT mv.record, mv.mv_no, mv.ts_text, mv.missing OR mv.no_samples AS no_samples,
               (mv.ts_text IS NOT NULL)::INTEGER + (NOT mv.no_samples)::INTEGER + coalesce(p.fields, 0) AS fields,
               coalesce(p.bad_sample, FALSE) AS bad_sample, p.* EXCLUDE (record, mv_no, bad_sample, fields)
        FROM (
            -- The meterValues again, without their samples: cheaper than keeping the first pass.
            SELECT record, m.i AS mv_no, m.x.timestamp AS ts_text, m.x IS NULL AS missing,
                   m.x.sampledValue IS NULL AS no_samples
            FROM (SELECT record, unnest(list_transform(mvs, lambda x, i: {{'x': x, 'i': i}})) AS m
                  FROM {_PLAIN} WHERE mvs IS NOT NULL)
        ) mv LEFT JOIN pivoted p USING (record, mv_no)
    """
    per_mv_columns = []
    sum_checks = []
    for target, _ in _TOTALS.values():
        p1, p2, p3 = (f"{target}__p{p}" for p in (1, 2, 3))
        if target == "current_offered_a":
            combined = f"greatest({p1}, {p2}, {p3})"
        else:
            combined = (
                f"CASE WHEN {p1} IS NOT NULL OR {p2} IS NOT NULL OR {p3} IS NOT NULL THEN "
                f"(coalesce({p1}, 0.0::DOUBLE) + coalesce({p2}, 0.0::DOUBLE)) + coalesce({p3}, 0.0::DOUBLE) END"
            )
            # math.fsum rounds the exact sum once; (a + b) + c agrees when a + b is exact and
            # the sum is not a zero (fsum gives +0.0 where float addition may give -0.0).
            two_sum_error = f"(({p1} - ({p1} + {p2} - ({p1} + {p2} - {p1}))) + ({p2} - ({p1} + {p2} - {p1})))"
            sum_checks.append(
                f"({target}__pick IS NULL AND {p1} IS NOT NULL AND {p2} IS NOT NULL AND {p3} IS NOT NULL"
                f" AND ({two_sum_error} <> 0 OR {combined} = 0))"
            )
        per_mv_columns.append(f"coalesce({target}__pick, {combined}) AS {target}")
    per_mv_columns += [*per_phase, "temperature_c"]
    inexact = " OR ".join(sum_checks) or "FALSE"
    first_values = ", ".join(f"arg_min({c}, mv_no) FILTER (WHERE {c} IS NOT NULL) AS {c}" for c in METER_COLUMNS)
    checks = contract_checks("meter_values", alias="w", now=now)
    # Verdicts per record, and the rows of the records read here (samples of one record that
    # share a timestamp are combined, the first value of a column winning).
    rows = f"""
        CREATE OR REPLACE TEMP TABLE {_ROWS} AS
        WITH mv AS (
            SELECT record, mv_no, ts_text, no_samples, fields, bad_sample,
                   CASE WHEN regexp_matches(ts_text, {_quote(_TIMESTAMP)}) THEN try_cast(ts_text AS TIMESTAMPTZ)
                   END AS ts_utc,
                   {inexact} AS inexact,
                   {', '.join(per_mv_columns)}
            FROM {_MV}
        ), verdicts AS (
            SELECT p.record, p.cp,
                   p.mvs IS NULL OR coalesce(m.unreadable, FALSE)
                   OR p.key_tokens <> 1 + coalesce(m.fields, 0) AS slow
            FROM {_PLAIN} p LEFT JOIN (
                SELECT record, bool_or(no_samples OR bad_sample OR ts_utc IS NULL OR inexact) AS unreadable,
                       sum(fields) AS fields
                FROM mv GROUP BY record
            ) m USING (record)
        ), combined AS (
            SELECT record, ts_utc, min(mv_no) AS first_mv, {first_values}
            FROM mv SEMI JOIN verdicts v ON v.record = mv.record AND NOT v.slow
            GROUP BY record, ts_utc
        )
        SELECT v.record, v.cp AS charger_id, c.ts_utc, '{_SOURCE}' AS source, c.first_mv,
               {', '.join(f'c.{col}' for col in METER_COLUMNS)}, v.slow
        FROM verdicts v LEFT JOIN combined c ON c.record = v.record AND ({' OR '.join(f'c.{col} IS NOT NULL' for col in METER_COLUMNS)})
    """
    handed_back = f"""
        SELECT DISTINCT record FROM {_ROWS} w WHERE slow OR (ts_utc IS NOT NULL AND ({any_failure_sql(checks)}))
    """
    result = f"""
        SELECT record, charger_id AS charge_point_id, epoch_us(ts_utc) AS ts_us, {', '.join(METER_COLUMNS)}
        FROM {_ROWS} WHERE NOT slow AND ts_utc IS NOT NULL ORDER BY record, first_mv
    """
    return plain, per_mv, rows, handed_back, result


def read_meter_values_sql(
    con: duckdb.DuckDBPyConnection, block: LineBlock, masked: Sequence[int] | None = None, *,
    now: dt.datetime | None = None,
) -> tuple[pl.DataFrame, list[int]]:
    """Read the plain MeterValues lines of a block into ``meter_values`` columns, in DuckDB.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Any connection (the store's: no table of it is read or written).
    block : LineBlock
        Complete spool lines.
    masked : sequence of int, optional
        Lines not to read here (maybe not valid text; the per-record reader's). By default
        the lines beyond ASCII (:func:`~zapanalytics.ingest.ocpp.blocks.non_ascii_lines`).
    now : datetime, optional
        The instant the contract's ``plausible_time`` measures the future from (aware).

    Returns
    -------
    (polars.DataFrame, list of int)
        Rows with ``_record`` (index into the block), ``charge_point_id``, ``ts_utc`` and the
        meter columns, ordered like the per-record reader's output; and the indices of every
        line this path did not take (other actions, anything unusual, and records with a row
        the store contract refuses).
    """
    count = len(block)
    if count == 0:
        return _empty(), []
    now = now or dt.datetime.now(dt.UTC)
    masked = non_ascii_lines(block) if masked is None else masked
    calls = _plain_calls(pl.from_arrow(_arrow_lines(block, masked)))
    plain, per_mv, rows, handed_back, result = _statements(now)
    con.register(_CALLS, calls.to_arrow())
    try:
        for statement in (plain, per_mv, rows):
            con.execute(statement)
        back = {record for (record,) in con.execute(handed_back).fetchall()}
        if back:
            # A record with any row the contract refuses, or anything unread, is handed back whole.
            con.execute(f"DELETE FROM {_ROWS} WHERE list_contains(?, record)", [sorted(back)])
        taken = {record for (record,) in con.execute(f"SELECT record FROM {_ROWS}").fetchall()}
        frame = con.sql(result).pl()
    finally:
        con.unregister(_CALLS)
        for table in (_PLAIN, _MV, _ROWS):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    frame = frame.select(
        pl.col("record").cast(pl.Int64).alias("_record"),
        "charge_point_id",
        pl.from_epoch(pl.col("ts_us"), time_unit="us").dt.replace_time_zone("UTC").alias("ts_utc"),
        *(pl.col(c).cast(pl.Float64) for c in METER_COLUMNS),
    )
    return frame, [i for i in range(count) if i not in taken]


def _empty() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"_record": pl.Int64, "charge_point_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"),
                **{c: pl.Float64 for c in METER_COLUMNS}}
    )
