"""Each split method against arithmetic done by hand, written out in the tests.

Rates (``billing_helpers.TEST_RATES``, NOK excl. VAT): VAT 25 %, elavgift 0.10, Enova 0.01,
strømstøtte 90 % above 0.75, Norgespris 0.40, grid "testnett" 0.40 on working days 06-22
and 0.20 otherwise, capacity steps 0/2/5/10/15 kW at 100/200/300/400/500 NOK a month.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from billing_helpers import (
    details_frame,
    flat_prices,
    prices_frame,
    round_rates,
    sessions_frame,
    utc,
)

from zapanalytics.billing import split
from zapanalytics.billing.energy import month_bounds, user_interval_energy
from zapanalytics.billing.rates import Site, load_rates
from zapanalytics.billing.tariff import interval_calendar

OSLO = "Europe/Oslo"


def _lines(result: split.Split, user: str | None = None) -> dict[str, tuple[int, int, int]]:
    frame = result.lines if user is None else result.lines.filter(pl.col("user_id") == user)
    return {
        r["line"]: (r["amount_ex_vat_ore"], r["vat_ore"], r["amount_ore"])
        for r in frame.iter_rows(named=True)
    }


def _calendar(
    rates, month: str, prices=None, site: Site | None = None, markup: float | None = None
):
    site = site or Site(grid_company="testnett")
    start, end = month_bounds(month, site.timezone)
    grid = rates.grid(site.grid_company) if site.grid_company else None
    return interval_calendar(
        start, end, rates, site, prices=prices, grid=grid, markup_nok_per_kwh=markup
    )


def _evening_session():
    """Tuesday 14 Oct 2025, 18:00-20:00 Oslo: 4 kWh then 6 kWh (hourly details)."""
    sessions = sessions_frame(
        [
            {
                "session_id": "s1",
                "user_id": "u1",
                "start_utc": utc(2025, 10, 14, 16),
                "end_utc": utc(2025, 10, 14, 18),
                "energy_kwh": 10.0,
            }
        ]
    )
    details = details_frame(
        [
            ("s1", utc(2025, 10, 14, 16), 0.0),
            ("s1", utc(2025, 10, 14, 17), 4.0),
            ("s1", utc(2025, 10, 14, 18), 6.0),
        ]
    )
    return user_interval_energy(sessions, details)


def _october_prices(
    special: dict[dt.datetime, float] | None = None, base: float = 1.0
) -> pl.DataFrame:
    prices = flat_prices(utc(2025, 9, 30, 22), utc(2025, 10, 31, 23), base)
    for start, value in (special or {}).items():
        prices = prices.with_columns(
            pl.when(pl.col("start_utc") == start)
            .then(value)
            .otherwise(pl.col("spot_nok_per_kwh"))
            .alias("spot_nok_per_kwh")
        )
    return prices


def test_flat_price_includes_vat(tmp_path):
    rates = round_rates(tmp_path)
    energy = _evening_session()
    result = split.flat(energy, _calendar(rates, "2025-10"), 2.5)
    # 10 kWh × 2.50 = 25.00 incl. VAT; 25.00 / 1.25 = 20.00 excl. VAT, VAT 5.00.
    assert _lines(result) == {"flat_energy": (2000, 500, 2500)}
    # 14.75 kWh × 2.50 = 36.875 → 36.88 (half away from zero); 36.88 / 1.25 = 29.504 → 29.50.
    odd = energy.with_columns(pl.col("energy_kwh") * 1.475)
    assert _lines(split.flat(odd, _calendar(rates, "2025-10"), 2.5)) == {
        "flat_energy": (2950, 738, 3688)
    }
    with pytest.raises(ValueError, match="non-negative"):
        split.flat(energy, _calendar(rates, "2025-10"), -1.0)


def test_spot_on_hourly_prices_with_markup(tmp_path):
    rates = round_rates(tmp_path)
    prices = _october_prices({utc(2025, 10, 14, 17): 1.75})
    result = split.spot(_evening_session(), _calendar(rates, "2025-10", prices, markup=0.05))
    # spot 4 × 1.00 + 6 × 1.75 = 14.50, VAT 3.625 → 3.63; markup 10 × 0.05 = 0.50, VAT 0.125 → 0.13.
    assert _lines(result) == {"spot": (1450, 363, 1813), "markup": (50, 13, 63)}
    assert result.per_user()["amount_ore"].to_list() == [1876]


def test_full_line_by_line(tmp_path):
    rates = round_rates(tmp_path)
    prices = _october_prices({utc(2025, 10, 14, 17): 1.75})
    calendar = _calendar(rates, "2025-10", prices, markup=0.05)
    result = split.full(_evening_session(), calendar, rates.grid("testnett"))
    # spot 14.50; markup 0.50; grid 10 × 0.40 (Tuesday 18-20, day rate) = 4.00;
    # elavgift 10 × 0.10 = 1.00; Enova 10 × 0.01 = 0.10;
    # strømstøtte −[4 × (1.00 − 0.75) × 0.9 + 6 × (1.75 − 0.75) × 0.9] = −(0.90 + 5.40) = −6.30;
    # capacity: top hours of three different days 6, 0, 0 kWh → 2.0 kW → step 2-5 (lower bound
    # inclusive) = 200 NOK, all of it to u1 (6 of the 6 kWh in the peak hours).
    # VAT per line: 3.625→3.63, 0.125→0.13, 1.00, 0.25, 0.025→0.03, −1.575→−1.58, 50.00.
    assert _lines(result) == {
        "spot": (1450, 363, 1813),
        "markup": (50, 13, 63),
        "grid_energy": (400, 100, 500),
        "elavgift": (100, 25, 125),
        "enova": (10, 3, 13),
        "stromstotte": (-630, -158, -788),
        "capacity": (20000, 5000, 25000),
    }
    totals = result.per_user().row(0, named=True)
    # 213.80 excl. VAT + 53.46 VAT = 267.26: the totals are the sums of the printed lines.
    assert (totals["amount_ex_vat_ore"], totals["vat_ore"], totals["amount_ore"]) == (
        21380,
        5346,
        26726,
    )
    assert result.capacity.row(0, named=True)["peak_kw"] == pytest.approx(2.0)
    assert result.capacity.row(0, named=True)["step"] == 2
    assert result.common["amount_ore"].to_list() == [0]


def test_strømstøtte_below_the_threshold_is_zero(tmp_path):
    rates = round_rates(tmp_path)
    calendar = _calendar(rates, "2025-10", _october_prices(base=0.60))
    result = split.full(_evening_session(), calendar, rates.grid("testnett"))
    # 0.60 < 0.75: (0.60 − 0.75) is clipped to 0, so no support.
    assert _lines(result)["stromstotte"] == (0, 0, 0)
    assert _lines(result)["spot"] == (600, 150, 750)


def test_a_day_of_fifteen_minute_prices(tmp_path):
    rates = round_rates(tmp_path)
    # Thursday 2 Oct 2025 (local day = 22:00 UTC on the 1st + 96 quarters): price_k = 0.50 + 0.01 k.
    day_start = utc(2025, 10, 1, 22)
    quarters = prices_frame(day_start, [0.50 + 0.01 * k for k in range(96)], minutes=15)
    prices = pl.concat(
        [
            flat_prices(utc(2025, 9, 30, 22), day_start, 1.0),
            quarters,
            flat_prices(utc(2025, 10, 2, 22), utc(2025, 10, 31, 23), 1.0),
        ]
    )
    # Pro: 15-minute details 18:00-19:00 Oslo (quarters 72-75: 1.22, 1.23, 1.24, 1.25), 1/2/3/4 kWh.
    # Go: one hourly delta 19:00-20:00 Oslo, 4 kWh → 1 kWh in quarters 76-79 (1.26 … 1.29).
    sessions = sessions_frame(
        [
            {
                "session_id": "pro",
                "user_id": "p",
                "start_utc": utc(2025, 10, 2, 16),
                "end_utc": utc(2025, 10, 2, 17),
                "energy_kwh": 10.0,
            },
            {
                "session_id": "go",
                "user_id": "g",
                "start_utc": utc(2025, 10, 2, 17),
                "end_utc": utc(2025, 10, 2, 18),
                "energy_kwh": 4.0,
            },
        ]
    )
    details = details_frame(
        [
            ("pro", utc(2025, 10, 2, 16), 0.0),
            ("pro", utc(2025, 10, 2, 16, 15), 1.0),
            ("pro", utc(2025, 10, 2, 16, 30), 2.0),
            ("pro", utc(2025, 10, 2, 16, 45), 3.0),
            ("pro", utc(2025, 10, 2, 17), 4.0),
            ("go", utc(2025, 10, 2, 17), 0.0),
            ("go", utc(2025, 10, 2, 18), 4.0),
        ]
    )
    energy = user_interval_energy(sessions, details)
    calendar = _calendar(rates, "2025-10", prices)
    spot = split.spot(energy, calendar)
    # Pro: 1 × 1.22 + 2 × 1.23 + 3 × 1.24 + 4 × 1.25 = 12.40. Go: 1.26 + 1.27 + 1.28 + 1.29 = 5.10.
    assert _lines(spot, "p")["spot"][0] == 1240
    assert _lines(spot, "g")["spot"][0] == 510
    full = split.full(energy, calendar, rates.grid("testnett"))
    # Strømstøtte uses the hour's mean price: (1.22 + 1.23 + 1.24 + 1.25) / 4 = 1.235,
    # (1.235 − 0.75) × 0.9 = 0.4365 NOK/kWh × 10 kWh = 4.365 → −4.37 (half away from zero).
    assert _lines(full, "p")["stromstotte"][0] == -437
    # Go hour: mean 1.275 → (1.275 − 0.75) × 0.9 = 0.4725 × 4 = 1.89.
    assert _lines(full, "g")["stromstotte"][0] == -189


def test_session_across_midnight_into_a_saturday(tmp_path):
    rates = round_rates(tmp_path)
    # Fri 17 Oct 2025 21:00 → Sat 01:00 Oslo (19:00-23:00 UTC), hourly details 1, 2, 3, 4 kWh.
    sessions = sessions_frame(
        [
            {
                "session_id": "f",
                "user_id": "u",
                "start_utc": utc(2025, 10, 17, 19),
                "end_utc": utc(2025, 10, 17, 23),
                "energy_kwh": 10.0,
            }
        ]
    )
    details = details_frame(
        [
            ("f", utc(2025, 10, 17, 19), 0.0),
            ("f", utc(2025, 10, 17, 20), 1.0),
            ("f", utc(2025, 10, 17, 21), 2.0),
            ("f", utc(2025, 10, 17, 22), 3.0),
            ("f", utc(2025, 10, 17, 23), 4.0),
        ]
    )
    result = split.full(
        user_interval_energy(sessions, details),
        _calendar(rates, "2025-10", _october_prices(base=0.5)),
        rates.grid("testnett"),
    )
    # Grid: Friday 21-22 day rate 1 × 0.40; 22-24 night (2 + 3) × 0.20; Saturday 00-01 4 × 0.20
    # → 0.40 + 1.00 + 0.80 = 2.20.
    assert _lines(result)["grid_energy"][0] == 220
    # Two days: Friday's top hour 3 kWh, Saturday's 4 kWh → (4 + 3 + 0) / 3 = 2.33 kW → 200 NOK.
    assert [(p["day"].day, p["energy_kwh"]) for p in result.peaks.iter_rows(named=True)] == [
        (18, 4.0),
        (17, 3.0),
    ]
    assert _lines(result)["capacity"][0] == 20000


def test_dst_month_october_2025(tmp_path):
    rates = round_rates(tmp_path)
    calendar = _calendar(rates, "2025-10")
    # October 2025 has 31 × 24 + 1 = 745 local hours (26 Oct has 25), so 2,980 quarters.
    assert calendar.height == 2980
    assert calendar["hour_start"].n_unique() == 745
    march = _calendar(rates, "2025-03")
    assert march["hour_start"].n_unique() == 743  # 30 Mar 2025 has 23 hours
    # Energy in both 02:00 hours of 26 Oct, each at its own hourly price.
    prices = _october_prices({utc(2025, 10, 26, 0): 1.00, utc(2025, 10, 26, 1): 2.00}, base=0.5)
    sessions = sessions_frame(
        [
            {
                "session_id": "d",
                "user_id": "u",
                "start_utc": utc(2025, 10, 26, 0),
                "end_utc": utc(2025, 10, 26, 2),
                "energy_kwh": 2.0,
            }
        ]
    )
    details = details_frame(
        [
            ("d", utc(2025, 10, 26, 0), 0.0),
            ("d", utc(2025, 10, 26, 1), 1.0),
            ("d", utc(2025, 10, 26, 2), 1.0),
        ]
    )
    energy = user_interval_energy(sessions, details)
    result = split.full(energy, _calendar(rates, "2025-10", prices), rates.grid("testnett"))
    lines = _lines(result)
    # spot 1 × 1.00 + 1 × 2.00 = 3.00; Sunday night grid 2 × 0.20 = 0.40;
    # support (1.00 − 0.75) × 0.9 + (2.00 − 0.75) × 0.9 = 0.225 + 1.125 = 1.35.
    assert lines["spot"][0] == 300
    assert lines["grid_energy"][0] == 40
    assert lines["stromstotte"][0] == -135
    # The two hours are the same day: capacity = (1 + 0 + 0) / 3 kW → step 0-2 = 100 NOK.
    assert result.capacity["capacity_nok"].to_list() == [100.0]
    assert result.peaks.height == 1


def test_monthly_cap_of_strømstøtte(tmp_path):
    low_cap = tmp_path / "cap.toml"
    low_cap.write_text(
        "[[stromstotte.rates]]\nvalid_from = 2020-01-01\nthreshold_nok_per_kwh = 0.75\n"
        "coverage = 0.90\ncap_kwh_per_dwelling_month = 10\n"
    )
    base = round_rates(tmp_path)
    rates = load_rates([tmp_path / "rates.toml", low_cap], shipped=False)
    assert rates.sha256 != base.sha256
    prices = _october_prices(base=1.75)
    # u1 charges 4 kWh in each of three hours (12 kWh); u2 6 kWh.
    sessions = sessions_frame(
        [
            {
                "session_id": "a",
                "user_id": "u1",
                "start_utc": utc(2025, 10, 6, 10),
                "end_utc": utc(2025, 10, 6, 13),
                "energy_kwh": 12.0,
            },
            {
                "session_id": "b",
                "user_id": "u2",
                "start_utc": utc(2025, 10, 7, 10),
                "end_utc": utc(2025, 10, 7, 12),
                "energy_kwh": 6.0,
            },
        ]
    )
    details = details_frame(
        [
            ("a", utc(2025, 10, 6, 11), 4.0),
            ("a", utc(2025, 10, 6, 12), 4.0),
            ("a", utc(2025, 10, 6, 13), 4.0),
            ("b", utc(2025, 10, 7, 11), 3.0),
            ("b", utc(2025, 10, 7, 12), 3.0),
        ]
    )
    energy = user_interval_energy(sessions, details)
    result = split.full(energy, _calendar(rates, "2025-10", prices), rates.grid("testnett"))
    lines = result.lines.filter(pl.col("line") == "stromstotte")
    by_user = {
        r["user_id"]: (r["quantity_kwh"], r["amount_ex_vat_ore"])
        for r in lines.iter_rows(named=True)
    }
    # (1.75 − 0.75) × 0.9 = 0.90 NOK/kWh. The cap (10 kWh) belongs to the metering point, a
    # household (one dwelling), not to each user: u1 charges first and uses 10 of 12 kWh of it
    # → −9.00; u2 charges the day after, when the cap is used up, and gets no line at all.
    assert by_user == {"u1": (10.0, -900)}
    uncapped = split.full(energy, _calendar(base, "2025-10", prices), base.grid("testnett"))
    assert _lines(uncapped, "u1")["stromstotte"][0] == -1080


def test_norgespris_replaces_strømstøtte_from_october_2025(tmp_path):
    rates = round_rates(tmp_path)
    site = Site(grid_company="testnett", norgespris=True)
    # Two hours at 1.00 and 0.30, 2 kWh each: the grid company credits (hourly price − 0.40).
    prices = _october_prices({utc(2025, 10, 14, 17): 0.30})
    sessions = sessions_frame(
        [
            {
                "session_id": "n",
                "user_id": "u",
                "start_utc": utc(2025, 10, 14, 16),
                "end_utc": utc(2025, 10, 14, 18),
                "energy_kwh": 4.0,
            }
        ]
    )
    details = details_frame([("n", utc(2025, 10, 14, 17), 2.0), ("n", utc(2025, 10, 14, 18), 2.0)])
    energy = user_interval_energy(sessions, details)
    result = split.full(energy, _calendar(rates, "2025-10", prices, site), rates.grid("testnett"))
    lines = _lines(result)
    # −[(1.00 − 0.40) × 2 + (0.30 − 0.40) × 2] = −(1.20 − 0.20) = −1.00; spot 2.00 + 0.60 = 2.60.
    assert lines["norgespris"][0] == -100
    assert lines["spot"][0] == 260
    assert "stromstotte" not in lines
    # Net energy price: 2.60 − 1.00 = 1.60 = 4 kWh × 0.40, the Norgespris.
    assert lines["spot"][0] + lines["norgespris"][0] == 4 * 40
    # Before 1 Oct 2025 the same opt-in has no scheme to join: strømstøtte applies.
    september = prices_frame(utc(2025, 9, 14, 16), [1.75, 1.75])
    sessions = sessions.with_columns(
        pl.col("start_utc") - dt.timedelta(days=30), pl.col("end_utc") - dt.timedelta(days=30)
    )
    details = details.with_columns(pl.col("ts_utc") - dt.timedelta(days=30))
    sep = split.full(
        user_interval_energy(sessions, details),
        _calendar(rates, "2025-09", september, site),
        rates.grid("testnett"),
    )
    assert "norgespris" not in _lines(sep)
    assert _lines(sep)["stromstotte"][0] == -360  # 4 kWh × 0.90


def test_vat_exempt_county_and_elavgift_exempt_municipality(tmp_path):
    rates = round_rates(tmp_path)
    prices = _october_prices({utc(2025, 10, 14, 17): 1.75})
    troms = _calendar(
        rates, "2025-10", prices, Site(grid_company="testnett", county="Troms", price_area="NO4")
    )
    lines = _lines(split.full(_evening_session(), troms, rates.grid("testnett")))
    # Troms: no VAT on any line; elavgift still due outside the tiltakssone.
    assert all(vat == 0 for _, vat, _ in lines.values())
    assert lines["elavgift"] == (100, 0, 100)
    assert lines["spot"] == (1450, 0, 1450)
    nordreisa = _calendar(
        rates,
        "2025-10",
        prices,
        Site(grid_company="testnett", county="Troms", municipality="Nordreisa"),
    )
    assert _lines(split.full(_evening_session(), nordreisa, rates.grid("testnett")))[
        "elavgift"
    ] == (0, 0, 0)
    # Trøndelag in NO4 pays VAT: the price area decides nothing.
    namdal = _calendar(
        rates,
        "2025-10",
        prices,
        Site(grid_company="testnett", county="Trøndelag", price_area="NO4"),
    )
    assert _lines(split.full(_evening_session(), namdal, rates.grid("testnett")))["spot"] == (
        1450,
        363,
        1813,
    )
    # A flat price incl. VAT in an exempt county is all price, no VAT.
    assert _lines(split.flat(_evening_session(), troms, 2.5)) == {"flat_energy": (2500, 0, 2500)}


def test_capacity_step_attribution_with_common_load(tmp_path):
    rates = round_rates(tmp_path)
    calendar = _calendar(rates, "2025-10", _october_prices(base=0.5))
    # The AMS meter sees 1 kWh of common load in every hour, plus the chargers:
    # Mon 6 Oct 18:00 A 4 + B 2 (site 7), Tue 7 Oct 19:00 A 3 (site 4), Wed 8 Oct 20:00 B 5 (site 6).
    sessions = sessions_frame(
        [
            {
                "session_id": "a1",
                "user_id": "A",
                "start_utc": utc(2025, 10, 6, 16),
                "end_utc": utc(2025, 10, 6, 17),
                "energy_kwh": 4.0,
            },
            {
                "session_id": "b1",
                "user_id": "B",
                "start_utc": utc(2025, 10, 6, 16),
                "end_utc": utc(2025, 10, 6, 17),
                "energy_kwh": 2.0,
            },
            {
                "session_id": "a2",
                "user_id": "A",
                "start_utc": utc(2025, 10, 7, 17),
                "end_utc": utc(2025, 10, 7, 18),
                "energy_kwh": 3.0,
            },
            {
                "session_id": "b2",
                "user_id": "B",
                "start_utc": utc(2025, 10, 8, 18),
                "end_utc": utc(2025, 10, 8, 19),
                "energy_kwh": 5.0,
            },
        ]
    )
    energy = user_interval_energy(sessions, details_frame([]))
    charger_hours = (
        calendar.join(energy, on="interval_start_utc", how="left")
        .group_by("hour_start")
        .agg(pl.col("energy_kwh").fill_null(0.0).sum())
    )
    site = charger_hours.with_columns(pl.col("energy_kwh") + 1.0)
    result = split.full(energy, calendar, rates.grid("testnett"), site_hourly_kwh=site)
    # Peaks 7, 6, 4 kWh on three different days → 17 / 3 = 5.67 kW → step 5-10 kW = 300 NOK.
    assert result.capacity.row(0, named=True)["step"] == 3
    assert result.capacity.row(0, named=True)["capacity_nok"] == 300.0
    assert result.peaks["energy_kwh"].to_list() == [7.0, 6.0, 4.0]
    # A: 4 + 3 = 7 of the 17 peak kWh → 300 × 7 / 17 = 123.529… → 123.53, VAT 30.882… → 30.88.
    # B: 2 + 5 = 7 → the same. Common meter: 300.00 − 247.06 = 52.94, VAT 75.00 − 61.76 = 13.24.
    assert _lines(result, "A")["capacity"] == (12353, 3088, 15441)
    assert _lines(result, "B")["capacity"] == (12353, 3088, 15441)
    assert result.common.select("amount_ex_vat_ore", "vat_ore").row(0) == (5294, 1324)
    charged = (
        result.lines.filter(pl.col("line") == "capacity")["amount_ore"].sum()
        + result.common["amount_ore"].sum()
    )
    assert charged == 37500  # 300 NOK + 25 % VAT, to the øre
    assert set(result.peak_energy["user_id"]) == {"A", "B"}


def test_missing_prices_are_refused(tmp_path):
    rates = round_rates(tmp_path)
    gap = _october_prices().filter(pl.col("start_utc") != utc(2025, 10, 14, 17))
    with pytest.raises(split.MissingPricesError, match="no spot price for 4 quarter-hours"):
        split.spot(_evening_session(), _calendar(rates, "2025-10", gap))


def test_energy_outside_the_calendar_is_refused(tmp_path):
    rates = round_rates(tmp_path)
    with pytest.raises(ValueError, match="outside the rate calendar"):
        split.flat(_evening_session(), _calendar(rates, "2025-11"), 2.0)
