"""Load an OCPP spool into the store: meter values, sessions, charger states and chargers.

Every spool line is one source record for :class:`~zapanalytics.ingest.door.IngestRun`:

* MeterValues -> ``meter_values`` (source ``ocpp``), one row per timestamp.
* StartTransaction / StopTransaction -> ``sessions`` with id
  ``ocpp:{charge point}:{transactionId}`` (``external_id`` = transactionId); energy is
  ``(meterStop - meterStart) / 1000`` kWh (both integer Wh in 1.6). The sampled values in
  a stop's ``transactionData`` go to ``meter_values``.
* StatusNotification -> ``charger_states`` (state-id convention in
  :mod:`~zapanalytics.ingest.ocpp_records`).
* BootNotification, or the first message of an unknown charge point -> ``chargers``.
* A CALL the server answered with a CALLERROR (malformed, unknown, schema-violating) is
  quarantined with that error as the reason; Heartbeat, Authorize and the central system's
  own calls are counted as stored and write nothing.

The charge point id is the charger's ``device_id``; it is also its ``charger_id`` unless the
store already has a charger with that device id (e.g. from the Zaptec cloud), whose id is
then used and whose row is left as it is.

Rows meet the store by *merging*: a row fills the columns a stored row with the same key
leaves empty, and a value that contradicts a stored one sends the record to quarantine
instead of overwriting it. A StopTransaction therefore completes the session its
StartTransaction opened, and loading the same spool twice changes nothing. Records whose
keys collide inside one batch with different content are admitted in a later *phase* of
the batch, after the earlier one is stored. A register that decreases against an earlier
reading of the same charger (stored or in the batch) is quarantined with both readings in
the reason.

The loader keeps a checkpoint per spool segment in ``ocpp_spool_progress`` and reads only
complete lines, so it can run while the server appends, and a crash between a batch and
its checkpoint only repeats harmless work.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts, frame_for
from zapanalytics.ingest.ocpp_records import (
    RecordError,
    charger_model,
    meter_value_rows,
    parse_utc,
    session_id_for,
    status_rows,
    wh_to_kwh,
)
from zapanalytics.ingest.spool import list_segments, read_lines, read_meta
from zapanalytics.schemas import EARLIEST_PLAUSIBLE_UTC, FUTURE_TOLERANCE, MAX_REGISTER_KWH

SOURCE = "ocpp"
#: About this many bytes of spool are read per batch (≈ 15,000 MeterValues lines).
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024
#: Tables in the order a batch writes them.
_WRITE_ORDER = ("chargers", "sessions", "meter_values", "charger_states")
_KEYS = {
    "chargers": ("charger_id",),
    "sessions": ("session_id",),
    "meter_values": ("charger_id", "ts_utc"),
    "charger_states": ("charger_id", "ts_utc", "state_id"),
}
_BOOKKEEPING = frozenset({"source", "ingested_at"})
_METER_COLUMNS = (
    "energy_register_kwh", "power_w", "power_offered_w", "current_offered_a",
    "current_l1_a", "current_l2_a", "current_l3_a",
    "voltage_l1_v", "voltage_l2_v", "voltage_l3_v", "temperature_c",
)


@dataclasses.dataclass(slots=True)
class PartialRow:
    """The columns one record knows about one row; the rest is merged from the store."""

    table: str
    key: tuple
    values: dict[str, Any]


@dataclasses.dataclass(slots=True)
class ParsedRecord:
    """One spool line read into partial rows, or the reason it cannot be stored."""

    action: str
    rows: list[PartialRow] = dataclasses.field(default_factory=list)
    rejection: str | None = None
    rejection_table: str = "meter_values"
    #: StopTransaction: the session must already exist (its StartTransaction was loaded).
    needs_session: str | None = None


@dataclasses.dataclass(slots=True)
class OcppLoadReport:
    """What one load run did."""

    spool_id: str
    counts: RunCounts = dataclasses.field(default_factory=RunCounts)
    lines_read: int = 0
    segments_read: int = 0
    batches: int = 0
    phases: int = 0
    actions: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    rows_written: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    pending_tail_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "spool_id": self.spool_id,
            **self.counts.as_dict(),
            "lines_read": self.lines_read,
            "segments_read": self.segments_read,
            "batches": self.batches,
            "phases": self.phases,
            "actions": dict(sorted(self.actions.items())),
            "rows_written": dict(sorted(self.rows_written.items())),
            "pending_tail_bytes": self.pending_tail_bytes,
        }


@dataclasses.dataclass(slots=True)
class _ChargerInfo:
    charger_id: str
    installation_id: str | None
    stored_row: dict[str, Any] | None


class ChargerDirectory:
    """Which ``charger_id`` a charge point id maps to, and the stored charger row."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self._cache: dict[str, _ChargerInfo] = {}

    def resolve(self, charge_point_id: str) -> _ChargerInfo:
        info = self._cache.get(charge_point_id)
        if info is not None:
            return info
        # Prefer a charger another source (the cloud) knows under this device id.
        rows = self.con.execute(
            "SELECT * FROM chargers WHERE device_id = ? OR charger_id = ?"
            " ORDER BY (device_id = ?) DESC, (source = ?) ASC, charger_id LIMIT 1",
            [charge_point_id, charge_point_id, charge_point_id, SOURCE],
        ).fetchall()
        if rows:
            columns = [d[0] for d in self.con.description]
            row = dict(zip(columns, rows[0], strict=True))
            info = _ChargerInfo(row["charger_id"], row["installation_id"], row)
        else:
            info = _ChargerInfo(charge_point_id, None, None)
        self._cache[charge_point_id] = info
        return info

    def stored(self, charge_point_id: str, row: Mapping[str, Any]) -> None:
        info = self.resolve(charge_point_id)
        info.stored_row = {**(info.stored_row or {}), **row}


