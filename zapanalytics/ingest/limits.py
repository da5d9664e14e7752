"""Limits on every reader, and readers that keep them: bounded time and memory on any input.

Each reader of a file, sheet, line or frame checks a limit of :class:`InputLimits` *before*
it holds the thing in memory. Past a limit the record is quarantined (a bounded prefix of
its raw bytes, their size and sha256; the full bytes stay in the source file, which the
quarantine row names), or the whole file is, or the input is refused with a one-line error
naming the file and the limit. Memory therefore never grows with the size of a bad input.

Every limit has a documented default and can be raised by an environment variable
(``ZAPANALYTICS_MAX_FILE_BYTES`` …, see :data:`ENV_NAMES`) or by the reader's caller.

Defaults and why
----------------
``max_file_bytes`` 1 GiB
    Any input file. Larger files are not opened (a 2 GB sparse file is refused at ``stat``).
``max_document_bytes`` 16 MiB
    A file parsed whole (a JSON page, an ENTSO-E XML document, a CSV export): Python's
    parsers need 10–20× the file size in memory, so 16 MiB stays well under 1 GB. A year of
    ENTSO-E quarter-hours is about 5 MB, a Zaptec charge-history page of 100 sessions < 1 MB,
    a portal export of 50,000 sessions about 8 MB.
``max_line_bytes`` 1 MiB
    One line of a streamed file (sub-meter CSV, JSON lines, HAN hex dump).
``max_field_chars`` 10,000
    One CSV/XLSX field. Sub-meter and portal fields are times, numbers and names; Python's
    csv module stops at 131,072 with an error naming no file.
``max_rows_per_sheet`` 200,000
    Rows of one XLSX sheet or CSV export (a busy installation books < 50,000 sessions a year).
``max_uncompressed_bytes`` 256 MiB and ``max_compression_ratio`` 100
    An XLSX is a zip: its central directory is checked before openpyxl opens it. Worksheet
    XML of real exports compresses 5–20×; a zip bomb 1000× and more. Python's ``zipfile``
    never inflates an entry past the size its directory declares (it stops there and fails
    the CRC check), so the declared sizes bound the real ones.
``max_frame_bytes`` 64 KiB
    One OCPP-J frame (the largest real MeterValues frames are a few KB).
``max_json_depth`` 64
    Nesting of a JSON document or line (real payloads nest < 8 levels).
``raw_prefix_chars`` 4,096
    What a streamed record too large to hold keeps of its raw text in quarantine.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

#: Read size of the streaming readers [bytes].
_CHUNK_BYTES = 1024 * 1024
#: Entries in one XLSX/zip archive (real workbooks hold a few dozen).
_MAX_ZIP_ENTRIES = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class InputLimits:
    """What any reader accepts; see the module notes for the defaults and why.

    Attributes
    ----------
    max_file_bytes : int
        Any input file [bytes].
    max_document_bytes : int
        A file parsed whole (JSON, XML, CSV export) [bytes].
    max_line_bytes : int
        One line of a streamed file [bytes].
    max_field_chars : int
        One CSV/XLSX field [characters].
    max_rows_per_sheet : int
        Rows of one sheet or export [rows].
    max_uncompressed_bytes : int
        Total declared uncompressed size of an XLSX/zip [bytes].
    max_compression_ratio : float
        Declared uncompressed / compressed size of any one zip entry [-].
    max_frame_bytes : int
        One OCPP-J frame [bytes].
    max_json_depth : int
        Nesting of a JSON value [levels].
    raw_prefix_chars : int
        Raw text a too-large record keeps in quarantine [characters].
    """

    max_file_bytes: int = 1024 * 1024 * 1024
    max_document_bytes: int = 16 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024
    max_field_chars: int = 10_000
    max_rows_per_sheet: int = 200_000
    max_uncompressed_bytes: int = 256 * 1024 * 1024
    max_compression_ratio: float = 100.0
    max_frame_bytes: int = 64 * 1024
    max_json_depth: int = 64
    raw_prefix_chars: int = 4096

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not getattr(self, field.name) > 0:
                raise ValueError(f"the limit {field.name} must be positive")

    def replace(self, **overrides: Any) -> InputLimits:
        """A copy with the limits given (``None`` values keep the current limit)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown limits: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **given)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InputLimits:
        """Defaults, raised or lowered by ``ZAPANALYTICS_MAX_*`` environment variables."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            text = environ.get(ENV_NAMES[field.name])
            if text is None or not text.strip():
                continue
            kind = float if field.name == "max_compression_ratio" else int
            try:
                values[field.name] = kind(text.strip().replace("_", ""))
            except ValueError:
                raise ValueError(
                    f"{ENV_NAMES[field.name]}={text!r} is not a number"
                ) from None
        return cls(**values)


#: The environment variable that sets each limit.
ENV_NAMES = {f.name: "ZAPANALYTICS_" + f.name.upper() for f in dataclasses.fields(InputLimits)}

#: What each limit is called in a message.
_LIMIT_WORDS = {
    "max_file_bytes": "bytes per file",
    "max_document_bytes": "bytes per document read whole",
    "max_line_bytes": "bytes per line",
    "max_field_chars": "characters per field",
    "max_rows_per_sheet": "rows per sheet",
    "max_uncompressed_bytes": "uncompressed bytes per archive",
    "max_compression_ratio": "compression ratio",
    "max_frame_bytes": "bytes per frame",
    "max_json_depth": "levels of JSON nesting",
    "raw_prefix_chars": "raw characters kept",
}


def current_limits(limits: InputLimits | None = None) -> InputLimits:
    """``limits`` when given, else the defaults as the environment sets them."""
    return limits if limits is not None else InputLimits.from_env()


# --------------------------------------------------------------------------- errors


class InputFileError(ValueError):
    """A file that cannot be read at all; the message names it and says why."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class LimitExceeded(InputFileError):
    """An input past one of the :class:`InputLimits`; the message names the file and the limit."""

    def __init__(self, name: str, limit: str, value: float, observed: str):
        self.limit = limit
        self.value = value
        shown = f"{int(value):,}" if float(value).is_integer() else f"{value:,g}"
        super().__init__(name, f"{observed}, over the limit of {shown} {_LIMIT_WORDS[limit]}"
                               f" (raise it with {ENV_NAMES[limit]})")


