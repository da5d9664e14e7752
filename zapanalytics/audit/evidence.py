"""Evidence checks on signed records: signatures, clocks and duplicates.

Pure functions over :func:`zapanalytics.audit.signed.signed_records` output and the
store's ``sessions`` table, returning findings
(:data:`zapanalytics.audit.findings.FINDING_SCHEMA`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from zapanalytics.audit.findings import finding, findings_frame, utc_frame
from zapanalytics.audit.signed import (
    COMMIT_SIGNED,
    active_sessions,
    session_chain,
    session_records,
)

__all__ = [
    "HOW_TO_VERIFY",
    "clock_findings",
    "clock_offsets",
    "duplicate_findings",
    "on_cloud_time",
    "signature_findings",
]


def _offsets(sessions: pl.DataFrame, signed: pl.DataFrame) -> pl.DataFrame:
    """Charger-clock minus cloud-clock pairs [s], one row per comparable time."""
    paired = session_records(signed).join(
        sessions.select("session_id", "charger_id", "start_utc", cloud_end="end_utc"),
        on="session_id",
        how="inner",
    )
    begin = paired.select(
        "charger_id",
        "session_id",
        ts_utc="start_utc",
        comparison=pl.lit("signed begin reading vs session start"),
        offset_s=(pl.col("begin_utc") - pl.col("start_utc")).dt.total_microseconds() / 1e6,
    )
    end = paired.select(
        "charger_id",
        "session_id",
        ts_utc="cloud_end",
        comparison=pl.lit("signed end reading vs session end"),
        offset_s=(pl.col("end_utc") - pl.col("cloud_end")).dt.total_microseconds() / 1e6,
    )
    fiscal = signed.filter(pl.col("record_source") == "meter_value").select(
        "charger_id",
        "session_id",
        ts_utc="observed_utc",
        comparison=pl.lit("periodic record reading vs its observation time"),
        offset_s=(pl.col("begin_utc") - pl.col("observed_utc")).dt.total_microseconds() / 1e6,
    )
    parts = [begin, end, fiscal]
    if "cloud_end_utc" in sessions.columns:
        # end_utc is the charger's CommitEndDateTime; cloud_end_utc is when the cloud
        # closed the session, seconds later when online (offline sessions close late).
        online = sessions.filter(pl.col("cloud_end_utc").is_not_null())
        if "is_offline" in online.columns:
            online = online.filter(~pl.col("is_offline").fill_null(False))
        parts.append(
            online.select(
                "charger_id",
                "session_id",
                ts_utc="cloud_end_utc",
                comparison=pl.lit("session end (charger) vs cloud close"),
                offset_s=(pl.col("end_utc") - pl.col("cloud_end_utc")).dt.total_microseconds()
                / 1e6,
            )
        )
    return pl.concat(parts).drop_nulls(["offset_s", "ts_utc"])


def clock_findings(
    sessions: pl.DataFrame,
    signed: pl.DataFrame,
    *,
    tolerance_s: float = 60.0,
) -> pl.DataFrame:
    """Charger clocks that disagree with the cloud's.

    Times from the charger's clock are compared with the cloud's time for the same
    moment: each signed record's begin and end readings with the session's start and
    end, a periodic (state 554) record's reading with its observation time, and, for
    online sessions, the charger's end (``CommitEndDateTime``) with the cloud's close
    (``cloud_end_utc``). Where both times come from the charger the comparison shows
    nothing, so a clean result means "no evidence of drift", not "clock proven right".

    Parameters
    ----------
    sessions : polars.DataFrame
        The ``sessions`` table.
    signed : polars.DataFrame
        :func:`zapanalytics.audit.signed.signed_records` output.
    tolerance_s : float
        Largest offset accepted [s]; authorisation and the begin reading, or the cloud
        observation and the reading, are normally seconds apart.

    Returns
    -------
    polars.DataFrame
        One ``clock_offset`` finding per charger whose worst offset exceeds the
        tolerance; magnitude is that signed offset [s] (charger ahead is positive).
    """
    sessions = utc_frame(sessions)
    offsets = _offsets(sessions, signed)
    rows = []
    for (charger_id,), by_charger in offsets.group_by("charger_id", maintain_order=True):
        worst_row = by_charger.row(int(by_charger["offset_s"].abs().arg_max()), named=True)
        worst = worst_row["offset_s"]
        if abs(worst) <= tolerance_s:
            continue
        # Summarise the comparison that shows the offset: others may pit the charger's
        # clock against itself and read zero.
        group = by_charger.filter(pl.col("comparison") == worst_row["comparison"]).sort("ts_utc")
        values = group["offset_s"].to_numpy()
        seconds = group["ts_utc"].dt.epoch("s").to_numpy().astype(float)
        drift = ""
        if len(values) >= 3 and seconds[-1] - seconds[0] >= 86400:
            slope = np.polyfit(seconds - seconds[0], values, 1)[0]
            drift = f"; trend {slope * 1e6:+,.1f} ppm ({slope * 86400:+,.2f} s/day)"
        rows.append(
            finding(
                "clock_offset",
                "warning",
                f"the charger's clock differs from the cloud's by up to {worst:+,.1f} s "
                f"({worst_row['comparison']}: median {float(np.median(values)):+,.1f} s over "
                f"{len(values)} times{drift}); times in its signed records carry this error",
                charger_id=charger_id,
                session_id=worst_row["session_id"],
                ts_utc=worst_row["ts_utc"],
                magnitude=worst,
                magnitude_unit="s",
                evidence=worst_row["comparison"],
            )
        )
    return findings_frame(rows)


#: An offset this far from its neighbours' median is a delayed message, not the clock [s].
_OFFSET_OUTLIER_S = 30.0


def clock_offsets(
    sessions: pl.DataFrame, signed: pl.DataFrame, *, tolerance_s: float = 60.0
) -> pl.DataFrame:
    """The measured offsets of each charger whose clock differs from the cloud's.

    The same comparison :func:`clock_findings` reports (the one showing the largest
    offset), for the chargers it reports: ``charger_id``, ``ts_utc`` (cloud time) and
    ``offset_s`` (charger ahead is positive), sorted by time.
    """
    offsets = _offsets(utc_frame(sessions), signed)
    worst = (
        offsets.sort(pl.col("offset_s").abs(), descending=True)
        .unique("charger_id", keep="first")
        .filter(pl.col("offset_s").abs() > tolerance_s)
        .select("charger_id", "comparison")
    )
    return (
        offsets.join(worst, on=["charger_id", "comparison"])
        .select("charger_id", "ts_utc", "offset_s")
        .sort("charger_id", "ts_utc")
    )


def on_cloud_time(frame: pl.DataFrame, offsets: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the ``ts_utc`` of chargers whose clock is off moved to the cloud's
    time: less the charger's offset, interpolated between its measurements and held
    beyond them (a measurement more than 30 s from the running median of five around it
    is a late delivery and left out).

    Every time a charger stamps (signed readings, OCPP meter values, its states) is on
    its own clock; registers compared with other meters by the hour or the quarter must
    be on a common one.
    """
    if offsets.is_empty() or frame.is_empty():
        return frame
    parts = []
    for (charger_id,), rows in frame.group_by("charger_id", maintain_order=True):
        own = offsets.filter(pl.col("charger_id") == charger_id)
        if own.is_empty():
            parts.append(rows)
            continue
        # A measurement far from its neighbours' median is a late delivery, not the clock.
        measured = own.filter(
            (
                pl.col("offset_s")
                - pl.col("offset_s").rolling_median(5, min_samples=1, center=True)
            ).abs()
            <= _OFFSET_OUTLIER_S
        )
        when = measured["ts_utc"].dt.epoch("us").to_numpy() / 1e6
        shift_s = np.interp(
            rows["ts_utc"].dt.epoch("us").to_numpy() / 1e6, when, measured["offset_s"].to_numpy()
        )
        parts.append(
            rows.with_columns(
                ts_utc=pl.col("ts_utc")
                - pl.duration(microseconds=pl.Series(np.round(shift_s * 1e6).astype(np.int64)))
            )
        )
    return pl.concat(parts)


