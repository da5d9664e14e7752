"""The report's billing section, rendered from a statement document (``billing.statements``)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl

from zapanalytics.report import blocks
from zapanalytics.report.document import Section

_NO_USER = "(no user)"


def _name(user: dict[str, Any]) -> str:
    return user.get("user_name") or user.get("user_id") or _NO_USER


def cost_by_line_figure(document: dict[str, Any]) -> go.Figure:
    """Stacked bars: each user's cost split into its statement lines [NOK incl. VAT]."""
    users = sorted(document["users"], key=lambda u: -u["cost_nok"])
    names = [_name(u) for u in users]
    labels: dict[str, str] = {}
    for user in users:
        for line in user["lines"]:
            labels.setdefault(line["line"], line["label"])
    figure = go.Figure()
    for key, label in labels.items():
        amounts = [sum(ln["amount_nok"] for ln in u["lines"] if ln["line"] == key) for u in users]
        if any(amounts):
            figure.add_bar(name=label, x=names, y=amounts)
    figure.update_layout(
        barmode="relative", title=f"Cost per user, {document['month']} ({document['method']})",
        yaxis_title="NOK incl. VAT", height=420, margin={"t": 50, "b": 90}, legend_title_text="Line",
    )
    return figure


def peak_hours_figure(document: dict[str, Any]) -> go.Figure | None:
    """Who charged in the hours that set the month's capacity step [kWh per user and hour]."""
    peaks = document.get("peak_hours") or []
    if not peaks:
        return None
    names = {u["user_id"]: _name(u) for u in document["users"]}
    hours = [f"#{p['rank']} {p['hour_start'][:16].replace('T', ' ')}" for p in peaks]
    users = sorted({uid for p in peaks for uid in p["users_kwh"]}, key=lambda u: names.get(u, u or ""))
    figure = go.Figure()
    for uid in users:
        figure.add_bar(name=names.get(uid, uid or _NO_USER), x=hours, y=[p["users_kwh"].get(uid, 0.0) for p in peaks])
    site = [p["site_kwh"] for p in peaks]
    figure.add_scatter(name="site meter", x=hours, y=site, mode="markers", marker={"symbol": "line-ew-open", "size": 28})
    figure.update_layout(
        barmode="stack", title="Who used the peak hours (they set the capacity step)",
        yaxis_title="Energy in the hour [kWh]", height=380, margin={"t": 50},
    )
    return figure


def billing_section(document: dict[str, Any], notes: list[str] | None = None) -> Section:
    """Per-user table, cost split per line, capacity step and peak-hour attribution;
    ``notes`` (e.g. why a simpler billing method was used) come first."""
    users = pl.DataFrame(
        [
            {
                "user": _name(u),
                "energy_kwh": u["energy_kwh"],
                "cost_ex_vat_nok": u["cost_ex_vat_nok"],
                "vat_nok": u["vat_nok"],
                "cost_nok": u["cost_nok"],
            }
            for u in sorted(document["users"], key=lambda u: -u["cost_nok"])
        ],
        schema={"user": pl.String, "energy_kwh": pl.Float64, "cost_ex_vat_nok": pl.Float64,
                "vat_nok": pl.Float64, "cost_nok": pl.Float64},
    )
    kpis = [
        ("Month", document["month"]),
        ("Method", document["method"]),
        ("Energy billed", f"{document['total_energy_kwh']:,.1f} kWh"),
        ("Users pay", f"{document['total_cost_nok']:,.2f} NOK"),
    ]
    for block in document.get("capacity") or []:
        kpis.append(("Capacity step", f"{block['step']} ({block['peak_kw']:.1f} kW)"))
    parts = [blocks.notes(*(notes or [])), blocks.kpis(kpis), blocks.table_block(users, float_digits=2)]
    common = document.get("common") or {}
    if common.get("cost_nok"):
        parts.append(blocks.notes(f"Common meter: {common['cost_nok']:,.2f} NOK incl. VAT."))
    parts.append(blocks.notes(*(document.get("notes") or [])))
    parts.append(blocks.figure(cost_by_line_figure(document), "fig-cost-by-line"))
    peaks = peak_hours_figure(document)
    if peaks is not None:
        parts.append(blocks.figure(peaks, "fig-peak-hours"))
    rates = document.get("rates") or {}
    if rates.get("sha256"):
        parts.append(blocks.notes(f"Rate tables sha256 {rates['sha256'][:16]}…"))
    return blocks.section("billing", "Billing", parts)
