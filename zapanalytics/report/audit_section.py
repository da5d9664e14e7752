"""The report's meter-audit section, from a :class:`zapanalytics.audit.store_audit.StoreAudit`.

Figures are pure functions (frames in, plotly figures out) so notebooks can show the same
pictures. Chargers are named ``name (serial)`` in every table, legend and sentence. Each
accuracy or gain finding gets a chart of its own with the limit drawn, and a sentence for
the report's first screen (:func:`audit_findings`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

from zapanalytics.audit.evidence import HOW_TO_VERIFY
from zapanalytics.audit.limits import CLAIM_PCT
from zapanalytics.audit.store_audit import ASSUMPTIONS
from zapanalytics.report import blocks
from zapanalytics.report.document import Section, write_document

__all__ = [
    "accuracy_finding_figure",
    "audit_findings",
    "audit_section",
    "error_vs_current_figure",
    "gain_figure",
    "signature_summary",
    "write_audit_report",
]

_SENTENCE_SEVERITIES = ("error", "warning")


def _name(frame: pl.DataFrame) -> pl.Expr:
    return pl.coalesce("charger_name", "charger_id") if "charger_name" in frame.columns else pl.col("charger_id")


def error_vs_current_figure(
    windows: pl.DataFrame, bands: pl.DataFrame, *, reference_u_pct: float | None = None
) -> go.Figure:
    """Each window's error against its current, per charger, with the ±1 % claim.

    Parameters
    ----------
    windows : polars.DataFrame
        :func:`zapanalytics.audit.accuracy.accuracy_windows` output (``charger_name``
        names the legend when present).
    bands : polars.DataFrame
        :func:`zapanalytics.audit.accuracy.accuracy_bands` output (band results drawn
        as diamonds with their expanded uncertainty).
    reference_u_pct : float, optional
        The reference's standard uncertainty [%], added to each window's error bar.
    """
    figure = go.Figure()
    u_reference = reference_u_pct
    if u_reference is None and not bands.is_empty():
        u_reference = float(bands["u_reference_pct"][0])
    named = windows.with_columns(_name(windows).alias("_name"))
    for (name,), group in named.group_by("_name", maintain_order=True):
        interpolation = group["u_interpolation_pct"].fill_null(0.0)
        bar = 2 * (group["u_resolution_pct"] ** 2 + interpolation**2 + group["u_timing_pct"] ** 2
                   + (u_reference or 0.0) ** 2).sqrt()  # fmt: skip
        figure.add_scatter(
            x=group["mean_current_a"].to_list(), y=group["error_pct"].to_list(),
            error_y={"type": "data", "array": bar.to_list(), "thickness": 0.6},
            mode="markers", marker={"size": 5, "opacity": 0.6}, name=f"{name} windows",
        )  # fmt: skip
    if not bands.is_empty():
        labels = bands.select(_name(bands).alias("n"), "band")
        figure.add_scatter(
            x=bands["mean_current_a"].to_list(), y=bands["error_pct"].to_list(),
            error_y={"type": "data", "array": bands["expanded_uncertainty_pct"].to_list()},
            mode="markers", marker={"symbol": "diamond", "size": 11, "color": "black"},
            text=[f"{n} {b}" for n, b in labels.iter_rows()], name="band (k=2)",
        )  # fmt: skip
    for level in (CLAIM_PCT, -CLAIM_PCT):
        figure.add_hline(y=level, line={"dash": "dash", "color": "#b33"})
    figure.update_layout(title="Meter error against the sub-meter, by current", height=440,
                         xaxis_title="Current [A]", yaxis_title="Error [%]")  # fmt: skip
    return figure


def gain_figure(gains: pl.DataFrame) -> go.Figure:
    """Gain error per charger from the HAN regression: the regression's interval (thin)
    and the interval with the HAN meter's own uncertainty (thick), against ±1 %."""
    fitted = gains.filter(pl.col("gain_error_pct").is_not_null())
    names = fitted.select(_name(fitted))[:, 0].to_list()
    figure = go.Figure()
    if "regression_ci_low_pct" in fitted.columns:
        figure.add_scatter(
            x=fitted["gain_error_pct"].to_list(), y=names, mode="markers", marker={"size": 1},
            error_x={"type": "data", "symmetric": False, "thickness": 1.2, "width": 4,
                     "array": (fitted["regression_ci_high_pct"] - fitted["gain_error_pct"]).to_list(),
                     "arrayminus": (fitted["gain_error_pct"] - fitted["regression_ci_low_pct"]).to_list()},
            name="regression alone",
        )  # fmt: skip
    figure.add_scatter(
        x=fitted["gain_error_pct"].to_list(), y=names, mode="markers", marker={"size": 9},
        error_x={"type": "data", "symmetric": False, "thickness": 3,
                 "array": (fitted["ci_high_pct"] - fitted["gain_error_pct"]).to_list(),
                 "arrayminus": (fitted["gain_error_pct"] - fitted["ci_low_pct"]).to_list()},
        name="with the HAN meter's uncertainty",
    )  # fmt: skip
    for level in (CLAIM_PCT, -CLAIM_PCT):
        figure.add_vline(x=level, line={"dash": "dash", "color": "#b33"})
    figure.update_layout(title="Gain error from the HAN meter (95 % interval)", xaxis_title="Gain error [%]",
                         height=max(260, 40 * fitted.height + 120))  # fmt: skip
    return figure


