"""Whom a statement goes to: the user, the charger or the charge card of each session.

:func:`billed_parties` rewrites the sessions' ``user_id, user_name, user_email`` to the party
billed (sessions without one, guests, keep nulls and get their own statement), so the split
methods bill any grouping as they bill users. :func:`session_list` gives each party's
sessions with the energy that fell inside the month, for the statements.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from zapanalytics.billing.energy import session_interval_energy

#: How statements group the energy: per user, per charger or per charge card (RFID tag).
GROUPS = ("user", "charger", "card")


def billed_parties(sessions: pl.DataFrame, group_by: str) -> pl.DataFrame:
    """Sessions with ``user_id, user_name, user_email`` set to the billed party: the user,
    the charger (``name (serial)``) or the charge card; guests (no party) stay null."""
    if group_by not in GROUPS:
        raise ValueError(f"group by one of {', '.join(GROUPS)}, not {group_by!r}")
    for column in ("user_email", "charger_id", "token_name", "charger_name", "charger_serial"):
        if column not in sessions.columns:
            sessions = sessions.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    charger = pl.coalesce(
        pl.when(pl.col("charger_serial").is_not_null() & pl.col("charger_name").is_not_null())
        .then(pl.format("{} ({})", "charger_name", "charger_serial"))
        .otherwise(pl.coalesce("charger_name", "charger_serial")),
        pl.col("charger_id"),
    )
    sessions = sessions.with_columns(charger.cast(pl.String).alias("charger_label"))
    if group_by == "charger":
        return sessions.with_columns(
            pl.col("charger_id").alias("user_id"),
            pl.col("charger_label").alias("user_name"),
            pl.lit(None, dtype=pl.String).alias("user_email"),
        )
    if group_by == "card":
        token = pl.col("token_name").str.strip_chars()
        token = pl.when(token == "").then(None).otherwise(token)
        return sessions.with_columns(
            token.alias("user_id"),
            token.alias("user_name"),
            pl.lit(None, dtype=pl.String).alias("user_email"),
        )
    return sessions


def party_names(sessions: pl.DataFrame, billed: pl.Series) -> pl.DataFrame:
    names = (
        sessions.filter(pl.col("user_id").is_not_null())
        .sort("start_utc")
        .group_by("user_id")
        .agg(pl.col("user_name").drop_nulls().last(), pl.col("user_email").drop_nulls().last())
    )
    ids = pl.DataFrame({"user_id": billed.cast(pl.String).unique()})
    return ids.join(names, on="user_id", how="left").sort("user_id", nulls_last=True)


def session_list(
    sessions: pl.DataFrame, details: pl.DataFrame, start: dt.datetime, end: dt.datetime
) -> pl.DataFrame:
    """Each billed party's sessions with the energy that fell inside the month [kWh]."""
    inside = (
        session_interval_energy(sessions, details, start_utc=start, end_utc=end)
        .group_by("session_id")
        .agg(pl.col("energy_kwh").sum())
    )
    return (
        sessions.filter(~pl.col("is_void").fill_null(False))
        .join(inside, on="session_id", how="inner", suffix="_month")
        .select(
            pl.col("user_id").cast(pl.String),
            "session_id",
            "start_utc",
            "end_utc",
            pl.col("charger_label").alias("charger_name"),
            pl.col("energy_kwh_month").alias("energy_kwh"),
        )
        .sort("user_id", "start_utc", "session_id", nulls_last=True)
    )
