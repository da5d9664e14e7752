"""Reports: one self-contained HTML file (plotly.js inline, no network)."""

from zapanalytics.report.document import Section, render_document, write_document

__all__ = ["Section", "render_document", "write_document"]
