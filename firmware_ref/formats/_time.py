"""Time-stamp spellings of the source formats."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_offset_ms", "iso_z_ms", "naive_utc", "to_utc"]


def to_utc(ts: datetime) -> datetime:
    """The same instant in UTC (refuses naive datetimes)."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("naive datetime")
    return ts.astimezone(UTC)


def naive_utc(ts: datetime) -> str:
    """Zaptec's offset-less UTC spelling with 0-3 fraction digits (trailing zeros
    dropped, as .NET prints them): ``"2025-06-07T09:20:55.967"``, ``"...:55.9"``,
    ``"...:55"``."""
    ts = to_utc(ts)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    ms = ts.microsecond // 1000
    if ms:
        text += "." + f"{ms:03d}".rstrip("0")
    return text


def iso_offset_ms(ts: datetime) -> str:
    """UTC with milliseconds and ``+00:00``: ``"2025-06-07T09:20:55.943+00:00"``."""
    return to_utc(ts).isoformat(timespec="milliseconds")


def iso_z_ms(ts: datetime) -> str:
    """UTC with milliseconds and ``Z``: ``"2025-06-07T09:20:55.943Z"``."""
    return iso_offset_ms(ts).replace("+00:00", "Z")
