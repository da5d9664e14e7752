"""One-line errors for users; a traceback only with ``--debug``."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

err_console = Console(stderr=True)


class UserError(Exception):
    """An error a user can fix (bad option, missing file, wrong credentials): exit code 2."""

    exit_code = 2


def run_app(app: typer.Typer) -> None:
    """Run ``app``; turn exceptions into one line on stderr unless ``--debug`` is given.

    Usage errors are reported by typer itself (exit code 2). Exit codes: 0 success,
    1 failure, 2 usage or user error, 130 interrupted; commands may define more (e.g. an
    audit with findings).
    """
    debug = os.environ.get("ZAPANALYTICS_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
        debug = True
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        code = getattr(exc, "exit_code", 1)
        message = str(exc) or type(exc).__name__
        err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(code if isinstance(code, int) else 1)
