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
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts
from zapanalytics.ingest.meters.reference_rows import admit_reference_rows, local_instants

SOURCE = "submeter"
ENERGY_COLUMNS = ("energy_import_kwh", "energy_kwh", "cumulative_kwh", "kwh")
CURRENT_COLUMNS = ("current_l1_a", "current_l2_a", "current_l3_a")


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


def meter_info(path: Path) -> dict[str, Any]:
    """The ``meters.json`` entry for this file's meter id, or an empty dict."""
    meta = path.parent / "meters.json"
    if not meta.is_file():
        return {}
    try:
        meters = json.loads(meta.read_text("utf-8"))
    except ValueError:
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
) -> RunCounts:
    """Load MID sub-meter CSV files into ``reference_readings`` (kind ``submeter``).

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

    Returns
    -------
    RunCounts
        Data rows in = stored + quarantined.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        files.extend(sorted(path.glob("*.csv")) if path.is_dir() else [path])
    if meter_id is not None and len(files) > 1:
        raise ValueError("--meter-id names one meter; give one CSV file with it")
    zone = ZoneInfo(timezone) if timezone else None
    counts = RunCounts()
    with IngestRun(con, SOURCE) as run:
        for path in files:
            info = meter_info(path)
            meter = meter_id or path.stem
            charger, installation = _charger_for(con, {**info, **({"charger_id": charger_id} if charger_id else {})})
            resolution = resolution_kwh if resolution_kwh is not None else info.get("resolution_kwh")
            raw, rows, rejected = [], [], []
            text = path.read_bytes().decode("utf-8-sig", errors="replace")
            reader = csv.DictReader(io.StringIO(text, newline=""))
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            energy_column = next((c for c in ENERGY_COLUMNS if c in header), None)
            for number, record in enumerate(reader, start=2):
                index = len(raw)
                raw.append(f"{path.name}:{number}: " + ",".join(str(v) for v in record.values()))
                try:
                    if "timestamp" not in header or energy_column is None:
                        raise SubmeterError(
                            f"{path.name} needs the columns timestamp and one of {', '.join(ENERGY_COLUMNS)}"
                        )
                    if None in record:
                        raise SubmeterError("more fields than header columns")
                    row = {
                        "meter_id": meter,
                        "ts_utc": parse_timestamp(record["timestamp"] or "", zone),
                        "kind": SOURCE,
                        "installation_id": installation,
                        "charger_id": charger,
                        "energy_import_kwh": _reading(record.get(energy_column), energy_column),
                        "energy_resolution_kwh": resolution,
                        "_record": index,
                    }
                    for column in CURRENT_COLUMNS:
                        row[column] = _reading(record.get(column), column)
                    rows.append(row)
                except SubmeterError as exc:
                    rejected.append(Rejection(index, "reference_readings", f"{path.name}:{number}: {exc}"))
            if raw:
                counts += admit_reference_rows(run, raw, rows, rejected)
    return counts
