"""B1 peers for the OCPP spool: a vectorised pandas loader and a DuckDB SQL loader.

Both load the MeterValues lines of a spool (``zapanalytics ocpp serve``'s segment files) as
:func:`zapanalytics.ingest.ocpp.load.load_spool` does, with the same work on them:

* read each line (a JSON object: ``charge_point_id``, ``direction``, ``message`` — the frame
  as received — and ``reply``); a line that is not JSON, not an incoming MeterValues CALL,
  or that the server answered with anything but its CALLRESULT is rejected with a reason;
* every reading: a timestamp with a UTC offset; the sampled values mapped by measurand,
  phase and unit (Wh/kWh, W/kW, A, V, Celsius) to the ``meter_values`` columns; numbers that
  read; every column within the store contract's range; a time between 2015 and two days
  from now; the energy register never below an earlier reading of the same charger (in the
  batch or stored before it);
* a key (charger, time) repeated with other values rejects the later record; a key already
  stored is merged (a stored value is never overwritten; a contradiction is rejected);
* a ``chargers`` row for each charge point the store has never seen;
* quarantine with the raw line, idempotent upsert, one ``ingest_runs`` row
  (:mod:`benchmarks.peer_store`). Batches of segment files, one transaction each.

They read MeterValues only (every line of the benchmark's spool is one); ours also reads
the other actions, and keeps a checkpoint per segment.
"""

# ruff: noqa: S608 - every query is built from this file's constants and temporary names

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from benchmarks.peer_store import (
    PeerRun,
    insert_quarantine,
    quarantine_from_sql,
    quarantine_rows,
    upsert_staged,
)
from zapanalytics.ingest.spool import list_segments
from zapanalytics.schemas import (
    EARLIEST_PLAUSIBLE_UTC,
    FUTURE_TOLERANCE,
    MAX_CHARGER_CURRENT_A,
    MAX_REGISTER_KWH,
    MAX_VOLTAGE_V,
)

SOURCE = "ocpp"
#: Lines per transaction in the pandas loader (bounds its memory).
PANDAS_BATCH_LINES = 250_000
#: Segment files per transaction in the SQL loader (a segment is at most 64 MB).
SQL_BATCH_FILES = 4
VALUE_COLUMNS = (
    "energy_register_kwh", "power_w", "current_l1_a", "current_l2_a", "current_l3_a",
    "voltage_l1_v", "voltage_l2_v", "voltage_l3_v", "current_offered_a", "temperature_c",
    "power_offered_w",
)  # fmt: skip
METER_COLUMNS = ("charger_id", "ts_utc", "source", *VALUE_COLUMNS)
MAX_POWER_W = 3 * MAX_CHARGER_CURRENT_A * MAX_VOLTAGE_V
#: Column -> inclusive range, as the store contract (MeterValuesSchema) has it.
RANGES = {
    "energy_register_kwh": (0, MAX_REGISTER_KWH), "power_w": (0, MAX_POWER_W),
    "power_offered_w": (0, MAX_POWER_W), "current_offered_a": (0, MAX_CHARGER_CURRENT_A),
    **{f"current_l{p}_a": (0, MAX_CHARGER_CURRENT_A) for p in (1, 2, 3)},
    **{f"voltage_l{p}_v": (0, MAX_VOLTAGE_V) for p in (1, 2, 3)}, "temperature_c": (-60, 150),
}  # fmt: skip
#: (measurand, phase) -> column; a missing measurand is the energy register (OCPP 1.6 default).
COLUMN_OF = {
    ("Energy.Active.Import.Register", None): "energy_register_kwh",
    ("Power.Active.Import", None): "power_w",
    ("Power.Offered", None): "power_offered_w",
    ("Current.Offered", None): "current_offered_a",
    ("Temperature", None): "temperature_c",
    **{("Current.Import", f"L{p}{s}"): f"current_l{p}_a" for p in (1, 2, 3) for s in ("", "-N")},
    **{("Voltage", f"L{p}{s}"): f"voltage_l{p}_v" for p in (1, 2, 3) for s in ("", "-N")},
}  # fmt: skip
#: (column, unit) -> factor to the column's unit; a missing unit is the OCPP default.
FACTOR = {
    **{("energy_register_kwh", u): f for u, f in ((None, 0.001), ("Wh", 0.001), ("kWh", 1.0))},
    **{(c, u): f for c in ("power_w", "power_offered_w") for u, f in ((None, 1.0), ("W", 1.0), ("kW", 1000.0))},
    **{(c, u): 1.0 for c in VALUE_COLUMNS if c.startswith("current") for u in (None, "A")},
    **{(c, u): 1.0 for c in VALUE_COLUMNS if c.startswith("voltage") for u in (None, "V")},
    ("temperature_c", None): 1.0, ("temperature_c", "Celsius"): 1.0,
}  # fmt: skip
_COLUMN_BY_TEXT = {f"{m}|{p or ''}": c for (m, p), c in COLUMN_OF.items()}
_FACTOR_BY_TEXT = {f"{c}|{u or ''}": f for (c, u), f in FACTOR.items()}
TIME_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
NUMBER = r"^-?\d{1,15}(\.\d{1,15})?([eE][+-]?\d{1,3})?$"


