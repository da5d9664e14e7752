"""Register and session integrity over the store's tables.

Pure functions on polars frames with the store's column names. Each returns findings
(:data:`zapanalytics.audit.findings.FINDING_SCHEMA`): one row per thing an auditor
must look at, with its kind, charger, session, time, magnitude and an explanation.

Checks
------
* **Lifetime registers never decrease** (:func:`register_findings`): a fall is
  explained as a *rollover* when it fits the register's modulus, as a *reset* (meter
  exchange or firmware fault) when the register restarts near zero or loses most of its
  value, and is otherwise an unexplained *decrease*. Rises faster than the charger can
  deliver are *jumps*.
* **Session energy agrees** (:func:`session_energy_findings`): the cloud's ``Energy``,
  the signed record's end minus begin reading, ``meter_stop_kwh - meter_start_kwh`` and
  the sum of ``EnergyDetails`` must agree within their rounding.
* **No unexplained register gaps between sessions** (:func:`session_gap_findings`): on
  one charger, a session begins where the previous one ended; energy registered in
  between was delivered outside any recorded session (a missing session, or a meter
  that registers without load).
* **Clocks** (:func:`clock_findings`): the times in signed records (the charger's
  clock) against the cloud's session and observation times.
* **Duplicates** (:func:`duplicate_findings`): one signed record billed twice, a signed
  record belonging to another session, sessions overlapping on one charger.
* **Signatures** (:func:`signature_findings`): records whose signature or transaction
  checks fail, unsigned records, and sessions Zaptec marks signed that carry no record.

:func:`integrity_findings` runs them all. Records whose signature fails are not used
as register evidence for the gap check: their numbers are what is in doubt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from zapanalytics.audit.evidence import clock_findings, duplicate_findings, signature_findings
from zapanalytics.audit.findings import finding, findings_frame, utc_frame
from zapanalytics.audit.signed import (
    active_sessions,
    session_chain,
    session_records,
    signed_records,
)

__all__ = [
    "UINT32_WH_ROLLOVER_KWH",
    "clock_findings",
    "combine_findings",
    "duplicate_findings",
    "integrity_findings",
    "register_findings",
    "session_energy_findings",
    "session_gap_findings",
    "signature_findings",
    "signed_register_series",
]

#: Zaptec registers are an unsigned 32-bit count of Wh (``RV`` = Wh / 1000).
UINT32_WH_ROLLOVER_KWH = 2**32 / 1000
#: Above any Zaptec charger's rating (22 kW) with margin for a register rounding step.
DEFAULT_MAX_POWER_KW = 25.0
#: Source name of the register series read from periodic signed records.
SIGNED_SERIES_SOURCE = "signed_meter_value"
#: Verdicts whose register values are not evidence.
_UNTRUSTED_VERDICTS = ("invalid_signature", "key_mismatch", "malformed")


def _fmt(value: float) -> str:
    return f"{value:,.3f}"


def _classify_fall(
    previous_kwh: float,
    current_kwh: float,
    elapsed_h: float,
    *,
    max_power_kw: float,
    reset_floor_kwh: float,
    rollover_moduli_kwh: Sequence[float],
) -> tuple[str, str, str]:
    """Kind, severity and explanation of a register that fell."""
    fall = previous_kwh - current_kwh
    for modulus in rollover_moduli_kwh:
        wrapped = current_kwh + modulus - previous_kwh
        if previous_kwh > 0.9 * modulus and 0 <= wrapped <= max_power_kw * elapsed_h + 0.01:
            return (
                "register_rollover",
                "info",
                f"register wrapped at its {_fmt(modulus)} kWh capacity "
                f"({_fmt(previous_kwh)} -> {_fmt(current_kwh)} kWh); "
                f"{_fmt(wrapped)} kWh were delivered across the wrap",
            )
    if current_kwh <= reset_floor_kwh or fall >= 0.5 * previous_kwh:
        return (
            "register_reset",
            "warning",
            f"register restarted at {_fmt(current_kwh)} kWh after {_fmt(previous_kwh)} kWh "
            "(meter exchange or firmware reset); readings across it cannot be differenced",
        )
    return (
        "register_decrease",
        "error",
        f"register fell by {_fmt(fall)} kWh ({_fmt(previous_kwh)} -> {_fmt(current_kwh)} kWh); "
        "a lifetime register never decreases and this is neither a reset nor a rollover",
    )


def register_findings(
    meter_values: pl.DataFrame,
    *,
    tolerance_kwh: float = 1e-6,
    max_power_kw: float = DEFAULT_MAX_POWER_KW,
    reset_floor_kwh: float = 1.0,
    rollover_moduli_kwh: Sequence[float] = (UINT32_WH_ROLLOVER_KWH,),
) -> pl.DataFrame:
    """Falls and implausible jumps of each charger's lifetime register.

    Parameters
    ----------
    meter_values : polars.DataFrame
        The ``meter_values`` table (``charger_id``, ``ts_utc``, ``source``,
        ``energy_register_kwh``). Each source is checked on its own, because sources
        stamp the same register with different clocks.
    tolerance_kwh : float
        Falls up to this size are float noise [kWh].
    max_power_kw : float
        Fastest plausible delivery [kW]; a rise beyond it is a jump.
    reset_floor_kwh : float
        A register that falls to at most this value restarted [kWh].
    rollover_moduli_kwh : sequence of float
        Register capacities [kWh] at which the register wraps to zero.

    Returns
    -------
    polars.DataFrame
        Findings of kind ``register_rollover``, ``register_reset``,
        ``register_decrease`` and ``register_jump``.
    """
    meter_values = utc_frame(meter_values)
    series = (
        meter_values.filter(pl.col("energy_register_kwh").is_not_null())
        .select("charger_id", "source", "ts_utc", "energy_register_kwh")
        .sort("charger_id", "source", "ts_utc")
        .with_columns(
            previous_kwh=pl.col("energy_register_kwh").shift(1).over("charger_id", "source"),
            previous_ts=pl.col("ts_utc").shift(1).over("charger_id", "source"),
        )
        .with_columns(
            delta_kwh=pl.col("energy_register_kwh") - pl.col("previous_kwh"),
            elapsed_h=(pl.col("ts_utc") - pl.col("previous_ts")).dt.total_microseconds() / 3.6e9,
        )
    )
    suspects = series.filter(
        (pl.col("delta_kwh") < -tolerance_kwh)
        | (pl.col("delta_kwh") > pl.col("elapsed_h") * max_power_kw + 0.01)
    )
    rows = []
    for row in suspects.iter_rows(named=True):
        source = row["source"]
        if row["delta_kwh"] < 0:
            kind, severity, explanation = _classify_fall(
                row["previous_kwh"],
                row["energy_register_kwh"],
                row["elapsed_h"],
                max_power_kw=max_power_kw,
                reset_floor_kwh=reset_floor_kwh,
                rollover_moduli_kwh=rollover_moduli_kwh,
            )
            magnitude = row["previous_kwh"] - row["energy_register_kwh"]
        else:
            kind, severity = "register_jump", "error"
            magnitude = row["delta_kwh"]
            rate = row["delta_kwh"] / row["elapsed_h"] if row["elapsed_h"] else float("inf")
            explanation = (
                f"register rose {_fmt(magnitude)} kWh in {row['elapsed_h'] * 60:.1f} min "
                f"({rate:,.1f} kW), more than the charger can deliver ({max_power_kw:g} kW)"
            )
        rows.append(
            finding(
                kind,
                severity,
                explanation,
                charger_id=row["charger_id"],
                ts_utc=row["ts_utc"],
                magnitude=magnitude,
                magnitude_unit="kWh",
                evidence=source if source == SIGNED_SERIES_SOURCE else f"meter_values:{source}",
            )
        )
    return findings_frame(rows)


def session_energy_findings(
    sessions: pl.DataFrame,
    energy_details: pl.DataFrame | None = None,
    signed: pl.DataFrame | None = None,
    *,
    tolerance_kwh: float = 0.0015,
) -> pl.DataFrame:
    """Sessions whose energy figures disagree.

    Compared with the cloud's ``energy_kwh``: the signed record's end minus begin
    reading, ``meter_stop_kwh - meter_start_kwh`` and the sum of the session's
    ``energy_details``. Zaptec rounds each detail delta to 1 Wh, so their sum may miss
    by half a Wh per delta plus half for the total.

    Parameters
    ----------
    sessions : polars.DataFrame
        The ``sessions`` table.
    energy_details : polars.DataFrame, optional
        The ``energy_details`` table.
    signed : polars.DataFrame, optional
        :func:`zapanalytics.audit.signed.signed_records` output.
    tolerance_kwh : float
        Allowed difference between two register-based figures [kWh]: one step of a
        1 Wh register plus rounding.

    Returns
    -------
    polars.DataFrame
        Findings of kind ``session_energy_mismatch``; magnitude is the largest
        difference from ``energy_kwh`` [kWh].
    """
    sessions, energy_details = utc_frame(sessions), utc_frame(energy_details)
    frame = active_sessions(sessions).select(
        "session_id", "charger_id", "start_utc", "energy_kwh", "meter_start_kwh", "meter_stop_kwh"
    )
    if energy_details is not None and not energy_details.is_empty():
        details = energy_details.group_by("session_id").agg(
            details_kwh=pl.col("energy_kwh").sum(), details_count=pl.len()
        )
        frame = frame.join(details, on="session_id", how="left")
    else:
        frame = frame.with_columns(
            details_kwh=pl.lit(None, pl.Float64), details_count=pl.lit(None, pl.UInt32)
        )
    ocmf = session_records(signed).select("session_id", ocmf_kwh="energy_kwh")
    frame = frame.join(ocmf, on="session_id", how="left")
    rows = []
    for row in frame.iter_rows(named=True):
        figures: list[tuple[str, float, float]] = []
        if row["ocmf_kwh"] is not None:
            figures.append(("signed record E-B", row["ocmf_kwh"], tolerance_kwh))
        if row["meter_start_kwh"] is not None and row["meter_stop_kwh"] is not None:
            figures.append(
                (
                    "meter_stop-meter_start",
                    row["meter_stop_kwh"] - row["meter_start_kwh"],
                    tolerance_kwh,
                )
            )
        if row["details_kwh"] is not None:
            figures.append(
                (
                    "sum of EnergyDetails",
                    row["details_kwh"],
                    0.0005 * (row["details_count"] + 1) + 1e-9,
                )
            )
        reference = row["energy_kwh"]
        if reference is None:
            if len(figures) < 2:
                continue
            name, reference, _ = figures[0]
            label = name
            figures = figures[1:]
        else:
            label = "energy_kwh"
        worst = 0.0
        parts = []
        for name, value, tolerance in figures:
            difference = value - reference
            if abs(difference) > tolerance:
                worst = max(worst, abs(difference))
                parts.append(f"{name} {_fmt(value)} ({difference:+.3f})")
        if parts:
            rows.append(
                finding(
                    "session_energy_mismatch",
                    "error",
                    f"{label} {_fmt(reference)} kWh disagrees with " + ", ".join(parts),
                    charger_id=row["charger_id"],
                    session_id=row["session_id"],
                    ts_utc=row["start_utc"],
                    magnitude=worst,
                    magnitude_unit="kWh",
                    evidence="sessions,energy_details,signed_session",
                )
            )
    return findings_frame(rows)


def _session_registers(sessions: pl.DataFrame, signed: pl.DataFrame | None) -> pl.DataFrame:
    """Each counting session's begin/end register; null where the evidence is untrusted."""
    ocmf = session_records(signed).select(
        "session_id", "verdict", ocmf_begin_kwh="begin_kwh", ocmf_end_kwh="end_kwh"
    )
    return (
        active_sessions(sessions)
        .join(ocmf, on="session_id", how="left")
        .with_columns(trusted=~pl.col("verdict").is_in(_UNTRUSTED_VERDICTS).fill_null(False))
        # An untrusted session stays in the chain with unknown registers, so the pairs
        # around it are not judged rather than its energy counted as a gap.
        .with_columns(
            begin_kwh=pl.when("trusted").then(pl.coalesce("ocmf_begin_kwh", "meter_start_kwh")),
            end_kwh=pl.when("trusted").then(pl.coalesce("ocmf_end_kwh", "meter_stop_kwh")),
        )
        .select(
            "session_id",
            "charger_id",
            "start_utc",
            "end_utc",
            "begin_kwh",
            "end_kwh",
            chain=session_chain(sessions),
        )
        .sort("chain", "start_utc")
    )


