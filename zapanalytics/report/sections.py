"""Report sections built from the store."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from zapanalytics.report import figures
from zapanalytics.report.document import Section, figure_html, kpis_html, table_html
from zapanalytics.store import queries


def overview_section(con: duckdb.DuckDBPyConnection) -> Section:
    """Installation, chargers, period, totals and data quality."""
    installations = queries.table(con, "installations")
    chargers = queries.table(con, "chargers")
    period = con.execute(
        "SELECT min(start_utc), max(coalesce(end_utc, start_utc)), count(*),"
        " sum(energy_kwh) FILTER (WHERE NOT coalesce(is_void, FALSE)) FROM canonical_sessions"
    ).fetchall()[0]
    timezone = queries.installation_timezone(con)
    first, last, count, energy = period

    def local(ts):
        return ts.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M") if ts else "–"

    kpis = kpis_html(
        [
            ("Installations", str(installations.height)),
            ("Chargers", str(chargers.height)),
            ("Sessions", str(count)),
            ("Energy", f"{(energy or 0):,.1f} kWh"),
            ("From", local(first)),
            ("To", local(last)),
        ]
    )
    install_table = table_html(
        installations.select(
            "installation_id", "name", "timezone", "network_type", "phase_count", "main_fuse_a", "price_area"
        )
    )
    charger_table = table_html(
        chargers.select("charger_id", "device_id", "name", "model", "firmware_version").sort("name")
    )
    quality = queries.data_quality(con)
    quarantine = queries.frame(
        con,
        "SELECT table_name, count(*) AS records, any_value(reason) AS example_reason"
        " FROM quarantine GROUP BY table_name ORDER BY table_name",
    )
    body = (
        kpis
        + "<h3>Installation</h3>" + install_table
        + "<h3>Chargers</h3>" + charger_table
        + "<h3>Data quality</h3>" + table_html(quality)
        + (
            "<h4>Quarantined records</h4>" + table_html(quarantine)
            if quarantine.height
            else '<p class="note">No record was quarantined.</p>'
        )
    )
    return Section("overview", "Overview", body)


def usage_section(con: duckdb.DuckDBPyConnection, month: str | None = None) -> Section:
    """When charging happens: heatmap over the whole store and, for ``month`` (local
    ``YYYY-MM``; all when None), the per-charger session timeline."""
    timezone = queries.installation_timezone(con)
    intervals = queries.interval_energy(con)
    sessions = queries.canonical_sessions(con).filter(~pl.col("is_void").fill_null(False))
    if month is not None:
        local_month = pl.col("start_utc").dt.convert_time_zone(timezone).dt.strftime("%Y-%m")
        sessions = sessions.filter(local_month == month)
    names = queries.table(con, "chargers").select(
        "charger_id", pl.col("name").fill_null(pl.col("device_id")).alias("charger_name")
    )
    sessions = sessions.join(names, on="charger_id", how="left").with_columns(
        pl.col("charger_name").fill_null(pl.col("charger_id")).alias("charger_id")
    )
    body = figure_html(figures.load_heatmap(intervals, timezone), "fig-load-heatmap")
    body += figure_html(figures.session_timeline(sessions, timezone), "fig-session-timeline")
    return Section("usage", "Usage", body)
