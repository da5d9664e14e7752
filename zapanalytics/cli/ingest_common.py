"""Helpers shared by the ``ingest`` commands: option parsing, store opening, API credentials."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from zapanalytics.cli.errors import UserError

DEFAULT_BASE_URL = "https://api.zaptec.com"


def parse_when(value: str, option: str) -> dt.datetime:
    """A date (midnight UTC) or an ISO-8601 time with an offset, as an aware UTC datetime."""
    text = value.strip()
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return dt.datetime.combine(day, dt.time(), dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{option}: expected YYYY-MM-DD or an ISO time, not {value!r}") from None
    if when.tzinfo is None:
        raise UserError(f"{option}: give a UTC offset (e.g. {text}+00:00) or a plain date")
    return when.astimezone(dt.UTC)


def parse_day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{option}: expected a date YYYY-MM-DD, not {value!r}") from None


def check_area(price_area: str | None) -> None:
    from zapanalytics.schemas import PRICE_AREAS

    if price_area is not None and price_area not in PRICE_AREAS:
        raise UserError(f"--price-area must be one of {', '.join(PRICE_AREAS)}, not {price_area!r}")


def credentials() -> tuple[str, str]:
    """User name and password from ZAPTEC_USERNAME / ZAPTEC_PASSWORD, else a prompt."""
    username = os.environ.get("ZAPTEC_USERNAME") or None
    password = os.environ.get("ZAPTEC_PASSWORD") or None
    try:
        if username is None:
            username = typer.prompt("Zaptec user name", err=True)
        if password is None:
            password = typer.prompt("Zaptec password", hide_input=True, err=True)
    except typer.Abort:
        raise UserError(
            "no Zaptec credentials: set ZAPTEC_USERNAME and ZAPTEC_PASSWORD, or run in a terminal"
        ) from None
    if not username or not password:
        raise UserError("no Zaptec credentials: the user name and password must not be empty")
    return username, password


@contextlib.contextmanager
def zaptec_client(base_url: str, retries: int = 6) -> Iterator[Any]:
    """An API client whose auth failures become one-line user errors."""
    from zapanalytics.ingest.zaptec.api import RetryPolicy, ZaptecAuthError, ZaptecClient

    username, password = credentials()
    client = ZaptecClient(
        username, password, base_url=base_url, retry=RetryPolicy(max_retries=retries)
    )
    try:
        yield client
    except ZaptecAuthError as exc:
        raise UserError(str(exc)) from None
    finally:
        client.close()


def open_store(db: Path) -> Any:
    from zapanalytics.store import StoreLockedError, open_store

    try:
        return open_store(db)
    except StoreLockedError as exc:
        raise UserError(str(exc)) from None