def accuracy_finding_figure(windows: pl.DataFrame, verdict: dict[str, Any], timezone: str) -> go.Figure:
    """One charger's comparison windows over time: error [%] with its k=2 bar, the ±limit
    drawn, and the overall result as a band."""
    own = windows.filter(pl.col("charger_id") == verdict["charger_id"]).sort("start_utc")
    bar = 2 * (own["u_resolution_pct"] ** 2 + own["u_interpolation_pct"].fill_null(0.0) ** 2
               + own["u_timing_pct"] ** 2).sqrt()  # fmt: skip
    x = own["end_utc"].dt.convert_time_zone(timezone).to_list()
    figure = go.Figure(
        go.Scatter(x=x, y=own["error_pct"].to_list(), mode="markers", name="window error",
                   error_y={"type": "data", "array": bar.to_list(), "thickness": 0.6})  # fmt: skip
    )
    error, spread = verdict["error_pct"], verdict["expanded_uncertainty_pct"]
    if error is not None and spread is not None and x:
        figure.add_hrect(y0=error - spread, y1=error + spread, fillcolor="#1f77b4", opacity=0.12, line_width=0,
                         annotation_text=f"{error:+.2f} % ± {spread:.2f} %")  # fmt: skip
    for level in (CLAIM_PCT, -CLAIM_PCT):
        figure.add_hline(y=level, line={"dash": "dash", "color": "#b33"},
                         annotation_text=f"limit {level:+g} %")  # fmt: skip
    figure.update_layout(
        title=f"{verdict.get('charger_name') or verdict['charger_id']} against its sub-meter ({timezone})",
        yaxis_title="Error [%]", height=320, margin={"t": 50, "b": 40},
    )
    return figure


def _pct(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.2f}"


def signature_summary(signed: pl.DataFrame) -> dict[str, int]:
    """Counts of signed records by outcome: ``valid``, ``failed`` and ``not_verified``."""
    verdicts = signed["verdict"].to_list() if "verdict" in signed.columns else []
    return {
        "records": len(verdicts),
        "valid": sum(v == "valid" for v in verdicts),
        "not_verified": sum(v is None for v in verdicts),
        "failed": sum(v not in (None, "valid") for v in verdicts),
    }


