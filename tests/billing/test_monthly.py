"""Billing a month from the store: the AMS meter's load, month boundaries, settings, notes."""

from __future__ import annotations

import datetime as dt

import pytest
from billing_helpers import (
    INSTALLATION,
    build_store,
    details_frame,
    flat_prices,
    sessions_frame,
    utc,
)

from zapanalytics.billing.monthly import (
    BillingError,
    NoSessionsError,
    bill_month,
    set_installation_settings,
)
from zapanalytics.billing.split import MissingPricesError
from zapanalytics.ingest.door import IngestRun, frame_for

OCTOBER = (utc(2025, 9, 30, 22), utc(2025, 10, 31, 23))


def _add_han_meter(con, extra: dict[dt.datetime, float]) -> None:
    """Hourly register readings: 1 kWh of common load per hour plus ``extra`` in given hours."""
    register, rows = 1000.0, []
    hour = OCTOBER[0] - dt.timedelta(hours=1)
    while hour <= OCTOBER[1] + dt.timedelta(hours=1):
        rows.append(
            {
                "meter_id": "ams-1",
                "ts_utc": hour,
                "kind": "han",
                "installation_id": INSTALLATION,
                "energy_import_kwh": register,
                "_record": len(rows),
            }
        )
        register += 1.0 + extra.get(hour, 0.0)
        hour += dt.timedelta(hours=1)
    with IngestRun(con, "test-han") as run:
        run.admit(
            [str(i) for i in range(len(rows))],
            {"reference_readings": frame_for("reference_readings", rows)},
            record_table="reference_readings",
        )


def _one_session(tmp_path, **settings):
    # Tue 14 Oct 2025, 18:00-19:00 Oslo, 6 kWh, no details (pro rata over the hour).
    sessions = sessions_frame(
        [
            {
                "session_id": "a",
                "user_id": "A",
                "user_name": "Anne",
                "start_utc": utc(2025, 10, 14, 16),
                "end_utc": utc(2025, 10, 14, 17),
                "energy_kwh": 6.0,
            }
        ]
    )
    con = build_store(
        tmp_path / "z.duckdb", sessions, details_frame([]), flat_prices(*OCTOBER, 0.5)
    )
    set_installation_settings(con, INSTALLATION, **settings)
    return con


def test_capacity_uses_the_ams_meter_when_it_covers_the_month(tmp_path):
    con = _one_session(tmp_path, grid_company="elvia")
    _add_han_meter(con, {utc(2025, 10, 14, 16): 6.0})
    bill = bill_month(con, "2025-10", "full", now=utc(2026, 1, 1))
    # Site peaks: 7 kWh (14 Oct 18:00) and 1 kWh on two other days → 9 / 3 = 3 kW → Elvia
    # 2025 step 2-5 kW = 1,824 NOK/yr / 12 = 152.00 NOK. Anne caused 6 of the 9 peak kWh:
    # 152 × 6 / 9 = 101.333… → 101.33; the common meter keeps 50.67.
    capacity = bill.split.capacity.row(0, named=True)
    assert (capacity["peak_kw"], capacity["capacity_nok"]) == (pytest.approx(3.0), 152.0)
    line = bill.split.lines.filter(bill.split.lines["line"] == "capacity").row(0, named=True)
    assert (line["user_id"], line["amount_ex_vat_ore"]) == ("A", 10133)
    assert bill.split.common["amount_ex_vat_ore"].to_list() == [5067]
    assert not any("AMS" in note for note in bill.notes)
    assert bill.users.select("user_id", "user_name").rows() == [("A", "Anne")]


def test_without_the_meter_the_chargers_set_the_step_and_a_note_says_so(tmp_path):
    con = _one_session(tmp_path, grid_company="elvia")
    bill = bill_month(con, "2025-10", "full", now=utc(2025, 10, 20))
    # Chargers only: 6 / 3 = 2 kW → step 2-5 kW; all 152 NOK to Anne.
    line = bill.split.lines.filter(bill.split.lines["line"] == "capacity").row(0, named=True)
    assert line["amount_ex_vat_ore"] == 15200
    assert any("No AMS meter data" in note for note in bill.notes)
    assert any("not over" in note for note in bill.notes)  # billed on 20 Oct: an estimate


def test_session_across_the_month_boundary_is_billed_in_both_months(tmp_path):
    # 22:00 Oslo 31 Oct → 02:00 Oslo 1 Nov, 8 kWh without details: 4 kWh in each month.
    sessions = sessions_frame(
        [
            {
                "session_id": "m",
                "user_id": "A",
                "start_utc": utc(2025, 10, 31, 21),
                "end_utc": utc(2025, 11, 1, 1),
                "energy_kwh": 8.0,
            }
        ]
    )
    con = build_store(tmp_path / "z.duckdb", sessions, details_frame([]))
    october = bill_month(con, "2025-10", "flat", price_nok_per_kwh=2.0)
    november = bill_month(con, "2025-11", "flat", price_nok_per_kwh=2.0)
    assert october.split.lines["quantity_kwh"].to_list() == [pytest.approx(4.0)]
    assert november.split.lines["quantity_kwh"].to_list() == [pytest.approx(4.0)]
    # 4 kWh × 2.00 = 8.00 NOK incl. VAT in each month.
    assert (
        october.split.lines["amount_ore"].to_list()
        == november.split.lines["amount_ore"].to_list()
        == [800]
    )


def test_store_settings_decide_vat_and_norgespris(tmp_path):
    con = _one_session(tmp_path, grid_company="arva", county="Troms", norgespris=True)
    bill = bill_month(con, "2025-10", "full", now=utc(2026, 1, 1))
    lines = {r["line"]: r for r in bill.split.lines.iter_rows(named=True)}
    assert all(r["vat_ore"] == 0 for r in lines.values())
    # Norgespris: −(0.50 − 0.40) × 6 kWh = −0.60 NOK; no strømstøtte.
    assert lines["norgespris"]["amount_ex_vat_ore"] == -60
    assert "stromstotte" not in lines
    assert any("VAT exempt" in note for note in bill.notes)
    # An explicit option beats the stored setting.
    assert (
        bill_month(con, "2025-10", "full", county="Oslo", now=utc(2026, 1, 1))
        .split.lines["vat_ore"]
        .sum()
        > 0
    )


def test_clear_errors(tmp_path):
    con = _one_session(tmp_path)
    with pytest.raises(BillingError, match="grid company"):
        bill_month(con, "2025-10", "full")
    with pytest.raises(MissingPricesError, match="no spot prices for NO2 in 2025-10"):
        bill_month(con, "2025-10", "spot", price_area="NO2")
    # November holds no charging: said so, before any price is looked for.
    with pytest.raises(NoSessionsError, match="no charging in 2025-11 at Borettslaget Test"):
        bill_month(con, "2025-11", "spot")
    with pytest.raises(BillingError, match="needs a price"):
        bill_month(con, "2025-10", "flat")
    with pytest.raises(BillingError, match="no installation"):
        bill_month(con, "2025-10", "flat", price_nok_per_kwh=1.0, installation_id="other")
    with pytest.raises(BillingError, match="unknown installation settings"):
        set_installation_settings(con, INSTALLATION, colour="red")
