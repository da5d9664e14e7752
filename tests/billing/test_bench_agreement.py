"""The benchmark's plain-pandas comparator computes the same bill as ours, to the øre."""

from __future__ import annotations

from benchmarks.bench_billing import agree, bill_pandas, bill_polars, generate
from zapanalytics.billing.rates import load_rates


def test_pandas_comparator_agrees_on_a_small_year_start():
    sessions, details, prices = generate(users=4, days=40, seed=11)
    rates = load_rates()
    ours = bill_polars(sessions, details, prices, rates, 40)
    theirs = bill_pandas(sessions.to_pandas(), details.to_pandas(), prices.to_pandas(), rates, 40)
    ok, detail = agree(ours, theirs)
    assert ok, detail
    # Two months (January and 9 days of February), 4 users × 7 lines + a common line each.
    assert ours.height == 2 * (4 * 7 + 1)
    assert ours["amount_ore"].sum() > 0
