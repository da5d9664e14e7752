"""OCPP-J 1.6 frames: envelope parsing, payload validation and CALLERROR codes.

Errors follow OCPP-J 1.6 §4.2.3: a frame that is not JSON or not a CALL/CALLRESULT/CALLERROR
array gets ``FormationViolation``; payloads that break the action's JSON schema get
``ProtocolError`` (missing field), ``TypeConstraintViolation``, ``PropertyConstraintViolation``,
``OccurenceConstraintViolation`` or ``FormationViolation`` (unexpected field). (The ``ocpp``
package's own router swaps the meaning of NotImplemented and NotSupported and names the 2.0
code ``FormatViolation``; it also spends about 0.3 ms per MeterValues on key conversion and
``jsonschema``. Payloads are therefore validated here with the package's own 1.6 schemas,
compiled by ``fastjsonschema``.)
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

#: OCPP-J 1.6 §4.1.4: unique ids are at most 36 characters.
MAX_UNIQUE_ID_CHARS = 36
_UNIQUE_ID_GUESS = re.compile(r'^\s*\[\s*[234]\s*,\s*"([^"\\]{1,36})"')


class OcppCallErrorCode:
    """The CALLERROR codes of OCPP-J 1.6 §4.2.3 (spelling as in the specification)."""

    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMATION_VIOLATION = "FormationViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURENCE_CONSTRAINT_VIOLATION = "OccurenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"


class FrameError(Exception):
    """A frame or payload that gets a CALLERROR instead of an answer."""

    def __init__(self, code: str, description: str, unique_id: Any = "-1"):
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.unique_id = unique_id


# --------------------------------------------------------------------------- validation

#: Schema keywords mapped to the 1.6 error code their violation earns.
_RULE_CODES = {
    "required": OcppCallErrorCode.PROTOCOL_ERROR,
    "type": OcppCallErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "maxLength": OcppCallErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "additionalProperties": OcppCallErrorCode.FORMATION_VIOLATION,
    "minItems": OcppCallErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "maxItems": OcppCallErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
}


def _schema_text(action: str) -> str:
    return (resources.files("ocpp") / "v16" / "schemas" / f"{action}.json").read_text("utf-8-sig")


class PayloadValidator:
    """Validate CALL payloads against the ``ocpp`` package's OCPP 1.6 JSON schemas.

    Uses ``fastjsonschema`` when installed (about 20× faster than ``jsonschema``), else
    ``jsonschema``. Formats (``date-time``) are not enforced here, exactly as in the ``ocpp``
    package: a bad timestamp is spooled and quarantined at load with a precise reason,
    instead of making the charge point retry a message it cannot change.
    """

    def __init__(self) -> None:
        self._validators: dict[str, Callable[[Any], None]] = {}

    def _compile(self, action: str) -> Callable[[Any], None]:
        schema = json.loads(_schema_text(action))
        try:
            import fastjsonschema
        except ImportError:  # pragma: no cover - depends on the environment
            from jsonschema import Draft4Validator

            validator = Draft4Validator(schema)

            def check(payload: Any) -> None:
                error = next(iter(validator.iter_errors(payload)), None)
                if error is not None:
                    where = "/".join(str(p) for p in error.absolute_path) or "payload"
                    raise _schema_error(str(error.validator), f"{where}: {error.message}")

            return check

        compiled = fastjsonschema.compile(schema, use_default=False, use_formats=False)

        def check(payload: Any) -> None:
            try:
                compiled(payload)
            except fastjsonschema.JsonSchemaValueException as exc:
                raise _schema_error(str(exc.rule), str(exc.message)) from None

        return check

    def warm(self, actions: Any) -> None:
        """Compile the validators of ``actions`` now rather than on their first message."""
        for action in actions:
            self._validators.setdefault(action, self._compile(action))

    def validate(self, action: str, payload: Any) -> None:
        """Raise :class:`FrameError` when ``payload`` breaks the schema of ``action``."""
        check = self._validators.get(action)
        if check is None:
            check = self._validators[action] = self._compile(action)
        check(payload)


def _schema_error(rule: str, message: str) -> FrameError:
    code = _RULE_CODES.get(rule, OcppCallErrorCode.PROPERTY_CONSTRAINT_VIOLATION)
    return FrameError(code, f"payload violates the schema ({rule}): {message}"[:500])


# --------------------------------------------------------------------------- frames


def utc_now_text() -> str:
    """Current UTC time as OCPP writes it: ``2025-01-31T12:00:00.000Z``."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def call_result_text(unique_id: str, payload: Mapping[str, Any]) -> str:
    """Serialise a CALLRESULT frame."""
    return json.dumps([3, unique_id, payload], separators=(",", ":"))


def call_error_text(unique_id: Any, code: str, description: str, details: Mapping | None = None) -> str:
    """Serialise a CALLERROR frame."""
    return json.dumps([4, unique_id, code, description, dict(details or {})], separators=(",", ":"))


def guess_unique_id(text: str) -> str:
    """Best-effort unique id of a frame that is not valid JSON (``"-1"`` when none)."""
    match = _UNIQUE_ID_GUESS.match(text)
    return match.group(1) if match else "-1"


def parse_frame(text: str) -> list:
    """Parse an OCPP-J frame and check its envelope (not the payload).

    Returns
    -------
    list
        ``[2, id, action, payload]``, ``[3, id, payload]`` or ``[4, id, code, description, details]``.

    Raises
    ------
    FrameError
        ``FormationViolation`` for anything that is not a well-formed envelope.
    """
    try:
        frame = json.loads(text)
    except ValueError:
        raise FrameError(
            OcppCallErrorCode.FORMATION_VIOLATION, "frame is not valid JSON", guess_unique_id(text)
        ) from None
    except RecursionError:
        raise FrameError(
            OcppCallErrorCode.FORMATION_VIOLATION, "frame nests too deeply", guess_unique_id(text)
        ) from None
    if not isinstance(frame, list) or not frame:
        raise FrameError(OcppCallErrorCode.FORMATION_VIOLATION, "frame is not a JSON array")
    unique_id = frame[1] if len(frame) > 1 and isinstance(frame[1], str | int) else "-1"
    kind = frame[0]
    expected = {2: 4, 3: 3, 4: 5}.get(kind) if type(kind) is int else None
    if expected is None:
        raise FrameError(
            OcppCallErrorCode.FORMATION_VIOLATION, f"MessageTypeId {kind!r} is not 2, 3 or 4", unique_id
        )
    if len(frame) != expected:
        raise FrameError(
            OcppCallErrorCode.FORMATION_VIOLATION,
            f"a message of type {kind} has {expected} elements, not {len(frame)}",
            unique_id,
        )
    if not isinstance(frame[1], str) or not 0 < len(frame[1]) <= MAX_UNIQUE_ID_CHARS:
        raise FrameError(
            OcppCallErrorCode.FORMATION_VIOLATION,
            f"UniqueId must be a string of 1 to {MAX_UNIQUE_ID_CHARS} characters",
            unique_id,
        )
    if kind == 2:
        if not isinstance(frame[2], str):
            raise FrameError(OcppCallErrorCode.FORMATION_VIOLATION, "Action must be a string", unique_id)
        if not isinstance(frame[3], dict):
            raise FrameError(
                OcppCallErrorCode.FORMATION_VIOLATION, "the payload must be a JSON object", unique_id
            )
    return frame