def _frame_message(text: Any, field: str) -> list:
    if not isinstance(text, str):
        raise RecordError(f"spool record has no {field} text")
    try:
        frame = json.loads(text)
    except ValueError:
        raise RecordError(f"{field} is not valid JSON") from None
    if not isinstance(frame, list) or not frame:
        raise RecordError(f"{field} is not an OCPP frame")
    return frame


def parse_spool_record(text: str, directory: ChargerDirectory) -> ParsedRecord:
    """Turn one spool line into partial rows (no store writes; charger lookups only)."""
    try:
        record = json.loads(text)
    except ValueError:
        return ParsedRecord("?", rejection="spool line is not valid JSON")
    if not isinstance(record, dict):
        return ParsedRecord("?", rejection="spool line is not a JSON object")
    charge_point_id = record.get("charge_point_id")
    if not isinstance(charge_point_id, str) or not charge_point_id:
        return ParsedRecord("?", rejection="spool record has no charge_point_id")
    try:
        received = parse_utc(record.get("ts"), "ts")
        frame = _frame_message(record.get("message"), "message")
    except RecordError as exc:
        return ParsedRecord("?", rejection=str(exc))
    if record.get("direction") != "in" or frame[0] != 2:
        # Our own calls and the charge point's answers to them carry no measurements.
        return ParsedRecord("(call from central system)" if record.get("direction") == "out" else "(answer)")
    action = frame[2] if len(frame) > 2 and isinstance(frame[2], str) else "?"
    reply_text = record.get("reply")
    reply = None
    if reply_text is not None:
        try:
            reply = _frame_message(reply_text, "reply")
        except RecordError as exc:
            return ParsedRecord(action, rejection=str(exc))
        if reply[0] == 4:
            code = reply[2] if len(reply) > 2 else "?"
            description = reply[3] if len(reply) > 3 else ""
            return ParsedRecord(
                action, rejection=f"the central system answered CALLERROR {code}: {description}"
            )
    payload = frame[3] if len(frame) > 3 else None
    if not isinstance(payload, dict):
        return ParsedRecord(action, rejection="payload is not an object")
    charger = directory.resolve(charge_point_id)
    try:
        return _parse_call(action, payload, reply, charge_point_id, charger, received)
    except RecordError as exc:
        table = "sessions" if action in ("StartTransaction", "StopTransaction") else "meter_values"
        if action == "StatusNotification":
            table = "charger_states"
        return ParsedRecord(action, rejection=f"{action}: {exc}", rejection_table=table)


