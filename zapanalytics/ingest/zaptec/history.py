"""Which sessions a sync asks the cloud for, and reading them page by page within bounds.

**Windows from the data.** A charger's history is complete up to its last stored cloud
session: the next sync asks for that charger from the session's start less an overlap
(:func:`plan_windows`). A charger that was offline for months stored nothing new, so its
window still starts before the gap, and its sessions are fetched whenever they reach the
cloud. A store without cloud sessions asks once for the whole installation; ``full`` asks
for everything again (upserts make that idempotent).

**Either endpoint.** ``GET /api/chargehistory`` pages by index; ``GET /api/sessions/archived``
(the newer listing; one public client reports the older one retired) by cursor. Both
yield :class:`~zapanalytics.ingest.zaptec.pages.RawPage` objects that
:func:`~zapanalytics.ingest.zaptec.admit.admit_history_pages` maps to the same rows.

**Every listing ends.** A page is fetched at most ``1 + refetches`` times when its body is
unreadable (the client's retries cover statuses and the network); the first page still
unreadable is yielded and ends the listing, since nothing after it can be trusted to
follow on (its ``Pages`` or ``cursor`` is unknown). At most ``max_pages`` pages are read, a
repeated cursor ends the listing, and a ``Pages`` count is never followed past the cap.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence

import duckdb

from zapanalytics.ingest.zaptec.admit import ARCHIVED, CHARGEHISTORY
from zapanalytics.ingest.zaptec.api import ZaptecClient
from zapanalytics.ingest.zaptec.errors import ZaptecError
from zapanalytics.ingest.zaptec.pages import MAX_ARCHIVED_PAGE_SIZE, MAX_PAGE_SIZE, RawPage

log = logging.getLogger(__name__)

#: How far before a charger's last stored session the next sync asks again.
DEFAULT_OVERLAP = dt.timedelta(days=7)
#: Where a window starts with nothing stored (before the first Zaptec charger).
HISTORY_START_UTC = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
#: Sources whose sessions are the cloud's history (the API and its saved dumps).
CLOUD_SOURCES = ("zaptec_api", "zaptec_files")
#: Extra fetches of a page whose body is unreadable.
DEFAULT_REFETCHES = 1
#: Pages one sync reads at most over all its listings (100 sessions each).
DEFAULT_MAX_PAGES = 20_000


class SyncStopped(ZaptecError):
    """A listing ended before its last page (an unreadable page, a page or cursor limit).

    What was read before it is stored and the run is marked failed; because windows come
    from the stored sessions, the next sync asks again from there.
    """


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryWindow:
    """One listing a sync asks for: an installation, or one of its chargers, over a time span.

    ``charger_id`` None asks for the whole installation.
    """

    installation_id: str
    charger_id: str | None
    from_utc: dt.datetime
    to_utc: dt.datetime

    def describe(self) -> str:
        if self.charger_id:
            return f"charger {self.charger_id} of installation {self.installation_id}"
        return f"installation {self.installation_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class PagingLimits:
    """Bounds of one sync's reading.

    Attributes
    ----------
    page_size : int or None
        Sessions per page; None for each listing's most (100 chargehistory, 200 archived).
    refetches : int
        Extra fetches of an unreadable page before it is given up.
    max_pages : int
        Pages read at most by the whole sync.
    prefetch : int
        Chargehistory pages fetched ahead in threads (cursor pages cannot be).
    """

    page_size: int | None = None
    refetches: int = DEFAULT_REFETCHES
    max_pages: int = DEFAULT_MAX_PAGES
    prefetch: int = 2


def charger_cursors(
    con: duckdb.DuckDBPyConnection, charger_ids: Sequence[str]
) -> dict[str, dt.datetime]:
    """Start of the last stored cloud session of each charger [UTC] (chargers without any
    are left out)."""
    rows = con.execute(
        "SELECT charger_id, max(start_utc) FROM sessions"
        " WHERE list_contains(?::VARCHAR[], charger_id)"
        " AND list_contains(?::VARCHAR[], source) GROUP BY charger_id",
        [list(charger_ids), list(CLOUD_SOURCES)],
    ).fetchall()
    return {charger_id: start.astimezone(dt.UTC) for charger_id, start in rows}


def plan_windows(
    installation_id: str,
    charger_ids: Sequence[str],
    cursors: Mapping[str, dt.datetime],
    *,
    now: dt.datetime,
    since: dt.datetime | None = None,
    full: bool = False,
    overlap: dt.timedelta = DEFAULT_OVERLAP,
) -> list[HistoryWindow]:
    """The listings of one installation for the next sync (pure).

    Parameters
    ----------
    installation_id : str
    charger_ids : sequence of str
        The installation's chargers as the API lists them now.
    cursors : mapping of str to datetime
        Start of each charger's last stored cloud session (:func:`charger_cursors`).
    now : datetime
        End of every window (aware; cut to whole seconds).
    since : datetime, optional
        Ask for the whole installation from this time instead.
    full : bool
        Ask for the whole installation's whole history.
    overlap : timedelta
        How far before a charger's last stored session its window starts.

    Returns
    -------
    list of HistoryWindow
        One installation-wide window when ``full``, ``since`` or nothing stored yet;
        otherwise one per charger, from its cursor less ``overlap`` (or from
        :data:`HISTORY_START_UTC` for a charger with nothing stored).
    """
    to_utc = now.astimezone(dt.UTC).replace(microsecond=0)
    known = {c: cursors[c] for c in charger_ids if c in cursors}
    if full or since is not None or not known:
        start = since.astimezone(dt.UTC) if since is not None and not full else HISTORY_START_UTC
        return [HistoryWindow(installation_id, None, start, to_utc)]
    windows = []
    for charger_id in sorted(set(charger_ids)):
        cursor = known.get(charger_id)
        start = max(cursor - overlap, HISTORY_START_UTC) if cursor else HISTORY_START_UTC
        windows.append(HistoryWindow(installation_id, charger_id, min(start, to_utc), to_utc))
    return windows


class PageBudget:
    """Pages a sync may still read (shared by its listings)."""

    def __init__(self, max_pages: int):
        self.left = max_pages
        self.max_pages = max_pages

    def try_take(self) -> bool:
        """Take one page if any is left."""
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def take(self, window: HistoryWindow) -> None:
        """Take one page, or stop the sync when none is left."""
        if self.left <= 0:
            raise SyncStopped(
                f"stopped after {self.max_pages} pages (the limit of one sync) while reading "
                f"the {window.describe()}; what was read is stored, run the sync again to go on"
            )
        self.left -= 1


def _fetch_readable(fetch: Callable[[], RawPage], refetches: int, what: str) -> RawPage:
    """``fetch()`` until the page is readable, at most ``1 + refetches`` times."""
    page = fetch()
    for attempt in range(refetches):
        if page.readable:
            break
        log.warning("%s unreadable, fetching it again (%d/%d)", what, attempt + 1, refetches)
        page = fetch()
    return page


def chargehistory_pages(
    client: ZaptecClient, window: HistoryWindow, limits: PagingLimits, budget: PageBudget
) -> Iterator[RawPage]:
    """Yield ``GET /api/chargehistory`` pages of ``window`` in order, fetching ahead.

    The first page's ``Pages`` bounds the listing (a later page may raise it, never above
    the budget); an empty page ends it early, an unreadable page ends it after it is yielded.
    """

    def fetch(index: int) -> RawPage:
        def once() -> RawPage:
            return client.charge_history_page(
                index,
                installation_id=window.installation_id if window.charger_id is None else None,
                charger_id=window.charger_id,
                from_utc=window.from_utc,
                to_utc=window.to_utc,
                page_size=limits.page_size or MAX_PAGE_SIZE,
            )

        return _fetch_readable(once, limits.refetches, f"chargehistory page {index}")

    budget.take(window)
    first = fetch(0)
    yield first
    if not first.readable or not first.items or (first.pages or 0) <= 1:
        return
    total = first.pages or 1
    ahead = max(limits.prefetch, 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=ahead) as pool:
        in_flight: dict[int, concurrent.futures.Future[RawPage]] = {}
        try:
            index = 1
            while index < total:
                while len(in_flight) < ahead and index + len(in_flight) < total:
                    if not budget.try_take():
                        break
                    following = index + len(in_flight)
                    in_flight[following] = pool.submit(fetch, following)
                if index not in in_flight:
                    budget.take(window)  # none left: stops the sync with its reason
                page = in_flight.pop(index).result()
                yield page
                if not page.readable or not page.items:
                    return
                if page.pages is not None and page.pages > total:
                    total = page.pages  # sessions arrived while reading; the budget bounds it
                index += 1
        finally:
            for future in in_flight.values():
                future.cancel()


def archived_pages(
    client: ZaptecClient, window: HistoryWindow, limits: PagingLimits, budget: PageBudget
) -> Iterator[RawPage]:
    """Yield ``GET /api/sessions/archived`` pages of ``window``, following the cursor.

    Raises
    ------
    SyncStopped
        When a page says ``hasMore`` with a cursor already followed (the listing would
        never end).
    """
    cursor: str | None = None
    seen: set[str] = set()
    index = 0
    while True:
        budget.take(window)

        def once(cursor: str | None = cursor, index: int = index) -> RawPage:
            return client.archived_sessions_page(
                index,
                from_utc=window.from_utc,
                to_utc=window.to_utc,
                installation_id=window.installation_id if window.charger_id is None else None,
                charger_id=window.charger_id,
                cursor=cursor,
                page_size=limits.page_size or MAX_ARCHIVED_PAGE_SIZE,
            )

        page = _fetch_readable(once, limits.refetches, f"sessions/archived page {index}")
        yield page
        if not page.readable or not page.has_more:
            return
        assert page.next_cursor is not None  # parse_cursor_page refuses hasMore without one
        if page.next_cursor in seen or page.next_cursor == cursor:
            raise SyncStopped(
                f"sessions/archived returned a cursor it had already given (page {index} of "
                f"the {window.describe()}); stopped instead of reading the same pages again"
            )
        seen.add(page.next_cursor)
        cursor = page.next_cursor
        index += 1


#: Page readers by endpoint name.
PAGE_READERS = {CHARGEHISTORY: chargehistory_pages, ARCHIVED: archived_pages}
