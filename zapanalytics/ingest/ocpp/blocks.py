"""Spool segments read in blocks of complete lines, one buffer per block.

The OCPP loader reads a segment from its checkpoint in blocks of about ``batch_bytes``
(:func:`read_block`), keeps each block as one buffer with the lines' offsets (no Python
object per line: the bulk reader hands the buffer to Arrow and DuckDB as it is), and reads
the next block while the previous one is stored (:func:`blocks_ahead`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zapanalytics.ingest.spool import list_segments, read_window


@dataclasses.dataclass(frozen=True, slots=True)
class LineBlock:
    """Complete lines read from one segment, kept as one buffer.

    Attributes
    ----------
    data : bytes
        The bytes read from ``start_offset``: every line with its newline, then possibly
        the start of an incomplete line (not part of the block).
    starts : numpy.ndarray
        Where each line begins in ``data``; line ``i`` ends at ``starts[i + 1] - 1``
        (``starts`` has one more entry than there are lines) [bytes].
    start_offset, end_offset, sealed, at_end, torn_tail_bytes
        As :class:`zapanalytics.ingest.spool.LineChunk`.
    """

    data: bytes
    starts: np.ndarray
    start_offset: int
    end_offset: int
    sealed: bool
    at_end: bool
    torn_tail_bytes: int

    def __len__(self) -> int:
        return len(self.starts) - 1

    def line(self, index: int) -> bytes:
        """Line ``index`` without its newline."""
        return self.data[int(self.starts[index]) : int(self.starts[index + 1]) - 1]


def block_of_lines(lines: Sequence[bytes]) -> LineBlock:
    """A :class:`LineBlock` holding ``lines`` (tests and callers that have lines in hand)."""
    data = b"".join(line + b"\n" for line in lines)
    starts = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum([len(line) + 1 for line in lines], out=starts[1:])
    return LineBlock(data, starts, 0, len(data), True, True, 0)


def read_block(directory: str | Path, index: int, offset: int = 0, *, max_bytes: int) -> LineBlock:
    """Read complete lines of segment ``index`` from byte ``offset``, as one buffer.

    The same contract as :func:`zapanalytics.ingest.spool.read_lines` (only lines ending in
    a newline; about ``max_bytes`` at most, one longer line whole; :class:`SpoolError` for a
    line beyond :data:`~zapanalytics.ingest.spool.MAX_LINE_BYTES`), without splitting the
    buffer into a Python object per line.
    """
    data, cut, sealed, reached_eof = read_window(directory, index, offset, max_bytes)
    if cut < 0:
        return LineBlock(b"", np.zeros(1, dtype=np.int64), offset, offset, sealed, True, len(data))
    # ``data`` is kept whole (slicing bytes copies them); the torn tail lies past ``starts[-1]``.
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8)[: cut + 1] == 10)
    starts = np.empty(len(newlines) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = newlines + 1
    tail = len(data) - cut - 1
    return LineBlock(data, starts, offset, offset + cut + 1, sealed, reached_eof, tail if reached_eof else 0)


def non_ascii_lines(block: LineBlock) -> list[int]:
    """Lines with bytes beyond ASCII: not what the server writes, maybe not even UTF-8.

    They are kept from the bulk reader (Arrow and DuckDB need valid UTF-8 text) and left to
    the per-record reader. Checked on the whole buffer first: a clean batch costs one scan.
    """
    if block.data.isascii():
        return []
    return [i for i in range(len(block)) if not block.line(i).isascii()]


def readable_text(line: bytes) -> str | None:
    """Why a spool line is not clean Unicode text, or None when it is.

    A spool line is ASCII JSON by contract. A line with other bytes, or whose JSON escapes
    spell lone surrogates, is kept (escaped) for the quarantine and never parsed further:
    such text cannot be stored.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "spool line is not valid UTF-8 text"
    if "\\ud" in text.lower() and _has_lone_surrogate(text):
        return "spool line holds text that is not valid Unicode (a lone surrogate)"
    return None


