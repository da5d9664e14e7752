"""The rate calendar (every rate per quarter-hour) and the capacity charge (kapasitetsledd).

:func:`interval_calendar` turns the dated rate tables into one row per quarter-hour of the
billing window: local hour, day and month, the spot price and its hourly mean, the grid
energy charge for that local time (day/night, weekend, Norwegian holidays), elavgift, Enova
fee, strømstøtte or Norgespris terms, supplier markup and VAT. The split methods then only
join energy onto it.

:func:`capacity_peaks` finds the hours that set a month's capacity step, and
:func:`capacity_charges` prices the step.
"""

from __future__ import annotations

import datetime as dt

import holidays
import polars as pl

from zapanalytics.billing.energy import QUARTER, with_local_bins
from zapanalytics.billing.money import rate_basis_points
from zapanalytics.billing.rates import Dated, GridRule, GridTariff, RateTables, Site

#: Columns of a prices frame (the ``prices`` table of the store).
PRICE_COLUMNS = ("start_utc", "end_utc", "spot_nok_per_kwh")


def quarter_prices(prices: pl.DataFrame) -> pl.DataFrame:
    """Spot price per quarter-hour from 15-minute or hourly price rows.

    An hourly price applies to each of its four quarters; where a 15-minute row and a longer
    row cover the same quarter, the 15-minute row wins.

    Returns
    -------
    polars.DataFrame
        ``interval_start_utc, spot_nok_per_kwh`` [NOK/kWh excl. VAT].
    """
    if prices.height == 0:
        return pl.DataFrame(
            schema={"interval_start_utc": pl.Datetime("us", "UTC"), "spot_nok_per_kwh": pl.Float64}
        )
    return (
        prices.lazy()
        .with_columns(
            pl.col("start_utc").dt.cast_time_unit("us"),
            pl.col("end_utc").dt.cast_time_unit("us"),
        )
        .with_columns(
            pl.datetime_ranges("start_utc", pl.col("end_utc") - QUARTER, "15m").alias(
                "interval_start_utc"
            ),
            (pl.col("end_utc") - pl.col("start_utc")).alias("length"),
        )
        .explode("interval_start_utc")
        .sort("interval_start_utc", "length")
        .unique("interval_start_utc", keep="first")
        .select("interval_start_utc", "spot_nok_per_kwh")
        .sort("interval_start_utc")
        .collect()
    )


def _dated_expr(entries: tuple[Dated, ...], key: str, day: pl.Expr) -> pl.Expr:
    """The value of ``key`` of the entry valid on each local ``day`` (null where none)."""
    expr = None
    for entry in entries:
        valid = day >= entry.valid_from
        if entry.valid_to is not None:
            valid = valid & (day < entry.valid_to)
        value = pl.lit(float(entry[key]), dtype=pl.Float64)
        expr = pl.when(valid).then(value) if expr is None else expr.when(valid).then(value)
    return pl.lit(None, dtype=pl.Float64) if expr is None else expr.otherwise(None)


def _rule_mask(rule: GridRule) -> pl.Expr:
    weekday, holiday, hour = pl.col("_weekday"), pl.col("_holiday"), pl.col("_hour")
    day_masks = {
        "all": pl.lit(True),
        "working": (weekday <= 5) & ~holiday,
        "free": (weekday >= 6) | holiday,
        "weekday": weekday <= 5,
        "weekend": weekday >= 6,
        "holiday": holiday,
    }
    mask = pl.lit(False)
    for token in rule.days:
        mask = mask | (day_masks[token] if token in day_masks else weekday == int(token))
    if rule.hours is not None:
        start, end = rule.hours
        mask = mask & (
            ((hour >= start) & (hour < end)) if start < end else ((hour >= start) | (hour < end))
        )
    if rule.months:
        mask = mask & pl.col("_month_number").is_in(list(rule.months))
    return mask


def _grid_energy_expr(grid: GridTariff) -> pl.Expr:
    """Energy charge per quarter: the first matching rule of the valid period, else its base."""
    day = pl.col("day")
    expr = None
    for period in grid.periods:
        in_period = day >= period.valid_from
        if period.valid_to is not None:
            in_period = in_period & (day < period.valid_to)
        branches = [
            (in_period & _rule_mask(rule), rule.energy_nok_per_kwh) for rule in period.rules
        ]
        branches.append((in_period, period.energy_nok_per_kwh))
        for condition, price in branches:
            value = pl.lit(price, dtype=pl.Float64)
            expr = (
                pl.when(condition).then(value) if expr is None else expr.when(condition).then(value)
            )
    return expr.otherwise(None)


