# %% [markdown]
# # zapanalytics quickstart
#
# Open the store that `make demo` wrote, query it with DuckDB into polars and pandas, and
# draw one chart. Every timestamp in the store is UTC; we convert to the installation's zone
# (`installations.timezone`) only to display and bin.
#
# Set `ZAPANALYTICS_DB` to point at another store; the default is the demo's `out/zap.duckdb`.

# %%
import os
from pathlib import Path

import plotly.express as px
import polars as pl

from zapanalytics.store import read_only_store

db_path = Path(os.environ.get("ZAPANALYTICS_DB", Path.cwd().parent / "out" / "zap.duckdb"))
con = read_only_store(db_path)
con.sql("SELECT table_name, estimated_size FROM duckdb_tables() ORDER BY table_name").pl()

# %% [markdown]
# ## Sessions into polars
# `canonical_sessions` holds one row per charging: when the cloud, the charger's OCPP
# transaction and a portal export all report one charging, the table `sessions` keeps every
# copy and this view keeps the one that stands for it (the others are in `session_copies`,
# each with its `canonical_session_id` and `duplicate_reason`). `energy_kwh` is what the
# charger's meter registered. Void sessions were replaced by another session and carry no bill.

# %%
sessions = con.sql(
    "SELECT session_id, charger_id, user_name, start_utc, end_utc, energy_kwh, is_void"
    " FROM canonical_sessions"
).pl()
copies = con.sql("SELECT source, count(*) AS copies FROM session_copies GROUP BY source").pl()
copies
timezone = con.sql("SELECT timezone FROM installations LIMIT 1").fetchall()[0][0]
billable = sessions.filter(~pl.col("is_void").fill_null(False))
per_user = (
    billable.group_by("user_name")
    .agg(pl.len().alias("sessions"), pl.col("energy_kwh").sum().round(3))
    .sort("energy_kwh", descending=True)
)
per_user

# %%
assert per_user["energy_kwh"].sum() > 0, "the demo store should hold charged energy"
assert per_user["user_name"].null_count() == 0, "every charging of the demo has a user"

# %% [markdown]
# ## The same through pandas
# Interval energy (`energy_details`) binned to local days. An interval row is stamped at
# the end of its interval, so we step back a microsecond before binning.

# %%
daily = con.sql(
    """
    SELECT date_trunc('day', timezone($zone, ts_utc - INTERVAL 1 MICROSECOND)) AS local_day,
           sum(energy_kwh) AS energy_kwh
    FROM energy_details GROUP BY local_day ORDER BY local_day
    """,
    params={"zone": timezone},
).df()
daily.tail()

# %%
figure = px.bar(daily, x="local_day", y="energy_kwh", title=f"Charged energy per day ({timezone})")
figure.update_layout(yaxis_title="Energy [kWh]", xaxis_title=None)
figure

# %%
con.close()
