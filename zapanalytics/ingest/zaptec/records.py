"""Zaptec cloud JSON objects → store rows (pure functions, shared by every Zaptec source).

Zaptec's timestamps ``StartDateTime``, ``EndDateTime``, ``CommitEndDateTime`` and state
``Timestamp`` carry no offset but are UTC (documented behaviour); :func:`parse_zaptec_time`
converts them explicitly. ``EnergyDetails[].Timestamp`` carries ``+00:00``. Every other
naive timestamp is refused.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

#: ``CommitMetadata`` bits of a charge-history item.
COMMIT_ONLINE = 1
COMMIT_OFFLINE = 2
COMMIT_RELIABLE_CLOCK = 4
COMMIT_STOPPED_BY_RFID = 8
COMMIT_SIGNED = 16
COMMIT_VOID = 32
COMMIT_ABORTED = 64
COMMIT_OCPP_NATIVE = 128

#: Zaptec ``NetworkType`` enum → (network type, phase count).
NETWORK_TYPES: dict[int, tuple[str | None, int | None]] = {
    0: (None, None),
    1: ("IT", 1),
    2: ("IT", 3),
    3: ("TN", 1),
    4: ("TN", 3),
}

#: Serial prefix → model. Pro and Home share the "Smart" platform. The manuals give the
#: example serials ZCH123456 (ZAPTEC HOME) and ZCS123456 (ZapCharger Pro); ZPR is the Pro
#: serial seen in API responses. ZPG is taken as Pro by analogy: an inference.
MODEL_BY_PREFIX = {
    "ZCS": "Pro",
    "ZPR": "Pro",
    "ZPG": "Pro",
    "ZCH": "Home",
    "ZAP": "Go",
    "ZGB": "Go",
    "ZAG": "Go",
    "GPN": "Go2",
    "GPG": "Go2",
}

#: Bitmasks and state ids are stored as 32-bit integers.
_INT32_MAX = 2**31 - 1

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


class RecordError(ValueError):
    """A source record that cannot be mapped; ``field`` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@functools.lru_cache(maxsize=256)
def _offset_zone(offset: str) -> dt.tzinfo | None:
    """``Z``, ``+01:00`` or ``-0130`` as a tzinfo (UTC itself for a zero offset); None if impossible."""
    if offset == "Z":
        return dt.UTC
    sign = 1 if offset[0] == "+" else -1
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        return None
    delta = sign * dt.timedelta(hours=hours, minutes=minutes)
    return dt.timezone(delta) if delta else dt.UTC


def parse_timestamp(value: object, field: str, *, naive_is_utc: bool) -> dt.datetime:
    """Parse an ISO-8601 timestamp into an aware UTC datetime.

    Parameters
    ----------
    value : object
        The raw value; must be a string.
    field : str
        Field name, used in the error.
    naive_is_utc : bool
        True only for sources documented as naive-UTC (Zaptec's datetimes). Otherwise a
        timestamp without an offset is refused.

    Raises
    ------
    RecordError
        On a non-string, malformed or (unless allowed) naive value.
    """
    if not isinstance(value, str):
        raise RecordError(field, f"expected an ISO-8601 string, got {type(value).__name__}")
    match = _ISO.match(value.strip())
    if match is None:
        raise RecordError(field, f"not an ISO-8601 timestamp: {value!r:.60}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    if offset is None:
        if not naive_is_utc:
            raise RecordError(field, f"naive timestamp without a UTC offset: {value!r:.60}")
        tz = dt.UTC
    else:
        tz = _offset_zone(offset)
        if tz is None:
            raise RecordError(field, f"impossible UTC offset {offset!r} in {value!r:.60}")
    try:
        stamp = dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micros, tz
        )
        if tz is dt.UTC:  # the common case; astimezone would only copy
            return stamp
        # Year 1 or 9999 with an offset leaves datetime's range once moved to UTC.
        return stamp.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise RecordError(field, f"impossible date or time {value!r:.60}: {exc}") from None


