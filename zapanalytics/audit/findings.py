"""The shape every audit finding shares: one row per thing an auditor must look at."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

__all__ = ["FINDING_SCHEMA", "SEVERITIES", "finding", "findings_frame"]

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
) -> dict[str, Any]:
    """One finding row (see :data:`FINDING_SCHEMA`)."""
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
    }


def findings_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows from :func:`finding` as a frame, ordered by charger, time and kind."""
    frame = pl.DataFrame(rows, schema=FINDING_SCHEMA, orient="row" if not rows else None)
    return frame.sort(["charger_id", "ts_utc", "kind"], nulls_last=True)