def _meter_rows(charger_id: str, meter_values: Any) -> list[PartialRow]:
    rows = []
    for ts, columns in meter_value_rows(meter_values):
        rows.append(PartialRow(
            "meter_values", (charger_id, ts), {"charger_id": charger_id, "ts_utc": ts, **columns}
        ))
    return rows


def _parse_call(
    action: str,
    payload: dict[str, Any],
    reply: list | None,
    charge_point_id: str,
    charger: _ChargerInfo,
    received: dt.datetime,
) -> ParsedRecord:
    charger_id = charger.charger_id
    if action == "MeterValues":
        return ParsedRecord(action, _meter_rows(charger_id, payload.get("meterValue")))
    if action == "StatusNotification":
        rows = [
            PartialRow("charger_states", (charger_id, r["ts_utc"], r["state_id"]), {"charger_id": charger_id, **r})
            for r in status_rows(payload, received)
        ]
        return ParsedRecord(action, rows)
    if action == "BootNotification":
        values = {
            "charger_id": charger_id,
            "device_id": charge_point_id,
            "model": charger_model(payload.get("chargePointVendor"), payload.get("chargePointModel")),
            "firmware_version": payload.get("firmwareVersion"),
        }
        return ParsedRecord(action, [PartialRow("chargers", (charger_id,), values)])
    if action == "StartTransaction":
        if reply is None or reply[0] != 3 or not isinstance(reply[2], dict):
            raise RecordError("the spool holds no answer with the transactionId")
        transaction_id = reply[2].get("transactionId")
        if isinstance(transaction_id, bool) or not isinstance(transaction_id, int):
            raise RecordError(f"answer has no integer transactionId ({transaction_id!r})")
        session_id = session_id_for(charge_point_id, transaction_id)
        values = {
            "session_id": session_id,
            "external_id": str(transaction_id),
            "charger_id": charger_id,
            "installation_id": charger.installation_id,
            "token_name": payload.get("idTag"),
            "start_utc": parse_utc(payload.get("timestamp"), "timestamp"),
            "meter_start_kwh": wh_to_kwh(payload.get("meterStart"), "meterStart"),
        }
        return ParsedRecord(action, [PartialRow("sessions", (session_id,), values)])
    if action == "StopTransaction":
        transaction_id = payload.get("transactionId")
        if isinstance(transaction_id, bool) or not isinstance(transaction_id, int):
            raise RecordError(f"transactionId {transaction_id!r} is not an integer")
        session_id = session_id_for(charge_point_id, transaction_id)
        values = {
            "session_id": session_id,
            "end_utc": parse_utc(payload.get("timestamp"), "timestamp"),
            "meter_stop_kwh": wh_to_kwh(payload.get("meterStop"), "meterStop"),
        }
        rows = [PartialRow("sessions", (session_id,), values)]
        if payload.get("transactionData") is not None:
            rows.extend(_meter_rows(charger_id, payload["transactionData"]))
        return ParsedRecord(action, rows, needs_session=session_id)
    return ParsedRecord(action)


