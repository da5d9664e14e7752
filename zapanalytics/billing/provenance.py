"""Where each statement line's rate comes from: valid-from date, source and verification.

:func:`line_rates` answers, for one bill, which dated rate-table entry (or which option, or
which data) priced each line code, so a statement can print ``rate_valid_from``,
``rate_source`` and ``rate_verified`` beside every line and flag the rates the tables mark
``S`` (secondary source only) or ``U`` (not verified).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from zapanalytics.billing.energy import month_bounds
from zapanalytics.billing.rates import Dated, RateTables, Site

#: Lines whose unit rate is a mean over quarter-hours of different rates, weighted by energy.
WEIGHTED_LINES = ("spot", "grid_energy", "stromstotte", "norgespris", "capacity", "residual")
#: The unit of each line's quantity (default kWh).
LINE_UNITS = {"enova_yearly": "month", "capacity": "peak kWh", "rounding": "–"}


@dataclasses.dataclass(frozen=True)
class RateSource:
    """The provenance of one line's rate.

    Attributes
    ----------
    valid_from : str or None
        ``YYYY-MM-DD`` of the entry (several joined by ``", "`` when the rate changed
        inside the month); None for data (spot prices) and options.
    source : str
    status : str
        ``V``, ``S`` or ``U``.
    value : float, optional
        The tabled rate [NOK per unit excl. VAT] when one entry covers the whole month.
    """

    valid_from: str | None
    source: str
    status: str
    value: float | None = None

    @property
    def verified(self) -> bool:
        return self.status == "V"


_WORST = {"V": 0, "S": 1, "U": 2}


def _entries(
    entries: tuple[Dated, ...],
    first: dt.date,
    last: dt.date,
    key: str | None = None,
    scale: float = 1.0,
) -> RateSource | None:
    """The entries valid on some day of ``[first, last]``, as one :class:`RateSource` (with
    the value of ``key`` × ``scale`` when one entry covers the month)."""
    used = [
        e for e in entries if e.valid_from <= last and (e.valid_to is None or e.valid_to > first)
    ]
    if not used:
        return None
    statuses = [str(e.values.get("status", "U")) for e in used]
    return RateSource(
        valid_from=", ".join(e.valid_from.isoformat() for e in used),
        source="; ".join(dict.fromkeys(str(e.values.get("source", "")) for e in used)),
        status=max(statuses, key=lambda s: _WORST.get(s, 2)),
        value=float(used[0][key]) * scale if key is not None and len(used) == 1 else None,
    )


def line_rates(
    rates: RateTables, site: Site, month: str, parameters: dict[str, Any]
) -> dict[str, RateSource]:
    """The :class:`RateSource` of every line code a bill of ``month`` at ``site`` can carry."""
    _, end = month_bounds(month, site.timezone)
    first = dt.date.fromisoformat(f"{month}-01")
    last = (end - dt.timedelta(hours=12)).date()  # a local day inside the month's last day
    rules = rates.customer(site.customer_type)
    customer = RateSource(None, f"customer type {site.customer_type}: {rules.source}", rules.status)
    out: dict[str, RateSource] = {
        "spot": RateSource(
            None,
            f"day-ahead spot prices of {site.price_area or 'the price area'} (prices table)",
            "V",
        ),
        "flat_energy": RateSource(None, "flat price given by the owner (--price)", "V"),
        "residual": RateSource(None, "the owner's invoices (--invoice)", "V"),
        "rounding": RateSource(None, "rounding of the users' per-line VAT", "V"),
    }
    if parameters.get("markup_nok_per_kwh") is not None:
        out["markup"] = RateSource(
            None,
            "supplier markup given by the owner (--markup)",
            "V",
            float(parameters["markup_nok_per_kwh"]),
        )
    elif found := _entries(rates.dated("supplier"), first, last, "markup_nok_per_kwh"):
        out["markup"] = found
    rule = rates.elavgift_rule(site)
    if rule == "exempt":
        out["elavgift"] = dataclasses.replace(customer, value=0.0)
    else:
        section = "elavgift_reduced" if rule == "reduced" else "elavgift"
        if found := _entries(rates.dated(section), first, last, "nok_per_kwh"):
            out["elavgift"] = found
    for code, section, key, scale in (
        ("enova", "enova", "nok_per_kwh", 1.0),
        ("enova_yearly", "enova_yearly", "nok_per_year", 1 / 12),
        ("stromstotte", "stromstotte", None, 1.0),
        ("norgespris", "norgespris", None, 1.0),
    ):
        if found := _entries(rates.dated(section), first, last, key, scale):
            out[code] = found
    if site.grid_company:
        try:
            grid = rates.grid(site.grid_company)
        except ValueError:
            grid = None
        if grid is not None:
            periods = [
                p
                for p in grid.periods
                if p.valid_from <= last and (p.valid_to is None or p.valid_to > first)
            ]
            if periods:
                source = RateSource(
                    ", ".join(p.valid_from.isoformat() for p in periods),
                    f"{grid.name}: {grid.source}",
                    grid.status,
                )
                out["grid_energy"] = out["capacity"] = source
    return out
