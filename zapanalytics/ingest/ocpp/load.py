"""Load an OCPP spool into the store: meter values, sessions, charger states and chargers.

Every spool line is one source record for :class:`~zapanalytics.ingest.door.IngestRun`:

* MeterValues -> ``meter_values`` (source ``ocpp``), one row per timestamp.
* StartTransaction / StopTransaction -> ``sessions`` with id
  ``ocpp:{charge point}:{transactionId}`` (``external_id`` = transactionId); energy is
  ``(meterStop - meterStart) / 1000`` kWh (both integer Wh in 1.6). The sampled values in
  a stop's ``transactionData`` go to ``meter_values``.
* StatusNotification -> ``charger_states`` (state-id convention in
  :mod:`~zapanalytics.ingest.ocpp.records`).
* BootNotification, or the first message of an unknown charge point -> ``chargers``.
* A CALL the server answered with a CALLERROR (malformed, unknown, schema-violating) is
  quarantined with that error as the reason; Heartbeat, Authorize and the central system's
  own calls are counted as stored and write nothing.

The charge point id is the charger's ``device_id``; it is also its ``charger_id`` unless the
store already has a charger with that device id (e.g. from the Zaptec cloud), whose id is
then used and whose row is left as it is.

Rows meet the store by *merging*: a row fills the columns a stored row with the same key
leaves empty, and a value that contradicts a stored one sends the record to quarantine
instead of overwriting it. A StopTransaction therefore completes the session its
StartTransaction opened, and loading the same spool twice changes nothing. Records whose
keys collide inside one batch with different content are admitted in a later *phase* of
the batch, after the earlier one is stored. A register that decreases against an earlier
reading of the same charger (stored or in the batch) is quarantined with both readings in
the reason.

Plain MeterValues lines, nearly all of a spool, are read in bulk in DuckDB SQL
(:mod:`~zapanalytics.ingest.ocpp.bulk`), the next block while this one is stored; every other
line, and every plain line the bulk reader hands back, is read line by line
(:mod:`~zapanalytics.ingest.ocpp.parse`), which decides and explains.

The loader keeps a checkpoint per spool segment in ``ocpp_spool_progress`` and reads only
complete lines, so it can run while the server appends, and a crash between a batch and
its checkpoint only repeats harmless work.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from zapanalytics.contract_sql import contract_checks
from zapanalytics.ingest.door import (
    RECORD_COLUMN,
    IngestRun,
    Rejection,
    RunCounts,
    _failed_rows,
    frame_for,
)
from zapanalytics.ingest.ocpp.blocks import (
    LineBlock,
    RawLines,
    blocks_ahead,
    readable_text,
    segment_blocks,
)
from zapanalytics.ingest.ocpp.bulk import read_meter_values_sql
from zapanalytics.ingest.ocpp.checks import (
    SOURCE,
    StoredMeterContext,
    chargers_with_register_violations,
    contradiction_reason,
    latest_plausible,
    merge_meter_frame,
    merge_row,
    register_rejections,
    same_value,
)
from zapanalytics.ingest.ocpp.logs import spool_from_message_logs  # noqa: F401 - its old home
from zapanalytics.ingest.ocpp.parse import (
    ChargerDirectory,
    ParsedRecord,
    PartialRow,
    parse_spool_record,
)
from zapanalytics.ingest.ocpp.records import METER_COLUMNS, RecordError
from zapanalytics.ingest.spool import read_meta
from zapanalytics.schemas import EARLIEST_PLAUSIBLE_UTC, MAX_REGISTER_KWH, polars_schema

#: About this many bytes of spool are read per batch (≈ 80,000 MeterValues lines); larger
#: batches spread the fixed cost of validation and upserts over more rows.
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
#: Whether every contract check of ``meter_values`` looks at one column only: then a merged
#: row passes when its offered and stored values did (see ``_admit_phase``).
_COLUMN_CHECKS_ONLY = all(check.column is not None for check in contract_checks("meter_values"))
#: Tables in the order a batch writes them.
_WRITE_ORDER = ("chargers", "sessions", "meter_values", "charger_states")


@dataclasses.dataclass(slots=True)
class OcppLoadReport:
    """What one load run did."""

    spool_id: str
    counts: RunCounts = dataclasses.field(default_factory=RunCounts)
    lines_read: int = 0
    segments_read: int = 0
    batches: int = 0
    phases: int = 0
    actions: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    rows_offered: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    pending_tail_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "spool_id": self.spool_id,
            **self.counts.as_dict(),
            "lines_read": self.lines_read,
            "segments_read": self.segments_read,
            "batches": self.batches,
            "phases": self.phases,
            "actions": dict(sorted(self.actions.items())),
            "rows_offered": dict(sorted(self.rows_offered.items())),
            "pending_tail_bytes": self.pending_tail_bytes,
        }


# --------------------------------------------------------------------------- loading

_STORE_METER_SCHEMA = {**polars_schema("meter_values"), RECORD_COLUMN: pl.Int64}


def _meter_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Meter rows (dicts with ``_record``) as a frame of the merge's columns."""
    schema = {
        RECORD_COLUMN: pl.Int64, "charger_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"),
        **{c: pl.Float64 for c in METER_COLUMNS},
    }
    return pl.DataFrame(rows, schema=schema)


