"""Charge-history pages → store inside DuckDB: the bulk path of the Zaptec loaders.

DuckDB reads the pages' JSON, maps every item to its ``sessions`` row and ``energy_details``
rows in SQL, runs the store contract's checks (generated from the pandera schemas by
:mod:`zapanalytics.contract_sql`) and writes what passes with an anti-join insert
(:func:`zapanalytics.store.upsert.merge_staged`). Python sees only what SQL flags.

**One decider.** SQL does not explain rejections. An item it has any doubt about goes to the
per-record path (:func:`zapanalytics.ingest.zaptec.admit.history_rows` and the door), which
decides and writes the quarantine reason exactly as before. Doubt is wide on purpose: a value
of an unusual JSON type, a timestamp in any but the plain shapes, a repeated key, any
contract failure. So SQL only ever stores an item the per-record path would store, with the
same row; the tests load the bad-input corpus, the sample and a year of 100 chargers both
ways and compare the stores.

**Whole key groups.** Items sharing a session id in one batch go the same way (all to the
per-record path when any of them is in doubt or when there are several), so the door's rule
for repeated keys in a batch sees all of them, as before.

**Where DuckDB's JSON reader is laxer than Python's** (trailing commas, lowercase ``nan``,
surrogate escapes, which text keeps), the page goes to the per-record path, which reads it
with :func:`json.loads`.
"""

# ruff: noqa: S608 - the SQL is built from this module's constants and generated contract checks

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl

from zapanalytics.contract_sql import any_failure_sql, contract_checks
from zapanalytics.ingest.door import IngestRun, Rejection, RunCounts
from zapanalytics.ingest.zaptec.admit import admit_history_entries
from zapanalytics.ingest.zaptec.records import (
    COMMIT_ABORTED,
    COMMIT_OFFLINE,
    COMMIT_VOID,
    RecordError,
    load_json_text,
    session_meter_readings,
)
from zapanalytics.schemas import polars_schema
from zapanalytics.store.upsert import merge_staged

#: Page text staged in DuckDB per transaction [bytes] by default (a year of a 100-charger
#: site is about 70 MB of pages). Each batch costs a fixed ~0.1-0.2 s of set-up and a join
#: against the stored details, so batches are made large; memory stays a few times this.
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
#: Environment variable that sets the batch size [bytes] (smaller: less memory, and a killed
#: run leaves finer-grained whole batches behind).
BATCH_BYTES_ENV = "ZAPANALYTICS_INGEST_BATCH_BYTES"


#: Seconds spent per stage by every call in this process, for the benchmarks' "where does the
#: time go" (reading pages, mapping and checking, Python's share, writing). Never reset here.
stage_seconds: collections.Counter[str] = collections.Counter()