# --------------------------------------------------------------------------- merging


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def _fetch_stored(
    con: duckdb.DuckDBPyConnection, table: str, keys: Iterable[tuple]
) -> dict[tuple, dict[str, Any]]:
    """Stored rows of ``table`` (OCPP-sourced for meter values) for the given keys."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    key_columns = _KEYS[table]
    if table == "meter_values":
        frame = pl.DataFrame(
            {"charger_id": [k[0] for k in keys], "ts_utc": [k[1] for k in keys]},
            schema={"charger_id": pl.String, "ts_utc": pl.Datetime("us", "UTC")},
        )
        sql = (
            "SELECT m.* FROM meter_values m JOIN _ocpp_keys k"
            " ON m.charger_id = k.charger_id AND m.ts_utc = k.ts_utc WHERE m.source = 'ocpp'"
        )
    else:
        frame = pl.DataFrame({key_columns[0]: [k[0] for k in keys]}, schema={key_columns[0]: pl.String})
        sql = f"SELECT t.* FROM {table} t JOIN _ocpp_keys k USING ({key_columns[0]})"  # noqa: S608
    con.register("_ocpp_keys", frame.to_arrow())
    try:
        result = con.execute(sql)
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    finally:
        con.unregister("_ocpp_keys")
    stored = {}
    for values in rows:
        row = dict(zip(columns, values, strict=True))
        stored[tuple(row[c] for c in key_columns)] = row
    return stored


def merge_row(stored: Mapping[str, Any] | None, partial: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Fill ``partial`` from ``stored`` and list the columns where the two disagree.

    Returns
    -------
    (dict, list of str)
        The merged row, and the names of columns holding different non-null values.
    """
    if stored is None:
        return dict(partial), []
    merged = {k: v for k, v in stored.items() if k not in _BOOKKEEPING}
    conflicts = []
    for column, value in partial.items():
        if value is None:
            continue
        held = merged.get(column)
        if held is not None and not _same(held, value):
            conflicts.append(column)
        merged[column] = value
    return merged, conflicts


def _finish_session(row: dict[str, Any]) -> None:
    start, stop = row.get("meter_start_kwh"), row.get("meter_stop_kwh")
    if start is not None and stop is not None:
        # Both registers are whole Wh: round away float noise, keep every Wh.
        row["energy_kwh"] = round(stop - start, 3)


def _plausible_register(ts: dt.datetime, value: Any, latest: dt.datetime) -> bool:
    return (
        isinstance(value, float)
        and math.isfinite(value)
        and 0 <= value <= MAX_REGISTER_KWH
        and EARLIEST_PLAUSIBLE_UTC <= ts <= latest
    )


def _stored_registers(
    con: duckdb.DuckDBPyConnection, windows: Mapping[str, tuple[dt.datetime, dt.datetime]]
) -> dict[str, list[tuple[dt.datetime, float]]]:
    """Stored OCPP register readings in each charger's window plus one on each side."""
    if not windows:
        return {}
    frame = pl.DataFrame(
        {
            "charger_id": list(windows),
            "lo": [w[0] for w in windows.values()],
            "hi": [w[1] for w in windows.values()],
        },
        schema={"charger_id": pl.String, "lo": pl.Datetime("us", "UTC"), "hi": pl.Datetime("us", "UTC")},
    )
    sql = """
        WITH m AS (
            SELECT m.charger_id, m.ts_utc, m.energy_register_kwh, w.lo, w.hi
            FROM meter_values m JOIN _ocpp_windows w USING (charger_id)
            WHERE m.source = 'ocpp' AND m.energy_register_kwh IS NOT NULL
        )
        SELECT charger_id, ts_utc, energy_register_kwh FROM m WHERE ts_utc BETWEEN lo AND hi
        UNION ALL
        SELECT charger_id, max(ts_utc), arg_max(energy_register_kwh, ts_utc) FROM m
        WHERE ts_utc < lo GROUP BY charger_id
        UNION ALL
        SELECT charger_id, min(ts_utc), arg_min(energy_register_kwh, ts_utc) FROM m
        WHERE ts_utc > hi GROUP BY charger_id
    """
    con.register("_ocpp_windows", frame.to_arrow())
    try:
        rows = con.execute(sql).fetchall()
    finally:
        con.unregister("_ocpp_windows")
    readings: dict[str, list[tuple[dt.datetime, float]]] = collections.defaultdict(list)
    for charger_id, ts, value in rows:
        readings[charger_id].append((ts, value))
    for values in readings.values():
        values.sort()
    return readings


