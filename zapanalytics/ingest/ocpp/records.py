"""Pure readers of OCPP 1.6J payloads: sampled values, transactions and status notifications.

Nothing here touches the store; :mod:`~zapanalytics.ingest.ocpp.load` decides which charger
a row belongs to and how it meets rows already stored.

State-id convention for ``charger_states`` rows derived from StatusNotification (Zaptec's
own observation ids are positive, plus -1, -2 and -3 for Pulse, IsOnline and
IsOcppConnected, so OCPP-derived states live far below them):

* ``-1600 - connectorId``: ``OcppConnectorStatus``, value the 1.6 status
  (``Available``, ``Preparing``, ``Charging``, ``SuspendedEV``, ``SuspendedEVSE``,
  ``Finishing``, ``Reserved``, ``Unavailable``, ``Faulted``). Connector 0 is the whole
  charge point, so -1600 is the charger and -1601 its (only) connector on a Zaptec.
* ``-1700 - connectorId``: ``OcppConnectorError``, value the 1.6 errorCode, followed by
  the vendor error code and info when given. Written only when errorCode is not NoError.

These are not mapped to Zaptec's 710 ChargerOperationMode: SuspendedEV, Reserved,
Unavailable and Faulted have no 710 counterpart, and mixing cloud and OCPP rows under one
id would make two sources disagree inside one series.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

#: The ``meter_values`` measurement columns, in store order (every OCPP reader fills these).
METER_COLUMNS = (
    "energy_register_kwh", "power_w", "power_offered_w", "current_offered_a",
    "current_l1_a", "current_l2_a", "current_l3_a",
    "voltage_l1_v", "voltage_l2_v", "voltage_l3_v", "temperature_c",
)  # fmt: skip

#: Far beyond any register (the store caps at 10^7 kWh); larger integers are refused before
#: converting, since a float cannot hold them.
_MAX_REGISTER_WH = 10**15
STATUS_STATE_ID_BASE = -1600
ERROR_STATE_ID_BASE = -1700
STATUS_STATE_NAME = "OcppConnectorStatus"
ERROR_STATE_NAME = "OcppConnectorError"

#: Scale factors into the store's units, per unit spelling of OCPP 1.6 (UnitOfMeasure).
_ENERGY_KWH = {"Wh": 0.001, "kWh": 1.0}
_POWER_W = {"W": 1.0, "kW": 1000.0}
_CURRENT_A = {"A": 1.0}
_VOLTAGE_V = {"V": 1.0}

#: sampledValue fields that are enumerations or text in OCPP 1.6.
_TEXT_FIELDS = ("context", "format", "measurand", "phase", "location", "unit")
#: measurand -> (store column for the total, per-phase columns or None, unit table).
_PHASE_INDEX = {"L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}
_ELECTRICAL_LOCATIONS = {None: 0, "Outlet": 0, "Inlet": 1}


class RecordError(ValueError):
    """A payload the loader cannot turn into rows; the message is the quarantine reason."""


def parse_utc(value: Any, field: str) -> dt.datetime:
    """Parse an OCPP dateTime into an aware UTC datetime.

    Raises
    ------
    RecordError
        For a non-string, an unparsable text or a time without UTC offset (OCPP requires
        one; guessing a zone would shift energy between hours).
    """
    if not isinstance(value, str):
        raise RecordError(f"{field}: timestamp must be a string, not {type(value).__name__}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{field}: {value[:40]!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise RecordError(f"{field}: timestamp {value[:40]!r} has no UTC offset")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise RecordError(f"{field}: timestamp {value[:40]!r} is outside the years 1-9999 in UTC") from None


def wh_to_kwh(value: Any, field: str) -> float:
    """Convert an OCPP 1.6 meterStart/meterStop (integer Wh) to kWh."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{field}: {str(value)[:40]} is not an integer number of Wh")
    if abs(value) > _MAX_REGISTER_WH:
        raise RecordError(f"{field}: {str(value)[:40]} Wh is beyond any meter's register")
    return value / 1000.0


def _number(text: Any, measurand: str) -> float:
    if not isinstance(text, str):
        raise RecordError(f"{measurand}: sampled value {text!r} is not a string")
    try:
        return float(text)
    except ValueError:
        raise RecordError(f"{measurand}: sampled value {text[:40]!r} is not a number") from None


