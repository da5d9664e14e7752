"""The shape every audit finding shares: one row per thing an auditor must look at."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

__all__ = ["FINDING_SCHEMA", "SEVERITIES", "finding", "findings_frame", "utc_frame"]

#: ``error``: evidence is wrong or missing; ``warning``: needs an explanation from the
#: operator (a reset, energy outside sessions); ``info``: context (e.g. no key to check).
SEVERITIES = ("error", "warning", "info")

FINDING_SCHEMA = pl.Schema(
    {
        "kind": pl.String,
        "severity": pl.String,
        "charger_id": pl.String,
        "session_id": pl.String,
        "ts_utc": pl.Datetime("us", "UTC"),
        "magnitude": pl.Float64,
        "magnitude_unit": pl.String,
        "explanation": pl.String,
        "evidence": pl.String,
    }
)


def finding(
    kind: str,
    severity: str,
    explanation: str,
    *,
    charger_id: str | None = None,
    session_id: str | None = None,
    ts_utc: datetime | None = None,
    magnitude: float | None = None,
    magnitude_unit: str | None = None,
    evidence: str | None = None,
) -> dict[str, Any]:
    """One finding row (see :data:`FINDING_SCHEMA`); ``evidence`` names the data it
    rests on, e.g. ``"meter_values:ocpp"``."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
    if ts_utc is not None and ts_utc.tzinfo is None:
        raise ValueError("ts_utc must be tz-aware")
    return {
        "kind": kind,
        "severity": severity,
        "charger_id": charger_id,
        "session_id": session_id,
        "ts_utc": ts_utc,
        "magnitude": magnitude,
        "magnitude_unit": magnitude_unit,
        "explanation": explanation,
        "evidence": evidence,
    }


def findings_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows from :func:`finding` as a frame, ordered by charger, time and kind."""
    frame = pl.DataFrame(rows, schema=FINDING_SCHEMA, orient="row" if not rows else None)
    return frame.sort(["charger_id", "ts_utc", "kind"], nulls_last=True)


def utc_frame(frame: pl.DataFrame | None) -> pl.DataFrame | None:
    """``frame`` with every tz-aware datetime column in ``UTC`` (DuckDB may give
    ``Etc/UTC``, callers may pass local zones; polars will not mix them).

    Raises
    ------
    ValueError
        For a naive datetime column: its time zone is unknown.
    """
    if frame is None:
        return None
    conversions = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                raise ValueError(f"column {name} holds naive datetimes; give them a time zone")
            if dtype.time_zone != "UTC" or dtype.time_unit != "us":
                conversions.append(pl.col(name).dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    return frame.with_columns(conversions) if conversions else frame
