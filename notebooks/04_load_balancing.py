# %% [markdown]
# # Load balancing: did the chargers obey, was it fair, would a bigger fuse pay off?
#
# The replay rebuilds each supply line's load from what the chargers reported (currents
# 507–509, allocations 708, operation mode 710) as step functions, checks it against the
# available current and against `firmware_ref`'s reference allocator, measures fairness,
# and re-runs the recorded sessions under other fuses, charger counts and policies.
# `zapanalytics replay --db … --json` prints the same numbers.
#
# Set `ZAPANALYTICS_DB` to point at another store; the default is the demo's `out/zap.duckdb`.

# %%
import os
from pathlib import Path

import plotly.express as px
import plotly.graph_objects as go
import polars as pl

from zapanalytics.naming import charger_names, with_charger_names
from zapanalytics.replay import Scenario, load_recording, run_replay
from zapanalytics.replay.conformance import findings_frame
from zapanalytics.report.replay_section import finding_figure, finding_sentence
from zapanalytics.store import read_only_store

db_path = Path(os.environ.get("ZAPANALYTICS_DB", Path.cwd().parent / "out" / "zap.duckdb"))
con = read_only_store(db_path)
recording = load_recording(con)
con.close()
site = recording.installation
zone = site.timezone
print(
    f"{site.name}: {site.network_type}, main fuse {site.main_fuse_a} A, "
    f"available {site.chargers_limit_a} A, {recording.chargers.height} chargers, "
    f"{recording.sessions.height} sessions"
)

# %% [markdown]
# ## Replay
# The what-ifs: a main fuse one size up, half the chargers, and first-come instead of the
# reference policy. `recorded` is what happened; `baseline` is the reference allocator on
# the recorded site (it should deliver what was delivered).

# %%
fuse = site.main_fuse_a or site.chargers_limit_a or 63.0
scenarios = [
    Scenario(f"fuse {fuse + 16:g} A", main_fuse_a=fuse + 16),
    Scenario("half the chargers", n_chargers=max(1, recording.chargers.height // 2)),
    Scenario("first come", policy="first_come"),
]
result = run_replay(recording, scenarios)
result.timings_s

# %% [markdown]
# ## Findings
# A line above its limit or a charger above its allocation for longer than the 15 s grace
# window of a pilot change, offers below 6 A, too many 1↔3-phase switches, and allocations
# that differ from the reference allocator's.

# %%
names = charger_names(recording.chargers)  # "name (serial)", as in the report
findings = with_charger_names(findings_frame(result.findings), names).with_columns(
    pl.col("start_utc").dt.convert_time_zone(zone).alias("start_local"),
    pl.col("end_utc").dt.convert_time_zone(zone).alias("end_local"),
)
findings.select("kind", "start_local", "end_local", "charger_name", "phase", "magnitude_a",
                "constraint")  # fmt: skip

# %%
assert all(f.end_utc >= f.start_utc for f in result.findings)

# %% [markdown]
# Each finding in one sentence and in its own window, with the limit it broke, as the
# report shows them.

# %%
for finding in result.findings[:6]:
    print(finding_sentence(finding, names, zone))
    finding_figure(finding, recording, names).show()

# %% [markdown]
# ## Per-phase load on the busiest day
# The chargers' measured load on each supply line (phasor magnitudes on IT) against the
# available current, step by step; the allocations the load balancer made are dashed.

# %%
lines = recording.line_steps.with_columns(
    pl.col("start_utc").dt.convert_time_zone(zone).alias("start_local")
)
peak = lines.select(pl.max_horizontal("chargers_l1_a", "chargers_l2_a", "chargers_l3_a"))
busiest = lines.filter(peak.to_series() == peak.to_series().max()).row(0, named=True)
day = busiest["start_local"].date()
today = lines.filter(pl.col("start_local").dt.date() == day)
figure = go.Figure()
for k, colour in zip((1, 2, 3), px.colors.qualitative.Plotly, strict=False):
    figure.add_scatter(x=today["start_local"], y=today[f"chargers_l{k}_a"], name=f"L{k} measured",
                       line={"shape": "hv", "color": colour})  # fmt: skip
    figure.add_scatter(x=today["start_local"], y=today[f"allocated_l{k}_a"], name=f"L{k} allocated",
                       line={"shape": "hv", "color": colour, "dash": "dot"})  # fmt: skip
if site.chargers_limit_a is not None:
    figure.add_hline(y=site.chargers_limit_a, line_dash="dash", line_color="red",
                     annotation_text=f"available {site.chargers_limit_a:g} A")  # fmt: skip
figure.update_layout(title=f"Load per supply line on {day} ({zone})", yaxis_title="Current [A]")
figure

# %% [markdown]
# ## Allocations per charger that day

# %%
steps = recording.charger_steps.filter(pl.col("allocated_current_a").is_not_null()).with_columns(
    pl.col("start_utc").dt.convert_time_zone(zone).alias("start_local"),
    pl.col("charger_id").replace_strict(names, default=pl.col("charger_id")).alias("charger"),
)
allocations = steps.filter(pl.col("start_local").dt.date() == day)
figure = px.line(allocations, x="start_local", y="allocated_current_a", color="charger",
                 line_shape="hv", title=f"ChargeCurrentSet (708) per charger on {day}")  # fmt: skip
figure.update_layout(yaxis_title="Allocated current [A]", xaxis_title=None)
figure

# %% [markdown]
# ## Fairness
# Jain's index of the allocations (each normalised by what the car can take), against the
# max-min fair share; waiting is the time from authorisation to the first current.

# %%
result.fairness.summary

# %%
result.fairness.users.head(10)

# %% [markdown]
# ## Scenarios side by side
# Energy not delivered by departure, peak line current and power, and the capacity step
# (mean of the three highest hourly energies on three days of a month).

# %%
table = pl.DataFrame([{"scenario": s.scenario.name, **s.summary} for s in result.scenarios])
table.select("scenario", "chargers", "main_fuse_a", "energy_delivered_kwh",
             "energy_not_delivered_kwh", "sessions_not_full", "peak_line_current_a",
             "peak_power_kw", "worst_capacity_step")  # fmt: skip

# %%
baseline = next(s for s in result.scenarios if s.scenario.name == "baseline").summary
recorded = result.scenarios[0].summary
assert baseline["energy_requested_kwh"] == recorded["energy_requested_kwh"]
