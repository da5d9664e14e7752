"""Parse OCMF records into a typed model, keeping the signed payload bytes exactly.

A record is ``OCMF|<payload JSON>|<signature JSON>``. The payload is located by
scanning its JSON, because a ``|`` inside a JSON string (e.g. the tariff text ``TT``)
is lawful, and it is never re-serialised: the signature covers the bytes as written.
See :mod:`zapanalytics.audit.ocmf` for the dialects accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from zapanalytics.audit.ocmf_crypto import DEFAULT_SIGNATURE_ALGORITHM

__all__ = ["HEADER", "OcmfError", "OcmfRecord", "Reading", "SignatureSection", "parse", "parse_tm"]

HEADER = "OCMF"
_WHITESPACE = " \t\r\n"
_CLOCK_STATUSES = frozenset("UISR")
# Units whose register values convert to energy [kWh].
_KWH_PER_UNIT = {"kWh": Decimal(1), "Wh": Decimal("0.001")}
# Reading fields the specification lets a writer omit when equal to the previous reading.
_CARRIED_FORWARD = ("RI", "RU", "RT", "ST")


class OcmfError(ValueError):
    """A record that cannot be read as OCMF.

    Attributes
    ----------
    reason : str
        Why, in one line, e.g. ``"payload has no RD (readings)"``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Reading:
    """One entry of a record's ``RD`` array, with omitted values carried forward.

    Attributes
    ----------
    index : int
        Position in ``RD``, from 0.
    time_utc : datetime
        ``TM`` converted to UTC (tz-aware).
    time_text : str
        ``TM`` exactly as written.
    clock_status : str or None
        ``U`` unknown, ``I`` informative, ``S`` synchronised, ``R`` relative;
        ``None`` when ``TM`` carries no status.
    transaction_code : str or None
        ``TX``: ``B`` begin, ``C`` charging, ``X`` exception, ``E``/``L``/``R``/``A``/``P``
        end, ``S`` suspended, ``T`` tariff change; ``None`` for a fiscal reading.
    value : Decimal or None
        ``RV`` exactly as written (its decimals carry the resolution); ``None`` for an
        event-only reading.
    obis : str or None
        ``RI``, the register's OBIS code.
    unit : str or None
        ``RU``: ``kWh``, ``Wh``, ``mOhm``, ``uOhm``.
    current_type : str or None
        ``RT``: ``AC`` or ``DC``.
    cumulated_loss : Decimal or None
        ``CL``, in the unit of ``RV``.
    error_flags : str
        ``EF``: ``E`` energy unusable, ``t`` time unusable; empty when none.
    status : str or None
        ``ST``: ``G`` is OK; anything else is a meter fault.
    """

    index: int
    time_utc: datetime
    time_text: str
    clock_status: str | None
    transaction_code: str | None
    value: Decimal | None
    obis: str | None
    unit: str | None
    current_type: str | None
    cumulated_loss: Decimal | None
    error_flags: str
    status: str | None

    @property
    def energy_kwh(self) -> float | None:
        """``RV`` as energy [kWh], when the unit is ``kWh`` or ``Wh`` and the value fits a
        float (``energy_kwh_exact`` holds any value)."""
        exact = self.energy_kwh_exact
        if exact is None:
            return None
        value = float(exact)
        return value if math.isfinite(value) else None

    @property
    def energy_kwh_exact(self) -> Decimal | None:
        """``RV`` as an exact decimal energy [kWh]."""
        if self.value is None or self.unit not in _KWH_PER_UNIT:
            return None
        return self.value * _KWH_PER_UNIT[self.unit]

    @property
    def resolution(self) -> Decimal | None:
        """The register step implied by the decimals written in ``RV`` [unit of RV]."""
        if self.value is None:
            return None
        exponent = self.value.as_tuple().exponent
        return Decimal(1).scaleb(exponent) if isinstance(exponent, int) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time_utc": self.time_utc.isoformat(),
            "time_text": self.time_text,
            "clock_status": self.clock_status,
            "transaction_code": self.transaction_code,
            "value": None if self.value is None else str(self.value),
            "unit": self.unit,
            "obis": self.obis,
            "current_type": self.current_type,
            "energy_kwh": self.energy_kwh,
            "cumulated_loss": None if self.cumulated_loss is None else str(self.cumulated_loss),
            "error_flags": self.error_flags,
            "status": self.status,
        }


