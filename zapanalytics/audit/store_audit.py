"""The whole meter audit of a store: integrity, signatures, accuracy and gain regression.

:func:`audit_store` reads the store's tables a charger or an installation at a time (a
fleet's one-minute readings do not fit in memory at once), runs the pure audits of this
package on them and returns a :class:`StoreAudit` whose :meth:`StoreAudit.as_dict` is
the machine-readable audit and whose frames feed the HTML report
(:mod:`zapanalytics.report.audit_section`; this package returns data only). Every frame
names its chargers ``name (serial)`` in ``charger_name`` beside ``charger_id``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from zapanalytics.audit.accuracy import (
    WINDOW_SCHEMA,
    AccuracyAudit,
    accuracy_bands,
    accuracy_verdicts,
    accuracy_windows,
)
from zapanalytics.audit.completeness import unaccounted_energy_findings, without_covered_gaps
from zapanalytics.audit.evidence import clock_offsets, on_cloud_time
from zapanalytics.audit.findings import utc_frame
from zapanalytics.audit.integrity import combine_findings, integrity_findings, register_findings
from zapanalytics.audit.regression import (
    DEFAULT_HAN_CLASS,
    HOURLY_SCHEMA,
    GainRegression,
    estimate_gains,
    hourly_energies,
    is_single_phase_load,
)
from zapanalytics.audit.signed import (
    MID_PUBLIC_KEY_STATE_ID,
    SIGNED_METER_VALUE_STATE_ID,
    session_register_readings,
    signed_records,
)
from zapanalytics.naming import charger_names, with_charger_names

__all__ = ["ASSUMPTIONS", "StoreAudit", "audit_store"]

#: Said with every audit, in the JSON and the report.
ASSUMPTIONS = (
    "Signed records are verified with the keys given, else with each charger's "
    "MIDPublicKey (state 981) from the store; records without a key are read but not verified.",
    "Register falls to near zero (or losing half the value) are explained as resets; "
    "falls that fit the 2^32 Wh capacity as rollovers.",
    "Accuracy: the charger's register against its sub-meter over windows of at least 100 "
    "register steps of each meter; registers read at different times are paired by linear "
    "interpolation of one to the other's reading times, bounded by the change of the "
    "charger's observed power inside the interpolated interval; error with expanded "
    "uncertainty (k=2) from resolution, interpolation, timing and the reference's class "
    "limit; pass/fail only when the interval is clear of the limit (ILAC-G8 guarded "
    "acceptance); a current band with fewer than 3 windows is shown but not judged; a "
    "charger that charges on one phase is judged against MID's row for a polyphase meter "
    "on a single-phase load.",
    "Gain regression: the HAN meter is the reference; the household is a daily level plus "
    "an hour-of-day profile; hours of load balancing are excluded where the offered current "
    "is known; 95 % intervals, cluster-robust by local day, widened by the HAN meter's own "
    "uncertainty: its MID class limit as a rectangular bound (class B when no class is "
    "given; MID's wider row for a polyphase meter when the chargers charge on one phase); "
    "pass/fail only when the widened interval is clear of the ±1 % claim.",
    "Register series: each charger's readings of one source at a time (signed periodic "
    "values with its signed sessions' begin and end readings, OCPP meter values); a charger "
    "whose clock is found off has its readings moved to the cloud's time by the measured "
    "offset before they are compared with the reference meters.",
    "Sessions recorded by two systems (the cloud and an OCPP central system) are checked "
    "as two sequences, not as overlapping sessions.",
)

_METER_COLUMNS = (
    "charger_id",
    "ts_utc",
    "source",
    "energy_register_kwh",
    "current_l1_a",
    "current_l2_a",
    "current_l3_a",
    "current_offered_a",
    "power_w",
)


@dataclass(frozen=True)
class StoreAudit:
    """Everything one store audit found.

    Attributes
    ----------
    findings : polars.DataFrame
        Integrity and signature findings
        (:data:`zapanalytics.audit.findings.FINDING_SCHEMA`).
    signed : polars.DataFrame
        One row per signed record read (:func:`zapanalytics.audit.signed.signed_records`).
    accuracy : AccuracyAudit
        Sub-meter comparison: windows, bands, per-charger verdicts.
    gains : GainRegression
        HAN regression: per-charger gain errors with intervals.
    chargers : polars.DataFrame
        One row per charger bringing the verdicts together.
    generated_utc : datetime
    parameters : dict
    """

    findings: pl.DataFrame
    signed: pl.DataFrame
    accuracy: AccuracyAudit
    gains: GainRegression
    chargers: pl.DataFrame
    generated_utc: dt.datetime
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No error finding, no failed accuracy verdict and no flagged gain."""
        return (
            self.findings.filter(pl.col("severity") == "error").is_empty()
            and "fail" not in self.accuracy.chargers["verdict"].to_list()
            and not any(self.gains.chargers["flagged"].to_list())
        )

    def as_dict(self) -> dict[str, Any]:
        verdict_counts = (
            self.signed.group_by(pl.col("verdict").fill_null("not_verified"))
            .agg(count=pl.len())
            .sort("verdict")
        )
        severity_counts = self.findings.group_by("severity").agg(count=pl.len())
        return {
            "generated_utc": self.generated_utc.isoformat(),
            "passed": self.passed,
            "parameters": self.parameters,
            "assumptions": list(ASSUMPTIONS),
            "summary": {
                "chargers": self.chargers.height,
                "findings": dict(severity_counts.iter_rows()),
                "signed_records": dict(verdict_counts.iter_rows()),
                "accuracy_verdicts": dict(
                    self.accuracy.chargers.group_by("verdict").agg(pl.len()).iter_rows()
                ),
                "gain_flagged": self.gains.chargers.filter("flagged")["charger_id"].to_list(),
            },
            "chargers": self.chargers.to_dicts(),
            "findings": self.findings.to_dicts(),
            "accuracy": {
                "chargers": self.accuracy.chargers.to_dicts(),
                "bands": self.accuracy.bands.to_dicts(),
                "windows": self.accuracy.windows.height,
            },
            "gain_regression": self.gains.as_dict(),
        }


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    return utc_frame(con.sql(sql, params=params or None).pl())


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def _meter_select(con: duckdb.DuckDBPyConnection) -> str:
    present = _columns(con, "meter_values")
    return ", ".join(c if c in present else f"NULL::DOUBLE AS {c}" for c in _METER_COLUMNS)


