"""What the fake Zaptec cloud answers on its session listings and report (pure functions).

:class:`~zapanalytics.testing.zaptec_fake.ZaptecFake` serves HTTP, tokens, rate limits and
faults; this module decides the bodies of ``GET /api/chargehistory`` (``{Pages, Data}``,
0-based ``PageIndex``), ``GET /api/sessions/archived`` (``{sessions, cursor, hasMore}``,
an opaque cursor bound to its query) and ``POST /api/chargehistory/installationreport``
from a :class:`~zapanalytics.testing.zaptec_account.FakeData` and the cloud's clock.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from zapanalytics.ingest.zaptec.records import RecordError, parse_zaptec_time
from zapanalytics.testing.zaptec_account import FakeData

#: (status, extra headers, body) of an answer.
Answer = tuple[int, dict[str, str], str]
#: Whether the cloud has a session that arrived at this time (its clock).
Visible = Callable[[dt.datetime | None], bool]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_ARCHIVED_PAGE_SIZE = 200
_HISTORY_SORT_FIELDS = {
    "startdatetime": "StartDateTime",
    "enddatetime": "EndDateTime",
    "commitenddatetime": "CommitEndDateTime",
    "energy": "Energy",
}


def history_answer(
    data: FakeData, query: Mapping[str, str], *, visible: Visible, filter_field: str
) -> Answer:
    """``GET /api/chargehistory``: a ``{Pages, Data}`` page of completed sessions."""
    page_size, page_index = _paging(query)
    from_utc = _query_time(query, "from")
    to_utc = _query_time(query, "to")
    installation = query.get("installationid")
    charger = query.get("chargerid")
    detail = query.get("detaillevel", "0") == "1"
    sessions = data.sessions
    by_start = filter_field == "StartDateTime"
    if by_start and (from_utc or to_utc):
        starts = [s.start for s in sessions]
        low = bisect.bisect_left(starts, from_utc) if from_utc else 0
        high = bisect.bisect_right(starts, to_utc) if to_utc else len(sessions)
        sessions = sessions[low:high]
    chosen = []
    for s in sessions:
        if not visible(s.arrival):
            continue
        if installation is not None and s.installation_id != installation:
            continue
        if charger is not None and str(s.item.get("ChargerId")) != charger:
            continue
        if not by_start:
            if s.arrival is None:
                continue
            if (from_utc and s.arrival < from_utc) or (to_utc and s.arrival > to_utc):
                continue
        chosen.append(s)
    field = _HISTORY_SORT_FIELDS.get(query.get("sortproperty", "startdatetime").lower())
    if field is None:
        raise BadRequest(f"unknown SortProperty {query.get('sortproperty')!r}")
    descending = query.get("sortdescending", "false").lower() == "true"
    if field != "StartDateTime" or descending:
        chosen.sort(key=lambda s: (str(s.item.get(field) or ""), str(s.item.get("Id"))))
        if descending:
            chosen.reverse()
    pages = -(-len(chosen) // page_size)
    window = chosen[page_index * page_size : (page_index + 1) * page_size]
    items = ",".join(s.json_full if detail else s.json_summary for s in window)
    return 200, {}, f'{{"Pages":{pages},"Data":[{items}],"Message":null}}'


def archived_answer(
    data: FakeData, query: Mapping[str, str], *, visible: Visible, filter_field: str
) -> Answer:
    """``GET /api/sessions/archived``: a ``{sessions, cursor, hasMore}`` page."""
    from_utc, to_utc = _query_time(query, "from"), _query_time(query, "to")
    if from_utc is None or to_utc is None:
        raise BadRequest("From and To are required")
    installation, charger = query.get("installationid"), query.get("chargerid")
    if (installation is None) == (charger is None):
        raise BadRequest("Give exactly one of InstallationId and ChargerId")
    try:
        page_size = int(query.get("pagesize", DEFAULT_PAGE_SIZE))
    except ValueError:
        raise BadRequest("PageSize must be an integer") from None
    if not 1 <= page_size <= MAX_ARCHIVED_PAGE_SIZE:
        raise BadRequest(f"PageSize must be between 1 and {MAX_ARCHIVED_PAGE_SIZE}")
    by_end = filter_field == "endDateTime"
    chosen = []
    for s in data.sessions:
        if not visible(s.arrival):
            continue
        if installation is not None and s.installation_id != installation:
            continue
        if charger is not None and str(s.item.get("ChargerId")) != charger:
            continue
        stamp = s.end if by_end else s.arrival
        if stamp is None or not from_utc <= stamp <= to_utc:
            continue
        chosen.append((stamp, str(s.item.get("Id")), s))
    chosen.sort(key=lambda entry: entry[:2])
    offset = _read_cursor(query.get("cursor"), query)
    window = chosen[offset : offset + page_size]
    has_more = offset + page_size < len(chosen)
    cursor = _make_cursor(offset + page_size, query) if has_more else None
    items = ",".join(s.json_archived for _, _, s in window)
    return (
        200,
        {},
        f'{{"sessions":[{items}],"cursor":{json.dumps(cursor)},'
        f'"hasMore":{"true" if has_more else "false"}}}',
    )


def report_answer(data: FakeData, body: bytes, *, visible: Visible) -> Answer:
    """``POST /api/chargehistory/installationreport``: totals per user, charger or card."""
    try:
        request = json.loads(body or b"{}")
        from_utc = parse_zaptec_time(request["fromDate"], "fromDate")
        to_utc = parse_zaptec_time(request["endDate"], "endDate")
        installation_id = request["installationId"]
    except (json.JSONDecodeError, KeyError, TypeError, RecordError) as exc:
        raise BadRequest(f"bad report request: {exc}") from None
    installation = data.installations.get(installation_id)
    if installation is None:
        return json_answer(404, {"errorCode": 540, "message": "Installation not found."})
    group_by = int(request.get("groupBy", 0))
    groups: dict[str, dict[str, Any]] = {}
    for s in data.sessions:
        item = s.item
        if s.installation_id != installation_id or not visible(s.arrival):
            continue
        if not from_utc <= s.start <= to_utc or (item.get("CommitMetadata") or 0) & 32:
            continue
        if group_by == 0:
            key = item.get("UserFullName") or ""
        elif group_by == 1:
            key = item.get("DeviceName") or item.get("DeviceId") or ""
        else:
            key = item.get("TokenName") or ""
        group = groups.setdefault(
            key,
            {
                "GroupAsString": key,
                "UserDetails": {
                    "Id": item.get("UserId"),
                    "Email": item.get("UserEmail"),
                    "FullName": item.get("UserFullName"),
                }
                if group_by == 0
                else None,
                "TotalChargeSessionCount": 0,
                "TotalChargeSessionEnergy": 0.0,
                "TotalChargeSessionDuration": 0.0,
            },
        )
        end = item.get("CommitEndDateTime") or item.get("EndDateTime")
        hours = (parse_zaptec_time(end, "EndDateTime") - s.start).total_seconds() / 3600
        group["TotalChargeSessionCount"] += 1
        group["TotalChargeSessionEnergy"] = round(
            group["TotalChargeSessionEnergy"] + float(item.get("Energy") or 0.0), 3
        )
        group["TotalChargeSessionDuration"] = round(group["TotalChargeSessionDuration"] + hours, 4)
    return json_answer(
        200,
        {
            "InstallationName": installation.get("Name"),
            "InstallationAddress": installation.get("Address"),
            "InstallationZipCode": installation.get("ZipCode"),
            "InstallationCity": installation.get("City"),
            "InstallationTimeZone": installation.get("TimeZoneName"),
            "GroupedBy": group_by,
            "Fromdate": request["fromDate"],
            "Enddate": request["endDate"],
            "totalUserChargerReportModel": [groups[k] for k in sorted(groups)],
        },
    )


class BadRequest(ValueError):
    """A request the fake answers with 400."""

    pass


def json_answer(status: int, payload: Any) -> Answer:
    return status, {}, json.dumps(payload, ensure_ascii=False)


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    try:
        page_size = int(query.get("pagesize", DEFAULT_PAGE_SIZE))
        page_index = int(query.get("pageindex", 0))
    except ValueError:
        raise BadRequest("PageSize and PageIndex must be integers") from None
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BadRequest(f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    if page_index < 0:
        raise BadRequest("PageIndex must not be negative")
    return page_size, page_index


def paged_answer(items: list[Any], query: Mapping[str, str]) -> Answer:
    page_size, page_index = _paging(query)
    pages = -(-len(items) // page_size)
    window = items[page_index * page_size : (page_index + 1) * page_size]
    return json_answer(200, {"Pages": pages, "Data": window, "Message": None})


def _cursor_scope(query: Mapping[str, str]) -> str:
    """What a cursor belongs to: it is refused for another listing."""
    keys = ("installationid", "chargerid", "from", "to")
    return "|".join(query.get(k, "") for k in keys)


def _make_cursor(offset: int, query: Mapping[str, str]) -> str:
    text = json.dumps({"o": offset, "s": _cursor_scope(query)})
    return base64.urlsafe_b64encode(text.encode()).decode()


def _read_cursor(cursor: str | None, query: Mapping[str, str]) -> int:
    if not cursor:
        return 0
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        offset, scope = int(state["o"]), state["s"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise BadRequest("Invalid cursor") from None
    if scope != _cursor_scope(query) or offset < 0:
        raise BadRequest("The cursor belongs to another query")
    return offset


def _query_time(query: Mapping[str, str], key: str) -> dt.datetime | None:
    value = query.get(key)
    if value is None:
        return None
    try:
        return parse_zaptec_time(value, key)
    except RecordError as exc:
        raise BadRequest(str(exc)) from None
