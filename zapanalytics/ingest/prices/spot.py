"""Day-ahead spot prices: hvakosterstrommen.no JSON and ENTSO-E XML into ``prices``.

hvakosterstrommen.no serves one file per area and delivery day,
``/api/v1/prices/{YYYY}/{MM}-{DD}_{AREA}.json``: a list of
``{NOK_per_kWh, EUR_per_kWh, EXR, time_start, time_end}`` with local offsets
(``+01:00``/``+02:00``). A day holds 24 hourly rows, or 96 quarter-hour rows since the
day-ahead market moved to 15-minute products (1 October 2025); on the DST days 23/25 hours
or 92/100 quarters. The prices are taken as published (they appear to exclude VAT).

ENTSO-E's day-ahead ``Publication_MarketDocument`` gives ``TimeSeries`` per bidding zone
(EIC code) in EUR/MWh, each ``Period`` with a UTC ``timeInterval``, a resolution
(``PT15M``/``PT60M``) and numbered ``Point``s. With curve type A03 a missing position
repeats the previous price; with A01 it is a gap. When one document holds both
resolutions for the same zone and day, the finer one is kept.

Every price row is one source record through the door; a file that cannot be read at all is
one quarantined record with its raw text. Days whose rows do not tile the delivery day
exactly are reported, not silently accepted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import httpx

from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts, frame_for
from zapanalytics.ingest.zaptec.records import RecordError, parse_timestamp

SOURCE_HVAKOSTERSTROMMEN = "hvakosterstrommen"
SOURCE_ENTSOE = "entsoe"
HVAKOSTERSTROMMEN_URL = "https://www.hvakosterstrommen.no/api/v1/prices"
#: hvakosterstrommen.no has no prices before this delivery day.
HVAKOSTERSTROMMEN_FIRST_DAY = dt.date(2022, 10, 2)
#: Nordic delivery days run from local midnight to local midnight in this zone.
MARKET_ZONE = ZoneInfo("Europe/Oslo")

#: ENTSO-E bidding-zone EIC codes of the Norwegian price areas.
EIC_AREAS = {
    "10YNO-1--------2": "NO1",
    "10YNO-2--------T": "NO2",
    "10YNO-3--------J": "NO3",
    "10YNO-4--------9": "NO4",
    "10Y1001A1001A48H": "NO5",
}
_RESOLUTION_MINUTES = {"PT15M": 15, "PT30M": 30, "PT60M": 60, "PT1H": 60}
_KWH_PER_UNIT = {"MWH": 1000.0, "KWH": 1.0}


class PriceFileError(ValueError):
    """A price document that cannot be read at all."""


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedPrices:
    """Source records of one document, the rows they gave, and the ones refused."""

    records: list[str]
    rows: list[dict[str, Any]]
    rejected: list[Rejection]
    skipped_points: int = 0


@dataclasses.dataclass(slots=True)
class PriceLoadResult:
    """What a price load did."""

    counts: RunCounts
    area: str
    days_loaded: list[dt.date] = dataclasses.field(default_factory=list)
    missing_days: list[dt.date] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    skipped_points: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts.as_dict(),
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


def _finite(value: object, field: str, *, required: bool) -> float | None:
    if value is None:
        if required:
            raise RecordError(field, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(field, f"expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond the float range
        raise RecordError(field, "not a finite number: an integer beyond the float range") from None
    if not math.isfinite(number):
        raise RecordError(field, f"not a finite number: {value}")
    return number


def hvakosterstrommen_row(item: object, area: str) -> dict[str, Any]:
    """Map one ``{NOK_per_kWh, EUR_per_kWh, EXR, time_start, time_end}`` to a prices row."""
    if not isinstance(item, Mapping):
        raise RecordError("price", "expected a JSON object")
    start = parse_timestamp(item.get("time_start"), "time_start", naive_is_utc=False)
    end = parse_timestamp(item.get("time_end"), "time_end", naive_is_utc=False)
    if end <= start:
        raise RecordError("time_end", "not after time_start")
    nok = _finite(item.get("NOK_per_kWh"), "NOK_per_kWh", required=True)
    eur = _finite(item.get("EUR_per_kWh"), "EUR_per_kWh", required=False)
    _finite(item.get("EXR"), "EXR", required=False)
    return {
        "price_area": area,
        "start_utc": start,
        "end_utc": end,
        "spot_nok_per_kwh": nok,
        "spot_eur_per_kwh": eur,
        "source": SOURCE_HVAKOSTERSTROMMEN,
    }


def parse_hvakosterstrommen(text: str | bytes, area: str) -> ParsedPrices:
    """Parse one hvakosterstrommen.no day file; each row is a record.

    Raises
    ------
    PriceFileError
        When the file is not JSON or not a list.
    """
    try:
        document = json.loads(text.decode("utf-8-sig") if isinstance(text, bytes) else text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PriceFileError(f"not JSON: {exc}") from None
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


# -- ENTSO-E ---------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ET.Element, path: str) -> str | None:
    node: ET.Element | None = element
    for name in path.split("/"):
        node = _child(node, name) if node is not None else None
    return node.text.strip() if node is not None and node.text else None


def parse_entsoe(
    text: str | bytes, *, area: str | None = None, resolution: str | None = None
) -> ParsedPrices:
    """Parse an ENTSO-E day-ahead ``Publication_MarketDocument``; each point is a record.

    Parameters
    ----------
    text : str or bytes
        The XML document.
    area : str, optional
        Keep only this price area (NO1–NO5); other zones are skipped.
    resolution : {"PT15M", "PT60M"}, optional
        Keep only this resolution; by default the finest one per zone and delivery day.

    Raises
    ------
    PriceFileError
        When the document is not XML, declares a DTD, is an acknowledgement (no data), or
        is not a publication document.
    """
    raw = text.decode("utf-8-sig") if isinstance(text, bytes) else text
    if re.search(r"<!DOCTYPE|<!ENTITY", raw, re.IGNORECASE):
        raise PriceFileError("XML with a DTD or entities is refused")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise PriceFileError(f"not XML: {exc}") from None
    kind = _local(root.tag)
    if kind == "Acknowledgement_MarketDocument":
        reason = _text(root, "Reason/text") or "no reason given"
        raise PriceFileError(f"ENTSO-E answered with no data: {reason}")
    if kind != "Publication_MarketDocument":
        raise PriceFileError(f"not a Publication_MarketDocument but {kind}")

    points: list[tuple[dict[str, Any], dict[str, Any] | None, str | None]] = []
    for series in _children(root, "TimeSeries"):
        eic = _text(series, "in_Domain.mRID") or _text(series, "out_Domain.mRID")
        zone = EIC_AREAS.get(eic or "", eic)
        if area is not None and zone != area:
            continue
        currency = (_text(series, "currency_Unit.name") or "EUR").upper()
        unit = (_text(series, "price_Measure_Unit.name") or "MWH").upper()
        curve = _text(series, "curveType") or "A01"
        for period in _children(series, "Period"):
            points.extend(_period_points(period, series, zone, currency, unit, curve))

    if resolution is not None:
        points = [p for p in points if p[0]["resolution"] == resolution]
    finest: dict[tuple[str, dt.date], int] = {}
    for meta, _row, _error in points:
        key = (meta["area"], meta["day"])
        finest[key] = min(finest.get(key, 10_000), meta["minutes"])
    kept = [p for p in points if p[0]["minutes"] == finest[(p[0]["area"], p[0]["day"])]]

    records, rows, rejected = [], [], []
    for index, (meta, row, error) in enumerate(kept):
        records.append(json.dumps({k: v for k, v in meta.items() if k != "day"}, default=str))
        if error is not None:
            rejected.append(Rejection(index, "prices", error))
        else:
            assert row is not None
            rows.append({**row, "_record": index})
    return ParsedPrices(records, rows, rejected, skipped_points=len(points) - len(kept))


def _period_points(
    period: ET.Element, series: ET.Element, zone: str | None, currency: str, unit: str, curve: str
) -> list[tuple[dict[str, Any], dict[str, Any] | None, str | None]]:
    series_id = _text(series, "mRID")
    try:
        start = parse_timestamp(_text(period, "timeInterval/start"), "start", naive_is_utc=False)
        end = parse_timestamp(_text(period, "timeInterval/end"), "end", naive_is_utc=False)
    except RecordError as exc:
        raise PriceFileError(f"TimeSeries {series_id}: bad timeInterval ({exc})") from None
    resolution = _text(period, "resolution") or ""
    minutes = _RESOLUTION_MINUTES.get(resolution)
    if minutes is None:
        raise PriceFileError(f"TimeSeries {series_id}: unsupported resolution {resolution!r}")
    step = dt.timedelta(minutes=minutes)
    count = int((end - start) / step)
    given: dict[int, str | None] = {}
    out: list[tuple[dict[str, Any], dict[str, Any] | None, str | None]] = []

    def meta(position: int, amount: str | None) -> dict[str, Any]:
        slot = start + (position - 1) * step
        return {
            "series": series_id,
            "area": zone,
            "period_start": start.isoformat(),
            "resolution": resolution,
            "minutes": minutes,
            "position": position,
            "price.amount": amount,
            "day": slot.astimezone(MARKET_ZONE).date(),
        }

    for point in _children(period, "Point"):
        position_text = _text(point, "position")
        amount = _text(point, "price.amount")
        position = int(position_text) if position_text and position_text.isdigit() else -1
        if not 1 <= position <= count or position in given:
            info = meta(max(position, 1), amount)
            out.append((info, None, f"Point position {position_text!r} outside 1..{count}"))
            continue
        given[position] = amount

    previous: str | None = None
    for position in range(1, count + 1):
        if position in given:
            amount = given[position]
        elif curve == "A03" and previous is not None:
            amount = previous  # A03: a missing position repeats the previous price
        else:
            continue
        previous = amount
        info = meta(position, amount)
        row, error = _entsoe_row(info, start + (position - 1) * step, step, currency, unit)
        out.append((info, row, error))
    return out


def _entsoe_row(
    meta: Mapping[str, Any],
    slot: dt.datetime,
    step: dt.timedelta,
    currency: str,
    unit: str,
) -> tuple[dict[str, Any] | None, str | None]:
    if meta["area"] not in EIC_AREAS.values():
        return None, f"unknown bidding zone {meta['area']!r}"
    try:
        per_unit = float(meta["price.amount"])
    except (TypeError, ValueError):
        return None, f"price.amount is not a number: {meta['price.amount']!r:.40}"
    if not math.isfinite(per_unit):
        return None, f"price.amount is not finite: {meta['price.amount']!r:.40}"
    if unit not in _KWH_PER_UNIT:
        return None, f"unsupported price unit {unit!r}"
    per_kwh = per_unit / _KWH_PER_UNIT[unit]
    if currency not in ("EUR", "NOK"):
        return None, f"unsupported currency {currency!r}"
    return {
        "price_area": meta["area"],
        "start_utc": slot,
        "end_utc": slot + step,
        "spot_nok_per_kwh": per_kwh if currency == "NOK" else None,
        "spot_eur_per_kwh": per_kwh if currency == "EUR" else None,
        "source": SOURCE_ENTSOE,
    }, None


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


def load_prices(
    con: duckdb.DuckDBPyConnection,
    *,
    area: str,
    first_day: dt.date,
    last_day: dt.date,
    source: str | Path | None = None,
    eur_nok: float | None = None,
    transport: httpx.BaseTransport | None = None,
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

    Returns
    -------
    PriceLoadResult
        Counts, days loaded and missing, and coverage problems (DST-aware).
    """
    if last_day < first_day:
        raise ValueError("the last day is before the first day")
    days = _days(first_day, last_day)
    source = HVAKOSTERSTROMMEN_URL if source is None else source
    is_url = isinstance(source, str) and re.match(r"^https?://", source) is not None
    result = PriceLoadResult(RunCounts(), area)
    with IngestRun(con, "prices") as run:
        result.counts = run.counts
        documents: list[tuple[str, Callable[[], ParsedPrices]]] = []
        if is_url:
            assert isinstance(source, str)
            documents = _url_documents(source, area, days, transport, result)
        else:
            directory = Path(source)
            if not directory.is_dir():
                raise FileNotFoundError(f"no such price directory: {directory}")
            for day in days:
                path = _day_file(directory, area, day)
                if path is not None:
                    data = path.read_bytes()
                    documents.append(
                        (
                            data.decode("utf-8", "replace"),
                            _bind(parse_hvakosterstrommen, data, area),
                        )
                    )
            for path in sorted(directory.rglob("*.xml")):
                data = path.read_bytes()
                documents.append((data.decode("utf-8", "replace"), _bind_entsoe(data, area)))
        wanted = set(days)
        for raw_text, parse in documents:
            try:
                parsed = parse()
            except PriceFileError as exc:
                run.admit([raw_text], {}, [Rejection(0, "prices", str(exc))], record_table="prices")
                result.problems.append(str(exc))
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
        return result


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


