"""Signed OCMF records found in the store, read and verified in bulk.

Two places in the store hold OCMF records: ``sessions.signed_session`` (Zaptec's
``SignedSession``, a transaction record) and ``charger_states`` rows with state 554
(``SignedMeterValue``, a periodic fiscal record of the lifetime register). The public
keys come from the caller, or from state 981 (``MIDPublicKey``) when the store has it.

:func:`signed_records` turns them into one flat frame (one row per record) that the
integrity checks work on, so every record is parsed and verified once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from zapanalytics.audit.findings import utc_frame
from zapanalytics.audit.ocmf import (
    OcmfError,
    OcmfRecord,
    PublicKeyError,
    Verdict,
    check_transaction,
    parse,
    verify_many,
)

__all__ = [
    "COMMIT_SIGNED",
    "MID_PUBLIC_KEY_STATE_ID",
    "SIGNED_METER_VALUE_STATE_ID",
    "SIGNED_RECORD_SCHEMA",
    "SIGNED_REGISTER_SOURCE",
    "active_sessions",
    "public_keys_from_states",
    "session_chain",
    "session_records",
    "session_register_readings",
    "signed_records",
]

SIGNED_METER_VALUE_STATE_ID = 554
MID_PUBLIC_KEY_STATE_ID = 981
#: ``CommitMetadata`` bit set when Zaptec says the session was signed.
COMMIT_SIGNED = 16

SIGNED_RECORD_SCHEMA = pl.Schema(
    {
        "record_source": pl.String,  # "session" or "meter_value"
        "charger_id": pl.String,
        "session_id": pl.String,
        "observed_utc": pl.Datetime("us", "UTC"),  # session start, or the state's time
        "verdict": pl.String,  # null when no key was available
        "reason": pl.String,
        "payload_sha256": pl.String,
        "ocmf_session_id": pl.String,
        "begin_utc": pl.Datetime("us", "UTC"),
        "end_utc": pl.Datetime("us", "UTC"),
        "begin_kwh": pl.Float64,
        "end_kwh": pl.Float64,
        "energy_kwh": pl.Float64,
        "resolution_kwh": pl.Float64,
        "transaction_passed": pl.Boolean,
        "transaction_failed": pl.String,
        "weakest_clock_status": pl.String,
    }
)


def public_keys_from_states(charger_states: pl.DataFrame | None) -> dict[str, str]:
    """Each charger's latest ``MIDPublicKey`` (state 981) value, when the store has one."""
    if charger_states is None or charger_states.is_empty():
        return {}
    keys = (
        charger_states.filter(
            (pl.col("state_id") == MID_PUBLIC_KEY_STATE_ID)
            & pl.col("value").is_not_null()
            & (pl.col("value").str.strip_chars() != "")
        )
        .sort("ts_utc")
        .group_by("charger_id", maintain_order=True)
        .last()
    )
    return dict(zip(keys["charger_id"].to_list(), keys["value"].to_list(), strict=True))


def _row(
    source: str,
    charger_id: str | None,
    session_id: str | None,
    observed: Any,
    record: OcmfRecord | None,
    verdict: str | None,
    reason: str,
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SIGNED_RECORD_SCHEMA.names())
    row.update(
        record_source=source,
        charger_id=charger_id,
        session_id=session_id,
        observed_utc=observed,
        verdict=verdict,
        reason=reason,
    )
    if record is None:
        return row
    row["payload_sha256"] = record.payload_sha256
    row["ocmf_session_id"] = record.session_id
    if record.is_transaction:
        checks = check_transaction(record)
        begin, end = checks.begin, checks.end
        row["transaction_passed"] = checks.passed
        row["transaction_failed"] = ",".join(checks.failed) or None
        row["weakest_clock_status"] = checks.weakest_clock_status
        row["energy_kwh"] = checks.energy_kwh
    else:
        # A fiscal record: its (first) register reading is both begin and end.
        begin = end = next((r for r in record.readings if r.value is not None), None)
    for prefix, reading in (("begin", begin), ("end", end)):
        if reading is not None:
            row[f"{prefix}_utc"] = reading.time_utc
            row[f"{prefix}_kwh"] = reading.energy_kwh
    reference = begin or end
    if (
        reference is not None
        and reference.resolution is not None
        and reference.unit in ("kWh", "Wh")
    ):
        scale = 0.001 if reference.unit == "Wh" else 1.0
        row["resolution_kwh"] = float(reference.resolution) * scale
    return row


