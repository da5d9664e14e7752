"""MID sub-meter readings (CSV) into ``reference_readings``.

A MID sub-meter on a charger's supply is the independent reference the accuracy audit
compares the charger's own meter with. The CSV has a header and one reading per row:

* ``timestamp``: ISO 8601 with its UTC offset (``2025-10-26T02:30:00+01:00``). A time
  without offset is read in ``timezone`` when one is given; the repeated hour of the
  autumn change is then ambiguous and such a row is quarantined rather than guessed.
* the cumulative import register in kWh: ``energy_import_kwh`` (also accepted:
  ``energy_kwh``, ``cumulative_kwh``, ``kwh``);
* optionally ``current_l1_a``, ``current_l2_a``, ``current_l3_a`` [A].

The meter id is the file name without extension unless given; ``meters.json`` beside the
files (``firmware_ref``'s layout) maps it to the charger (``charger_id`` or ``device_id``)
and the register resolution (``resolution_kwh``, 0.01 for the usual 10 Wh display).

Files are streamed within :class:`~zapanalytics.ingest.limits.InputLimits` (bytes per file
and per line, characters per field): one record per line, a quoted line break inside a field
is not read as one record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import duckdb

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts
from zapanalytics.ingest.isolation import mark_partial, quarantine_file
from zapanalytics.ingest.limits import (
    InputFileError,
    InputLimits,
    check_file,
    current_limits,
    iter_csv_records,
    load_json,
    os_error_problem,
    read_document,
)
from zapanalytics.ingest.meters.reference_rows import TABLE, admit_reference_rows, local_instants

SOURCE = "submeter"
ENERGY_COLUMNS = ("energy_import_kwh", "energy_kwh", "cumulative_kwh", "kwh")
CURRENT_COLUMNS = ("current_l1_a", "current_l2_a", "current_l3_a")
#: Rows validated and stored per transaction, and the raw text a batch may hold [characters]:
#: together they bound memory on files of any length and lines up to the line limit.
BATCH_ROWS = 50_000
BATCH_CHARS = 32 * 1024 * 1024
#: A file none of whose first this many records is a reading is not a sub-meter CSV: it is
#: quarantined whole instead of record by record (bounds the time a large junk file costs).
UNREADABLE_PREFIX_ROWS = 10_000


class SubmeterError(ValueError):
    """A row that cannot become a reading; the message is the quarantine reason."""


def parse_timestamp(text: str, zone: ZoneInfo | None) -> dt.datetime:
    """Parse a reading time into UTC (see the module notes on naive times)."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SubmeterError(f"timestamp {text[:40]!r} is not ISO 8601") from None
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    if zone is None:
        raise SubmeterError(f"timestamp {text[:40]!r} has no UTC offset (give --timezone to read local times)")
    instants = local_instants(value, zone)
    if not instants:
        raise SubmeterError(f"local time {text[:40]!r} does not exist in {zone.key}")
    if len(instants) > 1:
        raise SubmeterError(f"local time {text[:40]!r} happens twice in {zone.key}; it needs an offset")
    return instants[0]