def _with_session_readings(values: pl.DataFrame, readings: pl.DataFrame) -> pl.DataFrame:
    """``values`` plus the signed sessions' begin and end readings of its chargers, where
    the store does not already hold a reading of that source at that time."""
    own = readings.filter(pl.col("charger_id").is_in(values["charger_id"].unique().implode()))
    if own.is_empty():
        return values
    extra = own.join(values, on=["charger_id", "ts_utc", "source"], how="anti")
    return pl.concat([values, extra], how="diagonal_relaxed")


def _keys_by_charger(
    public_keys: Mapping[str, Any] | None, chargers: pl.DataFrame
) -> dict[str, Any]:
    """Keys named by charger id or by device serial (as key files usually are)."""
    if not public_keys:
        return {}
    by_serial = {}
    if "device_id" in chargers.columns:
        by_serial = {
            device: charger
            for charger, device in chargers.select("charger_id", "device_id").iter_rows()
            if device is not None
        }
    return {by_serial.get(name, name): key for name, key in public_keys.items()}


def _overview(
    chargers: pl.DataFrame, findings: pl.DataFrame, accuracy: AccuracyAudit, gains: GainRegression
) -> pl.DataFrame:
    counts = findings.group_by("charger_id").agg(
        errors=(pl.col("severity") == "error").sum(),
        warnings=(pl.col("severity") == "warning").sum(),
        finding_kinds=pl.col("kind").unique().sort().str.join(","),
    )
    sub = accuracy.chargers.select(
        "charger_id",
        accuracy_verdict="verdict",
        accuracy_error_pct="error_pct",
        accuracy_uncertainty_pct="expanded_uncertainty_pct",
    )
    han = gains.chargers.select(
        "charger_id",
        gain_verdict="verdict",
        gain_error_pct="gain_error_pct",
        gain_ci_low_pct="ci_low_pct",
        gain_ci_high_pct="ci_high_pct",
        gain_flagged="flagged",
    )
    return (
        chargers.select(
            "charger_id",
            pl.col("device_id")
            if "device_id" in chargers.columns
            else pl.lit(None, pl.String).alias("device_id"),
            "installation_id",
        )
        .join(counts, on="charger_id", how="left")
        .join(sub, on="charger_id", how="left")
        .join(han, on="charger_id", how="left")
        .with_columns(pl.col("errors", "warnings").fill_null(0))
        .sort("charger_id")
    )


