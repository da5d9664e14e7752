"""The door every ingestion passes through: validate, quarantine, upsert, count.

A *source record* is one unit of raw input (a charge-history item, an OCPP frame, a HAN
frame, a price row). A parser turns each record into rows for one or more store tables and
tags every row with the record's index in a ``_record`` column. :meth:`IngestRun.admit`
then validates all rows against :data:`zapanalytics.schemas.TABLE_SCHEMAS`; a record any of
whose rows fails (or that the parser could not read) goes to ``quarantine`` whole, with the
reasons and its raw payload, so no table ever holds half a record. Everything else is
upserted in one transaction. Per run: rows in = rows stored + rows quarantined.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import duckdb

import zapanalytics.pandera_guard  # noqa: F401  # before pandera: see the module

# isort: split
import pandera.errors
import polars as pl

from zapanalytics.contract_sql import any_failure_sql, contract_checks
from zapanalytics.schemas import TABLE_SCHEMAS, polars_schema
from zapanalytics.store import primary_key, upsert

RECORD_COLUMN = "_record"
#: Columns set by the user, not reported by sources: a source's NULL never erases them.
KEEP_WHEN_NULL = {"installations": ("price_area",)}
#: Reasons longer than this are cut: quarantine rows stay readable.
_MAX_REASON_CHARS = 2000
#: Raw payloads keep this prefix [characters]; size and sha256 describe the whole record.
_MAX_RAW_CHARS = 65_536


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """A source record that was rejected before or during validation."""

    record: int
    table: str
    reason: str


@dataclasses.dataclass(slots=True)
class RunCounts:
    """Counts of source records for a run or a batch."""

    rows_in: int = 0
    rows_stored: int = 0
    rows_quarantined: int = 0

    def __iadd__(self, other: RunCounts) -> RunCounts:
        self.rows_in += other.rows_in
        self.rows_stored += other.rows_stored
        self.rows_quarantined += other.rows_quarantined
        return self

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def frame_for(table: str, rows: Sequence[Mapping[str, object]]) -> pl.DataFrame:
    """Build a frame with the store's dtypes for ``table`` from row dicts.

    Each row must carry a ``_record`` index; missing contract columns become null.
    """
    schema = {**polars_schema(table), RECORD_COLUMN: pl.Int64}
    return pl.DataFrame(list(rows), schema=schema)


def _storable_raw(raw: str) -> str:
    """``raw`` as valid UTF-8 text: an unpaired surrogate (from a ``\\udc80`` JSON escape or a
    ``surrogateescape`` decode of a non-UTF-8 byte) is kept as its backslash escape."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return raw.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw


def _raw_columns(payloads: Sequence[str]) -> dict[str, pl.Series]:
    """Quarantine columns of raw payloads: a bounded prefix, the size and sha256 of the whole.

    A reader that streamed a record too large to hold passes its prefix as a ``str`` carrying
    ``size_bytes``, ``sha256`` and ``source_file`` (:class:`zapanalytics.ingest.limits.RawPrefix`);
    the full bytes then stay in that file.
    """
    columns: dict[str, list] = {
        "raw": [], "raw_sha256": [], "raw_size_bytes": [], "raw_truncated": [], "source_file": []
    }
    for payload in payloads:
        size = getattr(payload, "size_bytes", None)
        if size is None:
            size = len(payload.encode("utf-8", "surrogatepass"))
        digest = getattr(payload, "sha256", None) or hashlib.sha256(
            payload.encode("utf-8", "surrogatepass")
        ).hexdigest()
        kept = _storable_raw(payload[:_MAX_RAW_CHARS])
        columns["raw"].append(kept)
        columns["raw_sha256"].append(digest)
        columns["raw_size_bytes"].append(size)
        columns["raw_truncated"].append(
            len(payload) > _MAX_RAW_CHARS or bool(getattr(payload, "truncated", False))
        )
        columns["source_file"].append(getattr(payload, "source_file", None))
    dtypes = {"raw_size_bytes": pl.Int64, "raw_truncated": pl.Boolean}
    return {name: pl.Series(name, values, dtype=dtypes.get(name, pl.String))
            for name, values in columns.items()}


_checker = threading.local()