def register_rejections(
    candidates: list[tuple[int, str, dt.datetime, float]],
    stored: Mapping[str, list[tuple[dt.datetime, float]]],
) -> dict[int, str]:
    """Find records whose energy register goes backwards.

    Parameters
    ----------
    candidates : list of (record, charger_id, ts_utc, energy_register_kwh)
        Readings offered by the batch (plausible ones only).
    stored : mapping of charger_id to sorted (ts_utc, energy_register_kwh)
        Stored readings around the batch's time span.

    Returns
    -------
    dict of int to str
        Record index to quarantine reason. A reading must be at least every earlier reading
        (stored or accepted in the batch) and at most every later stored reading; a record
        that fails is left out and the batch is checked again without it.
    """
    excluded: dict[int, str] = {}
    by_charger: dict[str, list[tuple[dt.datetime, float, int]]] = collections.defaultdict(list)
    for record, charger_id, ts, value in candidates:
        by_charger[charger_id].append((ts, value, record))
    while True:
        found: dict[int, str] = {}
        for charger_id, readings in by_charger.items():
            history = stored.get(charger_id, [])
            times = [t for t, _ in history]
            prefix_max, running = [], -math.inf
            for _, v in history:
                running = max(running, v)
                prefix_max.append(running)
            suffix_min, running = [0.0] * len(history), math.inf
            for i in range(len(history) - 1, -1, -1):
                running = min(running, history[i][1])
                suffix_min[i] = running
            accepted_max, accepted_at = -math.inf, None
            for ts, value, record in sorted(readings, key=lambda r: (r[0], r[2])):
                if record in excluded:
                    continue
                before = bisect.bisect_left(times, ts)
                after = bisect.bisect_right(times, ts)
                earlier, earlier_at = accepted_max, accepted_at
                if before > 0 and prefix_max[before - 1] > earlier:
                    earlier = prefix_max[before - 1]
                    earlier_at = max((t for t, v in history[:before] if v == earlier), default=None)
                if value < earlier:
                    found.setdefault(record, (
                        f"meter_values.energy_register_kwh decreased: {value:g} kWh at "
                        f"{ts.isoformat()} is below {earlier:g} kWh at "
                        f"{earlier_at.isoformat() if earlier_at else '?'} (charger {charger_id})"
                    ))
                    continue
                if after < len(history) and value > suffix_min[after]:
                    later_at = next(t for t, v in history[after:] if v == suffix_min[after])
                    found.setdefault(record, (
                        f"meter_values.energy_register_kwh decreased: {value:g} kWh at "
                        f"{ts.isoformat()} is above the later reading {suffix_min[after]:g} kWh at "
                        f"{later_at.isoformat()} (charger {charger_id})"
                    ))
                    continue
                if value >= accepted_max:
                    accepted_max, accepted_at = value, ts
        new = {r: reason for r, reason in found.items() if r not in excluded}
        if not new:
            return excluded
        excluded.update(new)


# --------------------------------------------------------------------------- loading