@contextlib.contextmanager
def _stage(name: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        stage_seconds[name] += time.perf_counter() - began


def batch_bytes() -> int:
    """Page bytes per bulk batch: :data:`BATCH_BYTES_ENV` when set, else the default [bytes]."""
    text = os.environ.get(BATCH_BYTES_ENV)
    if not text:
        return DEFAULT_BATCH_BYTES
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{BATCH_BYTES_ENV}={text!r} is not a whole number of bytes") from None
    if value < 1:
        raise ValueError(f"{BATCH_BYTES_ENV} must be at least 1 byte, not {value}")
    return value


def batches_by_size(sizes: Sequence[int], limit: int) -> list[range]:
    """Consecutive index ranges whose sizes add up to at most ``limit`` (one item at least)."""
    out, first, total = [], 0, 0
    for index, size in enumerate(sizes):
        if index > first and total + size > limit:
            out.append(range(first, index))
            first, total = index, 0
        total += size
    if first < len(sizes):
        out.append(range(first, len(sizes)))
    return out

#: Optional text fields: store column → Zaptec field (str or int in the JSON, as ``_text``).
_TEXT_FIELDS = {
    "session_id": "Id",
    "charger_id": "ChargerId",
    "installation_id": "InstallationId",
    "user_id": "UserId",
    "user_name": "UserFullName",
    "token_name": "TokenName",
    "external_id": "ExternalId",
    "replaced_by_session_id": "ReplacedBySessionId",
}
_TIME_FIELDS = ("StartDateTime", "EndDateTime", "CommitEndDateTime")
_FIRMWARE_PARTS = ("Major", "Minor", "Build", "Revision")
#: Every field read, in one list: one parse of the item yields all their types and texts.
_PATHS = (
    *_TEXT_FIELDS.values(),
    *_TIME_FIELDS,
    "Energy",
    "CommitMetadata",
    "SignedSession",
    "EnergyDetails",
    "ChargerFirmwareVersion",
    *(f"ChargerFirmwareVersion.{part}" for part in _FIRMWARE_PARTS),
)
_AT = {field: position for position, field in enumerate(_PATHS, start=1)}

#: A Zaptec datetime in the plain shapes: naive (UTC by Zaptec's convention) or UTC-marked,
#: ASCII digits, whole seconds and at most microseconds. Anything else: per-record path.
_PLAIN_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|\+00:00)?$"
_PLAIN_DETAIL_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|\+00:00)$"
#: Page text sent whole to the per-record path. DuckDB's reader is laxer than
#: :func:`json.loads` (a trailing comma, NaN/Infinity literals in any case, escapes of UTF-16
#: surrogates; Python's parser also gives up past about a thousand levels of nesting). And
#: the EnergyDetails are read typed, which would coerce: so an ``Energy`` that is not a
#: number (or null), a ``Timestamp`` that is not text, or either key twice in one flat object
#: (DuckDB keeps the first, Python the last) also sends the page that way. One alternation:
#: one pass over the text.
_LAX_JSON = "|".join(
    f"(?:{pattern})"
    for pattern in (
        r",\s*[\]}]",
        r"[:\[,]\s*-?(?:[iI]|[nN][aA])",
        r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}",
        r"(?:[\[{]\s*(?:\"(?:[^\"\\]|\\.)*\"\s*:\s*)?){64}",
        r"\"Energy\"\s*:\s*(?:[^-0-9n\s]|n[^u])",
        r"\"Timestamp\"\s*:\s*[^\"\s]",
        r"\{[^{}]*\"Energy\"\s*:[^{}]*\"Energy\"\s*:",
        r"\{[^{}]*\"Timestamp\"\s*:[^{}]*\"Timestamp\"\s*:",
        # EnergyDetails is read typed too: a list or null, anything else is for Python.
        r"\"EnergyDetails\"\s*:\s*[^\[n\s]",
    )
)
_INTEGER_TYPES = "('UBIGINT', 'BIGINT')"
_NUMBER_TYPES = "('UBIGINT', 'BIGINT', 'DOUBLE')"
_TEXT_TYPES = "('VARCHAR', 'UBIGINT', 'BIGINT')"
_FIRMWARE_TEXT = r"^[0-9]{1,4}(\.[0-9]{1,6}){1,3}$"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _utc(expression: str) -> str:
    """A plain Zaptec datetime text (naive, ``Z`` or ``+00:00``) as TIMESTAMPTZ; NULL when
    the date is impossible. DuckDB's TIMESTAMP cast applies a ``+00:00``/``Z`` itself."""
    return f"timezone('UTC', TRY_CAST({expression} AS TIMESTAMP))"


def _leaf_type(leaf: str) -> str:
    """The JSON type of a value kept as JSON text (``json_type``'s names); NULL when absent
    or null (the per-record path treats the two alike)."""
    return (
        f"CASE WHEN {leaf} IS NULL THEN NULL"
        f" WHEN starts_with({leaf}, '\"') THEN 'VARCHAR'"
        f" WHEN starts_with({leaf}, '{{') THEN 'OBJECT'"
        f" WHEN starts_with({leaf}, '[') THEN 'ARRAY'"
        f" WHEN {leaf} IN ('true', 'false') THEN 'BOOLEAN'"
        f" WHEN regexp_full_match({leaf}, '[0-9]+') THEN 'UBIGINT'"
        f" WHEN regexp_full_match({leaf}, '-[0-9]+') THEN 'BIGINT'"
        " ELSE 'DOUBLE' END"
    )