def _judge(
    source: str,
    items: list[tuple[str | None, str | None, Any, str]],
    key: str | None,
) -> list[dict[str, Any]]:
    """Parse and (when a key is known) verify the records of one charger."""
    records: list[OcmfRecord | None] = []
    errors: list[str] = []
    for *_, text in items:
        try:
            records.append(parse(text))
            errors.append("")
        except OcmfError as exc:
            records.append(None)
            errors.append(exc.reason)
    verdicts: list[Verdict | None] = [None] * len(items)
    key_problem = None
    parsed = [r for r in records if r is not None]
    if key is not None:
        if parsed:
            try:
                judged = iter(verify_many(parsed, key))
            except PublicKeyError as exc:
                key_problem = f"the charger's public key cannot be read: {exc}"
            else:
                verdicts = [next(judged) if r is not None else None for r in records]
    rows = []
    for (charger_id, session_id, observed, _), record, error, verdict in zip(
        items, records, errors, verdicts, strict=True
    ):
        if record is None:
            rows.append(_row(source, charger_id, session_id, observed, None, "malformed", error))
        elif verdict is not None:
            rows.append(
                _row(
                    source,
                    charger_id,
                    session_id,
                    observed,
                    record,
                    verdict.kind.value,
                    verdict.reason,
                )
            )
        else:
            reason = key_problem or "no public key for this charger; signature not checked"
            rows.append(_row(source, charger_id, session_id, observed, record, None, reason))
    return rows


def signed_records(
    sessions: pl.DataFrame | None,
    charger_states: pl.DataFrame | None = None,
    public_keys: Mapping[str, Any] | None = None,
    *,
    include_meter_values: bool = True,
) -> pl.DataFrame:
    """Read and verify every OCMF record in the store's sessions and charger states.

    Parameters
    ----------
    sessions : polars.DataFrame or None
        The ``sessions`` table (``session_id``, ``charger_id``, ``start_utc``,
        ``signed_session``).
    charger_states : polars.DataFrame, optional
        The ``charger_states`` table; state 554 rows are read as fiscal records and
        state 981 rows supply public keys the caller did not give.
    public_keys : mapping of charger_id to key, optional
        PEM, or DER as bytes, hex or base64. Overrides keys found in the store.
    include_meter_values : bool
        Also verify state 554 records (many: one per 15 min or hour per charger).

    Returns
    -------
    polars.DataFrame
        One row per record, :data:`SIGNED_RECORD_SCHEMA`. ``verdict`` is null when no
        key was available, ``"malformed"`` when the record could not be read.
    """
    sessions, charger_states = utc_frame(sessions), utc_frame(charger_states)
    keys: dict[str, Any] = {**public_keys_from_states(charger_states), **(public_keys or {})}
    by_charger: dict[tuple[str, str | None], list[tuple[str | None, str | None, Any, str]]] = {}
    if sessions is not None and not sessions.is_empty():
        signed = sessions.filter(
            pl.col("signed_session").is_not_null()
            & (pl.col("signed_session").str.strip_chars() != "")
        )
        for row in signed.select(
            "charger_id", "session_id", "start_utc", "signed_session"
        ).iter_rows():
            by_charger.setdefault(("session", row[0]), []).append(row)
    if include_meter_values and charger_states is not None and not charger_states.is_empty():
        states = charger_states.filter(
            (pl.col("state_id") == SIGNED_METER_VALUE_STATE_ID) & pl.col("value").is_not_null()
        )
        for charger_id, ts, value in states.select("charger_id", "ts_utc", "value").iter_rows():
            by_charger.setdefault(("meter_value", charger_id), []).append(
                (charger_id, None, ts, value)
            )
    rows = []
    for (source, charger_id), items in by_charger.items():
        rows.extend(_judge(source, items, keys.get(charger_id)))
    frame = pl.DataFrame(rows, schema=SIGNED_RECORD_SCHEMA)
    return frame.sort(["charger_id", "observed_utc"], nulls_last=True)


