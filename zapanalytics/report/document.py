"""Assemble report sections into one offline HTML document.

Every page is rendered by the shared Jinja2 environment (:mod:`.templating`, autoescaping
on): a section builder passes data -- text, :class:`~.tables.Table` objects, figures --
to a template under ``templates/report/`` and gets back :class:`markupsafe.Markup`. The
only markup that is not escaped is what this package makes itself: plotly's figure
``<div>``s and plotly.js, embedded once, inline, so the file opens with no network.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.offline
from markupsafe import Markup

from zapanalytics.report.templating import render

__all__ = [
    "Section",
    "figure_html",
    "render_document",
    "render_fragment",
    "report_path",
    "write_document",
]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
header{background:#0b2e4f;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;opacity:.8}
nav{padding:8px 32px;background:#e9edf2;font-size:14px} nav a{margin-right:16px;color:#0b2e4f}
main{padding:8px 32px 48px;max-width:1280px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin:16px 0;box-shadow:0 1px 2px #0002}
h2{margin-top:0;font-size:18px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{padding:4px 10px;border-bottom:1px solid #e3e6ea;text-align:right}
th{background:#f0f2f5} td.text,th.text{text-align:left}
.note{color:#5b6472;font-size:13px}
.kpis{display:flex;gap:16px;flex-wrap:wrap} .kpi{background:#f0f4f8;border-radius:6px;padding:8px 14px}
.kpi b{display:block;font-size:20px}
ol.findings{font-size:15px;line-height:1.6} ol.findings li.error{color:#a11}
ol.findings li.warning{color:#8a5a00} ol.findings a{color:inherit}
.finding-chart{border-top:1px solid #e3e6ea;margin-top:12px;padding-top:8px}
"""


@dataclasses.dataclass
class Section:
    """One section of a report: an anchor id, a title and its body, rendered by a template
    of this package (:func:`render_fragment`)."""

    anchor: str
    title: str
    body: Markup


def render_fragment(template: str, /, **context: Any) -> Markup:
    """A template under ``templates/report/`` rendered to trusted markup."""
    return Markup(render(f"report/{template}", **context))  # noqa: S704 - rendered with autoescape


def figure_html(figure: go.Figure, div_id: str) -> Markup:
    """HTML for one plotly figure, without plotly.js (the document embeds it once).

    Plotly serialises every string of the figure as JSON inside its own ``<script>``;
    it is this package's markup, so it is marked safe here and nowhere else.
    """
    return Markup(  # noqa: S704 - plotly's own output
        figure.to_html(include_plotlyjs=False, full_html=False, div_id=div_id,
                       config={"displaylogo": False})  # fmt: skip
    )


def render_document(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole report as one HTML string with plotly.js inline."""
    return render(
        "report/document.html.j2",
        title=title,
        subtitle=subtitle,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sections=sections,
        style=Markup(_STYLE),  # noqa: S704 - a constant of this module
        plotly_js=Markup(plotly.offline.get_plotlyjs()),  # noqa: S704 - the bundled library
    )


def report_path(out: str | Path, default_name: str = "report.html") -> Path:
    """Where ``--out`` asks the report to go: the file itself, or ``default_name`` inside
    it when it is an existing directory or ends with a path separator."""
    text = str(out)
    target = Path(text)
    if text.endswith(("/", "\\")) or target.is_dir():
        return target / default_name
    return target


def write_document(path: str | Path, title: str, subtitle: str, sections: Sequence[Section]) -> Path:
    """Write the report to ``path`` and return it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_document(title, subtitle, sections), encoding="utf-8")
    return target
