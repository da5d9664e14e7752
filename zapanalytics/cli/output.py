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


def tidy_help(app: Any) -> None:
    """Make every command's ``--help`` say what its source says, for ``app`` and its groups.

    * Units in brackets (``[kWh]``, ``[A]``, ``[s]``) are text, not rich markup: ``[s]``
      would strike the rest of the line through and ``[kWh]`` would vanish. Every ``[``
      in a help text or docstring is escaped once, here, instead of at each option.
    * A flag takes no value, so it shows no ``<bool>`` type (``--help`` included).
    """
    import inspect
    import typing

    from typer.core import TyperOption
    from typer.models import ParameterInfo

    if not getattr(TyperOption.display_type_rich, "_flags_untyped", False):
        typed = TyperOption.display_type_rich

        def display_type_rich(self, ctx):
            return None if self.is_flag else typed(self, ctx)

        display_type_rich._flags_untyped = True
        TyperOption.display_type_rich = display_type_rich

    def escape(text: str | None) -> str | None:
        if not text or "\\[" in text:
            return text
        return text.replace("[", "\\[")

    def parameters(callback) -> list[ParameterInfo]:
        found = []
        try:
            hints = typing.get_type_hints(callback, include_extras=True)
        except Exception:  # noqa: BLE001 - an unresolvable hint only loses the tidy-up
            hints = {}
        for name, parameter in inspect.signature(callback).parameters.items():
            annotation = hints.get(name, parameter.annotation)
            infos = [parameter.default] if isinstance(parameter.default, ParameterInfo) else []
            if typing.get_origin(annotation) is typing.Annotated:
                _, *extras = typing.get_args(annotation)
                infos += [extra for extra in extras if isinstance(extra, ParameterInfo)]
            found += infos
        return found

    def tidy_callback(callback, info) -> None:
        if callback is None:
            return
        callback.__doc__ = escape(callback.__doc__)
        if info is not None:
            info.help = escape(info.help)
        for parameter in parameters(callback):
            parameter.help = escape(parameter.help)

    seen: set[int] = set()

    def walk(typer_app) -> None:
        if id(typer_app) in seen:
            return
        seen.add(id(typer_app))
        typer_app.info.help = escape(typer_app.info.help)
        if typer_app.registered_callback is not None:
            tidy_callback(typer_app.registered_callback.callback, typer_app.registered_callback)
        for command in typer_app.registered_commands:
            tidy_callback(command.callback, command)
        for group in typer_app.registered_groups:
            group.help = escape(group.help)
            walk(group.typer_instance)

    walk(app)
