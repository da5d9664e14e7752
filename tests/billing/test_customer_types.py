"""Customer types and invoices, hand-computed: a co-op over the strømstøtte cap, a business in
Troms and Nord-Troms, a household in Finnmark, and grid-only / supplier-only invoices.

Every case uses the round-number test rates (``billing_helpers.TEST_RATES``): spot 1.75 NOK/kWh,
grid 0.40 NOK/kWh on working days 06-22 (0.20 otherwise), elavgift 0.10 (reduced 0.005), Enova
0.01 NOK/kWh or 800 NOK/year, strømstøtte (hourly price − 0.75) × 0.90 = 0.90 NOK/kWh,
capacity 1,200 / 2,400 / … NOK/year for 0 / 2 / 5 … kW, VAT 25 %.
"""

from __future__ import annotations

import polars as pl
import pytest
from billing_helpers import (
    INSTALLATION,
    build_store,
    details_frame,
    flat_prices,
    round_rates,
    sessions_frame,
    utc,
)
from typer.testing import CliRunner

from zapanalytics.billing import split
from zapanalytics.billing.energy import month_bounds, user_interval_energy
from zapanalytics.billing.rates import RateTableError, Site, load_rates, site_from
from zapanalytics.billing.reconcile import invoices_frame, reconcile
from zapanalytics.billing.tariff import interval_calendar
from zapanalytics.cli import app
from zapanalytics.store import read_only_store

OCTOBER = (utc(2025, 9, 30, 22), utc(2025, 10, 31, 23))


def _calendar(rates, site: Site):
    start, end = month_bounds("2025-10", site.timezone)
    return interval_calendar(
        start,
        end,
        rates,
        site,
        prices=flat_prices(*OCTOBER, 1.75),
        grid=rates.grid("testnett"),
    )


def _session(session_id: str, user: str, start, energy: float) -> dict:
    return {
        "session_id": session_id,
        "user_id": user,
        "start_utc": start,
        "end_utc": start.replace(hour=start.hour + 1),
        "energy_kwh": energy,
    }


def _lines(result: split.Split, user: str) -> dict[str, tuple[float, int, int, int]]:
    return {
        r["line"]: (r["quantity_kwh"], r["amount_ex_vat_ore"], r["vat_ore"], r["amount_ore"])
        for r in result.lines.filter(pl.col("user_id") == user).iter_rows(named=True)
    }


def _kari_monday(tmp_path, site: Site) -> split.Split:
    """Kari charges 10 kWh on Monday 6 Oct 2025, 12-13 Oslo (a working-day hour)."""
    rates = round_rates(tmp_path)
    energy = user_interval_energy(
        sessions_frame([_session("a", "kari", utc(2025, 10, 6, 10), 10.0)]), details_frame([])
    )
    return split.full(energy, _calendar(rates, site), rates.grid("testnett"))


def test_coop_with_40_dwellings_over_the_stromstotte_cap(tmp_path):
    rates = round_rates(tmp_path)
    site = Site(grid_company="testnett", customer_type="coop", dwellings=40)
    calendar = _calendar(rates, site)
    # The common meter's cap: 5,000 kWh × 40 dwellings = 200,000 kWh in October.
    assert calendar["subsidy_cap_kwh"].unique().to_list() == [200_000.0]
    # The AMS meter: the co-op draws 300 kWh every hour (chargers included).
    meter = calendar.select("hour_start").unique(maintain_order=True).with_columns(energy_kwh=300.0)
    sessions = sessions_frame(
        [
            # Hour 132 of the month (Mon 6 Oct 10:00 UTC): 132 × 300 = 39,600 kWh used, under the cap.
            _session("a", "kari", utc(2025, 10, 6, 10), 10.0),
            # Hour 666 (Tue 28 Oct 16:00 UTC): 666 × 300 = 199,800 kWh used before it; the cap's
            # last 200 kWh go to this hour's first 200 of 300 kWh, quarter by quarter (75 each):
            # 1, 1, 50/75, 0 of each quarter → Per's 1.5 kWh a quarter: 1.5 + 1.5 + 1.0 + 0 = 4 kWh.
            _session("c", "per", utc(2025, 10, 28, 16), 6.0),
            # Hour 684 (Wed 29 Oct 10:00 UTC): 205,200 kWh used before it, the cap is spent.
            _session("b", "ola", utc(2025, 10, 29, 10), 12.0),
        ]
    )
    energy = user_interval_energy(sessions, details_frame([]))
    result = split.full(energy, calendar, rates.grid("testnett"), site_hourly_kwh=meter)
    support = {
        r["user_id"]: (r["quantity_kwh"], r["amount_ex_vat_ore"], r["vat_ore"])
        for r in result.lines.filter(pl.col("line") == "stromstotte").iter_rows(named=True)
    }
    # (1.75 − 0.75) × 0.90 = 0.90 NOK/kWh, VAT 25 %:
    # Kari 10 × 0.90 = 9.00 (+2.25 VAT); Per 4 × 0.90 = 3.60 (+0.90); Ola nothing.
    assert support == {
        "kari": (pytest.approx(10.0), -900, -225),
        "per": (pytest.approx(4.0), -360, -90),
    }
    # Counting each charging user as a dwelling (5,000 kWh each) would have supported all 28 kWh.
    household = split.full(
        energy,
        _calendar(rates, Site(grid_company="testnett")),
        rates.grid("testnett"),
        site_hourly_kwh=meter,
    )
    # A household's own meter: its cap of 5,000 kWh is spent after 5,000 / 300 = 16.7 hours.
    assert household.lines.filter(pl.col("line") == "stromstotte").height == 0