class _BatchLoader:
    """Admit one batch of spool lines, in as many phases as key collisions require."""

    def __init__(self, run: IngestRun, directory: ChargerDirectory, report: OcppLoadReport):
        self.run = run
        self.con = run.con
        self.directory = directory
        self.report = report
        self.seen_charge_points: set[str] = set()

    def load(self, lines: list[bytes]) -> RunCounts:
        raw = [line.decode("utf-8", "surrogateescape") for line in lines]
        parsed = []
        for text in raw:
            record = parse_spool_record(text, self.directory)
            self.report.actions[record.action] += 1
            parsed.append(record)
        self._add_charger_rows(raw, parsed)
        counts = RunCounts()
        pending = list(range(len(raw)))
        while pending:
            phase, deferred = self._split_phase(pending, parsed)
            counts += self._admit_phase([raw[i] for i in phase], [parsed[i] for i in phase])
            self.report.phases += 1
            pending = deferred
        return counts

    def _add_charger_rows(self, raw: list[str], parsed: list[ParsedRecord]) -> None:
        """Give a charge point the store has never seen a ``chargers`` row (on its first record)."""
        for record, text in zip(parsed, raw, strict=True):
            if record.rejection is not None or record.action.startswith("("):
                continue
            try:
                charge_point_id = json.loads(text)["charge_point_id"]
            except (ValueError, KeyError, TypeError):
                continue
            if charge_point_id in self.seen_charge_points:
                continue
            self.seen_charge_points.add(charge_point_id)
            info = self.directory.resolve(charge_point_id)
            if info.stored_row is None and not any(r.table == "chargers" for r in record.rows):
                record.rows.append(PartialRow(
                    "chargers", (info.charger_id,),
                    {"charger_id": info.charger_id, "device_id": charge_point_id},
                ))

    @staticmethod
    def _split_phase(pending: list[int], parsed: list[ParsedRecord]) -> tuple[list[int], list[int]]:
        phase, deferred = [], []
        touched: dict[tuple, dict[str, Any]] = {}
        blocked: set[tuple] = set()
        for index in pending:
            rows = parsed[index].rows
            keys = [(row.table, row.key) for row in rows]
            clash = any(k in blocked for k in keys) or any(
                k in touched and touched[k] != row.values for k, row in zip(keys, rows, strict=True)
            )
            if clash:
                deferred.append(index)
                blocked.update(keys)
                continue
            phase.append(index)
            for key, row in zip(keys, rows, strict=True):
                touched.setdefault(key, row.values)
        return phase, deferred

    def _admit_phase(self, raw: list[str], records: list[ParsedRecord]) -> RunCounts:
        rejections: dict[int, Rejection] = {}
        for position, record in enumerate(records):
            if record.rejection is not None:
                rejections[position] = Rejection(position, record.rejection_table, record.rejection)

        keys_by_table: dict[str, list[tuple]] = collections.defaultdict(list)
        for position, record in enumerate(records):
            if position not in rejections:
                for row in record.rows:
                    keys_by_table[row.table].append(row.key)
        stored = {
            table: _fetch_stored(self.con, table, keys_by_table.get(table, ()))
            for table in ("sessions", "meter_values")
        }

        merged: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        for position, record in enumerate(records):
            if position in rejections:
                continue
            try:
                merged[position] = self._merge_record(record, stored)
            except RecordError as exc:
                table = "sessions" if record.action.endswith("Transaction") else "meter_values"
                rejections[position] = Rejection(position, table, f"{record.action}: {exc}")

        latest = dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE
        candidates = [
            (position, row["charger_id"], row["ts_utc"], row["energy_register_kwh"])
            for position, rows in merged.items()
            for table, row in rows
            if table == "meter_values"
            and _plausible_register(row["ts_utc"], row.get("energy_register_kwh"), latest)
        ]
        windows: dict[str, tuple[dt.datetime, dt.datetime]] = {}
        for _, charger_id, ts, _ in candidates:
            lo, hi = windows.get(charger_id, (ts, ts))
            windows[charger_id] = (min(lo, ts), max(hi, ts))
        for position, reason in register_rejections(candidates, _stored_registers(self.con, windows)).items():
            rejections[position] = Rejection(position, "meter_values", reason)

        table_rows: dict[str, list[dict[str, Any]]] = {table: [] for table in _WRITE_ORDER}
        written_chargers: list[tuple[str, dict[str, Any]]] = []
        for position, rows in merged.items():
            if position in rejections:
                continue
            for table, row in rows:
                table_rows[table].append({**row, "_record": position})
                if table == "chargers":
                    written_chargers.append((row["device_id"], row))
        frames = {table: frame_for(table, rows) for table, rows in table_rows.items() if rows}
        counts = self.run.admit(
            raw, frames, list(rejections.values()), record_table="meter_values"
        )
        for table, rows in table_rows.items():
            self.report.rows_written[table] += len(rows)
        for device_id, row in written_chargers:
            self.directory.stored(device_id, row)
        return counts

    def _merge_record(
        self, record: ParsedRecord, stored: Mapping[str, Mapping[tuple, dict[str, Any]]]
    ) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for row in record.rows:
            if row.table == "chargers":
                merged = self._merge_charger(row)
                if merged is not None:
                    out.append(("chargers", merged))
                continue
            if row.table == "charger_states":
                out.append(("charger_states", dict(row.values)))
                continue
            held = stored.get(row.table, {}).get(row.key)
            if row.table == "sessions" and record.needs_session and held is None:
                raise RecordError(
                    f"no StartTransaction for transaction {row.values['session_id']} was loaded"
                )
            values, conflicts = merge_row(held, row.values)
            if conflicts:
                shown = ", ".join(f"{c} stored {held[c]!r} vs {row.values[c]!r}" for c in conflicts)
                raise RecordError(f"{row.table} row {row.key} contradicts the stored row: {shown}")
            if row.table == "sessions":
                _finish_session(values)
                if values.get("energy_kwh") is not None and values["energy_kwh"] < 0:
                    raise RecordError(
                        f"meterStop {values['meter_stop_kwh']:g} kWh is below meterStart "
                        f"{values['meter_start_kwh']:g} kWh"
                    )
            out.append((row.table, values))
        return out

    def _merge_charger(self, row: PartialRow) -> dict[str, Any] | None:
        device_id = row.values["device_id"]
        info = self.directory.resolve(device_id)
        held = info.stored_row
        if held is not None and held.get("source") != SOURCE:
            return None  # another source owns this charger's row
        merged = {k: v for k, v in (held or {}).items() if k not in _BOOKKEEPING}
        merged.update({k: v for k, v in row.values.items() if v is not None})
        if held is not None and all(_same(held.get(k), v) for k, v in merged.items()):
            return None
        return merged


