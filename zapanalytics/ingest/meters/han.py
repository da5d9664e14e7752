"""AMS/HAN readings of an installation's main meter into ``reference_readings``.

Norwegian AMS meters push DLMS/COSEM notifications in HDLC frames on the HAN port: List 1
(active power, every 2.5 s), List 2 (adds currents and voltages, every 10 s) and List 3
(adds the meter clock and the cumulative registers, every hour). The ``amshan`` package
(import name ``han``) checks and decodes the frames of Aidon, Kaifa and Kamstrup meters;
this module turns them into rows.

Inputs:

* a hex dump, one frame per line, optionally preceded by the UTC time it was received:
  ``2025-10-01T00:00:00.000Z 7ea09b01...7e`` (the shape ``firmware_ref`` writes to
  ``han/<meter_id>.hex``); spaces between bytes are allowed;
* a captured byte stream (what a serial reader records), split into frames by
  ``amshan``'s HDLC reader.

Time: a List 1 or List 2 reading is stamped with its receive time when the dump has one,
else with the meter clock. A List 3 reading (the hourly cumulative register) is stamped
with the meter clock, the hour it closes. Meter clocks are local wall time without an
offset (Kaifa, Aidon) unless the frame carries one; they are read in the installation's
zone (AMS meters are Norwegian: ``Europe/Oslo`` unless told otherwise). The repeated hour
when summer time ends is resolved by the receive time when there is one, else by order
(the first 02:00 is summer time). Register resolution comes from the frame: Aidon states
its scaler (1.8.0 often in 10 Wh steps), Kamstrup registers are 10 Wh, Kaifa 1 Wh; it is
stored in ``energy_resolution_kwh`` for the accuracy audit's quantisation bound.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts
from zapanalytics.ingest.isolation import mark_partial, quarantine_file
from zapanalytics.ingest.limits import (
    InputFileError,
    InputLimits,
    check_file,
    current_limits,
    iter_lines,
    load_json,
    os_error_problem,
    read_document,
)
from zapanalytics.ingest.meters.reference_rows import TABLE, admit_reference_rows, local_instants

SOURCE = "han"
DEFAULT_TIMEZONE = "Europe/Oslo"
#: Raw text a batch may hold before it is stored [characters].
_BATCH_CHARS = 32 * 1024 * 1024
_HEX_LINE = re.compile(r"^\s*(?:(\S*\d{4}-\d{2}-\d{2}T\S+)\s+)?([0-9A-Fa-f\s]+)$")


class HanError(ValueError):
    """A frame that cannot become a reading; the message is the quarantine reason."""


@dataclasses.dataclass(frozen=True, slots=True)
class UnreadableFile:
    """An input file that cannot be read at all: quarantined whole, the run goes on."""

    path: Path
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class HanFrame:
    """One HDLC frame as found in the input.

    Attributes
    ----------
    data : bytes
        The frame, flags included when the input had them.
    received_utc : datetime or None
        When it was received, if the dump says.
    origin : str
        File and line (or byte offset), for quarantine records.
    """

    data: bytes
    received_utc: dt.datetime | None
    origin: str


def read_hex_dump(path: str | Path, limits: InputLimits | None = None) -> Iterator[HanFrame | HanError]:
    """Yield the frames of a hex dump (or a :class:`HanError` for an unreadable line).

    Lines are streamed; one longer than ``max_line_bytes`` is reported, never held.
    """
    path = Path(path)
    limits = current_limits(limits)
    with open(path, "rb") as handle:
        for bounded in iter_lines(handle, str(path), limits):
            number = bounded.number
            origin = f"{path.name}:{number}"
            if bounded.data is None:
                yield HanError(f"{origin}: line of {bounded.raw.size_bytes:,} bytes, over the limit of"
                               f" {limits.max_line_bytes:,} bytes per line")
                continue
            line = bounded.data.decode("utf-8", "replace").lstrip("\ufeff")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            match = _HEX_LINE.match(line)
            if match is None:
                yield HanError(f"{origin}: not '<time> <hex>' or '<hex>'")
                continue
            stamp, digits = match.groups()
            digits = re.sub(r"\s+", "", digits)
            if len(digits) % 2:
                yield HanError(f"{origin}: odd number of hex digits")
                continue
            received = None
            if stamp is not None:
                try:
                    received = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                except ValueError:
                    yield HanError(f"{origin}: {stamp[:40]!r} is not an ISO 8601 time")
                    continue
                if received.tzinfo is None:
                    yield HanError(f"{origin}: receive time {stamp[:40]!r} has no UTC offset")
                    continue
                received = received.astimezone(dt.UTC)
            yield HanFrame(bytes.fromhex(digits), received, origin)


def read_byte_stream(path: str | Path) -> Iterator[HanFrame]:
    """Yield the HDLC frames of a captured byte stream (no receive times)."""
    from han.hdlc import HdlcFrameReader

    path = Path(path)
    reader = HdlcFrameReader(use_octet_stuffing=False)
    offset = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(65536):
            for frame in reader.read(chunk):
                yield HanFrame(frame.as_bytes, None, f"{path.name}@{offset}")
            offset += len(chunk)


def decode_frame(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Check and decode one HDLC frame with ``amshan``.

    Returns
    -------
    (dict, bytes)
        ``amshan``'s normalised fields, and the frame's information field (the LLC PDU).

    Raises
    ------
    HanError
        For a frame with a bad check sequence, a wrong length, or content no decoder reads.
    """
    from han.autodecoder import AutoDecoder
    from han.hdlc import HdlcFrameReader

    framed = data if data[:1] == b"\x7e" else b"\x7e" + data + b"\x7e"
    frames = HdlcFrameReader(use_octet_stuffing=False).read(framed)
    if len(frames) != 1:
        raise HanError("not one complete HDLC frame (bad length or check sequence)")
    frame = frames[0]
    if not (frame.is_good_ffc and frame.is_expected_length):
        raise HanError("HDLC frame check sequence or length is wrong")
    fields = AutoDecoder().decode_message(frame)
    if not fields:
        raise HanError("no Aidon, Kaifa or Kamstrup layout decodes this frame")
    return fields, bytes(frame.payload or b"")


