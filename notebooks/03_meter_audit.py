# %% [markdown]
# # Meter audit
#
# Are the chargers' meters right, and are the readings we bill from authentic? This
# notebook runs the store-wide audit (`zapanalytics audit --db PATH` runs the same
# functions) and looks at its three parts:
#
# 1. **Integrity and signatures.** Every signed OCMF record (sessions and the periodic
#    state 554 register values) verified against the meters' public keys; lifetime
#    registers that fall (resets, rollovers), sessions whose energy figures disagree,
#    energy between sessions, charger clocks against the cloud's.
# 2. **Accuracy against sub-meters.** Each charger's register against a MID sub-meter on
#    its supply, compared over windows of at least 100 register steps of each meter, by
#    current band, judged against Zaptec's ±1 % claim and the EN 50470-3 / MID class
#    limits. Registers read at different times (hourly signed values against a sub-meter
#    read every 15 minutes) are paired by interpolation, whose error is part of each
#    window's stated uncertainty.
# 3. **Gain regression.** Without a sub-meter: the installation's HAN meter regressed on
#    the chargers' hourly energies plus a household baseline gives each charger's gain
#    error with a 95 % confidence interval.
#
# Set `ZAPANALYTICS_DB` to audit another store (default: the demo's `out/zap.duckdb`) and
# `ZAPANALYTICS_KEYS` to a directory of `<serial>.pem` public keys (default: the bundled
# sample's).

# %%
import os
from pathlib import Path

import plotly.express as px
import plotly.graph_objects as go
import polars as pl

from zapanalytics.audit.limits import CLAIM_PCT, EN50470_3_LIMITS_PCT, MID_MPE_PCT
from zapanalytics.audit.store_audit import audit_store
from zapanalytics.report.audit_section import gain_figure
from zapanalytics.store import read_only_store

db_path = Path(os.environ.get("ZAPANALYTICS_DB", Path.cwd().parent / "out" / "zap.duckdb"))
keys_dir = Path(
    os.environ.get("ZAPANALYTICS_KEYS", Path.cwd().parent / "data" / "sample" / "keys")
)
public_keys = (
    {path.stem: path.read_text() for path in keys_dir.glob("*.pem")} if keys_dir.is_dir() else {}
)
con = read_only_store(db_path)
result = audit_store(con, public_keys=public_keys)
names = con.sql("SELECT charger_id, device_id, name FROM chargers").pl()
reference_meters = con.sql(
    "SELECT kind, count(DISTINCT meter_id) AS meters, count(*) AS readings "
    "FROM reference_readings GROUP BY kind ORDER BY kind"
).pl()
con.close()
print(f"{len(public_keys)} public keys from {keys_dir}")
reference_meters

# %%
summary = result.as_dict()["summary"]
summary

# %%
assert result.chargers.height == names.height, "one audit row per charger in the store"

# %% [markdown]
# ## Verdicts per charger
# `errors` and `warnings` count integrity findings; `accuracy_*` is the sub-meter
# comparison (`inconclusive` where a charger has no sub-meter); `gain_*` the HAN
# regression with its 95 % interval widened by the HAN meter's own class limit (`fail` is
# flagged: the whole interval lies beyond ±1 %). Chargers are named `name (serial)`.

# %%
verdicts = (
    result.chargers.select(
        pl.col("charger_name").alias("name"),
        "errors",
        "warnings",
        "accuracy_verdict",
        pl.col("accuracy_error_pct").round(2),
        pl.col("accuracy_uncertainty_pct").round(2),
        "gain_verdict",
        pl.col("gain_error_pct").round(2),
        pl.col("gain_ci_low_pct").round(2),
        pl.col("gain_ci_high_pct").round(2),
    )
    .sort("name")
)
verdicts

# %% [markdown]
# ## Integrity findings
# Errors mean the evidence is wrong or missing; warnings need an explanation (a meter
# exchange, a clock that is off). The assumptions behind each check are listed with the
# audit.

# %%
findings = result.findings.filter(pl.col("severity") != "info").with_columns(
    pl.col("charger_name").alias("name")
)
if findings.is_empty():
    print("No integrity findings: registers, signed records, sessions and clocks agree.")
findings.select("severity", "kind", "name", "session_id", "ts_utc", "explanation")

# %%
for assumption in result.as_dict()["assumptions"]:
    print("-", assumption)

