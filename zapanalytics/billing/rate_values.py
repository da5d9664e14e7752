"""Checked values of the rate tables: dates, numbers, names and verification statuses.

Shared by :mod:`zapanalytics.billing.rates` and :mod:`zapanalytics.billing.grid`; every error
names the field it is about.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

#: Verification status of a figure: V primary or operator source, S secondary only, U not verified.
STATUSES = ("V", "S", "U")


class RateTableError(ValueError):
    """A rate table is malformed or lacks a rate the bill needs."""


def normalise(name: str | None) -> str:
    """A name for comparing: single spaces, case-folded (``"Nord  Troms"`` = ``"nord troms"``)."""
    return " ".join((name or "").split()).casefold()


def date_value(value: Any, where: str) -> dt.date:
    """A TOML date or ``YYYY-MM-DD`` text as a date; a date-time is refused."""
    if isinstance(value, dt.datetime):
        raise RateTableError(f"{where}: give a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise RateTableError(f"{where}: {value!r} is not a date (YYYY-MM-DD)")


def number_value(
    entry: Mapping[str, Any],
    key: str,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """``entry[key]`` as a finite number within ``[low, high]`` (booleans are refused)."""
    if key not in entry:
        raise RateTableError(f"{where}: missing {key}")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RateTableError(f"{where}.{key}: {value!r} is not a number")
    if value in (float("inf"), float("-inf")):
        raise RateTableError(f"{where}.{key}: must be finite")
    if low is not None and value < low:
        raise RateTableError(f"{where}.{key}: {value} is below {low}")
    if high is not None and value > high:
        raise RateTableError(f"{where}.{key}: {value} is above {high}")
    return float(value)


def strings_value(value: Any, where: str) -> list[str]:
    """``value`` if it is a list of strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RateTableError(f"{where}: must be a list of strings")
    return value


def status_value(value: Any, where: str) -> str:
    """``value`` if it is a verification status (``V``, ``S`` or ``U``)."""
    if value not in STATUSES:
        raise RateTableError(f"{where}.status: must be one of {', '.join(STATUSES)}, not {value!r}")
    return value