def audit_store(
    con: duckdb.DuckDBPyConnection,
    *,
    public_keys: Mapping[str, Any] | None = None,
    include_meter_value_signatures: bool = True,
    window_options: dict[str, Any] | None = None,
    band_options: dict[str, Any] | None = None,
    gain_options: dict[str, Any] | None = None,
    han_meter_class: str | Mapping[str, str] | None = None,
) -> StoreAudit:
    """Audit every charger in a store.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A store connection (read-only is enough).
    public_keys : mapping of charger_id (or device serial) to key, optional
        Meter public keys; the store's state 981 supplies the rest.
    include_meter_value_signatures : bool
        Verify the periodic state 554 records too (slow for large fleets).
    window_options, band_options : dict, optional
        Keyword arguments for :func:`zapanalytics.audit.accuracy.accuracy_windows` and
        :func:`zapanalytics.audit.accuracy.accuracy_bands`.
    gain_options : dict, optional
        Keyword arguments for :func:`zapanalytics.audit.regression.estimate_gains`.
    han_meter_class : str or mapping of meter_id or installation_id to class, optional
        The HAN meters' MID accuracy class; class B when not given (said in the result).
        A charger set that charges on one phase most of the time (or a single-phase
        installation) is judged with MID's row for a polyphase meter on a single-phase
        load.

    Returns
    -------
    StoreAudit
    """
    chargers = _frame(con, "SELECT * FROM chargers ORDER BY charger_id")
    installations = _frame(con, "SELECT installation_id, timezone FROM installations")
    single_phase_sites = {
        r[0]
        for r in con.execute(
            "SELECT installation_id FROM installations WHERE phase_count = 1"
        ).fetchall()
    }
    sessions = _frame(con, "SELECT * FROM canonical_sessions ORDER BY charger_id, start_utc")
    energy_details = _frame(con, "SELECT session_id, ts_utc, energy_kwh FROM energy_details")
    states = _frame(
        con,
        "SELECT charger_id, ts_utc, state_id, state_name, value FROM charger_states "
        "WHERE state_id IN (?, ?)",
        [SIGNED_METER_VALUE_STATE_ID, MID_PUBLIC_KEY_STATE_ID],
    )
    signed = signed_records(
        sessions,
        states,
        _keys_by_charger(public_keys, chargers),
        include_meter_values=include_meter_value_signatures,
    )
    findings = [
        integrity_findings(sessions, energy_details, None, states, signed=signed),
        unaccounted_energy_findings(sessions, signed),
    ]

    meter_select = _meter_select(con)
    charger_ids = sorted(
        set(chargers["charger_id"].to_list())
        | {r[0] for r in con.execute("SELECT DISTINCT charger_id FROM meter_values").fetchall()}
    )
    submetered = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT charger_id FROM reference_readings "
            "WHERE kind = 'submeter' AND charger_id IS NOT NULL"
        ).fetchall()
    }
    session_readings = session_register_readings(signed)
    # Registers of chargers whose clock is off go onto the cloud's time before they are
    # compared with the reference meters (whose clocks are their own, assumed right).
    offsets = clock_offsets(sessions, signed)
    windows = []
    single_phase_chargers: set[str] = set()
    for charger_id in charger_ids:
        # One charger at a time keeps a fleet's minute readings out of memory at once.
        values = _frame(
            con,
            f"SELECT {meter_select} FROM meter_values WHERE charger_id = ?",  # noqa: S608
            [charger_id],
        )
        findings.append(register_findings(values))
        if is_single_phase_load(values):
            single_phase_chargers.add(charger_id)
        values = on_cloud_time(_with_session_readings(values, session_readings), offsets)
        if charger_id in submetered:
            reference = _frame(
                con,
                "SELECT * FROM reference_readings WHERE kind = 'submeter' AND charger_id = ?",
                [charger_id],
            )
            windows.append(accuracy_windows(values, reference, chargers, **(window_options or {})))
    window_frame = pl.concat(windows) if windows else pl.DataFrame(schema=WINDOW_SCHEMA)
    bands = accuracy_bands(
        window_frame, **{"single_phase_chargers": single_phase_chargers, **(band_options or {})}
    )
    accuracy = AccuracyAudit(window_frame, bands, accuracy_verdicts(bands, chargers, with_reference=submetered))

    hourly = []
    single_phase: dict[str, bool] = {}
    han_installations = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT installation_id FROM reference_readings "
            "WHERE kind = 'han' AND installation_id IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    for installation_id in han_installations:
        members = chargers.filter(pl.col("installation_id") == installation_id)
        if members.is_empty():
            continue
        han = _frame(
            con,
            "SELECT * FROM reference_readings WHERE kind = 'han' AND installation_id = ?",
            [installation_id],
        )
        values = _frame(
            con,
            f"SELECT {meter_select} FROM meter_values WHERE charger_id IN "  # noqa: S608
            "(SELECT charger_id FROM chargers WHERE installation_id = ?)",
            [installation_id],
        )
        single_phase[installation_id] = is_single_phase_load(
            values, site_phase_count=1 if installation_id in single_phase_sites else None
        )
        values = on_cloud_time(_with_session_readings(values, session_readings), offsets)
        hourly.append(hourly_energies(values, han, members))
    zones = dict(installations.iter_rows())
    gains = estimate_gains(
        pl.concat(hourly) if hourly else pl.DataFrame(schema=HOURLY_SCHEMA),
        **{
            "timezones": zones,
            "han_meter_class": han_meter_class,
            "single_phase_load": single_phase,
            **(gain_options or {}),
        },
    )
    all_findings = without_covered_gaps(combine_findings(findings, sessions))
    names = charger_names(chargers)
    overview = _overview(chargers, all_findings, accuracy, gains)
    return StoreAudit(
        findings=with_charger_names(all_findings, names),
        signed=with_charger_names(signed, names),
        accuracy=AccuracyAudit(
            with_charger_names(accuracy.windows, names),
            with_charger_names(accuracy.bands, names),
            with_charger_names(accuracy.chargers, names),
        ),
        gains=GainRegression(with_charger_names(gains.chargers, names), gains.installations),
        chargers=with_charger_names(overview, names).sort("charger_name", "charger_id"),
        generated_utc=dt.datetime.now(dt.UTC),
        parameters={
            "han_meter_class": han_meter_class or DEFAULT_HAN_CLASS,
            "han_meter_class_given": han_meter_class is not None,
            "include_meter_value_signatures": include_meter_value_signatures,
            "public_keys_given": sorted(public_keys or {}),
            "window_options": window_options or {},
            "band_options": band_options or {},
            "gain_options": gain_options or {},
        },
    )