def test_business_in_troms_pays_vat_and_the_yearly_enova_fee(tmp_path):
    site = Site(
        grid_company="testnett", county="Troms", municipality="Tromsø", customer_type="business"
    )
    result = split.settle_rounding(
        _kari_monday(tmp_path, site), _calendar(round_rates(tmp_path), site)
    )
    # VAT is due: the exemption in Troms is for household use only.
    # spot 10 × 1.75 = 17.50 + 4.375 → 4.38 VAT; grid 10 × 0.40 = 4.00 + 1.00; elavgift (the
    # general rate outside the tiltakssone) 10 × 0.10 = 1.00 + 0.25; no strømstøtte; no Enova
    # per kWh. Capacity: one loaded day, (10 + 0 + 0) / 3 = 3.33 kW → step 2-5 kW, 2,400 / 12 =
    # 200.00 + 50.00, all Kari's.
    assert _lines(result, "kari") == {
        "spot": (10.0, 1750, 438, 2188),
        "markup": (10.0, 0, 0, 0),
        "grid_energy": (10.0, 400, 100, 500),
        "elavgift": (10.0, 100, 25, 125),
        "capacity": (10.0, 20000, 5000, 25000),
    }
    # 17.50 + 0 + 4.00 + 1.00 + 200.00 = 222.50 excl. VAT; 4.38 + 1.00 + 0.25 + 50.00 = 55.63 VAT.
    kari = result.lines.filter(pl.col("user_id") == "kari")
    assert (kari["amount_ex_vat_ore"].sum(), kari["vat_ore"].sum()) == (22250, 5563)
    # The Enova fee is the metering point's: 800 / 12 = 66.666… → 66.67 + 16.67 VAT = 83.34.
    enova = result.common.filter(pl.col("line") == "enova_yearly").row(0, named=True)
    assert (enova["amount_ex_vat_ore"], enova["vat_ore"], enova["amount_ore"]) == (6667, 1667, 8334)

    # The same business in Nord-Troms (Nordreisa, the tiltakssone): the reduced elavgift, not
    # none: 10 × 0.005 = 0.05 + 0.0125 → 0.01 VAT.
    north = Site(
        grid_company="testnett", county="Troms", municipality="Nordreisa", customer_type="business"
    )
    assert _lines(_kari_monday(tmp_path, north), "kari")["elavgift"] == (10.0, 5, 1, 6)


def test_household_in_finnmark_pays_no_vat_and_no_elavgift(tmp_path):
    site = Site(grid_company="testnett", county="Finnmark", municipality="Alta")
    result = _kari_monday(tmp_path, site)
    # No VAT (household use in Finnmark), no elavgift (tiltakssonen), strømstøtte without VAT:
    # spot 17.50, grid 4.00, elavgift 0, Enova 10 × 0.01 = 0.10, strømstøtte −9.00, capacity 200.00.
    assert _lines(result, "kari") == {
        "spot": (10.0, 1750, 0, 1750),
        "markup": (10.0, 0, 0, 0),
        "grid_energy": (10.0, 400, 0, 400),
        "elavgift": (10.0, 0, 0, 0),
        "enova": (10.0, 10, 0, 10),
        "stromstotte": (10.0, -900, 0, -900),
        "capacity": (10.0, 20000, 0, 20000),
    }
    # 17.50 + 4.00 + 0.10 − 9.00 + 200.00 = 212.60 NOK.
    assert result.lines.filter(pl.col("user_id") == "kari")["amount_ore"].sum() == 21260


def test_business_on_norgespris_is_refused_in_one_line(tmp_path):
    rates = round_rates(tmp_path)
    with pytest.raises(RateTableError, match="a business metering point cannot be on Norgespris"):
        site_from(rates, {"timezone": "Europe/Oslo"}, customer_type="business", norgespris=True)