def _check_connection() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB for contract checks (never the store)."""
    con = getattr(_checker, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        _checker.con = con
    return con


def _check_dtypes(table: str, frame: pl.DataFrame) -> None:
    """A missing contract column or another dtype is a parser bug, not bad data: fail loudly."""
    wrong = [
        f"{column}: expected {dtype}, got {frame.schema.get(column, 'no column')}"
        for column, dtype in polars_schema(table).items()
        if frame.schema.get(column) != dtype
    ]
    if wrong:
        raise TypeError(f"frame for {table!r} does not match the store contract: {'; '.join(wrong)}")


def _failed_rows(table: str, frame: pl.DataFrame) -> dict[int, list[str]]:
    """Row positions of ``frame`` that fail the store contract, with pandera's reasons.

    DuckDB finds the failing rows with the SQL the contract's pandera schema generates
    (:mod:`zapanalytics.contract_sql`, held equal to pandera by the tests); pandera then
    validates those rows alone and writes the reasons. A clean frame, the usual case, costs
    one vectorised query instead of a pandera run.
    """
    if table not in TABLE_SCHEMAS:
        return {}
    _check_dtypes(table, frame)
    if frame.height == 0:
        return {}
    con = _check_connection()
    view = f"_contract_{uuid.uuid4().hex}"
    columns = list(polars_schema(table))
    con.register(view, frame.select(columns).with_row_index("_position").to_arrow())
    try:
        failing = con.execute(
            f"SELECT _position FROM {view} AS t"  # noqa: S608
            f" WHERE {any_failure_sql(contract_checks(table, alias='t'))} ORDER BY _position"
        ).fetchall()
    finally:
        con.unregister(view)
    positions = [row[0] for row in failing]
    if not positions:
        return {}
    explained = _pandera_failed_rows(table, frame[positions])
    return {positions[local]: reasons for local, reasons in explained.items()}


def _pandera_failed_rows(table: str, frame: pl.DataFrame) -> dict[int, list[str]]:
    """Validate ``frame`` (without ``_record``) with pandera: failing row positions with reasons."""
    model = TABLE_SCHEMAS.get(table)
    if model is None:
        return {}
    try:
        model.validate(frame.drop(RECORD_COLUMN), lazy=True)
    except pandera.errors.SchemaErrors as exc:
        failures: dict[int, list[str]] = defaultdict(list)
        cases = exc.failure_cases
        whole_column = cases.filter(pl.col("index").is_null())
        if whole_column.height:
            # A dtype or missing-column failure is a parser bug, not bad data: fail loudly.
            details = "; ".join(
                f"{r['column']}: {r['check']}" for r in whole_column.iter_rows(named=True)
            )
            raise TypeError(f"frame for {table!r} does not match the store contract: {details}") from exc
        for row in cases.iter_rows(named=True):
            if row["schema_context"] == "Column":
                message = f"{table}.{row['column']}: failed {row['check']} (value {row['failure_case']!s:.80})"
            else:
                message = f"{table}: failed {row['check']}"
            failures[row["index"]].append(message)
        return failures
    return {}


def _conflicting_duplicates(table: str, frame: pl.DataFrame, key: Sequence[str]) -> pl.DataFrame:
    """Rows whose key repeats inside the batch with different content (all but the first)."""
    content = [c for c in frame.columns if c not in (RECORD_COLUMN, "ingested_at")]
    distinct = frame.unique(subset=content, keep="first", maintain_order=True)
    repeated = distinct.filter(pl.struct(list(key)).is_duplicated())
    if repeated.height == 0:
        return repeated
    first = repeated.unique(subset=list(key), keep="first", maintain_order=True)
    return repeated.join(first.select(RECORD_COLUMN), on=RECORD_COLUMN, how="anti")


def mark_aborted_runs(
    con: duckdb.DuckDBPyConnection, *, found_by: str, alive: Iterable[str] = ()
) -> list[str]:
    """Mark ``running`` runs not in ``alive`` as ``aborted``; return their ids.

    Call it only while holding the store's writer lock: then no other process can be
    running an ingestion, and a ``running`` row is a run whose process ended without
    finishing it. ``finished_at`` is left empty (when it died is unknown).
    """
    rows = con.execute(
        "SELECT run_id FROM ingest_runs WHERE status = 'running'"
        " AND NOT list_contains(?::VARCHAR[], run_id) ORDER BY started_at",
        [sorted(alive)],
    ).fetchall()
    stale = [row[0] for row in rows]
    if stale:
        con.execute(
            "UPDATE ingest_runs SET status = 'aborted', error = ? WHERE list_contains(?::VARCHAR[], run_id)",
            [
                f"aborted: its process ended before the run finished (found by run {found_by})",
                stale,
            ],
        )
    return stale


class IngestRun:
    """One ingestion run: a row in ``ingest_runs`` plus the batches admitted under it.

    Use as a context manager; the run is marked ``ok`` or ``failed`` (with the error) on exit.

    A run whose process died (SIGKILL, power loss) cannot mark itself and stays ``running``.
    The store has one writer, so a ``running`` row that no live run of this process owns
    belongs to a dead process: entering a run marks every such row ``aborted``
    (:attr:`aborted_runs` lists them).
    """

    #: Runs open in this process (nested or concurrent runs on one connection are alive).
    _open_runs: set[str] = set()

    def __init__(self, con: duckdb.DuckDBPyConnection, source: str):
        self.con = con
        self.source = source
        self.run_id = uuid.uuid4().hex
        self.started_at = dt.datetime.now(dt.UTC)
        self.counts = RunCounts()
        self.aborted_runs: list[str] = []

    def __enter__(self) -> IngestRun:
        self.aborted_runs = mark_aborted_runs(
            self.con, found_by=self.run_id, alive=IngestRun._open_runs
        )
        self.con.execute(
            "INSERT INTO ingest_runs (run_id, source, started_at, status) VALUES (?, ?, ?, 'running')",
            [self.run_id, self.source, self.started_at],
        )
        IngestRun._open_runs.add(self.run_id)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        IngestRun._open_runs.discard(self.run_id)
        status = "ok" if exc is None else "failed"
        error = None if exc is None else f"{type(exc).__name__}: {exc}"[:_MAX_REASON_CHARS]
        self.con.execute(
            "UPDATE ingest_runs SET finished_at = ?, rows_in = ?, rows_stored = ?,"
            " rows_quarantined = ?, status = ?, error = ? WHERE run_id = ?",
            [
                dt.datetime.now(dt.UTC),
                self.counts.rows_in,
                self.counts.rows_stored,
                self.counts.rows_quarantined,
                status,
                error,
                self.run_id,
            ],
        )

    def admit(
        self,
        raw: Sequence[str],
        tables: Mapping[str, pl.DataFrame],
        rejected: Iterable[Rejection] = (),
        *,
        record_table: str,
    ) -> RunCounts:
        """Validate and store one batch of source records.

        Parameters
        ----------
        raw : sequence of str
            The raw payload of each source record, as received.
        tables : mapping of str to polars.DataFrame
            Rows per store table, in write order, each with a ``_record`` column indexing ``raw``.
        rejected : iterable of Rejection
            Records the parser could not read.
        record_table : str
            The table a source record primarily feeds (named in quarantine for parse failures).

        Returns
        -------
        RunCounts
            ``rows_in = len(raw) = rows_stored + rows_quarantined`` for this batch.
        """
        reasons: dict[int, list[str]] = defaultdict(list)
        first_table: dict[int, str] = {}
        for item in rejected:
            reasons[item.record].append(item.reason)
            first_table.setdefault(item.record, item.table)

        now = dt.datetime.now(dt.UTC)
        prepared: dict[str, pl.DataFrame] = {}
        for table, frame in tables.items():
            frame = self._complete(table, frame, now)
            for position, messages in _failed_rows(table, frame).items():
                record = frame[RECORD_COLUMN][position]
                reasons[record].extend(messages)
                first_table.setdefault(record, table)
            prepared[table] = frame

        keys = {table: primary_key(self.con, table) for table in prepared}
        bad = set(reasons)
        for table, frame in prepared.items():
            clean = frame.filter(~pl.col(RECORD_COLUMN).is_in(list(bad)))
            for row in _conflicting_duplicates(table, clean, keys[table]).iter_rows(named=True):
                key_text = ", ".join(f"{k}={row[k]}" for k in keys[table])
                record = row[RECORD_COLUMN]
                reasons[record].append(
                    f"{table}: duplicate key ({key_text}) in the same batch with different content"
                )
                first_table.setdefault(record, table)
        bad = set(reasons)

        quarantine = pl.DataFrame(
            {
                "run_id": [self.run_id] * len(bad),
                "source": [self.source] * len(bad),
                "table_name": [first_table[r] for r in sorted(bad)],
                "reason": [
                    "; ".join(dict.fromkeys(reasons[r]))[:_MAX_REASON_CHARS] for r in sorted(bad)
                ],
                **_raw_columns([raw[r] for r in sorted(bad)]),
                "quarantined_at": [now] * len(bad),
            },
            schema_overrides={"quarantined_at": pl.Datetime("us", "UTC")},
        )

        self.con.execute("BEGIN TRANSACTION")
        try:
            for table, frame in prepared.items():
                good = frame.filter(~pl.col(RECORD_COLUMN).is_in(list(bad)))
                good = good.unique(subset=list(keys[table]), keep="first", maintain_order=True)
                upsert(
                    self.con,
                    table,
                    good.drop(RECORD_COLUMN),
                    in_transaction=True,
                    keep_when_null=KEEP_WHEN_NULL.get(table, ()),
                )
            if quarantine.height:
                upsert(
                    self.con, "quarantine", quarantine, in_transaction=True, on_conflict="ignore"
                )
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

        batch = RunCounts(len(raw), len(raw) - len(bad), len(bad))
        self.counts += batch
        return batch

    def add_counts(self, batch: RunCounts) -> None:
        """Count records a bulk loader validated and stored itself, in SQL, under this run."""
        if batch.rows_in != batch.rows_stored + batch.rows_quarantined:
            raise ValueError(f"counts do not add up: {batch}")
        self.counts += batch

    def _complete(self, table: str, frame: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
        """Fill bookkeeping columns and order columns as the contract declares them."""
        expected = polars_schema(table)
        additions = []
        fills = {
            "source": pl.lit(self.source, pl.String),
            "ingested_at": pl.lit(now, pl.Datetime("us", "UTC")),
        }
        for column, value in fills.items():
            if column not in expected:
                continue
            if column in frame.columns:
                additions.append(pl.col(column).fill_null(value))
            else:
                additions.append(value.alias(column))
        if additions:
            frame = frame.with_columns(additions)
        if RECORD_COLUMN not in frame.columns:
            raise KeyError(f"rows for {table!r} carry no {RECORD_COLUMN!r} column")
        return frame