def _read_progress(con: duckdb.DuckDBPyConnection, spool_id: str) -> dict[int, tuple[int, int, bool]]:
    rows = con.execute(
        "SELECT segment, offset_bytes, lines_loaded, done FROM ocpp_spool_progress WHERE spool_id = ?",
        [spool_id],
    ).fetchall()
    return {int(s): (int(o), int(n), bool(d)) for s, o, n, d in rows}


def _save_progress(
    con: duckdb.DuckDBPyConnection, spool_id: str, segment: int, offset: int, lines: int, done: bool
) -> None:
    con.execute(
        "INSERT INTO ocpp_spool_progress VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (spool_id, segment) DO UPDATE SET offset_bytes = EXCLUDED.offset_bytes,"
        " lines_loaded = EXCLUDED.lines_loaded, done = EXCLUDED.done, updated_at = EXCLUDED.updated_at",
        [spool_id, segment, offset, lines, done, dt.datetime.now(dt.UTC)],
    ).fetchall()


def load_spool(
    con: duckdb.DuckDBPyConnection,
    spool_dir: str | Path,
    *,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    on_batch: Callable[[OcppLoadReport], None] | None = None,
) -> OcppLoadReport:
    """Load every complete spool line not loaded before into the store.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store (:func:`zapanalytics.store.open_store`).
    spool_dir : str or Path
        The spool written by ``zapanalytics ocpp serve``.
    batch_bytes : int
        Spool bytes per batch (one ``admit`` per phase of a batch) [bytes].
    on_batch : callable, optional
        Called with the running report after each batch (progress display).

    Returns
    -------
    OcppLoadReport
        Counts (records in = stored + quarantined), rows per table, actions seen and the
        bytes of an incomplete last line left for the next run.
    """
    spool_dir = Path(spool_dir)
    spool_id = str(read_meta(spool_dir)["spool_id"])
    report = OcppLoadReport(spool_id)
    progress = _read_progress(con, spool_id)
    directory = ChargerDirectory(con)
    with IngestRun(con, SOURCE) as run:
        loader = _BatchLoader(run, directory, report)
        for segment in list_segments(spool_dir):
            offset, lines_loaded, done = progress.get(segment.index, (0, 0, False))
            if done:
                continue
            report.segments_read += 1
            while True:
                chunk = read_lines(spool_dir, segment.index, offset, max_bytes=batch_bytes)
                finished = chunk.sealed and chunk.at_end
                if chunk.lines:
                    report.counts += loader.load(chunk.lines)
                    report.lines_read += len(chunk.lines)
                    report.batches += 1
                    lines_loaded += len(chunk.lines)
                    offset = chunk.end_offset
                if chunk.lines or finished:
                    _save_progress(con, spool_id, segment.index, offset, lines_loaded, finished)
                if chunk.lines and on_batch is not None:
                    on_batch(report)
                if chunk.at_end:
                    report.pending_tail_bytes += chunk.torn_tail_bytes
                    break
    return report
