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
``[[elavgift_reduced.rates]]`` ``nok_per_kwh``: the reduced rate (business in the tiltakssone).
``[[enova.rates]]``  ``nok_per_kwh``; ``[[enova_yearly.rates]]`` ``nok_per_year`` (non-households).
``[[stromstotte.rates]]`` ``threshold_nok_per_kwh``, ``coverage``, ``cap_kwh_per_dwelling_month``.
``[[norgespris.rates]]``  ``price_nok_per_kwh``, ``cap_kwh_per_dwelling_month``.
``[[supplier.rates]]``    ``markup_nok_per_kwh``, ``monthly_fee_nok``.
``[grid.<company>]`` ``name``; ``[[grid.<company>.periods]]`` with ``energy_nok_per_kwh``,
                     ``capacity_method``, ``capacity_steps_kw``, ``capacity_nok_per_year`` and
                     ``[[grid.<company>.periods.rules]]`` (``days``, ``hours``, ``months``,
                     ``energy_nok_per_kwh``): the first matching rule sets the energy charge.
``[customer.<type>]`` for ``household``, ``coop``, ``business``: which rules apply
                     (:class:`CustomerRules`), each with ``source`` and ``status``.
``[site]``           (user files only) ``county``, ``municipality``, ``grid_company``,
                     ``norgespris``, ``price_area``, ``customer_type``, ``dwellings``.

Every dated entry and every grid tariff may carry ``source`` (where the figure comes from)
and ``status``: ``V`` stated by a primary or operator source, ``S`` secondary source only,
``U`` not verified. Statements print both next to each rate and flag S and U.

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

from zapanalytics.billing.grid import (  # noqa: F401 - re-exported: the rate tables' public names
    CAPACITY_METHODS,
    DAY_TOKENS,
    GridPeriod,
    GridRule,
    GridTariff,
    parse_grid,
)
from zapanalytics.billing.rate_values import (  # noqa: F401 - RateTableError re-exported
    STATUSES,
    RateTableError,
    date_value,
    normalise,
    number_value,
    status_value,
    strings_value,
)