@pytest.mark.parametrize(
    ("invoice", "compared", "invoiced_ore", "allocated_ore"),
    [
        # Grid lines: grid 4.00 + 1.00, elavgift 1.00 + 0.25, Enova 0.10 + 0.025 → 0.03,
        # strømstøtte −9.00 − 2.25, capacity 200.00 + 50.00 → 245.13. Invoice 250.00: residual 4.87.
        ({"grid_nok": 250.00}, "grid", 25000, 24513),
        # Supplier lines: spot 17.50 + 4.375 → 4.38, markup 0 → 21.88. Invoice 20.00: residual −1.88.
        ({"supplier_nok": 20.00}, "supplier", 2000, 2188),
    ],
)
def test_one_invoice_reconciles_against_its_own_lines(
    tmp_path, invoice, compared, invoiced_ore, allocated_ore
):
    result = _kari_monday(tmp_path, Site(grid_company="testnett"))
    done = reconcile(result, invoices_frame([{"month": "2025-10", **invoice}]))
    # Only the invoice given is compared, and only with its own lines.
    assert done.summary.select("invoice", "invoiced_ore", "users_ore", "residual_ore").rows() == [
        (compared, invoiced_ore, allocated_ore, invoiced_ore - allocated_ore)
    ]
    own = (
        pl.concat([done.split.lines, done.split.common])
        .filter(pl.col("invoice").is_in([compared, "total"]))["amount_ore"]
        .sum()
    )
    # After the residual line, that invoice's lines add up to it within 0.01 NOK (here: exactly).
    assert abs(own - invoiced_ore) <= 1
    # The other invoice's lines are untouched.
    other = "supplier" if compared == "grid" else "grid"
    assert done.split.lines.filter(pl.col("invoice") == other).equals(
        result.lines.filter(pl.col("invoice") == other)
    )


def test_common_meter_vat_never_goes_negative_from_rounding(tmp_path):
    # Three users share the capacity charge equally and each share's VAT rounds down, so
    # the charge's VAT minus the users' VAT leaves an øre the common line would carry.
    rates = round_rates(tmp_path)
    sessions = sessions_frame(
        [_session(f"s{i}", f"u{i}", utc(2025, 10, 6, 10), 10.0) for i in range(3)]
    )
    site = Site(grid_company="testnett")
    calendar = _calendar(rates, site)
    raw = split.full(
        user_interval_energy(sessions, details_frame([])), calendar, rates.grid("testnett")
    )
    # Peak: 30 kWh on one day → 10 kW → step 10-15 kW = 4,800 / 12 = 400.00; shares 133.333…
    # → 133.33 each (399.99), VAT 33.3325 → 33.33 each (99.99). Charge VAT 100.00.
    common = raw.common.row(0, named=True)
    assert (common["amount_ex_vat_ore"], common["vat_ore"]) == (1, 1)  # 0.01 with 0.01 VAT: odd
    settled = split.settle_rounding(raw, calendar)
    rows = {r["line"]: r for r in settled.common.iter_rows(named=True)}
    # The common line's VAT follows from its own amount (0.01 × 25 % = 0.0025 → 0.00) and the
    # 0.01 left by the users' rounding is a named rounding line without VAT.
    assert (rows["capacity"]["amount_ex_vat_ore"], rows["capacity"]["vat_ore"]) == (1, 0)
    assert (rows["rounding"]["amount_ex_vat_ore"], rows["rounding"]["vat_ore"]) == (1, 0)
    assert all(r["vat_ore"] >= 0 for r in settled.common.iter_rows(named=True))
    # Users + common still equal the charge: 400.00 + 100.00 = 500.00.
    total = settled.lines.filter(pl.col("line") == "capacity")["amount_ore"].sum()
    assert total + settled.common["amount_ore"].sum() == 50000


def test_customer_type_is_stored_with_the_installation(tmp_path):
    sessions = sessions_frame([_session("a", "kari", utc(2025, 10, 6, 10), 10.0)])
    build_store(
        tmp_path / "z.duckdb", sessions, details_frame([]), flat_prices(*OCTOBER, 1.75)
    ).close()
    result = CliRunner().invoke(
        app,
        [
            "bill", "--db", str(tmp_path / "z.duckdb"), "--month", "2025-10", "--method", "spot",
            "--customer", "coop", "--dwellings", "40", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    con = read_only_store(tmp_path / "z.duckdb")
    try:
        row = con.execute(
            "SELECT customer_type, dwellings FROM installations WHERE installation_id = ?",
            [INSTALLATION],
        ).fetchall()
    finally:
        con.close()
    assert row == [("coop", 40)]
    # The next bill uses the stored type without being told.
    again = CliRunner().invoke(
        app,
        [
            "bill",
            "--db",
            str(tmp_path / "z.duckdb"),
            "--month",
            "2025-10",
            "--method",
            "spot",
            "--json",
        ],
    )
    assert again.exit_code == 0, again.output
    assert '"customer_type": "coop"' in again.output and '"dwellings": 40' in again.output


def test_shipped_tables_hold_the_rules_and_fifteen_grid_companies():
    rates = load_rates()
    assert rates.customer("business").enova == "per_year"
    assert rates.customer("household").elavgift_in_tiltakssone == "exempt"
    companies = rates.grid_companies()
    for company in (
        "elvia",
        "bkk",
        "tensio-ts",
        "tensio-tn",
        "lede",
        "glitre",
        "lnett",
        "norgesnett",
        "arva",
        "foie",
        "linja",
    ):
        assert company in companies
    assert len(companies) >= 15
    for company in companies:
        tariff = rates.grid(company)
        assert tariff.source and tariff.status in ("V", "S", "U") and tariff.periods
    with pytest.raises(RateTableError, match="tensio-tn or tensio-ts"):
        rates.grid("tensio")