def os_error_problem(exc: OSError) -> str:
    """What an OS error means to a user, without ``[Errno N]``."""
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is not a directory"
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot be read ({exc.strerror or type(exc).__name__})"


def check_file(path: str | Path, limits: InputLimits, *, whole: bool) -> int:
    """Check that ``path`` is a regular file within the size limits; return its size [bytes].

    Parameters
    ----------
    path : str or Path
        The input file.
    limits : InputLimits
        Limits in force.
    whole : bool
        True when the reader parses the file whole (``max_document_bytes`` applies too).

    Raises
    ------
    InputFileError
        Missing, a directory, or unreadable; :class:`LimitExceeded` past a size limit.
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise InputFileError(str(path), os_error_problem(exc)) from None
    if path.is_dir():
        raise InputFileError(str(path), "is a directory, not a file")
    size = info.st_size
    if size > limits.max_file_bytes:
        raise LimitExceeded(str(path), "max_file_bytes", limits.max_file_bytes, f"{size:,} bytes")
    if whole and size > limits.max_document_bytes:
        raise LimitExceeded(
            str(path), "max_document_bytes", limits.max_document_bytes, f"{size:,} bytes"
        )
    return size


def read_document(path: str | Path, limits: InputLimits) -> bytes:
    """The bytes of a file parsed whole, refused past ``max_document_bytes`` (even if it grows)."""
    check_file(path, limits, whole=True)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limits.max_document_bytes + 1)
    except OSError as exc:
        raise InputFileError(str(path), os_error_problem(exc)) from None
    if len(data) > limits.max_document_bytes:
        raise LimitExceeded(str(path), "max_document_bytes", limits.max_document_bytes,
                            "more bytes than that")
    return data


def decode_utf8(data: bytes, name: str) -> str:
    """``data`` as UTF-8 text (a BOM is dropped), or :class:`InputFileError` saying where it is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(
            name, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}, line {line})"
        ) from None