def _store_meter_frame(merged: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """Merged meter rows in the store's column order and dtypes, bookkeeping filled."""
    columns = []
    for name, dtype in _STORE_METER_SCHEMA.items():
        if name == "source":
            columns.append(pl.lit(SOURCE, pl.String).alias(name))
        elif name == "ingested_at":
            columns.append(pl.lit(now, pl.Datetime("us", "UTC")).alias(name))
        elif name in merged.columns:
            columns.append(pl.col(name).cast(dtype))
        else:
            columns.append(pl.lit(None, dtype).alias(name))
    return merged.select(columns)


def _with_bookkeeping(table: str, frame: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    fills = []
    if "source" in frame.columns:
        fills.append(pl.col("source").fill_null(SOURCE))
    if "ingested_at" in frame.columns:
        fills.append(pl.col("ingested_at").fill_null(pl.lit(now, pl.Datetime("us", "UTC"))))
    return frame.with_columns(fills) if fills else frame


def _contested_meter_records(meter: pl.DataFrame) -> set[int]:
    """Records offering a meter row whose key another record offers with other content."""
    if meter.height == 0:
        return set()
    content = meter.with_columns(_content=pl.struct(METER_COLUMNS).hash())
    contested = (
        content.group_by("charger_id", "ts_utc")
        .agg(pl.col("_content").n_unique().alias("versions"))
        .filter(pl.col("versions") > 1)
    )
    if contested.height == 0:
        return set()
    return set(content.join(contested, on=["charger_id", "ts_utc"])[RECORD_COLUMN].to_list())


def _contested_records(records: Mapping[int, ParsedRecord]) -> set[int]:
    """Records whose non-meter row key another record offers with other content."""
    seen: dict[tuple, dict[str, Any]] = {}
    clashing: set[tuple] = set()
    for record in records.values():
        for row in record.rows:
            if row.table == "meter_values":
                continue
            key = (row.table, row.key)
            if key in seen and seen[key] != row.values:
                clashing.add(key)
            seen.setdefault(key, row.values)
    return {
        index for index, record in records.items()
        if any((row.table, row.key) in clashing for row in record.rows)
    }


class _BatchLoader:
    """Admit batches of spool lines, in as many phases as key collisions require."""

    def __init__(
        self, run: IngestRun, directory: ChargerDirectory, report: OcppLoadReport, *, fast_path: bool
    ):
        self.run = run
        self.con = run.con
        self.directory = directory
        self.report = report
        self.fast_path = fast_path
        self.meters = StoredMeterContext(self.con)
        self.seen_charge_points: set[str] = set()

    def load(self, block: LineBlock, bulk_read: tuple[pl.DataFrame, list[int]] | None = None) -> RunCounts:
        """Admit one block; ``bulk_read`` is its :func:`read_meter_values_sql`, when read ahead."""
        raw = RawLines(block)
        if self.fast_path:
            fast, slow_indices = bulk_read or read_meter_values_sql(self.con, block)
        else:
            fast, slow_indices = None, list(range(len(raw)))
        parsed: dict[int, ParsedRecord] = {}
        for index in slow_indices:
            # A line that is not clean text is quarantined as such, never parsed further.
            unreadable = readable_text(block.line(index))
            if unreadable is not None:
                parsed[index] = ParsedRecord("?", rejection=unreadable)
            else:
                parsed[index] = parse_spool_record(raw[index], self.directory)
            self.report.actions[parsed[index].action] += 1
        if fast is not None:
            if len(raw) > len(slow_indices):
                self.report.actions["MeterValues"] += len(raw) - len(slow_indices)
            fast = self._with_charger_ids(fast)
        side_rows = self._new_charger_rows(fast, parsed)

        slow_meter = self._slow_meter_rows(parsed)
        all_meter = slow_meter
        if fast is not None and fast.height:
            all_meter = pl.concat([fast.drop("charge_point_id"), slow_meter])
        contested = _contested_meter_records(all_meter) | _contested_records(parsed)
        if fast is not None and contested:
            # A fast record in a collision joins the per-record path, which orders it.
            moved = contested & set(fast[RECORD_COLUMN].to_list())
            for index in moved:
                parsed[index] = parse_spool_record(raw[index], self.directory)
            fast = fast.filter(~pl.col(RECORD_COLUMN).is_in(list(moved)))

        counts = RunCounts()
        later = sorted(contested)
        first_phase = {i: r for i, r in parsed.items() if i not in contested}
        if later:
            # Contested records go through the ordered split; its first phase joins this one.
            phase, later = _split_phase(later, parsed)
            first_phase.update({i: parsed[i] for i in phase})
        if not later:
            counts += self._admit_phase(raw, first_phase, fast, side_rows)
        else:
            # The door counts every raw record it is given: hand it only this phase's.
            deferred = set(later)
            kept = [i for i in range(len(raw)) if i not in deferred]
            position = {index: n for n, index in enumerate(kept)}
            if fast is not None and fast.height:
                fast = fast.with_columns(
                    pl.col(RECORD_COLUMN).replace_strict(position, return_dtype=pl.Int64)
                )
            counts += self._admit_phase(
                raw.subset(kept),
                {position[i]: record for i, record in first_phase.items()},
                fast,
                [(position[i], values) for i, values in side_rows if i in position],
            )
        while later:
            phase, later = _split_phase(later, parsed)
            subset = {position: parsed[i] for position, i in enumerate(phase)}
            counts += self._admit_phase(raw.subset(phase), subset, None, [])
        return counts

    def _with_charger_ids(self, fast: pl.DataFrame) -> pl.DataFrame:
        charge_points = fast["charge_point_id"].unique().to_list()
        known = self.directory.resolve_many(charge_points)
        mapping = pl.DataFrame(
            {"charge_point_id": charge_points, "charger_id": [known[cp].charger_id for cp in charge_points]},
            schema={"charge_point_id": pl.String, "charger_id": pl.String},
        )
        return fast.join(mapping, on="charge_point_id", how="left", maintain_order="left").select(
            pl.col(RECORD_COLUMN).cast(pl.Int64), "charger_id", "ts_utc", *METER_COLUMNS, "charge_point_id",
        )

    def _new_charger_rows(
        self, fast: pl.DataFrame | None, parsed: Mapping[int, ParsedRecord]
    ) -> list[tuple[int, dict[str, Any]]]:
        """A ``chargers`` row for each charge point the store has never seen, on its first record.

        Skipped when the batch brings that charge point's BootNotification, which says more.
        """
        first: dict[str, int] = {}
        booted: set[str] = set()
        for index, record in parsed.items():
            cp = record.charge_point_id
            if record.rejection is not None or record.action.startswith("(") or cp is None:
                continue
            first[cp] = min(first.get(cp, index), index)
            if any(row.table == "chargers" for row in record.rows):
                booted.add(cp)
        if fast is not None and fast.height:
            for cp, index in fast.group_by("charge_point_id").agg(pl.col(RECORD_COLUMN).min()).iter_rows():
                first[cp] = min(first.get(cp, index), index)
        side = []
        for cp, index in sorted(first.items(), key=lambda item: item[1]):
            if cp in self.seen_charge_points:
                continue
            self.seen_charge_points.add(cp)
            info = self.directory.resolve(cp)
            if info.stored_row is None and cp not in booted:
                side.append((index, {"charger_id": info.charger_id, "device_id": cp}))
        return side

    @staticmethod
    def _slow_meter_rows(parsed: Mapping[int, ParsedRecord]) -> pl.DataFrame:
        rows = [
            {**row.values, RECORD_COLUMN: index}
            for index, record in parsed.items() if record.rejection is None
            for row in record.rows if row.table == "meter_values"
        ]
        return _meter_frame(rows)

    def _admit_phase(
        self,
        raw: RawLines,
        records: Mapping[int, ParsedRecord],
        fast: pl.DataFrame | None,
        side_rows: list[tuple[int, dict[str, Any]]],
    ) -> RunCounts:
        now = dt.datetime.now(dt.UTC)
        self.report.phases += 1
        rejections: dict[int, Rejection] = {
            position: Rejection(position, record.rejection_table, record.rejection)
            for position, record in records.items() if record.rejection is not None
        }

        # Sessions, chargers and states merge row by row (few); meter values as frames.
        session_keys = [
            row.key for position, record in records.items() if position not in rejections
            for row in record.rows if row.table == "sessions"
        ]
        stored_sessions = _fetch_stored_sessions(self.con, session_keys)
        table_rows: dict[str, list[dict[str, Any]]] = {t: [] for t in ("chargers", "sessions", "charger_states")}
        for position, record in records.items():
            if position in rejections:
                continue
            try:
                for table, values in self._merge_record(record, stored_sessions):
                    table_rows[table].append({**values, RECORD_COLUMN: position})
            except RecordError as exc:
                table = "sessions" if record.action.endswith("Transaction") else "meter_values"
                rejections[position] = Rejection(position, table, f"{record.action}: {exc}")
        for position, values in side_rows:
            merged = self._merge_charger(PartialRow("chargers", (values["charger_id"],), values))
            if merged is not None:
                table_rows["chargers"].append({**merged, RECORD_COLUMN: position})

        meter = self._slow_meter_rows({p: r for p, r in records.items() if p not in rejections})
        if fast is not None and fast.height:
            meter = pl.concat([fast.drop("charge_point_id"), meter]) if meter.height else fast.drop("charge_point_id")
        meter, contradictions = merge_meter_frame(meter, self.meters.stored_rows(meter.select("charger_id", "ts_utc")))
        for position, reason in contradictions.items():
            rejections.setdefault(position, Rejection(position, "meter_values", reason))

        frames = {
            table: _with_bookkeeping(table, frame_for(table, rows), now)
            for table, rows in table_rows.items() if rows
        }
        if meter.height:
            frames["meter_values"] = _store_meter_frame(meter, now)
        frames = {t: frames[t] for t in _WRITE_ORDER if t in frames}

        # Records the door will refuse on schema grounds take no part in the register check.
        # Bulk-read rows passed the contract in SQL already (merging only fills their empty
        # columns from stored rows, which passed it too): only the others are checked here.
        door_refuses = set()
        checked = fast[RECORD_COLUMN] if fast is not None and _COLUMN_CHECKS_ONLY else None
        for table, frame in frames.items():
            if table == "meter_values" and checked is not None:
                frame = frame.filter(~pl.col(RECORD_COLUMN).is_in(checked.implode()))
            door_refuses |= {int(frame[RECORD_COLUMN][i]) for i in _failed_rows(table, frame)}
        for position, reason in self._register_rejections(meter, set(rejections) | door_refuses).items():
            rejections.setdefault(position, Rejection(position, "meter_values", reason))

        counts = self.run.admit(raw, frames, list(rejections.values()), record_table="meter_values")
        refused = set(rejections) | door_refuses
        for table, frame in frames.items():
            self.report.rows_offered[table] += frame.height
        if "meter_values" in frames:
            self.meters.remember(frames["meter_values"].filter(~pl.col(RECORD_COLUMN).is_in(list(refused))))
        for row in table_rows["chargers"]:
            if row[RECORD_COLUMN] not in refused:
                self.directory.stored(row["device_id"], {k: v for k, v in row.items() if k != RECORD_COLUMN})
        return counts

    def _register_rejections(self, meter: pl.DataFrame, refused: set[int]) -> dict[int, str]:
        register = pl.col("energy_register_kwh")
        latest = latest_plausible()
        candidates = meter.filter(
            ~pl.col(RECORD_COLUMN).is_in(list(refused))
            & register.is_not_null() & register.is_finite()
            & (register >= 0) & (register <= MAX_REGISTER_KWH)
            & pl.col("ts_utc").is_between(EARLIEST_PLAUSIBLE_UTC, latest)
        ).select(RECORD_COLUMN, "charger_id", "ts_utc", value=register)
        if candidates.height == 0:
            return {}
        stored = self.meters.stored_registers(candidates)
        flagged = chargers_with_register_violations(candidates, stored)
        if not flagged:
            return {}
        exact_stored: dict[str, list[tuple[dt.datetime, float]]] = collections.defaultdict(list)
        for charger_id, ts, value in stored.filter(pl.col("charger_id").is_in(list(flagged))).iter_rows():
            exact_stored[charger_id].append((ts, value))
        for history in exact_stored.values():
            history.sort()
        offered = [
            (record, charger_id, ts, value)
            for record, charger_id, ts, value in candidates.filter(
                pl.col("charger_id").is_in(list(flagged))
            ).iter_rows()
        ]
        return register_rejections(offered, exact_stored)

    def _merge_record(
        self, record: ParsedRecord, stored_sessions: Mapping[tuple, dict[str, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for row in record.rows:
            if row.table == "chargers":
                merged = self._merge_charger(row)
                if merged is not None:
                    out.append(("chargers", merged))
            elif row.table == "charger_states":
                out.append(("charger_states", dict(row.values)))
            elif row.table == "sessions":
                held = stored_sessions.get(row.key)
                if record.needs_session and held is None:
                    raise RecordError(
                        f"no StartTransaction for transaction {row.values['session_id']} was loaded"
                    )
                values, conflicts = merge_row(held, row.values)
                if conflicts:
                    pairs = [(c, held[c], row.values[c]) for c in conflicts]
                    raise RecordError(contradiction_reason("sessions", row.key[0], pairs))
                _finish_session(values)
                if values.get("energy_kwh") is not None and values["energy_kwh"] < 0:
                    raise RecordError(
                        f"meterStop {values['meter_stop_kwh']:g} kWh is below meterStart "
                        f"{values['meter_start_kwh']:g} kWh"
                    )
                out.append(("sessions", values))
        return out

    def _merge_charger(self, row: PartialRow) -> dict[str, Any] | None:
        device_id = row.values["device_id"]
        info = self.directory.resolve(device_id)
        held = info.stored_row
        if held is not None and held.get("source") != SOURCE:
            return None  # another source owns this charger's row
        merged = {k: v for k, v in (held or {}).items() if k not in ("source", "ingested_at")}
        merged.update({k: v for k, v in row.values.items() if v is not None})
        if held is not None and all(same_value(held.get(k), v) for k, v in merged.items()):
            return None
        return merged


def _split_phase(pending: list[int], parsed: Mapping[int, ParsedRecord]) -> tuple[list[int], list[int]]:
    """Take records in order until one collides (same key, other content) with an earlier one."""
    phase, deferred = [], []
    touched: dict[tuple, dict[str, Any]] = {}
    blocked: set[tuple] = set()
    for index in pending:
        rows = parsed[index].rows
        keys = [(row.table, row.key) for row in rows]
        clash = any(k in blocked for k in keys) or any(
            k in touched and touched[k] != row.values for k, row in zip(keys, rows, strict=True)
        )
        if clash:
            deferred.append(index)
            blocked.update(keys)
            continue
        phase.append(index)
        for key, row in zip(keys, rows, strict=True):
            touched.setdefault(key, row.values)
    return phase, deferred


def _fetch_stored_sessions(con: duckdb.DuckDBPyConnection, keys: Iterable[tuple]) -> dict[tuple, dict[str, Any]]:
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    frame = pl.DataFrame({"session_id": [k[0] for k in keys]}, schema={"session_id": pl.String})
    con.register("_ocpp_sessions", frame.to_arrow())
    try:
        result = con.execute("SELECT s.* FROM sessions s JOIN _ocpp_sessions k USING (session_id)")
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    finally:
        con.unregister("_ocpp_sessions")
    return {(row[columns.index("session_id")],): dict(zip(columns, row, strict=True)) for row in rows}


def _finish_session(row: dict[str, Any]) -> None:
    start, stop = row.get("meter_start_kwh"), row.get("meter_stop_kwh")
    if start is not None and stop is not None:
        # Both registers are whole Wh: round away float noise, keep every Wh.
        row["energy_kwh"] = round(stop - start, 3)


def _read_progress(con: duckdb.DuckDBPyConnection, spool_id: str) -> dict[int, tuple[int, int, bool]]:
    rows = con.execute(
        "SELECT segment, offset_bytes, lines_loaded, done FROM ocpp_spool_progress WHERE spool_id = ?",
        [spool_id],
    ).fetchall()
    return {int(s): (int(o), int(n), bool(d)) for s, o, n, d in rows}


def _save_progress(
    con: duckdb.DuckDBPyConnection, spool_id: str, segment: int, offset: int, lines: int, done: bool
) -> None:
    con.execute(
        "INSERT INTO ocpp_spool_progress VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (spool_id, segment) DO UPDATE SET offset_bytes = EXCLUDED.offset_bytes,"
        " lines_loaded = EXCLUDED.lines_loaded, done = EXCLUDED.done, updated_at = EXCLUDED.updated_at",
        [spool_id, segment, offset, lines, done, dt.datetime.now(dt.UTC)],
    ).fetchall()


def load_spool(
    con: duckdb.DuckDBPyConnection,
    spool_dir: str | Path,
    *,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    fast_path: bool = True,
    on_batch: Callable[[OcppLoadReport], None] | None = None,
) -> OcppLoadReport:
    """Load every complete spool line not loaded before into the store.

    When sessions were written, their copies of cloud or portal sessions are then linked to
    the canonical session (:func:`zapanalytics.store.canonical.resolve_session_copies`).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store (:func:`zapanalytics.store.open_store`).
    spool_dir : str or Path
        The spool written by ``zapanalytics ocpp serve``.
    batch_bytes : int
        Spool bytes per batch (one ``admit`` per phase of a batch) [bytes].
    fast_path : bool, default True
        Read plain MeterValues lines in bulk, in DuckDB SQL (:mod:`~zapanalytics.ingest.ocpp.bulk`);
        False reads every line one by one (same result, slower; kept for comparison).
    on_batch : callable, optional
        Called with the running report after each batch (progress display).

    Returns
    -------
    OcppLoadReport
        Counts (records in = stored + quarantined), rows per table, actions seen and the
        bytes of an incomplete last line left for the next run.
    """
    spool_dir = Path(spool_dir)
    spool_id = str(read_meta(spool_dir)["spool_id"])
    report = OcppLoadReport(spool_id)
    progress = _read_progress(con, spool_id)
    directory = ChargerDirectory(con)
    # The next block is read (bulk path: in DuckDB, on a connection of its own) while this
    # one is stored: reading needs nothing the store holds.
    reader = duckdb.connect() if fast_path else None
    work = (lambda block: read_meter_values_sql(reader, block)) if reader is not None else None
    blocks = contextlib.closing(blocks_ahead(segment_blocks(spool_dir, progress, batch_bytes), work))
    try:
        with IngestRun(con, SOURCE) as run, blocks as ahead:
            loader = _BatchLoader(run, directory, report, fast_path=fast_path)
            lines_loaded = 0
            for item in ahead:
                chunk = item.block
                if item.first:
                    report.segments_read += 1
                    lines_loaded = progress.get(item.segment, (0, 0, False))[1]
                finished = chunk.sealed and chunk.at_end
                if len(chunk):
                    report.counts += loader.load(chunk, item.ahead)
                    report.lines_read += len(chunk)
                    report.batches += 1
                    lines_loaded += len(chunk)
                if len(chunk) or finished:
                    _save_progress(con, spool_id, item.segment, chunk.end_offset, lines_loaded, finished)
                if len(chunk) and on_batch is not None:
                    on_batch(report)
                if chunk.at_end:
                    report.pending_tail_bytes += chunk.torn_tail_bytes
    finally:
        if reader is not None:
            reader.close()
    if report.rows_offered["sessions"]:
        # A transaction the cloud also lists is a copy of the cloud's session: link it now,
        # so no reader ever counts the charging twice.
        from zapanalytics.store.canonical import resolve_session_copies

        resolve_session_copies(con)
    return report
