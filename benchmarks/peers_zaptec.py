"""B1 peers for the Zaptec charge history: a vectorised pandas loader and a DuckDB SQL loader.

Both load the same dump as :func:`zapanalytics.ingest.zaptec.files.ingest_zaptec_dump` and do
the same work, the way a competent user would write it without zapanalytics:

* read every charge-history page (``{Pages, Data}``), ten pages per transaction;
* check each item as the store contract does and reject the whole item, with a reason, when
  any check fails: ``Id`` present; text fields text; ``StartDateTime`` / ``EndDateTime`` /
  ``CommitEndDateTime`` ISO-8601 (naive means UTC, Zaptec's documented convention);
  ``Energy`` a finite number in [0, 2000] kWh; ``CommitMetadata`` an integer in [0, 255];
  ``SignedSession`` text; end not before start; every time between 2015 and two days from
  now; ``EnergyDetails`` a list of ``{Timestamp, Energy}`` with a UTC offset on the stamp and
  a finite energy in [0, 2000] kWh; a detail key repeated with another energy;
* derive what ours derives (void/aborted/offline bits, firmware text, the details' sum and
  the mismatch flag, the end as ``CommitEndDateTime`` else ``EndDateTime``);
* quarantine rejected items with their raw JSON; upsert sessions and details idempotently
  (:mod:`benchmarks.peer_store`); one ``ingest_runs`` row.

They do not load installations and chargers (a hundred rows: ours does, and is timed with
them) and do not read the OCMF ``SignedSession`` (the benchmark data carries none; ours would
read each one).
"""

# ruff: noqa: S608 - every query is built from this file's constants and temporary names

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from benchmarks.peer_store import (
    PeerRun,
    insert_quarantine,
    quarantine_from_sql,
    quarantine_rows,
    upsert_staged,
)
from zapanalytics.schemas import EARLIEST_PLAUSIBLE_UTC, FUTURE_TOLERANCE, MAX_SESSION_ENERGY_KWH