_DATED_SECTIONS = (
    "vat",
    "elavgift",
    "elavgift_reduced",
    "enova",
    "enova_yearly",
    "stromstotte",
    "norgespris",
    "supplier",
)
_SITE_KEYS = (
    "county",
    "municipality",
    "grid_company",
    "norgespris",
    "price_area",
    "customer_type",
    "dwellings",
)
#: Who buys the power at the metering point; decides VAT, elavgift, subsidies and the Enova fee.
CUSTOMER_TYPES = ("household", "coop", "business")


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
    customer_type : {"household", "coop", "business"}
        ``household``: one dwelling's meter; ``coop``: a housing co-op's (borettslag,
        sameie) common meter; ``business``: anything else (næring).
    dwellings : int
        Dwellings behind a co-op's common meter: strømstøtte's and Norgespris' monthly cap
        is ``cap per dwelling × dwellings``, shared with the co-op's other common use.
    """

    timezone: str = "Europe/Oslo"
    price_area: str | None = None
    county: str | None = None
    municipality: str | None = None
    grid_company: str | None = None
    norgespris: bool = False
    customer_type: str = "household"
    dwellings: int = 1

    def __post_init__(self) -> None:
        if self.customer_type not in CUSTOMER_TYPES:
            raise RateTableError(
                f"customer type must be one of {', '.join(CUSTOMER_TYPES)}, not {self.customer_type!r}"
            )
        if (
            isinstance(self.dwellings, bool)
            or not isinstance(self.dwellings, int)
            or not 1 <= self.dwellings <= 100_000
        ):
            raise RateTableError(
                f"dwellings must be a whole number 1-100000, not {self.dwellings!r}"
            )
        if self.customer_type != "coop" and self.dwellings != 1:
            raise RateTableError(
                "--dwellings applies to a co-op's common meter (customer coop) only"
            )


@dataclasses.dataclass(frozen=True)
class CustomerRules:
    """The rules of one customer type, as the rate tables state them.

    Attributes
    ----------
    vat_exempt_in_north : bool
        Household use in the VAT-exempt counties (Nordland, Troms, Finnmark) pays no VAT.
    elavgift_in_tiltakssone : {"exempt", "reduced", "general"}
        Elavgift in Finnmark and Nord-Troms: none, the reduced rate, or the general rate.
    stromstotte : bool
        Eligible for strømstøtte.
    norgespris : bool
        May opt in to Norgespris.
    enova : {"per_kwh", "per_year"}
        The Enova fee: per kWh (households) or a fixed sum per metering point and year.
    cap_per_dwelling : bool
        The subsidy cap counts the dwellings behind the meter (a co-op's common meter).
    source, status : str
    """

    customer_type: str
    vat_exempt_in_north: bool
    elavgift_in_tiltakssone: str
    stromstotte: bool
    norgespris: bool
    enova: str
    cap_per_dwelling: bool
    source: str
    status: str


def _default_customer_rules() -> Mapping[str, Any]:
    text = (resources.files("zapanalytics.billing") / "rates" / "national.toml").read_text("utf-8")
    return tomllib.loads(text)["customer"]


@dataclasses.dataclass(frozen=True)
class Dated:
    """One dated entry: applies on local dates in ``[valid_from, valid_to)``."""

    valid_from: dt.date
    valid_to: dt.date | None
    values: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


_REQUIRED = {
    "vat": {"rate": (0.0, 1.0)},
    "elavgift": {"nok_per_kwh": (0.0, 10.0)},
    "elavgift_reduced": {"nok_per_kwh": (0.0, 10.0)},
    "enova": {"nok_per_kwh": (0.0, 10.0)},
    "enova_yearly": {"nok_per_year": (0.0, 1e6)},
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
    starts = sorted(date_value(r.get("valid_from"), f"{section}.rates.valid_from") for r in raw)
    if len(set(starts)) != len(starts):
        raise RateTableError(f"{section}.rates: two entries share a valid_from")
    entries = []
    for entry in raw:
        valid_from = date_value(entry.get("valid_from"), f"{section}.rates.valid_from")
        where = f"{section}.rates[{valid_from}]"
        values = {}
        for key, (low, high) in _REQUIRED[section].items():
            if key == "monthly_fee_nok" and key not in entry:
                values[key] = 0.0
                continue
            values[key] = number_value(entry, key, where, low=low, high=high)
        values["source"] = str(entry.get("source", "user rate table"))
        values["status"] = status_value(entry.get("status", "U"), where)
        valid_to = entry.get("valid_to")
        later = [s for s in starts if s > valid_from]
        end = (
            date_value(valid_to, f"{where}.valid_to")
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
        matches = [k for k in tables if normalise(k) == normalise(company)]
        if not matches:
            areas = sorted(k for k in tables if normalise(k).startswith(normalise(company) + "-"))
            if areas:
                raise RateTableError(
                    f"{company!r} has one tariff per area; choose {' or '.join(areas)}"
                )
            known = ", ".join(sorted(tables)) or "none"
            raise RateTableError(f"no grid tariff {company!r} (known: {known})")
        return parse_grid(matches[0], tables[matches[0]])

    def customer(self, customer_type: str) -> CustomerRules:
        """The rules of ``customer_type`` from ``[customer.<type>]`` (tables without any
        ``[customer]`` section, e.g. a user's own, get the shipped rules)."""
        table = self.content.get("customer") or _DEFAULT_CUSTOMER_RULES
        if not isinstance(table, Mapping) or customer_type not in table:
            raise RateTableError(f"the rate tables have no [customer.{customer_type}] rules")
        raw = table[customer_type]
        where = f"customer.{customer_type}"
        if not isinstance(raw, Mapping):
            raise RateTableError(f"{where}: must be a table")
        flags = {}
        for key in ("vat_exempt_in_north", "stromstotte", "norgespris", "cap_per_dwelling"):
            if not isinstance(raw.get(key), bool):
                raise RateTableError(f"{where}.{key}: must be true or false")
            flags[key] = raw[key]
        choices = {
            "elavgift_in_tiltakssone": ("exempt", "reduced", "general"),
            "enova": ("per_kwh", "per_year"),
        }
        for key, allowed in choices.items():
            if raw.get(key) not in allowed:
                raise RateTableError(f"{where}.{key}: must be one of {', '.join(allowed)}")
            flags[key] = raw[key]
        return CustomerRules(
            customer_type=customer_type,
            source=str(raw.get("source", "user rate table")),
            status=status_value(raw.get("status", "U"), where),
            **flags,
        )

    def vat_exempt(self, site: Site) -> bool:
        """Whether electricity at ``site`` is exempt from VAT: household use (incl. a co-op's
        common meter) in the exempt counties."""
        if not self.customer(site.customer_type).vat_exempt_in_north:
            return False
        return self.in_vat_north(site)

    def in_vat_north(self, site: Site) -> bool:
        """Whether ``site`` lies in a county where household electricity is VAT-exempt."""
        counties = {normalise(c) for c in self.content.get("vat", {}).get("exempt_counties", [])}
        return normalise(site.county) in counties if site.county else False

    def elavgift_rule(self, site: Site) -> str:
        """``"exempt"``, ``"reduced"`` or ``"general"``: which elavgift ``site`` pays."""
        if not self.in_tiltakssone(site):
            return "general"
        return self.customer(site.customer_type).elavgift_in_tiltakssone

    def elavgift_exempt(self, site: Site) -> bool:
        """Whether ``site`` pays no elavgift (household use in the tiltakssone)."""
        return self.elavgift_rule(site) == "exempt"

    def in_tiltakssone(self, site: Site) -> bool:
        """Whether ``site`` lies in the tiltakssone (Finnmark and Nord-Troms)."""
        table = self.content.get("elavgift", {})
        counties = {normalise(c) for c in table.get("exempt_counties", [])}
        municipalities = {normalise(m) for m in table.get("exempt_municipalities", [])}
        return bool(
            (site.county and normalise(site.county) in counties)
            or (site.municipality and normalise(site.municipality) in municipalities)
        )

    def validate(self) -> RateTables:
        """Parse every section once so a bad table fails at load time, naming the field."""
        for section in _DATED_SECTIONS:
            self.dated(section)
        for company in self.grid_companies():
            self.grid(company)
        for key in ("exempt_counties",):
            strings_value(self.content.get("vat", {}).get(key, []), f"vat.{key}")
        for customer_type in self.content.get("customer", {}):
            if customer_type not in CUSTOMER_TYPES:
                raise RateTableError(
                    f"[customer.{customer_type}]: customer types are {', '.join(CUSTOMER_TYPES)}"
                )
            self.customer(customer_type)
        for key in ("exempt_counties", "exempt_municipalities"):
            strings_value(self.content.get("elavgift", {}).get(key, []), f"elavgift.{key}")
        return self


#: The shipped ``[customer]`` rules, for rate tables loaded without the shipped files.
_DEFAULT_CUSTOMER_RULES = _default_customer_rules()


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
    if values.get("dwellings") is not None and values.get("customer_type", "household") != "coop":
        values.pop("dwellings")  # a dwelling count only means something for a co-op
    for key in (
        "county",
        "municipality",
        "grid_company",
        "price_area",
        "timezone",
        "customer_type",
    ):
        if key in values and not isinstance(values[key], str):
            raise RateTableError(f"[site] {key} must be a string")
    site = Site(**{k: v for k, v in values.items() if k in Site.__dataclass_fields__})
    if site.norgespris and not rates.customer(site.customer_type).norgespris:
        raise RateTableError(
            f"a {site.customer_type} metering point cannot be on Norgespris"
            " (households and cabins only); drop --norgespris or change --customer"
        )
    return site
