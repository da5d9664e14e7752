"""The pieces a report section is made of, as data; ``templates/report/blocks.html.j2``
renders them (escaped). Section builders return lists of these, never HTML strings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go
import polars as pl
from markupsafe import Markup

from zapanalytics.report.document import Section, figure_html, render_fragment
from zapanalytics.report.tables import Table, table

__all__ = [
    "Block",
    "Finding",
    "bullets",
    "figure",
    "findings",
    "heading",
    "kpis",
    "notes",
    "paragraph",
    "section",
    "table_block",
]


@dataclass(frozen=True)
class Block:
    kind: str
    text: str = ""
    level: int = 3
    anchor: str | None = None
    items: Sequence = ()
    table: Table | None = None
    html: Markup | None = None
    caption: str | None = None
    css: str | None = None
    lines: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class Finding:
    """One sentence of the report's first screen; ``anchor`` links to its chart."""

    sentence: str
    severity: str = "info"
    anchor: str | None = None


def heading(text: str, level: int = 3, anchor: str | None = None) -> Block:
    return Block("heading", text=text, level=level, anchor=anchor)


def kpis(items: Sequence[tuple[str, str]]) -> Block:
    return Block("kpis", items=tuple(items))


def table_block(frame: pl.DataFrame, **options) -> Block:
    """A table of ``frame`` (options as :func:`zapanalytics.report.tables.table`)."""
    return Block("table", table=table(frame, **options))


def figure(fig: go.Figure, div_id: str, *, caption: str | None = None, css: str | None = None) -> Block:
    return Block("figure", html=figure_html(fig, div_id), anchor=f"{div_id}-box", caption=caption, css=css)


def notes(*lines: str) -> Block:
    return Block("notes", lines=tuple(line for line in lines if line))


def bullets(lines: Sequence[str]) -> Block:
    return Block("bullets", lines=tuple(lines))


def paragraph(text: str) -> Block:
    return Block("paragraph", text=text)


def findings(items: Sequence[Finding]) -> Block:
    return Block("findings", items=tuple(items))


def section(anchor: str, title: str, blocks: Sequence[Block]) -> Section:
    """A report section rendered from its blocks."""
    return Section(anchor, title, render_fragment("blocks.html.j2", blocks=list(blocks)))