def _bounds() -> tuple[pd.Timestamp, pd.Timestamp]:
    return pd.Timestamp(EARLIEST_PLAUSIBLE_UTC), pd.Timestamp(dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE)


def _known_chargers(con) -> dict[str, str]:
    """Device id -> charger id of the chargers already stored (from the cloud, say)."""
    rows = con.execute("SELECT device_id, charger_id FROM chargers WHERE device_id IS NOT NULL").fetchall()
    return dict(rows)


# --------------------------------------------------------------------------- pandas


def _meter_frame_pandas(lines: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """Readings of a batch of lines, one row per (record, reading), and a reason per record."""
    reasons = pd.Series("", index=pd.RangeIndex(len(lines)), dtype=object)

    def reject(records, reason: str) -> None:
        records = pd.Index(records).unique()
        reasons.loc[records] = reasons.loc[records] + reason + "; "

    records, messages = [], []
    for index, line in enumerate(lines):  # JSON has to be decoded per value in pandas
        try:
            record = json.loads(line)
            message = json.loads(record["message"])
            reply = json.loads(record["reply"]) if isinstance(record.get("reply"), str) else None
        except (ValueError, KeyError, TypeError):
            reject([index], "not a readable spool record")
            continue
        if not (isinstance(message, list) and len(message) == 4 and message[0] == 2 and message[2] == "MeterValues"
                and record.get("direction") == "in" and isinstance(message[3], dict)):  # fmt: skip
            reject([index], "not an incoming MeterValues CALL")
            continue
        if not (isinstance(reply, list) and reply[:2] == [3, message[1]]):
            reject([index], f"answered with {str(reply)[:80]}")
            continue
        records.append((index, record.get("charge_point_id")))
        messages.append(message[3].get("meterValue"))
    frame = pd.DataFrame(records, columns=["record", "charge_point_id"])
    readings = pd.DataFrame({"record": frame["record"], "cp": frame["charge_point_id"], "reading": messages})
    readings = readings.explode("reading").dropna(subset=["reading"])
    is_reading = readings["reading"].map(type).eq(dict)
    reject(readings.loc[~is_reading, "record"], "meterValue: expected objects")
    readings = readings[is_reading]
    readings["ts_text"] = readings["reading"].str.get("timestamp")
    readings["samples"] = readings["reading"].str.get("sampledValue")
    readings = readings.drop(columns="reading").reset_index(drop=True)
    readings["reading_id"] = np.arange(len(readings))
    samples = readings[["reading_id", "samples"]].explode("samples").dropna(subset=["samples"])
    is_sample = samples["samples"].map(type).eq(dict)
    reject(readings.loc[samples.loc[~is_sample, "reading_id"], "record"], "sampledValue: expected objects")
    samples = samples[is_sample]
    fields = pd.DataFrame(samples["samples"].tolist(), index=samples["reading_id"].to_numpy())
    for field in ("value", "measurand", "phase", "unit"):
        if field not in fields.columns:
            fields[field] = None
    fields["measurand"] = fields["measurand"].fillna("Energy.Active.Import.Register")
    column = (fields["measurand"].astype("str") + "|" + fields["phase"].astype("str").fillna("")).map(_COLUMN_BY_TEXT)
    factor = (column.astype("str").fillna("") + "|" + fields["unit"].astype("str").fillna("")).map(_FACTOR_BY_TEXT)
    text = fields["value"].astype("str")
    value = pd.to_numeric(text.where(text.str.match(NUMBER, na=False)), errors="coerce")
    owner = readings["record"].to_numpy()
    reject(owner[fields.index[column.notna() & value.isna()]], "sampledValue.value: not a number")
    reject(owner[fields.index[column.notna() & factor.isna()]], "sampledValue.unit: unknown unit")
    known = column.notna()
    wide = (
        pd.DataFrame({"reading_id": fields.index[known], "column": column[known], "value": (value * factor)[known]})
        .pivot_table(index="reading_id", columns="column", values="value", aggfunc="last")
        .reindex(index=readings["reading_id"], columns=list(VALUE_COLUMNS))
    )
    wide.columns.name = None
    stamps = pd.to_datetime(
        readings["ts_text"].where(readings["ts_text"].astype("str").str.match(TIME_WITH_OFFSET, na=False)),
        format="ISO8601", utc=True, errors="coerce",
    ).dt.as_unit("us")  # fmt: skip
    meter = pd.concat([readings[["record", "cp"]].reset_index(drop=True), wide.reset_index(drop=True)], axis=1)
    meter["ts_utc"] = stamps.array
    reject(meter.loc[meter["ts_utc"].isna(), "record"], "meterValue.timestamp: not ISO-8601 with an offset")
    earliest, latest = _bounds()
    reject(meter.loc[(meter["ts_utc"] < earliest) | (meter["ts_utc"] > latest), "record"],
           "meter_values.ts_utc: failed plausible_time")  # fmt: skip
    for name, (low, high) in RANGES.items():
        reject(meter.loc[(meter[name] < low) | (meter[name] > high), "record"], f"meter_values.{name}: out of range")
    return meter, reasons


def _register_violations(meter: pd.DataFrame, stored: pd.DataFrame) -> pd.Series:
    """Records whose register is below an earlier reading of the same charger (batch or store)."""
    both = pd.concat([stored.assign(record=-1), meter[["record", "charger_id", "ts_utc", "energy_register_kwh"]]])
    both = both.dropna(subset=["energy_register_kwh"]).sort_values(["charger_id", "ts_utc", "record"])
    running = both.groupby("charger_id")["energy_register_kwh"].cummax()
    earlier = running.groupby(both["charger_id"]).shift()
    return both.loc[(both["energy_register_kwh"] < earlier) & (both["record"] >= 0), "record"]


def _stage_pandas(con, run: PeerRun, lines: list[str], directory: dict[str, str], now) -> None:
    meter, reasons = _meter_frame_pandas(lines)
    meter["charger_id"] = meter["cp"].map(directory).fillna(meter["cp"])
    earliest = meter["ts_utc"].min()
    chargers = list(meter["charger_id"].dropna().unique())
    con.register("peer_chargers", pd.DataFrame({"charger_id": chargers}))
    stored = con.execute(
        "SELECT m.charger_id, m.ts_utc, m.energy_register_kwh FROM meter_values m JOIN peer_chargers USING (charger_id) "
        "WHERE m.source = 'ocpp' AND m.ts_utc >= ? - INTERVAL 1 DAY AND m.energy_register_kwh IS NOT NULL",
        [earliest.to_pydatetime() if pd.notna(earliest) else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)],
    ).df()  # fmt: skip
    con.unregister("peer_chargers")
    clean = meter[~meter["record"].isin(reasons.index[reasons != ""])]
    violations = _register_violations(clean, stored)
    reasons.loc[violations.unique()] += "meter_values.energy_register_kwh decreased; "
    clean = clean[~clean["record"].isin(violations)]
    # Same key twice with other values: the later record is rejected.
    distinct = clean.drop_duplicates(subset=["charger_id", "ts_utc", *VALUE_COLUMNS])
    repeated = distinct.duplicated(["charger_id", "ts_utc"])
    reasons.loc[distinct.loc[repeated, "record"].unique()] += "meter_values: duplicate key with different content; "
    bad = reasons != ""
    good = clean[~clean["record"].isin(reasons.index[bad])].drop_duplicates(["charger_id", "ts_utc"])
    good = good.assign(source=SOURCE)[list(METER_COLUMNS)]
    new_chargers = sorted(set(good["charger_id"]) - set(directory.values()))
    rejected = [(reasons[i].rstrip("; "), lines[i]) for i in np.flatnonzero(bad.to_numpy())]
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("peer_meter", good)
        # A stored reading is merged: its empty columns filled, a contradiction rejected.
        contradicted = con.execute(
            "SELECT s.charger_id, s.ts_utc FROM peer_meter s JOIN meter_values t USING (charger_id, ts_utc, source) WHERE "
            + " OR ".join(f"(t.{c} IS NOT NULL AND s.{c} IS NOT NULL AND t.{c} <> s.{c})" for c in VALUE_COLUMNS)
        ).df()  # fmt: skip
        if len(contradicted):
            raise RuntimeError(f"{len(contradicted)} readings contradict stored ones (not in this benchmark)")
        con.execute(
            "UPDATE meter_values AS t SET " + ", ".join(f"{c} = coalesce(t.{c}, s.{c})" for c in VALUE_COLUMNS)
            + " FROM peer_meter AS s WHERE t.charger_id = s.charger_id AND t.ts_utc = s.ts_utc AND t.source = s.source AND ("
            + " OR ".join(f"(t.{c} IS NULL AND s.{c} IS NOT NULL)" for c in VALUE_COLUMNS) + ")"
        )  # fmt: skip
        upsert_staged(con, "meter_values", "peer_meter", METER_COLUMNS, ("charger_id", "ts_utc", "source"))
        if new_chargers:
            con.register("peer_new_chargers", pd.DataFrame(
                {"charger_id": new_chargers, "device_id": new_chargers, "source": SOURCE,
                 "ingested_at": pd.Timestamp(now).as_unit("us")}))  # fmt: skip
            upsert_staged(con, "chargers", "peer_new_chargers", ("charger_id", "device_id", "source", "ingested_at"),
                          ("charger_id",))  # fmt: skip
            con.unregister("peer_new_chargers")
            directory.update({c: c for c in new_chargers})
        insert_quarantine(con, quarantine_rows(run.run_id, SOURCE, "meter_values", rejected, now))
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("peer_meter")
    run.count(len(lines), len(rejected))


