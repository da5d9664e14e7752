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
quarter prices) and applied to each quarter's energy. Their monthly cap belongs to the
metering point (one dwelling; for a co-op's common meter, every dwelling), and the
metering point's whole load uses it up in time order — the chargers and, when the AMS meter
is known, the other common use. In the quarter that crosses the cap every user gets the
same eligible fraction of their energy; later kWh get no support.

Every line is a sum of energy × a per-quarter rate per user and month, computed on the
users × quarters energy matrix (:mod:`zapanalytics.billing.matrix`). Money follows
:mod:`zapanalytics.billing.money`: lines are summed in floating point, then rounded once to
øre with VAT per line, so every total is the sum of its lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl

from zapanalytics.billing.matrix import EnergyMatrix, vector
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
    "enova_yearly": ("Enova fee (per metering point and year)", "grid"),
    "rounding": ("Rounding residue (per-line VAT rounding of the users' shares)", "grid"),
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


#: Columns of a statement-line frame (amounts in whole øre).
LINE_SCHEMA = {
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


def _empty_lines() -> pl.DataFrame:
    return pl.DataFrame(schema=LINE_SCHEMA)


def _check_prices(matrix: EnergyMatrix, spot_price: np.ndarray, calendar: pl.DataFrame) -> None:
    unpriced = np.flatnonzero(np.isnan(spot_price) & (matrix.quarter_totals != 0))
    if unpriced.size:
        first = calendar["interval_start_utc"][int(unpriced[0])]
        raise MissingPricesError(
            f"no spot price for {unpriced.size} quarter-hours with energy "
            f"(first at {first:%Y-%m-%d %H:%M} UTC); ingest the prices of the price area"
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
    matrix = EnergyMatrix.build(energy, calendar)
    quantity = matrix.per_month()  # energy is never negative: > 0 means the user charged
    per_user = (
        matrix.long(quantity > 0, quantity_kwh=quantity)
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


def _raw_lines(
    matrix: EnergyMatrix, active: np.ndarray, quantity: np.ndarray, amounts: dict[str, np.ndarray]
) -> pl.DataFrame:
    """Long form: one raw line per active (user, month) and line code."""
    parts = [
        matrix.long(active, quantity_kwh=quantity, amount_ex_vat_nok=amount).with_columns(
            pl.lit(code).alias("line")
        )
        for code, amount in amounts.items()
    ]
    return pl.concat(parts, how="vertical").select(list(_RAW_SCHEMA)).cast(_RAW_SCHEMA)


def _supplier_rates(matrix: EnergyMatrix, calendar: pl.DataFrame) -> dict[str, np.ndarray]:
    spot_price = vector(calendar, "spot_nok_per_kwh")
    _check_prices(matrix, spot_price, calendar)
    return {
        "spot": np.nan_to_num(spot_price),
        "markup": np.nan_to_num(vector(calendar, "markup_nok_per_kwh")),
    }


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
    matrix = EnergyMatrix.build(energy, calendar)
    sums = matrix.per_month_many({"energy": None, **_supplier_rates(matrix, calendar)})
    quantity = sums.pop("energy")
    raw = _raw_lines(matrix, quantity > 0, quantity, sums)
    return Split("spot", round_lines(raw, calendar), _empty_lines())


def _scheme_rates(calendar: pl.DataFrame) -> dict[str, np.ndarray]:
    """Per-quarter terms of strømstøtte and Norgespris, and flags of where each applies."""
    support = vector(calendar, "subsidy_nok_per_kwh")
    fixed = vector(calendar, "norgespris_nok_per_kwh")
    settlement = vector(calendar, "hourly_spot_nok_per_kwh") - fixed
    return {
        "stromstotte_kwh": (~np.isnan(support)).astype(float),
        "stromstotte": -np.nan_to_num(support),
        "norgespris_kwh": (~np.isnan(fixed)).astype(float),
        "norgespris": -np.nan_to_num(settlement),
    }


def _site_quarters(
    matrix: EnergyMatrix, calendar: pl.DataFrame, site_hourly_kwh: pl.DataFrame | None
) -> np.ndarray:
    """The metering point's energy per calendar quarter [kWh]: the AMS meter's hour spread
    evenly over its quarters (never below the chargers' own sum), else the chargers' sum."""
    if site_hourly_kwh is None:
        return matrix.quarter_totals
    hourly = _site_hourly(matrix, calendar, site_hourly_kwh)["energy_kwh"].to_numpy()
    hour_of_quarter = calendar["hour_index"].to_numpy()
    quarters_in_hour = np.bincount(hour_of_quarter, minlength=hourly.size)
    spread = hourly[hour_of_quarter] / quarters_in_hour[hour_of_quarter]
    return np.maximum(spread, matrix.quarter_totals)


def _apply_cap(
    matrix: EnergyMatrix,
    calendar: pl.DataFrame,
    site_quarter_kwh: np.ndarray,
    sums: dict[str, np.ndarray],
    rates: dict[str, np.ndarray],
) -> None:
    """Redo the scheme sums of the months whose metering point went over its cap, in place.

    The sums were made as if every kWh were eligible. In a month where the metering point's
    load (``site_quarter_kwh``) exceeds the cap (strømstøtte's or Norgespris' kWh for the
    metering point), the first kWh up to the cap, in time order, are eligible: each quarter
    is eligible by the fraction of its load still under the cap, for every user alike.
    """
    cap = np.fmin(vector(calendar, "subsidy_cap_kwh"), vector(calendar, "norgespris_cap_kwh"))
    cap = np.where(np.isnan(cap), np.inf, cap)
    for month in range(len(matrix.months)):
        columns = matrix.month_slice(month)
        month_cap = float(np.min(cap[columns], initial=np.inf))
        load = site_quarter_kwh[columns]
        if not np.isfinite(month_cap) or load.sum() <= month_cap:
            continue
        before = np.cumsum(load) - load
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.where(load > 0, np.clip((month_cap - before) / load, 0.0, 1.0), 0.0)
        eligible = matrix.energy[:, columns] * fraction[None, :]
        for name, rate in rates.items():
            sums[name][:, month] = eligible @ rate[columns]


def _site_hourly(
    matrix: EnergyMatrix, calendar: pl.DataFrame, site_hourly_kwh: pl.DataFrame | None
) -> pl.DataFrame:
    """Energy per local hour of the metering point: given, or the chargers' sum."""
    hours = calendar.group_by("hour_index", maintain_order=True).agg(
        pl.col("month").first(), pl.col("day").first(), pl.col("hour_start").first()
    )
    if site_hourly_kwh is not None:
        return hours.join(
            site_hourly_kwh.select("hour_start", "energy_kwh"), on="hour_start", how="left"
        ).with_columns(pl.col("energy_kwh").fill_null(0.0))
    totals = np.bincount(
        calendar["hour_index"].to_numpy(), weights=matrix.quarter_totals, minlength=hours.height
    )
    return hours.with_columns(pl.Series("energy_kwh", totals[: hours.height]))


def _capacity_method(grid: GridTariff, month: str) -> str:
    year, number = (int(p) for p in month.split("-"))
    return grid.period_on(dt.date(year, number, 1)).capacity_method


def _capacity_shares(
    matrix: EnergyMatrix,
    calendar: pl.DataFrame,
    grid: GridTariff,
    site_hourly_kwh: pl.DataFrame | None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Each user's share of each month's capacity charge: charge × (their kWh in the hours
    that set the step) / (the metering point's kWh in those hours).

    Returns the raw ``capacity`` lines, the peak hours, the charge per month and each user's
    energy per peak hour.
    """
    site = _site_hourly(matrix, calendar, site_hourly_kwh)
    peaks = pl.concat(
        [
            capacity_peaks(site.filter(pl.col("month") == m), _capacity_method(grid, m))
            for m in matrix.months
        ],
        how="vertical",
    )
    capacity = capacity_charges(peaks, matrix.months, grid)
    peak_hours = peaks.join(site.select("hour_start", "hour_index"), on="hour_start", how="left")
    hour_of_quarter = calendar["hour_index"].to_numpy()
    peak_rows = []
    month_index = {m: i for i, m in enumerate(matrix.months)}
    in_peak_kwh = np.zeros((len(matrix.users), len(matrix.months)))
    for peak in peak_hours.iter_rows(named=True):
        columns = hour_of_quarter == peak["hour_index"]
        drawn = matrix.energy[:, columns].sum(axis=1)
        in_peak_kwh[:, month_index[peak["month"]]] += drawn
        peak_rows.extend(
            {
                "month": peak["month"],
                "user_id": matrix.users[r],
                "hour_start": peak["hour_start"],
                "energy_kwh": float(drawn[r]),
            }
            for r in np.flatnonzero(drawn)
        )
    peak_energy = pl.DataFrame(
        peak_rows,
        schema={
            "month": pl.String,
            "user_id": pl.String,
            "hour_start": calendar.schema["hour_start"],
            "energy_kwh": pl.Float64,
        },
    )
    site_kwh = peaks.group_by("month").agg(pl.col("energy_kwh").sum())
    site_in_peaks = dict(site_kwh.iter_rows())
    charge = dict(capacity.select("month", "capacity_nok").iter_rows())
    share = np.array(
        [charge[m] / site_in_peaks[m] if site_in_peaks.get(m) else 0.0 for m in matrix.months]
    )
    raw = _raw_lines(
        matrix, in_peak_kwh > 0, in_peak_kwh, {"capacity": in_peak_kwh * share[None, :]}
    )
    return raw, peaks, capacity, peak_energy.sort("month", "hour_start", "user_id", nulls_last=True)


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
    matrix = EnergyMatrix.build(energy, calendar)
    grid_price = vector(calendar, "grid_energy_nok_per_kwh")
    if np.any(np.isnan(grid_price) & (matrix.quarter_totals != 0)):
        raise ValueError(f"the grid tariff {grid.key!r} has no period covering all the energy")
    schemes = _scheme_rates(calendar)
    rates = (
        _supplier_rates(matrix, calendar)
        | {
            "grid_energy": np.nan_to_num(grid_price),
            "elavgift": np.nan_to_num(vector(calendar, "elavgift_nok_per_kwh")),
            "enova": np.nan_to_num(vector(calendar, "enova_nok_per_kwh")),
        }
        | schemes
    )
    # One pass over the energy matrix for every line; the monthly cap is fixed up after.
    sums = matrix.per_month_many({"energy": None, **rates})
    quantity = sums.pop("energy")
    _apply_cap(matrix, calendar, _site_quarters(matrix, calendar, site_hourly_kwh), sums, schemes)
    active = quantity > 0  # energy is never negative
    energy_lines = ("spot", "markup", "grid_energy", "elavgift", "enova")
    if (
        "enova_nok_per_year" in calendar.columns
        and calendar["enova_nok_per_year"].null_count() == 0
    ):
        # A yearly Enova fee (non-households) is the common meter's line, not a kWh line.
        energy_lines = energy_lines[:-1]
    parts = [_raw_lines(matrix, active, quantity, {code: sums[code] for code in energy_lines})]
    for code in ("stromstotte", "norgespris"):
        eligible_kwh = sums[f"{code}_kwh"]
        parts.append(
            _raw_lines(matrix, active & (eligible_kwh > 0), eligible_kwh, {code: sums[code]})
        )
    capacity_raw, peaks, capacity, peak_energy = _capacity_shares(
        matrix, calendar, grid, site_hourly_kwh
    )
    parts.append(capacity_raw)
    lines = round_lines(pl.concat(parts, how="vertical"), calendar)
    common = pl.concat(
        [_common_capacity(lines, capacity, calendar), _common_enova(calendar)], how="vertical"
    ).sort("month", maintain_order=True)
    return Split(
        "full",
        lines,
        common,
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
    (its VAT may carry the users' per-line VAT rounding, at most an øre per user; a
    statement moves that to a named line with :func:`settle_rounding`).
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


def settle_rounding(result: Split, calendar: pl.DataFrame) -> Split:
    """Give the common meter's capacity line the VAT that follows from its own amount, and
    put what the users' per-line VAT rounding left over on a named ``rounding`` line.

    The common line otherwise carries the users' VAT rounding in its VAT (e.g. −0.01 NOK
    VAT on a zero amount), which a board will ask about. The rounding line carries the
    residue as an amount without VAT, so users + common still equal the charge to the øre.
    """
    common = result.common
    if common.height == 0:
        return result
    vat = _month_vat(calendar)
    capacity = (
        common.filter(pl.col("line") == "capacity")
        .join(vat, on="month", how="left")
        .with_columns(vat_ore_expr(pl.col("amount_ex_vat_ore"), pl.col("vat_bp")).alias("_own"))
    )
    residue = capacity.filter(pl.col("vat_ore") != pl.col("_own")).select(
        "month",
        "user_id",
        pl.lit("rounding").alias("line"),
        pl.lit(LINES["rounding"][0]).alias("label"),
        pl.lit(LINES["rounding"][1]).alias("invoice"),
        pl.lit(0.0).alias("quantity_kwh"),
        (pl.col("vat_ore") - pl.col("_own")).cast(pl.Int64).alias("amount_ex_vat_ore"),
        pl.lit(0, dtype=pl.Int64).alias("vat_ore"),
        (pl.col("vat_ore") - pl.col("_own")).cast(pl.Int64).alias("amount_ore"),
    )
    fixed = capacity.with_columns(
        pl.col("_own").cast(pl.Int64).alias("vat_ore"),
        (pl.col("amount_ex_vat_ore") + pl.col("_own")).cast(pl.Int64).alias("amount_ore"),
    ).select(common.columns)
    others = common.filter(pl.col("line") != "capacity")
    settled = pl.concat([fixed, residue, others], how="vertical").sort("month", maintain_order=True)
    return dataclasses.replace(result, common=settled)


def _common_enova(calendar: pl.DataFrame) -> pl.DataFrame:
    """The Enova fee of a non-household metering point: its yearly sum / 12 each month."""
    if "enova_nok_per_year" not in calendar.columns:
        return pl.DataFrame(schema=LINE_SCHEMA)
    yearly = (
        calendar.group_by("month", maintain_order=True)
        .agg(pl.col("enova_nok_per_year").drop_nulls().first())
        .filter(pl.col("enova_nok_per_year").is_not_null())
        .join(_month_vat(calendar), on="month", how="left")
        .with_columns(ore_expr(pl.col("enova_nok_per_year") / 12.0).alias("amount_ex_vat_ore"))
        .with_columns(vat_ore_expr(pl.col("amount_ex_vat_ore"), pl.col("vat_bp")).alias("vat_ore"))
    )
    return yearly.select(
        "month",
        pl.lit(None, dtype=pl.String).alias("user_id"),
        pl.lit("enova_yearly").alias("line"),
        pl.lit(LINES["enova_yearly"][0]).alias("label"),
        pl.lit("grid").alias("invoice"),
        pl.lit(1.0).alias("quantity_kwh"),
        pl.col("amount_ex_vat_ore").cast(pl.Int64),
        pl.col("vat_ore").cast(pl.Int64),
        (pl.col("amount_ex_vat_ore") + pl.col("vat_ore")).cast(pl.Int64).alias("amount_ore"),
    )