def _has_lone_surrogate(text: str) -> bool:
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return False
    try:
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
        for value in (decoded.get("message"), decoded.get("reply")) if isinstance(decoded, dict) else ():
            if isinstance(value, str):
                json.dumps(json.loads(value), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False
    return False


class RawLines(Sequence[str]):
    """The lines of a block as text, decoded only when read (the door reads the refused ones).

    A line that is not UTF-8 reads with backslash escapes, as the quarantine keeps it.
    """

    def __init__(self, block: LineBlock, keep: Sequence[int] | None = None):
        self.block = block
        self.keep = keep

    def __len__(self) -> int:
        return len(self.block) if self.keep is None else len(self.keep)

    def __getitem__(self, position):  # type: ignore[override]
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        index = position if self.keep is None else self.keep[position]
        line = self.block.line(index)
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            return line.decode("utf-8", "backslashreplace")

    def subset(self, positions: Sequence[int]) -> RawLines:
        """The lines at ``positions`` (indices into this sequence), in that order."""
        base = range(len(self.block)) if self.keep is None else self.keep
        return RawLines(self.block, [base[p] for p in positions])




@dataclasses.dataclass(frozen=True, slots=True)
class SegmentBlock:
    """A block of a segment, with what was read ahead from it."""

    segment: int
    first: bool
    block: LineBlock
    ahead: Any = None


def segment_blocks(
    directory: Path, progress: Mapping[int, tuple[int, int, bool]], batch_bytes: int
) -> Iterator[SegmentBlock]:
    """Every block not loaded before, segment by segment from each one's checkpoint.

    A segment ends with a block that is ``at_end`` (possibly empty: its checkpoint still
    records that a sealed segment is done).
    """
    for segment in list_segments(directory):
        offset, _, done = progress.get(segment.index, (0, 0, False))
        if done:
            continue
        first = True
        while True:
            block = read_block(directory, segment.index, offset, max_bytes=batch_bytes)
            yield SegmentBlock(segment.index, first, block)
            first = False
            offset = block.end_offset
            if block.at_end:
                break


#: Where a load's time goes, by stage [s]; benchmarks read it (and clear it) to say where
#: ours spends. The read-ahead thread's work overlaps the main thread's stages.
stage_seconds: collections.Counter[str] = collections.Counter()
_READ = "read blocks from the spool files"
_WORK = "read-ahead thread: DuckDB read, pivot and checks"
_WAIT = "wait for the read-ahead"
_STORE = "store the block: door, merge, register check, progress"


def _timed_work(work: Callable[[LineBlock], Any]) -> Callable[[LineBlock], Any]:
    def timed(block: LineBlock) -> Any:
        began = time.perf_counter()
        try:
            return work(block)
        finally:
            stage_seconds[_WORK] += time.perf_counter() - began

    return timed


def blocks_ahead(blocks: Iterable[SegmentBlock], work: Callable[[LineBlock], Any] | None) -> Iterator[SegmentBlock]:
    """``blocks`` with ``work(block)`` done for the next block while the caller has this one.

    The work runs on one other thread, so it must not touch what the caller uses (the
    store's connection); its result (or error) comes with its block, in order.
    """
    if work is None:
        yield from blocks
        return
    work = _timed_work(work)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocpp-read-ahead") as pool:
        pending: tuple[SegmentBlock, concurrent.futures.Future | None] | None = None
        source = iter(blocks)
        while True:
            began = time.perf_counter()
            item = next(source, None)
            stage_seconds[_READ] += time.perf_counter() - began
            if item is None:
                break
            future = pool.submit(work, item.block) if len(item.block) else None
            if pending is not None:
                yield from _handed_over(*pending)
            pending = (item, future)
        if pending is not None:
            yield from _handed_over(*pending)


def _handed_over(item: SegmentBlock, future: concurrent.futures.Future | None) -> Iterator[SegmentBlock]:
    """The block with its read-ahead result, timing the wait for it and the caller's use."""
    began = time.perf_counter()
    done = _done(item, future)
    handed = time.perf_counter()
    stage_seconds[_WAIT] += handed - began
    yield done
    stage_seconds[_STORE] += time.perf_counter() - handed


def _done(item: SegmentBlock, future: concurrent.futures.Future | None) -> SegmentBlock:
    return dataclasses.replace(item, ahead=None if future is None else future.result())
