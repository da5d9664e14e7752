"""Admit reference-meter rows (HAN, MID sub-meters) the way OCPP meter values are admitted.

Rows of one instant from several records (a List 2 and a List 3 frame, a CSV row repeated)
merge when they agree and fill each other's gaps; a value that contradicts the stored row
of the same meter and instant is quarantined instead of overwriting it; a cumulative
register below an earlier reading of the same meter (or above a later stored one) is
quarantined with both readings in the reason.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from zapanalytics.ingest.door import (
    RECORD_COLUMN,
    IngestRun,
    Rejection,
    RunCounts,
    _failed_rows,
    frame_for,
)
from zapanalytics.ingest.ocpp.checks import (
    contradiction_reason,
    merge_row,
    plausible_register,
    register_rejections,
    same_value,
)
from zapanalytics.schemas import FUTURE_TOLERANCE

TABLE = "reference_readings"
_VALUE_COLUMNS = (
    "installation_id", "charger_id", "energy_import_kwh", "power_w",
    "current_l1_a", "current_l2_a", "current_l3_a", "voltage_l1_v", "voltage_l2_v", "voltage_l3_v",
    "energy_resolution_kwh",
)


def local_instants(wall: dt.datetime, zone: ZoneInfo) -> list[dt.datetime]:
    """The UTC instants a naive wall-clock time can be in ``zone``: none, one or two."""
    found = set()
    for fold in (0, 1):
        utc = wall.replace(tzinfo=zone, fold=fold).astimezone(dt.UTC)
        if utc.astimezone(zone).replace(tzinfo=None) == wall:
            found.add(utc)
    return sorted(found)


def _merge_within_batch(rows: list[dict[str, Any]]) -> None:
    """Give rows of one meter and instant their combined values when they do not disagree."""
    groups: dict[tuple, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        groups[(row["meter_id"], row["ts_utc"])].append(row)
    for members in groups.values():
        if len(members) < 2:
            continue
        combined: dict[str, Any] = {}
        agree = True
        for row in members:
            for column in _VALUE_COLUMNS:
                value = row.get(column)
                if value is None:
                    continue
                if column in combined and not same_value(combined[column], value):
                    agree = False  # the door quarantines the later record as a conflict
                combined.setdefault(column, value)
        if agree:
            for row in members:
                row.update(combined)


def _stored_rows(run: IngestRun, keys: list[tuple[str, dt.datetime]]) -> dict[tuple, dict[str, Any]]:
    if not keys:
        return {}
    frame = pl.DataFrame(
        {"meter_id": [k[0] for k in keys], "ts_utc": [k[1] for k in keys]},
        schema={"meter_id": pl.String, "ts_utc": pl.Datetime("us", "UTC")},
    ).unique()
    run.con.register("_reference_keys", frame.to_arrow())
    try:
        result = run.con.execute(
            "SELECT r.* FROM reference_readings r JOIN _reference_keys k USING (meter_id, ts_utc)"
        )
        columns = [d[0] for d in result.description]
        stored = result.fetchall()
    finally:
        run.con.unregister("_reference_keys")
    out = {}
    for values in stored:
        row = dict(zip(columns, values, strict=True))
        out[(row["meter_id"], row["ts_utc"])] = row
    return out


def _stored_registers(
    run: IngestRun, windows: Mapping[str, tuple[dt.datetime, dt.datetime]]
) -> dict[str, list[tuple[dt.datetime, float]]]:
    if not windows:
        return {}
    frame = pl.DataFrame(
        [(m, lo, hi) for m, (lo, hi) in windows.items()],
        schema={"meter_id": pl.String, "lo": pl.Datetime("us", "UTC"), "hi": pl.Datetime("us", "UTC")},
        orient="row",
    )
    sql = """
        WITH m AS (
            SELECT r.meter_id, r.ts_utc, r.energy_import_kwh AS value, w.lo, w.hi
            FROM reference_readings r JOIN _reference_windows w USING (meter_id)
            WHERE r.energy_import_kwh IS NOT NULL
        )
        SELECT meter_id, ts_utc, value FROM m WHERE ts_utc BETWEEN lo AND hi
        UNION ALL
        SELECT meter_id, max(ts_utc), arg_max(value, ts_utc) FROM m WHERE ts_utc < lo GROUP BY meter_id
        UNION ALL
        SELECT meter_id, min(ts_utc), arg_min(value, ts_utc) FROM m WHERE ts_utc > hi GROUP BY meter_id
    """
    run.con.register("_reference_windows", frame.to_arrow())
    try:
        rows = run.con.execute(sql).fetchall()
    finally:
        run.con.unregister("_reference_windows")
    readings: dict[str, list[tuple[dt.datetime, float]]] = collections.defaultdict(list)
    for meter_id, ts, value in rows:
        readings[meter_id].append((ts, value))
    for values in readings.values():
        values.sort()
    return readings


def admit_reference_rows(
    run: IngestRun,
    raw: Sequence[str],
    rows: list[dict[str, Any]],
    rejected: list[Rejection],
) -> RunCounts:
    """Merge, check and admit one batch of ``reference_readings`` rows.

    Parameters
    ----------
    run : IngestRun
        The open run.
    raw : sequence of str
        Raw source records.
    rows : list of dict
        Rows with ``_record`` indices into ``raw`` (at most one row per record).
    rejected : list of Rejection
        Records the reader could not read.
    """
    rejections = {r.record: r for r in rejected}
    _merge_within_batch(rows)
    stored = _stored_rows(run, [(r["meter_id"], r["ts_utc"]) for r in rows])
    merged_rows = []
    for row in rows:
        record = row[RECORD_COLUMN]
        held = stored.get((row["meter_id"], row["ts_utc"]))
        partial = {k: v for k, v in row.items() if k != RECORD_COLUMN}
        values, conflicts = merge_row(held, partial)
        if conflicts:
            pairs = [(c, held[c], partial[c]) for c in conflicts]
            key = f"{row['meter_id']} at {row['ts_utc'].isoformat()}"
            rejections.setdefault(record, Rejection(record, TABLE, contradiction_reason(TABLE, key, pairs)))
            continue
        merged_rows.append({**values, RECORD_COLUMN: record})
    frame = frame_for(TABLE, merged_rows)
    refused = set(rejections) | {int(frame[RECORD_COLUMN][i]) for i in _failed_rows(TABLE, frame)}

    latest = dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE
    candidates = [
        (r[RECORD_COLUMN], r["meter_id"], r["ts_utc"], r["energy_import_kwh"])
        for r in merged_rows
        if r[RECORD_COLUMN] not in refused and plausible_register(r["ts_utc"], r.get("energy_import_kwh"), latest)
    ]
    windows: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for _, meter_id, ts, _ in candidates:
        lo, hi = windows.get(meter_id, (ts, ts))
        windows[meter_id] = (min(lo, ts), max(hi, ts))
    found = register_rejections(
        candidates, _stored_registers(run, windows), column=f"{TABLE}.energy_import_kwh", owner="meter"
    )
    for record, reason in found.items():
        rejections.setdefault(record, Rejection(record, TABLE, reason))
    return run.admit(raw, {TABLE: frame}, list(rejections.values()), record_table=TABLE)