def energy_resolution_wh(payload: bytes, fields: dict[str, Any]) -> float | None:
    """Resolution of the import register 1.8.0 in this frame [Wh], None without a register."""
    if "active_power_import_total" not in fields:
        return None
    maker = fields.get("meter_manufacturer")
    if maker == "Kaifa":
        return 1.0
    if maker == "Kamstrup":
        return 10.0
    if maker == "Aidon":
        from han import aidon

        try:
            parsed = aidon.LlcPdu.parse(payload)
            for item in parsed.information.notification_body.list_items:
                if item.obis.endswith("1.8.0.255") and hasattr(item.content, "scaler_unit"):
                    return float(item.content.scaler_unit.scaler.scale)
        except Exception:  # noqa: BLE001 - amshan read it another way: no resolution, still a reading
            return None
    return None


def list_kind(fields: dict[str, Any]) -> int:
    """1, 2 or 3: which HAN list the frame is (3 carries the cumulative registers)."""
    if "active_power_import_total" in fields:
        return 3
    if any(k.startswith(("current_l", "voltage_l")) for k in fields):
        return 2
    return 1


class MeterClock:
    """Reads a meter's local wall-clock times in a zone, one meter at a time, in order.

    The repeated hour when summer time ends is resolved by the receive time when known,
    else as the later of the two instants only when the earlier one would go backwards.
    """

    def __init__(self, zone: str):
        self.zone = ZoneInfo(zone)
        self.last_utc: dict[str, dt.datetime] = {}

    def to_utc(self, meter_id: str, clock: dt.datetime, received: dt.datetime | None) -> dt.datetime:
        if clock.tzinfo is not None:
            value = clock.astimezone(dt.UTC)
        else:
            instants = local_instants(clock, self.zone)
            if not instants:
                raise HanError(f"meter time {clock.isoformat()} does not exist in {self.zone.key}")
            if len(instants) == 1:
                value = instants[0]
            elif received is not None:  # the repeated hour: the receive time tells
                value = min(instants, key=lambda t: abs((t - received).total_seconds()))
            else:
                first, second = instants
                previous = self.last_utc.get(meter_id)
                value = second if previous is not None and first <= previous else first
        self.last_utc[meter_id] = value
        return value


def reading_row(
    frame: HanFrame, clock: MeterClock, *, meter_id: str | None, installation_id: str | None
) -> dict[str, Any]:
    """Decode one frame into a ``reference_readings`` row (kind ``han``)."""
    fields, payload = decode_frame(frame.data)
    meter = meter_id or fields.get("meter_id")
    if not meter:
        raise HanError("the frame names no meter (List 1) and no --meter-id was given")
    kind = list_kind(fields)
    meter_time = fields.get("meter_datetime")
    if kind == 3 and isinstance(meter_time, dt.datetime):
        ts = clock.to_utc(str(meter), meter_time, frame.received_utc)
    elif frame.received_utc is not None:
        ts = frame.received_utc
    elif isinstance(meter_time, dt.datetime):
        ts = clock.to_utc(str(meter), meter_time, None)
    else:
        raise HanError(f"List {kind} frame without a meter clock and without a receive time")
    row: dict[str, Any] = {
        "meter_id": str(meter),
        "ts_utc": ts,
        "kind": SOURCE,
        "installation_id": installation_id,
        "charger_id": None,
        "power_w": _number(fields.get("active_power_import")),
    }
    for phase in (1, 2, 3):
        row[f"current_l{phase}_a"] = _number(fields.get(f"current_l{phase}"))
        row[f"voltage_l{phase}_v"] = _number(fields.get(f"voltage_l{phase}"))
    register_wh = _number(fields.get("active_power_import_total"))
    row["energy_import_kwh"] = None if register_wh is None else register_wh / 1000.0
    resolution = energy_resolution_wh(payload, fields)
    row["energy_resolution_kwh"] = None if resolution is None else resolution / 1000.0
    return row


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise HanError(f"value {value!r} is not a number") from None


