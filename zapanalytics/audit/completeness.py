"""Completeness from the registers: energy that no session accounts for.

A charger's energy register only counts up. Each session carries the register at its begin
and at its end (the OCMF ``B``/``E`` readings of its signed record, else the API's or OCPP's
meter start and stop). Between one session's end and the next session's begin on the same
charger, the register should not move: whatever it advanced by was delivered while no
session was recorded. A session that every source missed (a charger offline when it
committed, a page the sync never fetched, a row deleted by hand) shows up here even though no
source lists it.

The check runs over the canonical sessions of each charger, whatever system recorded them,
so a charging the cloud missed but OCPP recorded accounts for its energy. Sessions whose
signed record failed verification keep the chain but their registers are not trusted, so
the windows next to them are not judged. A register that falls (a reset, a rollover) is the
integrity audit's business (:mod:`zapanalytics.audit.integrity`), not counted here.
"""

from __future__ import annotations

import polars as pl

from zapanalytics.audit.findings import FINDING_SCHEMA, finding, findings_frame, utc_frame
from zapanalytics.audit.signed import active_sessions, session_records

#: Register advance below this is rounding or a meter's own noise, not a session [kWh].
DEFAULT_MIN_KWH = 0.01
#: Verdicts of a signed record whose registers are not evidence.
UNTRUSTED_VERDICTS = ("invalid_signature", "key_mismatch", "malformed")

UNACCOUNTED_SCHEMA = pl.Schema(
    {
        "charger_id": pl.String,
        "window_start_utc": pl.Datetime("us", "UTC"),
        "window_end_utc": pl.Datetime("us", "UTC"),
        "energy_kwh": pl.Float64,
        "register_end_kwh": pl.Float64,
        "register_begin_kwh": pl.Float64,
        "previous_session_id": pl.String,
        "next_session_id": pl.String,
    }
)


def session_registers(sessions: pl.DataFrame, signed: pl.DataFrame | None = None) -> pl.DataFrame:
    """Begin and end register of each counting session [kWh] (pure).

    Parameters
    ----------
    sessions : polars.DataFrame
        Canonical sessions: ``session_id, charger_id, start_utc, end_utc, meter_start_kwh,
        meter_stop_kwh`` (void ones are left out).
    signed : polars.DataFrame, optional
        :func:`zapanalytics.audit.signed.signed_records` output; a verified record's
        registers win over the API's, a failed one makes both unknown.

    Returns
    -------
    polars.DataFrame
        ``session_id, charger_id, start_utc, end_utc, begin_kwh, end_kwh`` ordered by
        charger and start.
    """
    records = session_records(signed).select(
        "session_id", "verdict", ocmf_begin_kwh="begin_kwh", ocmf_end_kwh="end_kwh"
    )
    trusted = ~pl.col("verdict").is_in(UNTRUSTED_VERDICTS).fill_null(False)
    return (
        active_sessions(utc_frame(sessions))
        .join(records, on="session_id", how="left")
        .select(
            "session_id",
            "charger_id",
            "start_utc",
            "end_utc",
            begin_kwh=pl.when(trusted).then(pl.coalesce("ocmf_begin_kwh", "meter_start_kwh")),
            end_kwh=pl.when(trusted).then(pl.coalesce("ocmf_end_kwh", "meter_stop_kwh")),
        )
        .sort("charger_id", "start_utc", "session_id")
    )


def unaccounted_energy(
    sessions: pl.DataFrame,
    signed: pl.DataFrame | None = None,
    *,
    min_kwh: float = DEFAULT_MIN_KWH,
) -> pl.DataFrame:
    """Windows between consecutive sessions of a charger in which its register advanced (pure).

    Parameters
    ----------
    sessions : polars.DataFrame
        Canonical sessions (one row per charging), any source.
    signed : polars.DataFrame, optional
        :func:`zapanalytics.audit.signed.signed_records` output.
    min_kwh : float
        Smallest advance reported [kWh].

    Returns
    -------
    polars.DataFrame
        :data:`UNACCOUNTED_SCHEMA`: per window the charger, the window from the previous
        session's end to the next one's start [UTC], ``energy_kwh`` (next begin register −
        previous end register) [kWh], both registers and the two sessions.
    """
    registers = session_registers(sessions, signed)
    gaps = (
        registers.with_columns(
            previous_session_id=pl.col("session_id").shift(1).over("charger_id"),
            register_end_kwh=pl.col("end_kwh").shift(1).over("charger_id"),
            window_start_utc=pl.coalesce("end_utc", "start_utc").shift(1).over("charger_id"),
        )
        .filter(pl.col("previous_session_id").is_not_null())
        .with_columns(energy_kwh=(pl.col("begin_kwh") - pl.col("register_end_kwh")).round(6))
        .filter(pl.col("energy_kwh") >= min_kwh)
    )
    return gaps.select(
        "charger_id",
        "window_start_utc",
        pl.col("start_utc").alias("window_end_utc"),
        "energy_kwh",
        "register_end_kwh",
        pl.col("begin_kwh").alias("register_begin_kwh"),
        "previous_session_id",
        pl.col("session_id").alias("next_session_id"),
    ).cast(dict(UNACCOUNTED_SCHEMA))


def unaccounted_energy_findings(
    sessions: pl.DataFrame,
    signed: pl.DataFrame | None = None,
    *,
    min_kwh: float = DEFAULT_MIN_KWH,
) -> pl.DataFrame:
    """:func:`unaccounted_energy` as audit findings (:data:`~zapanalytics.audit.findings.FINDING_SCHEMA`).

    Each window is one ``unaccounted_energy`` warning on its charger, stamped at the window's
    start, with the energy as ``magnitude`` [kWh], attributed to the session after the window.
    """
    windows = unaccounted_energy(sessions, signed, min_kwh=min_kwh)
    if windows.is_empty():
        return pl.DataFrame(schema=FINDING_SCHEMA)
    rows = []
    for row in windows.iter_rows(named=True):
        start, end = row["window_start_utc"], row["window_end_utc"]
        rows.append(
            finding(
                "unaccounted_energy",
                "warning",
                f"{row['energy_kwh']:,.3f} kWh registered between {start:%Y-%m-%d %H:%M:%S}Z and "
                f"{end:%Y-%m-%d %H:%M:%S}Z that no session accounts for (register "
                f"{row['register_end_kwh']:,.3f} kWh at the end of session "
                f"{row['previous_session_id']}, {row['register_begin_kwh']:,.3f} kWh at the begin "
                f"of session {row['next_session_id']}): a charging no source recorded",
                charger_id=row["charger_id"],
                session_id=row["next_session_id"],
                ts_utc=start,
                magnitude=row["energy_kwh"],
                magnitude_unit="kWh",
                evidence="sessions:registers",
            )
        )
    return findings_frame(rows)


def without_covered_gaps(findings: pl.DataFrame) -> pl.DataFrame:
    """Drop a ``register_gap`` that an ``unaccounted_energy`` finding states already (pure).

    The integrity audit sees the same window within one system's sessions
    (:func:`zapanalytics.audit.integrity.session_gap_findings`); both name the session after
    the window on the same charger, so one missing charging is one finding.
    """
    covered = findings.filter(pl.col("kind") == "unaccounted_energy").select("charger_id", "session_id")
    if covered.is_empty():
        return findings
    gaps = findings.filter(pl.col("kind") == "register_gap").join(
        covered, on=["charger_id", "session_id"], how="semi"
    )
    return findings.join(gaps, on=list(findings.columns), how="anti", nulls_equal=True)