@dataclass(frozen=True)
class SignatureSection:
    """The third section of a record.

    Attributes
    ----------
    algorithm : str or None
        ``SA`` as written; ``None`` means the specification's default.
    encoding : str or None
        ``SE`` as written (``hex`` by default, or ``base64``).
    mime_type : str or None
        ``SM`` as written (``application/x-der`` by default).
    data_text : str
        ``SD`` as written.
    data : bytes
        ``SD`` decoded.
    """

    algorithm: str | None
    encoding: str | None
    mime_type: str | None
    data_text: str
    data: bytes

    @property
    def effective_algorithm(self) -> str:
        return self.algorithm if self.algorithm is not None else DEFAULT_SIGNATURE_ALGORITHM


@dataclass(frozen=True)
class OcmfRecord:
    """A parsed OCMF record.

    Attributes
    ----------
    text : str
        The record as parsed (after hex decoding, without surrounding whitespace).
    payload_text : str
        The exact text between the first and second ``|``: the signed bytes.
    payload : dict
        The decoded payload; numbers are ``Decimal`` or ``int``.
    readings : tuple of Reading
    signature : SignatureSection or None
        ``None`` when the record has no signature section.
    embedded_public_key : str or None
        A non-standard fourth section; never trusted for verification.
    deviations : tuple of str
        Departures from the OCMF specification that did not prevent reading.
    """

    text: str = field(repr=False)
    payload_text: str = field(repr=False)
    payload: dict[str, Any] = field(repr=False)
    readings: tuple[Reading, ...]
    signature: SignatureSection | None
    embedded_public_key: str | None = None
    deviations: tuple[str, ...] = field(default=())

    @property
    def payload_bytes(self) -> bytes:
        return self.payload_text.encode("utf-8")

    @property
    def payload_sha256(self) -> str:
        """Hex SHA-256 of the signed bytes: a record's identity (signatures are malleable)."""
        return hashlib.sha256(self.payload_bytes).hexdigest()

    def _text_field(self, key: str) -> str | None:
        value = self.payload.get(key)
        return None if value is None else str(value)

    @property
    def format_version(self) -> str | None:
        return self._text_field("FV")

    @property
    def pagination(self) -> str | None:
        return self._text_field("PG")

    @property
    def gateway_id(self) -> str | None:
        return self._text_field("GI")

    @property
    def gateway_serial(self) -> str | None:
        return self._text_field("GS")

    @property
    def meter_serial(self) -> str | None:
        return self._text_field("MS")

    @property
    def identification_level(self) -> str | None:
        return self._text_field("IL")

    @property
    def session_id(self) -> str | None:
        """Zaptec's vendor field ``ZS``, the cloud session id."""
        return self._text_field("ZS")

    @property
    def source_serial(self) -> str | None:
        """The meter serial ``MS``, or the gateway serial ``GS`` when ``MS`` is absent."""
        return self.meter_serial or self.gateway_serial

    @property
    def is_transaction(self) -> bool:
        """True for a transaction record: ``PG`` ``T<n>`` or any reading with ``TX``."""
        pagination = self.pagination or ""
        return pagination.startswith("T") or any(
            r.transaction_code is not None for r in self.readings
        )


def _reject_constant(name: str) -> Any:
    raise OcmfError(f"JSON constant {name} is not a number OCMF allows")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two readers could take different values: ambiguous evidence.
            raise OcmfError(f"duplicate key {key!r} in a JSON object")
        result[key] = value
    return result


_DECODER = json.JSONDecoder(
    parse_float=Decimal,
    parse_constant=_reject_constant,
    object_pairs_hook=_object_without_duplicates,
)


def _skip_whitespace(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _decode_object(text: str, start: int, section: str) -> tuple[dict[str, Any], int]:
    """Decode the JSON object starting at ``start``; return it and the index after it."""
    start = _skip_whitespace(text, start)
    if start >= len(text):
        raise OcmfError(f"the {section} section is empty")
    if text[start] != "{":
        raise OcmfError(f"the {section} section is not a JSON object")
    try:
        value, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise OcmfError(
            f"the {section} section is not valid JSON ({exc.msg} at offset {exc.pos})"
        ) from None
    except RecursionError:
        raise OcmfError(f"the {section} section nests too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        if isinstance(exc, OcmfError):
            raise
        raise OcmfError(f"the {section} section holds an unreadable value: {exc}") from None
    return value, end


_HEX_RECORD = re.compile(r"(?:[0-9A-Fa-f]{2})+", re.ASCII)
_TM = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:(?P<sep>[,.])(?P<fraction>[0-9]{1,9}))?"
    r"(?P<offset>Z|[+-][0-9]{2}(?::?[0-9]{2})?)"
    r"(?:[ \t]+(?P<status>[A-Za-z]))?[ \t]*",
    re.ASCII,
)


