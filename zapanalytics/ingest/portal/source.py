"""The portal's consumption export as a source of sessions.

Many owners have only the Zaptec portal's export, no API access. Each readable export row
becomes a ``sessions`` row with ``source = 'portal'`` through the door (checks, quarantine,
idempotent upsert); on an empty store the installation and its chargers are made from the
export too, so billing works from the export alone. Where the cloud or OCPP already list a
charging, the portal row is kept as a copy and linked to the canonical session
(:mod:`zapanalytics.store.canonical`): the portal ranks last.

Ids. A portal row's ``session_id`` is ``portal:<the export's session id>`` when the export has
one (it is the cloud's id: the prefix keeps the two rows apart), else ``portal:`` and a hash of
charger, start and energy, so re-reading the same file writes the same rows. A charger the
store does not know becomes ``charger_id`` = its serial (as OCPP names chargers) or
``portal:<name>``. A user the export names but does not identify gets
``user_id`` = ``portal-user:<e-mail or name, lower case>``.

Times. Naive export times are read in the installation's zone
(:func:`~zapanalytics.ingest.portal.export.read_consumption_export`); in a DST fall-back hour
the reading that matches the stored session (or keeps the end after the start) is taken.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts, frame_for

SOURCE = "portal"
#: The portal's file name: ``UsageReport_<from>-<to>_<installation name>.xls(x)``.
_REPORT_NAME = re.compile(r"^UsageReport_\d{8}-\d{8}_(?P<name>.+)$", re.IGNORECASE)


def installation_name_from_file(path: str | Path) -> str | None:
    """The installation name the portal puts in an export's default file name, if it is there."""
    match = _REPORT_NAME.match(Path(path).stem)
    return match.group("name").strip() or None if match else None


def _key(text: str | None) -> str | None:
    return text.strip().lower() if text and text.strip() else None


@dataclasses.dataclass
class PortalRows:
    """Store rows made from an export: one source record per export row."""

    raw: list[str]
    chargers: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    rejections: list[Rejection]


def _charger_lookup(chargers: pl.DataFrame) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for charger_id, device_id, _name in chargers.select("charger_id", "device_id", "name").iter_rows():
        for key in (_key(device_id), _key(charger_id)):
            if key:
                lookup.setdefault(key, charger_id)
    for charger_id, _, name in chargers.select("charger_id", "device_id", "name").iter_rows():
        if _key(name):
            lookup.setdefault(_key(name), charger_id)
    return lookup


def _closest(candidates: Sequence[Any], target: Any) -> Any:
    present = [c for c in candidates if c is not None]
    if not present:
        return None
    if target is None:
        return present[0]
    return min(present, key=lambda c: abs(c - target))


