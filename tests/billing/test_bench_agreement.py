"""The benchmark's plain-pandas comparator computes the same bill as ours, to the øre.

The household's strømstøtte cap belongs to its metering point (5,000 kWh for all the chargers
together), as in the comparator's ``cap_scope="metering_point"``. Its four users charge more
than that in January, so the cap binds there; capped per user, the subsidy would be larger.
"""

from __future__ import annotations

import polars as pl

from benchmarks.bench_billing import agree, bill_pandas, bill_polars, generate
from zapanalytics.billing.rates import load_rates


def test_pandas_comparator_agrees_on_a_small_year_start():
    sessions, details, prices = generate(users=4, days=40, seed=11)
    rates = load_rates()
    inputs = (sessions.to_pandas(), details.to_pandas(), prices.to_pandas(), rates, 40)
    ours = bill_polars(sessions, details, prices, rates, 40)
    theirs = bill_pandas(*inputs, cap_scope="metering_point")
    ok, detail = agree(ours, theirs)
    assert ok, detail
    # Two months (January and 9 days of February), 4 users × 7 lines + a common line each.
    assert ours.height == 2 * (4 * 7 + 1)
    assert ours["amount_ore"].sum() > 0
    # The cap binds in January: each user counted as a dwelling would get more support there,
    # and the same in February, where the four stay under 5,000 kWh together.
    per_user = pl.from_pandas(bill_pandas(*inputs, cap_scope="user"))
    support = ours.filter(pl.col("line") == "stromstotte")
    for month, binds in (("2025-01", True), ("2025-02", False)):
        mine = support.filter(pl.col("month") == month)["amount_ore"].sum()
        each = per_user.filter((pl.col("line") == "stromstotte") & (pl.col("month") == month))[
            "amount_ore"
        ].sum()
        assert (each < mine < 0) if binds else (each == mine < 0)