def active_sessions(sessions: pl.DataFrame) -> pl.DataFrame:
    """Sessions that count: not void and not replaced by another (when those columns exist)."""
    keep = pl.lit(True)
    if "is_void" in sessions.columns:
        keep = keep & ~pl.col("is_void").fill_null(False)
    if "replaced_by_session_id" in sessions.columns:
        keep = keep & pl.col("replaced_by_session_id").is_null()
    return sessions.filter(keep)


#: Source name of register readings taken from signed records (the meter's own clock).
SIGNED_REGISTER_SOURCE = "zaptec_ocmf"
_UNTRUSTED = ("invalid_signature", "key_mismatch", "malformed")


def session_register_readings(signed: pl.DataFrame) -> pl.DataFrame:
    """The begin and end register readings of signed session records, shaped like
    ``meter_values`` rows (source :data:`SIGNED_REGISTER_SOURCE`, stamped with the
    readings' own times, as the periodic state 554 rows are); records whose signature
    fails are left out.

    With the periodic records they make one register series on the meter's clock that
    also knows the register where sessions begin and end.
    """
    records = signed.filter(
        (pl.col("record_source") == "session")
        & ~pl.col("verdict").is_in(_UNTRUSTED).fill_null(False)
        & pl.col("charger_id").is_not_null()
    )
    parts = [
        records.select(
            "charger_id",
            ts_utc=pl.col(f"{edge}_utc"),
            source=pl.lit(SIGNED_REGISTER_SOURCE),
            energy_register_kwh=pl.col(f"{edge}_kwh"),
        )
        for edge in ("begin", "end")
    ]
    return (
        pl.concat(parts)
        .drop_nulls(["ts_utc", "energy_register_kwh"])
        .unique(["charger_id", "ts_utc"], keep="first", maintain_order=True)
    )


def session_chain(sessions: pl.DataFrame) -> pl.Expr:
    """The sequence a session belongs to: its charger and the system that recorded it.

    The cloud and an OCPP central system each record the same charging; the sessions of
    one record follow one another, those of two records overlap by nature.
    """
    source = pl.col("source") if "source" in sessions.columns else pl.lit(None, pl.String)
    return pl.concat_str(pl.col("charger_id"), source.fill_null(""), separator="\x1f")


def session_records(signed: pl.DataFrame | None) -> pl.DataFrame:
    """The session records of a :func:`signed_records` frame, one per session (empty when None)."""
    columns = [
        "session_id",
        "verdict",
        "begin_kwh",
        "end_kwh",
        "energy_kwh",
        "begin_utc",
        "end_utc",
        "payload_sha256",
        "ocmf_session_id",
        "resolution_kwh",
    ]
    if signed is None:
        schema = {
            "session_id": pl.String,
            "verdict": pl.String,
            "begin_kwh": pl.Float64,
            "end_kwh": pl.Float64,
            "energy_kwh": pl.Float64,
            "begin_utc": pl.Datetime("us", "UTC"),
            "end_utc": pl.Datetime("us", "UTC"),
            "payload_sha256": pl.String,
            "ocmf_session_id": pl.String,
            "resolution_kwh": pl.Float64,
        }
        return pl.DataFrame(schema=schema)
    return (
        signed.filter(pl.col("record_source") == "session")
        .select(columns)
        .unique("session_id", keep="first", maintain_order=True)
    )
