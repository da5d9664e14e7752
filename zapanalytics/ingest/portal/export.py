"""Zaptec portal reports as a second source, reconciled against the stored sessions.

Two reports exist:

* The **installation report**, ``POST /api/chargehistory/installationreport``: totals of
  session count, energy [kWh] and duration per user, charger or charge card over a period.
* The portal's **consumption export** (CSV or XLSX) with one row per session.

The installation report is evidence only. The consumption export is also a source of
sessions (:mod:`zapanalytics.ingest.portal.source`): its rows are stored with source
``portal``, as copies where another source lists the same charging. Either way
:func:`reconcile_totals` and :func:`reconcile_sessions` compare a report with the canonical
sessions of the other sources and return per-group or per-session differences with a
``status`` column.

Assumptions, since Zaptec documents neither report's exact semantics:

* Sessions are assigned to the period by start time, and Void sessions (replaced by
  another) are left out of the store's side, as they carry no energy of their own.
* The export's column names are not documented; :data:`EXPORT_COLUMNS` lists the headers
  accepted (English and Norwegian variants, case-insensitive). Naive times in the export are
  read in the installation's time zone; in the repeated hour of a DST fall-back both
  readings are tried. Legacy ``.xls`` files must be saved as ``.xlsx`` or CSV first.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from zapanalytics.ingest.zaptec.api import ZaptecClient
from zapanalytics.ingest.zaptec.records import RecordError, parse_timestamp

#: ``groupBy`` of the installation report.
GROUP_BY = {"user": 0, "charger": 1, "card": 2}
#: Differences up to this are rounding, not disagreement [kWh].
DEFAULT_TOLERANCE_KWH = 0.001
#: Start times in the export and the store may differ by this much and still match.
START_TOLERANCE = dt.timedelta(minutes=2)

#: Accepted headers (lower-case) of the consumption export, per meaning. Besides the
#: portal's own English and Norwegian wording, the shapes published by Zaptec billing tools
#: (the charge-history field names ``StartDateTime``, ``UserFullName``, ``DeviceName``…, and
#: spreadsheet templates with ``Start Date/Time``, ``Energy (kWh)``, ``Device ID``).
EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "session_id": ("session id", "sessionid", "session", "id", "økt-id", "økt id", "sesjons-id"),
    "charger": (
        "charger", "charger name", "chargername", "device name", "devicename", "lader",
        "ladernavn", "ladestasjon", "ladepunkt", "charge point",
    ),
    "device_id": ("device id", "deviceid", "serial number", "serienummer", "charger id", "serial"),
    "user": (
        "user", "user name", "username", "userfullname", "user full name", "bruker", "navn",
        "brukernavn",
    ),
    "user_id": ("user id", "userid", "bruker-id", "bruker id"),
    "user_email": ("user email", "useremail", "email", "e-mail", "e-post", "epost"),
    "token": ("token", "token name", "tokenname", "rfid", "charge card", "ladebrikke", "rfid-brikke"),
    "installation": ("installation", "installation name", "installationname", "installasjon", "anlegg"),
    "start": (
        "start", "start time", "started", "startdatetime", "starttid", "start date",
        "start date/time", "starttidspunkt", "start tid", "startet",
    ),
    "end": (
        "end", "end time", "ended", "enddatetime", "sluttid", "stopp", "end date",
        "end date/time", "sluttidspunkt", "slutt tid", "slutt", "avsluttet",
    ),
    "energy_kwh": (
        "energy (kwh)",
        "energy [kwh]",
        "energy",
        "kwh",
        "energi (kwh)",
        "energi",
        "forbruk (kwh)",
        "forbruk",
        "energy consumption (kwh)",
    ),
}

_REPORT_SCHEMA = {
    "group": pl.String,
    "group_id": pl.String,
    "sessions": pl.Int64,
    "energy_kwh": pl.Float64,
    "duration_h": pl.Float64,
}


class PortalReportError(ValueError):
    """A report that cannot be read (wrong shape, missing columns)."""


# -- installation report ---------------------------------------------------------------------


def _duration_hours(value: object) -> float | None:
    """``TotalChargeSessionDuration`` as hours: a number of hours, or a .NET TimeSpan text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    match = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d{2}):(\d{2})(?:\.\d+)?", str(value).strip())
    if match is None:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return days * 24 + hours + minutes / 60 + seconds / 3600


