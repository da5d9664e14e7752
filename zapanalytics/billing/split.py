"""Split methods: energy per user per quarter-hour → priced statement lines per user and month.

All three are pure functions of an energy frame (``user_id, interval_start_utc, energy_kwh``,
see :mod:`zapanalytics.billing.energy`) and a rate calendar
(:func:`zapanalytics.billing.tariff.interval_calendar`):

``flat``
    One price per kWh, including VAT.
``spot``
    Each quarter's energy at that quarter's spot price (an hourly price covers its four
    quarters), plus the supplier markup, plus VAT.
``full``
    What the metering point really pays: spot + markup + grid energy charge + elavgift +
    Enova fee − strømstøtte (or ± the Norgespris settlement), plus VAT on each line, plus
    the capacity charge shared by each user's energy in the hours that set the month's step.
    The capacity share of other consumption behind the meter (the site load beyond the
    chargers) is the common meter's.

Strømstøtte and Norgespris are computed on the hourly price (the mean of the hour's
quarter prices) and applied to each quarter's energy; their monthly cap counts each user as
one dwelling, and kWh beyond it, in time order, get no support.

Money follows :mod:`zapanalytics.billing.money`: lines are summed exactly, then rounded
once to øre with VAT per line, so every total is the sum of its lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl

from zapanalytics.billing.energy import quarter_index
from zapanalytics.billing.money import ore_expr, split_gross_ore, vat_ore_expr
from zapanalytics.billing.rates import GridTariff
from zapanalytics.billing.tariff import capacity_charges, capacity_peaks

METHODS = ("flat", "spot", "full")

#: Statement line codes, their labels and which invoice they reconcile against.
LINES: dict[str, tuple[str, str]] = {
    "flat_energy": ("Energy at the flat price", "total"),
    "spot": ("Spot energy", "supplier"),
    "markup": ("Supplier markup", "supplier"),
    "grid_energy": ("Grid energy charge", "grid"),
    "elavgift": ("Electricity tax (elavgift)", "grid"),
    "enova": ("Enova fee", "grid"),
    "stromstotte": ("Strømstøtte (subsidy)", "grid"),
    "norgespris": ("Norgespris settlement", "grid"),
    "capacity": ("Capacity charge (share of the peak hours)", "grid"),
    "residual": ("Reconciliation residual", "total"),
}
LINE_ORDER = {code: i for i, code in enumerate(LINES)}

#: Schema of the raw (unrounded) lines the methods build before rounding.
_RAW_SCHEMA = {
    "month": pl.String,
    "user_id": pl.String,
    "line": pl.String,
    "quantity_kwh": pl.Float64,
    "amount_ex_vat_nok": pl.Float64,
}


class MissingPricesError(ValueError):
    """Energy fell in quarter-hours that have no spot price."""


@dataclasses.dataclass
class Split:
    """The result of a split method.

    Attributes
    ----------
    method : str
    lines : polars.DataFrame
        Per user, month and line: ``month, user_id, line, label, invoice, quantity_kwh,
        amount_ex_vat_ore, vat_ore, amount_ore`` (integers, øre).
    common : polars.DataFrame
        Lines borne by the common meter (same columns, ``user_id`` null): the capacity
        charge's share of the hours that set the step which the chargers did not cause.
    peaks : polars.DataFrame
        ``month, rank, day, hour_start, energy_kwh`` (site), for ``full``.
    capacity : polars.DataFrame
        ``month, peak_kw, step, step_from_kw, capacity_nok``, for ``full``.
    peak_energy : polars.DataFrame
        ``month, user_id, hour_start, energy_kwh``: each user's energy in the peak hours.
    """

    method: str
    lines: pl.DataFrame
    common: pl.DataFrame
    peaks: pl.DataFrame = dataclasses.field(default_factory=pl.DataFrame)
    capacity: pl.DataFrame = dataclasses.field(default_factory=pl.DataFrame)
    peak_energy: pl.DataFrame = dataclasses.field(default_factory=pl.DataFrame)

    def per_user(self) -> pl.DataFrame:
        """Totals per month and user: ``energy_kwh`` and the øre columns."""
        energy_lines = ("flat_energy", "spot")
        return (
            self.lines.group_by("month", "user_id")
            .agg(
                pl.col("quantity_kwh")
                .filter(pl.col("line").is_in(energy_lines))
                .sum()
                .alias("energy_kwh"),
                pl.col("amount_ex_vat_ore").sum(),
                pl.col("vat_ore").sum(),
                pl.col("amount_ore").sum(),
            )
            .sort("month", "user_id", nulls_last=True)
        )


def _month_vat(calendar: pl.DataFrame) -> pl.DataFrame:
    """VAT per month; a month with two VAT rates is refused (VAT is applied per line)."""
    vat = calendar.group_by("month").agg(
        pl.col("vat_bp").drop_nulls().first(),
        pl.col("vat_bp").drop_nulls().n_unique().alias("rates"),
    )
    if vat.filter(pl.col("rates") > 1).height:
        raise ValueError("VAT changes inside a billing month; bill the two parts separately")
    missing = vat.filter(pl.col("vat_bp").is_null())["month"].to_list()
    if missing:
        raise ValueError(f"no VAT rate for {', '.join(missing)}")
    return vat.select("month", "vat_bp")


def round_lines(raw: pl.DataFrame, calendar: pl.DataFrame) -> pl.DataFrame:
    """Round raw lines to øre and add VAT per line (rules in :mod:`~zapanalytics.billing.money`)."""
    labels = pl.DataFrame(
        {
            "line": list(LINES),
            "label": [label for label, _ in LINES.values()],
            "invoice": [invoice for _, invoice in LINES.values()],
        }
    )
    rounded = (
        raw.join(_month_vat(calendar), on="month", how="left")
        .with_columns(ore_expr(pl.col("amount_ex_vat_nok")).alias("amount_ex_vat_ore"))
        .with_columns(vat_ore_expr(pl.col("amount_ex_vat_ore"), pl.col("vat_bp")).alias("vat_ore"))
        .with_columns((pl.col("amount_ex_vat_ore") + pl.col("vat_ore")).alias("amount_ore"))
        .join(labels, on="line", how="left")
    )
    return ordered_lines(rounded)


def ordered_lines(lines: pl.DataFrame) -> pl.DataFrame:
    return (
        lines.with_columns(pl.col("line").replace_strict(LINE_ORDER, default=99).alias("_order"))
        .sort("month", "user_id", "_order", nulls_last=True)
        .select(
            "month",
            "user_id",
            "line",
            "label",
            "invoice",
            "quantity_kwh",
            "amount_ex_vat_ore",
            "vat_ore",
            "amount_ore",
        )
    )


def _empty_lines() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "month": pl.String,
            "user_id": pl.String,
            "line": pl.String,
            "label": pl.String,
            "invoice": pl.String,
            "quantity_kwh": pl.Float64,
            "amount_ex_vat_ore": pl.Int64,
            "vat_ore": pl.Int64,
            "amount_ore": pl.Int64,
        }
    )


def _joined(energy: pl.DataFrame, calendar: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Energy rows with the calendar columns of their quarter.

    The calendar is a gap-free quarter-hour grid, so each row's calendar row is found by
    arithmetic on the quarter index (a gather), not by a join. The month becomes an Enum so
    the later group-by runs on small integers.
    """
    if calendar.height == 0:
        raise ValueError("the rate calendar is empty")
    first = calendar.select(quarter_index(pl.col("interval_start_utc")).first()).item()
    offset = energy.select(quarter_index(pl.col("interval_start_utc")) - first).to_series()
    outside = ((offset < 0) | (offset >= calendar.height)).sum()
    if outside:
        raise ValueError(f"{outside} energy rows fall outside the rate calendar's window")
    months = pl.Enum(calendar["month"].unique().sort())
    picked = calendar.select(pl.col("month").cast(months), *columns)[offset]
    users = energy["user_id"]
    if not isinstance(users.dtype, pl.Enum):
        users = users.cast(pl.String).cast(
            pl.Enum(users.cast(pl.String).drop_nulls().unique().sort())
        )
    return pl.concat(
        [energy.select(users.alias("user_id"), "interval_start_utc", "energy_kwh"), picked],
        how="horizontal",
    )


