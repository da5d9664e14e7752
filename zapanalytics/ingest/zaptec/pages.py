"""The paged answers of the Zaptec API as received, and what a sync may take from them.

Two paging styles:

* ``{Pages, Data, Message}`` envelopes with a 0-based ``PageIndex`` (installations, chargers
  and ``GET /api/chargehistory``), ``PageSize`` at most 100 since 2025-03.
* ``{sessions, cursor, hasMore}`` (``GET /api/sessions/archived``, camelCase): follow the
  opaque ``cursor`` while ``hasMore``; ``PageSize`` at most 200 (as two public clients use it).

A body that is not such an answer (a proxy's or captive portal's HTML page with status 200,
a truncated body) is kept as text so it can be quarantined; :func:`describe_unreadable`
says in one line what came instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

#: Zaptec caps ``PageSize`` at 100 for installations, chargers and charge history (2025-03).
MAX_PAGE_SIZE = 100
#: ``PageSize`` cap of ``/api/sessions/archived``.
MAX_ARCHIVED_PAGE_SIZE = 200
_EXCERPT_CHARS = 60


@dataclasses.dataclass(frozen=True, slots=True)
class RawPage:
    """One page of a paged endpoint as received.

    Attributes
    ----------
    index : int
        0-based position of the page in its listing.
    text : str
        The body exactly as sent (kept for quarantine).
    items : list or None
        The records; None when the body is not a readable answer of its endpoint.
    pages : int or None
        ``Pages`` of an envelope (None for cursor paging or an unreadable body).
    next_cursor : str or None
        ``cursor`` of a cursor page: where the next page starts.
    has_more : bool or None
        ``hasMore`` of a cursor page.
    content_type : str
        The response's ``Content-Type`` (to explain an unreadable body).
    """

    index: int
    text: str
    items: list[Any] | None
    pages: int | None = None
    next_cursor: str | None = None
    has_more: bool | None = None
    content_type: str = ""

    @property
    def readable(self) -> bool:
        return self.items is not None


def parse_envelope(text: str) -> tuple[int | None, list[Any] | None]:
    """Read ``Pages`` and ``Data`` from a paged response body; (None, None) if unreadable."""
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None, None
    if not isinstance(body, Mapping):
        return None, None
    pages, data = body.get("Pages"), body.get("Data")
    if isinstance(pages, bool) or not isinstance(pages, int) or pages < 0:
        return None, None
    if not isinstance(data, list):
        return None, None
    return pages, data


def parse_cursor_page(text: str) -> tuple[list[Any] | None, str | None, bool | None]:
    """Read ``sessions``, ``cursor`` and ``hasMore``; (None, None, None) if unreadable.

    A page that says ``hasMore`` must name a ``cursor``, or nobody could ask for the next one.
    """
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None, None, None
    if not isinstance(body, Mapping):
        return None, None, None
    sessions, cursor, has_more = body.get("sessions"), body.get("cursor"), body.get("hasMore")
    if not isinstance(sessions, list) or not isinstance(has_more, bool | None):
        return None, None, None
    if cursor is not None and not isinstance(cursor, str):
        return None, None, None
    if has_more and not cursor:
        return None, None, None
    return sessions, cursor or None, bool(has_more)


def describe_unreadable(page: RawPage) -> str:
    """One line saying what came instead of a readable page (type, size, how it begins)."""
    stripped = page.text.strip()
    kind = page.content_type.split(";", 1)[0].strip() or "no content type"
    if not stripped:
        return f"an empty body ({kind})"
    excerpt = " ".join(stripped[:_EXCERPT_CHARS].split())
    try:
        json.loads(stripped)
    except (json.JSONDecodeError, RecursionError):
        what = "not JSON"
    else:
        what = "JSON of another shape"
    return f"{what} ({kind}, {len(page.text)} characters, beginning {excerpt!r})"


def format_query_time(value: dt.datetime) -> str:
    """Format an aware datetime for a Zaptec query: UTC, second precision, ``Z`` suffix."""
    if value.tzinfo is None:
        raise ValueError("query times must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