def audit_findings(audit: Any, timezone: str = "Europe/Oslo") -> list[blocks.Finding]:
    """One sentence per finding: accuracy and gain verdicts that are not a pass, then the
    integrity and signature findings (one per kind and charger)."""
    items: list[blocks.Finding] = []
    for row in audit.accuracy.chargers.iter_rows(named=True):
        if row["verdict"] in ("fail", "inconclusive") and row["windows"]:
            name = row.get("charger_name") or row["charger_id"]
            items.append(blocks.Finding(
                f"{name} reads {_pct(row['error_pct'])} % ± {row['expanded_uncertainty_pct']:.1f} % "
                f"against its sub-meter ({row['verdict']})",
                "error" if row["verdict"] == "fail" else "warning",
                f"fig-accuracy-{row['charger_id']}-box",
            ))  # fmt: skip
    for row in audit.gains.chargers.iter_rows(named=True):
        if row["verdict"] == "fail":
            name = row.get("charger_name") or row["charger_id"]
            items.append(blocks.Finding(
                f"{name} reads {_pct(row['gain_error_pct'])} % [{_pct(row['ci_low_pct'])}, "
                f"{_pct(row['ci_high_pct'])}] against the HAN meter (fail)",
                "error", "audit-gain-box",
            ))  # fmt: skip
    serious = audit.findings.filter(pl.col("severity").is_in(_SENTENCE_SEVERITIES))
    if not serious.is_empty():
        grouped = (
            serious.with_columns(_name(serious).alias("_name"))
            .group_by("kind", "severity", "_name", maintain_order=True)
            .agg(count=pl.len(), first=pl.col("ts_utc").min(), explanation=pl.col("explanation").first())
        )
        for row in grouped.iter_rows(named=True):
            when = (
                f" from {row['first'].astimezone(_zone(timezone)).strftime('%d %b %H:%M').lstrip('0')}"
                if row["first"] is not None else ""
            )  # fmt: skip
            times = f" ({row['count']} times)" if row["count"] > 1 else ""
            who = row["_name"] or "the installation"
            items.append(blocks.Finding(
                f"{who}: {row['kind'].replace('_', ' ')}{when}{times} — {row['explanation']}",
                row["severity"], "findings",
            ))  # fmt: skip
    return items


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def audit_section(audit: Any, timezone: str = "Europe/Oslo") -> Section:
    """The meter audit as one report section."""
    return blocks.section("audit", "Meter audit", audit_blocks(audit, timezone))


