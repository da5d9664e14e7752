"""Incremental sync from the Zaptec cloud API into the store.

One sync, per installation:

1. ``GET /api/installation/{id}`` and its hierarchy → ``installations``;
   ``GET /api/chargers`` → ``chargers`` (circuit ids filled in from the hierarchy, firmware
   from the latest session that names it).
2. Completed sessions, oldest first, page by page → ``sessions`` and ``energy_details``,
   from ``GET /api/sessions/archived`` or ``GET /api/chargehistory`` (``endpoint``; ``auto``
   takes the newer one where the cloud answers it and the older one where it answers 404).
3. ``GET /api/chargers/{id}/state`` for each charger → ``charger_states``, named through
   ``GET /api/constants``, and the readings among them → ``meter_values``.

**Incremental from the data.** Each charger is asked for from its last stored cloud session
less an overlap (:func:`~zapanalytics.ingest.zaptec.history.plan_windows`), not from the
time of the last sync, so the sessions of a charger that was offline for months arrive
whenever the cloud gets them. ``full`` asks for all history again; upserts make every
re-read change nothing.

**Resumable.** Pages are stored in batches, each one transaction through
:class:`~zapanalytics.ingest.door.IngestRun`, oldest first. A sync killed at any point
(exception, Ctrl-C, SIGKILL) leaves whole batches, and the next sync's windows start from
what they hold: the resumed store equals that of one clean sync.

**Every sync ends.** An unreadable page (a proxy's HTML with status 200) is fetched once
more, then quarantined with (a bounded prefix of) its body, and the sync stops with
:class:`~zapanalytics.ingest.zaptec.history.SyncStopped`: the run is ``failed`` with a
one-line reason, nothing after the gap is stored (so no window skips over it), and the next
sync asks again from the sessions before it. Pages per sync are bounded, a repeated cursor
stops the listing, and a 5xx storm ends it with :class:`ZaptecApiError` after the client's
retry budget. An item that cannot be mapped is quarantined alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from zapanalytics.ingest.door import IngestRun, RunCounts
from zapanalytics.ingest.portal.fold import PortalFold, fold_portal_installations
from zapanalytics.ingest.zaptec.admit import (
    ARCHIVED,
    CHARGEHISTORY,
    admit_history_pages,
    admit_states,
    with_session_firmware,
)
from zapanalytics.ingest.zaptec.api import RawPage, ZaptecClient, ZaptecNotFound
from zapanalytics.ingest.zaptec.errors import ZaptecApiError
from zapanalytics.ingest.zaptec.files import (
    ARCHIVED_DIR,
    CHARGEHISTORY_DIR,
    admit_chargers,
    admit_installations,
)
from zapanalytics.ingest.zaptec.history import (
    DEFAULT_MAX_PAGES,
    DEFAULT_OVERLAP,
    DEFAULT_REFETCHES,
    HISTORY_START_UTC,
    PAGE_READERS,
    HistoryWindow,
    PageBudget,
    PagingLimits,
    SyncStopped,
    charger_cursors,
    plan_windows,
)
from zapanalytics.ingest.zaptec.pages import describe_unreadable
from zapanalytics.ingest.zaptec.records import (
    RecordError,
    parse_zaptec_time,
    state_names_from_constants,
)
from zapanalytics.ingest.zaptec.states import derive_meter_values
from zapanalytics.store.canonical import resolve_session_copies
from zapanalytics.store.queries import installation_price_area

__all__ = [
    "DEFAULT_OVERLAP",
    "ENDPOINTS",
    "HISTORY_START_UTC",
    "DumpWriter",
    "HistoryWindow",
    "SyncResult",
    "SyncState",
    "SyncStopped",
    "read_sync_state",
    "sync_zaptec",
]

log = logging.getLogger(__name__)

SOURCE = "zaptec_api"
#: ``endpoint`` choices: the newer listing where it answers, else the older; or either one.
ENDPOINTS = ("auto", ARCHIVED, CHARGEHISTORY)
#: Statuses of ``/api/sessions/archived`` that make ``auto`` use chargehistory instead: not
#: there (404, 405, 410) or not for this user (403: the listing is for installation owners).
_FALLBACK_STATUSES = frozenset({403, 404, 405, 410})

#: ``on_page(installation_id, page_index, total_pages)`` after each fetched history page.
PageCallback = Callable[[str, int, int | None], None]


@dataclasses.dataclass(frozen=True, slots=True)
class SyncState:
    """The stored sync record of one installation: when its last sync finished.

    ``cursor_utc`` is the end of the last finished sync's windows; it is informational, the
    next windows come from the stored sessions. The ``pending_*`` columns are no longer
    written (a resumed sync starts from the stored sessions).
    """

    installation_id: str
    cursor_utc: dt.datetime | None = None


@dataclasses.dataclass(slots=True)
class SyncResult:
    """What a sync did."""

    run_id: str
    counts: RunCounts
    endpoint: str | None = None
    """The session listing used (``archived`` or ``chargehistory``)."""
    installations: list[str] = dataclasses.field(default_factory=list)
    history_pages: int = 0
    """Session pages fetched (each counted once, even when fetched twice)."""
    pages_quarantined: int = 0
    sessions_flagged: int = 0
    """Sessions whose EnergyDetails miss Energy beyond rounding (stored and flagged)."""
    chargers_without_state: list[str] = dataclasses.field(default_factory=list)
    requests: int = 0
    windows: list[HistoryWindow] = dataclasses.field(default_factory=list)
    folded: list[PortalFold] = dataclasses.field(default_factory=list)
    """Installations made from a portal export that the cloud reports (see
    :mod:`~zapanalytics.ingest.portal.fold`)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            **self.counts.as_dict(),
            "endpoint": self.endpoint,
            "installations": self.installations,
            "history_pages": self.history_pages,
            "pages_quarantined": self.pages_quarantined,
            "sessions_flagged": self.sessions_flagged,
            "chargers_without_state": self.chargers_without_state,
            "requests": self.requests,
            "windows": [
                {
                    "installation_id": w.installation_id,
                    "charger_id": w.charger_id,
                    "from_utc": w.from_utc,
                    "to_utc": w.to_utc,
                }
                for w in self.windows
            ],
            "folded": [f.as_dict() for f in self.folded],
        }


