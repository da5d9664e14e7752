"""Spool lines read into partial store rows, before they meet the store.

One spool line is one source record. :func:`parse_spool_record` reads it into
:class:`PartialRow` objects (the columns the record knows) or the reason it cannot be
stored; :class:`ChargerDirectory` says which ``charger_id`` a charge point id maps to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import polars as pl

from zapanalytics.ingest.ocpp.checks import SOURCE
from zapanalytics.ingest.ocpp.records import (
    RecordError,
    charger_model,
    meter_value_rows,
    parse_utc,
    session_id_for,
    status_rows,
    wh_to_kwh,
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
    charge_point_id: str | None = None


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

    def resolve_many(self, charge_point_ids: Iterable[str]) -> dict[str, _ChargerInfo]:
        """:meth:`resolve` for many ids with one store query for those not cached."""
        wanted = [cp for cp in dict.fromkeys(charge_point_ids) if cp not in self._cache]
        if wanted:
            frame = pl.DataFrame({"cp": wanted}, schema={"cp": pl.String})
            self.con.register("_ocpp_cps", frame.to_arrow())
            try:
                result = self.con.execute(
                    "SELECT k.cp, c.* FROM _ocpp_cps k JOIN chargers c"
                    " ON c.device_id = k.cp OR c.charger_id = k.cp"
                    " ORDER BY k.cp, (c.device_id = k.cp) DESC, (c.source = ?) ASC, c.charger_id",
                    [SOURCE],
                )
                columns = [d[0] for d in result.description][1:]
                rows = result.fetchall()
            finally:
                self.con.unregister("_ocpp_cps")
            for cp, *values in rows:
                if cp not in self._cache:
                    row = dict(zip(columns, values, strict=True))
                    self._cache[cp] = _ChargerInfo(row["charger_id"], row["installation_id"], row)
            for cp in wanted:
                self._cache.setdefault(cp, _ChargerInfo(cp, None, None))
        return {cp: self._cache[cp] for cp in charge_point_ids}

    def stored(self, charge_point_id: str, row: Mapping[str, Any]) -> None:
        info = self.resolve(charge_point_id)
        info.stored_row = {**(info.stored_row or {}), **row, "source": SOURCE}


def _frame_message(text: Any, field: str) -> list:
    if not isinstance(text, str):
        raise RecordError(f"spool record has no {field} text")
    try:
        frame = json.loads(text)
    except ValueError:
        raise RecordError(f"{field} is not valid JSON") from None
    except RecursionError:
        raise RecordError(f"{field} nests too deeply to be an OCPP frame") from None
    if not isinstance(frame, list) or not frame:
        raise RecordError(f"{field} is not an OCPP frame")
    return frame


def parse_spool_record(text: str, directory: ChargerDirectory) -> ParsedRecord:
    """Turn one spool line into partial rows (no store writes; charger lookups only)."""
    try:
        record = json.loads(text)
    except ValueError:
        return ParsedRecord("?", rejection="spool line is not valid JSON")
    except RecursionError:
        return ParsedRecord("?", rejection="spool line nests too deeply to be a spool record")
    if not isinstance(record, dict):
        return ParsedRecord("?", rejection="spool line is not a JSON object")
    charge_point_id = record.get("charge_point_id")
    if not isinstance(charge_point_id, str) or not charge_point_id:
        return ParsedRecord("?", rejection="spool record has no charge_point_id")
    direction = record.get("direction")
    if direction == "out":
        return ParsedRecord("(call from central system)", charge_point_id=charge_point_id)
    reply = None
    try:
        received = parse_utc(record.get("ts"), "ts")
        if record.get("reply") is not None:
            reply = _frame_message(record["reply"], "reply")
    except RecordError as exc:
        return ParsedRecord("?", rejection=str(exc), charge_point_id=charge_point_id)
    if reply is not None and reply[0] == 4:
        code = reply[2] if len(reply) > 2 else "?"
        description = reply[3] if len(reply) > 3 else ""
        action = "?"
        with contextlib.suppress(ValueError, TypeError, IndexError, RecursionError):
            frame = json.loads(record["message"])
            if isinstance(frame, list) and isinstance(frame[2], str):
                action = frame[2][:60]
        return ParsedRecord(
            action,
            rejection=f"the central system answered CALLERROR {code}: {description}",
            charge_point_id=charge_point_id,
        )
    try:
        frame = _frame_message(record.get("message"), "message")
    except RecordError as exc:
        return ParsedRecord("?", rejection=str(exc), charge_point_id=charge_point_id)
    if direction != "in" or frame[0] != 2:
        return ParsedRecord("(answer)", charge_point_id=charge_point_id)
    action = frame[2] if len(frame) > 2 and isinstance(frame[2], str) else "?"
    payload = frame[3] if len(frame) > 3 else None
    if not isinstance(payload, dict):
        return ParsedRecord(action, rejection="payload is not an object", charge_point_id=charge_point_id)
    charger = directory.resolve(charge_point_id)
    try:
        parsed = _parse_call(action, payload, reply, charge_point_id, charger, received)
    except RecordError as exc:
        table = "sessions" if action in ("StartTransaction", "StopTransaction") else "meter_values"
        if action == "StatusNotification":
            table = "charger_states"
        parsed = ParsedRecord(action, rejection=f"{action}: {exc}", rejection_table=table)
    parsed.charge_point_id = charge_point_id
    return parsed


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