def session_gap_findings(
    sessions: pl.DataFrame,
    signed: pl.DataFrame | None = None,
    *,
    tolerance_kwh: float = 0.0015,
    reset_floor_kwh: float = 1.0,
    rollover_moduli_kwh: Sequence[float] = (UINT32_WH_ROLLOVER_KWH,),
) -> pl.DataFrame:
    """Register energy between consecutive sessions on one charger.

    Parameters
    ----------
    sessions : polars.DataFrame
        The ``sessions`` table; begin/end registers come from the signed record when
        it is trustworthy, else from ``meter_start_kwh``/``meter_stop_kwh``.
    signed : polars.DataFrame, optional
        :func:`zapanalytics.audit.signed.signed_records` output.
    tolerance_kwh : float
        Register difference treated as rounding [kWh].
    reset_floor_kwh, rollover_moduli_kwh
        As in :func:`register_findings`.

    Returns
    -------
    polars.DataFrame
        Findings ``register_gap`` (energy outside sessions), ``register_reset``,
        ``register_rollover`` or ``register_decrease`` (a session begins below where
        the previous one ended), attributed to the later session.
    """
    sessions = utc_frame(sessions)
    frame = (
        _session_registers(sessions, signed)
        .with_columns(
            previous_session=pl.col("session_id").shift(1).over("chain"),
            previous_end_kwh=pl.col("end_kwh").shift(1).over("chain"),
            previous_end_utc=pl.col("end_utc").shift(1).over("chain"),
        )
        .filter(pl.col("previous_session").is_not_null())
    )
    frame = frame.with_columns(gap_kwh=pl.col("begin_kwh") - pl.col("previous_end_kwh")).filter(
        pl.col("gap_kwh").is_not_null() & (pl.col("gap_kwh").abs() > tolerance_kwh)
    )
    rows = []
    for row in frame.iter_rows(named=True):
        gap = row["gap_kwh"]
        between = f"between session {row['previous_session']} and session {row['session_id']}"
        if gap > 0:
            idle_h = None
            if row["previous_end_utc"] is not None:
                idle_h = (row["start_utc"] - row["previous_end_utc"]).total_seconds() / 3600
            rate = (
                f" ({gap / idle_h * 1000:,.1f} W over {idle_h:,.1f} h idle)"
                if idle_h and idle_h > 0
                else ""
            )
            rows.append(
                finding(
                    "register_gap",
                    "warning",
                    f"the register advanced {_fmt(gap)} kWh {between}{rate}: energy delivered "
                    "outside any recorded session (a missing session, or a meter registering "
                    "without load)",
                    charger_id=row["charger_id"],
                    session_id=row["session_id"],
                    ts_utc=row["start_utc"],
                    magnitude=gap,
                    magnitude_unit="kWh",
                    evidence="sessions",
                )
            )
            continue
        elapsed_h = 0.0
        if row["previous_end_utc"] is not None:
            elapsed_h = max((row["start_utc"] - row["previous_end_utc"]).total_seconds(), 0) / 3600
        kind, severity, explanation = _classify_fall(
            row["previous_end_kwh"],
            row["begin_kwh"],
            elapsed_h,
            max_power_kw=DEFAULT_MAX_POWER_KW,
            reset_floor_kwh=reset_floor_kwh,
            rollover_moduli_kwh=rollover_moduli_kwh,
        )
        rows.append(
            finding(
                kind,
                severity,
                f"{explanation} ({between})",
                charger_id=row["charger_id"],
                session_id=row["session_id"],
                ts_utc=row["start_utc"],
                magnitude=-gap,
                magnitude_unit="kWh",
                evidence="sessions",
            )
        )
    return findings_frame(rows)