# -- sync state -----------------------------------------------------------------------------


def read_sync_state(con: duckdb.DuckDBPyConnection, installation_id: str) -> SyncState:
    """The stored sync record of ``installation_id`` (empty if it was never synced)."""
    row = con.execute(
        "SELECT cursor_utc FROM zaptec_sync_state WHERE installation_id = ?", [installation_id]
    ).fetchall()
    return SyncState(installation_id, row[0][0] if row else None)


def _write_sync_state(con: duckdb.DuckDBPyConnection, state: SyncState) -> None:
    con.execute(
        "INSERT INTO zaptec_sync_state (installation_id, cursor_utc, pending_from_utc,"
        " pending_to_utc, pending_next_page, updated_at) VALUES (?, ?, NULL, NULL, NULL, ?)"
        " ON CONFLICT (installation_id) DO UPDATE SET cursor_utc = EXCLUDED.cursor_utc,"
        " pending_from_utc = NULL, pending_to_utc = NULL, pending_next_page = NULL,"
        " updated_at = EXCLUDED.updated_at",
        [state.installation_id, state.cursor_utc, dt.datetime.now(dt.UTC)],
    ).fetchall()


# -- saving what was fetched ------------------------------------------------------------------


class DumpWriter:
    """Save API responses in the dump layout that ``ingest zaptec --dump`` reads."""

    def __init__(self, root: str | Path):
        self.base = Path(root) / "zaptec"
        self._next_page: dict[str, int] = {}
        for folder in (CHARGEHISTORY_DIR, ARCHIVED_DIR):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
            numbers = [
                int(p.stem.split("_", 1)[1])
                for p in (self.base / folder).glob("page_*.json")
                if p.stem.split("_", 1)[1].isdigit()
            ]
            self._next_page[folder] = max(numbers, default=-1) + 1

    @staticmethod
    def _write(path: Path, text: str) -> None:
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, "utf-8")
        os.replace(partial, path)

    def constants(self, body: Any) -> None:
        self._write(self.base / "constants.json", json.dumps(body, ensure_ascii=False, indent=1))

    def installation(self, body: Mapping[str, Any]) -> None:
        name = f"installation_{body.get('Id')}.json"
        self._write(self.base / name, json.dumps(body, ensure_ascii=False, indent=1))

    def chargers(self, items: Sequence[Mapping[str, Any]]) -> None:
        path = self.base / "chargers.json"
        merged: dict[Any, Any] = {}
        if path.exists():
            merged = {c.get("Id"): c for c in json.loads(path.read_text("utf-8")).get("Data", [])}
        merged.update({c.get("Id"): c for c in items})
        envelope = {"Pages": 1, "Data": list(merged.values()), "Message": None}
        self._write(path, json.dumps(envelope, ensure_ascii=False, indent=1))

    def history_page(self, text: str, endpoint: str = CHARGEHISTORY) -> None:
        """Save a session page as received, in the folder of its endpoint."""
        folder = ARCHIVED_DIR if endpoint == ARCHIVED else CHARGEHISTORY_DIR
        number = self._next_page[folder]
        self._write(self.base / folder / f"page_{number:04d}.json", text)
        self._next_page[folder] = number + 1

    def observations(self, items: Sequence[Mapping[str, Any]]) -> None:
        with (self.base / "observations.jsonl").open("a", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")


# -- syncing --------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _circuits_by_charger(hierarchy: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(hierarchy, Mapping):
        return out
    for circuit in _as_list(hierarchy.get("Circuits")):
        if not isinstance(circuit, Mapping) or not circuit.get("Id"):
            continue
        for charger in _as_list(circuit.get("Chargers")):
            if isinstance(charger, Mapping) and charger.get("Id"):
                out[str(charger["Id"])] = str(circuit["Id"])
    return out


class _EndpointChoice:
    """The session listing of one sync: fixed, or found out on the first call (``auto``)."""

    def __init__(self, requested: str):
        if requested not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
        self.requested = requested
        self.current = CHARGEHISTORY if requested == CHARGEHISTORY else ARCHIVED
        self.settled = requested != "auto"

    def fall_back(self, error: ZaptecApiError) -> bool:
        """Whether ``error`` from the newer listing's first call means "use the older one"."""
        if self.settled or self.current != ARCHIVED or error.status not in _FALLBACK_STATUSES:
            return False
        log.info(
            "GET /api/sessions/archived answered HTTP %s; reading /api/chargehistory instead",
            error.status,
        )
        self.current = CHARGEHISTORY
        self.settled = True
        return True


def sync_zaptec(
    con: duckdb.DuckDBPyConnection,
    client: ZaptecClient,
    *,
    installation_ids: Sequence[str] | None = None,
    since: dt.datetime | None = None,
    full: bool = False,
    endpoint: str = "auto",
    price_area: str | None = None,
    overlap: dt.timedelta = DEFAULT_OVERLAP,
    page_size: int | None = None,
    pages_per_batch: int = 5,
    prefetch: int = 2,
    refetches: int = DEFAULT_REFETCHES,
    max_pages: int = DEFAULT_MAX_PAGES,
    with_states: bool = True,
    save_dir: str | Path | None = None,
    on_page: PageCallback | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> SyncResult:
    """Sync installations, chargers, sessions and charger state into the store.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store (:func:`zapanalytics.store.open_store`).
    client : ZaptecClient
        A client holding the credentials.
    installation_ids : sequence of str, optional
        Only these installations; by default every installation the user sees.
    since : datetime, optional
        Ask for each installation's sessions from this time (aware) instead of from what
        is stored.
    full : bool, default False
        Ask for every installation's whole history again (idempotent).
    endpoint : {"auto", "archived", "chargehistory"}
        The session listing: ``/api/sessions/archived``, ``/api/chargehistory``, or the
        newer one where the cloud answers it and the older one where it answers 403/404.
    price_area : str, optional
        NO1–NO5 for the installations (Zaptec does not report it); when omitted a
        previously stored value is kept.
    overlap : timedelta, default 7 days
        How far before a charger's last stored session its next window starts.
    page_size : int, optional
        Sessions per page; by default the most each listing allows (100 chargehistory,
        200 archived).
    pages_per_batch : int, default 5
        Pages stored per transaction.
    prefetch : int, default 2
        Chargehistory pages fetched ahead while a batch is stored.
    refetches : int, default 1
        Extra fetches of a page whose body is unreadable before the sync stops.
    max_pages : int, default 20000
        Session pages one sync reads at most; past it the sync stops (run it again).
    with_states : bool, default True
        Also read ``/state`` of every charger.
    save_dir : path, optional
        Also save every response in the dump layout (for ``ingest zaptec --dump``).
    on_page : callable, optional
        ``on_page(installation_id, page_index, total_pages)`` after each page is fetched.
    now : callable, optional
        Clock returning an aware datetime (the end of the windows); default UTC now.

    Returns
    -------
    SyncResult

    Raises
    ------
    ZaptecAuthError
        Wrong credentials.
    ZaptecApiError
        A call failed after the retry budget; batches stored before it are whole.
    SyncStopped
        An unreadable page (quarantined), the page limit or a repeated cursor stopped the
        sync; batches stored before it are whole.
    """
    clock = now or (lambda: dt.datetime.now(dt.UTC))
    writer = DumpWriter(save_dir) if save_dir is not None else None
    choice = _EndpointChoice(endpoint)
    limits = PagingLimits(
        page_size=page_size, refetches=max(refetches, 0), max_pages=max_pages, prefetch=prefetch
    )
    budget = PageBudget(max_pages)
    requests_before = client.requests_sent
    with IngestRun(con, SOURCE) as run:
        result = SyncResult(run.run_id, run.counts)
        constants = client.constants()
        if writer:
            writer.constants(constants)
        state_names = state_names_from_constants(constants)
        if installation_ids is None:
            installation_ids = [
                str(item["Id"])
                for item in client.installations()
                if isinstance(item, Mapping) and item.get("Id")
            ]
        for installation_id in installation_ids:
            _sync_installation(
                run,
                client,
                installation_id,
                result=result,
                state_names=state_names,
                since=since,
                full=full,
                choice=choice,
                limits=limits,
                budget=budget,
                price_area=price_area or installation_price_area(con, installation_id),
                overlap=overlap,
                pages_per_batch=pages_per_batch,
                with_states=with_states,
                writer=writer,
                on_page=on_page,
                now=clock(),
            )
            result.installations.append(installation_id)
        result.requests = client.requests_sent - requests_before
    # An installation made from a portal export that the cloud now reports becomes the
    # cloud's; the cloud's sessions may already be in the store as OCPP or portal copies.
    result.folded = fold_portal_installations(con)
    folded = any(f.folded for f in result.folded)
    resolve_session_copies(con, since=None if folded else run.started_at)
    return result


def _sync_installation(
    run: IngestRun,
    client: ZaptecClient,
    installation_id: str,
    *,
    result: SyncResult,
    state_names: Mapping[int, str],
    since: dt.datetime | None,
    full: bool,
    choice: _EndpointChoice,
    limits: PagingLimits,
    budget: PageBudget,
    price_area: str | None,
    overlap: dt.timedelta,
    pages_per_batch: int,
    with_states: bool,
    writer: DumpWriter | None,
    on_page: PageCallback | None,
    now: dt.datetime,
) -> None:
    con = run.con
    detail = client.installation(installation_id)
    if writer and isinstance(detail, Mapping):
        writer.installation(detail)
    admit_installations(run, [detail], price_area=price_area)
    circuits = _circuits_by_charger(client.installation_hierarchy(installation_id))
    chargers = [dict(c) for c in client.chargers(installation_id) if isinstance(c, Mapping)]
    for charger in chargers:
        if not charger.get("CircuitId") and str(charger.get("Id")) in circuits:
            charger["CircuitId"] = circuits[str(charger["Id"])]
    if writer:
        writer.chargers(chargers)
    charger_rows = with_session_firmware(con, chargers)
    admit_chargers(run, charger_rows, installation_id=installation_id)

    charger_ids = [str(c["Id"]) for c in chargers if c.get("Id")]
    windows = plan_windows(
        installation_id,
        charger_ids,
        charger_cursors(con, charger_ids),
        now=now,
        since=since,
        full=full,
        overlap=overlap,
    )
    for window in windows:
        result.windows.append(window)
        _read_window(
            run, client, window, choice, limits, budget, result, pages_per_batch, writer, on_page
        )

    # The sessions just stored may name a newer firmware than the chargers row holds.
    refreshed = with_session_firmware(con, chargers)
    changed = [new for new, old in zip(refreshed, charger_rows, strict=True) if new != old]
    if changed:
        admit_chargers(run, changed, installation_id=installation_id)
    _write_sync_state(con, SyncState(installation_id, cursor_utc=now.replace(microsecond=0)))

    if with_states:
        _sync_states(run, client, chargers, state_names, result, writer)


def _read_window(
    run: IngestRun,
    client: ZaptecClient,
    window: HistoryWindow,
    choice: _EndpointChoice,
    limits: PagingLimits,
    budget: PageBudget,
    result: SyncResult,
    pages_per_batch: int,
    writer: DumpWriter | None,
    on_page: PageCallback | None,
) -> None:
    """Read one window's pages into the store, batch by batch; stop at an unreadable page.

    When the listing fails (a call out of retries, the page limit), the pages read before
    it are stored first: whole pages, oldest first, so the next sync goes on from them.
    """
    while True:
        endpoint = choice.current
        result.endpoint = endpoint
        batch: list[RawPage] = []
        pages = PAGE_READERS[endpoint](client, window, limits, budget)
        while True:
            try:
                page = next(pages)
            except StopIteration:
                break
            except ZaptecApiError as exc:
                if not batch and choice.fall_back(exc):
                    break
                if batch:
                    _store(run, batch, window, endpoint, result)
                raise
            except SyncStopped:
                if batch:
                    _store(run, batch, window, endpoint, result)
                raise
            choice.settled = True  # the listing answered: no more falling back
            result.history_pages += 1
            if writer:
                writer.history_page(page.text, endpoint)
            batch.append(page)
            if on_page:
                on_page(window.installation_id, page.index, page.pages)
            if not page.readable:
                _store(run, batch, window, endpoint, result)
                listing = "sessions/archived" if endpoint == ARCHIVED else endpoint
                raise SyncStopped(
                    f"GET /api/{listing} page {page.index} for the {window.describe()} is "
                    f"{describe_unreadable(page)}; quarantined, sync stopped"
                )
            if len(batch) >= pages_per_batch:
                _store(run, batch, window, endpoint, result)
        if endpoint != choice.current:
            continue  # fell back to the other listing: read this window from it
        if batch:
            _store(run, batch, window, endpoint, result)
        return


def _store(
    run: IngestRun, batch: list[RawPage], window: HistoryWindow, endpoint: str, result: SyncResult
) -> None:
    _counts, bad, flagged = admit_history_pages(
        run, batch, installation_id=window.installation_id, endpoint=endpoint
    )
    result.pages_quarantined += bad
    result.sessions_flagged += flagged
    batch.clear()


def _sync_states(
    run: IngestRun,
    client: ZaptecClient,
    chargers: Sequence[Mapping[str, Any]],
    state_names: Mapping[int, str],
    result: SyncResult,
    writer: DumpWriter | None,
) -> None:
    observations: list[dict[str, Any]] = []
    for charger in chargers:
        charger_id = str(charger.get("Id"))
        try:
            items = client.charger_state(charger_id)
        except ZaptecNotFound:
            log.warning("charger %s has no state (404); skipped", charger_id)
            result.chargers_without_state.append(charger_id)
            continue
        observations.extend(
            {"ChargerId": charger_id, **item} if isinstance(item, Mapping) else item
            for item in items
        )
    if writer:
        writer.observations(observations)
    if observations:
        admit_states(run, observations, state_names)
        # The state snapshot's registers and currents become meter_values rows too.
        derive_meter_values(
            run.con,
            run,
            charger_ids=[str(c.get("Id")) for c in chargers],
            since_utc=_earliest_observation(observations),
        )


def _earliest_observation(observations: list[Any]) -> dt.datetime | None:
    """The earliest readable state timestamp: re-deriving meter values starts there."""
    stamps = []
    for item in observations:
        try:
            stamps.append(parse_zaptec_time(item.get("Timestamp"), "Timestamp"))
        except (AttributeError, RecordError):
            continue
    return min(stamps, default=None)