# --------------------------------------------------------------------------- raw records


class RawPrefix(str):
    """The kept prefix of a raw record, carrying the size and sha256 of the whole record.

    The door stores the prefix and these facts; the full bytes stay in ``source_file``.
    """

    size_bytes: int
    sha256: str
    source_file: str | None
    truncated: bool

    def __new__(
        cls, prefix: str, *, size_bytes: int, sha256: str, source_file: str | None, truncated: bool
    ) -> RawPrefix:
        text = super().__new__(cls, prefix)
        text.size_bytes = size_bytes
        text.sha256 = sha256
        text.source_file = source_file
        text.truncated = truncated
        return text


def raw_record(data: bytes, source_file: str | None, limits: InputLimits) -> RawPrefix:
    """A quarantine payload for ``data``: its text prefix, size and sha256."""
    prefix = data[: limits.raw_prefix_chars * 4].decode("utf-8", "backslashreplace")
    kept = prefix[: limits.raw_prefix_chars]
    return RawPrefix(
        kept,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        source_file=source_file,
        truncated=len(kept.encode("utf-8", "surrogatepass")) < len(data),
    )


def file_record(path: str | Path, limits: InputLimits) -> RawPrefix:
    """A quarantine payload standing for a whole file: its first bytes, size and sha256.

    The file is hashed in chunks when it is within ``max_file_bytes``; a larger (or
    unreadable) file is not read past its prefix, and its sha256 is that of its name, size
    and prefix, so a rerun meets the same record.
    """
    path = Path(path)
    head = b""
    size = 0
    digest = hashlib.sha256()
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(limits.raw_prefix_chars)
            if size <= limits.max_file_bytes:
                digest.update(head)
                for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
                    digest.update(chunk)
            else:
                digest.update(f"{path.name}\0{size}\0".encode() + head)
    except OSError:
        digest = hashlib.sha256(f"{path}\0unreadable".encode())
    text = head.decode("utf-8", "backslashreplace")[: limits.raw_prefix_chars]
    return RawPrefix(text, size_bytes=size, sha256=digest.hexdigest(), source_file=str(path),
                     truncated=len(head) < size)


# --------------------------------------------------------------------------- streamed lines


@dataclasses.dataclass(frozen=True, slots=True)
class BoundedLine:
    """One line of a streamed file.

    Attributes
    ----------
    number : int
        1-based line number.
    data : bytes or None
        The line without its line end; None when it was longer than ``max_line_bytes``
        (then only ``raw`` describes it).
    long_raw : RawPrefix or None
        Prefix, size and sha256 of a line too long to hold.
    """

    number: int
    data: bytes | None
    long_raw: RawPrefix | None
    source_file: str
    limits: InputLimits

    @property
    def raw(self) -> RawPrefix:
        """Prefix, size and sha256 of the line, for quarantine (made when asked for)."""
        if self.long_raw is not None:
            return self.long_raw
        assert self.data is not None
        return raw_record(self.data, self.source_file, self.limits)