SOURCE = "zaptec_files"
PAGES_PER_BATCH = 10
SESSION_COLUMNS = (
    "session_id", "charger_id", "installation_id", "user_id", "user_name", "token_name",
    "start_utc", "end_utc", "energy_kwh", "commit_metadata", "is_void", "is_aborted",
    "is_offline", "signed_session", "source", "ingested_at", "external_id",
    "replaced_by_session_id", "cloud_end_utc", "firmware_version", "energy_details_sum_kwh",
    "details_mismatch",
)  # fmt: skip
DETAIL_COLUMNS = ("session_id", "ts_utc", "energy_kwh")
#: Store column -> Zaptec field, for the optional text fields.
TEXT_FIELDS = {
    "charger_id": "ChargerId", "installation_id": "InstallationId", "user_id": "UserId",
    "user_name": "UserFullName", "token_name": "TokenName", "external_id": "ExternalId",
    "replaced_by_session_id": "ReplacedBySessionId",
}  # fmt: skip
ISO_TIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}([.,]\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
ISO_TIME_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}([.,]\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
VOID, ABORTED, OFFLINE = 32, 64, 2


def _installation_id(base: Path) -> str | None:
    files = sorted(base.glob("installation_*.json"))
    return json.loads(files[0].read_text())["Id"] if len(files) == 1 else None


def _pages(root: Path) -> tuple[Path, list[Path]]:
    base = root / "zaptec" if (root / "zaptec").is_dir() else root
    return base, sorted((base / "chargehistory").glob("page_*.json"))


def _plausible_bounds() -> tuple[pd.Timestamp, pd.Timestamp]:
    return pd.Timestamp(EARLIEST_PLAUSIBLE_UTC), pd.Timestamp(dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE)


# --------------------------------------------------------------------------- pandas


class _Reasons:
    """One reason text per row, built with vectorised masks (first reason per check kept)."""

    def __init__(self, index: pd.Index):
        self.text = pd.Series("", index=index, dtype=object)

    def add(self, mask, reason) -> None:
        mask = pd.Series(mask, index=self.text.index).fillna(False).astype(bool)
        if mask.any():
            addition = reason if isinstance(reason, str) else reason[mask]
            self.text[mask] = self.text[mask] + addition + "; "

    @property
    def bad(self) -> pd.Series:
        return self.text != ""


def _is_type(series: pd.Series, *types: type) -> pd.Series:
    """Which values are exactly of ``types`` (bool is not a number here)."""
    return series.map(lambda v: type(v) in types)


def _text_column(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(text or None, wrongly typed) for an optional Zaptec text field."""
    wrong = series.notna() & ~_is_type(series, str, int)
    text = series.map(lambda v: str(v) if type(v) in (str, int) and v != "" else None)
    return text, wrong


def _times(series: pd.Series, pattern: str) -> tuple[pd.Series, pd.Series]:
    """(UTC times, unreadable) for a column of ISO-8601 texts (missing is not unreadable)."""
    present = series.notna()
    # A column pandas read as text holds nothing else; only a mixed one needs a look per value.
    is_text = present if series.dtype == "str" else _is_type(series, str)
    shaped = series.where(is_text, None).astype("str").str.match(pattern, na=False)
    stamps = pd.to_datetime(series.where(shaped & is_text, None), format="ISO8601", utc=True, errors="coerce")
    return stamps.dt.as_unit("us"), present & stamps.isna()


def _history_frames(items: list, installation_id: str | None):
    """Sessions and details frames and per-item reasons, all vectorised."""
    frame = pd.DataFrame(items if items else [{}])
    if not items:
        frame = frame.iloc[0:0]
    for field in ("Id", "StartDateTime", "EndDateTime", "CommitEndDateTime", "Energy", "CommitMetadata",
                  "SignedSession", "EnergyDetails", "ChargerFirmwareVersion", *TEXT_FIELDS.values()):  # fmt: skip
        if field not in frame.columns:
            frame[field] = None
    reasons = _Reasons(frame.index)
    out = pd.DataFrame(index=frame.index)

    ids, wrong = _text_column(frame["Id"])
    reasons.add(ids.isna(), "Id: missing")
    reasons.add(wrong, "Id: expected a string")
    out["session_id"] = ids
    for column, field in TEXT_FIELDS.items():
        out[column], wrong = _text_column(frame[field])
        reasons.add(wrong, f"{field}: expected a string")
    out["installation_id"] = out["installation_id"].fillna(installation_id)

    start, bad = _times(frame["StartDateTime"], ISO_TIME)
    reasons.add(frame["StartDateTime"].isna() | bad, "StartDateTime: not an ISO-8601 timestamp")
    commit_end = frame["CommitEndDateTime"]
    end_text = commit_end.where(commit_end.notna() & (commit_end != ""), frame["EndDateTime"])
    end, bad = _times(end_text, ISO_TIME)
    reasons.add(bad, "end: not an ISO-8601 timestamp")
    cloud_end, bad = _times(frame["EndDateTime"], ISO_TIME)
    reasons.add(bad, "EndDateTime: not an ISO-8601 timestamp")
    out["start_utc"], out["end_utc"], out["cloud_end_utc"] = start, end, cloud_end

    energy = frame["Energy"]
    numeric = _is_type(energy, float, int)
    reasons.add(energy.notna() & ~numeric, "Energy: expected a number")
    energy_kwh = pd.to_numeric(energy.where(numeric, None), errors="coerce").astype("float64")
    reasons.add(~np.isfinite(energy_kwh) & energy_kwh.notna(), "Energy: not a finite number")
    reasons.add((energy_kwh < 0) | (energy_kwh > MAX_SESSION_ENERGY_KWH), "sessions.energy_kwh: out of range")
    out["energy_kwh"] = energy_kwh

    metadata = frame["CommitMetadata"]
    integer = _is_type(metadata, int)
    reasons.add(metadata.notna() & ~integer, "CommitMetadata: expected an integer bitmask")
    bits = pd.to_numeric(metadata.where(integer, None), errors="coerce").astype("Int64")
    reasons.add((bits < 0) | (bits > 255), "sessions.commit_metadata: out of range")
    out["commit_metadata"] = bits.astype("Int32")
    for column, bit in (("is_void", VOID), ("is_aborted", ABORTED), ("is_offline", OFFLINE)):
        out[column] = (bits & bit).ne(0).astype("boolean").where(bits.notna())
    signed = frame["SignedSession"]
    reasons.add(signed.notna() & ~_is_type(signed, str), "SignedSession: expected a string")
    out["signed_session"] = signed.where(_is_type(signed, str) & (signed != ""), None)
    version = frame["ChargerFirmwareVersion"]
    out["firmware_version"] = version.map(
        lambda v: ".".join(str(v[k]) for k in ("Major", "Minor", "Build", "Revision"))
        if type(v) is dict and all(type(v.get(k)) is int and v[k] >= 0 for k in ("Major", "Minor", "Build", "Revision"))
        else None
    )  # fmt: skip
    earliest, latest = _plausible_bounds()
    reasons.add(end.notna() & (end < start), "sessions: failed end_not_before_start")
    for column in ("start_utc", "end_utc", "cloud_end_utc"):
        value = out[column]
        reasons.add(value.notna() & ((value < earliest) | (value > latest)), f"sessions.{column}: failed plausible_time")

    # EnergyDetails: exploded to one row per point, checked column-wise.
    lists = frame["EnergyDetails"]
    is_list = _is_type(lists, list)
    reasons.add(lists.notna() & ~is_list, "EnergyDetails: expected a list")
    points = lists.where(is_list, None).explode().dropna()
    is_point = _is_type(points, dict)
    reasons.add(frame.index.isin(points.index[~is_point.to_numpy()]), "EnergyDetails: expected a JSON object")
    points = points[is_point]
    details = pd.DataFrame(points.tolist(), index=points.index)
    for field in ("Timestamp", "Energy"):
        if field not in details.columns:
            details[field] = None
    detail_reasons = []
    point_energy = details["Energy"]
    if point_energy.dtype != "float64":  # only a column holding something else needs a look
        numeric = _is_type(point_energy, float, int)
        detail_reasons.append((~numeric, "EnergyDetails.Energy: expected a number"))
        point_energy = pd.to_numeric(point_energy.where(numeric, None), errors="coerce").astype("float64")
    stamps, bad = _times(details["Timestamp"], ISO_TIME_WITH_OFFSET)
    detail_reasons += [
        (details["Timestamp"].isna() | bad, "EnergyDetails.Timestamp: not an ISO-8601 timestamp with an offset"),
        (~np.isfinite(point_energy), "EnergyDetails.Energy: not a finite number"),
        ((point_energy < 0) | (point_energy > MAX_SESSION_ENERGY_KWH), "energy_details.energy_kwh: out of range"),
        ((stamps < earliest) | (stamps > latest), "energy_details.ts_utc: failed plausible_time"),
    ]  # fmt: skip
    for mask, reason in detail_reasons:
        failing = mask.fillna(False).to_numpy()
        if failing.any():
            reasons.add(frame.index.isin(details.index[failing]), reason)
    details = pd.DataFrame(
        {"session_id": out["session_id"].reindex(details.index).array, "ts_utc": stamps.array,
         "energy_kwh": point_energy.array}, index=details.index,
    )  # fmt: skip
    # A detail key repeated with another energy makes the item ambiguous.
    repeated = details.drop_duplicates().duplicated(["session_id", "ts_utc"], keep=False)
    reasons.add(frame.index.isin(repeated[repeated].index), "energy_details: duplicate key with different content")
    sums = details.groupby(level=0)["energy_kwh"].agg(["sum", "count"]).reindex(frame.index)
    out["energy_details_sum_kwh"] = sums["sum"].round(6).where(sums["count"] > 0)
    tolerance = 0.0005 * (sums["count"] + 1) + 1e-9
    mismatch = ((sums["sum"] - out["energy_kwh"]).abs() > tolerance) | out["energy_kwh"].isna()
    out["details_mismatch"] = mismatch.astype("boolean").where(sums["count"] > 0)
    return frame, out, details, reasons


def _load_items_pandas(con, run: PeerRun, items: list, installation_id: str | None, now) -> None:
    frame, sessions, details, reasons = _history_frames(items, installation_id)
    # A session id repeated with other content: the later items are rejected.
    content = sessions.drop(columns=[]).astype(str)
    first = ~content.duplicated()
    reasons.add(first & sessions["session_id"].notna() & sessions.duplicated("session_id") & ~reasons.bad,
                "sessions: duplicate key in the same batch with different content")
    bad = reasons.bad.to_numpy()
    rejected = [(reasons.text.iloc[i].rstrip("; "), json.dumps(items[i], ensure_ascii=False)) for i in np.flatnonzero(bad)]
    good_sessions = sessions[~bad].drop_duplicates("session_id")
    good_sessions = good_sessions.assign(source=SOURCE, ingested_at=pd.Timestamp(now).as_unit("us"))
    good_details = details[~details.index.isin(frame.index[bad])].drop_duplicates(["session_id", "ts_utc"])
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("staged_sessions", good_sessions[list(SESSION_COLUMNS)])
        con.register("staged_details", good_details[list(DETAIL_COLUMNS)])
        upsert_staged(con, "sessions", "staged_sessions", SESSION_COLUMNS, ("session_id",))
        upsert_staged(con, "energy_details", "staged_details", DETAIL_COLUMNS, ("session_id", "ts_utc"))
        insert_quarantine(con, quarantine_rows(run.run_id, SOURCE, "sessions", rejected, now))
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("staged_sessions")
        con.unregister("staged_details")
    run.count(len(items), len(rejected))


def pandas_zaptec(con: duckdb.DuckDBPyConnection, root: Path) -> tuple[int, int]:
    """Load the dump's charge history with pandas; returns (records in, quarantined)."""
    base, pages = _pages(root)
    installation_id = _installation_id(base)
    with PeerRun(con, SOURCE) as run:
        for first in range(0, len(pages), PAGES_PER_BATCH):
            now = dt.datetime.now(dt.UTC)
            items, unreadable = [], []
            for page in pages[first : first + PAGES_PER_BATCH]:
                text = page.read_text(encoding="utf-8-sig")
                try:
                    document = json.loads(text)
                    items.extend(document["Data"])
                except (ValueError, KeyError, TypeError) as exc:
                    unreadable.append((f"chargehistory page: {exc}", text))
            if unreadable:
                insert_quarantine(con, quarantine_rows(run.run_id, SOURCE, "sessions", unreadable, now))
                run.count(len(unreadable), len(unreadable))
            _load_items_pandas(con, run, items, installation_id, now)
        return run.rows_in, run.rows_quarantined


# --------------------------------------------------------------------------- DuckDB SQL

_NUMBER_TYPES = "('DOUBLE', 'UBIGINT', 'BIGINT')"
_TEXT_TYPES = "('VARCHAR', 'UBIGINT', 'BIGINT')"


def _time_sql(expression: str, pattern: str) -> str:
    """An ISO-8601 text as TIMESTAMPTZ (session time zone UTC), NULL when it does not read."""
    return f"CASE WHEN regexp_full_match({expression}, '{pattern}') THEN TRY_CAST({expression} AS TIMESTAMPTZ) END"


def _reason_sql(checks: list[tuple[str, str]]) -> str:
    """``concat_ws`` of the reasons whose condition holds (NULL when none does)."""
    parts = ", ".join(f"CASE WHEN {condition} THEN '{reason}' END" for condition, reason in checks)
    return f"nullif(concat_ws('; ', {parts}), '')"


def _history_sql(files: list[str], installation_id: str | None, earliest: str, latest: str) -> list[str]:
    """The statements that stage one batch of pages: items, checked sessions, details."""
    fields = ["Id", "StartDateTime", "EndDateTime", "CommitEndDateTime", "Energy", "CommitMetadata",
              "SignedSession", "EnergyDetails", "ChargerFirmwareVersion", *TEXT_FIELDS.values(),
              *(f"ChargerFirmwareVersion.{k}" for k in ("Major", "Minor", "Build", "Revision"))]  # fmt: skip
    at = {field: position for position, field in enumerate(fields, start=1)}
    paths = "[" + ", ".join(f"'$.{f}'" for f in fields) + "]"
    text_fields = ",\n".join(
        f"nullif(v[{at[field]}], '') AS {column}, ty[{at[field]}] AS t_{column}" for column, field in TEXT_FIELDS.items()
    )
    parts = [at[f"ChargerFirmwareVersion.{k}"] for k in ("Major", "Minor", "Build", "Revision")]
    version_parts = ", ".join(f"v[{i}]" for i in parts)
    version_ok = " AND ".join(f"ty[{i}] IN ('UBIGINT', 'BIGINT') AND v[{i}] NOT LIKE '-%'" for i in parts)
    session_checks = [
        ("session_id IS NULL", "Id: missing"),
        ("t_id NOT IN " + _TEXT_TYPES, "Id: expected a string"),
        *[(f"t_{c} NOT IN {_TEXT_TYPES} AND t_{c} <> 'NULL'", f"{f}: expected a string") for c, f in TEXT_FIELDS.items()],
        ("start_utc IS NULL", "StartDateTime: not an ISO-8601 timestamp"),
        ("end_text IS NOT NULL AND end_utc IS NULL", "end: not an ISO-8601 timestamp"),
        ("cloud_end_text IS NOT NULL AND cloud_end_utc IS NULL", "EndDateTime: not an ISO-8601 timestamp"),
        (f"t_energy NOT IN {_NUMBER_TYPES} AND t_energy <> 'NULL'", "Energy: expected a number"),
        ("NOT isfinite(energy_kwh)", "Energy: not a finite number"),
        (f"energy_kwh < 0 OR energy_kwh > {MAX_SESSION_ENERGY_KWH}", "sessions.energy_kwh: out of range"),
        ("t_metadata NOT IN ('UBIGINT', 'BIGINT') AND t_metadata <> 'NULL'", "CommitMetadata: expected an integer bitmask"),
        ("metadata < 0 OR metadata > 255", "sessions.commit_metadata: out of range"),
        ("t_signed NOT IN ('VARCHAR', 'NULL')", "SignedSession: expected a string"),
        ("end_utc < start_utc", "sessions: failed end_not_before_start"),
        *[(f"{c} < TIMESTAMPTZ '{earliest}' OR {c} > TIMESTAMPTZ '{latest}'", f"sessions.{c}: failed plausible_time")
          for c in ("start_utc", "end_utc", "cloud_end_utc")],
        ("t_details NOT IN ('ARRAY', 'NULL')", "EnergyDetails: expected a list"),
        # One regular expression per item finds a point that is not {"Timestamp": text, "Energy": number}.
        ("regexp_matches(details_text, '\"Energy\"\\s*:\\s*[^-0-9\\s]|\"Timestamp\"\\s*:\\s*[^\"\\s]')",
         "EnergyDetails: a point with an Energy that is no number or a Timestamp that is no text"),
    ]  # fmt: skip
    detail_checks = [
        ("ts_utc IS NULL", "EnergyDetails.Timestamp: not an ISO-8601 timestamp with an offset"),
        ("energy_kwh IS NULL", "EnergyDetails.Energy: missing"),
        ("NOT isfinite(energy_kwh)", "EnergyDetails.Energy: not a finite number"),
        (f"energy_kwh < 0 OR energy_kwh > {MAX_SESSION_ENERGY_KWH}", "energy_details.energy_kwh: out of range"),
        (f"ts_utc < TIMESTAMPTZ '{earliest}' OR ts_utc > TIMESTAMPTZ '{latest}'", "energy_details.ts_utc: failed plausible_time"),
    ]  # fmt: skip
    file_list = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    installation = "NULL" if installation_id is None else f"'{installation_id}'"
    return [
        f"""CREATE OR REPLACE TEMP TABLE z_items AS
        SELECT row_number() OVER () AS record, item FROM (
          SELECT unnest(Data) AS item FROM read_json({file_list}, columns={{'Data': 'JSON[]'}},
                                                     format='unstructured', maximum_object_size=268435456))""",
        # One parse of each item for all its fields (every `->>` would parse the item again).
        f"""CREATE OR REPLACE TEMP TABLE z_raw AS
        SELECT record, item, json_extract_string(item, {paths}) AS v, json_type(item, {paths}) AS ty FROM z_items""",
        f"""CREATE OR REPLACE TEMP TABLE z_parsed AS
        SELECT record, item, nullif(v[{at['Id']}], '') AS session_id, ty[{at['Id']}] AS t_id,
          {text_fields},
          {_time_sql(f"v[{at['StartDateTime']}]", ISO_TIME)} AS start_utc,
          coalesce(nullif(v[{at['CommitEndDateTime']}], ''), v[{at['EndDateTime']}]) AS end_text,
          {_time_sql("end_text", ISO_TIME)} AS end_utc,
          v[{at['EndDateTime']}] AS cloud_end_text,
          {_time_sql("cloud_end_text", ISO_TIME)} AS cloud_end_utc,
          ty[{at['Energy']}] AS t_energy,
          CASE WHEN t_energy IN {_NUMBER_TYPES} THEN TRY_CAST(v[{at['Energy']}] AS DOUBLE) END AS energy_kwh,
          ty[{at['CommitMetadata']}] AS t_metadata,
          CASE WHEN t_metadata IN ('UBIGINT', 'BIGINT') THEN TRY_CAST(v[{at['CommitMetadata']}] AS BIGINT) END AS metadata,
          ty[{at['SignedSession']}] AS t_signed,
          nullif(v[{at['SignedSession']}], '') AS signed_session,
          CASE WHEN ty[{at['ChargerFirmwareVersion']}] = 'OBJECT' AND {version_ok} THEN concat_ws('.', {version_parts}) END
            AS firmware_version,
          ty[{at['EnergyDetails']}] AS t_details,
          CASE WHEN t_details = 'ARRAY' THEN v[{at['EnergyDetails']}] END AS details_text
        FROM z_raw""",
        f"""CREATE OR REPLACE TEMP TABLE z_details AS
        SELECT record, session_id, {_time_sql("p.Timestamp", ISO_TIME_WITH_OFFSET)} AS ts_utc, p.Energy AS energy_kwh
        FROM (SELECT record, session_id,
                     unnest(json_transform(details_text, '[{{"Timestamp": "VARCHAR", "Energy": "DOUBLE"}}]')) AS p
              FROM z_parsed WHERE details_text IS NOT NULL)""",
        f"""CREATE OR REPLACE TEMP TABLE z_detail_reasons AS
        SELECT record, string_agg(DISTINCT reason, '; ') AS reason FROM (
          SELECT record, {_reason_sql(detail_checks)} AS reason FROM z_details
          UNION ALL
          SELECT record, 'energy_details: duplicate key with different content' FROM z_details
          GROUP BY record, session_id, ts_utc HAVING count(DISTINCT energy_kwh) > 1
        ) WHERE reason IS NOT NULL GROUP BY record""",
        f"""CREATE OR REPLACE TEMP TABLE z_checked AS
        SELECT p.*, {installation} AS default_installation,
               nullif(concat_ws('; ', {_reason_sql(session_checks)}, d.reason), '') AS reason
        FROM z_parsed p LEFT JOIN z_detail_reasons d USING (record)""",
        # A session id repeated in the batch with other content: the later items are rejected.
        """UPDATE z_checked SET reason = 'sessions: duplicate key in the same batch with different content'
        WHERE reason IS NULL AND record IN (
          SELECT c.record FROM z_checked c JOIN (
            SELECT session_id, min(record) AS first_record FROM z_checked WHERE reason IS NULL
            GROUP BY session_id HAVING count(DISTINCT item::VARCHAR) > 1) m USING (session_id)
          WHERE c.reason IS NULL AND c.record > m.first_record)""",
    ]


def _stage_sql(now: str) -> list[str]:
    return [
        f"""CREATE OR REPLACE TEMP TABLE z_sessions AS
        SELECT DISTINCT ON (c.session_id) c.session_id, c.charger_id,
          coalesce(c.installation_id, c.default_installation) AS installation_id,
          c.user_id, c.user_name, c.token_name, c.start_utc, c.end_utc, c.energy_kwh,
          c.metadata::INTEGER AS commit_metadata,
          CASE WHEN c.metadata IS NOT NULL THEN (c.metadata & {VOID}) <> 0 END AS is_void,
          CASE WHEN c.metadata IS NOT NULL THEN (c.metadata & {ABORTED}) <> 0 END AS is_aborted,
          CASE WHEN c.metadata IS NOT NULL THEN (c.metadata & {OFFLINE}) <> 0 END AS is_offline,
          c.signed_session, '{SOURCE}' AS source, TIMESTAMPTZ '{now}' AS ingested_at,
          c.external_id, c.replaced_by_session_id, c.cloud_end_utc, c.firmware_version,
          round(s.total, 6) AS energy_details_sum_kwh,
          CASE WHEN s.n > 0 THEN c.energy_kwh IS NULL
                                 OR abs(s.total - c.energy_kwh) > 0.0005 * (s.n + 1) + 1e-9 END AS details_mismatch
        FROM z_checked c
        LEFT JOIN (SELECT record, sum(energy_kwh) AS total, count(*) AS n FROM z_details GROUP BY record) s USING (record)
        WHERE c.reason IS NULL ORDER BY c.session_id, c.record""",
        """CREATE OR REPLACE TEMP TABLE z_good_details AS
        SELECT DISTINCT ON (d.session_id, d.ts_utc) d.session_id, d.ts_utc, d.energy_kwh
        FROM z_details d JOIN z_checked c USING (record) WHERE c.reason IS NULL""",
        """CREATE OR REPLACE TEMP VIEW z_rejected AS
        SELECT reason, item::VARCHAR AS raw FROM z_checked WHERE reason IS NOT NULL""",
    ]


def duckdb_zaptec(con: duckdb.DuckDBPyConnection, root: Path) -> tuple[int, int]:
    """Load the dump's charge history with DuckDB SQL; returns (records in, quarantined)."""
    base, pages = _pages(root)
    installation_id = _installation_id(base)
    con.execute("SET TimeZone = 'UTC'")
    earliest, latest = (t.isoformat() for t in _plausible_bounds())
    with PeerRun(con, SOURCE) as run:
        for first in range(0, len(pages), PAGES_PER_BATCH):
            now = dt.datetime.now(dt.UTC)
            files = [str(p) for p in pages[first : first + PAGES_PER_BATCH]]
            for statement in _history_sql(files, installation_id, earliest, latest) + _stage_sql(now.isoformat()):
                con.execute(statement)
            con.execute("BEGIN TRANSACTION")
            try:
                upsert_staged(con, "sessions", "z_sessions", SESSION_COLUMNS, ("session_id",))
                upsert_staged(con, "energy_details", "z_good_details", DETAIL_COLUMNS, ("session_id", "ts_utc"))
                quarantined = quarantine_from_sql(con, run.run_id, SOURCE, "sessions", "z_rejected", now)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            run.count(con.execute("SELECT count(*) FROM z_items").fetchall()[0][0], quarantined)
        con.execute("DROP VIEW IF EXISTS z_rejected")
        for table in ("z_items", "z_raw", "z_parsed", "z_details", "z_detail_reasons", "z_checked", "z_sessions", "z_good_details"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        return run.rows_in, run.rows_quarantined