def interval_calendar(
    start_utc: dt.datetime,
    end_utc: dt.datetime,
    rates: RateTables,
    site: Site,
    *,
    prices: pl.DataFrame | None = None,
    grid: GridTariff | None = None,
    markup_nok_per_kwh: float | None = None,
) -> pl.DataFrame:
    """Every rate for every quarter-hour in ``[start_utc, end_utc)``.

    Parameters
    ----------
    start_utc, end_utc : datetime
        Window, tz-aware; both on quarter-hour boundaries.
    rates : RateTables
        Dated rates (:func:`zapanalytics.billing.rates.load_rates`).
    site : Site
        Time zone, location and customer type (VAT and elavgift rules, strømstøtte
        eligibility and cap, Enova fee form, Norgespris opt-in).
    prices : polars.DataFrame, optional
        Price rows ``start_utc, end_utc, spot_nok_per_kwh`` of the site's price area.
    grid : GridTariff, optional
        Grid tariff for the energy charge; without it the column is null.
    markup_nok_per_kwh : float, optional
        Supplier markup [NOK/kWh excl. VAT]; default: the dated ``supplier`` rate.

    Returns
    -------
    polars.DataFrame
        ``interval_start_utc, hour_start, day, month, hour_index, spot_nok_per_kwh,
        hourly_spot_nok_per_kwh, markup_nok_per_kwh, grid_energy_nok_per_kwh,
        elavgift_nok_per_kwh, enova_nok_per_kwh, enova_nok_per_year, subsidy_nok_per_kwh, subsidy_cap_kwh,
        norgespris_nok_per_kwh, norgespris_cap_kwh, vat_bp``. Strømstøtte is
        ``max(hourly price − threshold, 0) × coverage`` [NOK/kWh excl. VAT], null before hourly
        support began; the Norgespris terms are null unless the site opted in and the date is
        inside the scheme, and then strømstøtte is null; strømstøtte is null for a customer
        type without it (business). The caps are the metering point's kWh per month (per
        dwelling × dwellings for a co-op). ``enova_nok_per_kwh`` is 0 where the fee is a
        yearly sum. ``vat_bp`` is VAT in basis points (2500 = 25 %, 0 for household use in
        the exempt counties).
    """
    if start_utc.tzinfo is None or end_utc.tzinfo is None:
        raise ValueError("start_utc and end_utc must be tz-aware")
    starts = pl.datetime_range(
        start_utc.astimezone(dt.UTC),
        end_utc.astimezone(dt.UTC) - QUARTER,
        "15m",
        time_unit="us",
        time_zone="UTC",
        eager=True,
    ).alias("interval_start_utc")
    frame = with_local_bins(pl.DataFrame(starts), site.timezone).collect()
    # Hours are contiguous runs of quarters: number them for cheap per-hour sums.
    frame = frame.with_columns(pl.col("hour_start").rle_id().cast(pl.Int64).alias("hour_index"))
    years = sorted({frame["day"].min().year, frame["day"].max().year}) if frame.height else []
    free_days = (
        sorted(holidays.country_holidays("NO", years=range(years[0], years[-1] + 1)))
        if years
        else []
    )
    day = pl.col("day")
    local = pl.col("hour_start")
    frame = frame.with_columns(
        local.dt.hour().alias("_hour"),
        local.dt.weekday().alias("_weekday"),
        local.dt.month().alias("_month_number"),
        day.is_in(free_days).alias("_holiday"),
    )

    if prices is not None and prices.height:
        spot = quarter_prices(prices)
        frame = frame.join(spot, on="interval_start_utc", how="left")
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("spot_nok_per_kwh"))
    frame = frame.with_columns(
        pl.col("spot_nok_per_kwh").mean().over("hour_start").alias("hourly_spot_nok_per_kwh")
    )

    vat_entries = rates.dated("vat")
    vat_exempt = rates.vat_exempt(site)
    vat_points = {e.valid_from: rate_basis_points(e["rate"]) for e in vat_entries}
    vat_expr = _dated_expr(
        tuple(
            Dated(e.valid_from, e.valid_to, {"bp": float(vat_points[e.valid_from])})
            for e in vat_entries
        ),
        "bp",
        day,
    )
    markup = (
        pl.lit(float(markup_nok_per_kwh), dtype=pl.Float64)
        if markup_nok_per_kwh is not None
        else _dated_expr(rates.dated("supplier"), "markup_nok_per_kwh", day)
    )
    rules = rates.customer(site.customer_type)
    elavgift = {
        "exempt": pl.lit(0.0),
        "reduced": _dated_expr(rates.dated("elavgift_reduced"), "nok_per_kwh", day),
        "general": _dated_expr(rates.dated("elavgift"), "nok_per_kwh", day),
    }[rates.elavgift_rule(site)]
    enova = (
        _dated_expr(rates.dated("enova"), "nok_per_kwh", day)
        if rules.enova == "per_kwh"
        else pl.lit(0.0)  # a fixed sum per metering point and year: the common meter's line
    )
    # The cap covers the metering point: one dwelling, or every dwelling of a co-op.
    dwellings = float(site.dwellings if rules.cap_per_dwelling else 1)
    support = rates.dated("stromstotte") if rules.stromstotte else ()
    threshold = _dated_expr(support, "threshold_nok_per_kwh", day)
    coverage = _dated_expr(support, "coverage", day)
    support_cap = _dated_expr(support, "cap_kwh_per_dwelling_month", day) * dwellings
    if site.norgespris and rules.norgespris:
        scheme = rates.dated("norgespris")
        norgespris = _dated_expr(scheme, "price_nok_per_kwh", day)
        norgespris_cap = _dated_expr(scheme, "cap_kwh_per_dwelling_month", day) * dwellings
    else:
        norgespris = norgespris_cap = pl.lit(None, dtype=pl.Float64)

    frame = frame.with_columns(
        (pl.lit(0) if vat_exempt else vat_expr).cast(pl.Int64).alias("vat_bp"),
        markup.alias("markup_nok_per_kwh"),
        (_grid_energy_expr(grid) if grid is not None else pl.lit(None, dtype=pl.Float64)).alias(
            "grid_energy_nok_per_kwh"
        ),
        elavgift.cast(pl.Float64).alias("elavgift_nok_per_kwh"),
        enova.cast(pl.Float64).alias("enova_nok_per_kwh"),
        (
            _dated_expr(rates.dated("enova_yearly"), "nok_per_year", day)
            if rules.enova == "per_year"
            else pl.lit(None, dtype=pl.Float64)
        ).alias("enova_nok_per_year"),
        ((pl.col("hourly_spot_nok_per_kwh") - threshold).clip(lower_bound=0.0) * coverage).alias(
            "subsidy_nok_per_kwh"
        ),
        support_cap.alias("subsidy_cap_kwh"),
        norgespris.alias("norgespris_nok_per_kwh"),
        norgespris_cap.alias("norgespris_cap_kwh"),
    )
    # Norgespris replaces strømstøtte while it applies.
    on_norgespris = pl.col("norgespris_nok_per_kwh").is_not_null()
    frame = frame.with_columns(
        pl.when(on_norgespris)
        .then(None)
        .otherwise(pl.col("subsidy_nok_per_kwh"))
        .alias("subsidy_nok_per_kwh"),
        pl.when(on_norgespris)
        .then(None)
        .otherwise(pl.col("subsidy_cap_kwh"))
        .alias("subsidy_cap_kwh"),
    )
    return frame.drop("_hour", "_weekday", "_month_number", "_holiday")


