"""The ``zapanalytics`` console script.

Each command group lives in its own module and registers itself on :data:`app` (or on
:data:`ingest_app`); the imports at the bottom of this file wire them in.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Audit and analyse EV-charging installations built on Zaptec chargers.",
    pretty_exceptions_enable=False,
)
ingest_app = typer.Typer(no_args_is_help=True, help="Load a source into the store.")
app.add_typer(ingest_app, name="ingest")


def _show_version(value: bool) -> None:
    if value:
        from zapanalytics import __version__

        typer.echo(f"zapanalytics {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_show_version
    ),
) -> None:
    """Audit and analyse EV-charging installations built on Zaptec chargers."""


def main() -> None:
    """Console-script entry point."""
    from zapanalytics.cli.errors import run_app

    run_app(app)


# Command modules register themselves on import.
from zapanalytics.cli import audit as _audit  # noqa: E402,F401
from zapanalytics.cli import bill as _bill  # noqa: E402,F401
from zapanalytics.cli import demo as _demo  # noqa: E402,F401
from zapanalytics.cli import export as _export  # noqa: E402,F401
from zapanalytics.cli import ingest as _ingest  # noqa: E402,F401
from zapanalytics.cli import ingest_portal as _ingest_portal  # noqa: E402,F401
from zapanalytics.cli import ingest_prices as _ingest_prices  # noqa: E402,F401
from zapanalytics.cli import meters as _meters  # noqa: E402,F401
from zapanalytics.cli import ocpp as _ocpp  # noqa: E402,F401
from zapanalytics.cli import replay as _replay  # noqa: E402,F401
from zapanalytics.cli import sample as _sample  # noqa: E402,F401
from zapanalytics.cli.output import tidy_help  # noqa: E402

tidy_help(app)
