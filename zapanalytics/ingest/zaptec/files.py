"""Ingest a Zaptec API dump from disk: the JSON the cloud API returns, saved as files.

Layout (as written by ``firmware_ref.formats`` and by ``zapanalytics ingest zaptec --save``)::

    zaptec/constants.json                      GET /api/constants
    zaptec/installation_<id>.json              GET /api/installation/{id}
    zaptec/chargers.json                       GET /api/chargers (paged envelope)
    zaptec/chargehistory/page_NNNN.json        GET /api/chargehistory?DetailLevel=1 (paged)
    zaptec/sessions_archived/page_NNNN.json    GET /api/sessions/archived (cursor pages)
    zaptec/observations.jsonl                  state observations, one JSON object per line

Both session folders map to the same rows; a session listed in both is stored once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts, frame_for
from zapanalytics.ingest.isolation import (
    lines_or_quarantine,
    mark_partial,
    read_or_quarantine,
    refuse_unreadable,
)
from zapanalytics.ingest.limits import current_limits
from zapanalytics.ingest.portal.fold import fold_portal_installations
from zapanalytics.ingest.zaptec.admit import (
    ARCHIVED,
    admit_history_pages,
    admit_state_rows,
    with_session_firmware,
)
from zapanalytics.ingest.zaptec.bulk import (
    admit_by_record,
    admit_history_texts,
    batch_bytes,
    batches_by_size,
    envelope_items,
)
from zapanalytics.ingest.zaptec.pages import RawPage, parse_cursor_page
from zapanalytics.ingest.zaptec.records import (
    RecordError,
    charger_row,
    installation_row,
    load_json_text,
    state_names_from_constants,
    state_row,
)
from zapanalytics.ingest.zaptec.states import derive_meter_values
from zapanalytics.store.canonical import resolve_session_copies
from zapanalytics.store.queries import installation_price_area

SOURCE = "zaptec_files"
#: Folders of the dump layout holding the pages of each session listing.
CHARGEHISTORY_DIR = "chargehistory"
ARCHIVED_DIR = "sessions_archived"
#: Archived-listing pages validated and stored per transaction (up to 200 sessions a page).
PAGES_PER_BATCH = 10


def _admit_objects(
    run: IngestRun,
    items: Iterable[Mapping[str, Any]],
    table: str,
    to_row: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> RunCounts:
    """Map each API object to one ``table`` row and admit them as one batch."""
    raw, rows, rejected = [], [], []
    for index, item in enumerate(items):
        raw.append(json.dumps(item, ensure_ascii=False))
        try:
            rows.append({**to_row(item), "_record": index})
        except RecordError as exc:
            rejected.append(Rejection(index, table, str(exc)))
    return run.admit(raw, {table: frame_for(table, rows)}, rejected, record_table=table)


def admit_installations(
    run: IngestRun, items: Iterable[Mapping[str, Any]], *, price_area: str | None
) -> RunCounts:
    """Validate and store installation objects."""
    return _admit_objects(
        run, items, "installations", lambda item: installation_row(item, price_area=price_area)
    )


def admit_chargers(
    run: IngestRun, items: Iterable[Mapping[str, Any]], *, installation_id: str | None = None
) -> RunCounts:
    """Validate and store charger objects."""
    return _admit_objects(
        run, items, "chargers", lambda item: charger_row(item, installation_id=installation_id)
    )


def admit_chargehistory_page(
    run: IngestRun, page_text: str | bytes, *, installation_id: str | None = None
) -> RunCounts:
    """Validate and store one charge-history page; a page that cannot be read is quarantined whole."""
    return admit_chargehistory_pages(run, [page_text], installation_id=installation_id)


def admit_chargehistory_pages(
    run: IngestRun, page_texts: Sequence[str | bytes], *, installation_id: str | None = None
) -> RunCounts:
    """Validate and store charge-history pages item by item, in one batch (one transaction).

    The per-record path alone, without the DuckDB bulk path: each item is a source record,
    a page that cannot be read is one record, quarantined whole with its text. The bulk
    path is held to give exactly what this gives.
    """
    counts, _, _ = admit_by_record(
        run, page_texts, range(len(page_texts)), {}, installation_id
    )
    return counts


def admit_observations(
    run: IngestRun,
    lines: Iterable[str | bytes],
    state_names: Mapping[int, str],
    batch_size: int = 50_000,
) -> RunCounts:
    """Validate and store state observations given as JSON lines, in batches.

    Lines given as bytes are decoded one by one, so a line that is not UTF-8 is quarantined
    alone instead of ending the run.
    """
    counts = RunCounts()
    raw: list[str] = []
    rows: list[dict[str, Any]] = []
    rejected: list[Rejection] = []

    def flush() -> None:
        nonlocal raw, rows, rejected
        if raw:
            counts.__iadd__(admit_state_rows(run, raw, rows, rejected))
        raw, rows, rejected = [], [], []

    for line in lines:
        if not line.strip():
            continue
        index = len(raw)
        text = line.decode("utf-8", "backslashreplace") if isinstance(line, bytes) else line
        raw.append(text.rstrip("\r\n"))
        try:
            rows.append(
                {**state_row(load_json_text(line, "observation"), state_names), "_record": index}
            )
        except RecordError as exc:
            rejected.append(Rejection(index, "charger_states", str(exc)))
        if len(raw) >= batch_size:
            flush()
    flush()
    return counts


def _pages(directory: Path) -> Iterator[Path]:
    yield from sorted(directory.glob("page_*.json"))


def _archived_page(index: int, path: Path) -> RawPage:
    """A saved ``/api/sessions/archived`` page, read as the sync reads one."""
    text = path.read_bytes().decode("utf-8", "replace")
    items, cursor, has_more = parse_cursor_page(text)
    return RawPage(index, text, items, next_cursor=cursor, has_more=has_more)


def _batches_of_pages(pages: Sequence[Path]) -> Iterator[list[Path]]:
    """Pages in batches of at most :func:`bulk.batch_bytes` (by file size; an unreadable
    file counts as empty and is quarantined by the reader)."""
    sizes = []
    for path in pages:
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            sizes.append(0)
    for indices in batches_by_size(sizes, batch_bytes()):
        yield [pages[i] for i in indices]


def ingest_zaptec_dump(
    con: duckdb.DuckDBPyConnection, root: str | Path, *, price_area: str | None = None
) -> RunCounts:
    """Load a Zaptec API dump directory (see module docstring) into the store.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store.
    root : str or Path
        The directory holding ``zaptec/`` (or the ``zaptec`` directory itself).
    price_area : str, optional
        The installation's spot price area (NO1–NO5); Zaptec does not report it.

    Returns
    -------
    RunCounts
        Totals over every record read; ``rows_in = rows_stored + rows_quarantined``.
    """
    root = Path(root)
    base = root / "zaptec" if (root / "zaptec").is_dir() else root
    if not base.is_dir():
        raise FileNotFoundError(f"no Zaptec dump at {root}")
    limits = current_limits()
    # A folder (or an oversized file) where a file is expected is refused, naming it,
    # before anything is committed; an oversized page is quarantined alone further down.
    documents = [base / "constants.json", base / "chargers.json", *base.glob("installation_*.json")]
    refuse_unreadable([p for p in documents if p.exists()], limits, whole=True)
    streams = [*_pages(base / CHARGEHISTORY_DIR), *_pages(base / ARCHIVED_DIR), base / "observations.jsonl"]
    refuse_unreadable([p for p in streams if p.exists()], limits, whole=False)
    partial = False
    constants_path = base / "constants.json"
    state_names = (
        state_names_from_constants(load_json_text(constants_path.read_bytes(), constants_path.name))
        if constants_path.exists()
        else {}
    )
    with IngestRun(con, SOURCE) as run:
        installation_ids = []
        for path in sorted(base.glob("installation_*.json")):
            item = load_json_text(path.read_bytes(), path.name)
            installation_id = item.get("Id") if isinstance(item, Mapping) else None
            installation_ids.append(installation_id)
            area = price_area or installation_price_area(con, installation_id)
            admit_installations(run, [item], price_area=area)
        only_installation = installation_ids[0] if len(installation_ids) == 1 else None
        chargers_path = base / "chargers.json"
        chargers: list[Any] = []
        if chargers_path.exists():
            document = load_json_text(chargers_path.read_bytes(), chargers_path.name)
            try:
                chargers = envelope_items(document)
            except RecordError as exc:
                raise RecordError(chargers_path.name, str(exc)) from None
        pages = list(_pages(base / CHARGEHISTORY_DIR))
        for batch_paths in _batches_of_pages(pages):
            batch, refused = read_or_quarantine(
                run, batch_paths, record_table="sessions", limits=limits
            )
            partial = partial or refused > 0
            admit_history_texts(run, batch, installation_id=only_installation)
        archived = list(_pages(base / ARCHIVED_DIR))
        for first in range(0, len(archived), PAGES_PER_BATCH):
            admit_history_pages(
                run,
                [
                    _archived_page(n, path)
                    for n, path in enumerate(archived[first : first + PAGES_PER_BATCH], first)
                ],
                installation_id=only_installation,
                endpoint=ARCHIVED,
            )
        if chargers:
            # After the sessions: they name the chargers' firmware, the charger list does not.
            filled = iter(
                with_session_firmware(con, [c for c in chargers if isinstance(c, Mapping)])
            )
            admit_chargers(
                run,
                [next(filled) if isinstance(c, Mapping) else c for c in chargers],
                installation_id=only_installation,
            )
        observations = base / "observations.jsonl"
        if observations.exists():
            with observations.open("rb") as handle:
                lines = lines_or_quarantine(
                    run, handle, observations, record_table="charger_states", limits=limits
                )
                admit_observations(run, lines, state_names)
            # Registers (state 554) and measurements as meter_values rows for the analyses.
            derive_meter_values(con, run)
    # An installation made from a portal export that the cloud now reports becomes the
    # cloud's. The cloud's sessions may already be in the store as OCPP or portal copies;
    # only the chargers this run wrote to can have new links, unless a fold moved older rows.
    folded = any(f.folded for f in fold_portal_installations(con))
    resolve_session_copies(con, since=None if folded else run.started_at)
    if partial:
        mark_partial(con, run.run_id)
    return run.counts
