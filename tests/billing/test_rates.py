"""Dated rate tables: shipped figures, user overrides, exemptions by location, bad tables."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from billing_helpers import round_rates, utc

from zapanalytics.billing.rates import RateTableError, Site, load_rates, site_from
from zapanalytics.billing.tariff import interval_calendar


def test_shipped_tables_hold_the_reference_figures():
    rates = load_rates()
    # billing_norway.md §1.4: elavgift 2024 9.51 øre Jan-Mar, 16.44 øre Apr-Dec; 2025 16.93 from April.
    assert rates.on("elavgift", dt.date(2024, 2, 15))["nok_per_kwh"] == 0.0951
    assert rates.on("elavgift", dt.date(2024, 4, 1))["nok_per_kwh"] == 0.1644
    assert rates.on("elavgift", dt.date(2025, 10, 1))["nok_per_kwh"] == 0.1693
    # §1.7: strømstøtte thresholds 73 / 75 / 77 øre excl. VAT, 90 %, 5,000 kWh per dwelling.
    for year, threshold in ((2024, 0.73), (2025, 0.75), (2026, 0.77)):
        entry = rates.on("stromstotte", dt.date(year, 6, 1))
        assert (entry["threshold_nok_per_kwh"], entry["coverage"]) == (threshold, 0.90)
        assert entry["cap_kwh_per_dwelling_month"] == 5000
    assert rates.on("stromstotte", dt.date(2023, 8, 31)) is None  # hourly support began 2023-09-01
    # §1.8: Norgespris 40 øre from 1 Oct 2025 to 31 Dec 2026.
    assert rates.on("norgespris", dt.date(2025, 9, 30)) is None
    assert rates.on("norgespris", dt.date(2025, 10, 1))["price_nok_per_kwh"] == 0.40
    assert rates.on("norgespris", dt.date(2026, 12, 31)) is not None
    assert rates.on("norgespris", dt.date(2027, 1, 1)) is None
    assert rates.on("enova", dt.date(2025, 1, 1))["nok_per_kwh"] == 0.01
    assert rates.on("vat", dt.date(2025, 1, 1))["rate"] == 0.25
    # Elvia from 2026-07-01: 1,440 NOK/yr = 120 NOK/month = 150 NOK incl. VAT for 0-2 kW.
    period = rates.grid("Elvia").period_on(dt.date(2026, 7, 1))
    assert period.capacity_nok_per_year[0] / 12 * 1.25 == 150.0
    assert {"elvia", "bkk", "arva"} <= set(rates.grid_companies())


def test_user_file_overrides_one_entry_and_changes_the_hash(tmp_path):
    shipped = load_rates()
    override = tmp_path / "mine.toml"
    override.write_text(
        "[[elavgift.rates]]\nvalid_from = 2025-04-01\nnok_per_kwh = 0.2\n"
        "[[supplier.rates]]\nvalid_from = 2025-01-01\nmarkup_nok_per_kwh = 0.065\n"
        "[site]\ngrid_company = 'bkk'\ncounty = 'Vestland'\n"
    )
    mine = load_rates([override])
    assert mine.on("elavgift", dt.date(2025, 10, 1))["nok_per_kwh"] == 0.2
    assert mine.on("elavgift", dt.date(2024, 5, 1))["nok_per_kwh"] == 0.1644  # untouched
    assert mine.on("supplier", dt.date(2025, 3, 1))["markup_nok_per_kwh"] == 0.065
    assert mine.on("supplier", dt.date(2024, 3, 1))["markup_nok_per_kwh"] == 0.0
    assert mine.sha256 != shipped.sha256 and len(mine.sha256) == 64
    assert load_rates([override]).sha256 == mine.sha256  # deterministic
    assert mine.sources[-1] == str(override)
    site = site_from(mine, {"timezone": "Europe/Oslo", "price_area": "NO5", "county": "Rogaland"})
    assert (site.grid_company, site.county, site.price_area) == ("bkk", "Vestland", "NO5")
    assert site_from(mine, {}, county="Troms").county == "Troms"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[elavgift.rates]]\nvalid_from = 2025-01-01\n", "missing nok_per_kwh"),
        ("[[elavgift.rates]]\nvalid_from = 2025-01-01\nnok_per_kwh = 'ten'\n", "is not a number"),
        ("[[elavgift.rates]]\nvalid_from = 'soon'\nnok_per_kwh = 0.1\n", "is not a date"),
        ("[[vat.rates]]\nvalid_from = 2025-01-01\nrate = 1.5\n", "above 1.0"),
        ("[[enova.rates]]\nvalid_from = 2025-01-01\nnok_per_kwh = nan\n", "is not a number"),
        ("[grid.x]\nname = 'X'\n", "at least one"),
        (
            "[grid.x]\n[[grid.x.periods]]\nvalid_from = 2025-01-01\nenergy_nok_per_kwh = 0.1\n"
            "[[grid.x.periods.rules]]\ndays = ['someday']\nenergy_nok_per_kwh = 0.2\n",
            "unknown day",
        ),
        (
            "[grid.x]\n[[grid.x.periods]]\nvalid_from = 2025-01-01\nenergy_nok_per_kwh = 0.1\n"
            "[[grid.x.periods.rules]]\nhours = [6]\nenergy_nok_per_kwh = 0.2\n",
            "hours",
        ),
        (
            "[grid.x]\n[[grid.x.periods]]\nvalid_from = 2025-01-01\nenergy_nok_per_kwh = 0.1\n"
            "capacity_steps_kw = [0, 5]\ncapacity_nok_per_year = [100]\n",
            "equal length",
        ),
        ("[site]\ncolour = 'blue'\n", "unknown [site] keys"),
        ("not toml = = =\n", "not valid TOML"),
    ],
)
def test_malformed_table_is_refused_naming_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RateTableError, match="bad.toml") as caught:
        load_rates([path])
    assert message in str(caught.value)


def test_missing_or_binary_file_is_a_rate_table_error(tmp_path):
    with pytest.raises(RateTableError, match="no such tariff file"):
        load_rates([tmp_path / "nope.toml"])
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(RateTableError, match="not UTF-8"):
        load_rates([binary])


def test_vat_exemption_is_by_county_not_price_area():
    rates = load_rates()
    # Namdal (Trøndelag) lies in NO4 but pays VAT; Troms is exempt whatever its price area.
    assert not rates.vat_exempt(Site(price_area="NO4", county="Trøndelag"))
    assert rates.vat_exempt(Site(price_area="NO4", county="Troms"))
    assert rates.vat_exempt(Site(price_area="NO4", county="  nordland "))
    assert rates.vat_exempt(Site(county="Troms og Finnmark"))
    assert not rates.vat_exempt(Site(price_area="NO1"))
    # Elavgift: Finnmark and the Nord-Troms municipalities only.
    assert rates.elavgift_exempt(Site(county="Finnmark"))
    assert rates.elavgift_exempt(Site(county="Troms", municipality="Nordreisa"))
    assert not rates.elavgift_exempt(Site(county="Troms", municipality="Tromsø"))
    assert not rates.elavgift_exempt(Site(county="Nordland"))


def test_energy_charge_follows_weekday_hours_and_norwegian_holidays(tmp_path):
    rates = round_rates(tmp_path)
    site = Site(grid_company="testnett")
    # 2025-05-28 is a Wednesday, 2025-05-29 Ascension Day (a holiday), 2025-05-31 a Saturday.
    calendar = interval_calendar(
        utc(2025, 5, 27, 22), utc(2025, 6, 1, 22), rates, site, grid=rates.grid("testnett")
    )

    def charge(day: int, hour: int) -> float:
        row = calendar.filter(
            (pl.col("hour_start").dt.day() == day) & (pl.col("hour_start").dt.hour() == hour)
        )
        return row["grid_energy_nok_per_kwh"].unique().item()

    assert charge(28, 12) == 0.40  # working day, 06-22
    assert charge(28, 5) == 0.20  # working day, night
    assert charge(28, 22) == 0.20  # 22:00 is night: hours [6, 22)
    assert charge(28, 6) == 0.40
    assert charge(29, 12) == 0.20  # Ascension Day
    assert charge(31, 12) == 0.20  # Saturday
    assert calendar["vat_bp"].unique().to_list() == [2500]


@pytest.mark.parametrize(
    "text",
    [
        "elavgift = 3\n",
        "[elavgift]\nrates = [1, 2]\n",
        "grid = 'elvia'\n",
        "[grid.x]\nperiods = ['a']\n",
        "[vat]\nexempt_counties = 'Troms'\n",
    ],
)
def test_wrong_shapes_are_rate_table_errors(tmp_path, text):
    path = tmp_path / "shape.toml"
    path.write_text(text)
    with pytest.raises(RateTableError, match="shape.toml"):
        load_rates([path])