def audit_blocks(audit: Any, timezone: str = "Europe/Oslo") -> list[blocks.Block]:
    """The audit's blocks: verdicts, accuracy, gain regression and findings."""
    errors = int(audit.findings.filter(pl.col("severity") == "error").height)
    warnings = int(audit.findings.filter(pl.col("severity") == "warning").height)
    signatures = signature_summary(audit.signed)
    verdicts = audit.accuracy.chargers
    han_class = audit.parameters.get("han_meter_class", "B")
    given = audit.parameters.get("han_meter_class_given", False)
    checked = signatures["records"] - signatures["not_verified"]
    parts: list[blocks.Block] = [
        blocks.kpis([
            ("Chargers", str(audit.chargers.height)),
            ("Error findings", str(errors)),
            ("Warnings", str(warnings)),
            ("Signatures checked", f"{checked} of {signatures['records']}"),
            ("Accuracy fails", str(verdicts.filter(pl.col("verdict") == "fail").height)),
            ("Gain flags", str(audit.gains.chargers.filter("flagged").height)),
            ("HAN meter class", f"{han_class}" + ("" if given else " (default)")),
            ("Overall", "pass" if audit.passed else "attention"),
        ])  # fmt: skip
    ]
    if signatures["not_verified"]:
        parts.append(blocks.notes(
            f"{signatures['not_verified']} of {signatures['records']} signed records were not "
            f"verified: no public key was known for their meters. Zero error findings do not "
            f"mean their signatures hold. {HOW_TO_VERIFY}"
        ))  # fmt: skip
    overview = audit.chargers.with_columns(
        accuracy=pl.struct("accuracy_error_pct", "accuracy_uncertainty_pct").map_elements(
            lambda s: None if s["accuracy_error_pct"] is None
            else f"{_pct(s['accuracy_error_pct'])} ± {s['accuracy_uncertainty_pct']:.2f} %",
            return_dtype=pl.String,
        ),
        gain=pl.struct("gain_error_pct", "gain_ci_low_pct", "gain_ci_high_pct").map_elements(
            lambda s: None if s["gain_error_pct"] is None
            else f"{_pct(s['gain_error_pct'])} % [{_pct(s['gain_ci_low_pct'])}, {_pct(s['gain_ci_high_pct'])}]",
            return_dtype=pl.String,
        ),
    ).select(
        pl.col("charger_name").alias("charger"), "errors", "warnings", "finding_kinds",
        "accuracy_verdict", "accuracy", "gain_verdict", "gain",
    ).sort("charger")  # fmt: skip
    parts += [
        blocks.heading("Verdicts per charger"),
        blocks.table_block(overview),
        blocks.notes("Assumptions:"),
        blocks.bullets(ASSUMPTIONS),
    ]
    if not audit.accuracy.windows.is_empty():
        band_table = audit.accuracy.bands.select(
            pl.col("charger_name").alias("charger"), "band", "windows", "reference_energy_kwh",
            "mean_current_a", "error_pct", "expanded_uncertainty_pct", "verdict_claim",
            "verdict_en50470_3", "verdict_mid",
        )  # fmt: skip
        parts += [
            blocks.heading("Accuracy against sub-meters", anchor="accuracy"),
            blocks.figure(error_vs_current_figure(audit.accuracy.windows, audit.accuracy.bands),
                          "audit-error-vs-current"),  # fmt: skip
            blocks.table_block(band_table, float_digits=3),
            blocks.notes(*(f"{row['charger_name']}: {row['evidence']}" for row in verdicts.iter_rows(named=True))),
        ]
        for row in verdicts.iter_rows(named=True):
            if row["verdict"] in ("fail", "inconclusive") and row["windows"]:
                parts.append(blocks.figure(
                    accuracy_finding_figure(audit.accuracy.windows, row, timezone),
                    f"fig-accuracy-{row['charger_id']}",
                    caption=f"{row['charger_name']} reads {_pct(row['error_pct'])} % ± "
                    f"{row['expanded_uncertainty_pct']:.1f} % ({row['verdict']})",
                    css="finding-chart",
                ))  # fmt: skip
    gains = audit.gains.chargers
    if gains["gain_error_pct"].is_not_null().any():
        source = "given" if given else "default: no class was given (--han-class)"
        gain_table = gains.select(
            pl.col("charger_name").alias("charger"), "charging_hours", "gain_error_pct",
            "regression_ci_low_pct", "regression_ci_high_pct", "ci_low_pct", "ci_high_pct",
            "han_meter_class", "u_han_pct", "single_phase_load", "verdict",
        )  # fmt: skip
        parts += [
            blocks.heading("Gain errors from the HAN meter", anchor="gain"),
            blocks.notes(
                f"The HAN meter is taken as class {han_class} ({source}); its own error enters "
                "every interval as the class's MID limit, a rectangular bound. A pass needs the "
                "whole interval inside ±1 %, a fail needs it wholly outside."
            ),
            blocks.figure(gain_figure(gains), "audit-gain"),
            blocks.table_block(gain_table, float_digits=3),
            blocks.table_block(audit.gains.installations, float_digits=3),
        ]
    parts.append(blocks.heading("Integrity and signature findings", anchor="findings"))
    if audit.findings.is_empty():
        parts.append(blocks.paragraph("No findings."))
    else:
        parts.append(blocks.table_block(
            audit.findings.select(
                "severity", "kind", pl.col("charger_name").alias("charger"), "session_id",
                "ts_utc", "magnitude", "magnitude_unit", "explanation",
            ),
            float_digits=3, timezone=timezone,
        ))  # fmt: skip
    return parts


def write_audit_report(audit: Any, path: str | Path, *, title: str = "Meter audit",
                       timezone: str = "Europe/Oslo") -> Path:  # fmt: skip
    """Write the audit as one offline HTML file (its findings first) and return its path."""
    sentences = audit_findings(audit, timezone)
    summary = blocks.section(
        "summary", "Findings",
        [blocks.findings(sentences)] if sentences else [blocks.paragraph("Nothing to report.")],
    )  # fmt: skip
    subtitle = f"{audit.chargers.height} chargers, {audit.signed.height} signed records"
    return write_document(path, title, subtitle, [summary, audit_section(audit, timezone)])