def _check_prices(joined: pl.DataFrame) -> None:
    unpriced = joined.filter(pl.col("spot_nok_per_kwh").is_null() & (pl.col("energy_kwh") != 0))
    if unpriced.height:
        first = unpriced["interval_start_utc"].min()
        raise MissingPricesError(
            f"no spot price for {unpriced.height} quarter-hours with energy "
            f"(first at {first:%Y-%m-%d %H:%M} UTC); ingest the prices of the price area"
        )


def _per_month_user(joined: pl.DataFrame, *terms: pl.Expr) -> pl.DataFrame:
    """Sums per (month, user) of each named row-wise expression, keys as plain strings.

    Month and user are Enums, so each (month, user) pair is a small integer; every sum is
    then one weighted bincount over the rows instead of a hash group-by. Nulls add nothing.
    """
    month, user = joined["month"], joined["user_id"]
    month_names, user_names = month.dtype.categories, user.dtype.categories
    width = user_names.len() + 1  # the last code is the null user
    key = (
        month.to_physical().cast(pl.Int64) * width
        + user.to_physical().cast(pl.Int64).fill_null(width - 1)
    ).to_numpy()
    size = max(month_names.len() * width, 1)
    present = np.flatnonzero(np.bincount(key, minlength=size))
    values = joined.select([t.fill_null(0.0).cast(pl.Float64) for t in terms])
    sums = {
        name: np.bincount(key, weights=values[name].to_numpy(), minlength=size)[present]
        for name in values.columns
    }
    months, users = month_names.to_list(), user_names.to_list()
    return pl.DataFrame(
        {
            "month": [months[k // width] for k in present],
            "user_id": [users[k % width] if k % width < len(users) else None for k in present],
            **sums,
        },
        schema_overrides={"month": pl.String, "user_id": pl.String},
    )


def flat(energy: pl.DataFrame, calendar: pl.DataFrame, price_nok_per_kwh: float) -> Split:
    """Every kWh at one price including VAT.

    Parameters
    ----------
    energy : polars.DataFrame
        ``user_id, interval_start_utc, energy_kwh`` [kWh]; repeated (user, quarter) rows add.
    calendar : polars.DataFrame
        From :func:`~zapanalytics.billing.tariff.interval_calendar` (months and VAT).
    price_nok_per_kwh : float
        Price including VAT [NOK/kWh].

    Returns
    -------
    Split
        One ``flat_energy`` line per user and month: the total ``energy × price`` is rounded
        to øre, then split into amount excl. VAT and VAT.
    """
    if not price_nok_per_kwh >= 0:
        raise ValueError(f"the flat price must be a non-negative number, not {price_nok_per_kwh}")
    joined = _joined(energy, calendar, [])
    per_user = (
        _per_month_user(joined, pl.col("energy_kwh").alias("quantity_kwh"))
        .join(_month_vat(calendar), on="month", how="left")
        .with_columns(ore_expr(pl.col("quantity_kwh") * price_nok_per_kwh).alias("amount_ore"))
    )
    net, vat = split_gross_ore(pl.col("amount_ore"), pl.col("vat_bp"))
    lines = per_user.with_columns(
        pl.lit("flat_energy").alias("line"),
        pl.lit(LINES["flat_energy"][0]).alias("label"),
        pl.lit(LINES["flat_energy"][1]).alias("invoice"),
        net.alias("amount_ex_vat_ore"),
        vat.alias("vat_ore"),
    )
    return Split("flat", ordered_lines(lines), _empty_lines())


def _raw_energy_lines(totals: pl.DataFrame, codes: list[str]) -> pl.DataFrame:
    """Long form of per-(month, user) sums named ``<code>`` with quantity ``energy_kwh``."""
    parts = [
        totals.select(
            "month",
            "user_id",
            pl.lit(code).alias("line"),
            pl.col("energy_kwh").alias("quantity_kwh"),
            pl.col(code).alias("amount_ex_vat_nok"),
        )
        for code in codes
    ]
    return pl.concat(parts, how="vertical").cast(_RAW_SCHEMA)


def spot(energy: pl.DataFrame, calendar: pl.DataFrame) -> Split:
    """Each quarter's energy at its spot price, plus the markup, plus VAT.

    Parameters
    ----------
    energy : polars.DataFrame
        ``user_id, interval_start_utc, energy_kwh`` [kWh]; repeated (user, quarter) rows add.
    calendar : polars.DataFrame
        From :func:`~zapanalytics.billing.tariff.interval_calendar`, with prices.

    Returns
    -------
    Split
        ``spot`` and ``markup`` lines per user and month.

    Raises
    ------
    MissingPricesError
        Energy fell in a quarter-hour without a price.
    """
    joined = _joined(energy, calendar, ["spot_nok_per_kwh", "markup_nok_per_kwh"])
    _check_prices(joined)
    e = pl.col("energy_kwh")
    totals = _per_month_user(
        joined,
        e,
        (e * pl.col("spot_nok_per_kwh")).alias("spot"),
        (e * pl.col("markup_nok_per_kwh").fill_null(0.0)).alias("markup"),
    )
    raw = _raw_energy_lines(totals, ["spot", "markup"])
    return Split("spot", round_lines(raw, calendar), _empty_lines())


#: Per-kWh terms of the support schemes, applied to eligible energy.
_STROMSTOTTE = -pl.col("subsidy_nok_per_kwh").fill_null(0.0)
_NORGESPRIS = -(pl.col("hourly_spot_nok_per_kwh") - pl.col("norgespris_nok_per_kwh")).fill_null(0.0)


def _scheme_terms(eligible: pl.Expr) -> list[pl.Expr]:
    """Row-wise strømstøtte and Norgespris amounts and their eligible kWh."""
    return [
        (eligible * _STROMSTOTTE).alias("stromstotte"),
        (eligible * _NORGESPRIS).alias("norgespris"),
        pl.when(pl.col("subsidy_nok_per_kwh").is_not_null())
        .then(eligible)
        .otherwise(0.0)
        .alias("stromstotte_kwh"),
        pl.when(pl.col("norgespris_nok_per_kwh").is_not_null())
        .then(eligible)
        .otherwise(0.0)
        .alias("norgespris_kwh"),
    ]


def _capped_terms(
    joined: pl.DataFrame, totals: pl.DataFrame, calendar: pl.DataFrame
) -> pl.DataFrame:
    """Strømstøtte and Norgespris per (month, user) where the monthly cap binds.

    Only (month, user) groups above the cap need the running sum in time order; the others
    were eligible in full and keep the sums already in ``totals``.
    """
    cap = pl.min_horizontal(
        pl.col("subsidy_cap_kwh").fill_null(float("inf")),
        pl.col("norgespris_cap_kwh").fill_null(float("inf")),
    )
    caps = calendar.group_by("month").agg(cap.min().alias("cap"))
    over = (
        totals.join(caps, on="month")
        .filter(pl.col("energy_kwh") > pl.col("cap"))
        .select("month", "user_id")
    )
    if over.height == 0:
        return totals
    candidates = joined.with_columns(
        pl.col("month").cast(pl.String), pl.col("user_id").cast(pl.String)
    ).join(over, on=["month", "user_id"], how="semi")
    used_before = pl.col("energy_kwh").cum_sum().over(
        "month", "user_id", order_by="interval_start_utc"
    ) - pl.col("energy_kwh")
    capped = (
        candidates.with_columns(
            pl.min_horizontal(
                pl.col("energy_kwh"), (cap - used_before).clip(lower_bound=0.0)
            ).alias("eligible_kwh")
        )
        .group_by("month", "user_id")
        .agg(term.sum() for term in _scheme_terms(pl.col("eligible_kwh")))
    )
    return totals.update(capped, on=["month", "user_id"])


_FULL_COLUMNS = [
    "hour_index",
    "spot_nok_per_kwh",
    "hourly_spot_nok_per_kwh",
    "markup_nok_per_kwh",
    "grid_energy_nok_per_kwh",
    "elavgift_nok_per_kwh",
    "enova_nok_per_kwh",
    "subsidy_nok_per_kwh",
    "subsidy_cap_kwh",
    "norgespris_nok_per_kwh",
    "norgespris_cap_kwh",
]


def _site_hourly(
    joined: pl.DataFrame, calendar: pl.DataFrame, site_hourly_kwh: pl.DataFrame | None
) -> pl.DataFrame:
    """Energy per local hour of the metering point: given, or the chargers' sum."""
    hours = calendar.group_by("hour_index", maintain_order=True).agg(
        pl.col("month").first(), pl.col("day").first(), pl.col("hour_start").first()
    )
    if site_hourly_kwh is not None:
        return hours.join(
            site_hourly_kwh.select("hour_start", "energy_kwh"), on="hour_start", how="left"
        ).with_columns(pl.col("energy_kwh").fill_null(0.0))
    # A weighted bincount: one linear pass instead of a group-by over every energy row.
    totals = np.bincount(
        joined["hour_index"].to_numpy(),
        weights=joined["energy_kwh"].to_numpy(),
        minlength=hours.height,
    )
    return hours.with_columns(pl.Series("energy_kwh", totals[: hours.height]))


def _capacity_method(grid: GridTariff, month: str) -> str:
    year, number = (int(p) for p in month.split("-"))
    return grid.period_on(dt.date(year, number, 1)).capacity_method


def full(
    energy: pl.DataFrame,
    calendar: pl.DataFrame,
    grid: GridTariff,
    *,
    site_hourly_kwh: pl.DataFrame | None = None,
) -> Split:
    """The whole cost of the metering point, line by line, with the capacity charge shared
    by who used the peak hours.

    Parameters
    ----------
    energy : polars.DataFrame
        ``user_id, interval_start_utc, energy_kwh`` [kWh]; repeated (user, quarter) rows add.
    calendar : polars.DataFrame
        From :func:`~zapanalytics.billing.tariff.interval_calendar` with prices and ``grid``.
    grid : GridTariff
        The grid tariff (for the capacity steps and method).
    site_hourly_kwh : polars.DataFrame, optional
        ``hour_start, energy_kwh``: the metering point's energy per local hour [kWh] (e.g.
        from the AMS meter), including the chargers. Default: the chargers' own sum, so the
        whole capacity charge goes to the users.

    Returns
    -------
    Split
        Lines ``spot, markup, grid_energy, elavgift, enova, stromstotte | norgespris,
        capacity`` per user and month; ``common`` holds the common meter's capacity share.

    Raises
    ------
    MissingPricesError
        Energy fell in a quarter-hour without a price.
    """
    joined = _joined(energy, calendar, _FULL_COLUMNS)
    _check_prices(joined)
    if joined.filter(
        pl.col("grid_energy_nok_per_kwh").is_null() & (pl.col("energy_kwh") != 0)
    ).height:
        raise ValueError(f"the grid tariff {grid.key!r} has no period covering all the energy")
    e = pl.col("energy_kwh")
    totals = _per_month_user(
        joined,
        e,
        (e * pl.col("spot_nok_per_kwh")).alias("spot"),
        (e * pl.col("markup_nok_per_kwh").fill_null(0.0)).alias("markup"),
        (e * pl.col("grid_energy_nok_per_kwh")).alias("grid_energy"),
        (e * pl.col("elavgift_nok_per_kwh").fill_null(0.0)).alias("elavgift"),
        (e * pl.col("enova_nok_per_kwh").fill_null(0.0)).alias("enova"),
        *_scheme_terms(e),
    )
    totals = _capped_terms(joined, totals, calendar)
    raw = _raw_energy_lines(totals, ["spot", "markup", "grid_energy", "elavgift", "enova"])
    schemes = [
        totals.filter(pl.col(f"{code}_kwh") > 0)
        .select(
            "month",
            "user_id",
            pl.lit(code).alias("line"),
            pl.col(f"{code}_kwh").alias("quantity_kwh"),
            pl.col(code).alias("amount_ex_vat_nok"),
        )
        .cast(_RAW_SCHEMA)
        for code in ("stromstotte", "norgespris")
    ]

    site = _site_hourly(joined, calendar, site_hourly_kwh)
    months = sorted(calendar["month"].unique().to_list())
    peaks = pl.concat(
        [
            capacity_peaks(site.filter(pl.col("month") == m), _capacity_method(grid, m))
            for m in months
        ],
        how="vertical",
    )
    capacity = capacity_charges(peaks, months, grid)
    peak_hours = peaks.join(site.select("hour_start", "hour_index"), on="hour_start", how="left")
    peak_energy = (
        joined.filter(pl.col("hour_index").is_in(peak_hours["hour_index"].implode()))
        .group_by("hour_index", "user_id")
        .agg(e.sum())
        .join(peak_hours.select("month", "hour_index", "hour_start"), on="hour_index", how="left")
        .select("month", pl.col("user_id").cast(pl.String), "hour_start", "energy_kwh")
        .sort("month", "hour_start", "user_id", nulls_last=True)
    )
    site_in_peaks = peaks.group_by("month").agg(pl.col("energy_kwh").sum().alias("site_kwh"))
    shares = (
        peak_energy.group_by("month", "user_id")
        .agg(e.sum().alias("peak_kwh"))
        .join(site_in_peaks, on="month", how="left")
        .join(capacity.select("month", "capacity_nok"), on="month", how="left")
        .filter(pl.col("site_kwh") > 0)
        .select(
            "month",
            "user_id",
            pl.lit("capacity").alias("line"),
            pl.col("peak_kwh").alias("quantity_kwh"),
            (pl.col("capacity_nok") * pl.col("peak_kwh") / pl.col("site_kwh")).alias(
                "amount_ex_vat_nok"
            ),
        )
        .cast(_RAW_SCHEMA)
    )
    lines = round_lines(pl.concat([raw, *schemes, shares], how="vertical"), calendar)
    return Split(
        "full",
        lines,
        _common_capacity(lines, capacity, calendar),
        peaks=peaks,
        capacity=capacity,
        peak_energy=peak_energy,
    )


def _common_capacity(
    lines: pl.DataFrame, capacity: pl.DataFrame, calendar: pl.DataFrame
) -> pl.DataFrame:
    """The capacity charge not attributed to users, so users + common = the whole charge.

    The whole charge and its VAT are rounded once per month; the common line takes the
    difference from the users' rounded lines, so everything adds up to the charge exactly
    (its VAT may carry the users' per-line VAT rounding, at most an øre per user).
    """
    charged = (
        capacity.select("month", ore_expr(pl.col("capacity_nok")).alias("charge_ore"))
        .join(_month_vat(calendar), on="month", how="left")
        .with_columns(vat_ore_expr(pl.col("charge_ore"), pl.col("vat_bp")).alias("charge_vat_ore"))
    )
    users = (
        lines.filter(pl.col("line") == "capacity")
        .group_by("month")
        .agg(
            pl.col("amount_ex_vat_ore").sum().alias("users_ore"),
            pl.col("vat_ore").sum().alias("users_vat_ore"),
        )
    )
    common = (
        charged.join(users, on="month", how="left")
        .with_columns(pl.col("users_ore").fill_null(0), pl.col("users_vat_ore").fill_null(0))
        .select(
            "month",
            pl.lit(None, dtype=pl.String).alias("user_id"),
            pl.lit("capacity").alias("line"),
            pl.lit("Capacity charge (rest of the peak hours: common meter)").alias("label"),
            pl.lit("grid").alias("invoice"),
            pl.lit(0.0).alias("quantity_kwh"),
            (pl.col("charge_ore") - pl.col("users_ore")).alias("amount_ex_vat_ore"),
            (pl.col("charge_vat_ore") - pl.col("users_vat_ore")).alias("vat_ore"),
        )
        .with_columns((pl.col("amount_ex_vat_ore") + pl.col("vat_ore")).alias("amount_ore"))
    )
    return common.sort("month")
