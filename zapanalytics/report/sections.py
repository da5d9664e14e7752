"""Report sections built from the store."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from zapanalytics.naming import charger_names, with_charger_names
from zapanalytics.report import blocks, figures
from zapanalytics.report.document import Section
from zapanalytics.store import queries


def overview_section(con: duckdb.DuckDBPyConnection) -> Section:
    """Installation, chargers, period, totals and data quality."""
    installations = queries.table(con, "installations")
    chargers = queries.table(con, "chargers")
    period = con.execute(
        "SELECT min(start_utc), max(coalesce(end_utc, start_utc)),"
        " count(*) FILTER (WHERE NOT coalesce(is_void, FALSE)),"
        " sum(energy_kwh) FILTER (WHERE NOT coalesce(is_void, FALSE)) FROM canonical_sessions"
    ).fetchall()[0]
    timezone = queries.installation_timezone(con)
    first, last, count, energy = period

    def local(ts):
        return ts.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M") if ts else "–"

    kpis = blocks.kpis(
        [
            ("Installations", str(installations.height)),
            ("Chargers", str(chargers.height)),
            ("Sessions", str(count)),
            ("Energy", f"{(energy or 0):,.1f} kWh"),
            ("From", local(first)),
            ("To", local(last)),
        ]
    )
    install_table = blocks.table_block(
        installations.select(
            "name", "installation_id", "timezone", "network_type", "phase_count", "main_fuse_a", "price_area"
        )
    )
    charger_table = blocks.table_block(
        with_charger_names(chargers, charger_names(chargers))
        .sort("name", "device_id", nulls_last=True)
        .select(pl.col("charger_name").alias("charger"), "device_id", "model", "firmware_version", "charger_id")
    )
    quality = queries.data_quality(con)
    quarantine = queries.frame(
        con,
        "SELECT table_name, count(*) AS records, any_value(reason) AS example_reason"
        " FROM quarantine GROUP BY table_name ORDER BY table_name",
    )
    parts = [
        kpis,
        blocks.heading("Installation"), install_table,
        blocks.heading("Chargers"), charger_table,
        blocks.heading("Data quality"), blocks.table_block(quality),
    ]  # fmt: skip
    if quarantine.height:
        parts += [blocks.heading("Quarantined records", 4), blocks.table_block(quarantine)]
    else:
        parts.append(blocks.notes("No record was quarantined."))
    return blocks.section("overview", "Overview", parts)


def usage_section(con: duckdb.DuckDBPyConnection, month: str | None = None) -> Section:
    """When charging happens: heatmap over the whole store and, for ``month`` (local
    ``YYYY-MM``; all when None), the per-charger session timeline."""
    timezone = queries.installation_timezone(con)
    intervals = queries.interval_energy(con)
    sessions = queries.canonical_sessions(con).filter(~pl.col("is_void").fill_null(False))
    if month is not None:
        local_month = pl.col("start_utc").dt.convert_time_zone(timezone).dt.strftime("%Y-%m")
        sessions = sessions.filter(local_month == month)
    names = charger_names(queries.table(con, "chargers"))
    sessions = with_charger_names(sessions, names)
    return blocks.section(
        "usage",
        "Usage",
        [
            blocks.figure(figures.load_heatmap(intervals, timezone), "fig-load-heatmap"),
            blocks.figure(figures.session_timeline(sessions, timezone), "fig-session-timeline"),
        ],
    )