def _leaf_text(leaf: str) -> str:
    """A value kept as JSON text as ``json_extract_string`` gives it: a string unquoted and
    unescaped, anything else as its JSON text."""
    text = f"(({leaf})::VARCHAR)"
    return (
        f"CASE WHEN NOT starts_with({text}, '\"') THEN {text}"
        f" WHEN contains({text}, '\\') THEN json_extract_string({leaf}, '$')"
        f" ELSE {text}[2:-2] END"
    )


def _ty(field: str) -> str:
    return f"ty[{_AT[field]}]"


def _v(field: str) -> str:
    return f"v[{_AT[field]}]"


def _doubt_sql() -> str:
    """Conditions under which an item goes to the per-record path, OR-ed (never NULL)."""
    fw = "ChargerFirmwareVersion"
    part_types = [_ty(f"{fw}.{p}") for p in _FIRMWARE_PARTS]
    conditions = [
        # An item that is no object has no Id type: see below.
        "len(keys[1]) <> len(list_distinct(keys[1]))",
        # Text fields: a string or an integer (as the per-record path's _text); '' is absent.
        *[
            f"{_ty(f)} NOT IN {_TEXT_TYPES} AND {_ty(f)} <> 'NULL'"
            for f in _TEXT_FIELDS.values()
        ],
        f"{_ty('Id')} IS NULL OR {_ty('Id')} NOT IN {_TEXT_TYPES} OR {_v('Id')} = ''",
        # Times: strings of the plain shape, or absent; an empty string is for Python to judge.
        *[
            f"{_ty(f)} NOT IN ('VARCHAR', 'NULL')"
            f" OR ({_ty(f)} = 'VARCHAR' AND NOT regexp_matches({_v(f)}, '{_PLAIN_TIME}'))"
            for f in _TIME_FIELDS
        ],
        "start_utc IS NULL",
        "end_text IS NOT NULL AND end_utc IS NULL",
        "cloud_end_text IS NOT NULL AND cloud_end_utc IS NULL",
        f"{_ty('Energy')} NOT IN {_NUMBER_TYPES} AND {_ty('Energy')} <> 'NULL'",
        f"{_ty('Energy')} IN {_NUMBER_TYPES} AND (energy_kwh IS NULL OR NOT isfinite(energy_kwh))",
        f"{_ty('CommitMetadata')} NOT IN {_INTEGER_TYPES} AND {_ty('CommitMetadata')} <> 'NULL'",
        f"{_ty('CommitMetadata')} IN {_INTEGER_TYPES} AND metadata IS NULL",
        "metadata < 0 OR metadata > 255",
        f"{_ty('SignedSession')} NOT IN ('VARCHAR', 'NULL')",
        f"{_ty('EnergyDetails')} NOT IN ('ARRAY', 'NULL')",
        # Firmware: a float part, or a part past 64 bits, reads differently; so may text with
        # whitespace or other than printable ASCII (Python strips it; its \d is Unicode).
        f"{_ty(fw)} = 'OBJECT' AND ("
        + " OR ".join(f"{t} = 'DOUBLE'" for t in part_types)
        + " OR len(keys[2]) <> len(list_distinct(keys[2])))",
        f"{_ty(fw)} = 'VARCHAR' AND NOT regexp_matches({_v(fw)}, '^[!-~]*$')",
        # EnergyDetails: read typed; the page-level patterns above leave no coercion to
        # fear, and a point without both fields shows as NULLs in z_detail_doubt.
        "m.n_points > 0 AND points IS NULL",
    ]
    return " OR ".join(f"coalesce(({c}), FALSE)" for c in conditions)


def _firmware_text_sql() -> str:
    """``ChargerFirmwareVersion`` as text, as the per-record path's ``_firmware_text``."""
    fw = "ChargerFirmwareVersion"
    parts = [_AT[f"{fw}.{p}"] for p in _FIRMWARE_PARTS]
    all_counts = " AND ".join(f"ty[{i}] = 'UBIGINT'" for i in parts)
    return (
        f"CASE WHEN {_ty(fw)} = 'OBJECT' AND {all_counts}"
        f" THEN concat_ws('.', {', '.join(f'v[{i}]' for i in parts)})"
        f" WHEN {_ty(fw)} = 'VARCHAR' AND regexp_matches({_v(fw)}, '{_FIRMWARE_TEXT}') THEN {_v(fw)} END"
    )


