"""Incremental sync from the Zaptec cloud API into the store.

One sync, per installation:

1. ``GET /api/installation/{id}`` and its hierarchy → ``installations``;
   ``GET /api/chargers`` → ``chargers`` (circuit ids filled in from the hierarchy).
2. ``GET /api/chargehistory`` with ``DetailLevel=1``, oldest first, page by page over a
   window ``[From, To]`` → ``sessions`` and ``energy_details``.
3. ``GET /api/chargers/{id}/state`` for each charger → ``charger_states``, named through
   ``GET /api/constants``.

**Incremental.** ``zaptec_sync_state`` keeps a cursor per installation: charge history is
complete up to ``cursor_utc`` as of the last finished sync. The next sync asks only for
``From = cursor − overlap``. The overlap (7 days by default) finds the sessions of a charger
that was offline: they reach the cloud late, long after they started. Zaptec does not say
whether ``From``/``To`` filter on start or end time; asking again for the overlap makes the
sync correct either way.

**Resumable.** Before the first page the window is written to ``zaptec_sync_state``, and
after each batch of pages is stored the next page index is. A sync killed at any point
(exception, Ctrl-C, SIGKILL) resumes at the first page not yet stored. Each batch is one
transaction through :class:`~zapanalytics.ingest.door.IngestRun`, and upserts are
idempotent, so the resumed store equals that of one clean sync.

**Bad input.** A page that is not a readable ``{Pages, Data}`` envelope is fetched once more
and, if still unreadable, quarantined whole with its raw JSON; an item that cannot be
mapped is quarantined alone. A 5xx storm ends the sync with :class:`ZaptecApiError` after
the client's retry budget; everything stored before it is whole, and the next run resumes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from zapanalytics.ingest.door import IngestRun, RunCounts
from zapanalytics.ingest.zaptec.admit import admit_history_pages, admit_states
from zapanalytics.ingest.zaptec.api import MAX_PAGE_SIZE, RawPage, ZaptecClient, ZaptecNotFound
from zapanalytics.ingest.zaptec.files import admit_chargers, admit_installations
from zapanalytics.ingest.zaptec.records import (
    RecordError,
    parse_zaptec_time,
    state_names_from_constants,
)
from zapanalytics.ingest.zaptec.states import derive_meter_values

log = logging.getLogger(__name__)

SOURCE = "zaptec_api"
#: How far before the cursor an incremental sync asks again, for late offline sessions.
DEFAULT_OVERLAP = dt.timedelta(days=7)
#: Where a first sync starts when no ``since`` is given (before the first Zaptec charger).
HISTORY_START_UTC = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)

#: ``on_page(installation_id, page_index, total_pages)`` after each fetched history page.
PageCallback = Callable[[str, int, int | None], None]


@dataclasses.dataclass(frozen=True, slots=True)
class SyncState:
    """The stored sync position of one installation."""

    installation_id: str
    cursor_utc: dt.datetime | None = None
    pending_from_utc: dt.datetime | None = None
    pending_to_utc: dt.datetime | None = None
    pending_next_page: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryWindow:
    """The charge-history window a sync asks for, and the page it starts at."""

    from_utc: dt.datetime
    to_utc: dt.datetime
    start_page: int
    resumed: bool


@dataclasses.dataclass(slots=True)
class SyncResult:
    """What a sync did."""

    run_id: str
    counts: RunCounts
    installations: list[str] = dataclasses.field(default_factory=list)
    history_pages: int = 0
    """Charge-history pages fetched (each counted once, even when fetched twice)."""
    pages_quarantined: int = 0
    sessions_flagged: int = 0
    """Sessions whose EnergyDetails miss Energy beyond rounding (stored and flagged)."""
    chargers_without_state: list[str] = dataclasses.field(default_factory=list)
    requests: int = 0
    windows: dict[str, HistoryWindow] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            **self.counts.as_dict(),
            "installations": self.installations,
            "history_pages": self.history_pages,
            "pages_quarantined": self.pages_quarantined,
            "sessions_flagged": self.sessions_flagged,
            "chargers_without_state": self.chargers_without_state,
            "requests": self.requests,
            "windows": {
                k: {"from_utc": w.from_utc, "to_utc": w.to_utc, "resumed": w.resumed}
                for k, w in self.windows.items()
            },
        }


# -- sync state -----------------------------------------------------------------------------


def read_sync_state(con: duckdb.DuckDBPyConnection, installation_id: str) -> SyncState:
    """The stored position of ``installation_id`` (empty if it was never synced)."""
    row = con.execute(
        "SELECT cursor_utc, pending_from_utc, pending_to_utc, pending_next_page"
        " FROM zaptec_sync_state WHERE installation_id = ?",
        [installation_id],
    ).fetchall()
    if not row:
        return SyncState(installation_id)
    return SyncState(installation_id, *row[0])


def _write_sync_state(con: duckdb.DuckDBPyConnection, state: SyncState) -> None:
    con.execute(
        "INSERT INTO zaptec_sync_state (installation_id, cursor_utc, pending_from_utc,"
        " pending_to_utc, pending_next_page, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (installation_id) DO UPDATE SET cursor_utc = EXCLUDED.cursor_utc,"
        " pending_from_utc = EXCLUDED.pending_from_utc, pending_to_utc = EXCLUDED.pending_to_utc,"
        " pending_next_page = EXCLUDED.pending_next_page, updated_at = EXCLUDED.updated_at",
        [
            state.installation_id,
            state.cursor_utc,
            state.pending_from_utc,
            state.pending_to_utc,
            state.pending_next_page,
            dt.datetime.now(dt.UTC),
        ],
    ).fetchall()


def plan_window(
    state: SyncState,
    *,
    now: dt.datetime,
    since: dt.datetime | None = None,
    overlap: dt.timedelta = DEFAULT_OVERLAP,
) -> HistoryWindow:
    """Choose the charge-history window of the next sync (pure).

    A pending window is resumed unless ``since`` asks for a different start. Otherwise the
    window runs from ``since``, or from the cursor minus ``overlap``, or from
    :data:`HISTORY_START_UTC`, up to ``now`` (whole seconds).
    """
    pending = (
        state.pending_from_utc is not None
        and state.pending_to_utc is not None
        and state.pending_next_page is not None
    )
    if pending and (since is None or since == state.pending_from_utc):
        assert (
            state.pending_from_utc and state.pending_to_utc and state.pending_next_page is not None
        )
        return HistoryWindow(
            state.pending_from_utc, state.pending_to_utc, state.pending_next_page, True
        )
    if since is not None:
        start = since
    elif state.cursor_utc is not None:
        start = state.cursor_utc - overlap
    else:
        start = HISTORY_START_UTC
    to_utc = now.astimezone(dt.UTC).replace(microsecond=0)
    return HistoryWindow(start.astimezone(dt.UTC), to_utc, 0, False)


# -- saving what was fetched ------------------------------------------------------------------


class DumpWriter:
    """Save API responses in the dump layout that ``ingest zaptec --dump`` reads."""

    def __init__(self, root: str | Path):
        self.base = Path(root) / "zaptec"
        (self.base / "chargehistory").mkdir(parents=True, exist_ok=True)
        numbers = [
            int(p.stem.split("_", 1)[1])
            for p in (self.base / "chargehistory").glob("page_*.json")
            if p.stem.split("_", 1)[1].isdigit()
        ]
        self._next_page = max(numbers, default=-1) + 1

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

    def history_page(self, text: str) -> None:
        self._write(self.base / "chargehistory" / f"page_{self._next_page:04d}.json", text)
        self._next_page += 1

    def observations(self, items: Sequence[Mapping[str, Any]]) -> None:
        with (self.base / "observations.jsonl").open("a", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")


# -- fetching -------------------------------------------------------------------------------


def _history_pages(
    client: ZaptecClient,
    installation_id: str,
    window: HistoryWindow,
    page_size: int,
    prefetch: int,
) -> Iterator[RawPage]:
    """Yield history pages from ``window.start_page`` on, fetching ahead in threads.

    An unreadable page is fetched once more before it is yielded as it is. After an
    unreadable page the next one is always tried, since its body could not say how many
    pages there are.
    """

    def fetch(index: int) -> RawPage:
        def once() -> RawPage:
            return client.charge_history_page(
                index,
                installation_id=installation_id,
                from_utc=window.from_utc,
                to_utc=window.to_utc,
                page_size=page_size,
            )

        page = once()
        if page.items is None:
            log.warning("chargehistory page %d unreadable, fetching it again", index)
            page = once()
        return page

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(prefetch, 1)) as pool:
        index = window.start_page
        first = fetch(index)
        total = first.pages
        in_flight: dict[int, concurrent.futures.Future[RawPage]] = {}
        current: RawPage | None = first
        try:
            while current is not None:
                if current.pages is not None:
                    total = current.pages
                last = (
                    total is not None
                    and current.items is not None
                    and (index + 1 >= total or not current.items)
                )
                if not last:
                    end = index + 1 + max(prefetch, 1)
                    if total is not None:
                        end = min(end, total)
                    for ahead in range(index + 1, max(end, index + 2)):
                        if ahead not in in_flight:
                            in_flight[ahead] = pool.submit(fetch, ahead)
                yield current
                if last:
                    return
                index += 1
                current = in_flight.pop(index).result()
        finally:
            for future in in_flight.values():
                future.cancel()


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


def _stored_price_area(con: duckdb.DuckDBPyConnection, installation_id: str) -> str | None:
    rows = con.execute(
        "SELECT price_area FROM installations WHERE installation_id = ?", [installation_id]
    ).fetchall()
    return rows[0][0] if rows else None


def sync_zaptec(
    con: duckdb.DuckDBPyConnection,
    client: ZaptecClient,
    *,
    installation_ids: Sequence[str] | None = None,
    since: dt.datetime | None = None,
    price_area: str | None = None,
    overlap: dt.timedelta = DEFAULT_OVERLAP,
    page_size: int = MAX_PAGE_SIZE,
    pages_per_batch: int = 5,
    prefetch: int = 2,
    with_states: bool = True,
    save_dir: str | Path | None = None,
    on_page: PageCallback | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> SyncResult:
    """Sync installations, chargers, charge history and charger state into the store.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store (:func:`zapanalytics.store.open_store`).
    client : ZaptecClient
        A client holding the credentials.
    installation_ids : sequence of str, optional
        Only these installations; by default every installation the user sees.
    since : datetime, optional
        Ask for charge history from this time (aware) instead of from the cursor.
    price_area : str, optional
        NO1–NO5 for the installations (Zaptec does not report it); when omitted a
        previously stored value is kept.
    overlap : timedelta, default 7 days
        How far before the cursor an incremental sync asks again.
    page_size : int, default 100
        Charge-history ``PageSize`` (at most 100).
    pages_per_batch : int, default 5
        Pages stored per transaction; the resume point advances per batch.
    prefetch : int, default 2
        Pages fetched ahead while a batch is stored.
    with_states : bool, default True
        Also read ``/state`` of every charger.
    save_dir : path, optional
        Also save every response in the dump layout (for ``ingest zaptec --dump``).
    on_page : callable, optional
        ``on_page(installation_id, page_index, total_pages)`` after each page is fetched.
    now : callable, optional
        Clock returning an aware datetime (the end of the history window); default UTC now.

    Returns
    -------
    SyncResult

    Raises
    ------
    ZaptecAuthError
        Wrong credentials.
    ZaptecApiError
        A call failed after the retry budget; pages stored before it are whole.
    """
    clock = now or (lambda: dt.datetime.now(dt.UTC))
    writer = DumpWriter(save_dir) if save_dir is not None else None
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
                price_area=price_area or _stored_price_area(con, installation_id),
                overlap=overlap,
                page_size=page_size,
                pages_per_batch=pages_per_batch,
                prefetch=prefetch,
                with_states=with_states,
                writer=writer,
                on_page=on_page,
                now=clock(),
            )
            result.installations.append(installation_id)
        result.requests = client.requests_sent - requests_before
        return result


def _sync_installation(
    run: IngestRun,
    client: ZaptecClient,
    installation_id: str,
    *,
    result: SyncResult,
    state_names: Mapping[int, str],
    since: dt.datetime | None,
    price_area: str | None,
    overlap: dt.timedelta,
    page_size: int,
    pages_per_batch: int,
    prefetch: int,
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
    admit_chargers(run, chargers, installation_id=installation_id)

    state = read_sync_state(con, installation_id)
    window = plan_window(state, now=now, since=since, overlap=overlap)
    result.windows[installation_id] = window
    if window.from_utc <= window.to_utc:
        _write_sync_state(
            con,
            dataclasses.replace(
                state,
                pending_from_utc=window.from_utc,
                pending_to_utc=window.to_utc,
                pending_next_page=window.start_page,
            ),
        )
        batch: list[RawPage] = []

        def store(batch: list[RawPage]) -> None:
            _counts, bad, flagged = admit_history_pages(run, batch, installation_id=installation_id)
            result.pages_quarantined += bad
            result.sessions_flagged += flagged
            _write_sync_state(
                con,
                dataclasses.replace(
                    state,
                    pending_from_utc=window.from_utc,
                    pending_to_utc=window.to_utc,
                    pending_next_page=batch[-1].index + 1,
                ),
            )

        for page in _history_pages(client, installation_id, window, page_size, prefetch):
            result.history_pages += 1
            if writer:
                writer.history_page(page.text)
            batch.append(page)
            if on_page:
                on_page(installation_id, page.index, page.pages)
            if len(batch) >= pages_per_batch:
                store(batch)
                batch = []
        if batch:
            store(batch)
        cursor = max(filter(None, (state.cursor_utc, window.to_utc)))
        _write_sync_state(con, SyncState(installation_id, cursor_utc=cursor))

    if with_states:
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
                con,
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
