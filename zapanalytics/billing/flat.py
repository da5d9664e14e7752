"""Flat-price split per session total: every kWh a user charged costs the same.

The demo report's quick split over all sessions in the store. Monthly statements use
:func:`zapanalytics.billing.split.flat` instead, which splits sessions at month boundaries;
both round the same way (:mod:`zapanalytics.billing.money`).
"""

from __future__ import annotations

import polars as pl

from zapanalytics.billing.money import ore_expr, rate_basis_points, split_gross_ore

VAT_RATE = 0.25


def billable_sessions(sessions: pl.DataFrame) -> pl.DataFrame:
    """Sessions that carry a bill: not void (a void session was replaced by another)."""
    return sessions.filter(~pl.col("is_void").fill_null(False))


def flat_split(
    sessions: pl.DataFrame, price_nok_per_kwh: float, vat_rate: float = VAT_RATE
) -> pl.DataFrame:
    """Energy and cost per user at one price per kWh.

    Parameters
    ----------
    sessions : polars.DataFrame
        Rows of the ``sessions`` table (``user_id``, ``user_name``, ``energy_kwh``, ``is_void``).
    price_nok_per_kwh : float
        Price including VAT [NOK/kWh].
    vat_rate : float, default 0.25
        VAT share used to split the price into its ex-VAT part and VAT [fraction].

    Returns
    -------
    polars.DataFrame
        One row per user: ``user_id``, ``user_name``, ``sessions``, ``energy_kwh``,
        ``cost_ex_vat_nok``, ``vat_nok``, ``cost_nok``, sorted by energy. The cost is rounded
        to the øre (half away from zero) and split into amount and VAT that add back to it.
        Sessions without a user are grouped under ``user_id`` NULL.
    """
    if not price_nok_per_kwh >= 0:
        raise ValueError(f"price must be non-negative, not {price_nok_per_kwh}")
    per_user = (
        billable_sessions(sessions)
        .group_by("user_id")
        .agg(
            pl.col("user_name").drop_nulls().first(),
            pl.len().alias("sessions"),
            pl.col("energy_kwh").fill_null(0.0).sum().alias("energy_kwh"),
        )
        .with_columns(ore_expr(pl.col("energy_kwh") * price_nok_per_kwh).alias("_gross"))
    )
    net, vat = split_gross_ore(pl.col("_gross"), pl.lit(rate_basis_points(vat_rate)))
    return (
        per_user.with_columns(
            (net / 100).alias("cost_ex_vat_nok"),
            (vat / 100).alias("vat_nok"),
            (pl.col("_gross") / 100).alias("cost_nok"),
        )
        .sort(["energy_kwh", "user_id"], descending=[True, False], nulls_last=True)
        .select(
            "user_id",
            "user_name",
            "sessions",
            "energy_kwh",
            "cost_ex_vat_nok",
            "vat_nok",
            "cost_nok",
        )
    )