def pandas_ocpp(con: duckdb.DuckDBPyConnection, spool_dir: Path) -> tuple[int, int]:
    """Load the spool's MeterValues with pandas; returns (records in, quarantined)."""
    directory = _known_chargers(con)
    with PeerRun(con, SOURCE) as run:
        batch: list[str] = []
        for segment in list_segments(spool_dir):
            with segment.path.open(encoding="ascii", errors="surrogateescape") as handle:
                for line in handle:
                    if line.endswith("\n") and line.strip():
                        batch.append(line.rstrip("\n"))
                    if len(batch) >= PANDAS_BATCH_LINES:
                        _stage_pandas(con, run, batch, directory, dt.datetime.now(dt.UTC))
                        batch = []
        if batch:
            _stage_pandas(con, run, batch, directory, dt.datetime.now(dt.UTC))
        return run.rows_in, run.rows_quarantined


# --------------------------------------------------------------------------- DuckDB SQL


def _case(mapping: dict, key_sql: tuple[str, ...], default: str = "NULL") -> str:
    whens = []
    for key, target in mapping.items():
        parts = [f"{k} IS NULL" if v is None else f"{k} = '{v}'" for k, v in zip(key_sql, key, strict=True)]
        whens.append(f"WHEN {' AND '.join(parts)} THEN {target!r}" if isinstance(target, str)
                     else f"WHEN {' AND '.join(parts)} THEN {target}")  # fmt: skip
    return f"CASE {' '.join(whens)} ELSE {default} END"