def portal_rows(
    export: pl.DataFrame,
    reconciled: pl.DataFrame,
    stored: pl.DataFrame,
    chargers: pl.DataFrame,
    *,
    installation_id: str,
) -> PortalRows:
    """Turn export rows into ``chargers`` and ``sessions`` rows (pure).

    Parameters
    ----------
    export : polars.DataFrame
        :func:`~zapanalytics.ingest.portal.export.read_consumption_export` output.
    reconciled : polars.DataFrame
        :func:`~zapanalytics.ingest.portal.export.reconcile_sessions` of ``export`` against
        ``stored``: a matched row takes what it lacks (charger, start, end, user) from the
        session it matched.
    stored : polars.DataFrame
        :func:`~zapanalytics.ingest.portal.export.stored_sessions` rows.
    chargers : polars.DataFrame
        ``charger_id, device_id, name`` of the store's chargers.
    installation_id : str
        Installation of new chargers and of every session.

    Returns
    -------
    PortalRows
        Rows carry ``_record`` (the export row's position); unreadable rows and rows that
        cannot be placed in time are rejections for the quarantine.
    """
    matched = {
        row: session_id
        for row, session_id, status in reconciled.select("row", "session_id", "status").iter_rows()
        if row is not None and status in ("match", "energy_differs")
    }
    by_session = {s["session_id"]: s for s in stored.to_dicts()}
    lookup = _charger_lookup(chargers)
    out = PortalRows([], [], [], [])
    new_chargers: dict[str, int] = {}
    for position, row in enumerate(export.to_dicts()):
        out.raw.append(row["raw"] or "")
        if row["problem"]:
            out.rejections.append(Rejection(position, "sessions", f"portal export {row['problem']}"))
            continue
        held = by_session.get(matched.get(row["row"]))
        start = _closest([row["start_utc"], row["start_utc_alt"]], held and held["start_utc"])
        if start is None and held is not None:
            start = held["start_utc"]
        if start is None:
            out.rejections.append(
                Rejection(
                    position,
                    "sessions",
                    f"portal export row {row['row']}: no start time and no stored session it "
                    "matches, so the charging cannot be placed in time",
                )
            )
            continue
        ends = [e for e in (row["end_utc"], row["end_utc_alt"]) if e is not None and e >= start]
        end = _closest(ends, held and held["end_utc"]) if ends else None
        if end is None and row["end_utc"] is None and held is not None:
            end = held["end_utc"]
        if end is None and row["end_utc"] is not None:
            end = row["end_utc"]  # before the start: the door refuses it with the reason
        charger_id = held["charger_id"] if held is not None else None
        if charger_id is None:
            for key in (_key(row["device_id"]), _key(row["charger"])):
                if key and key in lookup:
                    charger_id = lookup[key]
                    break
        if charger_id is None and (row["device_id"] or row["charger"]):
            charger_id = row["device_id"] or f"portal:{row['charger']}"
            for key in (_key(row["device_id"]), _key(row["charger"])):
                if key:
                    lookup[key] = charger_id
            new_chargers[charger_id] = position
            out.chargers.append(
                {
                    "charger_id": charger_id,
                    "device_id": row["device_id"],
                    "installation_id": installation_id,
                    "name": row["charger"],
                    "_record": position,
                }
            )
        user_id = row["user_id"] or (held and held["user_id"])
        user_name = row["user"] or (held and held["user_name"])
        if user_id is None and (row["user_email"] or row["user"]):
            user_id = f"portal-user:{_key(row['user_email'] or row['user'])}"
        out.sessions.append(
            {
                "session_id": _session_id(row, charger_id, start),
                "charger_id": charger_id,
                "installation_id": installation_id,
                "user_id": user_id,
                "user_name": user_name,
                "token_name": row["token"] or (held and held["token_name"]),
                "start_utc": start,
                "end_utc": end,
                "energy_kwh": row["energy_kwh"],
                "_record": position,
            }
        )
    return out


def _session_id(row: dict[str, Any], charger_id: str | None, start: Any) -> str:
    if row["session_id"]:
        return f"portal:{row['session_id']}"
    return hashed_session_id(charger_id, start, row["energy_kwh"])


def hashed_session_id(charger_id: str | None, start: Any, energy_kwh: float | None) -> str:
    """The id of an export row that brings none: a hash of charger, start and energy.

    ``start`` is the aware UTC start the row is stored with; re-reading the same file on the
    same store gives the same id.
    """
    basis = f"{charger_id}|{start.isoformat()}|{energy_kwh!r}"
    return "portal:" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def ingest_portal_rows(con: duckdb.DuckDBPyConnection, rows: PortalRows) -> RunCounts:
    """Admit :func:`portal_rows` through the door as one ``portal`` run; link the copies.

    Returns the run's counts: export rows in = stored + quarantined.
    """
    from zapanalytics.store.canonical import resolve_session_copies

    tables = {}
    if rows.chargers:
        tables["chargers"] = frame_for("chargers", rows.chargers)
    if rows.sessions:
        tables["sessions"] = frame_for("sessions", rows.sessions)
    with IngestRun(con, SOURCE) as run:
        counts = run.admit(rows.raw, tables, rows.rejections, record_table="sessions")
    resolve_session_copies(con, since=run.started_at)
    return counts