def _drop_echoed_resets(findings: pl.DataFrame, sessions: pl.DataFrame) -> pl.DataFrame:
    """A reset between two sessions that a register series also shows is one fault.

    The series may see it late (a periodic record every few hours), so a series event
    between the previous session's end and this session's end counts as the same one.
    """
    events = ["register_reset", "register_rollover"]
    series = findings.filter(pl.col("kind").is_in(events) & pl.col("session_id").is_null())
    if series.is_empty():
        return findings
    spans = sessions.select(
        "session_id",
        previous_end=pl.col("end_utc").shift(1).over(session_chain(sessions), order_by="start_utc"),
        own_end=pl.coalesce("end_utc", "start_utc"),
    )
    between = (
        findings.filter(pl.col("kind").is_in(events) & pl.col("session_id").is_not_null())
        .select("kind", "charger_id", "session_id")
        .join(spans, on="session_id", how="left")
        .join(series.select("kind", "charger_id", series_ts="ts_utc"), on=["kind", "charger_id"])
        .filter(
            (pl.col("series_ts") <= pl.col("own_end"))
            & ((pl.col("series_ts") >= pl.col("previous_end")) | pl.col("previous_end").is_null())
        )
        .select("kind", "session_id")
        .unique()
    )
    return findings.join(between, on=["kind", "session_id"], how="anti", nulls_equal=False)