def _ocpp_sql(files: list[str], earliest: str, latest: str) -> list[str]:
    file_list = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    sample_type = (
        '[{"timestamp": "VARCHAR", "sampledValue": [{"value": "VARCHAR", "measurand": "VARCHAR", '
        '"phase": "VARCHAR", "unit": "VARCHAR"}]}]'
    )
    pivot = ",\n".join(f"max(value) FILTER (WHERE col = '{c}') AS {c}" for c in VALUE_COLUMNS)
    range_checks = " ".join(
        f"WHEN {c} < {low} OR {c} > {high} THEN 'meter_values.{c}: out of range'" for c, (low, high) in RANGES.items()
    )
    return [
        f"""CREATE OR REPLACE TEMP TABLE o_lines AS
        SELECT row_number() OVER () AS record, line FROM read_csv({file_list}, columns={{'line': 'VARCHAR'}},
            delim='\x01', quote='', escape='', header=false, auto_detect=false, max_line_size=16777216)
        WHERE line IS NOT NULL AND line <> ''""",
        """CREATE OR REPLACE TEMP TABLE o_records AS
        SELECT record, f[1] AS cp, f[2] AS direction, f[3] AS message, f[4] AS reply,
               CASE WHEN json_valid(f[3]) THEN json_extract_string(f[3], ['$[0]', '$[1]', '$[2]']) END AS call,
               CASE WHEN json_valid(f[4]) THEN json_extract_string(f[4], ['$[0]', '$[1]']) END AS answer
        FROM (SELECT record, CASE WHEN json_valid(line)
                     THEN json_extract_string(line, ['$.charge_point_id', '$.direction', '$.message', '$.reply']) END AS f
              FROM o_lines)""",
        """CREATE OR REPLACE TEMP TABLE o_record_reasons AS
        SELECT record, CASE
            WHEN cp IS NULL OR message IS NULL THEN 'not a readable spool record'
            WHEN call IS NULL OR direction <> 'in' OR call[1] <> '2' OR call[3] <> 'MeterValues' THEN 'not an incoming MeterValues CALL'
            WHEN answer IS NULL OR answer[1] <> '3' OR answer[2] IS DISTINCT FROM call[2] THEN 'answered with ' || left(coalesce(reply, 'nothing'), 80)
          END AS reason
        FROM o_records""",
        f"""CREATE OR REPLACE TEMP TABLE o_samples AS
        SELECT record, cp, reading_no, reading.timestamp AS ts_text, unnest(reading.sampledValue) AS s
        FROM (SELECT record, cp, unnest(json_transform(message->'$[3].meterValue', '{sample_type}')) AS reading,
                     generate_subscripts(json_transform(message->'$[3].meterValue', '{sample_type}'), 1) AS reading_no
              FROM o_records JOIN o_record_reasons USING (record) WHERE reason IS NULL)""",
        f"""CREATE OR REPLACE TEMP TABLE o_readings AS
        SELECT record, cp, reading_no, any_value(ts_text) AS ts_text,
               bool_or(col IS NOT NULL AND number IS NULL) AS bad_number,
               bool_or(col IS NOT NULL AND factor IS NULL) AS bad_unit,
               {pivot}
        FROM (SELECT *, number * factor AS value FROM (
                SELECT record, cp, reading_no, ts_text,
                       {_case(COLUMN_OF, ("coalesce(s.measurand, 'Energy.Active.Import.Register')", "s.phase"))} AS col,
                       CASE WHEN regexp_full_match(s.value, '{NUMBER}') THEN TRY_CAST(s.value AS DOUBLE) END AS number,
                       {_case(FACTOR, ("col", "s.unit"))} AS factor
                FROM o_samples))
        GROUP BY record, cp, reading_no""",
        f"""CREATE OR REPLACE TEMP TABLE o_meter AS
        SELECT r.*, coalesce(c.charger_id, r.cp) AS charger_id,
               CASE WHEN regexp_full_match(ts_text, '{TIME_WITH_OFFSET}') THEN TRY_CAST(ts_text AS TIMESTAMPTZ) END AS ts_utc
        FROM o_readings r LEFT JOIN chargers c ON c.device_id = r.cp""",
        f"""CREATE OR REPLACE TEMP TABLE o_meter_reasons AS
        SELECT record, CASE
            WHEN bad_number THEN 'sampledValue.value: not a number'
            WHEN bad_unit THEN 'sampledValue.unit: unknown unit'
            WHEN ts_utc IS NULL THEN 'meterValue.timestamp: not ISO-8601 with an offset'
            WHEN ts_utc < TIMESTAMPTZ '{earliest}' OR ts_utc > TIMESTAMPTZ '{latest}' THEN 'meter_values.ts_utc: failed plausible_time'
            {range_checks} END AS reason
        FROM o_meter""",
        # The register never goes below an earlier reading of the charger: in the batch, and the
        # latest stored one before it (an ASOF join).
        """CREATE OR REPLACE TEMP TABLE o_register_reasons AS
        WITH clean AS (
          SELECT m.* FROM o_meter m WHERE m.energy_register_kwh IS NOT NULL AND m.record NOT IN (
            SELECT record FROM o_meter_reasons WHERE reason IS NOT NULL)),
        ordered AS (
          SELECT c.record, c.energy_register_kwh,
                 greatest(max(c.energy_register_kwh) OVER (PARTITION BY c.charger_id ORDER BY c.ts_utc, c.record
                                                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                          s.energy_register_kwh) AS earlier
          FROM clean c ASOF LEFT JOIN (SELECT charger_id, ts_utc, energy_register_kwh FROM meter_values
                                       WHERE source = 'ocpp' AND energy_register_kwh IS NOT NULL) s
            ON s.charger_id = c.charger_id AND s.ts_utc < c.ts_utc)
        SELECT record, 'meter_values.energy_register_kwh decreased' AS reason FROM ordered WHERE energy_register_kwh < earlier""",
        f"""CREATE OR REPLACE TEMP TABLE o_reasons AS
        SELECT record, string_agg(DISTINCT reason, '; ') AS reason FROM (
          SELECT * FROM o_record_reasons UNION ALL SELECT * FROM o_meter_reasons UNION ALL SELECT * FROM o_register_reasons
          UNION ALL
          SELECT record, 'meter_values: duplicate key with different content' FROM (
            SELECT record, row_number() OVER (PARTITION BY charger_id, ts_utc ORDER BY record) AS nth,
                   count(*) OVER (PARTITION BY charger_id, ts_utc, {', '.join(f'{c}::VARCHAR' for c in VALUE_COLUMNS)}) AS same,
                   count(*) OVER (PARTITION BY charger_id, ts_utc) AS copies
            FROM o_meter) WHERE nth > 1 AND same < copies
        ) WHERE reason IS NOT NULL GROUP BY record""",
        f"""CREATE OR REPLACE TEMP TABLE o_good AS
        SELECT DISTINCT ON (charger_id, ts_utc) charger_id, ts_utc, '{SOURCE}' AS source, {', '.join(VALUE_COLUMNS)}
        FROM o_meter WHERE record NOT IN (SELECT record FROM o_reasons) ORDER BY charger_id, ts_utc, record""",
        """CREATE OR REPLACE TEMP VIEW o_rejected AS
        SELECT r.reason, l.line AS raw FROM o_reasons r JOIN o_lines l USING (record)""",
    ]