def duplicate_findings(sessions: pl.DataFrame, signed: pl.DataFrame | None = None) -> pl.DataFrame:
    """Duplicated evidence: one signed record on two sessions, records on the wrong
    session, and sessions overlapping on one charger.

    Returns
    -------
    polars.DataFrame
        Findings ``duplicate_signed_record`` (error), ``ocmf_session_mismatch``
        (warning: the record's ``ZS`` names another session) and
        ``overlapping_sessions`` (error).
    """
    sessions = utc_frame(sessions)
    rows = []
    active = active_sessions(sessions)
    records = session_records(signed).join(
        active.select("session_id", "charger_id", "start_utc"), on="session_id", how="inner"
    )
    repeated = (
        records.filter(pl.col("payload_sha256").is_not_null())
        .sort("start_utc")
        .with_columns(first_session=pl.col("session_id").first().over("payload_sha256"))
        .filter(pl.col("session_id") != pl.col("first_session"))
    )
    for row in repeated.iter_rows(named=True):
        rows.append(
            finding(
                "duplicate_signed_record",
                "error",
                f"the same signed record (payload SHA-256 {row['payload_sha256'][:16]}…) "
                f"is attached to session {row['first_session']} as well",
                charger_id=row["charger_id"],
                session_id=row["session_id"],
                ts_utc=row["start_utc"],
                magnitude=row["energy_kwh"],
                magnitude_unit="kWh",
                evidence="signed_session",
            )
        )
    mismatched = records.filter(
        pl.col("ocmf_session_id").is_not_null()
        & (pl.col("ocmf_session_id") != pl.col("session_id"))
    )
    for row in mismatched.iter_rows(named=True):
        rows.append(
            finding(
                "ocmf_session_mismatch",
                "warning",
                f"the signed record names session {row['ocmf_session_id']} (ZS), not this one",
                charger_id=row["charger_id"],
                session_id=row["session_id"],
                ts_utc=row["start_utc"],
                evidence="signed_session",
            )
        )
    overlaps = (
        active.filter(pl.col("end_utc").is_not_null())
        .with_columns(chain=session_chain(active))
        .sort("chain", "start_utc")
        .with_columns(
            previous_session=pl.col("session_id").shift(1).over("chain"),
            previous_end=pl.col("end_utc").shift(1).over("chain"),
        )
        .filter(pl.col("previous_end") > pl.col("start_utc"))
    )
    for row in overlaps.iter_rows(named=True):
        overlap_s = (row["previous_end"] - row["start_utc"]).total_seconds()
        rows.append(
            finding(
                "overlapping_sessions",
                "error",
                f"starts {overlap_s:,.0f} s before session {row['previous_session']} on the same "
                "charger ended; one charger runs one session at a time",
                charger_id=row["charger_id"],
                session_id=row["session_id"],
                ts_utc=row["start_utc"],
                magnitude=overlap_s,
                magnitude_unit="s",
                evidence="sessions",
            )
        )
    return findings_frame(rows)