def integrity_findings(
    sessions: pl.DataFrame,
    energy_details: pl.DataFrame | None = None,
    meter_values: pl.DataFrame | None = None,
    charger_states: pl.DataFrame | None = None,
    *,
    public_keys: Mapping[str, Any] | None = None,
    signed: pl.DataFrame | None = None,
    include_meter_value_signatures: bool = True,
    clock_tolerance_s: float = 60.0,
) -> pl.DataFrame:
    """Every integrity check over the store's tables.

    Parameters
    ----------
    sessions, energy_details, meter_values, charger_states : polars.DataFrame
        The store's tables of those names (all but ``sessions`` optional).
    public_keys : mapping of charger_id to key, optional
        Meter public keys (PEM, or DER as bytes, hex or base64); state 981 in
        ``charger_states`` supplies the rest.
    signed : polars.DataFrame, optional
        A precomputed :func:`zapanalytics.audit.signed.signed_records` frame.
    include_meter_value_signatures : bool
        Verify the periodic state 554 records too.
    clock_tolerance_s : float
        See :func:`clock_findings`.

    Returns
    -------
    polars.DataFrame
        All findings, :data:`zapanalytics.audit.findings.FINDING_SCHEMA`.
    """
    sessions, energy_details = utc_frame(sessions), utc_frame(energy_details)
    meter_values, charger_states = utc_frame(meter_values), utc_frame(charger_states)
    if signed is None:
        signed = signed_records(
            sessions,
            charger_states,
            public_keys,
            include_meter_values=include_meter_value_signatures,
        )
    parts = [
        signature_findings(signed, sessions),
        session_energy_findings(sessions, energy_details, signed),
        session_gap_findings(sessions, signed),
        clock_findings(sessions, signed, tolerance_s=clock_tolerance_s),
        duplicate_findings(sessions, signed),
    ]
    parts.append(register_findings(signed_register_series(signed)))
    if meter_values is not None:
        parts.append(register_findings(meter_values))
    return combine_findings(parts, sessions)


