"""Allocated against invoiced: the residual line closes every month to the øre."""

from __future__ import annotations

import polars as pl
import pytest
from billing_helpers import details_frame, flat_prices, round_rates, sessions_frame, utc

from zapanalytics.billing import split
from zapanalytics.billing.energy import month_bounds, user_interval_energy
from zapanalytics.billing.rates import Site
from zapanalytics.billing.reconcile import InvoiceError, invoices_frame, read_invoices, reconcile
from zapanalytics.billing.tariff import interval_calendar


@pytest.fixture
def spot_split(tmp_path) -> split.Split:
    rates = round_rates(tmp_path)
    start, end = month_bounds("2025-10", "Europe/Oslo")
    calendar = interval_calendar(start, end, rates, Site(), prices=flat_prices(start, end, 1.0))
    # Kari 7 kWh, Ola 2 kWh, Per 1 kWh at 1.00 NOK excl. VAT.
    sessions = sessions_frame(
        [
            {
                "session_id": s,
                "user_id": u,
                "start_utc": utc(2025, 10, 6 + i, 10),
                "end_utc": utc(2025, 10, 6 + i, 11),
                "energy_kwh": e,
            }
            for i, (s, u, e) in enumerate(
                [("a", "kari", 7.0), ("b", "ola", 2.0), ("c", "per", 1.0)]
            )
        ]
    )
    return split.spot(user_interval_energy(sessions, details_frame([])), calendar)


def _totals(result: split.Split) -> int:
    return int(result.lines["amount_ore"].sum() + result.common["amount_ore"].sum())


def test_residual_shared_by_energy_closes_to_the_invoice(spot_split):
    # Users hold 7.00 + 2.00 + 1.00 = 10.00 excl. VAT = 12.50 incl. VAT (supplier lines).
    assert _totals(spot_split) == 1250
    invoices = invoices_frame([{"month": "2025-10", "supplier_nok": "13,51", "grid_nok": 41.0}])
    done = reconcile(spot_split, invoices, policy="energy")
    summary = {r["invoice"]: r for r in done.summary.iter_rows(named=True)}
    # Supplier: 13.51 − 12.50 = 1.01 residual. Grid: nothing allocated by `spot`, 41.00 residual.
    assert summary["supplier"]["residual_ore"] == 101
    assert summary["grid"]["residual_ore"] == 4100
    # 42.01 NOK shared 7 : 2 : 1 → 29.407, 8.402, 4.201 → 29.41, 8.40, 4.20 (largest remainder).
    shares = {r["user_id"]: r["amount_ore"] for r in done.shares.iter_rows(named=True)}
    assert shares == {"kari": 2941, "ola": 840, "per": 420}
    # Each share is split into excl. VAT and VAT at 25 %: 29.41 → 23.53 + 5.88.
    kari = done.shares.filter(pl.col("user_id") == "kari").row(0, named=True)
    assert (kari["amount_ex_vat_ore"], kari["vat_ore"]) == (2353, 588)
    # After the residual line, users + common equal the invoices: 13.51 + 41.00 = 54.51.
    assert _totals(done.split) == 5451
    assert abs(_totals(done.split) / 100 - (13.51 + 41.00)) < 0.01


def test_equal_and_common_policies(spot_split):
    invoices = invoices_frame([{"month": "2025-10", "supplier_nok": 13.50, "grid_nok": None}])
    equal = reconcile(spot_split, invoices, policy="equal")
    # 1.00 NOK residual shared equally: 0.34 + 0.33 + 0.33.
    assert sorted(equal.shares["amount_ore"].to_list()) == [33, 33, 34]
    assert _totals(equal.split) == 1350
    kept = reconcile(spot_split, invoices, policy="common")
    assert kept.shares["user_id"].to_list() == [None]
    assert kept.split.lines.equals(spot_split.lines)  # users' statements unchanged
    assert _totals(kept.split) == 1350


def test_flat_split_is_compared_with_the_sum_of_the_invoices(tmp_path):
    rates = round_rates(tmp_path)
    start, end = month_bounds("2025-10", "Europe/Oslo")
    calendar = interval_calendar(start, end, rates, Site())
    sessions = sessions_frame(
        [
            {
                "session_id": "a",
                "user_id": "kari",
                "start_utc": utc(2025, 10, 6, 10),
                "end_utc": utc(2025, 10, 6, 11),
                "energy_kwh": 10.0,
            }
        ]
    )
    flat = split.flat(user_interval_energy(sessions, details_frame([])), calendar, 2.0)
    done = reconcile(
        flat, invoices_frame([{"month": "2025-10", "supplier_nok": 15, "grid_nok": 10}])
    )
    # Allocated 20.00 incl. VAT against 25.00 invoiced: residual 5.00, all to kari.
    assert done.summary["invoice"].to_list() == ["total"]
    assert done.summary["residual_ore"].to_list() == [500]
    assert _totals(done.split) == 2500


def test_invoice_files(tmp_path):
    csv_file = tmp_path / "inv.csv"
    csv_file.write_text(
        "\ufeffmonth,supplier_nok,grid_nok\n2025-10,1 234.50,\n2025-11,10,20\n", encoding="utf-8"
    )
    frame = read_invoices(csv_file)
    assert frame.rows() == [("2025-10", 123450, None), ("2025-11", 1000, 2000)]
    toml_file = tmp_path / "inv.toml"
    toml_file.write_text("[[invoice]]\nmonth = '2025-10'\nsupplier_nok = 99.99\ngrid_nok = 0.01\n")
    assert read_invoices(toml_file).rows() == [("2025-10", 9999, 1)]
    for text, message in [
        ("month,supplier_nok\n2025-13,1\n", "YYYY-MM"),
        ("month,supplier_nok\n2025-10,abc\n", "not an amount"),
        ("month,supplier_nok\n2025-10,nan\n", "plausible"),
        ("month,supplier_nok,grid_nok\n2025-10,,\n", "give supplier_nok"),
        ("month,supplier_nok\n2025-10,1\n2025-10,2\n", "given twice"),
        ("total\n1\n", "header"),
    ]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(InvoiceError, match=message):
            read_invoices(bad)
    with pytest.raises(InvoiceError, match="no such"):
        read_invoices(tmp_path / "none.csv")


def test_month_without_invoice_is_refused(spot_split):
    with pytest.raises(InvoiceError, match="no invoice for 2025-10"):
        reconcile(spot_split, invoices_frame([{"month": "2025-09", "supplier_nok": 1}]))