def installation_report_frame(report: Mapping[str, Any]) -> pl.DataFrame:
    """Totals per group from an installation-report response (pure).

    Returns
    -------
    polars.DataFrame
        ``group``, ``group_id`` (the user id when grouped by user), ``sessions``,
        ``energy_kwh`` [kWh], ``duration_h`` [h].
    """
    if not isinstance(report, Mapping):
        raise PortalReportError("the installation report is not a JSON object")
    lowered = {str(k).lower(): v for k, v in report.items()}
    groups = lowered.get("totaluserchargerreportmodel")
    if not isinstance(groups, list):
        raise PortalReportError("the installation report has no totalUserChargerReportModel list")
    rows = []
    for group in groups:
        if not isinstance(group, Mapping):
            raise PortalReportError("a report group is not a JSON object")
        details = group.get("UserDetails") if isinstance(group.get("UserDetails"), Mapping) else {}
        energy = group.get("TotalChargeSessionEnergy")
        count = group.get("TotalChargeSessionCount")
        if isinstance(energy, bool) or not isinstance(energy, int | float):
            raise PortalReportError(f"group {group.get('GroupAsString')!r}: energy is not a number")
        if isinstance(count, bool) or not isinstance(count, int):
            raise PortalReportError(
                f"group {group.get('GroupAsString')!r}: count is not an integer"
            )
        rows.append(
            {
                "group": str(group.get("GroupAsString") or ""),
                "group_id": details.get("Id") if details else None,
                "sessions": count,
                "energy_kwh": float(energy),
                "duration_h": _duration_hours(group.get("TotalChargeSessionDuration")),
            }
        )
    return pl.DataFrame(rows, schema=_REPORT_SCHEMA)


def fetch_installation_report(
    client: ZaptecClient,
    installation_id: str,
    from_utc: dt.datetime,
    to_utc: dt.datetime,
    *,
    group_by: str = "charger",
) -> pl.DataFrame:
    """Ask Zaptec for the installation report and return its totals per group."""
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {sorted(GROUP_BY)}")
    report = client.installation_report(
        installation_id, from_utc, to_utc, group_by=GROUP_BY[group_by]
    )
    return installation_report_frame(report)


# -- the store's side ------------------------------------------------------------------------


def stored_sessions(
    con: duckdb.DuckDBPyConnection,
    installation_id: str,
    from_utc: dt.datetime | None = None,
    to_utc: dt.datetime | None = None,
) -> pl.DataFrame:
    """Non-void sessions of an installation starting in ``[from_utc, to_utc]``, with names.

    One row per charging (``canonical_sessions``), leaving out the portal's own rows: a report
    is checked against what the other sources recorded, never against itself or against a
    second copy (an OCPP transaction) of a session it already lists.
    """
    sql = (
        "SELECT s.session_id, s.charger_id, c.name AS charger_name, c.device_id,"
        " s.user_id, s.user_name, s.token_name, s.start_utc, s.end_utc, s.energy_kwh"
        " FROM canonical_sessions s LEFT JOIN chargers c USING (charger_id)"
        " WHERE s.installation_id = ? AND coalesce(s.is_void, false) = false"
        " AND s.source NOT LIKE 'portal%'"
        " AND (CAST(? AS TIMESTAMPTZ) IS NULL OR s.start_utc >= ?)"
        " AND (CAST(? AS TIMESTAMPTZ) IS NULL OR s.start_utc <= ?)"
        " ORDER BY s.start_utc, s.session_id"
    )
    params = [installation_id, from_utc, from_utc, to_utc, to_utc]
    return con.sql(sql, params=params).pl()