def signed_register_series(signed: pl.DataFrame) -> pl.DataFrame:
    """The lifetime register as the periodic signed records (state 554) show it, shaped
    like ``meter_values`` (source ``signed_meter_value``), stamped with the cloud's
    observation time; records whose signature fails are left out."""
    return signed.filter(
        (pl.col("record_source") == "meter_value")
        & ~pl.col("verdict").is_in(_UNTRUSTED_VERDICTS).fill_null(False)
        & pl.col("begin_kwh").is_not_null()
    ).select(
        "charger_id",
        ts_utc="observed_utc",
        source=pl.lit(SIGNED_SERIES_SOURCE),
        energy_register_kwh="begin_kwh",
    )


def combine_findings(parts: Sequence[pl.DataFrame], sessions: pl.DataFrame) -> pl.DataFrame:
    """Concatenate findings frames, one finding per fault: a register event seen by two
    sources within an hour is kept once, and a between-sessions reset that a register
    series already shows is dropped."""
    combined = findings_frame(pl.concat(list(parts)).to_dicts()) if parts else findings_frame([])
    return _drop_echoed_resets(_drop_repeated_register_events(combined), active_sessions(sessions))


def _drop_repeated_register_events(findings: pl.DataFrame) -> pl.DataFrame:
    """One register event seen in two series (a 15-min state and a 6-hourly signed
    record, say) is one finding: the first, when the other source sees the same kind of
    event on the same charger within a day."""
    series_events = (pl.col("kind").str.starts_with("register_")) & pl.col("session_id").is_null()
    events = findings.filter(series_events).sort("ts_utc")
    kept: list[dict] = []
    for row in events.iter_rows(named=True):
        repeated = any(
            k["kind"] == row["kind"]
            and k["charger_id"] == row["charger_id"]
            and k["evidence"] != row["evidence"]
            and row["ts_utc"] - k["ts_utc"] <= dt.timedelta(days=1)
            for k in kept
        )
        if not repeated:
            kept.append(row)
    return findings_frame(findings.filter(~series_events).to_dicts() + kept)
