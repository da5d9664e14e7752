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
    """Run ``app``; turn exceptions into one line on stderr unless ``--debug`` is given."""
    debug = "--debug" in sys.argv or os.environ.get("ZAPANALYTICS_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        app(standalone_mode=False)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the boundary that shields users from tracebacks
        if debug:
            raise
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            err_console.print("aborted")
            sys.exit(1)
        code = getattr(exc, "exit_code", 1)
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(code if isinstance(code, int) else 1)