def _stage_statements() -> list[str]:
    """SQL that stages a batch: readable pages, items, mapped rows, doubts, details."""
    scalars = [p for p in _PATHS if "." not in p and p != "EnergyDetails"]
    item_shape = json.dumps(
        {
            **{field: "JSON" for field in scalars},
            "EnergyDetails": [{"Timestamp": "VARCHAR", "Energy": "DOUBLE"}],
        }
    )
    firmware_paths = "[" + ", ".join(f"'$.{p}'" for p in _FIRMWARE_PARTS) + "]"

    def leaf(field: str) -> str:
        return f"it.{field}"

    types, texts = [], []
    for field in _PATHS:
        if field == "EnergyDetails":
            types.append("CASE WHEN it.EnergyDetails IS NOT NULL THEN 'ARRAY' END")
            texts.append("NULL::VARCHAR")
        elif field.startswith("ChargerFirmwareVersion."):
            at = _FIRMWARE_PARTS.index(field.split(".", 1)[1]) + 1
            types.append(f"fw_types[{at}]")
            texts.append(f"fw[{at}]")
        else:
            types.append(_leaf_type(leaf(field)))
            texts.append(_leaf_text(leaf(field)))
    leaf_types, leaf_texts = ", ".join(types), ", ".join(texts)
    text_columns = ",\n".join(
        f"nullif({_v(field)}, '') AS {column}"
        for column, field in _TEXT_FIELDS.items()
        if column != "installation_id"
    )
    return [
        # Each step is its own table: inlined, DuckDB would parse some JSON twice.
        # Pages DuckDB reads as Python would: valid, none of the lax forms, keys not repeated.
        rf"""CREATE OR REPLACE TEMP TABLE z_pages AS
        SELECT page, json_valid(text) AND NOT regexp_matches(text, {_sql_text(_LAX_JSON)}) AS plain,
          regexp_matches(text, '^\s*\[') AS bare
        FROM z_in""",
        f"""CREATE OR REPLACE TEMP TABLE z_page_items AS
        SELECT page,
          CASE WHEN bare THEN json_transform(text, '[{item_shape}]')
               WHEN len(top_keys) = len(list_distinct(top_keys))
               THEN json_transform(text, '{{"Data": [{item_shape}]}}').Data END AS items,
          CASE WHEN bare THEN json_keys(text, '$[*]') ELSE json_keys(text, '$.Data[*]') END AS item_keys
        FROM (SELECT page, bare, text, CASE WHEN NOT bare THEN json_keys(text) END AS top_keys
              FROM z_in JOIN z_pages USING (page) WHERE plain)""",
        """CREATE OR REPLACE TEMP TABLE z_items AS
        SELECT page, unnest(generate_series(0, len(items) - 1)) AS position, unnest(items) AS it,
          unnest(item_keys) AS item_keys
        FROM z_page_items WHERE items IS NOT NULL AND len(items) = len(item_keys)""",
        f"""CREATE OR REPLACE TEMP TABLE z_fields AS
        SELECT page, position,
          [item_keys, CASE WHEN starts_with(it.ChargerFirmwareVersion, '{{')
                           THEN json_keys(it.ChargerFirmwareVersion) END] AS keys,
          [{leaf_types}] AS ty, [{leaf_texts}] AS v
        FROM (SELECT page, position, item_keys, it,
                CASE WHEN starts_with(it.ChargerFirmwareVersion, '{{')
                     THEN json_type(it.ChargerFirmwareVersion, {firmware_paths}) END AS fw_types,
                CASE WHEN starts_with(it.ChargerFirmwareVersion, '{{')
                     THEN json_extract_string(it.ChargerFirmwareVersion, {firmware_paths}) END AS fw
              FROM z_items)""",
        """CREATE OR REPLACE TEMP TABLE z_points AS
        SELECT page, position, it.EnergyDetails AS points, len(it.EnergyDetails) AS n_points
        FROM z_items WHERE it.EnergyDetails IS NOT NULL""",
        f"""CREATE OR REPLACE TEMP TABLE z_mapped AS
        SELECT page, position, lower({_v('Id')}) AS group_key, n_points,
          {text_columns},
          coalesce(nullif({_v('InstallationId')}, ''), (SELECT installation_id FROM z_source)) AS installation_id,
          CASE WHEN {_ty('StartDateTime')} = 'VARCHAR' THEN {_utc(_v('StartDateTime'))} END AS start_utc,
          coalesce(nullif({_v('CommitEndDateTime')}, ''), {_v('EndDateTime')}) AS end_text,
          {_utc('end_text')} AS end_utc,
          {_v('EndDateTime')} AS cloud_end_text,
          {_utc('cloud_end_text')} AS cloud_end_utc,
          CASE WHEN {_ty('Energy')} IN {_NUMBER_TYPES} THEN TRY_CAST({_v('Energy')} AS DOUBLE) END AS energy_kwh,
          CASE WHEN {_ty('CommitMetadata')} IN {_INTEGER_TYPES} THEN TRY_CAST({_v('CommitMetadata')} AS BIGINT) END AS metadata,
          nullif({_v('SignedSession')}, '') AS signed_session,
          {_firmware_text_sql()} AS firmware_version
        FROM z_fields LEFT JOIN (SELECT page, position, n_points FROM z_points) USING (page, position)""",
        f"""CREATE OR REPLACE TEMP TABLE z_doubt AS
        SELECT page, position, m.group_key, ({_doubt_sql()}) AS doubt,
          -- Python adds the deltas one after the other from 0: so does list_reduce, in list order.
          CASE WHEN m.n_points > 0 THEN list_reduce(
            list_prepend(0.0::DOUBLE, list_transform(p.points, lambda x: x.Energy)), lambda a, b: a + b)
          END AS total_kwh
        FROM z_mapped m JOIN z_fields f USING (page, position) LEFT JOIN z_points p USING (page, position)""",
        """CREATE OR REPLACE TEMP TABLE z_details AS
        SELECT page, position, session_id, TRY_CAST(p.Timestamp AS TIMESTAMPTZ) AS ts_utc,
          p.Timestamp AS ts_text, p.Energy AS energy_kwh
        FROM (SELECT m.page, m.position, m.session_id, unnest(p.points) AS p
              FROM z_mapped m JOIN z_doubt d USING (page, position) JOIN z_points p USING (page, position)
              WHERE m.n_points > 0 AND NOT d.doubt)""",
        f"""CREATE OR REPLACE TEMP TABLE z_detail_doubt AS
        SELECT DISTINCT page, position FROM z_details
        WHERE ts_utc IS NULL OR energy_kwh IS NULL OR NOT isfinite(energy_kwh)
           OR NOT regexp_matches(ts_text, '{_PLAIN_DETAIL_TIME}')
        UNION
        SELECT DISTINCT page, position FROM z_details GROUP BY page, position, ts_utc HAVING count(*) > 1""",
    ]