def frames_from(
    paths: Iterable[str | Path], limits: InputLimits | None = None
) -> Iterator[HanFrame | HanError | UnreadableFile]:
    """Frames of every input: ``.hex``/``.txt`` files as dumps, anything else as a byte stream.

    A file that cannot be read (past ``max_file_bytes``, unreadable, a folder named like a
    dump inside a directory) gives an :class:`UnreadableFile` and the next file is read.
    """
    limits = current_limits(limits)
    for path in paths:
        path = Path(path)
        if path.is_dir() and path.suffix not in (".hex", ".bin", ".txt"):
            yield from frames_from(
                sorted(p for p in path.iterdir() if p.suffix in (".hex", ".bin", ".txt")), limits
            )
            continue
        try:
            check_file(path, limits, whole=False)
            if path.suffix in (".hex", ".txt"):
                yield from read_hex_dump(path, limits)
            else:
                yield from read_byte_stream(path)
        except InputFileError as exc:
            yield UnreadableFile(path, str(exc))
        except OSError as exc:
            yield UnreadableFile(path, f"{path}: {os_error_problem(exc)}")


def installation_of(paths: Iterable[str | Path]) -> str | None:
    """The installation named by a ``meters.json`` next to the inputs (firmware_ref's layout)."""
    for path in paths:
        path = Path(path)
        meta = (path if path.is_dir() else path.parent) / "meters.json"
        if meta.is_file():
            limits = current_limits()
            try:
                meters = load_json(read_document(meta, limits), str(meta), limits)
            except InputFileError:
                continue
            for meter in meters.values() if isinstance(meters, dict) else ():
                if isinstance(meter, dict) and meter.get("installation_id"):
                    return str(meter["installation_id"])
    return None


def ingest_han(
    con: duckdb.DuckDBPyConnection,
    paths: Iterable[str | Path],
    *,
    timezone: str = DEFAULT_TIMEZONE,
    meter_id: str | None = None,
    installation_id: str | None = None,
    batch_size: int = 50_000,
    limits: InputLimits | None = None,
) -> RunCounts:
    """Load HAN frames into ``reference_readings``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store.
    paths : iterable of path
        Hex dumps, byte streams, or directories of them.
    timezone : str
        IANA zone of the meter clocks.
    meter_id : str, optional
        For List 1 frames, which do not name their meter.
    installation_id : str, optional
        Default: from a ``meters.json`` beside the inputs.
    limits : InputLimits, optional
        Reader limits; default :meth:`InputLimits.from_env`. A file that cannot be read is
        quarantined whole and the run ends ``partial``.

    Returns
    -------
    RunCounts
        Frames in = stored + quarantined (a file quarantined whole counts as one).
    """
    paths = list(paths)
    installation = installation_id or installation_of(paths)
    clock = MeterClock(timezone)
    counts = RunCounts()
    limits = current_limits(limits)
    partial = False
    held = 0  # raw characters in the batch: bounds memory when lines are long
    with IngestRun(con, SOURCE) as run:
        raw: list[str] = []
        rows: list[dict[str, Any]] = []
        rejected: list[Rejection] = []
        for item in frames_from(paths, limits):
            index = len(raw)
            if isinstance(item, UnreadableFile):
                counts += quarantine_file(run, item.path, item.reason, record_table=TABLE, limits=limits)
                partial = True
                continue
            if isinstance(item, HanError):
                raw.append(str(item))
                rejected.append(Rejection(index, "reference_readings", str(item)))
            else:
                stamp = item.received_utc.isoformat() + " " if item.received_utc else ""
                raw.append(f"{item.origin} {stamp}{item.data.hex()}")
                try:
                    rows.append({**reading_row(item, clock, meter_id=meter_id, installation_id=installation),
                                 "_record": index})
                except HanError as exc:
                    rejected.append(Rejection(index, "reference_readings", f"{item.origin}: {exc}"))
            held += len(raw[-1])
            if len(raw) >= batch_size or held >= _BATCH_CHARS:
                counts += admit_reference_rows(run, raw, rows, rejected)
                raw, rows, rejected, held = [], [], [], 0
        if raw:
            counts += admit_reference_rows(run, raw, rows, rejected)
    if partial:
        mark_partial(con, run.run_id)
    return counts
