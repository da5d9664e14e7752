"""One HTML page per user and an index, from a statement document, through Jinja2.

The templates are ``templates/statement_page.html``, ``statement_index.html`` and
``statement_lines.html`` in the shared, autoescaping environment
(:mod:`zapanalytics.report.templating`): every name from a source is text on the page. The
only markup passed in whole is plotly's own chart div, built from numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from markupsafe import Markup

from zapanalytics.billing.statements import display_name
from zapanalytics.report.statement_text import (
    TEXT,
    check_language,
    line_label,
    money,
    number,
    when,
)
from zapanalytics.report.statements_files import user_stems
from zapanalytics.report.templating import render


def display_lines(lines: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """The lines with their display strings (translated label, formatted numbers)."""
    shown = []
    for line in lines:
        rate = line.get("unit_rate_nok")
        shown.append(
            {
                **line,
                "display_label": line_label(line, lang),
                "display_quantity": number(line.get("quantity"), lang)
                if line.get("quantity")
                else "",
                "display_rate": number(rate, lang, 4) if rate is not None else "",
                "display_ex_vat": money(line["amount_ex_vat_nok"], lang),
                "display_vat": money(line["vat_nok"], lang),
                "display_amount": money(line["amount_nok"], lang),
            }
        )
    return shown


def unverified_statuses(lines: list[dict[str, Any]]) -> list[str]:
    """The statuses (S, U) of the unverified rates among ``lines``, each once."""
    return sorted(
        {line.get("rate_status") or "U" for line in lines if not line.get("rate_verified")}
    )


def _figure(rows: list[list[Any]], timezone: str) -> go.Figure:
    hours = [r[0] for r in rows]
    figure = go.Figure()
    figure.add_bar(
        x=hours,
        y=[r[1] for r in rows],
        name="Energy [kWh]",
        marker_color="#2b6cb0",
        width=3_600_000,  # one hour, in the date axis' milliseconds
    )
    figure.add_scatter(
        x=hours,
        y=[r[2] for r in rows],
        name="Cost incl. VAT [NOK]",
        yaxis="y2",
        mode="markers",
        marker={"color": "#c05621", "size": 6},
    )
    figure.update_layout(
        title=f"Energy and cost per hour ({timezone})",
        yaxis={"title": "Energy [kWh]", "rangemode": "tozero"},
        yaxis2={"title": "Cost [NOK]", "overlaying": "y", "side": "right", "rangemode": "tozero"},
        height=380,
        margin={"t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _customer(document: dict[str, Any], t: dict[str, str]) -> str:
    site = document.get("site") or {}
    kind = site.get("customer_type") or "household"
    text = t.get(kind, kind)
    return f"{text}, {site.get('dwellings')}" if kind == "coop" else text


def render_user_page(
    document: dict[str, Any],
    user: dict[str, Any],
    *,
    lang: str | None = None,
    plotlyjs: str | bool = True,
) -> str:
    """One user's statement as an HTML page (plotly.js inline by default: works offline)."""
    lang = check_language(lang, document)
    t = TEXT[lang]
    rows = document.get("hourly", {}).get(user["user_id"] or "", [])
    figure = (
        Markup(  # plotly's own div and script, built from numbers only
            _figure(rows, document["site"]["timezone"]).to_html(
                include_plotlyjs=plotlyjs,
                full_html=False,
                div_id="hourly",
                config={"displaylogo": False},
            )
        )
        if rows
        else ""
    )
    issued = document.get("issued")
    total = {
        "quantity": number(user["energy_kwh"], lang),
        "ex_vat": money(user["cost_ex_vat_nok"], lang),
        "vat": money(user["vat_nok"], lang),
        "amount": money(user["cost_nok"], lang),
    }
    period = document.get("period") or {}
    return render(
        "statement_page.html",
        lang=lang,
        t=t,
        month=document["month"],
        name=display_name(user) if user["user_id"] is not None else t["guest"],
        email=user.get("user_email"),
        installation=document.get("installation_name") or document.get("installation_id") or "",
        period=f"{when(period.get('start'))} – {when(period.get('end'))}",
        customer=_customer(document, t),
        method=document["method"],
        lines=display_lines(user["lines"], lang),
        total=total,
        unverified=unverified_statuses(user["lines"]),
        sessions=[
            {
                "start": when(s["start"]),
                "end": when(s["end"]),
                "charger": s.get("charger_name") or "",
                "energy": number(s["energy_kwh"], lang),
            }
            for s in user.get("sessions", [])
        ],
        figure_html=figure,
        notes=document.get("notes", []),
        rounding=document.get("rounding", ""),
        rates_version=document["rates"]["sha256"][:12],
        issued_text=(
            t["issued"].format(
                when=str(issued["issued_at"])[:16].replace("T", " "), version=issued["version"]
            )
            if issued
            else t["preview"]
        ),
    )


def render_index(
    document: dict[str, Any], stems: dict[str | None, str], *, lang: str | None = None
) -> str:
    """An index of the users' pages and PDFs with their totals and the common meter's lines."""
    lang = check_language(lang, document)
    t = TEXT[lang]
    return render(
        "statement_index.html",
        lang=lang,
        t=t,
        month=document["month"],
        method=document["method"],
        installation=document.get("installation_name") or document.get("installation_id") or "",
        rows=[
            {
                "name": display_name(u) if u["user_id"] is not None else t["guest"],
                "page": f"{stems[u['user_id']]}.html",
                "pdf": f"{stems[u['user_id']]}.pdf",
                "energy": number(u["energy_kwh"], lang),
                "total": money(u["cost_nok"], lang),
            }
            for u in document["users"]
        ],
        total_energy=number(document["total_energy_kwh"], lang),
        total=money(document["total_cost_nok"], lang),
        common_lines=display_lines(document["common"]["lines"], lang),
    )


def write_html(
    document: dict[str, Any],
    folder: str | Path,
    *,
    lang: str | None = None,
    plotlyjs: str | bool = True,
) -> list[Path]:
    """One ``<YYYY-MM> <name>.html`` per user and ``index.html`` in ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stems = user_stems(document)
    written = []
    for user in document["users"]:
        page = out / f"{stems[user['user_id']]}.html"
        page.write_text(
            render_user_page(document, user, lang=lang, plotlyjs=plotlyjs), encoding="utf-8"
        )
        written.append(page)
    if plotlyjs == "directory":
        import plotly.offline

        (out / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    index = out / "index.html"
    index.write_text(render_index(document, stems, lang=lang), encoding="utf-8")
    written.append(index)
    return written
