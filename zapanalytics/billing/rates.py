"""Dated rate tables: taxes, subsidies and grid tariffs as TOML, shipped and user-supplied.

The package ships ``zapanalytics/billing/rates/*.toml``; user files given to
:func:`load_rates` are merged on top, entry by entry, so a user file can add a grid company,
correct one dated rate or add next year's rates without copying the rest. All amounts are
NOK excluding VAT. Every dated entry has ``valid_from`` (a local date, inclusive) and may
have ``valid_to`` (exclusive); an entry applies until the next ``valid_from``.

Sections
--------
``[vat]``            ``exempt_counties``; ``[[vat.rates]]`` with ``rate``.
``[elavgift]``       ``exempt_counties``, ``exempt_municipalities``; ``[[elavgift.rates]]`` with
                     ``nok_per_kwh``.
``[[enova.rates]]``  ``nok_per_kwh``.
``[[stromstotte.rates]]`` ``threshold_nok_per_kwh``, ``coverage``, ``cap_kwh_per_dwelling_month``.
``[[norgespris.rates]]``  ``price_nok_per_kwh``, ``cap_kwh_per_dwelling_month``.
``[[supplier.rates]]``    ``markup_nok_per_kwh``, ``monthly_fee_nok``.
``[grid.<company>]`` ``name``; ``[[grid.<company>.periods]]`` with ``energy_nok_per_kwh``,
                     ``capacity_method``, ``capacity_steps_kw``, ``capacity_nok_per_year`` and
                     ``[[grid.<company>.periods.rules]]`` (``days``, ``hours``, ``months``,
                     ``energy_nok_per_kwh``): the first matching rule sets the energy charge.
``[site]``           (user files only) ``county``, ``municipality``, ``grid_company``,
                     ``norgespris``, ``price_area``.

Each table's SHA-256 over its merged content identifies the rates a statement used; an issued
statement keeps that hash and is never recomputed with later tables.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

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
_DATED_SECTIONS = ("vat", "elavgift", "enova", "stromstotte", "norgespris", "supplier")
_SITE_KEYS = ("county", "municipality", "grid_company", "norgespris", "price_area")


class RateTableError(ValueError):
    """A rate table is malformed or lacks a rate the bill needs."""


@dataclasses.dataclass(frozen=True)
class Site:
    """Where and how an installation buys its power: decides VAT, elavgift and the tariff.

    Parameters
    ----------
    timezone : str
        IANA zone for tariff periods, days and months.
    price_area : str, optional
        Nord Pool bidding zone, e.g. ``"NO1"`` (spot prices only; never decides VAT).
    county, municipality : str, optional
        Location of the metering point; VAT is exempt in Nordland, Troms and Finnmark and
        elavgift in Finnmark and Nord-Troms (tiltakssonen).
    grid_company : str, optional
        Key of a ``[grid.<company>]`` table.
    norgespris : bool
        The metering point has opted in to Norgespris (replaces strømstøtte while valid).
    """

    timezone: str = "Europe/Oslo"
    price_area: str | None = None
    county: str | None = None
    municipality: str | None = None
    grid_company: str | None = None
    norgespris: bool = False


def _normalise(name: str | None) -> str:
    return " ".join((name or "").split()).casefold()


def _date(value: Any, where: str) -> dt.date:
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


def _number(
    entry: Mapping[str, Any],
    key: str,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
) -> float:
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


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RateTableError(f"{where}: must be a list of strings")
    return value


@dataclasses.dataclass(frozen=True)
class Dated:
    """One dated entry: applies on local dates in ``[valid_from, valid_to)``."""

    valid_from: dt.date
    valid_to: dt.date | None
    values: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


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
    for token in _strings(days_raw, f"{where}.days"):
        if _normalise(token) not in DAY_TOKENS:
            raise RateTableError(f"{where}.days: unknown day {token!r}")
        days.append(DAY_TOKENS[_normalise(token)])
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
        energy_nok_per_kwh=_number(raw, "energy_nok_per_kwh", where, low=-10, high=10),
    )


def _parse_grid(key: str, raw: Any) -> GridTariff:
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
    starts = sorted(_date(p.get("valid_from"), f"{where}.periods.valid_from") for p in periods_raw)
    periods = []
    for raw_period in sorted(periods_raw, key=lambda p: _date(p.get("valid_from"), where)):
        valid_from = _date(raw_period.get("valid_from"), f"{where}.periods.valid_from")
        at = f"{where}.periods[{valid_from}]"
        later = [s for s in starts if s > valid_from]
        valid_to = raw_period.get("valid_to")
        valid_to = (
            _date(valid_to, f"{at}.valid_to")
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
            _number(numbers, name, f"{at}.capacity", low=0, high=1e7)
        if list(steps) != sorted(steps) or steps[0] != 0:
            raise RateTableError(f"{at}.capacity_steps_kw: must start at 0 and increase")
        rules = tuple(
            _parse_rule(r, f"{at}.rules[{i}]") for i, r in enumerate(raw_period.get("rules", []))
        )
        periods.append(
            GridPeriod(
                valid_from=valid_from,
                valid_to=valid_to,
                energy_nok_per_kwh=_number(raw_period, "energy_nok_per_kwh", at, low=-10, high=10),
                rules=rules,
                capacity_method=method,
                capacity_steps_kw=tuple(float(s) for s in steps),
                capacity_nok_per_year=tuple(float(p) for p in prices),
            )
        )
    return GridTariff(key=key, name=str(raw.get("name", key)), periods=tuple(periods))


_REQUIRED = {
    "vat": {"rate": (0.0, 1.0)},
    "elavgift": {"nok_per_kwh": (0.0, 10.0)},
    "enova": {"nok_per_kwh": (0.0, 10.0)},
    "stromstotte": {
        "threshold_nok_per_kwh": (0.0, 100.0),
        "coverage": (0.0, 1.0),
        "cap_kwh_per_dwelling_month": (0.0, 1e9),
    },
    "norgespris": {"price_nok_per_kwh": (-10.0, 10.0), "cap_kwh_per_dwelling_month": (0.0, 1e9)},
    "supplier": {"markup_nok_per_kwh": (-10.0, 10.0), "monthly_fee_nok": (0.0, 1e6)},
}


def _parse_dated(section: str, raw: Any) -> tuple[Dated, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        raise RateTableError(f"{section}.rates: must be an array of tables ([[{section}.rates]])")
    starts = sorted(_date(r.get("valid_from"), f"{section}.rates.valid_from") for r in raw)
    if len(set(starts)) != len(starts):
        raise RateTableError(f"{section}.rates: two entries share a valid_from")
    entries = []
    for entry in raw:
        valid_from = _date(entry.get("valid_from"), f"{section}.rates.valid_from")
        where = f"{section}.rates[{valid_from}]"
        values = {}
        for key, (low, high) in _REQUIRED[section].items():
            if key == "monthly_fee_nok" and key not in entry:
                values[key] = 0.0
                continue
            values[key] = _number(entry, key, where, low=low, high=high)
        valid_to = entry.get("valid_to")
        later = [s for s in starts if s > valid_from]
        end = (
            _date(valid_to, f"{where}.valid_to")
            if valid_to is not None
            else (later[0] if later else None)
        )
        if end is not None and end <= valid_from:
            raise RateTableError(f"{where}.valid_to: must be after valid_from")
        entries.append(Dated(valid_from, end, values))
    return tuple(sorted(entries, key=lambda e: e.valid_from))


def _merge_dated(base: list, extra: list) -> list:
    by_start = {str(e.get("valid_from")): e for e in base}
    for entry in extra:
        by_start[str(entry.get("valid_from"))] = entry
    return list(by_start.values())


def _merge(base: dict, extra: Mapping, path: str = "") -> dict:
    """Merge ``extra`` into ``base``: dated arrays by ``valid_from``, tables recursively."""
    for key, value in extra.items():
        here = f"{path}.{key}" if path else key
        current = base.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _merge(current, value, here)
        elif (
            isinstance(value, list)
            and isinstance(current, list)
            and all(isinstance(v, Mapping) and "valid_from" in v for v in value + current)
        ):
            base[key] = _merge_dated(current, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        if all(isinstance(v, dict) and "valid_from" in v for v in items):
            items.sort(key=lambda v: v["valid_from"])
        return items
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _read_toml(path: Path | str, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RateTableError(f"{path}: not valid TOML: {exc}") from None


@dataclasses.dataclass(frozen=True)
class RateTables:
    """The merged rate tables and where they came from.

    Attributes
    ----------
    content : dict
        The merged TOML content (without ``[site]``).
    site : dict
        The ``[site]`` settings of the user files.
    sha256 : str
        Hex digest of the canonical content: what a statement records.
    sources : tuple of str
        The files merged, shipped first.
    """

    content: Mapping[str, Any]
    site: Mapping[str, Any]
    sha256: str
    sources: tuple[str, ...]

    @property
    def version(self) -> str:
        """Short form of :attr:`sha256` for display."""
        return self.sha256[:12]

    def dated(self, section: str) -> tuple[Dated, ...]:
        """The dated entries of ``section`` (e.g. ``"elavgift"``), oldest first."""
        table = self.content.get(section, {})
        if not isinstance(table, Mapping):
            raise RateTableError(f"[{section}] must be a table")
        return _parse_dated(section, table.get("rates"))

    def on(self, section: str, day: dt.date) -> Dated | None:
        """The entry of ``section`` valid on local date ``day``, or None."""
        found = None
        for entry in self.dated(section):
            if entry.valid_from <= day and (entry.valid_to is None or day < entry.valid_to):
                found = entry
        return found

    def grid_companies(self) -> tuple[str, ...]:
        """Keys of the grid tariffs available."""
        tables = self.content.get("grid", {})
        if not isinstance(tables, Mapping):
            raise RateTableError("[grid] must hold one table per company, e.g. [grid.elvia]")
        return tuple(sorted(tables))

    def grid(self, company: str) -> GridTariff:
        """The tariff of grid company ``company`` (key, case-insensitive)."""
        tables = self.content.get("grid", {})
        matches = [k for k in tables if _normalise(k) == _normalise(company)]
        if not matches:
            known = ", ".join(sorted(tables)) or "none"
            raise RateTableError(f"no grid tariff {company!r} (known: {known})")
        return _parse_grid(matches[0], tables[matches[0]])

    def vat_exempt(self, site: Site) -> bool:
        """Whether household electricity at ``site`` is exempt from VAT (by county)."""
        counties = {_normalise(c) for c in self.content.get("vat", {}).get("exempt_counties", [])}
        return _normalise(site.county) in counties if site.county else False

    def elavgift_exempt(self, site: Site) -> bool:
        """Whether ``site`` lies in the tiltakssone (no elavgift on household use)."""
        table = self.content.get("elavgift", {})
        counties = {_normalise(c) for c in table.get("exempt_counties", [])}
        municipalities = {_normalise(m) for m in table.get("exempt_municipalities", [])}
        return bool(
            (site.county and _normalise(site.county) in counties)
            or (site.municipality and _normalise(site.municipality) in municipalities)
        )

    def validate(self) -> RateTables:
        """Parse every section once so a bad table fails at load time, naming the field."""
        for section in _DATED_SECTIONS:
            self.dated(section)
        for company in self.grid_companies():
            self.grid(company)
        for key in ("exempt_counties",):
            _strings(self.content.get("vat", {}).get(key, []), f"vat.{key}")
        for key in ("exempt_counties", "exempt_municipalities"):
            _strings(self.content.get("elavgift", {}).get(key, []), f"elavgift.{key}")
        return self


def _shipped_files() -> list[tuple[str, str]]:
    folder = resources.files("zapanalytics.billing") / "rates"
    return sorted(
        (entry.name, entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def load_rates(user_files: Iterable[str | Path] = (), *, shipped: bool = True) -> RateTables:
    """Load the shipped rate tables and merge ``user_files`` over them, in order.

    Parameters
    ----------
    user_files : iterable of path
        TOML files whose entries override or extend the shipped ones.
    shipped : bool, default True
        Start from the shipped tables (False: only the user files, e.g. in tests).

    Returns
    -------
    RateTables

    Raises
    ------
    RateTableError
        A file is missing, is not TOML, or holds a malformed entry (the message names it).
    """
    merged: dict[str, Any] = {}
    site: dict[str, Any] = {}
    sources: list[str] = []
    texts = (
        [(f"zapanalytics/billing/rates/{name}", text) for name, text in _shipped_files()]
        if shipped
        else []
    )
    for path in user_files:
        try:
            texts.append((str(path), Path(path).read_text("utf-8-sig")))
        except FileNotFoundError:
            raise RateTableError(f"no such tariff file: {path}") from None
        except UnicodeDecodeError:
            raise RateTableError(f"{path} is not UTF-8 text") from None
        except OSError as exc:
            raise RateTableError(f"cannot read {path}: {exc.strerror}") from None
    for name, text in texts:
        data = _read_toml(name, text)
        extra_site = data.pop("site", {})
        data.pop("meta", None)
        if not isinstance(extra_site, Mapping):
            raise RateTableError(f"{name}: [site] must be a table")
        unknown = set(extra_site) - set(_SITE_KEYS)
        if unknown:
            raise RateTableError(f"{name}: unknown [site] keys {sorted(unknown)}")
        site.update(extra_site)
        _merge(merged, data)
        sources.append(name)
        try:  # validate after each file, so an error names the file that caused it
            RateTables(content=merged, site=site, sha256="", sources=()).validate()
        except RateTableError as exc:
            raise RateTableError(f"{name}: {exc}") from None
    digest = hashlib.sha256(
        json.dumps(_canonical(merged), sort_keys=True, ensure_ascii=False).encode("utf-8")
    ).hexdigest()
    return RateTables(content=merged, site=site, sha256=digest, sources=tuple(sources))


def site_from(
    rates: RateTables,
    installation: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Site:
    """Build a :class:`Site`: explicit ``overrides`` beat the user file's ``[site]``, which
    beats the installation row from the store."""
    values: dict[str, Any] = {}
    row = dict(installation or {})
    for key in ("timezone", *_SITE_KEYS):
        if row.get(key) is not None:
            values[key] = row[key]
    for key, value in rates.site.items():
        values[key] = value
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
    if "norgespris" in values and not isinstance(values["norgespris"], bool):
        raise RateTableError("[site] norgespris must be true or false")
    for key in ("county", "municipality", "grid_company", "price_area", "timezone"):
        if key in values and not isinstance(values[key], str):
            raise RateTableError(f"[site] {key} must be a string")
    return Site(**{k: v for k, v in values.items() if k in Site.__dataclass_fields__})