# %% [markdown]
# ## Accuracy against the sub-meters: error against current
# One point per comparison window, with its expanded uncertainty (k = 2: resolution,
# interpolation and timing of the window, plus the reference meter's class); diamonds are
# the band results. The shaded limits: Zaptec's ±1 % claim, EN 50470-3 class B and the
# MID maximum permissible error for class B (mildest temperature band). A verdict is
# `pass` only when the interval lies inside the limit and `fail` only when it lies wholly
# outside.

# %%
windows = result.accuracy.windows.with_columns(pl.col("charger_name").alias("name"))
bands = result.accuracy.bands.with_columns(pl.col("charger_name").alias("name"))
if windows.is_empty():
    print(
        "This store holds no sub-meter readings paired with charger registers, so there is "
        "nothing to compare: load a sub-meter with `zapanalytics ingest submeter`."
    )
else:
    u_reference = float(bands["u_reference_pct"][0])
    windows = windows.with_columns(
        expanded_pct=2
        * (
            pl.col("u_resolution_pct") ** 2
            + pl.col("u_interpolation_pct") ** 2
            + pl.col("u_timing_pct") ** 2
            + u_reference**2
        ).sqrt()
    )
    limits = {
        "±1 % claim": CLAIM_PCT,
        "EN 50470-3 class B": EN50470_3_LIMITS_PCT["B"][1],
        "MID class B": MID_MPE_PCT["+5..+30 C"]["B"][1],
    }
    for name, group in windows.group_by("name", maintain_order=True):
        figure = px.scatter(
            group.to_pandas(),
            x="mean_current_a",
            y="error_pct",
            error_y="expanded_pct",
            color="band",
            hover_data=["start_utc", "end_utc", "reference_energy_kwh", "source"],
            title=f"{name[0]}: meter error against current, per window",
        )
        band_rows = bands.filter(pl.col("name") == name[0])
        figure.add_trace(
            go.Scatter(
                x=band_rows["mean_current_a"].to_list(),
                y=band_rows["error_pct"].to_list(),
                error_y={"type": "data", "array": band_rows["expanded_uncertainty_pct"].to_list()},
                mode="markers",
                marker={"symbol": "diamond", "size": 12, "color": "black"},
                name="band (k=2)",
            )
        )
        for (label, limit), dash in zip(limits.items(), ("solid", "dash", "dot"), strict=True):
            for sign in (1, -1):
                figure.add_hline(
                    y=sign * limit,
                    line_dash=dash,
                    line_color="firebrick",
                    annotation_text=label if sign > 0 else None,
                )
        figure.update_layout(xaxis_title="Current [A]", yaxis_title="Error [%]")
        figure.show()

# %%
bands.select(
    "name",
    "band",
    "windows",
    pl.col("reference_energy_kwh").round(1),
    pl.col("error_pct").round(3),
    pl.col("expanded_uncertainty_pct").round(3),
    "verdict_claim",
    "verdict_en50470_3",
    "verdict_mid",
)

# %% [markdown]
# ## Gain errors from the HAN meter
# Each charger's gain error with its 95 % interval, from the regression of the HAN
# meter's hourly energy on the chargers' hourly energies plus a household baseline (a
# level per local day and an hour-of-day profile). Hours of load balancing are left
# out. The HAN meter is the reference: its own error shifts every estimate alike, so each
# interval is widened by the HAN meter's class limit (a rectangular bound; class B, 2 %,
# unless `audit_store(..., han_meter_class=...)` says otherwise). The thin bars are the
# regression alone, the thick ones with the HAN meter's uncertainty.

# %%
gains = result.gains.chargers.with_columns(pl.col("charger_name").alias("name"))
fit = result.gains.installations
estimated = gains.filter(pl.col("gain_error_pct").is_not_null())
if estimated.is_empty():
    print(
        "No gain estimates: the store has no HAN readings for an installation, or too few "
        "charging hours (see `hours` and `charging_hours`)."
    )
else:
    gain_figure(estimated).show()
gains.select(
    "name",
    "hours",
    "charging_hours",
    pl.col("charger_energy_kwh").round(1),
    pl.col("gain_error_pct").round(3),
    pl.col("regression_ci_low_pct").round(3),
    pl.col("regression_ci_high_pct").round(3),
    pl.col("ci_low_pct").round(3),
    pl.col("ci_high_pct").round(3),
    "han_meter_class",
    "han_class_source",
    pl.col("u_han_pct").round(3),
    "verdict",
    "flagged",
).sort("name")

# %%
fit
