"""Assemble report sections into one offline HTML document.

Every user-provided string must pass through :func:`html.escape` before it reaches the page;
:func:`table_html` does so for every cell. plotly.js is embedded once, inline, so the file
opens with no network.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import plotly.offline
import polars as pl

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
"""


@dataclasses.dataclass
class Section:
    """One section of a report: an anchor id, a title and trusted HTML built by this package."""

    anchor: str
    title: str
    body_html: str


def figure_html(figure: go.Figure, div_id: str) -> str:
    """HTML for one plotly figure, without plotly.js (the document embeds it once)."""
    return figure.to_html(
        include_plotlyjs=False, full_html=False, div_id=div_id, config={"displaylogo": False}
    )


def table_html(frame: pl.DataFrame, *, float_digits: int = 2, max_rows: int = 500) -> str:
    """Render a frame as an HTML table; every cell is escaped."""
    head = "".join(
        f'<th class="{"text" if frame.schema[c] == pl.String else "num"}">{html.escape(c)}</th>'
        for c in frame.columns
    )
    rows = []
    for record in frame.head(max_rows).iter_rows():
        cells = []
        for value in record:
            if isinstance(value, float):
                text, css = f"{value:,.{float_digits}f}", "num"
            elif value is None:
                text, css = "", "text"
            else:
                text, css = str(value), "num" if isinstance(value, int) else "text"
            cells.append(f'<td class="{css}">{html.escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="note">{frame.height - max_rows} more rows in the exports.</p>'
        if frame.height > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def kpis_html(items: Sequence[tuple[str, str]]) -> str:
    """A row of key figures; labels and values are escaped."""
    cells = "".join(
        f'<div class="kpi">{html.escape(label)}<b>{html.escape(value)}</b></div>'
        for label, value in items
    )
    return f'<div class="kpis">{cells}</div>'


def render_document(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole report as one HTML string with plotly.js inline."""
    nav = "".join(
        f'<a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a>' for s in sections
    )
    body = "".join(
        f'<section id="{html.escape(s.anchor)}"><h2>{html.escape(s.title)}</h2>{s.body_html}</section>'
        for s in sections
    )
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head><body>'
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)} · generated {generated}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>"
    )


def write_document(path: str | Path, title: str, subtitle: str, sections: Sequence[Section]) -> Path:
    """Write the report to ``path`` and return it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_document(title, subtitle, sections), encoding="utf-8")
    return target