def _reading(text: str | None, column: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        raise SubmeterError(f"{column}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise SubmeterError(f"{column}: {text[:40]!r} is not a finite number")
    return value


def meter_info(path: Path, limits: InputLimits | None = None) -> dict[str, Any]:
    """The ``meters.json`` entry for this file's meter id, or an empty dict (also when unreadable)."""
    meta = path.parent / "meters.json"
    if not meta.is_file():
        return {}
    limits = current_limits(limits)
    try:
        meters = load_json(read_document(meta, limits), str(meta), limits)
    except InputFileError:
        return {}
    entry = meters.get(path.stem) if isinstance(meters, dict) else None
    return entry if isinstance(entry, dict) else {}


def _charger_for(con: duckdb.DuckDBPyConnection, info: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(charger_id, installation_id) for a meter, preferring the store's own charger id."""
    candidates = [info.get("charger_id"), info.get("device_id")]
    for key in (c for c in candidates if c):
        rows = con.execute(
            "SELECT charger_id, installation_id FROM chargers WHERE charger_id = ? OR device_id = ?"
            " ORDER BY (charger_id = ?) DESC LIMIT 1",
            [key, key, key],
        ).fetchall()
        if rows:
            return rows[0][0], rows[0][1]
    return (info.get("charger_id") or info.get("device_id")), None


def ingest_submeter(
    con: duckdb.DuckDBPyConnection,
    paths: Iterable[str | Path],
    *,
    timezone: str | None = None,
    meter_id: str | None = None,
    charger_id: str | None = None,
    resolution_kwh: float | None = None,
    limits: InputLimits | None = None,
) -> RunCounts:
    """Load MID sub-meter CSV files into ``reference_readings`` (kind ``submeter``).

    Files are streamed line by line in batches of :data:`BATCH_ROWS` rows or
    :data:`BATCH_CHARS` characters, so memory does not grow with a file's size. A line past a
    limit is quarantined with its prefix, size and sha256. A file that cannot be read (a
    directory, past ``max_file_bytes``, no header naming a timestamp and an energy column,
    none of its first :data:`UNREADABLE_PREFIX_ROWS` records a reading) is quarantined whole
    and the run ends ``partial``; the other files load.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store.
    paths : iterable of path
        CSV files, or directories of them.
    timezone : str, optional
        IANA zone for timestamps written without offset.
    meter_id, charger_id : str, optional
        Override the file name and ``meters.json`` (one file only for ``meter_id``).
    resolution_kwh : float, optional
        Register resolution [kWh]; default from ``meters.json``.
    limits : InputLimits, optional
        Reader limits; default :meth:`InputLimits.from_env`.

    Returns
    -------
    RunCounts
        Data rows in = stored + quarantined (a file quarantined whole counts as one).
    """
    limits = current_limits(limits)
    files: list[Path] = []
    for path in map(Path, paths):
        files.extend(sorted(path.glob("*.csv")) if path.is_dir() else [path])
    if meter_id is not None and len(files) > 1:
        raise ValueError("--meter-id names one meter; give one CSV file with it")
    zone = ZoneInfo(timezone) if timezone else None
    counts = RunCounts()
    partial = False
    with IngestRun(con, SOURCE) as run:
        for path in files:
            info = meter_info(path, limits)
            charger, installation = _charger_for(con, {**info, **({"charger_id": charger_id} if charger_id else {})})
            reading = _MeterFile(
                meter=meter_id or path.stem,
                charger=charger,
                installation=installation,
                resolution=resolution_kwh if resolution_kwh is not None else info.get("resolution_kwh"),
                zone=zone,
            )
            try:
                check_file(path, limits, whole=False)
                with path.open("rb") as handle:
                    file_counts = _ingest_file(run, handle, path, reading, limits)
            except InputFileError as exc:
                counts += quarantine_file(run, path, str(exc), record_table=TABLE, limits=limits)
                partial = True
                continue
            except OSError as exc:
                counts += quarantine_file(
                    run, path, f"{path}: {os_error_problem(exc)}", record_table=TABLE, limits=limits
                )
                partial = True
                continue
            counts += file_counts
    if partial:
        mark_partial(con, run.run_id)
    return counts


@dataclasses.dataclass(frozen=True, slots=True)
class _MeterFile:
    """What every row of one file shares."""

    meter: str
    charger: str | None
    installation: str | None
    resolution: float | None
    zone: ZoneInfo | None


def _ingest_file(
    run: IngestRun, handle: BinaryIO, path: Path, meter: _MeterFile, limits: InputLimits
) -> RunCounts:
    """Stream one CSV file through the door; :class:`InputFileError` when it has no usable header."""
    records = iter_csv_records(handle, str(path), limits, errors="replace")
    head = next(records, None)
    if head is None:
        return RunCounts()
    if head.fields is None:
        problem = (head.problem or "").removeprefix(f"{path.name}:")
        raise InputFileError(str(path), f"unreadable header (line {problem.strip()})")
    header = [h.strip() for h in head.fields]
    energy_column = next((c for c in ENERGY_COLUMNS if c in header), None)
    if "timestamp" not in header or energy_column is None:
        raise InputFileError(
            str(path), f"needs the columns timestamp and one of {', '.join(ENERGY_COLUMNS)}"
            f" (header {','.join(header)[:80]!r})"
        )
    position = {name: header.index(name) for name in ("timestamp", energy_column, *CURRENT_COLUMNS)
                if name in header}
    counts = RunCounts()
    raw: list[str] = []
    rows: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    held = 0
    readings = 0
    stored_any_batch = False
    for record in records:
        index = len(raw)
        if record.fields is None:
            raw.append(record.raw)
            rejected.append(Rejection(index, TABLE, record.problem or f"{path.name}:{record.number}: unreadable"))
        else:
            raw.append(f"{path.name}:{record.number}: " + ",".join(record.fields))
            try:
                rows.append({**_row(record.fields, header, position, energy_column, meter), "_record": index})
                readings += 1
            except SubmeterError as exc:
                rejected.append(Rejection(index, TABLE, f"{path.name}:{record.number}: {exc}"))
        if not readings and not stored_any_batch and len(rejected) >= UNREADABLE_PREFIX_ROWS:
            first = rejected[0].reason.removeprefix(f"{path.name}:")
            raise InputFileError(
                str(path),
                f"none of the first {len(rejected):,} records is a reading (line {first[:200]});"
                " not a sub-meter CSV",
            )
        held += len(raw[-1])
        if len(raw) >= BATCH_ROWS or held >= BATCH_CHARS:
            counts += admit_reference_rows(run, raw, rows, rejected)
            raw, rows, rejected, held = [], [], [], 0
            stored_any_batch = True
    if raw:
        counts += admit_reference_rows(run, raw, rows, rejected)
    return counts


def _row(
    fields: list[str],
    header: list[str],
    position: Mapping[str, int],
    energy_column: str,
    meter: _MeterFile,
) -> dict[str, Any]:
    if len(fields) > len(header):
        raise SubmeterError("more fields than header columns")

    def field(name: str) -> str | None:
        at = position.get(name)
        return fields[at] if at is not None and at < len(fields) else None

    row = {
        "meter_id": meter.meter,
        "ts_utc": parse_timestamp(field("timestamp") or "", meter.zone),
        "kind": SOURCE,
        "installation_id": meter.installation,
        "charger_id": meter.charger,
        "energy_import_kwh": _reading(field(energy_column), energy_column),
        "energy_resolution_kwh": meter.resolution,
    }
    for column in CURRENT_COLUMNS:
        row[column] = _reading(field(column), column)
    return row