def _bind(
    parse: Callable[[bytes, str], ParsedPrices], data: bytes, area: str
) -> Callable[[], ParsedPrices]:
    return lambda: parse(data, area)


def _bind_entsoe(data: bytes, area: str) -> Callable[[], ParsedPrices]:
    return lambda: parse_entsoe(data, area=area)


def _url_documents(
    base: str,
    area: str,
    days: Sequence[dt.date],
    transport: httpx.BaseTransport | None,
    result: PriceLoadResult,
) -> list[tuple[str, Callable[[], ParsedPrices]]]:
    documents = []
    with httpx.Client(timeout=30.0, transport=transport, follow_redirects=True) as http:
        for day in days:
            if day < HVAKOSTERSTROMMEN_FIRST_DAY and "hvakosterstrommen" in base:
                continue
            url = f"{base.rstrip('/')}/{day:%Y}/{day:%m-%d}_{area}.json"
            try:
                response = http.get(url)
            except httpx.HTTPError as exc:
                result.problems.append(f"{day}: {type(exc).__name__} fetching prices")
                continue
            if response.status_code == 404:
                continue
            if response.status_code != 200:
                result.problems.append(f"{day}: HTTP {response.status_code} fetching prices")
                continue
            documents.append(
                (response.text, _bind(parse_hvakosterstrommen, response.content, area))
            )
    return documents


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