def parse_zaptec_time(value: object, field: str) -> dt.datetime:
    """Parse a Zaptec datetime: naive means UTC by Zaptec's documented convention."""
    return parse_timestamp(value, field, naive_is_utc=True)


def finite_number(value: object, field: str, *, required: bool = False) -> float | None:
    """A JSON number as a finite float; ``None`` when absent and not ``required``.

    Raises :class:`RecordError` naming ``field`` for a missing required value, a non-number
    (booleans included), an integer beyond the float range, NaN or infinity.
    """
    if value is None:
        if required:
            raise RecordError(field, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(field, f"expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond the float range
        raise RecordError(field, "not a finite number: an integer beyond the float range") from None
    if not math.isfinite(number):
        raise RecordError(field, f"not a finite number: {value}")
    return number


def _number(item: Mapping[str, Any], field: str, *, required: bool = False) -> float | None:
    return finite_number(item.get(field), field, required=required)


def _int_text(value: int) -> str:
    """An integer for a message; a huge one by its size (``str`` refuses > 4300 digits)."""
    return str(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"


def _storable(value: str, field: str) -> str:
    """``value`` unless it holds an unpaired surrogate (a JSON ``\\udc80`` escape), which no
    UTF-8 store column can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(field, "text holds an unpaired UTF-16 surrogate") from None
    return value


def _integer(item: Mapping[str, Any], field: str) -> int | None:
    value = item.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(field, f"expected an integer, got {value!r:.40}")
    return value


def _text(item: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
    value = item.get(field)
    if value is None or value == "":
        if required:
            raise RecordError(field, "missing")
        return None
    if not isinstance(value, str | int):
        raise RecordError(field, f"expected a string, got {type(value).__name__}")
    return _storable(str(value), field)


def model_for_device(device_id: str | None) -> str | None:
    """Return 'Home', 'Pro', 'Go' or 'Go2' from a serial such as ``ZPR123456``."""
    if not device_id:
        return None
    return MODEL_BY_PREFIX.get(device_id[:3].upper())


def installation_row(item: Mapping[str, Any], *, price_area: str | None = None) -> dict[str, Any]:
    """Map ``GET /api/installation/{id}`` to an ``installations`` row."""
    if not isinstance(item, Mapping):
        raise RecordError("installation", "expected a JSON object")
    network = item.get("NetworkType", 0)
    if isinstance(network, bool) or not isinstance(network, int) or network not in NETWORK_TYPES:
        raise RecordError("NetworkType", f"unknown value {network!r:.40}")
    network_type, phase_count = NETWORK_TYPES[network]
    fuse = _number(item, "PropertyMainFuseCurrent")
    max_current = _number(item, "MaxCurrent")
    return {
        "installation_id": _text(item, "Id", required=True),
        "name": _text(item, "Name"),
        "timezone": _text(item, "TimeZoneIanaName") or "Europe/Oslo",
        "network_type": network_type,
        "phase_count": phase_count,
        "main_fuse_a": fuse if fuse else max_current,
        "max_current_a": max_current,
        "price_area": price_area,
        "available_current_a": _number(item, "AvailableCurrent"),
        "available_current_mode": _integer(item, "AvailableCurrentMode"),
    }


def charger_row(item: Mapping[str, Any], *, installation_id: str | None = None) -> dict[str, Any]:
    """Map an item of ``GET /api/chargers`` (or a hierarchy charger) to a ``chargers`` row."""
    if not isinstance(item, Mapping):
        raise RecordError("charger", "expected a JSON object")
    device_id = _text(item, "DeviceId")
    firmware = item.get("ChargerFirmwareVersion") or item.get("CurrentVersion")
    return {
        "charger_id": _text(item, "Id", required=True),
        "device_id": device_id,
        "installation_id": _text(item, "InstallationId") or installation_id,
        "circuit_id": _text(item, "CircuitId"),
        "name": _text(item, "Name"),
        "model": model_for_device(device_id),
        "firmware_version": (
            _storable(firmware, "ChargerFirmwareVersion") if isinstance(firmware, str) else None
        ),
        "min_current_a": _number(item, "MinChargeCurrent"),
        "max_current_a": _number(item, "MaxChargeCurrent"),
        "phase_rotation": _text(item, "PhaseRotation"),
    }


_FIRMWARE_TEXT = re.compile(r"^\d{1,4}(?:\.\d{1,6}){1,3}$")


def _firmware_text(version: object) -> str | None:
    """``{Major, Minor, Build, Revision}`` (charge history) or ``"5.0.2.1"`` (archived)."""
    if isinstance(version, Mapping):
        parts = [version.get(k) for k in ("Major", "Minor", "Build", "Revision")]
        if all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in parts):
            return ".".join(str(p) for p in parts)
    if isinstance(version, str) and _FIRMWARE_TEXT.match(version.strip()):
        return version.strip()
    return None


def session_rows(
    item: Mapping[str, Any], *, installation_id: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Map one charge-history item to a ``sessions`` row and its ``energy_details`` rows.

    ``CommitEndDateTime`` is the real end when present (firmware ≥ 3.2); ``EndDateTime``
    is the cloud's close time. ``EnergyDetails`` are per-interval deltas stamped at the end
    of their interval and are stored as given.

    Raises
    ------
    RecordError
        When a field cannot be read; the caller quarantines the record.
    """
    if not isinstance(item, Mapping):
        raise RecordError("item", "expected a JSON object")
    session_id = _text(item, "Id", required=True)
    start = parse_zaptec_time(item.get("StartDateTime"), "StartDateTime")
    end_raw = item.get("CommitEndDateTime") or item.get("EndDateTime")
    end_field = "CommitEndDateTime" if item.get("CommitEndDateTime") else "EndDateTime"
    end = parse_zaptec_time(end_raw, end_field) if end_raw is not None else None
    metadata = item.get("CommitMetadata")
    if metadata is not None and (isinstance(metadata, bool) or not isinstance(metadata, int)):
        raise RecordError("CommitMetadata", f"expected an integer bitmask, got {metadata!r:.40}")
    if metadata is not None and not 0 <= metadata <= _INT32_MAX:
        raise RecordError("CommitMetadata", f"bitmask out of range: {_int_text(metadata)}")
    signed = item.get("SignedSession")
    if signed is not None and not isinstance(signed, str):
        raise RecordError("SignedSession", "expected a string")
    if signed is not None:
        _storable(signed, "SignedSession")
    meter_start, meter_stop = session_meter_readings(signed)
    session = {
        "session_id": session_id,
        "charger_id": _text(item, "ChargerId"),
        "installation_id": _text(item, "InstallationId") or installation_id,
        "user_id": _text(item, "UserId"),
        "user_name": _text(item, "UserFullName"),
        "token_name": _text(item, "TokenName"),
        "start_utc": start,
        "end_utc": end,
        "energy_kwh": _number(item, "Energy"),
        "meter_start_kwh": meter_start,
        "meter_stop_kwh": meter_stop,
        "commit_metadata": metadata,
        "is_void": None if metadata is None else bool(metadata & COMMIT_VOID),
        "is_aborted": None if metadata is None else bool(metadata & COMMIT_ABORTED),
        "is_offline": None if metadata is None else bool(metadata & COMMIT_OFFLINE),
        "signed_session": signed or None,
        "external_id": _text(item, "ExternalId"),
        "replaced_by_session_id": _text(item, "ReplacedBySessionId"),
        "cloud_end_utc": (
            parse_zaptec_time(item["EndDateTime"], "EndDateTime")
            if item.get("EndDateTime") is not None
            else None
        ),
        "firmware_version": firmware_version_text(item),
    }
    details_raw = item.get("EnergyDetails") or []
    if not isinstance(details_raw, list):
        raise RecordError("EnergyDetails", "expected a list")
    details = []
    for position, point in enumerate(details_raw):
        field = f"EnergyDetails[{position}]"
        if not isinstance(point, Mapping):
            raise RecordError(field, "expected a JSON object")
        details.append(
            {
                "session_id": session_id,
                # Unlike the session's own datetimes, interval stamps carry "+00:00":
                # a naive one means the payload is not what Zaptec documents.
                "ts_utc": parse_timestamp(
                    point.get("Timestamp"), f"{field}.Timestamp", naive_is_utc=False
                ),
                "energy_kwh": _number(point, "Energy", required=True),
            }
        )
    if details:
        total = sum(p["energy_kwh"] for p in details)
        session["energy_details_sum_kwh"] = round(total, 6)
        session["details_mismatch"] = details_mismatch(session["energy_kwh"], total, len(details))
    return session, details


#: ``/api/sessions/archived`` flag → ``CommitMetadata`` bit. The newer endpoint has no
#: "online" flag; a session not flagged ``offline`` is taken as online (bit 1), which is what
#: chargehistory reports for the same sessions (e.g. 21 = online, reliable clock, signed).
ARCHIVED_FLAG_BITS = {
    "offline": COMMIT_OFFLINE,
    "reliableClock": COMMIT_RELIABLE_CLOCK,
    "stoppedByRfid": COMMIT_STOPPED_BY_RFID,
    "signed": COMMIT_SIGNED,
    "voided": COMMIT_VOID,
    "aborted": COMMIT_ABORTED,
    "ocppNative": COMMIT_OCPP_NATIVE,
}
#: camelCase field of ``/api/sessions/archived`` → the charge-history field with its meaning.
_ARCHIVED_FIELDS = {
    "id": "Id",
    "chargerId": "ChargerId",
    "installationId": "InstallationId",
    "deviceId": "DeviceId",
    "deviceName": "DeviceName",
    "startDateTime": "StartDateTime",
    # The archived end is when charging ended; recognizedDateTime is when the cloud received
    # the session, which is what chargehistory's EndDateTime says for a late session.
    "endDateTime": "CommitEndDateTime",
    "recognizedDateTime": "EndDateTime",
    "energy": "Energy",
    "tokenName": "TokenName",
    "externalId": "ExternalId",
    "replacedBySessionId": "ReplacedBySessionId",
    "sessionSignature": "SignedSession",
    "chargerFirmwareVersion": "ChargerFirmwareVersion",
}


def history_item_from_archived(item: Mapping[str, Any]) -> dict[str, Any]:
    """Rename an ``/api/sessions/archived`` session to the charge-history item it stands for.

    Both endpoints list the same sessions; mapping the newer one onto the older one's shape
    makes :func:`session_rows` give the same ``sessions`` and ``energy_details`` rows
    whichever endpoint a sync used. The booleans become the ``CommitMetadata`` bitmask
    (:data:`ARCHIVED_FLAG_BITS`), ``authorizedUser`` the user fields, ``energyDetails`` the
    ``EnergyDetails``. Fields with no column (``externallyAbandoned``, the Eichrecht
    signature) are left out; the raw item stays in quarantine if anything is wrong.

    Raises
    ------
    RecordError
        When the item is not an object, a flag is not a boolean or ``authorizedUser`` /
        ``energyDetails`` have the wrong shape.
    """
    if not isinstance(item, Mapping):
        raise RecordError("item", "expected a JSON object")
    out: dict[str, Any] = {
        history: item[archived] for archived, history in _ARCHIVED_FIELDS.items() if archived in item
    }
    flags = {name: item[name] for name in ARCHIVED_FLAG_BITS if item.get(name) is not None}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise RecordError(name, f"expected true or false, got {value!r:.40}")
    if flags:
        bits = sum(bit for name, bit in ARCHIVED_FLAG_BITS.items() if flags.get(name))
        out["CommitMetadata"] = bits | (0 if flags.get("offline") else COMMIT_ONLINE)
    user = item.get("authorizedUser")
    if user is not None:
        if not isinstance(user, Mapping):
            raise RecordError("authorizedUser", "expected a JSON object")
        out["UserId"] = user.get("id")
        out["UserFullName"] = user.get("fullName")
        out["UserEmail"] = user.get("email")
    details = item.get("energyDetails")
    if details is not None:
        if not isinstance(details, list):
            raise RecordError("energyDetails", "expected a list")
        out["EnergyDetails"] = [
            {"Timestamp": point.get("timestamp"), "Energy": point.get("energy")}
            if isinstance(point, Mapping)
            else point
            for point in details
        ]
    return out


def details_mismatch(energy_kwh: float | None, details_sum_kwh: float, n_details: int) -> bool:
    """Whether ``EnergyDetails`` miss the session's ``Energy`` by more than rounding.

    Zaptec rounds ``Energy`` and every delta to 1 Wh, so an honest sum can be off by
    half a watt-hour per delta plus half for the total.

    Parameters
    ----------
    energy_kwh : float or None
        The session's ``Energy`` [kWh]; None counts as a mismatch.
    details_sum_kwh : float
        Sum of the ``EnergyDetails`` deltas [kWh].
    n_details : int
        Number of deltas.
    """
    if energy_kwh is None:
        return True
    tolerance_kwh = 0.0005 * (n_details + 1) + 1e-9
    return abs(details_sum_kwh - energy_kwh) > tolerance_kwh


#: OCMF ``TX`` codes that close a transaction (end, local stop, remote stop, abort, power loss).
_OCMF_END_CODES = frozenset("ELRAP")


def session_meter_readings(signed_session: str | None) -> tuple[float | None, float | None]:
    """Register readings [kWh] at the begin (``TX`` B) and end of a ``SignedSession``.

    A record that cannot be read gives (None, None): the session is still stored, with
    its ``SignedSession`` verbatim for the audit to judge.
    """
    if not signed_session:
        return None, None
    from zapanalytics.audit.ocmf import OcmfError, parse

    try:
        readings = parse(signed_session).readings
    except OcmfError:
        return None, None
    begin = next((r for r in readings if r.transaction_code == "B"), None)
    end = next((r for r in reversed(readings) if r.transaction_code in _OCMF_END_CODES), None)
    return (
        begin.energy_kwh if begin is not None else None,
        end.energy_kwh if end is not None else None,
    )


def firmware_version_text(item: Mapping[str, Any]) -> str | None:
    """The charger firmware of a charge-history item as ``"5.0.2.1"``, if given."""
    return _firmware_text(item.get("ChargerFirmwareVersion"))


def load_json_text(text: str | bytes, field: str = "page") -> Any:
    """Decode JSON, raising :class:`RecordError` naming ``field`` on failure."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8-sig")
        return json.loads(text)
    # ValueError: also an integer of more than 4300 digits; RecursionError: deep nesting.
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordError(field, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise RecordError(field, "malformed JSON: nested too deeply") from None


def state_row(item: Mapping[str, Any], state_names: Mapping[int, str]) -> dict[str, Any]:
    """Map a state observation (``/state`` item or Service Bus message) to ``charger_states``.

    ``ValueAsString`` may be missing (e.g. -1 Pulse); that is stored as NULL.
    """
    if not isinstance(item, Mapping):
        raise RecordError("observation", "expected a JSON object")
    state_id = item.get("StateId")
    if isinstance(state_id, bool) or not isinstance(state_id, int):
        raise RecordError("StateId", f"expected an integer, got {state_id!r:.40}")
    if not -_INT32_MAX <= state_id <= _INT32_MAX:
        raise RecordError("StateId", f"out of range: {_int_text(state_id)}")
    value = item.get("ValueAsString")
    if value is not None and not isinstance(value, str):
        raise RecordError("ValueAsString", f"expected a string, got {type(value).__name__}")
    if value is not None:
        _storable(value, "ValueAsString")
    return {
        "charger_id": _text(item, "ChargerId", required=True),
        "ts_utc": parse_zaptec_time(item.get("Timestamp"), "Timestamp"),
        "state_id": state_id,
        "state_name": state_names.get(state_id),
        "value": value,
    }


def state_names_from_constants(constants: Mapping[str, Any]) -> dict[int, str]:
    """Invert ``GET /api/constants`` ``Observations`` ({Name: id}) into {id: Name}."""
    observations = constants.get("Observations") if isinstance(constants, Mapping) else None
    if not isinstance(observations, Mapping):
        return {}
    return {int(v): str(k) for k, v in observations.items() if isinstance(v, int)}
