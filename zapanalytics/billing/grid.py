"""Grid tariffs (nettleie): dated periods with an energy charge, its exceptions by day, hour
and month, and the capacity steps (kapasitetsledd).

Parsed from the ``[grid.<company>]`` tables of the rate files (see
:mod:`zapanalytics.billing.rates`); priced per quarter-hour by
:mod:`zapanalytics.billing.tariff`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from zapanalytics.billing.rate_values import (
    RateTableError,
    date_value,
    normalise,
    number_value,
    status_value,
    strings_value,
)

#: Capacity methods the tariff engine knows (see :mod:`zapanalytics.billing.tariff`).
CAPACITY_METHODS = ("three_daily_peaks", "monthly_max")
#: Day tokens a grid rule may use; Norwegian names as in the fri-nettleie data set.
DAY_TOKENS = {
    "all": "all",
    "alle": "all",
    "working": "working",
    "virkedag": "working",
    "free": "free",
    "fridag": "free",
    "weekday": "weekday",
    "ukedag": "weekday",
    "weekend": "weekend",
    "helg": "weekend",
    "holiday": "holiday",
    "helligdager": "holiday",
    "helligdag": "holiday",
    "monday": "1",
    "mandag": "1",
    "tuesday": "2",
    "tirsdag": "2",
    "wednesday": "3",
    "onsdag": "3",
    "thursday": "4",
    "torsdag": "4",
    "friday": "5",
    "fredag": "5",
    "saturday": "6",
    "lørdag": "6",
    "sunday": "7",
    "søndag": "7",
}


@dataclasses.dataclass(frozen=True)
class GridRule:
    """An energy-charge exception: when all its conditions hold, its price applies."""

    name: str
    days: tuple[str, ...]
    hours: tuple[int, int] | None
    months: tuple[int, ...]
    energy_nok_per_kwh: float


@dataclasses.dataclass(frozen=True)
class GridPeriod:
    """One dated version of a grid tariff."""

    valid_from: dt.date
    valid_to: dt.date | None
    energy_nok_per_kwh: float
    rules: tuple[GridRule, ...]
    capacity_method: str
    capacity_steps_kw: tuple[float, ...]
    capacity_nok_per_year: tuple[float, ...]

    def capacity_step(self, peak_kw: float) -> int:
        """Index of the step a capacity figure falls in (lower bounds are inclusive)."""
        index = 0
        for i, lower in enumerate(self.capacity_steps_kw):
            if peak_kw >= lower:
                index = i
        return index


@dataclasses.dataclass(frozen=True)
class GridTariff:
    """A grid company's tariff history."""

    key: str
    name: str
    periods: tuple[GridPeriod, ...]
    source: str = "user rate table"
    status: str = "U"

    def period_on(self, day: dt.date) -> GridPeriod:
        """The period valid on local date ``day``."""
        chosen = None
        for period in self.periods:
            if period.valid_from <= day and (period.valid_to is None or day < period.valid_to):
                chosen = period
        if chosen is None:
            raise RateTableError(f"grid tariff {self.key!r} has no period covering {day}")
        return chosen


def _parse_rule(raw: Any, where: str) -> GridRule:
    if not isinstance(raw, Mapping):
        raise RateTableError(f"{where}: must be a table")
    days_raw = raw.get("days", ["all"])
    if isinstance(days_raw, str):
        days_raw = [days_raw]
    days = []
    for token in strings_value(days_raw, f"{where}.days"):
        if normalise(token) not in DAY_TOKENS:
            raise RateTableError(f"{where}.days: unknown day {token!r}")
        days.append(DAY_TOKENS[normalise(token)])
    hours = raw.get("hours")
    if hours is not None:
        if (
            not isinstance(hours, list)
            or len(hours) != 2
            or not all(
                isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 24 for h in hours
            )
            or hours[0] == hours[1]
        ):
            raise RateTableError(
                f"{where}.hours: must be [start, end) local hours 0-24, e.g. [6, 22]"
            )
        hours = (hours[0], hours[1])
    months = raw.get("months", [])
    if not isinstance(months, list) or not all(
        isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= 12 for m in months
    ):
        raise RateTableError(f"{where}.months: must be a list of month numbers 1-12")
    return GridRule(
        name=str(raw.get("name", "rule")),
        days=tuple(days),
        hours=hours,
        months=tuple(months),
        energy_nok_per_kwh=number_value(raw, "energy_nok_per_kwh", where, low=-10, high=10),
    )


def parse_grid(key: str, raw: Any) -> GridTariff:
    where = f"grid.{key}"
    if not isinstance(raw, Mapping):
        raise RateTableError(f"{where}: must be a table")
    periods_raw = raw.get("periods")
    if not isinstance(periods_raw, list) or not periods_raw:
        raise RateTableError(f"{where}: needs at least one [[{where}.periods]]")
    if not all(isinstance(p, Mapping) for p in periods_raw):
        raise RateTableError(f"{where}.periods: must be an array of tables")
    rules_raw = [p.get("rules", []) for p in periods_raw]
    if not all(isinstance(r, list) for r in rules_raw):
        raise RateTableError(f"{where}.periods.rules: must be an array of tables")
    starts = sorted(
        date_value(p.get("valid_from"), f"{where}.periods.valid_from") for p in periods_raw
    )
    periods = []
    for raw_period in sorted(periods_raw, key=lambda p: date_value(p.get("valid_from"), where)):
        valid_from = date_value(raw_period.get("valid_from"), f"{where}.periods.valid_from")
        at = f"{where}.periods[{valid_from}]"
        later = [s for s in starts if s > valid_from]
        valid_to = raw_period.get("valid_to")
        valid_to = (
            date_value(valid_to, f"{at}.valid_to")
            if valid_to is not None
            else (later[0] if later else None)
        )
        method = raw_period.get("capacity_method", "three_daily_peaks")
        if method not in CAPACITY_METHODS:
            raise RateTableError(
                f"{at}.capacity_method: {method!r} is not one of {CAPACITY_METHODS}"
            )
        steps = raw_period.get("capacity_steps_kw", [0])
        prices = raw_period.get("capacity_nok_per_year", [0])
        if (
            not isinstance(steps, list)
            or not isinstance(prices, list)
            or len(steps) != len(prices)
            or not steps
        ):
            raise RateTableError(
                f"{at}: capacity_steps_kw and capacity_nok_per_year must be lists of equal length"
            )
        numbers = {f"s{i}": v for i, v in enumerate(steps)} | {
            f"p{i}": v for i, v in enumerate(prices)
        }
        for name in numbers:
            number_value(numbers, name, f"{at}.capacity", low=0, high=1e7)
        if list(steps) != sorted(steps) or steps[0] != 0:
            raise RateTableError(f"{at}.capacity_steps_kw: must start at 0 and increase")
        rules = tuple(
            _parse_rule(r, f"{at}.rules[{i}]") for i, r in enumerate(raw_period.get("rules", []))
        )
        periods.append(
            GridPeriod(
                valid_from=valid_from,
                valid_to=valid_to,
                energy_nok_per_kwh=number_value(
                    raw_period, "energy_nok_per_kwh", at, low=-10, high=10
                ),
                rules=rules,
                capacity_method=method,
                capacity_steps_kw=tuple(float(s) for s in steps),
                capacity_nok_per_year=tuple(float(p) for p in prices),
            )
        )
    return GridTariff(
        key=key,
        name=str(raw.get("name", key)),
        periods=tuple(periods),
        source=str(raw.get("source", "user rate table")),
        status=status_value(raw.get("status", "U"), where),
    )