def store_totals(sessions: pl.DataFrame, group_by: str) -> pl.DataFrame:
    """Totals per group of :func:`stored_sessions` rows, shaped like the portal report."""
    if group_by == "user":
        group, group_id = pl.col("user_name"), pl.col("user_id")
    elif group_by == "charger":
        group, group_id = pl.coalesce("charger_name", "device_id"), pl.lit(None, pl.String)
    elif group_by == "card":
        group, group_id = pl.col("token_name"), pl.lit(None, pl.String)
    else:
        raise ValueError(f"group_by must be one of {sorted(GROUP_BY)}")
    hours = (pl.col("end_utc") - pl.col("start_utc")).dt.total_seconds() / 3600
    return (
        sessions.with_columns(
            group.fill_null("").cast(pl.String).alias("group"),
            group_id.cast(pl.String).alias("group_id"),
            hours.alias("duration_h"),
        )
        .group_by("group", "group_id")
        .agg(
            pl.len().cast(pl.Int64).alias("sessions"),
            pl.col("energy_kwh").fill_null(0.0).sum().alias("energy_kwh"),
            pl.col("duration_h").sum().alias("duration_h"),
        )
        .select(list(_REPORT_SCHEMA))
        .sort("group")
    )


def reconcile_totals(
    portal: pl.DataFrame, store: pl.DataFrame, *, tolerance_kwh: float = DEFAULT_TOLERANCE_KWH
) -> pl.DataFrame:
    """Compare totals per group (pure).

    Groups are matched on ``group_id`` when both sides have it, else on the group name
    (trimmed, case-insensitive).

    Returns
    -------
    polars.DataFrame
        ``group``, ``sessions_portal``, ``sessions_store``, ``energy_portal_kwh``,
        ``energy_store_kwh``, ``energy_diff_kwh`` (portal − store) and ``status``: ``match``,
        ``count_differs``, ``energy_differs``, ``only_in_portal`` or ``only_in_store``.
    """

    def keyed(frame: pl.DataFrame) -> pl.DataFrame:
        name_key = pl.col("group").str.strip_chars().str.to_lowercase()
        return frame.with_columns(
            pl.when(pl.col("group_id").is_not_null())
            .then(pl.lit("id:") + pl.col("group_id"))
            .otherwise(pl.lit("name:") + name_key)
            .alias("_key")
        )

    left = keyed(portal)
    right = keyed(store)
    # A side without ids falls back to names for both.
    if left["group_id"].is_null().all() or right["group_id"].is_null().all():
        left = keyed(portal.with_columns(pl.lit(None, pl.String).alias("group_id")))
        right = keyed(store.with_columns(pl.lit(None, pl.String).alias("group_id")))
    joined = left.join(right, on="_key", how="full", suffix="_store", coalesce=True)
    diff = pl.col("energy_kwh") - pl.col("energy_kwh_store")
    status = (
        pl.when(pl.col("sessions_store").is_null())
        .then(pl.lit("only_in_portal"))
        .when(pl.col("sessions").is_null())
        .then(pl.lit("only_in_store"))
        .when(pl.col("sessions") != pl.col("sessions_store"))
        .then(pl.lit("count_differs"))
        .when(diff.abs() > tolerance_kwh)
        .then(pl.lit("energy_differs"))
        .otherwise(pl.lit("match"))
    )
    return joined.select(
        pl.coalesce("group", "group_store").alias("group"),
        pl.col("sessions").alias("sessions_portal"),
        pl.col("sessions_store"),
        pl.col("energy_kwh").alias("energy_portal_kwh"),
        pl.col("energy_kwh_store").alias("energy_store_kwh"),
        diff.round(6).alias("energy_diff_kwh"),
        status.alias("status"),
    ).sort("group")