#: The ``sessions`` columns of the store contract, in order (what the door writes).
_SESSION_COLUMNS = tuple(polars_schema("sessions"))
_DETAIL_COLUMNS = tuple(polars_schema("energy_details"))


def _session_rows_sql() -> str:
    """The ``sessions`` rows of the items without doubt, in contract column order."""
    tolerance = "0.0005::DOUBLE * (m.n_points + 1)::DOUBLE + 1e-9::DOUBLE"
    return f"""CREATE OR REPLACE TEMP TABLE z_sessions AS
    SELECT m.page, m.position,
      m.session_id, m.charger_id, m.installation_id, m.user_id, m.user_name, m.token_name,
      m.start_utc, m.end_utc, m.energy_kwh,
      r.meter_start_kwh, r.meter_stop_kwh,
      m.metadata::INTEGER AS commit_metadata,
      CASE WHEN m.metadata IS NOT NULL THEN (m.metadata & {COMMIT_VOID}) <> 0 END AS is_void,
      CASE WHEN m.metadata IS NOT NULL THEN (m.metadata & {COMMIT_ABORTED}) <> 0 END AS is_aborted,
      CASE WHEN m.metadata IS NOT NULL THEN (m.metadata & {COMMIT_OFFLINE}) <> 0 END AS is_offline,
      m.signed_session, (SELECT source FROM z_source) AS source,
      (SELECT ingested_at FROM z_source) AS ingested_at,
      m.external_id, m.replaced_by_session_id, m.cloud_end_utc, m.firmware_version,
      t.total_rounded_kwh AS energy_details_sum_kwh,
      CASE WHEN m.n_points > 0 THEN
        m.energy_kwh IS NULL OR abs(d.total_kwh - m.energy_kwh) > {tolerance} END AS details_mismatch
    FROM z_mapped m
    JOIN z_doubt d USING (page, position)
    LEFT JOIN z_readings r USING (page, position)
    LEFT JOIN z_totals t USING (page, position)
    WHERE NOT d.doubt AND (page, position) NOT IN (SELECT (page, position) FROM z_detail_doubt)"""


