"""The report's load-balancing section: findings, per-phase load with the fuse line, fairness
and what-if scenarios, from :func:`zapanalytics.replay.run_replay`.

Every finding is drawn in its own window (a little before and after it), with the limit it
broke, and said in one sentence for the report's first screen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import polars as pl

from zapanalytics.naming import charger_names
from zapanalytics.report import blocks
from zapanalytics.report.document import Section

__all__ = [
    "MAX_FINDING_CHARTS",
    "busiest_day",
    "finding_figure",
    "finding_sentence",
    "line_load_figure",
    "replay_findings",
    "replay_section",
]

_LINE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")
#: Findings drawn one chart each; the rest are in the table (largest first).
MAX_FINDING_CHARTS = 12

_WHAT = {
    "over_draw": "over its allocation",
    "allocation_mismatch": "away from the reference allocation",
    "below_minimum": "below the 6 A minimum while charging",
}


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
    busiest = day is None
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
    label = "busiest day, " if busiest else ""
    figure.update_layout(
        title=f"Load per supply line on {day} ({label}{timezone})", yaxis_title="Current [A]", height=420,
        margin={"t": 50},
    )
    return figure


def _local(value: dt.datetime, zone: str) -> dt.datetime:
    return value.astimezone(ZoneInfo(zone))


def _span(start: dt.datetime, end: dt.datetime, zone: str) -> str:
    """``17 Oct 17:29–17:49`` (the end's date too when it is another day)."""
    a, b = _local(start, zone), _local(end, zone)
    tail = b.strftime("%H:%M") if a.date() == b.date() else b.strftime("%d %b %H:%M").lstrip("0")
    return f"{a.strftime('%d %b %H:%M').lstrip('0')}–{tail}"


def finding_sentence(finding: Any, names: dict[str, str], zone: str) -> str:
    """What happened, where and when, in one sentence: ``Plass 06 (ZPR…) drew 5.3 A over
    its allocation on 17 Oct 17:29–17:49``."""
    when = _span(finding.start_utc, finding.end_utc, zone)
    who = names.get(finding.charger_id, finding.charger_id) if finding.charger_id else None
    size = "" if finding.magnitude_a is None else f"{finding.magnitude_a:.1f} A "
    if finding.kind == "phase_overload":
        limit = finding.constraint.replace("_", " ").replace(" L", " on L")
        lines = finding.phase or "a line"
        by = f" (most over its allocation: {who})" if who else ""
        return f"{lines} carried {size}over the {limit} on {when}{by}"
    if finding.kind == "phase_switching":
        switches = finding.details.get("switches") if finding.details else None
        count = f"{switches} times" if switches else "too often"
        return f"{who} switched phases {count} in one session on {when}"
    verb = "drew" if finding.kind in ("over_draw", "below_minimum") else "was offered"
    return f"{who} {verb} {size}{_WHAT.get(finding.kind, finding.kind)} on {when}"


def _window(finding: Any) -> tuple[dt.datetime, dt.datetime]:
    pad = max(dt.timedelta(minutes=10), (finding.end_utc - finding.start_utc) / 2)
    return finding.start_utc - pad, finding.end_utc + pad


def _within(frame: pl.DataFrame, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Steps that overlap ``[start, end]``, plus the one in force at ``start``."""
    before = frame.filter(pl.col("start_utc") <= start).tail(1)
    inside = frame.filter((pl.col("start_utc") > start) & (pl.col("start_utc") <= end))
    return pl.concat([before, inside])


def finding_figure(finding: Any, recording: Any, names: dict[str, str]) -> go.Figure:
    """The finding's own window: the measured current against the limit it broke [A]."""
    zone = recording.installation.timezone
    start, end = _window(finding)
    figure = go.Figure()
    if finding.kind == "phase_overload":
        steps = _within(recording.line_steps.sort("start_utc"), start, end)
        x = [_local(t, zone) for t in steps["start_utc"].to_list()]
        lines = [p.strip() for p in (finding.phase or "L1,L2,L3").split(",")]
        for k, colour in zip((1, 2, 3), _LINE_COLOURS, strict=True):
            if f"L{k}" in lines:
                figure.add_scatter(x=x, y=steps[f"chargers_l{k}_a"].to_list(), name=f"L{k} measured",
                                   line={"shape": "hv", "color": colour})  # fmt: skip
                figure.add_scatter(x=x, y=steps[f"allocated_l{k}_a"].to_list(), name=f"L{k} allocated",
                                   line={"shape": "hv", "color": colour, "dash": "dot"})  # fmt: skip
    else:
        steps = _within(
            recording.charger_steps.filter(pl.col("charger_id") == finding.charger_id).sort("start_utc"),
            start, end,
        )  # fmt: skip
        x = [_local(t, zone) for t in steps["start_utc"].to_list()]
        figure.add_scatter(x=x, y=steps["drawn_current_a"].to_list(), name="drawn (largest phase)",
                           line={"shape": "hv", "color": "#1f77b4"})  # fmt: skip
        figure.add_scatter(x=x, y=steps["allocated_current_a"].to_list(), name="allocated (the limit)",
                           line={"shape": "hv", "color": "#d62728", "dash": "dash"})  # fmt: skip
    if finding.limit_a is not None:
        figure.add_hline(y=finding.limit_a, line_dash="dash", line_color="red",
                         annotation_text=f"{finding.constraint.replace('_', ' ')} {finding.limit_a:g} A")  # fmt: skip
    elif finding.kind == "below_minimum":
        figure.add_hline(y=6.0, line_dash="dash", line_color="red", annotation_text="minimum 6 A")
    figure.add_vrect(x0=_local(finding.start_utc, zone), x1=_local(finding.end_utc, zone),
                     fillcolor="#d62728", opacity=0.08, line_width=0)  # fmt: skip
    who = names.get(finding.charger_id, finding.charger_id) if finding.charger_id else (finding.phase or "")
    figure.update_layout(
        title=f"{finding.kind.replace('_', ' ')}: {who}, {_span(finding.start_utc, finding.end_utc, zone)} ({zone})",
        yaxis_title="Current [A]", height=320, margin={"t": 50, "b": 40},
    )
    return figure


def _ranked(findings: list) -> list[tuple[int, Any]]:
    """Findings with their index, largest first (charts go to the largest)."""
    return sorted(enumerate(findings), key=lambda item: -(item[1].magnitude_a or 0.0))


def replay_findings(result: Any) -> list[blocks.Finding]:
    """One sentence per finding, linked to its chart when it has one."""
    recording = result.recording
    names = charger_names(recording.chargers)
    charted = {index for index, _ in _ranked(result.findings)[:MAX_FINDING_CHARTS]}
    return [
        blocks.Finding(
            finding_sentence(f, names, recording.installation.timezone),
            "error" if f.kind in ("phase_overload", "over_draw") else "warning",
            f"fig-replay-finding-{index}-box" if index in charted else None,
        )
        for index, f in enumerate(result.findings)
    ]


def replay_section(result: Any) -> Section:
    """Findings (each in its own window), the busiest day's per-phase load against the
    fuse, fairness and scenarios."""
    recording = result.recording
    site = recording.installation
    zone = site.timezone
    names = charger_names(recording.chargers)
    summary = result.fairness.summary
    parts = [
        blocks.kpis(
            [
                ("Findings", str(len(result.findings))),
                ("Available current", f"{site.chargers_limit_a:g} A" if site.chargers_limit_a else "–"),
                ("Mean Jain index", f"{summary['mean_jain_index']:.3f}" if summary.get("mean_jain_index") is not None else "–"),
                ("Wait p95", f"{summary['p95_wait_s']:.0f} s" if summary.get("p95_wait_s") is not None else "–"),
            ]
        )
    ]
    if result.findings:
        frame = pl.DataFrame(
            [
                {
                    "kind": f.kind,
                    "start": f.start_utc.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S"),
                    "end": f.end_utc.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S"),
                    "charger": names.get(f.charger_id, f.charger_id or ""),
                    "phase": f.phase or "",
                    "magnitude_a": f.magnitude_a,
                    "constraint": f.constraint,
                }
                for f in result.findings
            ],
            schema={"kind": pl.String, "start": pl.String, "end": pl.String, "charger": pl.String,
                    "phase": pl.String, "magnitude_a": pl.Float64, "constraint": pl.String},
        )  # fmt: skip
        parts += [blocks.heading(f"Findings ({zone})"), blocks.table_block(frame)]
        ranked = _ranked(result.findings)
        for index, finding in sorted(ranked[:MAX_FINDING_CHARTS]):
            parts.append(
                blocks.figure(
                    finding_figure(finding, recording, names), f"fig-replay-finding-{index}",
                    caption=finding_sentence(finding, names, zone), css="finding-chart",
                )
            )  # fmt: skip
        if len(ranked) > MAX_FINDING_CHARTS:
            parts.append(blocks.notes(
                f"{len(ranked) - MAX_FINDING_CHARTS} smaller findings are in the table only."
            ))  # fmt: skip
    else:
        parts.append(blocks.notes(
            "The recording conforms: no phase above its limit, no charger above its offer, none "
            "below 6 A while charging, allocations as the reference allocator would make them."
        ))  # fmt: skip
    if recording.line_steps.height:
        parts.append(blocks.figure(line_load_figure(recording.line_steps, zone, site.chargers_limit_a),
                                   "fig-line-load"))  # fmt: skip
    scenarios = pl.DataFrame([{"scenario": s.scenario.name, **s.summary} for s in result.scenarios])
    if scenarios.height:
        wanted = [c for c in ("scenario", "chargers", "main_fuse_a", "energy_delivered_kwh", "energy_not_delivered_kwh",
                              "sessions_not_full", "peak_line_current_a", "peak_power_kw", "worst_capacity_step")
                  if c in scenarios.columns]  # fmt: skip
        parts += [blocks.heading("What if"), blocks.table_block(scenarios.select(wanted))]
    users = result.fairness.users
    if users.height:
        keep = [c for c in ("user_name", "sessions", "energy_kwh", "share_full", "mean_wait_s") if c in users.columns]
        parts += [blocks.heading("Fairness per user"), blocks.table_block(users.select(keep))]
    return blocks.section("replay", "Load balancing", parts)