def _scaled(value: float, unit: str | None, table: Mapping[str, float], default: str, measurand: str) -> float:
    factor = table.get(unit if unit is not None else default)
    if factor is None:
        raise RecordError(f"{measurand}: unit {unit!r} is not understood")
    return value * factor


def _celsius(value: float, unit: str | None) -> float:
    if unit in (None, "Celsius"):
        return value
    if unit == "Fahrenheit":
        return (value - 32.0) * 5.0 / 9.0
    if unit == "K":
        return value - 273.15
    raise RecordError(f"Temperature: unit {unit!r} is not understood")


class _Pick:
    """Keep, per column, the value from the most trusted location (first one on ties)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[int, float]] = {}

    def offer(self, column: str, priority: int, value: float) -> None:
        held = self.values.get(column)
        if held is None or priority < held[0]:
            self.values[column] = (priority, value)

    def get(self, column: str) -> float | None:
        held = self.values.get(column)
        return None if held is None else held[1]


def sampled_values_row(sampled_values: list[Mapping[str, Any]]) -> dict[str, float | None]:
    """Read one meterValue's sampled values into ``meter_values`` columns.

    Parameters
    ----------
    sampled_values : list of mapping
        The ``sampledValue`` array of one OCPP 1.6 MeterValue.

    Returns
    -------
    dict
        ``energy_register_kwh`` [kWh], ``power_w`` [W], ``power_offered_w`` [W],
        ``current_l1_a``..``current_l3_a`` [A], ``voltage_l1_v``..``voltage_l3_v`` [V],
        ``current_offered_a`` [A] and ``temperature_c`` [°C]; None where not sent.

    Notes
    -----
    * Default measurand Energy.Active.Import.Register and default unit Wh, as 1.6 says;
      a missing unit on power, current or voltage is read as W, A or V.
    * Totals: the phase-less value; without one, the sum of the L1..L3 values.
    * Locations: Outlet (the default) before Inlet; other locations (Cable, EV) are not the
      charger's meter and are skipped. Temperature prefers Body.
    * SignedData values are not numbers and are skipped; unknown measurands are ignored;
      a phase-less Current.Import (a total or a maximum, depending on the vendor) and
      line-to-line voltages are not stored.
    """
    pick = _Pick()
    phases: dict[str, list[float | None]] = {}
    for sample in sampled_values:
        if not isinstance(sample, Mapping):
            raise RecordError("sampledValue entries must be objects")
        for key in _TEXT_FIELDS:
            if sample.get(key) is not None and not isinstance(sample[key], str):
                raise RecordError(f"sampledValue {key} must be a string, not {type(sample[key]).__name__}")
        if sample.get("format") == "SignedData":
            continue
        measurand = sample.get("measurand", "Energy.Active.Import.Register")
        location = sample.get("location")
        unit = sample.get("unit")
        phase = sample.get("phase")
        if measurand == "Temperature":
            value = _celsius(_number(sample.get("value"), measurand), unit)
            pick.offer("temperature_c", 0 if location in (None, "Body") else 1, value)
            continue
        priority = _ELECTRICAL_LOCATIONS.get(location)
        if priority is None:
            continue
        if measurand == "Energy.Active.Import.Register":
            value = _scaled(_number(sample.get("value"), measurand), unit, _ENERGY_KWH, "Wh", measurand)
            column = "energy_register_kwh"
        elif measurand == "Power.Active.Import":
            value = _scaled(_number(sample.get("value"), measurand), unit, _POWER_W, "W", measurand)
            column = "power_w"
        elif measurand == "Power.Offered":
            value = _scaled(_number(sample.get("value"), measurand), unit, _POWER_W, "W", measurand)
            column = "power_offered_w"
        elif measurand == "Current.Offered":
            value = _scaled(_number(sample.get("value"), measurand), unit, _CURRENT_A, "A", measurand)
            column = "current_offered_a"
        elif measurand == "Current.Import":
            index = _PHASE_INDEX.get(phase)
            if index is None:
                continue
            value = _scaled(_number(sample.get("value"), measurand), unit, _CURRENT_A, "A", measurand)
            pick.offer(f"current_l{index + 1}_a", priority, value)
            continue
        elif measurand == "Voltage":
            index = _PHASE_INDEX.get(phase)
            if index is None:
                continue
            value = _scaled(_number(sample.get("value"), measurand), unit, _VOLTAGE_V, "V", measurand)
            pick.offer(f"voltage_l{index + 1}_v", priority, value)
            continue
        else:
            continue
        if phase is None:
            pick.offer(column, priority, value)
        elif phase in _PHASE_INDEX:
            slots = phases.setdefault(column, [None, None, None])
            index = _PHASE_INDEX[phase]
            if slots[index] is None:
                slots[index] = value
    row: dict[str, float | None] = {
        column: pick.get(column)
        for column in (
            "energy_register_kwh", "power_w", "power_offered_w", "current_offered_a",
            "current_l1_a", "current_l2_a", "current_l3_a",
            "voltage_l1_v", "voltage_l2_v", "voltage_l3_v", "temperature_c",
        )
    }
    for column, slots in phases.items():
        if row[column] is None:
            present = [v for v in slots if v is not None]
            if column == "current_offered_a":
                row[column] = max(present) if present else None
            else:
                row[column] = math.fsum(present) if present else None
    return row


def meter_value_rows(meter_values: Any) -> list[tuple[dt.datetime, dict[str, float | None]]]:
    """Read an OCPP ``meterValue`` array into ``(ts_utc, columns)`` pairs, one per timestamp.

    Samples sharing a timestamp (e.g. a Transaction.End sample and the last periodic one)
    are combined, the first value of a column winning.
    """
    if not isinstance(meter_values, list):
        raise RecordError("meterValue must be an array")
    by_time: dict[dt.datetime, dict[str, float | None]] = {}
    for position, item in enumerate(meter_values):
        if not isinstance(item, Mapping):
            raise RecordError(f"meterValue[{position}] is not an object")
        ts = parse_utc(item.get("timestamp"), f"meterValue[{position}].timestamp")
        sampled = item.get("sampledValue")
        if not isinstance(sampled, list):
            raise RecordError(f"meterValue[{position}].sampledValue must be an array")
        columns = sampled_values_row(sampled)
        held = by_time.get(ts)
        if held is None:
            by_time[ts] = columns
        else:
            for column, value in columns.items():
                if held[column] is None:
                    held[column] = value
    return [(ts, columns) for ts, columns in by_time.items() if any(v is not None for v in columns.values())]


def status_rows(payload: Mapping[str, Any], received_utc: dt.datetime) -> list[dict[str, Any]]:
    """Read a StatusNotification into ``charger_states`` rows (without ``charger_id``).

    The notification's own timestamp is used when present, else the time it was received.
    """
    connector = payload.get("connectorId")
    if isinstance(connector, bool) or not isinstance(connector, int) or connector < 0:
        raise RecordError(f"connectorId {connector!r} is not a connector number")
    timestamp = payload.get("timestamp")
    ts = received_utc if timestamp is None else parse_utc(timestamp, "timestamp")
    rows = [{
        "ts_utc": ts,
        "state_id": STATUS_STATE_ID_BASE - connector,
        "state_name": STATUS_STATE_NAME,
        "value": str(payload.get("status")),
    }]
    error = payload.get("errorCode")
    if error is not None and error != "NoError":
        details = [f"{k}={payload[k]}" for k in ("vendorErrorCode", "vendorId", "info") if payload.get(k)]
        rows.append({
            "ts_utc": ts,
            "state_id": ERROR_STATE_ID_BASE - connector,
            "state_name": ERROR_STATE_NAME,
            "value": " ".join([str(error), *details]),
        })
    return rows


def charger_model(vendor: Any, model: Any) -> str | None:
    """Map BootNotification vendor/model to the store's model names (Zaptec only)."""
    text = f"{vendor or ''} {model or ''}".lower()
    if "zaptec" not in text and "zap" not in text:
        return None
    name = str(model or "").lower()
    if "go2" in name.replace(" ", ""):
        return "Go2"
    if "go" in name:
        return "Go"
    if "pro" in name:
        return "Pro"
    if "home" in name:
        return "Home"
    return None


def session_id_for(charge_point_id: str, transaction_id: int) -> str:
    """The store's session id of an OCPP transaction: ``ocpp:{charge point}:{transactionId}``."""
    return f"ocpp:{charge_point_id}:{transaction_id}"