def _routing_statements(session_checks: str, detail_checks: str) -> list[str]:
    """Mark what goes to the per-record path: doubts, contract failures, whole key groups."""
    return [
        f"""CREATE OR REPLACE TEMP TABLE z_bad AS
        SELECT page, position FROM z_doubt WHERE doubt
        UNION SELECT page, position FROM z_detail_doubt
        UNION SELECT page, position FROM z_sessions s WHERE {session_checks}
        UNION SELECT page, position FROM z_details d WHERE {detail_checks}""",
        """CREATE OR REPLACE TEMP TABLE z_routed AS
        WITH bad AS (SELECT page, position, true AS bad FROM z_bad),
        items AS (SELECT d.page, d.position, d.group_key, coalesce(b.bad, FALSE) AS bad
                  FROM z_doubt d LEFT JOIN bad b USING (page, position)),
        groups AS (
          SELECT group_key FROM items WHERE group_key IS NOT NULL
          GROUP BY group_key HAVING count(*) > 1 OR bool_or(bad)
          UNION SELECT group_key FROM z_outside_keys)
        SELECT page, position FROM items
        WHERE bad OR group_key IS NULL OR group_key IN (SELECT group_key FROM groups)""",
    ]


def _decode(text: str | bytes) -> str | None:
    """Page text as DuckDB must see it, or None when only Python may read it (bad UTF-8,
    an unpaired surrogate in an already-decoded text)."""
    try:
        if isinstance(text, bytes):
            return text.decode("utf-8-sig")
        text.encode("utf-8")
    except UnicodeError:
        return None
    return text


def envelope_items(page: Any) -> list[Any]:
    """The ``Data`` list of a ``{Pages, Data}`` envelope (or a bare list)."""
    if isinstance(page, list):
        return page
    if isinstance(page, dict) and isinstance(page.get("Data"), list):
        return page["Data"]
    raise RecordError("Data", "page is not a {Pages, Data} envelope")


def _python_items(text: str | bytes) -> list[Any] | None:
    try:
        return envelope_items(load_json_text(text))
    except RecordError:
        return None


def _group_key(item: Any) -> str | None:
    """The key an item read by Python groups under (as DuckDB's ``lower(Id)``)."""
    if not isinstance(item, dict) or item.get("Id") is None:
        return None
    value = item["Id"]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower() if isinstance(value, str | int) else None


_TEMPORARIES = (
    "z_pages", "z_page_items", "z_items", "z_fields", "z_points", "z_mapped", "z_doubt", "z_details", "z_detail_doubt", "z_sessions", "z_bad", "z_routed",
    "z_outside_keys", "z_readings", "z_totals", "z_source",
)  # fmt: skip


