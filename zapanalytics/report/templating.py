"""One Jinja2 environment for every HTML page the toolkit writes: the report and the statements.

Autoescaping is on for every template, so a charger or user name taken from a source is
always text on the page, never markup. ``StrictUndefined`` turns a misspelt variable into an
error in the tests instead of an empty cell on an invoice.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared environment; templates live in ``zapanalytics/report/templates/``."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("zapanalytics.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template_name: str, /, **context: Any) -> str:
    """Render one template with ``context``; every interpolated value is HTML-escaped."""
    return environment().get_template(template_name).render(**context)