# -- consumption export ----------------------------------------------------------------------


def _read_table(path: Path) -> list[list[Any]]:
    # Every read is bounded (zapanalytics.ingest.limits): bytes per file, the zip's declared
    # size and ratio before openpyxl opens it, rows per sheet, characters per field.
    from zapanalytics.ingest import limits as input_limits

    bounds = input_limits.current_limits()
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise PortalReportError(
            f"{path.name}: legacy .xls is not supported; save it as .xlsx or CSV first"
        )
    try:
        if suffix in (".xlsx", ".xlsm"):
            return [list(row) for row in input_limits.iter_sheet_rows(path, bounds)]
        data = input_limits.read_document(path, bounds)
    except input_limits.InputFileError as exc:
        raise PortalReportError(f"{path.name}: {exc.problem}") from None
    for encoding in ("utf-8-sig", "cp1252"):  # Excel on Windows saves CSV as cp1252
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise PortalReportError(f"{path.name}: neither UTF-8 nor Windows-1252 text")
    # The header decides the delimiter: Norwegian exports use ';' with decimal commas.
    header = text.replace("\r", "\n").split("\n", 1)[0]
    delimiter = max(";,\t", key=header.count)
    # The csv module's own field limit names no file; the document limit bounds every field
    # and the field limit is checked below, naming the row.
    if csv.field_size_limit() < bounds.max_document_bytes:
        csv.field_size_limit(bounds.max_document_bytes)
    rows: list[list[Any]] = []
    # newline="" lets the csv module take \r, \n and \r\n as line ends, as it expects.
    try:
        for number, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), 1):
            if number > bounds.max_rows_per_sheet:
                raise input_limits.LimitExceeded(
                    path.name, "max_rows_per_sheet", bounds.max_rows_per_sheet, "more rows than that"
                )
            longest = max((len(c) for c in row), default=0)
            if longest > bounds.max_field_chars:
                raise input_limits.LimitExceeded(
                    path.name, "max_field_chars", bounds.max_field_chars,
                    f"row {number} has a field of {longest:,} characters",
                )
            if any(c.strip() for c in row):
                rows.append(row)
    except csv.Error as exc:
        raise PortalReportError(f"{path.name}: not a readable CSV ({exc})") from None
    except input_limits.LimitExceeded as exc:
        raise PortalReportError(str(exc)) from None
    return rows


def _header_map(header: Sequence[Any]) -> dict[str, int]:
    names = [str(h or "").strip().lower() for h in header]
    found: dict[str, int] = {}
    for meaning, aliases in EXPORT_COLUMNS.items():
        for alias in aliases:
            if alias in names:
                found[meaning] = names.index(alias)
                break
    return found


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an energy")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().replace("\u00a0", "").replace(" ", "")
        if "," in text and "." not in text:
            text = text.replace(",", ".")
        elif "," in text and text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")  # 1.234,5: dots group thousands
        elif "," in text:
            text = text.replace(",", "")  # 1,234.5: commas group thousands
        number = float(text)
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


_LOCAL_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M")


def _local_times(value: Any, zone: ZoneInfo) -> list[dt.datetime]:
    """Candidate UTC instants of an export time: two in a DST fall-back's repeated hour."""
    if isinstance(value, dt.datetime):
        naive = value
    else:
        text = str(value).strip()
        try:
            return [parse_timestamp(text, "start", naive_is_utc=False)]
        except RecordError:
            pass
        naive = None
        for fmt in _LOCAL_FORMATS:
            try:
                naive = dt.datetime.strptime(text, fmt)  # noqa: DTZ007 - localised just below
                break
            except ValueError:
                continue
        if naive is None:
            try:
                naive = dt.datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"unreadable time {text!r:.40}") from None
    if naive.tzinfo is not None:
        return [naive.astimezone(dt.UTC)]
    folds = {naive.replace(tzinfo=zone, fold=f).astimezone(dt.UTC) for f in (0, 1)}
    return sorted(folds)


