"""Charge-history pages and charger states from the Zaptec API → store rows, through the door.

:func:`history_rows` maps a batch of charge-history items exactly as
:func:`~zapanalytics.ingest.zaptec.records.session_rows` does item by item, but parses the
EnergyDetails of well-formed items column-wise: a year of a 100-charger installation holds
about a million of them, and row-by-row parsing would make the sync slower than Zaptec's
rate limit. Items in any other shape take the row-by-row path, which decides and explains.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import polars as pl

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts, frame_for
from zapanalytics.ingest.zaptec.pages import RawPage, describe_unreadable
from zapanalytics.ingest.zaptec.records import (
    RecordError,
    details_mismatch,
    history_item_from_archived,
    session_rows,
    state_row,
)
from zapanalytics.schemas import polars_schema

#: Page text from which a sync's batch goes through the DuckDB bulk path [characters]. The
#: bulk path costs about 0.07 s a batch before its first row; below some five full pages
#: (measured: 1 page 0.09 s bulk against 0.055 s per record, 5 pages 0.14 s both) the
#: per-record path is quicker. A sync asks charger by charger, so most batches are small.
BULK_MIN_CHARS = 2_000_000
#: The two endpoints that list completed sessions.
CHARGEHISTORY = "chargehistory"
ARCHIVED = "archived"


class LazyRaw(Sequence[str]):
    """Raw JSON of each record, serialised only when the door quarantines it."""

    def __init__(self, records: list[Any]):
        self._records = records

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        record = self._records[index]
        return record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)


#: The EnergyDetails timestamp Zaptec sends (``2025-06-07T09:30:01.007+00:00``). Details in
#: this shape are parsed in bulk; anything else goes through :func:`session_rows` one by one,
#: which decides and explains exactly as for any other source.
_BULK_DETAIL_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:\+00:00|Z)$"
#: Integers beyond this are not exactly representable as floats: scalar path.
_EXACT_INT = 2**53


def history_rows(
    entries: Sequence[tuple[int, Any]], *, installation_id: str
) -> tuple[list[dict[str, Any]], pl.DataFrame, list[Rejection]]:
    """Map charge-history items to session rows, an ``energy_details`` frame and rejections.

    The result equals mapping each item with :func:`session_rows` (tests hold it to that);
    the EnergyDetails of well-formed items, a year of a large installation holding millions,
    are parsed column-wise instead of row by row.

    Parameters
    ----------
    entries : sequence of (int, object)
        ``(record index, item)`` pairs.
    installation_id : str
        The installation the items were asked for.

    Returns
    -------
    tuple
        (session rows with ``_record``, details frame with ``_record``, rejections)
    """
    sessions: dict[int, dict[str, Any]] = {}
    rejected: list[Rejection] = []
    scalar_details: list[dict[str, Any]] = []
    bulk: dict[str, list[Any]] = {"_record": [], "session_id": [], "ts_text": [], "energy_kwh": []}
    items = dict(entries)

    def scalar(record: int) -> None:
        try:
            session, points = session_rows(items[record], installation_id=installation_id)
        except RecordError as exc:
            rejected.append(Rejection(record, "sessions", str(exc)))
            return
        sessions[record] = {**session, "_record": record}
        scalar_details.extend({**p, "_record": record} for p in points)

    for record, item in entries:
        details = item.get("EnergyDetails") if isinstance(item, Mapping) else None
        if not isinstance(details, list) or not details:
            scalar(record)
            continue
        stamps, energies, total = [], [], 0.0
        for point in details:
            stamp = point.get("Timestamp") if type(point) is dict else None
            energy = point.get("Energy") if type(point) is dict else None
            if type(stamp) is not str or not (
                type(energy) is float or (type(energy) is int and -_EXACT_INT < energy < _EXACT_INT)
            ):
                break
            stamps.append(stamp)
            energies.append(float(energy))
            total += float(energy)
        else:
            try:
                session, _ = session_rows(
                    {k: v for k, v in item.items() if k != "EnergyDetails"},
                    installation_id=installation_id,
                )
            except RecordError as exc:
                rejected.append(Rejection(record, "sessions", str(exc)))
                continue
            session["energy_details_sum_kwh"] = round(total, 6)
            session["details_mismatch"] = details_mismatch(
                session["energy_kwh"], total, len(energies)
            )
            sessions[record] = {**session, "_record": record}
            bulk["_record"].extend([record] * len(stamps))
            bulk["session_id"].extend([session["session_id"]] * len(stamps))
            bulk["ts_text"].extend(stamps)
            bulk["energy_kwh"].extend(energies)
            continue
        scalar(record)

    frame = pl.DataFrame(
        bulk,
        schema={
            "_record": pl.Int64,
            "session_id": pl.String,
            "ts_text": pl.String,
            "energy_kwh": pl.Float64,
        },
    ).with_columns(
        pl.col("ts_text")
        .str.replace(r"(\+00:00|Z)$", "")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
        .dt.replace_time_zone("UTC")
        .alias("ts_utc")
    )
    unusual = (
        ~pl.col("ts_text").str.contains(_BULK_DETAIL_TIME)
        | pl.col("ts_utc").is_null()
        # The parser takes a leap second (":60") and rolls it over; datetime refuses it.
        | (pl.col("ts_utc").dt.strftime("%Y-%m-%dT%H:%M:%S") != pl.col("ts_text").str.head(19))
        | ~pl.col("energy_kwh").is_finite()
    )
    unusual_records = frame.filter(unusual)["_record"].unique().to_list()
    for record in unusual_records:
        del sessions[record]
        scalar(record)
    schema = {**polars_schema("energy_details"), "_record": pl.Int64}
    details_frame = pl.concat(
        [
            frame.filter(~pl.col("_record").is_in(unusual_records)).select(list(schema)),
            frame_for("energy_details", scalar_details).select(list(schema)),
        ]
    )
    rejected.sort(key=lambda r: r.record)
    return [sessions[r] for r in sorted(sessions)], details_frame, rejected


def admit_history_pages(
    run: IngestRun,
    pages: Sequence[RawPage],
    *,
    installation_id: str,
    endpoint: str = CHARGEHISTORY,
) -> tuple[RunCounts, int, int]:
    """Store a batch of session pages of either listing endpoint in one transaction.

    Each session is a source record; ``/api/sessions/archived`` items are first renamed to
    the charge-history shape (:func:`history_item_from_archived`), so both endpoints give the
    same rows, while quarantine keeps the item as received. A page whose body is unreadable
    is one record, quarantined with its raw body (the door keeps a bounded prefix).

    Returns
    -------
    tuple
        (counts, pages quarantined, sessions flagged for an EnergyDetails mismatch).
    """
    if endpoint == CHARGEHISTORY and sum(len(p.text) for p in pages if p.items) >= BULK_MIN_CHARS:
        return _chargehistory_in_bulk(run, pages, installation_id=installation_id)
    records: list[Any] = []
    entries: list[tuple[int, Any]] = []
    rejected: list[Rejection] = []
    bad_pages = 0
    for page in pages:
        if page.items is None:
            rejected.append(
                Rejection(
                    len(records),
                    "sessions",
                    f"{endpoint} page {page.index}: not a readable page of the endpoint: "
                    f"{describe_unreadable(page)}",
                )
            )
            records.append(page.text)  # the door keeps a bounded prefix, size and sha256
            bad_pages += 1
            continue
        for item in page.items:
            index = len(records)
            records.append(item)
            if endpoint == ARCHIVED:
                try:
                    item = history_item_from_archived(item)
                except RecordError as exc:
                    rejected.append(Rejection(index, "sessions", str(exc)))
                    continue
            entries.append((index, item))
    counts, flagged = admit_history_entries(run, records, entries, rejected, installation_id)
    return counts, bad_pages, flagged


def admit_history_entries(
    run: IngestRun,
    records: list[Any],
    entries: Sequence[tuple[int, Any]],
    rejected: Sequence[Rejection],
    installation_id: str | None,
) -> tuple[RunCounts, int]:
    """Map charge-history items and admit them through the door, one record each.

    ``records`` are the raw records (items, or the text of an unreadable page), ``entries``
    the ``(record index, item)`` pairs to map, ``rejected`` what was refused before mapping.

    Returns
    -------
    tuple
        (counts, sessions flagged for an EnergyDetails mismatch).
    """
    sessions, details, item_rejections = history_rows(entries, installation_id=installation_id)
    flagged = sum(bool(s.get("details_mismatch")) for s in sessions)
    counts = run.admit(
        LazyRaw(records),
        {"sessions": frame_for("sessions", sessions), "energy_details": details},
        [*rejected, *item_rejections],
        record_table="sessions",
    )
    return counts, flagged


def _chargehistory_in_bulk(
    run: IngestRun, pages: Sequence[RawPage], *, installation_id: str
) -> tuple[RunCounts, int, int]:
    """Charge-history pages of a sync: the readable ones through the DuckDB bulk path, each
    unreadable one quarantined whole with what was wrong with it (as the per-record path)."""
    from zapanalytics.ingest.zaptec.bulk import admit_history_texts

    unreadable = [page for page in pages if page.items is None]
    counts = RunCounts()
    if unreadable:
        counts += run.admit(
            [page.text for page in unreadable],
            {},
            [
                Rejection(
                    n,
                    "sessions",
                    f"{CHARGEHISTORY} page {page.index}: not a readable page of the endpoint: "
                    f"{describe_unreadable(page)}",
                )
                for n, page in enumerate(unreadable)
            ],
            record_table="sessions",
        )
    readable = [page.text for page in pages if page.items is not None]
    bulk_counts, bad_pages, flagged = admit_history_texts(
        run, readable, installation_id=installation_id
    )
    counts += bulk_counts
    return counts, bad_pages + len(unreadable), flagged


def admit_states(
    run: IngestRun, items: Sequence[Mapping[str, Any]], state_names: Mapping[int, str]
) -> RunCounts:
    """Store ``/state`` observations (one record each)."""
    rows, rejected = [], []
    for index, item in enumerate(items):
        try:
            rows.append({**state_row(item, state_names), "_record": index})
        except RecordError as exc:
            rejected.append(Rejection(index, "charger_states", str(exc)))
    return admit_state_rows(run, LazyRaw(list(items)), rows, rejected)


def admit_state_rows(
    run: IngestRun, raw: Sequence[str], rows: list[dict[str, Any]], rejected: list[Rejection]
) -> RunCounts:
    """Admit mapped state observations; same-instant repeats keep the latest value."""
    rows, superseded = _keep_latest_observation(rows)
    return run.admit(
        raw,
        {"charger_states": frame_for("charger_states", rows)},
        [*rejected, *superseded],
        record_table="charger_states",
    )


def _keep_latest_observation(
    rows: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Resolve observations that share (charger, time, state id) within one stream batch.

    A state stream is ordered: when two values of one state arrive stamped with the same
    millisecond, the later one is the state the charger settled in. The earlier one is
    quarantined (not dropped) with that explanation.
    """
    latest: dict[tuple, int] = {}
    for position, row in enumerate(rows):
        latest[(row["charger_id"], row["ts_utc"], row["state_id"])] = position
    if len(latest) == len(rows):
        return rows, []
    keep = set(latest.values())
    superseded = [
        Rejection(
            row["_record"],
            "charger_states",
            f"charger_states: superseded by a later observation of state {row['state_id']} "
            f"for charger {row['charger_id']} at the same time {row['ts_utc'].isoformat()}",
        )
        for position, row in enumerate(rows)
        if position not in keep
    ]
    return [row for position, row in enumerate(rows) if position in keep], superseded


def stored_session_firmware(
    con: duckdb.DuckDBPyConnection, charger_ids: Sequence[str]
) -> dict[str, str]:
    """The firmware of each charger's latest stored session that names one (``5.0.2.1``)."""
    rows = con.execute(
        "SELECT charger_id, arg_max(firmware_version, start_utc) FROM sessions"
        " WHERE firmware_version IS NOT NULL AND list_contains(?::VARCHAR[], charger_id)"
        " GROUP BY charger_id",
        [list(charger_ids)],
    ).fetchall()
    return dict(rows)


def with_session_firmware(
    con: duckdb.DuckDBPyConnection, chargers: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Charger items, each without a firmware field given the one its sessions report.

    ``GET /api/chargers`` carries no firmware; the charge history does, per session. The
    latest session's firmware is the charger's as last seen by the cloud.
    """
    ids = [str(c.get("Id")) for c in chargers if c.get("Id")]
    known = stored_session_firmware(con, ids)
    out = []
    for charger in chargers:
        item = dict(charger)
        own = item.get("ChargerFirmwareVersion") or item.get("CurrentVersion")
        if not isinstance(own, str) and known.get(str(item.get("Id"))):
            item["CurrentVersion"] = known[str(item["Id"])]
        out.append(item)
    return out
