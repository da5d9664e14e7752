"""Flat-price split: every kWh a user charged costs the same."""

from __future__ import annotations

import polars as pl

VAT_RATE = 0.25


def billable_sessions(sessions: pl.DataFrame) -> pl.DataFrame:
    """Sessions that carry a bill: not void (a void session was replaced by another)."""
    return sessions.filter(~pl.col("is_void").fill_null(False))


def flat_split(sessions: pl.DataFrame, price_nok_per_kwh: float, vat_rate: float = VAT_RATE) -> pl.DataFrame:
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
        ``cost_ex_vat_nok``, ``vat_nok``, ``cost_nok`` (rounded to the øre), sorted by energy.
        Sessions without a user are grouped under ``user_id`` NULL.
    """
    if price_nok_per_kwh < 0:
        raise ValueError(f"price must be non-negative, not {price_nok_per_kwh}")
    per_user = (
        billable_sessions(sessions)
        .group_by("user_id")
        .agg(
            pl.col("user_name").drop_nulls().first(),
            pl.len().alias("sessions"),
            pl.col("energy_kwh").fill_null(0.0).sum().alias("energy_kwh"),
        )
        .with_columns((pl.col("energy_kwh") * price_nok_per_kwh).round(2).alias("cost_nok"))
        .with_columns((pl.col("cost_nok") / (1 + vat_rate)).round(2).alias("cost_ex_vat_nok"))
        .with_columns((pl.col("cost_nok") - pl.col("cost_ex_vat_nok")).round(2).alias("vat_nok"))
        .sort(["energy_kwh", "user_id"], descending=[True, False], nulls_last=True)
    )
    return per_user.select(
        "user_id", "user_name", "sessions", "energy_kwh", "cost_ex_vat_nok", "vat_nok", "cost_nok"
    )