#: What to do about signed records no key could check (said in findings and the report).
HOW_TO_VERIFY = (
    "To verify them, give the meters' public keys with --public-keys (a directory of "
    "<serial>.pem files, or a JSON file mapping serials to keys), or have the keys in the "
    "dataset: the chargers' MIDPublicKey observation (state 981) in the Zaptec dump."
)


def signature_findings(signed: pl.DataFrame, sessions: pl.DataFrame | None = None) -> pl.DataFrame:
    """Signed records that fail, unsigned records, and signed sessions without a record.

    Returns
    -------
    polars.DataFrame
        Findings ``ocmf_invalid_signature``, ``ocmf_key_mismatch``, ``ocmf_malformed``
        (errors), ``ocmf_unsupported_curve``, ``ocmf_unsigned``, ``ocmf_missing``
        (warnings), ``ocmf_transaction_failed`` (error) and one ``ocmf_not_verified``
        (warning, saying how to verify them) per charger whose records could not be
        checked for want of a key: an unchecked signature is not a passed one.
    """
    sessions = utc_frame(sessions)
    rows = []
    severity = {
        "invalid_signature": "error",
        "key_mismatch": "error",
        "malformed": "error",
        "unsupported_curve": "warning",
        "unsigned": "warning",
    }
    for row in signed.iter_rows(named=True):
        what = "session record" if row["record_source"] == "session" else "periodic record"
        source = "signed_session" if row["record_source"] == "session" else "signed_meter_value"
        verdict = row["verdict"]
        if verdict in severity:
            rows.append(
                finding(
                    f"ocmf_{verdict}",
                    severity[verdict],
                    f"{what}: {row['reason']}",
                    charger_id=row["charger_id"],
                    session_id=row["session_id"],
                    ts_utc=row["observed_utc"],
                    magnitude=row["energy_kwh"],
                    magnitude_unit="kWh" if row["energy_kwh"] is not None else None,
                    evidence=source,
                )
            )
        if row["transaction_passed"] is False and verdict not in ("malformed",):
            rows.append(
                finding(
                    "ocmf_transaction_failed",
                    "error",
                    f"{what} fails the transaction checks: {row['transaction_failed']}",
                    charger_id=row["charger_id"],
                    session_id=row["session_id"],
                    ts_utc=row["observed_utc"],
                    evidence=source,
                )
            )
    unchecked = (
        signed.filter(pl.col("verdict").is_null())
        .group_by("charger_id", maintain_order=True)
        .agg(count=pl.len(), first=pl.col("observed_utc").min(), reason=pl.col("reason").first())
    )
    for row in unchecked.iter_rows(named=True):
        rows.append(
            finding(
                "ocmf_not_verified",
                "warning",
                f"{row['count']} signed records were not verified ({row['reason']}). "
                f"{HOW_TO_VERIFY}",
                charger_id=row["charger_id"],
                ts_utc=row["first"],
                magnitude=float(row["count"]),
                magnitude_unit="records",
                evidence="signed records",
            )
        )
    if sessions is not None and "commit_metadata" in sessions.columns:
        missing = active_sessions(sessions).filter(
            (pl.col("commit_metadata").fill_null(0) & COMMIT_SIGNED != 0)
            & (
                pl.col("signed_session").is_null()
                | (pl.col("signed_session").str.strip_chars() == "")
            )
        )
        for row in missing.iter_rows(named=True):
            rows.append(
                finding(
                    "ocmf_missing",
                    "warning",
                    "Zaptec marks the session signed (CommitMetadata bit 16) but it carries "
                    "no signed record",
                    charger_id=row["charger_id"],
                    session_id=row["session_id"],
                    ts_utc=row["start_utc"],
                    evidence="sessions.commit_metadata",
                )
            )
    return findings_frame(rows)