def parse_tm(tm: str) -> tuple[datetime, str | None, list[str]]:
    """Parse an OCMF reading time ``TM``.

    Parameters
    ----------
    tm : str
        e.g. ``"2018-07-24T13:22:04,000+0200 S"`` (specification) or
        ``"2025-06-07T09:20:55,943+00:00 R"`` (Zaptec).

    Returns
    -------
    (datetime, str or None, list of str)
        The time in UTC, the clock status letter, and the deviations noticed.

    Raises
    ------
    OcmfError
    """
    match = _TM.fullmatch(tm)
    if match is None:
        raise OcmfError(f"TM {tm!r} is not YYYY-MM-DDThh:mm:ss,fff+hhmm <status>")
    deviations = []
    if match["sep"] == ".":
        deviations.append("TM uses '.' before the fraction of a second")
    if match["fraction"] is None:
        deviations.append("TM has no milliseconds")
    offset_text = match["offset"]
    if offset_text == "Z":
        deviations.append("TM offset written as Z")
        offset = timedelta(0)
    else:
        digits = offset_text[1:].replace(":", "")
        if ":" in offset_text:
            deviations.append("TM offset has a colon (+hh:mm)")
        if len(digits) == 2:
            deviations.append("TM offset has no minutes")
            digits += "00"
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise OcmfError(f"TM {tm!r} has an impossible UTC offset")
        offset = timedelta(hours=hours, minutes=minutes)
        if offset_text[0] == "-":
            offset = -offset
    status = match["status"]
    if status is None:
        deviations.append("TM has no clock status")
    elif status not in _CLOCK_STATUSES:
        raise OcmfError(f"TM {tm!r} has unknown clock status {status!r}")
    fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
    try:
        local = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            int(fraction),
            tzinfo=timezone(offset),
        )
        time_utc = local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise OcmfError(f"TM {tm!r} is not a valid date and time") from None
    return time_utc, status, deviations


def _optional_text(reading: dict[str, Any], key: str, where: str) -> str | None:
    value = reading.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OcmfError(f"{where}: {key} must be a string, not {type(value).__name__}")
    return value.strip()


def _decimal_field(
    reading: dict[str, Any], key: str, where: str, deviations: list[str]
) -> Decimal | None:
    value = reading.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise OcmfError(f"{where}: {key} must be a number, not a boolean")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        deviations.append(f"{key} given as a string")
        try:
            number = Decimal(value.strip().replace(",", "."))
        except InvalidOperation:
            raise OcmfError(f"{where}: {key} {value!r} is not a number") from None
    else:
        raise OcmfError(f"{where}: {key} must be a number, not {type(value).__name__}")
    if not number.is_finite():
        raise OcmfError(f"{where}: {key} {value!r} is not a finite number")
    return number


def _parse_readings(payload: dict[str, Any], deviations: list[str]) -> tuple[Reading, ...]:
    if "RD" not in payload:
        raise OcmfError("payload has no RD (readings)")
    raw_readings = payload["RD"]
    if not isinstance(raw_readings, list):
        raise OcmfError("RD must be an array of readings")
    if not raw_readings:
        raise OcmfError("RD holds no readings")
    readings = []
    carried: dict[str, str | None] = dict.fromkeys(_CARRIED_FORWARD)
    for index, raw in enumerate(raw_readings):
        where = f"reading {index + 1}"
        if not isinstance(raw, dict):
            raise OcmfError(f"{where} is not a JSON object")
        tm = raw.get("TM")
        if tm is None:
            raise OcmfError(f"{where} has no TM (time)")
        if not isinstance(tm, str):
            raise OcmfError(f"{where}: TM must be a string")
        try:
            time_utc, clock_status, tm_deviations = parse_tm(tm)
        except OcmfError as exc:
            raise OcmfError(f"{where}: {exc.reason}") from None
        deviations.extend(tm_deviations)
        for key in _CARRIED_FORWARD:
            value = _optional_text(raw, key, where)
            if value is not None:
                carried[key] = value
        value = _decimal_field(raw, "RV", where, deviations)
        if value is not None and carried["RU"] is None:
            deviations.append("RV without RU")
        error_flags = _optional_text(raw, "EF", where) or ""
        readings.append(
            Reading(
                index=index,
                time_utc=time_utc,
                time_text=tm,
                clock_status=clock_status,
                transaction_code=_optional_text(raw, "TX", where) or None,
                value=value,
                obis=carried["RI"],
                unit=carried["RU"],
                current_type=carried["RT"],
                cumulated_loss=_decimal_field(raw, "CL", where, deviations),
                error_flags=error_flags,
                status=carried["ST"],
            )
        )
    return tuple(readings)


