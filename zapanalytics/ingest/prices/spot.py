"""Day-ahead spot prices: hvakosterstrommen.no JSON and ENTSO-E XML into ``prices``.

hvakosterstrommen.no serves one file per area and delivery day,
``/api/v1/prices/{YYYY}/{MM}-{DD}_{AREA}.json``: a list of
``{NOK_per_kWh, EUR_per_kWh, EXR, time_start, time_end}`` with local offsets
(``+01:00``/``+02:00``). A day holds 24 hourly rows, or 96 quarter-hour rows since the
day-ahead market moved to 15-minute products (1 October 2025); on the DST days 23/25 hours
or 92/100 quarters. The prices are taken as published (they appear to exclude VAT).

ENTSO-E's day-ahead ``Publication_MarketDocument`` is read by
:mod:`zapanalytics.ingest.prices.entsoe`.

Every price row is one source record through the door; a file that cannot be read at all
(not UTF-8, not JSON/XML, past a limit of :class:`~zapanalytics.ingest.limits.InputLimits`,
a folder named like a file) is one quarantined record naming the file, the run goes on with
the other files and ends ``partial``. Days whose rows do not tile the delivery day exactly
are reported, not silently accepted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import httpx

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts, frame_for
from zapanalytics.ingest.isolation import mark_partial, quarantine_file
from zapanalytics.ingest.limits import (
    InputFileError,
    InputLimits,
    LimitExceeded,
    current_limits,
    load_json,
    read_document,
)
from zapanalytics.ingest.prices.documents import (
    MARKET_ZONE,
    SOURCE_ENTSOE,
    SOURCE_HVAKOSTERSTROMMEN,
    ParsedPrices,
    PriceFileError,
)
from zapanalytics.ingest.prices.entsoe import EIC_AREAS, parse_entsoe
from zapanalytics.ingest.zaptec.records import RecordError, finite_number, parse_timestamp

#: Names other modules import from here (the ENTSO-E reader and shared types moved out).
__all__ = [
    "EIC_AREAS", "MARKET_ZONE", "SOURCE_ENTSOE", "SOURCE_HVAKOSTERSTROMMEN", "ParsedPrices",
    "PriceFileError", "PriceLoadResult", "coverage_problems", "delivery_day_utc",
    "hvakosterstrommen_row", "intervals_in_day", "load_prices", "parse_entsoe",
    "parse_hvakosterstrommen",
]

HVAKOSTERSTROMMEN_URL = "https://www.hvakosterstrommen.no/api/v1/prices"
#: hvakosterstrommen.no has no prices before this delivery day.
HVAKOSTERSTROMMEN_FIRST_DAY = dt.date(2022, 10, 2)


@dataclasses.dataclass(slots=True)
class PriceLoadResult:
    """What a price load did."""

    counts: RunCounts
    area: str
    days_loaded: list[dt.date] = dataclasses.field(default_factory=list)
    missing_days: list[dt.date] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    skipped_points: int = 0
    #: ``partial`` when a document could not be read and was quarantined whole, else ``ok``.
    status: str = "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts.as_dict(),
            "status": self.status,
            "area": self.area,
            "days_loaded": [d.isoformat() for d in self.days_loaded],
            "missing_days": [d.isoformat() for d in self.missing_days],
            "problems": self.problems,
            "skipped_points": self.skipped_points,
        }


# -- the delivery day ------------------------------------------------------------------------


def delivery_day_utc(day: dt.date, zone: ZoneInfo = MARKET_ZONE) -> tuple[dt.datetime, dt.datetime]:
    """UTC start and end of the delivery day ``day`` (local midnight to local midnight)."""
    start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    return start, end


def intervals_in_day(day: dt.date, minutes: int, zone: ZoneInfo = MARKET_ZONE) -> int:
    """Price intervals of ``minutes`` in a delivery day: 23/24/25 hours or 92/96/100 quarters."""
    start, end = delivery_day_utc(day, zone)
    return int((end - start).total_seconds() // (60 * minutes))


def coverage_problems(
    starts_utc: Iterable[dt.datetime],
    ends_utc: Iterable[dt.datetime],
    day: dt.date,
    zone: ZoneInfo = MARKET_ZONE,
) -> list[str]:
    """What keeps the rows of ``day`` from tiling its delivery day exactly (empty: none)."""
    spans = sorted(zip(starts_utc, ends_utc, strict=True))
    if not spans:
        return [f"{day}: no prices"]
    first, last = delivery_day_utc(day, zone)
    problems = []
    minutes = {int((e - s).total_seconds() // 60) for s, e in spans}
    if len(minutes) > 1:
        problems.append(f"{day}: mixed resolutions {sorted(minutes)} min")
    expected = intervals_in_day(day, min(minutes), zone)
    if len(spans) != expected:
        problems.append(f"{day}: {len(spans)} prices, expected {expected} of {min(minutes)} min")
    cursor = first
    for start, end in spans:
        if start > cursor:
            problems.append(f"{day}: no price from {cursor:%H:%M} to {start:%H:%M} UTC")
        elif start < cursor:
            problems.append(f"{day}: overlapping price at {start:%H:%M} UTC")
        cursor = max(cursor, end)
    if cursor < last:
        problems.append(f"{day}: no price from {cursor:%H:%M} to {last:%H:%M} UTC")
    return problems


# -- hvakosterstrommen.no --------------------------------------------------------------------


def hvakosterstrommen_row(item: object, area: str) -> dict[str, Any]:
    """Map one ``{NOK_per_kWh, EUR_per_kWh, EXR, time_start, time_end}`` to a prices row."""
    if not isinstance(item, Mapping):
        raise RecordError("price", "expected a JSON object")
    start = parse_timestamp(item.get("time_start"), "time_start", naive_is_utc=False)
    end = parse_timestamp(item.get("time_end"), "time_end", naive_is_utc=False)
    if end <= start:
        raise RecordError("time_end", "not after time_start")
    nok = finite_number(item.get("NOK_per_kWh"), "NOK_per_kWh", required=True)
    eur = finite_number(item.get("EUR_per_kWh"), "EUR_per_kWh", required=False)
    finite_number(item.get("EXR"), "EXR", required=False)
    return {
        "price_area": area,
        "start_utc": start,
        "end_utc": end,
        "spot_nok_per_kwh": nok,
        "spot_eur_per_kwh": eur,
        "source": SOURCE_HVAKOSTERSTROMMEN,
    }


def parse_hvakosterstrommen(
    text: str | bytes, area: str, limits: InputLimits | None = None
) -> ParsedPrices:
    """Parse one hvakosterstrommen.no day file; each row is a record.

    Raises
    ------
    PriceFileError
        When the file is not UTF-8, not JSON, past a limit, or not a list.
    """
    limits = current_limits(limits)
    try:
        document = load_json(text, "document", limits)
    except InputFileError as exc:
        raise PriceFileError(exc.problem) from None
    if not isinstance(document, list):
        raise PriceFileError("expected a JSON list of prices")
    records, rows, rejected = [], [], []
    for index, item in enumerate(document):
        records.append(json.dumps(item, ensure_ascii=False))
        try:
            rows.append({**hvakosterstrommen_row(item, area), "_record": index})
        except RecordError as exc:
            rejected.append(Rejection(index, "prices", str(exc)))
    return ParsedPrices(records, rows, rejected)


# -- loading ---------------------------------------------------------------------------------


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _day_file(directory: Path, area: str, day: dt.date) -> Path | None:
    """The hvakosterstrommen-shaped file of ``day`` in the layouts we know, if any."""
    name = f"{day:%Y-%m-%d}.json"
    for candidate in (
        directory / "prices" / area / name,
        directory / area / name,
        directory / f"{day:%Y}" / f"{day:%m-%d}_{area}.json",
    ):
        if candidate.is_file():
            return candidate
    return None


def _row_day(row: Mapping[str, Any]) -> dt.date:
    return row["start_utc"].astimezone(MARKET_ZONE).date()


@dataclasses.dataclass(frozen=True, slots=True)
class _Document:
    """One price document to read: a file under ``--source`` (read when its turn comes) or a
    fetched URL body."""

    name: str
    parse: Callable[[bytes, InputLimits], ParsedPrices]
    path: Path | None = None
    body: bytes | None = None


def load_prices(
    con: duckdb.DuckDBPyConnection,
    *,
    area: str,
    first_day: dt.date,
    last_day: dt.date,
    source: str | Path | None = None,
    eur_nok: float | None = None,
    transport: httpx.BaseTransport | None = None,
    limits: InputLimits | None = None,
) -> PriceLoadResult:
    """Load spot prices of ``area`` for the delivery days ``first_day`` … ``last_day``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store.
    area : str
        NO1–NO5.
    first_day, last_day : date
        Delivery days, both included.
    source : str or Path, optional
        A directory (``prices/<AREA>/<YYYY-MM-DD>.json``, ``<AREA>/<YYYY-MM-DD>.json``,
        ``<YYYY>/<MM-DD>_<AREA>.json``, and any ENTSO-E ``*.xml`` below it) or a base URL
        in the hvakosterstrommen.no scheme. Default: hvakosterstrommen.no.
    eur_nok : float, optional
        Exchange rate [NOK/EUR] to fill NOK prices of ENTSO-E rows (which are in EUR).
    transport : httpx.BaseTransport, optional
        For tests of the URL path.
    limits : InputLimits, optional
        Reader limits (``max_document_bytes`` per file, ``max_json_depth``); default
        :meth:`InputLimits.from_env`.

    Returns
    -------
    PriceLoadResult
        Counts, days loaded and missing, and coverage problems (DST-aware). A document that
        cannot be read is quarantined whole, named in ``problems``, and the run is ``partial``.
    """
    if last_day < first_day:
        raise ValueError("the last day is before the first day")
    limits = current_limits(limits)
    days = _days(first_day, last_day)
    source = HVAKOSTERSTROMMEN_URL if source is None else source
    is_url = isinstance(source, str) and re.match(r"^https?://", source) is not None
    result = PriceLoadResult(RunCounts(), area)
    partial = False
    with IngestRun(con, "prices") as run:
        result.counts = run.counts
        if is_url:
            assert isinstance(source, str)
            documents = _url_documents(source, area, days, transport, result, limits)
        else:
            directory = Path(source)
            if not directory.is_dir():
                raise FileNotFoundError(f"no such price directory: {directory}")
            documents = _directory_documents(directory, area, days)
        wanted = set(days)
        for document in documents:
            try:
                data = document.body if document.path is None else read_document(document.path, limits)
                assert data is not None
                parsed = document.parse(data, limits)
            except (PriceFileError, InputFileError) as exc:
                reason = _file_reason(document, exc)
                if document.path is not None:
                    quarantine_file(run, document.path, reason, record_table="prices", limits=limits)
                else:
                    raw = (document.body or b"").decode("utf-8", "replace")
                    run.admit([raw], {}, [Rejection(0, "prices", reason)], record_table="prices")
                result.problems.append(reason)
                partial = True
                continue
            keep = [i for i, r in enumerate(parsed.rows) if _row_day(r) in wanted]
            rows = [parsed.rows[i] for i in keep]
            if eur_nok is not None:
                for row in rows:
                    if row["spot_nok_per_kwh"] is None and row["spot_eur_per_kwh"] is not None:
                        row["spot_nok_per_kwh"] = row["spot_eur_per_kwh"] * eur_nok
            records, rows, rejected = _restrict(parsed, rows)
            result.skipped_points += parsed.skipped_points
            if not records:
                continue
            run.admit(
                records, {"prices": frame_for("prices", rows)}, rejected, record_table="prices"
            )
        stored = _stored_spans(con, area, days)
        for day in days:
            spans = stored.get(day, [])
            if not spans:
                result.missing_days.append(day)
                continue
            result.days_loaded.append(day)
            result.problems.extend(
                coverage_problems([s for s, _ in spans], [e for _, e in spans], day)
            )
    if partial:
        mark_partial(con, run.run_id)
        result.status = "partial"
    return result


def _file_reason(document: _Document, exc: Exception) -> str:
    """The quarantine reason for a document that could not be read, naming it once."""
    if isinstance(exc, InputFileError):
        problem = exc.problem
    else:
        problem = str(exc)
    name = document.path.name if document.path is not None else document.name
    return f"{name}: {problem}"


def _directory_documents(directory: Path, area: str, days: Sequence[dt.date]) -> list[_Document]:
    """The day files and ENTSO-E documents under ``directory`` (read later, one at a time)."""
    documents = []
    for day in days:
        path = _day_file(directory, area, day)
        if path is not None:
            documents.append(_Document(str(path), _bind_hvakosterstrommen(area), path=path))
    for path in sorted(directory.rglob("*.xml")):
        documents.append(_Document(str(path), _bind_entsoe(area), path=path))
    return documents


def _restrict(
    parsed: ParsedPrices, rows: list[dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]], list[Rejection]]:
    """Renumber the records of ``parsed`` to the kept rows plus the rejected ones."""
    keep = sorted({r["_record"] for r in rows} | {r.record for r in parsed.rejected})
    position = {old: new for new, old in enumerate(keep)}
    records = [parsed.records[i] for i in keep]
    new_rows = [{**r, "_record": position[r["_record"]]} for r in rows]
    rejected = [
        Rejection(position[r.record], r.table, r.reason)
        for r in parsed.rejected
        if r.record in position
    ]
    return records, new_rows, rejected


def _bind_hvakosterstrommen(area: str) -> Callable[[bytes, InputLimits], ParsedPrices]:
    return lambda data, limits: parse_hvakosterstrommen(data, area, limits)


def _bind_entsoe(area: str) -> Callable[[bytes, InputLimits], ParsedPrices]:
    return lambda data, limits: parse_entsoe(data, area=area)


def _url_documents(
    base: str,
    area: str,
    days: Sequence[dt.date],
    transport: httpx.BaseTransport | None,
    result: PriceLoadResult,
    limits: InputLimits,
) -> list[_Document]:
    documents = []
    with httpx.Client(timeout=30.0, transport=transport, follow_redirects=True) as http:
        for day in days:
            if day < HVAKOSTERSTROMMEN_FIRST_DAY and "hvakosterstrommen" in base:
                continue
            url = f"{base.rstrip('/')}/{day:%Y}/{day:%m-%d}_{area}.json"
            try:
                status, body = _fetch_bounded(http, url, limits)
            except httpx.HTTPError as exc:
                result.problems.append(f"{day}: {type(exc).__name__} fetching prices")
                continue
            except LimitExceeded as exc:
                result.problems.append(f"{day}: {exc}")
                continue
            if status == 404:
                continue
            if status != 200:
                result.problems.append(f"{day}: HTTP {status} fetching prices")
                continue
            documents.append(_Document(url, _bind_hvakosterstrommen(area), body=body))
    return documents


def _fetch_bounded(http: httpx.Client, url: str, limits: InputLimits) -> tuple[int, bytes]:
    """GET ``url`` reading at most ``max_document_bytes`` of its body."""
    with http.stream("GET", url) as response:
        if response.status_code != 200:
            return response.status_code, b""
        body = bytearray()
        for chunk in response.iter_bytes():
            body.extend(chunk)
            if len(body) > limits.max_document_bytes:
                raise LimitExceeded(url, "max_document_bytes", limits.max_document_bytes,
                                    "a larger answer")
        return response.status_code, bytes(body)


def _stored_spans(
    con: duckdb.DuckDBPyConnection, area: str, days: Sequence[dt.date]
) -> dict[dt.date, list[tuple[dt.datetime, dt.datetime]]]:
    first, _ = delivery_day_utc(days[0])
    _, last = delivery_day_utc(days[-1])
    rows = con.execute(
        "SELECT start_utc, end_utc FROM prices WHERE price_area = ? AND start_utc >= ?"
        " AND start_utc < ? ORDER BY start_utc",
        [area, first, last],
    ).fetchall()
    out: dict[dt.date, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for start, end in rows:
        start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        out[start.astimezone(MARKET_ZONE).date()].append((start, end))
    return out