def read_consumption_export(path: str | Path, *, timezone: str = "Europe/Oslo") -> pl.DataFrame:
    """Read a per-session consumption export (CSV or XLSX).

    Returns
    -------
    polars.DataFrame
        ``row`` (1-based line in the file), ``session_id``, ``charger``, ``device_id``,
        ``user``, ``start_utc``, ``start_utc_alt`` (the other reading in a DST fall-back
        hour, else equal), ``energy_kwh`` [kWh], ``problem`` (why a row could not be read),
        then ``end_utc``, ``end_utc_alt``, ``user_id``, ``user_email``, ``token``,
        ``installation`` (null where the export has no such column) and ``raw`` (the row's
        cells as JSON text, for the quarantine).

    Raises
    ------
    PortalReportError
        When the file has no header with an energy column and a start or session id column.
    """
    path = Path(path)
    table = _read_table(path)
    if not table:
        raise PortalReportError(f"{path.name}: empty file")
    columns = _header_map(table[0])
    if "energy_kwh" not in columns or not ({"start", "session_id"} & set(columns)):
        raise PortalReportError(
            f"{path.name}: need an energy column and a start-time or session-id column; "
            f"found headers {[str(h) for h in table[0]]!r:.200}"
        )
    zone = ZoneInfo(timezone)
    rows = []
    for number, raw in enumerate(table[1:], start=2):

        def cell(meaning: str, raw: Sequence[Any] = raw) -> Any:
            index = columns.get(meaning)
            return raw[index] if index is not None and index < len(raw) else None

        row: dict[str, Any] = {
            "row": number,
            "session_id": _optional_text(cell("session_id")),
            "charger": _optional_text(cell("charger")),
            "device_id": _optional_text(cell("device_id")),
            "user": _optional_text(cell("user")),
            "start_utc": None,
            "start_utc_alt": None,
            "energy_kwh": None,
            "problem": None,
            "end_utc": None,
            "end_utc_alt": None,
            "user_id": _optional_text(cell("user_id")),
            "user_email": _optional_text(cell("user_email")),
            "token": _optional_text(cell("token")),
            "installation": _optional_text(cell("installation")),
            "raw": _raw_cells(table[0], raw),
        }
        try:
            row["energy_kwh"] = _number(cell("energy_kwh"))
            if cell("start") not in (None, ""):
                candidates = _local_times(cell("start"), zone)
                row["start_utc"], row["start_utc_alt"] = candidates[0], candidates[-1]
            if cell("end") not in (None, ""):
                candidates = _local_times(cell("end"), zone)
                row["end_utc"], row["end_utc_alt"] = candidates[0], candidates[-1]
        except (TypeError, ValueError) as exc:
            row["problem"] = f"row {number}: {exc}"
        rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "row": pl.Int64,
            "session_id": pl.String,
            "charger": pl.String,
            "device_id": pl.String,
            "user": pl.String,
            "start_utc": pl.Datetime("us", "UTC"),
            "start_utc_alt": pl.Datetime("us", "UTC"),
            "energy_kwh": pl.Float64,
            "problem": pl.String,
            "end_utc": pl.Datetime("us", "UTC"),
            "end_utc_alt": pl.Datetime("us", "UTC"),
            "user_id": pl.String,
            "user_email": pl.String,
            "token": pl.String,
            "installation": pl.String,
            "raw": pl.String,
        },
    )


