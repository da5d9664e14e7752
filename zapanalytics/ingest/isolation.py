"""Per-file isolation: a file that cannot be read costs itself, never the run.

A reader that meets a file it cannot read (missing, a directory, past a limit, not the
encoding or format it must be) quarantines it whole as one source record, naming the file
and the reason, and goes on with the other files. The run then ends ``partial`` instead of
``ok``: something was given that nothing was learnt from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import duckdb

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts
from zapanalytics.ingest.limits import (
    ENV_NAMES,
    InputFileError,
    InputLimits,
    check_file,
    file_record,
    iter_lines,
    read_document,
)

#: ``ingest_runs.status`` of a run that completed with at least one file quarantined whole.
PARTIAL = "partial"


def quarantine_file(
    run: IngestRun, path: str | Path, reason: str, *, record_table: str, limits: InputLimits
) -> RunCounts:
    """Quarantine ``path`` whole as one record (its first bytes, size, sha256) with ``reason``.

    ``reason`` should name the file; it is prefixed with the file name when it does not, and
    a leading full path is shortened to the name (``source_file`` keeps the path).
    """
    name = Path(path).name
    if reason.startswith(str(path)):
        reason = name + reason[len(str(path)):]  # the row names the full path in source_file
    elif name not in reason:
        reason = f"{name}: {reason}"
    raw = file_record(path, limits)
    return run.admit([raw], {}, [Rejection(0, record_table, reason)], record_table=record_table)


def mark_partial(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Set a finished ``ok`` run to ``partial`` (call after the run's ``with`` block)."""
    con.execute(
        "UPDATE ingest_runs SET status = ? WHERE run_id = ? AND status = 'ok'", [PARTIAL, run_id]
    )


def refuse_unreadable(paths: Iterable[str | Path], limits: InputLimits, *, whole: bool) -> None:
    """Raise :class:`InputFileError` for the first of ``paths`` that is not a readable file
    within the size limits (call before a run commits anything).

    ``whole`` applies ``max_document_bytes`` too (files parsed whole).
    """
    for path in paths:
        check_file(path, limits, whole=whole)


def read_or_quarantine(
    run: IngestRun, paths: Sequence[str | Path], *, record_table: str, limits: InputLimits
) -> tuple[list[bytes], int]:
    """The bytes of each of ``paths`` read whole; a file that cannot be (past
    ``max_document_bytes``, vanished, a folder) is quarantined whole instead.

    Returns
    -------
    tuple of (list of bytes, int)
        The documents read, in order, and how many files were quarantined.
    """
    documents, refused = [], 0
    for path in paths:
        try:
            documents.append(read_document(path, limits))
        except InputFileError as exc:
            quarantine_file(run, path, str(exc), record_table=record_table, limits=limits)
            refused += 1
    return documents, refused


def lines_or_quarantine(
    run: IngestRun, handle: BinaryIO, path: str | Path, *, record_table: str, limits: InputLimits
) -> Iterator[bytes]:
    """The lines of a JSON-lines or text stream, each within ``max_line_bytes``.

    A longer line is never held: it is quarantined at once as one record (its prefix, size
    and sha256; the full bytes stay in ``path``) and the stream goes on.
    """
    name = Path(path).name
    for line in iter_lines(handle, str(path), limits):
        if line.data is not None:
            yield line.data
            continue
        reason = (
            f"{name}:{line.number}: line of {line.raw.size_bytes:,} bytes, over the limit of"
            f" {limits.max_line_bytes:,} bytes per line ({ENV_NAMES['max_line_bytes']})"
        )
        run.admit([line.raw], {}, [Rejection(0, record_table, reason)], record_table=record_table)
