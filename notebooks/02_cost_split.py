# %% [markdown]
# # Cost split: flat, spot and full, side by side
#
# Who should pay what for the charging of one month? This notebook bills the busiest month in
# the store three ways with `zapanalytics.billing` — the same functions `zapanalytics bill`
# uses — and shows who used the peak hours that set the grid company's capacity charge.
#
# * **flat**: one price per kWh incl. VAT, what most housing co-ops do;
# * **spot**: each quarter-hour's energy at its spot price, plus markup and VAT;
# * **full**: spot + grid energy charge + elavgift + Enova fee − strømstøtte + VAT, plus the
#   capacity charge shared by each user's energy in the hours that set the month's step.
#
# The spot and full methods need spot prices in the store (`zapanalytics ingest prices`).
# Set `ZAPANALYTICS_DB` to point at another store; the default is the demo's `out/zap.duckdb`.

# %%
import os
from pathlib import Path

import plotly.express as px
import polars as pl

from zapanalytics.billing.energy import month_bounds, user_interval_energy, with_local_bins
from zapanalytics.billing.monthly import bill_month
from zapanalytics.billing.statements import statement_document
from zapanalytics.billing.tariff import capacity_peaks
from zapanalytics.store import read_only_store

db_path = Path(os.environ.get("ZAPANALYTICS_DB", Path.cwd().parent / "out" / "zap.duckdb"))
con = read_only_store(db_path)
installation = con.sql("SELECT * FROM installations ORDER BY installation_id LIMIT 1").pl()
installation_id = installation["installation_id"][0] if installation.height else None
timezone = installation["timezone"][0] if installation.height else "Europe/Oslo"
price_area = installation["price_area"][0] if installation.height else None
stored_grid_company = (
    installation["grid_company"][0]
    if installation.height and "grid_company" in installation.columns
    else None
)
installation.select("installation_id", "name", "timezone", "price_area")

# %% [markdown]
# ## The month to bill
# The local month with the most charged energy. A session is billed in the month its energy
# was delivered: one that runs past midnight on the last day is split at the boundary.

# %%
busiest = con.sql(
    """
    SELECT strftime(timezone($zone, d.ts_utc - INTERVAL 1 MICROSECOND), '%Y-%m') AS month,
           sum(d.energy_kwh) AS energy_kwh
    FROM energy_details d JOIN canonical_sessions s USING (session_id)
    WHERE NOT coalesce(s.is_void, FALSE)
    GROUP BY month ORDER BY energy_kwh DESC, month LIMIT 1
    """,
    params={"zone": timezone},
).fetchall()
month = busiest[0][0] if busiest else None
assert month is not None, "the store holds no charged energy"
start, end = month_bounds(month, timezone)
prices_in_month = con.execute(
    "SELECT count(*) FROM prices WHERE price_area = ? AND start_utc < ? AND end_utc > ?",
    [price_area, end, start],
).fetchall()[0][0]
print(f"billing {month} ({timezone}); spot prices for {price_area}: {prices_in_month} rows")

# %% [markdown]
# ## Three methods
# Flat at 2.50 NOK/kWh incl. VAT. Spot and full use the store's prices, a markup of 5 øre/kWh
# and — unless the installation names its grid company — Elvia's household tariff (the
# grid company of Oslo and much of eastern Norway, NO1); change `GRID_COMPANY` for yours.

# %%
FLAT_PRICE = 2.50
MARKUP = 0.05
GRID_COMPANY = "elvia"

bills = {
    "flat": bill_month(
        con, month, "flat", price_nok_per_kwh=FLAT_PRICE, installation_id=installation_id
    )
}
if prices_in_month:
    options = {"markup_nok_per_kwh": MARKUP, "installation_id": installation_id}
    for method, extra in (
        ("spot", {}),
        ("full", {"grid_company": stored_grid_company or GRID_COMPANY}),
    ):
        try:
            bills[method] = bill_month(con, month, method, **options, **extra)
        except ValueError as error:  # e.g. no price for some quarter-hours with charging
            print(f"{method} method not possible: {error}")
else:
    print(
        f"NO SPOT PRICES for {price_area} in {month}: only the flat method can run. "
        "Ingest prices (zapanalytics ingest prices) to compare spot and full."
    )
documents = {method: statement_document(bill) for method, bill in bills.items()}
per_user = pl.concat(
    [
        pl.DataFrame(
            [
                {
                    "method": method,
                    "user": u["user_name"] or u["user_id"] or "(no user)",
                    "energy_kwh": u["energy_kwh"],
                    "cost_nok": u["cost_nok"],
                }
                for u in document["users"]
            ]
        )
        for method, document in documents.items()
    ]
)
per_user.pivot(on="method", index=["user", "energy_kwh"], values="cost_nok").sort(
    "energy_kwh", descending=True
)

# %%
assert (
    abs(
        per_user.filter(pl.col("method") == "flat")["cost_nok"].sum()
        - documents["flat"]["total_cost_nok"]
    )
    < 0.005
)
figure = px.bar(
    per_user.to_pandas(),
    x="user",
    y="cost_nok",
    color="method",
    barmode="group",
    title=f"Cost per user, {month}, by method [NOK incl. VAT]",
)
figure.update_layout(yaxis_title="NOK incl. VAT", xaxis_title=None)
figure

# %% [markdown]
# ## What the full method is made of
# Line by line for the whole co-op: the capacity charge is the part a flat price hides.

