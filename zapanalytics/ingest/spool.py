"""The OCPP spool: append-only, fsync'd, rotated segment files of raw charge-point traffic.

The central system writes every frame it receives (with the answer it is about to send)
here *before* answering, so an acknowledged message is on disk even if the process dies the
next instant. The loader reads the spool into the store later, at its own pace, possibly
while the server keeps writing.

Layout of a spool directory::

    spool.json                  {"format", "version", "spool_id"}: written once, never changed
    .writer.lock                flock held by the one process that may append
    0000000001.jsonl            a sealed segment: complete, never written again
    0000000002.jsonl.open       the active segment: grows by whole lines

Every line is one JSON object terminated by ``\\n``, written in ASCII (``ensure_ascii``), so a
line boundary is always a byte boundary. A crash can leave a torn last line in the active
segment; it was never fsync'd, hence never acknowledged. Readers stop before it, and the
next writer truncates it when it seals the segment.

Durability uses *group commit*: appends made while one batch is being fsync'd join the next
batch, and every appender waits for the fsync that covers its line. Throughput then scales
with the number of concurrent writers instead of being capped by one fsync per message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

SPOOL_FORMAT = "zapanalytics-ocpp-spool"
SPOOL_VERSION = 1
META_NAME = "spool.json"
LOCK_NAME = ".writer.lock"
SEALED_SUFFIX = ".jsonl"
ACTIVE_SUFFIX = ".jsonl.open"
#: Segments are sealed once they pass this size [bytes].
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
#: A spool line holds one frame (at most ``max_frame_bytes``, 64 KiB by default) and its
#: answer, each escaped to ASCII (up to 6× longer): a longer line is not the server's and is
#: refused rather than read into memory [bytes].
MAX_LINE_BYTES = 64 * 1024 * 1024
_INDEX_DIGITS = 10


class SpoolError(RuntimeError):
    """The spool directory is unusable (not a spool, wrong version, write failure)."""


class SpoolLockedError(SpoolError):
    """Another process is already appending to this spool."""


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """One segment file as seen at listing time.

    Attributes
    ----------
    index : int
        Position of the segment in the spool (1, 2, ...); names sort by it.
    path : Path
        The file at listing time (the active file may be sealed, i.e. renamed, at any moment).
    sealed : bool
        True when the writer will never append to it again.
    size_bytes : int
        File size at listing time [bytes].
    """

    index: int
    path: Path
    sealed: bool
    size_bytes: int


def segment_name(index: int, *, sealed: bool) -> str:
    """Return the file name of segment ``index``."""
    return f"{index:0{_INDEX_DIGITS}d}{SEALED_SUFFIX if sealed else ACTIVE_SUFFIX}"


def _parse_segment_name(name: str) -> tuple[int, bool] | None:
    for suffix, sealed in ((ACTIVE_SUFFIX, False), (SEALED_SUFFIX, True)):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            if stem.isdigit() and len(stem) == _INDEX_DIGITS:
                return int(stem), sealed
    return None


def read_meta(directory: str | Path) -> dict[str, Any]:
    """Return the spool's ``spool.json`` (raises :class:`SpoolError` if it is not a spool)."""
    path = Path(directory) / META_NAME
    try:
        meta = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SpoolError(f"{directory} is not an OCPP spool (no {META_NAME})") from None
    except (OSError, ValueError) as exc:
        raise SpoolError(f"cannot read {path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != SPOOL_FORMAT:
        raise SpoolError(f"{path} does not describe an OCPP spool")
    if meta.get("version") != SPOOL_VERSION:
        raise SpoolError(f"{path}: spool version {meta.get('version')!r} is not supported")
    return meta


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_NAME
    if path.exists():
        return read_meta(directory)
    meta = {"format": SPOOL_FORMAT, "version": SPOOL_VERSION, "spool_id": uuid.uuid4().hex}
    temporary = directory / f".{META_NAME}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(directory)
    return meta


def list_segments(directory: str | Path) -> list[Segment]:
    """List the segments of a spool in order, sealed and active.

    Parameters
    ----------
    directory : str or Path
        The spool directory.

    Returns
    -------
    list of Segment
        Ordered by index. When a segment was sealed while listing, its sealed name wins.
    """
    found: dict[int, Segment] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            parsed = _parse_segment_name(entry.name)
            if parsed is None:
                continue
            index, sealed = parsed
            try:
                size = entry.stat().st_size
            except FileNotFoundError:  # sealed (renamed) between scandir and stat
                continue
            if index in found and found[index].sealed:
                continue
            found[index] = Segment(index, Path(entry.path), sealed, size)
    return [found[i] for i in sorted(found)]


def _open_segment(directory: Path, index: int):
    """Open segment ``index`` for reading whichever name it has now."""
    for sealed in (True, False):
        try:
            return open(directory / segment_name(index, sealed=sealed), "rb"), sealed
        except FileNotFoundError:
            continue
    # The active file may have been renamed between the two attempts.
    return open(directory / segment_name(index, sealed=True), "rb"), True


@dataclasses.dataclass(frozen=True, slots=True)
class LineChunk:
    """Complete lines read from one segment.

    Attributes
    ----------
    lines : list of bytes
        Each line without its terminating newline.
    start_offset, end_offset : int
        Byte range covered: ``end_offset`` is just past the last newline read [bytes].
    sealed : bool
        Whether the segment was sealed when it was opened.
    at_end : bool
        True when no further complete line exists after ``end_offset`` right now.
    torn_tail_bytes : int
        Bytes after the last newline at the end of the file (a torn or in-progress line).
    """

    lines: list[bytes]
    start_offset: int
    end_offset: int
    sealed: bool
    at_end: bool
    torn_tail_bytes: int


def read_window(
    directory: str | Path, index: int, offset: int, max_bytes: int
) -> tuple[bytes, int, bool, bool]:
    """Bytes of segment ``index`` from ``offset`` that end on a line, if any line ends.

    Reads about ``max_bytes``, widening the window (up to :data:`MAX_LINE_BYTES`) while no
    newline is in it.

    Returns
    -------
    tuple
        (the bytes read, position of their last newline or -1, whether the segment is
        sealed, whether the read reached the end of the file).

    Raises
    ------
    SpoolError
        When one line is longer than :data:`MAX_LINE_BYTES` (naming the segment and offset).
    """
    handle, sealed = _open_segment(Path(directory), index)
    with handle:
        want = max(1, max_bytes)
        while True:
            handle.seek(offset)
            data = handle.read(want)
            cut = data.rfind(b"\n")
            reached_eof = len(data) < want
            if cut >= 0 or reached_eof:
                return data, cut, sealed, reached_eof
            if want >= MAX_LINE_BYTES:
                raise SpoolError(
                    f"{handle.name}: the line at byte {offset:,} is longer than {MAX_LINE_BYTES:,} bytes;"
                    " a spool line holds one frame and its answer (is this file a spool segment?)"
                )
            want = min(want * 2, MAX_LINE_BYTES)  # one line longer than the window: widen it


def read_lines(
    directory: str | Path, index: int, offset: int = 0, *, max_bytes: int = 8 * 1024 * 1024
) -> LineChunk:
    """Read complete lines of segment ``index`` starting at byte ``offset``.

    Only lines ending in a newline are returned, so a line still being written, or torn by
    a crash, is never seen half. Call again from ``end_offset`` to continue.

    Parameters
    ----------
    directory : str or Path
        The spool directory.
    index : int
        Segment index.
    offset : int, default 0
        A line boundary to start at (0 or a previous ``end_offset``) [bytes].
    max_bytes : int
        Read about this much at most; a single longer line is still returned whole [bytes].

    Raises
    ------
    SpoolError
        When one line is longer than :data:`MAX_LINE_BYTES` (naming the segment and offset).
    """
    data, cut, sealed, reached_eof = read_window(directory, index, offset, max_bytes)
    if cut < 0:
        return LineChunk([], offset, offset, sealed, True, len(data))
    end = offset + cut + 1
    tail = len(data) - cut - 1
    return LineChunk(
        data[:cut].split(b"\n"), offset, end, sealed, reached_eof, tail if reached_eof else 0
    )


def iter_lines(directory: str | Path, index: int, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """Yield ``(end_offset, line)`` for every complete line of a segment from ``offset``."""
    while True:
        chunk = read_lines(directory, index, offset)
        position = chunk.start_offset
        for line in chunk.lines:
            position += len(line) + 1
            yield position, line
        if chunk.at_end:
            return
        offset = chunk.end_offset


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Serialise one spool record as an ASCII JSON line (newline included)."""
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


class SegmentWriter:
    """The synchronous core of the spool writer: one process, one active segment.

    Parameters
    ----------
    directory : str or Path
        The spool directory (created when missing).
    max_segment_bytes : int
        Seal the active segment once it reaches this size [bytes].
    fsync : bool, default True
        Only tests of other layers may turn durability off.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
    ):
        self.directory = Path(directory)
        self.max_segment_bytes = max_segment_bytes
        self.fsync = fsync
        self.meta: dict[str, Any] = {}
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._index = 0
        self._size = 0
        self.lines_written = 0
        self.batches_written = 0
        self.fsync_seconds = 0.0

    @property
    def spool_id(self) -> str:
        return str(self.meta["spool_id"])

    @property
    def active_index(self) -> int:
        return self._index

    def open(self) -> SegmentWriter:
        """Take the writer lock, recover segments a crash left open and start a new one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise SpoolLockedError(
                f"another process is writing to the spool {self.directory}; one writer at a time"
            ) from None
        self._lock_fd = lock_fd
        try:
            self.meta = _ensure_meta(self.directory)
            last = self._recover()
            self._start_segment(last + 1)
        except BaseException:
            self.close()
            raise
        return self

    def _recover(self) -> int:
        """Seal segments left active by a crash, cutting any torn last line; return the last index."""
        last = 0
        for segment in list_segments(self.directory):
            last = max(last, segment.index)
            if segment.sealed:
                continue
            with open(segment.path, "r+b") as handle:
                data = handle.read()
                keep = data.rfind(b"\n") + 1
                if keep < len(data):
                    handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())
            if keep == 0:
                segment.path.unlink()
            else:
                os.replace(segment.path, self.directory / segment_name(segment.index, sealed=True))
        _fsync_directory(self.directory)
        return last

    def _start_segment(self, index: int) -> None:
        path = self.directory / segment_name(index, sealed=False)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._index = index
        self._size = 0
        _fsync_directory(self.directory)

    def _seal_active(self) -> None:
        if self._fd is None:
            return
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        active = self.directory / segment_name(self._index, sealed=False)
        if self._size == 0:
            active.unlink(missing_ok=True)
        else:
            os.replace(active, self.directory / segment_name(self._index, sealed=True))
        _fsync_directory(self.directory)

    def rotate(self) -> None:
        """Seal the active segment and open the next one."""
        self._seal_active()
        self._start_segment(self._index + 1)

    def write_batch(self, lines: list[bytes]) -> None:
        """Append whole lines and make them durable before returning.

        On a write error the segment is cut back to its last complete line, so the spool
        never holds a partial line from a live writer, and the error propagates.
        """
        if self._fd is None:
            raise SpoolError("the spool writer is not open")
        data = b"".join(lines)
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
            if self.fsync:
                started = time.perf_counter()
                os.fsync(self._fd)
                self.fsync_seconds += time.perf_counter() - started
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)
        self.lines_written += len(lines)
        self.batches_written += 1
        if self._size >= self.max_segment_bytes:
            self.rotate()

    def close(self) -> None:
        """Seal the active segment (an empty one is removed) and release the lock."""
        try:
            self._seal_active()
        finally:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> SegmentWriter:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()


class GroupCommitSpool:
    """Asynchronous front of :class:`SegmentWriter` with group commit.

    :meth:`append` queues a record and returns a future that completes once the record's
    line is fsync'd. A single background task writes whatever accumulated while the
    previous fsync ran, in one ``write`` and one ``fsync``, on a dedicated thread so the
    event loop keeps serving connections meanwhile.

    Parameters
    ----------
    directory : str or Path
        The spool directory.
    max_segment_bytes : int
        Rotation size [bytes].
    fsync : bool, default True
        Durability switch (see :class:`SegmentWriter`).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
    ):
        self.writer = SegmentWriter(directory, max_segment_bytes=max_segment_bytes, fsync=fsync)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._buffer: list[bytes] = []
        self._batch: asyncio.Future | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self._failure: BaseException | None = None

    @property
    def spool_id(self) -> str:
        return self.writer.spool_id

    async def open(self) -> GroupCommitSpool:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.writer.open)
        self._wakeup = asyncio.Event()
        self._batch = loop.create_future()
        self._task = asyncio.create_task(self._flush_forever(), name="spool-group-commit")
        return self

    def append(self, record: Mapping[str, Any]) -> asyncio.Future:
        """Queue ``record``; the returned future resolves when it is durable.

        Raises
        ------
        SpoolError
            When the spool is closed or a previous write failed: nothing may be acknowledged.
        """
        if self._failure is not None:
            raise SpoolError(f"the spool stopped after a write error: {self._failure}")
        if self._closing or self._batch is None or self._wakeup is None:
            raise SpoolError("the spool is closed")
        self._buffer.append(encode_record(record))
        self._wakeup.set()
        return self._batch

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._buffer:
                if self._closing:
                    return
                continue
            lines, batch = self._buffer, self._batch
            self._buffer, self._batch = [], loop.create_future()
            try:
                await loop.run_in_executor(self._executor, self.writer.write_batch, lines)
            except Exception as exc:  # noqa: BLE001 - handed to every waiter of the batch
                self._failure = exc
                batch.set_exception(SpoolError(f"spool write failed: {exc}"))
                batch.exception()  # mark retrieved: waiters that never await must not warn
                self._batch.set_exception(SpoolError(f"spool write failed: {exc}"))
                self._batch.exception()
                return
            batch.set_result(len(lines))
            if self._closing and not self._buffer:
                return

    async def flush(self) -> None:
        """Wait until everything appended so far is durable."""
        if self._buffer and self._batch is not None:
            await self._batch

    async def close(self) -> None:
        """Write what is queued, seal the active segment and release the writer lock."""
        if self._closing:
            return
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.writer.close)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> GroupCommitSpool:
        return await self.open()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


def spool_records(directory: str | Path) -> Iterator[dict[str, Any]]:
    """Yield every complete record of a spool in order (for tests, tools and small spools)."""
    for segment in list_segments(directory):
        for _, line in iter_lines(directory, segment.index):
            yield json.loads(line)
