"""Shared output helpers: JSON for machines, rich tables for people."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from rich.console import Console

console = Console()


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(payload: Any) -> None:
    """Write ``payload`` as one JSON document to stdout."""
    sys.stdout.write(json.dumps(payload, default=_default, ensure_ascii=False) + "\n")


def working(message: str, *, quiet: bool = False):
    """A spinner on stderr while a long step runs (silent with ``quiet`` or off a terminal)."""
    import contextlib

    from zapanalytics.cli.errors import err_console

    if quiet or not err_console.is_terminal:
        return contextlib.nullcontext()
    return err_console.status(message)