# %%
if "full" in documents:
    lines = (
        pl.DataFrame(
            [
                {"line": line["label"], "amount_nok": line["amount_nok"]}
                for user in documents["full"]["users"]
                for line in user["lines"]
            ]
            + [
                {"line": line["label"], "amount_nok": line["amount_nok"]}
                for line in documents["full"]["common"]["lines"]
            ]
        )
        .group_by("line", maintain_order=True)
        .agg(pl.col("amount_nok").sum().round(2))
    )
    print(documents["full"]["capacity"])
    display_lines = lines
else:
    display_lines = pl.DataFrame({"line": ["(full method needs prices)"], "amount_nok": [None]})
display_lines

# %% [markdown]
# ## Auditable lines, and who buys the power
# Every line carries its quantity, unit rate (a weighted mean where the rate varies within the
# month), the rate's valid-from date, its source and whether the tables mark it verified. The
# customer type changes the rules: a business pays VAT even in Nord-Norge, gets no strømstøtte
# and pays the Enova fee per metering point and year; a co-op's strømstøtte cap counts its
# dwellings.

# %%
audit_columns = ["label", "quantity", "unit", "unit_rate_nok", "unit_rate_basis", "amount_nok",
                 "rate_valid_from", "rate_verified"]  # fmt: skip
method_shown = "full" if "full" in documents else "flat"
first_user = documents[method_shown]["users"][0]
print(first_user["user_name"] or first_user["user_id"], f"({method_shown})")
print(pl.DataFrame(first_user["lines"]).select(audit_columns))
if "full" in documents:
    by_customer = {"household": documents["full"]["total_cost_nok"]}
    for customer, extra in (("coop", {"dwellings": 40}), ("business", {})):
        grid = {"grid_company": stored_grid_company or GRID_COMPANY}
        other = bill_month(con, month, "full", customer_type=customer, **options, **grid, **extra)
        by_customer[customer] = statement_document(other)["total_cost_nok"]
    print("users' total incl. VAT by customer type [NOK]:", by_customer)

# %% [markdown]
# ## Sendable statements
# One PDF per user (Bokmål for a Norwegian site), named `<YYYY-MM> <name>.pdf`, with the
# lines, the user's sessions and a chart; `statements.csv` lists them for a mail merge.

# %%
import tempfile  # noqa: E402

from zapanalytics.report.statements_files import write_statements  # noqa: E402

statements_dir = Path(tempfile.mkdtemp(prefix="statements-"))
written = write_statements(documents[method_shown], statements_dir, plotlyjs="directory")
print("\n".join(p.name for p in written if p.suffix == ".pdf"))

# %% [markdown]
# ## Who used the peak hours
# The grid company prices the month by the mean of the three highest hours on three
# different days. The full method shares the capacity charge by each user's energy in those
# hours; here are the hours and who drew the power. (Computed from the charging alone, so it
# is shown even without prices.)

# %%
sessions = con.sql(
    "SELECT session_id, user_id, user_name, start_utc, end_utc, energy_kwh, is_void FROM canonical_sessions"
).pl()
details = con.sql(
    "SELECT session_id, ts_utc, energy_kwh FROM energy_details ORDER BY session_id, ts_utc"
).pl()
energy = user_interval_energy(sessions, details, start_utc=start, end_utc=end)
names = sessions.group_by("user_id").agg(pl.col("user_name").drop_nulls().last())
hourly = (
    with_local_bins(energy.with_columns(pl.col("user_id").cast(pl.String)), timezone)
    .group_by("month", "day", "hour_start", "user_id")
    .agg(pl.col("energy_kwh").sum())
    .collect()
)
site = hourly.group_by("month", "day", "hour_start").agg(pl.col("energy_kwh").sum())
peaks = capacity_peaks(site)
in_peaks = (
    hourly.join(peaks.select("hour_start", "rank"), on="hour_start")
    .join(names, on="user_id", how="left")
    .with_columns(
        pl.col("user_name").fill_null(pl.col("user_id")).fill_null("(no user)").alias("user"),
        pl.format(
            "#{} {}", pl.col("rank"), pl.col("hour_start").dt.strftime("%a %d %b %H:00")
        ).alias("peak hour"),
    )
    .sort("rank", "user")
)
print(f"capacity figure: {peaks['energy_kwh'].sum() / 3:.2f} kW (mean of the three daily peaks)")
figure = px.bar(
    in_peaks.to_pandas(),
    x="peak hour",
    y="energy_kwh",
    color="user",
    title=f"Who charged in the hours that set {month}'s capacity step",
)
figure.update_layout(yaxis_title="Energy in the hour [kWh]", xaxis_title=None)
figure

# %%
share = (
    in_peaks.group_by("user")
    .agg(pl.col("energy_kwh").sum())
    .with_columns(
        (pl.col("energy_kwh") / pl.col("energy_kwh").sum() * 100)
        .round(1)
        .alias("share_of_peak_pct")
    )
    .sort("share_of_peak_pct", descending=True)
)
monthly = (
    hourly.join(names, on="user_id", how="left")
    .with_columns(
        pl.col("user_name").fill_null(pl.col("user_id")).fill_null("(no user)").alias("user")
    )
    .group_by("user")
    .agg(pl.col("energy_kwh").sum().alias("month_kwh"))
)
share = share.join(monthly, on="user", how="left").with_columns(
    (pl.col("month_kwh") / pl.col("month_kwh").sum() * 100).round(1).alias("share_of_energy_pct")
)
assert abs(share["share_of_peak_pct"].sum() - 100) < 0.5
share

# %% [markdown]
# A user whose share of the peak hours is larger than their share of the month's energy
# charged when the building was busiest: the full method bills that to them, a flat price
# spreads it over everyone.

# %%
con.close()