def duckdb_ocpp(con: duckdb.DuckDBPyConnection, spool_dir: Path) -> tuple[int, int]:
    """Load the spool's MeterValues with DuckDB SQL; returns (records in, quarantined)."""
    con.execute("SET TimeZone = 'UTC'")
    earliest, latest = (t.isoformat() for t in _bounds())
    segments = [str(s.path) for s in list_segments(spool_dir)]
    with PeerRun(con, SOURCE) as run:
        for first in range(0, len(segments), SQL_BATCH_FILES):
            now = dt.datetime.now(dt.UTC)
            for statement in _ocpp_sql(segments[first : first + SQL_BATCH_FILES], earliest, latest):
                con.execute(statement)
            contradicted = con.execute(
                "SELECT count(*) FROM o_good s JOIN meter_values t USING (charger_id, ts_utc, source) WHERE "
                + " OR ".join(f"(t.{c} IS NOT NULL AND s.{c} IS NOT NULL AND t.{c} <> s.{c})" for c in VALUE_COLUMNS)
            ).fetchall()[0][0]  # fmt: skip
            if contradicted:
                raise RuntimeError(f"{contradicted} readings contradict stored ones (not in this benchmark)")
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "UPDATE meter_values AS t SET " + ", ".join(f"{c} = coalesce(t.{c}, s.{c})" for c in VALUE_COLUMNS)
                    + " FROM o_good AS s WHERE t.charger_id = s.charger_id AND t.ts_utc = s.ts_utc AND t.source = s.source AND ("
                    + " OR ".join(f"(t.{c} IS NULL AND s.{c} IS NOT NULL)" for c in VALUE_COLUMNS) + ")"
                )  # fmt: skip
                upsert_staged(con, "meter_values", "o_good", METER_COLUMNS, ("charger_id", "ts_utc", "source"))
                con.execute(
                    f"INSERT INTO chargers (charger_id, device_id, source, ingested_at) "
                    f"SELECT DISTINCT charger_id, charger_id, '{SOURCE}', TIMESTAMPTZ '{now.isoformat()}' FROM o_good g "
                    "WHERE NOT EXISTS (SELECT 1 FROM chargers c WHERE c.charger_id = g.charger_id OR c.device_id = g.charger_id)"
                )  # fmt: skip
                quarantined = quarantine_from_sql(con, run.run_id, SOURCE, "meter_values", "o_rejected", now)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            run.count(con.execute("SELECT count(*) FROM o_lines").fetchall()[0][0], quarantined)
        con.execute("DROP VIEW IF EXISTS o_rejected")
        for table in ("o_lines", "o_records", "o_record_reasons", "o_samples", "o_readings", "o_meter",
                      "o_meter_reasons", "o_register_reasons", "o_reasons", "o_good"):  # fmt: skip
            con.execute(f"DROP TABLE IF EXISTS {table}")
        return run.rows_in, run.rows_quarantined