def _stage_python_columns(con) -> None:
    """The two columns SQL does not compute: OCMF register readings and the rounded sum.

    Python's ``round(x, 6)`` rounds the exact binary value correctly; DuckDB's ``round``
    scales by 10⁶ first and can differ in the last digit, so the ~20,000 sums of a year go
    through Python. OCMF records are parsed by the audit's own reader.
    """
    signed = con.execute(
        "SELECT m.page, m.position, m.signed_session FROM z_mapped m JOIN z_doubt d"
        " USING (page, position) WHERE NOT d.doubt AND m.signed_session IS NOT NULL"
    ).fetchall()
    readings = [session_meter_readings(text) for _, _, text in signed]
    frame = pl.DataFrame(
        {
            "page": [p for p, _, _ in signed],
            "position": [q for _, q, _ in signed],
            "meter_start_kwh": [r[0] for r in readings],
            "meter_stop_kwh": [r[1] for r in readings],
        },
        schema={"page": pl.Int32, "position": pl.Int64, "meter_start_kwh": pl.Float64,
                "meter_stop_kwh": pl.Float64},
    )
    con.register("z_readings_in", frame.to_arrow())
    con.execute("CREATE OR REPLACE TEMP TABLE z_readings AS SELECT * FROM z_readings_in")
    con.unregister("z_readings_in")
    sums = con.execute(
        "SELECT page, position, total_kwh FROM z_doubt WHERE NOT doubt AND total_kwh IS NOT NULL"
    ).fetchnumpy()
    totals = pl.DataFrame(
        {
            "page": sums["page"],
            "position": sums["position"],
            "total_rounded_kwh": [round(float(x), 6) for x in sums["total_kwh"]],
        },
        schema={"page": pl.Int32, "position": pl.Int64, "total_rounded_kwh": pl.Float64},
    )
    con.register("z_totals_in", totals.to_arrow())
    con.execute("CREATE OR REPLACE TEMP TABLE z_totals AS SELECT * FROM z_totals_in")
    con.unregister("z_totals_in")


def _write_clean(run: IngestRun) -> tuple[RunCounts, int]:
    """Store the sessions and details no one doubts, in one transaction; count them."""
    con = run.con
    keep = "(page, position) NOT IN (SELECT (page, position) FROM z_routed)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE z_write_sessions AS SELECT {', '.join(_SESSION_COLUMNS)}"
        f" FROM z_sessions WHERE {keep} ORDER BY page, position"
    )
    # A view: a million detail rows are not copied once more before the insert.
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW z_write_details AS SELECT {', '.join(_DETAIL_COLUMNS)}"
        f" FROM z_details WHERE {keep}"
    )
    stored, flagged = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE details_mismatch) FROM z_write_sessions"
    ).fetchone()
    con.execute("BEGIN TRANSACTION")
    try:
        merge_staged(con, "sessions", "z_write_sessions", _SESSION_COLUMNS)
        merge_staged(con, "energy_details", "z_write_details", _DETAIL_COLUMNS)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS z_write_sessions")
        con.execute("DROP VIEW IF EXISTS z_write_details")
    counts = RunCounts(stored, stored, 0)
    run.add_counts(counts)
    return counts, flagged