def iter_lines(
    handle: BinaryIO, source_file: str, limits: InputLimits
) -> Iterator[BoundedLine]:
    """Yield the lines of a binary stream holding at most ``max_line_bytes`` of any one.

    A longer line is skipped to its end in chunks (never held) and yielded with
    ``data=None``, its prefix, size and sha256. ``\\r\\n`` and ``\\n`` end lines.
    """
    limit = limits.max_line_bytes
    number = 0
    pending = b""
    # State of a line too long to hold: its prefix, running hash and size.
    long_head: bytes | None = None
    long_hash = None
    long_size = 0

    def finish_long() -> BoundedLine:
        assert long_head is not None and long_hash is not None
        text = long_head.decode("utf-8", "backslashreplace")[: limits.raw_prefix_chars]
        raw = RawPrefix(text, size_bytes=long_size, sha256=long_hash.hexdigest(),
                        source_file=source_file, truncated=True)
        return BoundedLine(number, None, raw, source_file, limits)

    while True:
        chunk = handle.read(_CHUNK_BYTES)
        if not chunk:
            break
        start = 0
        while True:
            cut = chunk.find(b"\n", start)
            piece = chunk[start:] if cut < 0 else chunk[start:cut]
            if long_head is not None:
                long_hash.update(piece)
                long_size += len(piece)
            elif len(pending) + len(piece) > limit:
                long_head = (pending + piece[: limits.raw_prefix_chars * 4])[: limits.raw_prefix_chars * 4]
                long_hash = hashlib.sha256(pending)
                long_hash.update(piece)
                long_size = len(pending) + len(piece)
                pending = b""
            else:
                pending += piece
            if cut < 0:
                break
            number += 1
            if long_head is not None:
                yield finish_long()
                long_head, long_hash, long_size = None, None, 0
            else:
                line = pending[:-1] if pending.endswith(b"\r") else pending
                yield BoundedLine(number, line, None, source_file, limits)
                pending = b""
            start = cut + 1
    if long_head is not None:
        number += 1
        yield finish_long()
    elif pending:
        number += 1
        line = pending[:-1] if pending.endswith(b"\r") else pending
        yield BoundedLine(number, line, None, source_file, limits)


@dataclasses.dataclass(frozen=True, slots=True)
class CsvRecord:
    """One CSV record of a streamed file: its fields, or the problem that kept it unread."""

    number: int
    fields: list[str] | None
    raw: RawPrefix
    problem: str | None = None


def iter_csv_records(
    handle: BinaryIO,
    source_file: str,
    limits: InputLimits,
    *,
    delimiter: str = ",",
    errors: str = "strict",
) -> Iterator[CsvRecord]:
    """Yield the records of a CSV stream, one per line, each within the limits.

    A record is read from one line (quoted line breaks inside a field are not supported:
    such a record is reported, not joined). Lines that are not UTF-8, longer than
    ``max_line_bytes``, with a field over ``max_field_chars`` or that the csv module cannot
    read come with ``fields=None`` and a ``problem`` naming the line and the limit. Blank
    lines are skipped. A UTF-8 BOM at the start is dropped. With ``errors="replace"`` bytes
    that are not UTF-8 become U+FFFD and the record is read (its fields then fail their own
    checks, naming the field).
    """
    name = Path(source_file).name
    # The csv module's own limit must never fire (its message names no file): the line limit
    # bounds every field, and the field limit is checked here with a clear message.
    if csv.field_size_limit() < limits.max_line_bytes:
        csv.field_size_limit(limits.max_line_bytes)
    for line in iter_lines(handle, source_file, limits):
        where = f"{name}:{line.number}"
        if line.data is None:
            yield CsvRecord(line.number, None, line.raw, f"{where}: line of {line.raw.size_bytes:,} bytes,"
                            f" over the limit of {limits.max_line_bytes:,} {_LIMIT_WORDS['max_line_bytes']}"
                            f" ({ENV_NAMES['max_line_bytes']})")
            continue
        data = line.data
        if line.number == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if not data.strip():
            continue
        try:
            text = data.decode("utf-8", errors)
        except UnicodeDecodeError as exc:
            yield CsvRecord(line.number, None, line.raw,
                            f"{where}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column {exc.start + 1})")
            continue
        try:
            fields = next(csv.reader([text], delimiter=delimiter, strict=True))
        except (csv.Error, StopIteration) as exc:
            yield CsvRecord(line.number, None, line.raw, f"{where}: not a readable CSV record ({exc})")
            continue
        longest = max((len(f) for f in fields), default=0)
        if longest > limits.max_field_chars:
            column = next(i for i, f in enumerate(fields) if len(f) == longest) + 1
            yield CsvRecord(line.number, None, line.raw,
                            f"{where}: field {column} has {longest:,} characters, over the limit of"
                            f" {limits.max_field_chars:,} {_LIMIT_WORDS['max_field_chars']}"
                            f" ({ENV_NAMES['max_field_chars']})")
            continue
        yield CsvRecord(line.number, fields, line.raw)