def capacity_peaks(hourly_load: pl.DataFrame, method: str = "three_daily_peaks") -> pl.DataFrame:
    """The hours that set each month's capacity step.

    Parameters
    ----------
    hourly_load : polars.DataFrame
        ``month, day, hour_start, energy_kwh``: the metering point's energy per local hour
        [kWh], i.e. its mean power over the hour [kW].
    method : {"three_daily_peaks", "monthly_max"}
        ``three_daily_peaks``: the highest hour of each day, then the three highest of those
        days (three different days); ``monthly_max``: the single highest hour. Ties go to the
        earlier hour.

    Returns
    -------
    polars.DataFrame
        ``month, rank, day, hour_start, energy_kwh``, rank 1 = highest; hours without load
        are left out.
    """
    # Hours without load set no peak (a month with fewer loaded days counts the rest as 0).
    ordered = hourly_load.filter(pl.col("energy_kwh") > 0).sort(
        ["energy_kwh", "hour_start"], descending=[True, False]
    )
    if method == "three_daily_peaks":
        daily = ordered.unique(["month", "day"], keep="first", maintain_order=True)
        count = 3
    elif method == "monthly_max":
        daily, count = ordered, 1
    else:
        raise ValueError(f"unknown capacity method {method!r}")
    return (
        daily.with_columns(pl.int_range(1, pl.len() + 1).over("month").alias("rank"))
        .filter(pl.col("rank") <= count)
        .select("month", pl.col("rank").cast(pl.Int64), "day", "hour_start", "energy_kwh")
        .sort("month", "rank")
    )


def capacity_charges(peaks: pl.DataFrame, months: list[str], grid: GridTariff) -> pl.DataFrame:
    """The capacity step and monthly charge for each of ``months`` (``YYYY-MM``).

    The step is set by the mean of the peak hours (a month with fewer than the method's
    number of days counts the missing ones as zero). The charge is the step's yearly price
    divided by 12, from the tariff period valid on the month's first day.

    Returns
    -------
    polars.DataFrame
        ``month, peak_kw, step, step_from_kw, capacity_nok`` [NOK excl. VAT].
    """
    rows = []
    for month in months:
        year, number = (int(p) for p in month.split("-"))
        period = grid.period_on(dt.date(year, number, 1))
        needed = 3 if period.capacity_method == "three_daily_peaks" else 1
        these = peaks.filter(pl.col("month") == month)["energy_kwh"].to_list()[:needed]
        peak_kw = sum(these) / needed
        step = period.capacity_step(peak_kw)
        rows.append(
            {
                "month": month,
                "peak_kw": peak_kw,
                "step": step + 1,
                "step_from_kw": period.capacity_steps_kw[step],
                "capacity_nok": period.capacity_nok_per_year[step] / 12.0,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "month": pl.String,
            "peak_kw": pl.Float64,
            "step": pl.Int64,
            "step_from_kw": pl.Float64,
            "capacity_nok": pl.Float64,
        },
    )
