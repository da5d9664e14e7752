"""Frames as report tables: human column headers, formatted cells, a row limit.

A :class:`Table` holds text only; the templates escape it (``_macros.html.j2``). The
store's column name stays in each header's tooltip, so a reader can find the number in
the JSON and the exports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import polars as pl

__all__ = ["HEADERS", "Cell", "Column", "Table", "header", "table"]

#: Column headers as a reader says them; units in brackets.
HEADERS: dict[str, str] = {
    "accuracy": "Accuracy vs sub-meter",
    "accuracy_verdict": "Accuracy verdict",
    "available_current_a": "Available current [A]",
    "band": "Current band",
    "charger": "Charger",
    "charger_energy_kwh": "Charger energy [kWh]",
    "charger_id": "Charger id",
    "charger_name": "Charger",
    "chargers": "Chargers",
    "charging_hours": "Charging hours",
    "ci_high_pct": "Interval high [%]",
    "ci_low_pct": "Interval low [%]",
    "constraint": "Limit",
    "cost_ex_vat_nok": "Cost excl. VAT [NOK]",
    "cost_nok": "Cost incl. VAT [NOK]",
    "days": "Days",
    "device_id": "Serial",
    "end": "End",
    "energy_delivered_kwh": "Energy delivered [kWh]",
    "energy_kwh": "Energy [kWh]",
    "energy_not_delivered_kwh": "Energy not delivered [kWh]",
    "error": "Error",
    "error_pct": "Error [%]",
    "errors": "Errors",
    "example_reason": "Example reason",
    "expanded_uncertainty_pct": "Uncertainty k=2 [%]",
    "explanation": "What was found",
    "finding_kinds": "Findings",
    "firmware_version": "Firmware",
    "gain": "Gain vs HAN meter",
    "gain_error_pct": "Gain error [%]",
    "gain_verdict": "HAN verdict",
    "han_class_source": "HAN class from",
    "han_meter_class": "HAN meter class",
    "han_meter_id": "HAN meter",
    "hours": "Hours",
    "installation_id": "Installation id",
    "kind": "Kind",
    "limit_a": "Limit [A]",
    "limit_pct": "Limit [%]",
    "magnitude": "Size",
    "magnitude_a": "Size [A]",
    "magnitude_unit": "Unit",
    "main_fuse_a": "Main fuse [A]",
    "max_current_a": "Max current [A]",
    "mean_current_a": "Mean current [A]",
    "mean_wait_s": "Mean wait [s]",
    "model": "Model",
    "name": "Name",
    "network_type": "Network",
    "peak_line_current_a": "Peak line current [A]",
    "peak_power_kw": "Peak power [kW]",
    "phase": "Line",
    "phase_count": "Phases",
    "price_area": "Price area",
    "r_squared": "R²",
    "records": "Records",
    "reference_energy_kwh": "Reference energy [kWh]",
    "residual_std_kwh": "Residual std. dev. [kWh]",
    "scenario": "Scenario",
    "session_id": "Session",
    "sessions": "Sessions",
    "sessions_not_full": "Sessions not full",
    "severity": "Severity",
    "share_full": "Share full",
    "single_phase_load": "Single-phase load",
    "start": "Start",
    "table_name": "Table",
    "timezone": "Time zone",
    "ts_utc": "Time",
    "u_han_pct": "HAN meter u [%]",
    "user": "User",
    "user_name": "User",
    "vat_nok": "VAT [NOK]",
    "verdict": "Verdict",
    "verdict_claim": "Verdict ±1 % claim",
    "verdict_en50470_3": "Verdict EN 50470-3",
    "verdict_mid": "Verdict MID",
    "warnings": "Warnings",
    "windows": "Windows",
    "worst_capacity_step": "Worst capacity step",
}


def header(column: str) -> str:
    """The human header of a column: :data:`HEADERS`, else the name in words."""
    if column in HEADERS:
        return HEADERS[column]
    words = column.replace("_", " ")
    for suffix, unit in ((" kwh", " [kWh]"), (" pct", " [%]"), (" nok", " [NOK]"), (" a", " [A]"),
                         (" kw", " [kW]"), (" s", " [s]"), (" utc", "")):  # fmt: skip
        if words.endswith(suffix):
            words = words[: -len(suffix)] + unit
            break
    return words[:1].upper() + words[1:]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    css: str


@dataclass(frozen=True)
class Cell:
    text: str
    css: str


@dataclass(frozen=True)
class Table:
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    more: int = 0


def _cell(value, float_digits: int, timezone: str | None) -> Cell:
    if isinstance(value, bool):
        return Cell("yes" if value else "no", "text")
    if isinstance(value, float):
        return Cell(f"{value:,.{float_digits}f}", "num")
    if isinstance(value, int):
        return Cell(str(value), "num")
    if value is None:
        return Cell("", "text")
    if isinstance(value, dt.datetime):
        local = value.astimezone(ZoneInfo(timezone)) if timezone and value.tzinfo else value
        return Cell(local.strftime("%Y-%m-%d %H:%M"), "text")
    return Cell(str(value), "text")


def table(
    frame: pl.DataFrame,
    *,
    float_digits: int = 2,
    max_rows: int = 500,
    headers: dict[str, str] | None = None,
    timezone: str | None = None,
) -> Table:
    """A :class:`Table` of ``frame``: human headers, numbers right-aligned with
    ``float_digits`` decimals, times in ``timezone``, at most ``max_rows`` rows."""
    labels = {**HEADERS, **(headers or {})}
    columns = [
        Column(c, labels.get(c) or header(c), "text" if frame.schema[c] == pl.String else "num")
        for c in frame.columns
    ]
    rows = [
        [_cell(value, float_digits, timezone) for value in record]
        for record in frame.head(max_rows).iter_rows()
    ]
    return Table(columns, rows, max(frame.height - max_rows, 0))
