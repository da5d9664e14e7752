"""The audit as an offline HTML report: verdicts, error against current, findings.

Figures are pure functions (frames in, plotly figures out) so notebooks can show the
same pictures; :func:`write_audit_report` assembles them with the report package's
document helpers.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import plotly.graph_objects as go
import polars as pl

from zapanalytics.audit.limits import CLAIM_PCT
from zapanalytics.audit.store_audit import ASSUMPTIONS, StoreAudit
from zapanalytics.report.document import (
    Section,
    figure_html,
    kpis_html,
    table_html,
    write_document,
)

__all__ = ["audit_sections", "error_vs_current_figure", "gain_figure", "write_audit_report"]


def error_vs_current_figure(
    windows: pl.DataFrame, bands: pl.DataFrame, *, reference_u_pct: float | None = None
) -> go.Figure:
    """Each window's error against its current, per charger, with the ±1 % claim.

    Parameters
    ----------
    windows : polars.DataFrame
        :func:`zapanalytics.audit.accuracy.accuracy_windows` output.
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
    for (charger_id,), group in windows.group_by("charger_id", maintain_order=True):
        bar = (
            2
            * (
                group["u_resolution_pct"] ** 2
                + (
                    group["u_interpolation_pct"]
                    if "u_interpolation_pct" in group.columns
                    else pl.Series([0.0] * group.height)
                )
                ** 2
                + group["u_timing_pct"] ** 2
                + (u_reference or 0.0) ** 2
            ).sqrt()
        )
        figure.add_trace(
            go.Scatter(
                x=group["mean_current_a"].to_list(),
                y=group["error_pct"].to_list(),
                error_y={"type": "data", "array": bar.to_list(), "thickness": 0.6},
                mode="markers",
                marker={"size": 5, "opacity": 0.6},
                name=f"{charger_id} windows",
            )
        )
    if not bands.is_empty():
        figure.add_trace(
            go.Scatter(
                x=bands["mean_current_a"].to_list(),
                y=bands["error_pct"].to_list(),
                error_y={"type": "data", "array": bands["expanded_uncertainty_pct"].to_list()},
                mode="markers",
                marker={"symbol": "diamond", "size": 11, "color": "black"},
                text=(bands["charger_id"] + " " + bands["band"]).to_list(),
                name="band (k=2)",
            )
        )
    for level in (CLAIM_PCT, -CLAIM_PCT):
        figure.add_hline(y=level, line={"dash": "dash", "color": "#b33"})
    figure.update_layout(
        title="Meter error against the sub-meter, by current",
        height=440,
        xaxis_title="Current [A]",
        yaxis_title="Error [%]",
    )
    return figure


def gain_figure(gains: pl.DataFrame) -> go.Figure:
    """Gain error per charger from the HAN regression, with its confidence interval."""
    fitted = gains.filter(pl.col("gain_error_pct").is_not_null())
    figure = go.Figure(
        go.Scatter(
            x=fitted["gain_error_pct"].to_list(),
            y=fitted["charger_id"].to_list(),
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (fitted["ci_high_pct"] - fitted["gain_error_pct"]).to_list(),
                "arrayminus": (fitted["gain_error_pct"] - fitted["ci_low_pct"]).to_list(),
            },
            mode="markers",
            marker={"size": 9},
        )
    )
    for level in (CLAIM_PCT, -CLAIM_PCT):
        figure.add_vline(x=level, line={"dash": "dash", "color": "#b33"})
    figure.update_layout(
        title="Gain error from the HAN meter (95 % interval)",
        xaxis_title="Gain error [%]",
        height=max(260, 40 * fitted.height + 120),
    )
    return figure


def _fmt(value: float | None, digits: int = 2) -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:+.{digits}f}")
    )