def _decode_signature(section: dict[str, Any], deviations: list[str]) -> SignatureSection | None:
    def text(key: str) -> str | None:
        value = section.get(key)
        if value is not None and not isinstance(value, str):
            raise OcmfError(f"signature field {key} must be a string")
        return value

    data_text = text("SD")
    if data_text is None or not data_text.strip():
        return None
    algorithm, encoding, mime_type = text("SA"), text("SE"), text("SM")
    compact = "".join(data_text.split())
    declared = (encoding or "hex").strip().lower()
    if declared not in ("hex", "base64"):
        raise OcmfError(f"signature encoding SE {encoding!r} is neither hex nor base64")
    data = None
    if declared == "hex":
        try:
            data = bytes.fromhex(compact)
        except ValueError:
            if encoding is not None:
                raise OcmfError("SD is not valid hex although SE says hex") from None
    if data is None:
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise OcmfError(f"SD is not valid {declared}") from None
        if declared == "hex":
            deviations.append("SD is base64 but SE is absent (default hex)")
    if mime_type is not None and mime_type.strip().lower() != "application/x-der":
        deviations.append(f"SM {mime_type!r} is not application/x-der")
    return SignatureSection(algorithm, encoding, mime_type, data_text, data)


def _record_text(record: str | bytes) -> tuple[str, list[str]]:
    deviations = []
    if isinstance(record, bytes | bytearray):
        try:
            record = bytes(record).decode("utf-8")
        except UnicodeDecodeError:
            raise OcmfError("the record is not UTF-8 text") from None
    if not isinstance(record, str):
        raise TypeError(f"an OCMF record is str or bytes, not {type(record).__name__}")
    # A byte-order mark is an editor's artefact, not part of the record.
    text = record.lstrip("\ufeff").strip(_WHITESPACE)
    if not text:
        raise OcmfError("the record is empty")
    if not text.startswith(HEADER + "|") and _HEX_RECORD.fullmatch(text):
        try:
            decoded = bytes.fromhex(text).decode("utf-8")
        except UnicodeDecodeError:
            decoded = ""
        if decoded.startswith(HEADER + "|"):
            text = decoded.strip(_WHITESPACE)
            deviations.append("record given hex-encoded")
    if not text.startswith(HEADER + "|"):
        raise OcmfError("the record does not start with 'OCMF|'")
    return text, deviations


def parse(record: str | bytes) -> OcmfRecord:
    """Parse an OCMF record.

    Parameters
    ----------
    record : str or bytes
        ``OCMF|{payload}|{signature}`` (UTF-8 when bytes), or the same hex-encoded.
        The signature section may be absent (an unsigned record).

    Returns
    -------
    OcmfRecord

    Raises
    ------
    OcmfError
        For any record that cannot be read; ``reason`` says why. (``TypeError`` when
        ``record`` is neither text nor bytes.)
    """
    text, deviations = _record_text(record)
    payload_start = len(HEADER) + 1
    payload, payload_end = _decode_object(text, payload_start, "payload")
    separator = _skip_whitespace(text, payload_end)
    signature = None
    embedded_key = None
    if separator >= len(text):
        payload_text = text[payload_start:]
    else:
        if text[separator] != "|":
            raise OcmfError("unexpected text after the payload section")
        payload_text = text[payload_start:separator]
        signature_start = _skip_whitespace(text, separator + 1)
        if signature_start < len(text):
            section, signature_end = _decode_object(text, signature_start, "signature")
            signature = _decode_signature(section, deviations)
            rest = _skip_whitespace(text, signature_end)
            if rest < len(text):
                if text[rest] != "|":
                    raise OcmfError("unexpected text after the signature section")
                embedded_key = text[rest + 1 :].strip(_WHITESPACE) or None
                deviations.append("non-standard fourth section (public key)")
        else:
            deviations.append("empty signature section")
    readings = _parse_readings(payload, deviations)
    for key, cardinality in (("PG", "1..1"), ("MS", "1..1")):
        if key not in payload:
            deviations.append(f"{key} missing (specification: {cardinality})")
    return OcmfRecord(
        text=text,
        payload_text=payload_text,
        payload=payload,
        readings=readings,
        signature=signature,
        embedded_public_key=embedded_key,
        deviations=tuple(dict.fromkeys(deviations)),
    )
