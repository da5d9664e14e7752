"""Bill one month of one installation: the shell around the pure split methods.

:func:`bill_frames` bills from frames (the sessions, energy details, prices and AMS readings
of the month), so the local and the Spark engines share it; :func:`bill_month` reads those
frames from the store and calls it. The CLI, the notebooks and the statements go through
them.

Sessions come from one query, :data:`SESSIONS_FROM` (one row per charging), so switching the
session source is one edit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from zapanalytics.billing import split as methods
from zapanalytics.billing.energy import (
    QUARTER,
    month_bounds,
    quarter_index,
    quarter_start,
    spread_deltas,
    user_interval_energy,
)
from zapanalytics.billing.money import BASIS_POINTS
from zapanalytics.billing.parties import GROUPS, billed_parties, party_names, session_list
from zapanalytics.billing.rates import CUSTOMER_TYPES, RateTables, Site, load_rates, site_from
from zapanalytics.billing.reconcile import Reconciliation, reconcile
from zapanalytics.billing.split import MissingPricesError, Split
from zapanalytics.billing.tariff import interval_calendar
from zapanalytics.store.queries import frame
from zapanalytics.timebins import interval_start_bin

#: The installation's optional billing columns (migrations 0003, 0013), read when present.
_SITE_COLUMNS = (
    "county",
    "municipality",
    "grid_company",
    "norgespris",
    "customer_type",
    "dwellings",
)
#: The relation billing reads sessions from: one row per charging.
SESSIONS_FROM = "canonical_sessions"


class BillingError(ValueError):
    """The store or the options do not allow this bill (a message for the owner)."""


class NoSessionsError(BillingError):
    """The month holds no charging to bill."""


@dataclasses.dataclass
class Bill:
    """One month's bill of one installation.

    Attributes
    ----------
    installation_id, installation_name : str or None
    month : str
        ``YYYY-MM`` in the installation's local time.
    method : str
        ``flat``, ``spot`` or ``full``.
    site : Site
    rates : RateTables
    users : polars.DataFrame
        ``user_id, user_name, user_email`` of everyone billed (with ``group_by`` charger
        or card: the charger or the card; ``user_email`` null where the source has none).
    split : Split
        The priced lines (with the residual lines when reconciled).
    hourly : polars.DataFrame
        ``user_id, hour_start, energy_kwh, cost_nok`` per local hour, for the statements'
        plots; ``cost_nok`` is the energy lines incl. VAT, before rounding, without the
        capacity share and residual (those are monthly).
    reconciliation : Reconciliation or None
    notes : list of str
        What the owner should know about this bill (estimates, missing data).
    parameters : dict
        The options the bill was made with.
    sessions : polars.DataFrame
        The month's sessions per billed party: ``user_id, session_id, start_utc, end_utc,
        charger_name, energy_kwh`` (energy inside the month [kWh]).
    group_by : str
        ``user``, ``charger`` or ``card``.
    """

    installation_id: str | None
    installation_name: str | None
    month: str
    method: str
    site: Site
    rates: RateTables
    users: pl.DataFrame
    split: Split
    hourly: pl.DataFrame
    reconciliation: Reconciliation | None
    notes: list[str]
    parameters: dict[str, Any]
    sessions: pl.DataFrame = dataclasses.field(default_factory=pl.DataFrame)
    group_by: str = "user"


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def resolve_installation(
    con: duckdb.DuckDBPyConnection, installation_id: str | None
) -> dict[str, Any]:
    """The installation row to bill: the one named, or the only one ({} when there is none)."""
    available = _columns(con, "installations")
    wanted = [
        "installation_id",
        "name",
        "timezone",
        "price_area",
        *[c for c in _SITE_COLUMNS if c in available],
    ]
    rows = frame(con, f"SELECT {', '.join(wanted)} FROM installations ORDER BY installation_id")  # noqa: S608 - fixed names
    if installation_id is not None:
        rows = rows.filter(pl.col("installation_id") == installation_id)
        if rows.height == 0:
            raise BillingError(f"no installation {installation_id!r} in the store")
    elif rows.height > 1:
        known = ", ".join(rows["installation_id"].to_list())
        raise BillingError(f"the store holds {rows.height} installations; choose one ({known})")
    return rows.row(0, named=True) if rows.height else {}


def _sessions_and_details(
    con: duckdb.DuckDBPyConnection,
    installation_id: str | None,
    start: dt.datetime,
    end: dt.datetime,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    # A session belongs to the month if any part of it does; its details come whole, since
    # each delta's interval starts at the previous one.
    available = _columns(con, "sessions")
    email = "s.user_email" if "user_email" in available else "NULL::VARCHAR"
    window = f"""
        SELECT s.session_id, s.user_id, s.user_name, {email} AS user_email, s.charger_id,
               s.token_name, c.name AS charger_name, c.device_id AS charger_serial,
               s.start_utc, s.end_utc, s.energy_kwh, s.is_void
        FROM {SESSIONS_FROM} s LEFT JOIN chargers c USING (charger_id)
        WHERE (? IS NULL OR s.installation_id = ? OR s.installation_id IS NULL)
          AND s.start_utc < ? AND coalesce(s.end_utc, s.start_utc) >= ? - INTERVAL 1 DAY
    """  # noqa: S608 - fixed names; values are parameters
    params = [installation_id, installation_id, end, start]
    sessions = frame(con, window, params)
    details = frame(
        con,
        f"""
        SELECT d.session_id, d.ts_utc, d.energy_kwh
        FROM energy_details d JOIN ({window}) s USING (session_id)
        ORDER BY d.session_id, d.ts_utc
        """,  # noqa: S608 - the window is fixed text, values are parameters
        params,
    )
    return sessions, details


def _prices(
    con: duckdb.DuckDBPyConnection, area: str, start: dt.datetime, end: dt.datetime
) -> pl.DataFrame:
    return frame(
        con,
        "SELECT start_utc, end_utc, spot_nok_per_kwh FROM prices"
        " WHERE price_area = ? AND end_utc > ? AND start_utc < ? AND spot_nok_per_kwh IS NOT NULL"
        " ORDER BY start_utc",
        [area, start, end],
    )


def site_meter_hourly(
    con: duckdb.DuckDBPyConnection,
    installation_id: str | None,
    start: dt.datetime,
    end: dt.datetime,
    timezone: str,
) -> pl.DataFrame | None:
    """The metering point's energy per local hour from its AMS (HAN) meter, if it covers the
    month (see :func:`han_hourly`); None without readings."""
    if installation_id is None:
        return None
    readings = frame(
        con,
        "SELECT ts_utc, energy_import_kwh FROM reference_readings"
        " WHERE kind = 'han' AND installation_id = ? AND energy_import_kwh IS NOT NULL"
        " AND ts_utc BETWEEN ? - INTERVAL 1 HOUR AND ? + INTERVAL 1 HOUR ORDER BY ts_utc",
        [installation_id, start, end],
    )
    return han_hourly(readings, start, end, timezone)


def han_hourly(
    readings: pl.DataFrame, start: dt.datetime, end: dt.datetime, timezone: str
) -> pl.DataFrame | None:
    """Energy per local hour [kWh] from AMS register readings ``ts_utc, energy_import_kwh``.

    Register differences are placed on the quarter-hour grid by the same rule as charger
    details (:func:`zapanalytics.billing.energy.spread_deltas`). Returns None when the
    readings do not span ``[start, end)``; a negative difference (register reset) is dropped.
    """
    if readings.height:
        readings = readings.filter(pl.col("energy_import_kwh").is_not_null()).sort("ts_utc")
    if readings.height < 2 or readings["ts_utc"].min() > start or readings["ts_utc"].max() < end:
        return None
    deltas = (
        readings.with_columns(
            pl.col("ts_utc").dt.epoch("us").alias("t1"),
            pl.col("energy_import_kwh").diff().alias("energy_kwh"),
        )
        .with_columns(pl.col("t1").shift(1).alias("t0"), pl.lit("site").alias("user_id"))
        .filter(pl.col("t0").is_not_null() & (pl.col("energy_kwh") >= 0))
        .select("user_id", "t0", "t1", "energy_kwh")
    )
    placed = spread_deltas(deltas).with_columns(quarter_start(pl.col("quarter")).alias("q"))
    return (
        placed.with_columns(
            interval_start_bin(pl.col("q") + QUARTER, "1h", timezone).alias("hour_start")
        )
        .group_by("hour_start")
        .agg(pl.col("energy_kwh").sum())
        .sort("hour_start")
    )


def _hourly(
    energy: pl.DataFrame, calendar: pl.DataFrame, method: str, price: float | None
) -> pl.DataFrame:
    """Energy and cost (incl. VAT, unrounded, without monthly items) per user and local hour."""
    first = calendar.select(quarter_index(pl.col("interval_start_utc")).first()).item()
    offset = energy.select(quarter_index(pl.col("interval_start_utc")) - first).to_series()
    picked = calendar[offset]
    vat = 1 + picked["vat_bp"].cast(pl.Float64) / BASIS_POINTS
    if method == "flat":
        per_kwh = pl.Series([price or 0.0] * energy.height, dtype=pl.Float64)
    else:
        per_kwh = picked["spot_nok_per_kwh"].fill_null(0.0) + picked[
            "markup_nok_per_kwh"
        ].fill_null(0.0)
        if method == "full":
            per_kwh = (
                per_kwh
                + picked["grid_energy_nok_per_kwh"].fill_null(0.0)
                + picked["elavgift_nok_per_kwh"].fill_null(0.0)
                + picked["enova_nok_per_kwh"].fill_null(0.0)
                - picked["subsidy_nok_per_kwh"].fill_null(0.0)
                - (picked["hourly_spot_nok_per_kwh"] - picked["norgespris_nok_per_kwh"]).fill_null(
                    0.0
                )
            )
        per_kwh = per_kwh * vat
    return (
        pl.DataFrame(
            {
                "user_id": energy["user_id"].cast(pl.String),
                "hour_start": picked["hour_start"],
                "energy_kwh": energy["energy_kwh"],
                "cost_nok": energy["energy_kwh"] * per_kwh,
            }
        )
        .group_by("user_id", "hour_start")
        .agg(pl.col("energy_kwh").sum(), pl.col("cost_nok").sum())
        .sort("user_id", "hour_start", nulls_last=True)
    )


def last_complete_month(timezone: str, now: dt.datetime | None = None) -> str:
    """``YYYY-MM`` of the last month that has ended in ``timezone``."""
    local = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(timezone))
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def bill_month(
    con: duckdb.DuckDBPyConnection,
    month: str,
    method: str,
    *,
    installation_id: str | None = None,
    price_area: str | None = None,
    **options: Any,
) -> Bill:
    """Bill ``month`` (``YYYY-MM``, local time) of one installation of the store with ``method``.

    Reads the installation, the month's sessions and energy details, the prices of its area
    and its AMS meter, and calls :func:`bill_frames` (which documents ``options``).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The store (read-only is enough).
    month : str
        ``YYYY-MM``.
    method : {"flat", "spot", "full"}
    installation_id : str, optional
        Needed when the store holds several installations.
    price_area : str, optional
        Overrides the installation's.
    **options
        Passed to :func:`bill_frames`.

    Returns
    -------
    Bill
    """
    installation = resolve_installation(con, installation_id)
    zone = installation.get("timezone") or "Europe/Oslo"
    try:
        start, end = month_bounds(month, zone)
    except ValueError as exc:
        raise BillingError(str(exc)) from None
    chosen = installation.get("installation_id")
    sessions, details = _sessions_and_details(con, chosen, start, end)
    area = price_area or installation.get("price_area")
    prices = _prices(con, area, start, end) if area else None
    meter = site_meter_hourly(con, chosen, start, end, zone) if method == "full" else None
    return bill_frames(
        installation,
        month,
        method,
        sessions=sessions,
        details=details,
        prices=prices,
        site_hourly_kwh=meter,
        price_area=price_area,
        **options,
    )


def bill_frames(
    installation: dict[str, Any],
    month: str,
    method: str,
    *,
    sessions: pl.DataFrame,
    details: pl.DataFrame,
    prices: pl.DataFrame | None = None,
    han: pl.DataFrame | None = None,
    site_hourly_kwh: pl.DataFrame | None = None,
    price_nok_per_kwh: float | None = None,
    markup_nok_per_kwh: float | None = None,
    tariff_files: Sequence[str | Path] = (),
    rates: RateTables | None = None,
    county: str | None = None,
    municipality: str | None = None,
    grid_company: str | None = None,
    price_area: str | None = None,
    norgespris: bool | None = None,
    customer_type: str | None = None,
    dwellings: int | None = None,
    group_by: str = "user",
    invoices: pl.DataFrame | None = None,
    residual: str = "energy",
    now: dt.datetime | None = None,
) -> Bill:
    """Bill ``month`` of one installation from its frames with ``method``.

    Parameters
    ----------
    installation : dict
        The installation row (``installation_id, name, timezone, price_area`` and the billing
        settings; {} when unknown).
    month : str
        ``YYYY-MM`` in the installation's local time.
    method : {"flat", "spot", "full"}
    sessions : polars.DataFrame
        The month's sessions (one row per charging): ``session_id, user_id, user_name,
        start_utc, end_utc, energy_kwh, is_void`` and, when known, ``user_email,
        charger_id, token_name, charger_name, charger_serial``.
    details : polars.DataFrame
        Their ``energy_details``: ``session_id, ts_utc, energy_kwh`` [kWh].
    prices : polars.DataFrame, optional
        ``start_utc, end_utc, spot_nok_per_kwh`` of the price area (spot and full).
    han : polars.DataFrame, optional
        AMS register readings ``ts_utc, energy_import_kwh`` around the month (full).
    site_hourly_kwh : polars.DataFrame, optional
        Or the metering point's ``hour_start, energy_kwh`` already binned.
    price_nok_per_kwh : float, optional
        The flat price incl. VAT [NOK/kWh] (``flat`` only, required there).
    markup_nok_per_kwh : float, optional
        Supplier markup excl. VAT [NOK/kWh]; default: the rate tables' supplier entry.
    tariff_files : sequence of path
        User rate tables merged over the shipped ones.
    rates : RateTables, optional
        Already loaded tables (then ``tariff_files`` is ignored).
    county, municipality, grid_company, price_area, norgespris, customer_type, dwellings : optional
        Override the installation's settings and the user file's ``[site]``.
    group_by : {"user", "charger", "card"}
        Whom the statements go to; sessions without one (guests) get their own line.
    invoices : polars.DataFrame, optional
        Invoice totals to reconcile against (:func:`~zapanalytics.billing.reconcile.read_invoices`).
    residual : {"energy", "equal", "common"}
        How the reconciliation residual is shared.
    now : datetime, optional
        Current time, to mark a month not yet over as an estimate (default: the clock).

    Returns
    -------
    Bill

    Raises
    ------
    NoSessionsError
        No charging in the month.
    BillingError, MissingPricesError, RateTableError
        With a message naming what is missing.
    """
    if method not in methods.METHODS:
        raise BillingError(f"method must be one of {', '.join(methods.METHODS)}, not {method!r}")
    if method == "flat" and price_nok_per_kwh is None:
        raise BillingError("the flat method needs a price (NOK/kWh incl. VAT)")
    if group_by not in GROUPS:
        raise BillingError(f"group by one of {', '.join(GROUPS)}, not {group_by!r}")
    rates = rates or load_rates(tariff_files)
    site = site_from(
        rates,
        installation,
        county=county,
        municipality=municipality,
        grid_company=grid_company,
        price_area=price_area,
        norgespris=norgespris,
        customer_type=customer_type,
        dwellings=dwellings,
    )
    start, end = month_bounds(month, site.timezone)
    notes: list[str] = []
    sessions = billed_parties(sessions, group_by)
    energy = user_interval_energy(sessions, details, start_utc=start, end_utc=end)
    if energy.height == 0:
        place = installation.get("name") or installation.get("installation_id") or "the store"
        raise NoSessionsError(f"no charging in {month} at {place}: nothing to bill")

    grid = None
    if method in ("spot", "full"):
        if not site.price_area:
            raise BillingError("the installation has no price area; give one (e.g. NO1)")
        if prices is None or prices.height == 0:
            raise MissingPricesError(
                f"the store has no spot prices for {site.price_area} in {month}; ingest them first"
            )
    else:
        prices = None
    if method == "full":
        if not site.grid_company:
            known = ", ".join(rates.grid_companies())
            raise BillingError(f"the full method needs the grid company (one of: {known})")
        grid = rates.grid(site.grid_company)
    calendar = interval_calendar(
        start, end, rates, site, prices=prices, grid=grid, markup_nok_per_kwh=markup_nok_per_kwh
    )

    if method == "flat":
        result = methods.flat(energy, calendar, price_nok_per_kwh)
    elif method == "spot":
        result = methods.spot(energy, calendar)
    else:
        meter = site_hourly_kwh
        if meter is None and han is not None and han.height:
            meter = han_hourly(han, start, end, site.timezone)
        if meter is None:
            notes.append(
                "No AMS meter data for the whole month: the capacity step is set by the chargers'"
                " own load, and the whole capacity charge is shared between the users."
            )
        result = methods.settle_rounding(
            methods.full(energy, calendar, grid, site_hourly_kwh=meter), calendar
        )
        notes.extend(_customer_notes(rates, site, calendar))
    if (now or dt.datetime.now(dt.UTC)) < end:
        notes.append(
            "The month is not over: amounts, and the capacity step above all, are estimates."
        )
    if rates.vat_exempt(site):
        notes.append(f"VAT exempt: household electricity in {site.county}.")
    elif site.customer_type == "business" and rates.in_vat_north(site):
        notes.append(f"VAT due: the exemption in {site.county} is for household use only.")

    reconciliation = None
    if invoices is not None:
        vat = calendar.group_by("month").agg(pl.col("vat_bp").first())
        reconciliation = reconcile(
            result,
            invoices,
            policy=residual,
            vat_rates={m: bp / BASIS_POINTS for m, bp in vat.iter_rows()},
        )
        result = reconciliation.split

    return Bill(
        installation_id=installation.get("installation_id"),
        installation_name=installation.get("name"),
        month=month,
        method=method,
        site=site,
        rates=rates,
        users=party_names(sessions, result.lines["user_id"]),
        split=result,
        hourly=_hourly(energy, calendar, method, price_nok_per_kwh),
        reconciliation=reconciliation,
        notes=notes,
        parameters={
            "price_nok_per_kwh": price_nok_per_kwh,
            "markup_nok_per_kwh": markup_nok_per_kwh,
            "residual": residual if invoices is not None else None,
            "customer_type": site.customer_type,
            "dwellings": site.dwellings,
            "group_by": group_by,
        },
        sessions=session_list(sessions, details, start, end),
        group_by=group_by,
    )


def _customer_notes(rates: RateTables, site: Site, calendar: pl.DataFrame) -> list[str]:
    """What the customer type changed on this bill, in words."""
    rules = rates.customer(site.customer_type)
    notes = []
    if not rules.stromstotte:
        notes.append(f"No strømstøtte: a {site.customer_type} metering point is not eligible.")
    elif calendar.filter(
        pl.col("subsidy_nok_per_kwh").is_null() & pl.col("norgespris_nok_per_kwh").is_null()
    ).height:
        notes.append(
            "No strømstøtte or Norgespris rule covers part of the month (hourly support began 2023-09-01)."
        )
    if rules.cap_per_dwelling and site.dwellings == 1:
        notes.append(
            "A co-op's common meter counted as one dwelling: give the number of dwellings"
            " (--dwellings) so the strømstøtte cap counts them all."
        )
    elif rules.cap_per_dwelling:
        notes.append(
            f"Strømstøtte cap: {site.dwellings} dwellings × the cap per dwelling, shared with the"
            " co-op's other common use (in time order)."
        )
    rule = rates.elavgift_rule(site)
    if rule == "exempt" and rates.in_tiltakssone(site):
        notes.append("No elavgift: household use in the tiltakssone (Finnmark, Nord-Troms).")
    elif rule == "reduced":
        notes.append("Elavgift at the reduced rate: business in the tiltakssone.")
    if rules.enova == "per_year":
        notes.append("Enova fee: a yearly sum per metering point, carried by the common meter.")
    return notes


def set_installation_settings(
    con: duckdb.DuckDBPyConnection,
    installation_id: str,
    **settings: str | bool | None,
) -> None:
    """Record an installation's billing settings (owner facts no source reports).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store.
    installation_id : str
    **settings
        Any of ``county``, ``municipality``, ``grid_company``, ``customer_type`` (str),
        ``norgespris`` (bool) and ``dwellings`` (int); None clears a setting.
    """
    unknown = set(settings) - set(_SITE_COLUMNS)
    if unknown:
        raise BillingError(f"unknown installation settings {sorted(unknown)}")
    if settings.get("customer_type") not in (None, *CUSTOMER_TYPES):
        raise BillingError(f"customer type must be one of {', '.join(CUSTOMER_TYPES)}")
    found = con.execute(
        "SELECT count(*) FROM installations WHERE installation_id = ?", [installation_id]
    ).fetchall()[0][0]
    if not found:
        raise BillingError(f"no installation {installation_id!r} in the store")
    for column, value in settings.items():
        # Column names come from the fixed list above; values are parameters.
        con.execute(
            f"UPDATE installations SET {column} = ? WHERE installation_id = ?",  # noqa: S608
            [value, installation_id],
        ).fetchall()
