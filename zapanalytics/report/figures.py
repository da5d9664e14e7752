"""Plotly figures shared by the report and the notebooks (pure: frames in, figures out)."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import polars as pl

from zapanalytics.timebins import interval_start_bin

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def energy_per_user_bar(per_user: pl.DataFrame) -> go.Figure:
    """Bar chart of ``energy_kwh`` per user (a frame from a billing split)."""
    labels = per_user["user_name"].fill_null(per_user["user_id"]).fill_null("(no user)")
    figure = go.Figure(go.Bar(x=labels.to_list(), y=per_user["energy_kwh"].to_list()))
    figure.update_layout(
        title="Energy per user", yaxis_title="Energy [kWh]", xaxis_title=None, height=360,
        margin={"t": 50, "b": 80},
    )
    return figure


def load_heatmap(intervals: pl.DataFrame, timezone: str) -> go.Figure:
    """Mean energy per local hour of day × weekday from interval energy rows."""
    binned = (
        intervals.with_columns(interval_start_bin(pl.col("ts_utc"), "1h", timezone).alias("hour"))
        .group_by("hour")
        .agg(pl.col("energy_kwh").sum())
        .with_columns(
            pl.col("hour").dt.weekday().alias("weekday"), pl.col("hour").dt.hour().alias("hour_of_day")
        )
        .group_by("weekday", "hour_of_day")
        .agg(pl.col("energy_kwh").sum())
    )
    grid = [[0.0] * 24 for _ in WEEKDAYS]
    for weekday, hour, energy in binned.iter_rows():
        grid[weekday - 1][hour] = energy
    figure = go.Figure(
        go.Heatmap(
            z=grid, x=list(range(24)), y=list(WEEKDAYS), colorscale="Blues",
            colorbar={"title": "kWh"},
        )
    )
    figure.update_layout(
        title=f"Charging energy by hour and weekday ({timezone})",
        xaxis_title="Hour of day", height=340, margin={"t": 50},
    )
    figure.update_yaxes(autorange="reversed")
    return figure


def session_timeline(sessions: pl.DataFrame, timezone: str) -> go.Figure:
    """One bar per session on its charger's row, coloured by user, in local time; rows are
    named by ``charger_name`` (``name (serial)``) where the frame has it."""
    frame = (
        sessions.filter(pl.col("end_utc").is_not_null())
        .with_columns(
            pl.col("start_utc").dt.convert_time_zone(timezone).alias("start"),
            pl.col("end_utc").dt.convert_time_zone(timezone).alias("end"),
            pl.col("user_name").fill_null(pl.col("user_id")).fill_null("(no user)").alias("user"),
            (
                pl.coalesce("charger_name", "charger_id") if "charger_name" in sessions.columns
                else pl.col("charger_id")
            ).fill_null("(unknown)").alias("charger"),
        )
        .select("start", "end", "user", "charger", "energy_kwh")
        .to_pandas()
    )
    if frame.empty:
        return go.Figure().update_layout(title="Sessions per charger (none)")
    figure = px.timeline(
        frame, x_start="start", x_end="end", y="charger", color="user",
        hover_data={"energy_kwh": ":.2f"},
    )
    figure.update_layout(
        title=f"Sessions per charger ({timezone})", height=120 + 28 * frame["charger"].nunique(),
        margin={"t": 50}, legend_title_text="User",
    )
    return figure