def audit_sections(audit: StoreAudit) -> list[Section]:
    """The report's sections for one audit."""
    summary = audit.as_dict()["summary"]
    errors = int(audit.findings.filter(pl.col("severity") == "error").height)
    verdicts = audit.accuracy.chargers
    kpis = kpis_html(
        [
            ("Chargers", str(audit.chargers.height)),
            ("Error findings", str(errors)),
            ("Signed records", str(audit.signed.height)),
            ("Accuracy fails", str(verdicts.filter(pl.col("verdict") == "fail").height)),
            ("Gain flags", str(len(summary["gain_flagged"]))),
            ("Overall", "pass" if audit.passed else "attention"),
        ]
    )
    overview = audit.chargers.with_columns(
        accuracy=pl.struct("accuracy_error_pct", "accuracy_uncertainty_pct").map_elements(
            lambda s: (
                None
                if s["accuracy_error_pct"] is None
                else f"{_fmt(s['accuracy_error_pct'])} ± {s['accuracy_uncertainty_pct']:.2f} %"
            ),
            return_dtype=pl.String,
        ),
        gain=pl.struct("gain_error_pct", "gain_ci_low_pct", "gain_ci_high_pct").map_elements(
            lambda s: (
                None
                if s["gain_error_pct"] is None
                else f"{_fmt(s['gain_error_pct'])} % [{_fmt(s['gain_ci_low_pct'])}, "
                f"{_fmt(s['gain_ci_high_pct'])}]"
            ),
            return_dtype=pl.String,
        ),
    ).select(
        "charger_id",
        "device_id",
        "installation_id",
        "errors",
        "warnings",
        "finding_kinds",
        "accuracy_verdict",
        "accuracy",
        "gain_verdict",
        "gain",
    )
    assumptions = "".join(f"<li>{html.escape(a)}</li>" for a in ASSUMPTIONS)
    sections = [
        Section(
            "verdicts",
            "Verdicts per charger",
            kpis
            + table_html(overview)
            + f'<p class="note">Assumptions:</p><ul class="note">{assumptions}</ul>',
        ),
    ]
    if not audit.accuracy.windows.is_empty():
        band_table = audit.accuracy.bands.select(
            "charger_id",
            "band",
            "windows",
            "reference_energy_kwh",
            "mean_current_a",
            "error_pct",
            "expanded_uncertainty_pct",
            "verdict_claim",
            "verdict_en50470_3",
            "verdict_mid",
        )
        sections.append(
            Section(
                "accuracy",
                "Accuracy against sub-meters",
                figure_html(
                    error_vs_current_figure(audit.accuracy.windows, audit.accuracy.bands),
                    "audit-error-vs-current",
                )
                + table_html(band_table, float_digits=3)
                + "".join(
                    f'<p class="note"><b>{html.escape(str(row["charger_id"]))}</b>: '
                    f"{html.escape(str(row['evidence']))}</p>"
                    for row in verdicts.iter_rows(named=True)
                ),
            )
        )
    if audit.gains.chargers["gain_error_pct"].is_not_null().any():
        sections.append(
            Section(
                "gain",
                "Gain errors from the HAN meter",
                figure_html(gain_figure(audit.gains.chargers), "audit-gain")
                + table_html(audit.gains.chargers, float_digits=3)
                + table_html(audit.gains.installations, float_digits=3),
            )
        )
    sections.append(
        Section(
            "findings",
            "Integrity and signature findings",
            table_html(
                audit.findings.select(
                    "severity",
                    "kind",
                    "charger_id",
                    "session_id",
                    "ts_utc",
                    "magnitude",
                    "magnitude_unit",
                    "explanation",
                ),
                float_digits=3,
            )
            if not audit.findings.is_empty()
            else "<p>No findings.</p>",
        )
    )
    return sections


def write_audit_report(audit: StoreAudit, path: str | Path, *, title: str = "Meter audit") -> Path:
    """Write the audit as one offline HTML file and return its path."""
    subtitle = f"{audit.chargers.height} chargers, {audit.signed.height} signed records"
    return write_document(path, title, subtitle, audit_sections(audit))