def admit_by_record(
    run: IngestRun,
    texts: Sequence[str | bytes],
    whole_pages: Sequence[int],
    items_by_page: dict[int, list[tuple[int, Any]]],
    installation_id: str | None,
) -> tuple[RunCounts, int, int]:
    """The per-record path: whole pages and single items, mapped and admitted through the door.

    Pages and items keep their order; an unreadable page is one record, quarantined whole.

    Returns
    -------
    tuple
        (counts, pages quarantined whole, sessions flagged for an EnergyDetails mismatch).
    """
    records: list[Any] = []
    entries: list[tuple[int, Any]] = []
    rejected: list[Rejection] = []
    bad_pages = 0
    whole = set(whole_pages)
    for page in sorted(whole | set(items_by_page)):
        if page in whole:
            text = texts[page]
            try:
                items = envelope_items(load_json_text(text))
            except RecordError as exc:
                rejected.append(Rejection(len(records), "sessions", f"chargehistory page: {exc}"))
                records.append(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
                bad_pages += 1
                continue
            positioned = list(enumerate(items))
        else:
            positioned = items_by_page[page]
        for _, item in positioned:
            entries.append((len(records), item))
            records.append(item)
    if not records:
        return RunCounts(), 0, 0
    counts, flagged = admit_history_entries(run, records, entries, rejected, installation_id)
    return counts, bad_pages, flagged


def admit_history_texts(
    run: IngestRun, texts: Sequence[str | bytes], *, installation_id: str | None
) -> tuple[RunCounts, int, int]:
    """Validate and store charge-history pages, in DuckDB where it can decide.

    Parameters
    ----------
    run : IngestRun
        The open run; its connection is the store.
    texts : sequence of str or bytes
        Page bodies of ``GET /api/chargehistory`` (``{Pages, Data}`` or a bare list).
    installation_id : str or None
        The installation the pages were asked for (used where an item names none).

    Returns
    -------
    tuple
        (counts, pages quarantined whole, sessions flagged for an EnergyDetails mismatch).
        Every item is one source record; ``rows_in = rows_stored + rows_quarantined``.
    """
    con = run.con
    now = dt.datetime.now(dt.UTC)
    decoded = [_decode(t) for t in texts]
    incoming = f"z_in_{uuid.uuid4().hex[:12]}"
    con.register(
        incoming,
        pl.DataFrame(
            {
                "page": [i for i, t in enumerate(decoded) if t is not None],
                "text": [t for t in decoded if t is not None],
            },
            schema={"page": pl.Int32, "text": pl.String},
        ).to_arrow(),
    )
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW z_in AS SELECT * FROM {incoming}")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE z_source AS SELECT ?::VARCHAR AS source,"
            " ?::VARCHAR AS installation_id, ?::TIMESTAMPTZ AS ingested_at",
            [run.source, installation_id, now],
        )
        statements = _stage_statements()
        with _stage("read pages: JSON validity, guards, one typed read"):
            for statement in statements[:3]:
                con.execute(statement)
        with _stage("map items and run the contract checks"):
            for statement in statements[3:]:
                con.execute(statement)
            item_counts = dict(
                con.execute("SELECT page, count(*) FROM z_items GROUP BY page").fetchall()
            )
            item_pages = set(item_counts)
            whole_pages = [i for i in range(len(texts)) if i not in item_pages]
            outside = {
                key
                for page in whole_pages
                for key in map(_group_key, _python_items(texts[page]) or [])
                if key is not None
            }
            con.execute("CREATE OR REPLACE TEMP TABLE z_outside_keys (group_key VARCHAR)")
            if outside:
                con.executemany("INSERT INTO z_outside_keys VALUES (?)", [[k] for k in sorted(outside)])
            _stage_python_columns(con)
            con.execute(_session_rows_sql())
            session_checks = any_failure_sql(contract_checks("sessions", alias="s", now=now))
            detail_checks = any_failure_sql(contract_checks("energy_details", alias="d", now=now))
            for statement in _routing_statements(session_checks, detail_checks):
                con.execute(statement)
            routed: dict[int, list[int]] = {}
            for page, position in con.execute(
                "SELECT page, position FROM z_routed ORDER BY 1, 2"
            ).fetchall():
                routed.setdefault(page, []).append(position)
        # Pages with items for Python are read by Python before anything is written. Should
        # json.loads see a page DuckDB read differently, the whole batch goes that way.
        items_by_page: dict[int, list[tuple[int, Any]]] = {}
        for page, positions in routed.items():
            items = _python_items(texts[page])
            if items is None or len(items) != item_counts.get(page, 0):
                with _stage("per-record path"):
                    return admit_by_record(run, texts, range(len(texts)), {}, installation_id)
            items_by_page[page] = [(p, items[p]) for p in positions]
        with _stage("write: anti-join insert, commit"):
            counts, flagged = _write_clean(run)
        with _stage("per-record path"):
            by_record, bad_pages, by_record_flagged = admit_by_record(
                run, texts, whole_pages, items_by_page, installation_id
            )
        counts += by_record
        return counts, bad_pages, flagged + by_record_flagged
    finally:
        con.unregister(incoming)
        con.execute("DROP VIEW IF EXISTS z_in")
        for name in _TEMPORARIES:
            con.execute(f"DROP TABLE IF EXISTS {name}")