# --------------------------------------------------------------------------- whole documents


def json_depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests deeper than ``max_depth`` (iterative: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def load_json(data: bytes | str, name: str, limits: InputLimits) -> Any:
    """Parse a JSON document within ``max_document_bytes`` and ``max_json_depth``.

    Raises
    ------
    InputFileError
        Not UTF-8, not JSON (with line and column), or past a limit (:class:`LimitExceeded`).
    """
    size = len(data)
    if size > limits.max_document_bytes:
        raise LimitExceeded(name, "max_document_bytes", limits.max_document_bytes, f"{size:,} bytes")
    text = decode_utf8(data, name) if isinstance(data, bytes) else data
    try:
        value = json.loads(text)
    except RecursionError:
        raise LimitExceeded(name, "max_json_depth", limits.max_json_depth, "JSON nested deeper") from None
    except json.JSONDecodeError as exc:
        raise InputFileError(name, f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InputFileError(name, f"not JSON: {str(exc)[:120]}") from None
    if json_depth_exceeds(value, limits.max_json_depth):
        raise LimitExceeded(name, "max_json_depth", limits.max_json_depth, "JSON nested deeper")
    return value


def check_zip(path: str | Path, limits: InputLimits) -> None:
    """Refuse an XLSX/zip whose central directory declares too much, before anything inflates it.

    Raises
    ------
    InputFileError
        Not a zip archive, or past ``max_uncompressed_bytes``/``max_compression_ratio``
        (:class:`LimitExceeded`).
    """
    name = str(path)
    check_file(path, limits, whole=False)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputFileError(name, f"not a readable workbook (not a zip archive: {str(exc)[:80]})") from None
    if len(entries) > _MAX_ZIP_ENTRIES:
        raise InputFileError(name, f"{len(entries):,} archive entries, over {_MAX_ZIP_ENTRIES:,}")
    total = 0
    for entry in entries:
        total += entry.file_size
        if total > limits.max_uncompressed_bytes:
            raise LimitExceeded(name, "max_uncompressed_bytes", limits.max_uncompressed_bytes,
                                f"entries inflate to more than {total:,} bytes")
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > 1024 * 1024 and ratio > limits.max_compression_ratio:
            raise LimitExceeded(name, "max_compression_ratio", limits.max_compression_ratio,
                                f"entry {entry.filename[:60]!r} inflates {ratio:,.0f}-fold")


def iter_sheet_rows(path: str | Path, limits: InputLimits) -> Iterator[tuple[Any, ...]]:
    """Stream the rows of an XLSX workbook's first sheet within the limits.

    The zip is checked first (:func:`check_zip`); openpyxl then reads in ``read_only`` mode,
    which streams the sheet XML. Past ``max_rows_per_sheet`` or ``max_field_chars`` the
    workbook is refused.

    Raises
    ------
    InputFileError
        Unreadable workbook or past a limit (:class:`LimitExceeded`).
    """
    import openpyxl

    name = str(path)
    check_zip(path, limits)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for bad files
        raise InputFileError(name, f"not a readable workbook ({str(exc)[:120]})") from None
    try:
        if not book.worksheets:
            return
        rows = book.worksheets[0].iter_rows(values_only=True)
        number = 0
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - a broken sheet inside a valid zip
                raise InputFileError(name, f"sheet unreadable after row {number} ({str(exc)[:120]})") from None
            number += 1
            if number > limits.max_rows_per_sheet:
                raise LimitExceeded(name, "max_rows_per_sheet", limits.max_rows_per_sheet,
                                    "more rows than that")
            for column, value in enumerate(row, start=1):
                if isinstance(value, str) and len(value) > limits.max_field_chars:
                    raise LimitExceeded(name, "max_field_chars", limits.max_field_chars,
                                        f"row {number} column {column} has {len(value):,} characters")
            yield row
    finally:
        book.close()
