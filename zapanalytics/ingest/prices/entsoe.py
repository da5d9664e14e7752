"""ENTSO-E day-ahead ``Publication_MarketDocument`` (XML) into price rows.

ENTSO-E gives ``TimeSeries`` per bidding zone (EIC code) in EUR/MWh, each ``Period`` with a
UTC ``timeInterval``, a resolution (``PT15M``/``PT60M``) and numbered ``Point``s. With curve
type A03 a missing position repeats the previous price; with A01 it is a gap. When one
document holds both resolutions for the same zone and day, the finer one is kept.

The document is read as UTF-8 unless its declaration names another encoding; DTDs and
entities are refused, a Period longer than 400 days and a Point position of more than six
digits are not walked (each such point is one quarantined record).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from zapanalytics.ingest.door import Rejection
from zapanalytics.ingest.prices.documents import (
    MARKET_ZONE,
    SOURCE_ENTSOE,
    ParsedPrices,
    PriceFileError,
)
from zapanalytics.ingest.zaptec.records import RecordError, parse_timestamp

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
#: A Period longer than this is not a day-ahead publication (and would take long to walk).
_MAX_PERIOD = dt.timedelta(days=400)
#: Digits of a Point position: a day-ahead Period has at most 100 × 400 positions.
_MAX_POSITION_DIGITS = 6
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


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
    raw = _xml_text(text)
    if re.search(r"<!DOCTYPE|<!ENTITY", raw, re.IGNORECASE):
        raise PriceFileError("XML with a DTD or entities is refused")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise PriceFileError(f"not XML: {exc}") from None
    except RecursionError:
        raise PriceFileError("not XML: nested too deeply") from None
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


def _xml_text(data: str | bytes) -> str:
    """An XML document as text: UTF-8, or the encoding its declaration names."""
    if isinstance(data, str):
        return data
    declared = _XML_ENCODING.match(data)
    encoding = declared.group(1).decode("ascii").lower() if declared else "utf-8"
    if encoding in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except LookupError:
        raise PriceFileError(f"unknown XML encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise PriceFileError(
            f"not {encoding.removesuffix('-sig').upper()} text (byte 0x{data[exc.start]:02x}"
            f" at offset {exc.start})"
        ) from None
    # The declaration names an encoding the text no longer has; the parser must not apply it.
    return re.sub(r"^(\s*<\?xml[^>]*?)\s+encoding\s*=\s*[\"'][^\"']*[\"']", r"\1", text, count=1)


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
    if not dt.timedelta(0) < end - start <= _MAX_PERIOD:
        raise PriceFileError(
            f"TimeSeries {series_id}: timeInterval {start.isoformat()}/{end.isoformat()} is not"
            f" a period of up to {_MAX_PERIOD.days} days"
        )
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
        readable = (
            position_text is not None
            and position_text.isdigit()
            and len(position_text) <= _MAX_POSITION_DIGITS
        )
        position = int(position_text) if readable else -1
        if not 1 <= position <= count or position in given:
            # The record is placed in its Period (a huge position has no instant to go to).
            info = meta(min(max(position, 1), count), amount)
            info["position"] = position_text if not readable else position
            shown = f"{position_text[:20]}…" if position_text and len(position_text) > 20 else position_text
            out.append((info, None, f"Point position {shown!r} outside 1..{count}"))
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