def _raw_cells(header: Sequence[Any], cells: Sequence[Any]) -> str:
    """A row as JSON text keyed by its headers (times and numbers as text)."""
    import json

    names = [str(h) if h is not None else f"column {i + 1}" for i, h in enumerate(header)]
    values = {}
    for index, value in enumerate(cells):
        name = names[index] if index < len(names) else f"column {index + 1}"
        values[name] = value if value is None or isinstance(value, str | int | float) else str(value)
    return json.dumps(values, ensure_ascii=False, default=str)


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def reconcile_sessions(
    export: pl.DataFrame,
    store: pl.DataFrame,
    *,
    tolerance_kwh: float = DEFAULT_TOLERANCE_KWH,
) -> pl.DataFrame:
    """Match export rows to stored sessions and report differences (pure).

    A row matches by session id when the export has one, else by charger (name or serial)
    and start time within :data:`START_TOLERANCE`.

    Returns
    -------
    polars.DataFrame
        ``row``, ``session_id``, ``charger``, ``start_utc``, ``energy_portal_kwh``,
        ``energy_store_kwh``, ``energy_diff_kwh`` and ``status``: ``match``,
        ``energy_differs``, ``only_in_portal``, ``only_in_store`` or ``unreadable``.
    """
    stored = store.to_dicts()
    by_id = {s["session_id"]: s for s in stored}
    by_charger: dict[str, list[dict[str, Any]]] = {}
    for s in stored:
        for key in (s.get("charger_name"), s.get("device_id")):
            if key:
                by_charger.setdefault(str(key).strip().lower(), []).append(s)
    used: set[str] = set()
    out = []
    for row in export.to_dicts():
        result = {
            "row": row["row"],
            "session_id": row["session_id"],
            "charger": row["charger"] or row["device_id"],
            "start_utc": row["start_utc"],
            "energy_portal_kwh": row["energy_kwh"],
            "energy_store_kwh": None,
            "energy_diff_kwh": None,
            "status": "unreadable" if row["problem"] else "only_in_portal",
        }
        if row["problem"]:
            out.append(result)
            continue
        match = by_id.get(row["session_id"]) if row["session_id"] else None
        if match is None and row["start_utc"] is not None:
            candidates = []
            for key in (row["charger"], row["device_id"]):
                if key:
                    candidates.extend(by_charger.get(key.strip().lower(), []))
            best = None
            for s in candidates:
                if s["session_id"] in used:
                    continue
                gap = min(abs(s["start_utc"] - t) for t in (row["start_utc"], row["start_utc_alt"]))
                if gap <= START_TOLERANCE and (best is None or gap < best[0]):
                    best = (gap, s)
            match = best[1] if best else None
        if match is not None and match["session_id"] not in used:
            used.add(match["session_id"])
            energy = match["energy_kwh"]
            diff = None if energy is None else round(row["energy_kwh"] - energy, 6)
            result.update(
                session_id=match["session_id"],
                start_utc=match["start_utc"],
                energy_store_kwh=energy,
                energy_diff_kwh=diff,
                status="match"
                if diff is not None and abs(diff) <= tolerance_kwh
                else "energy_differs",
            )
        out.append(result)
    for s in stored:
        if s["session_id"] not in used:
            out.append(
                {
                    "row": None,
                    "session_id": s["session_id"],
                    "charger": s.get("charger_name") or s.get("device_id"),
                    "start_utc": s["start_utc"],
                    "energy_portal_kwh": None,
                    "energy_store_kwh": s["energy_kwh"],
                    "energy_diff_kwh": None,
                    "status": "only_in_store",
                }
            )
    return pl.DataFrame(
        out,
        schema={
            "row": pl.Int64,
            "session_id": pl.String,
            "charger": pl.String,
            "start_utc": pl.Datetime("us", "UTC"),
            "energy_portal_kwh": pl.Float64,
            "energy_store_kwh": pl.Float64,
            "energy_diff_kwh": pl.Float64,
            "status": pl.String,
        },
    )


def export_window(export: pl.DataFrame) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The span of start times in an export (to limit the store's side to it)."""
    starts = export["start_utc"].drop_nulls()
    if starts.len() == 0:
        return None, None
    return starts.min(), export["start_utc_alt"].drop_nulls().max()  # type: ignore[return-value]
