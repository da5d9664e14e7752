"""The report's load-balancing section: findings, per-phase load with the fuse line, fairness
and what-if scenarios, from :func:`zapanalytics.replay.run_replay`."""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
import polars as pl

from zapanalytics.report.document import Section, figure_html, kpis_html, table_html

_LINE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")


def busiest_day(line_steps: pl.DataFrame, timezone: str):
    """The local date on which any line carried its highest charger load."""
    peak = line_steps.select(
        pl.max_horizontal("chargers_l1_a", "chargers_l2_a", "chargers_l3_a").alias("peak"),
        pl.col("start_utc").dt.convert_time_zone(timezone).dt.date().alias("day"),
    )
    return peak.sort("peak", descending=True, nulls_last=True)["day"][0]


def line_load_figure(line_steps: pl.DataFrame, timezone: str, limit_a: float | None, day=None) -> go.Figure:
    """Measured and allocated load per supply line on ``day`` (default: the busiest), with
    the available-current line [A]."""
    day = day or busiest_day(line_steps, timezone)
    local = line_steps.with_columns(pl.col("start_utc").dt.convert_time_zone(timezone).alias("start_local"))
    today = local.filter(pl.col("start_local").dt.date() == day)
    figure = go.Figure()
    for k, colour in zip((1, 2, 3), _LINE_COLOURS, strict=True):
        figure.add_scatter(
            x=today["start_local"].to_list(), y=today[f"chargers_l{k}_a"].to_list(),
            name=f"L{k} measured", line={"shape": "hv", "color": colour},
        )
        figure.add_scatter(
            x=today["start_local"].to_list(), y=today[f"allocated_l{k}_a"].to_list(),
            name=f"L{k} allocated", line={"shape": "hv", "color": colour, "dash": "dot"},
        )
    if limit_a is not None:
        figure.add_hline(y=limit_a, line_dash="dash", line_color="red", annotation_text=f"available {limit_a:g} A")
    figure.update_layout(
        title=f"Load per supply line on {day} ({timezone})", yaxis_title="Current [A]", height=420,
        margin={"t": 50},
    )
    return figure


def replay_section(result: Any) -> Section:
    """Findings, the busiest day's per-phase load against the fuse, fairness and scenarios."""
    recording = result.recording
    site = recording.installation
    zone = site.timezone
    names = dict(recording.chargers.select("charger_id", pl.col("name").fill_null(pl.col("charger_id"))).iter_rows()) \
        if "name" in recording.chargers.columns else {}
    summary = result.fairness.summary
    kpis = kpis_html(
        [
            ("Findings", str(len(result.findings))),
            ("Available current", f"{site.chargers_limit_a:g} A" if site.chargers_limit_a else "–"),
            ("Mean Jain index", f"{summary['mean_jain_index']:.3f}" if summary.get("mean_jain_index") is not None else "–"),
            ("Wait p95", f"{summary['p95_wait_s']:.0f} s" if summary.get("p95_wait_s") is not None else "–"),
        ]
    )
    if result.findings:
        findings = pl.DataFrame(
            [
                {
                    "kind": f.kind,
                    "start": f.start_utc.astimezone(_zone(zone)).strftime("%Y-%m-%d %H:%M:%S"),
                    "end": f.end_utc.astimezone(_zone(zone)).strftime("%Y-%m-%d %H:%M:%S"),
                    "charger": names.get(f.charger_id, f.charger_id or ""),
                    "phase": f.phase or "",
                    "magnitude_a": f.magnitude_a,
                    "constraint": f.constraint,
                }
                for f in result.findings
            ]
        )
        body = kpis + f"<h3>Findings ({html.escape(zone)})</h3>" + table_html(findings)
    else:
        body = kpis + '<p class="note">The recording conforms: no phase above its limit, no charger above its offer, none below 6 A while charging, allocations as the reference allocator would make them.</p>'
    if recording.line_steps.height:
        body += figure_html(line_load_figure(recording.line_steps, zone, site.chargers_limit_a), "fig-line-load")
    scenarios = pl.DataFrame([{"scenario": s.scenario.name, **s.summary} for s in result.scenarios])
    if scenarios.height:
        wanted = [c for c in ("scenario", "chargers", "main_fuse_a", "energy_delivered_kwh", "energy_not_delivered_kwh",
                              "sessions_not_full", "peak_line_current_a", "peak_power_kw", "worst_capacity_step")
                  if c in scenarios.columns]
        body += "<h3>What if</h3>" + table_html(scenarios.select(wanted))
    users = result.fairness.users
    if users.height:
        keep = [c for c in ("user_name", "sessions", "energy_kwh", "share_full", "mean_wait_s") if c in users.columns]
        body += "<h3>Fairness per user</h3>" + table_html(users.select(keep))
    return Section("replay", "Load balancing", body)


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
