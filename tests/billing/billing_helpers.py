"""Small stores and frames for the billing tests, built in code (no generator, no sample)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from zapanalytics.billing.rates import load_rates
from zapanalytics.ingest.door import IngestRun, frame_for
from zapanalytics.store import open_store

UTC = dt.UTC
INSTALLATION = "inst-1"


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


def sessions_frame(rows: Sequence[dict]) -> pl.DataFrame:
    """``session_id, user_id, user_name, start_utc, end_utc, energy_kwh, is_void`` frame."""
    full = [{"user_name": None, "is_void": False, **row} for row in rows]
    return pl.DataFrame(
        full,
        schema={
            "session_id": pl.String,
            "user_id": pl.String,
            "user_name": pl.String,
            "start_utc": pl.Datetime("us", "UTC"),
            "end_utc": pl.Datetime("us", "UTC"),
            "energy_kwh": pl.Float64,
            "is_void": pl.Boolean,
        },
    )


def details_frame(rows: Sequence[tuple[str, dt.datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "session_id": pl.String,
            "ts_utc": pl.Datetime("us", "UTC"),
            "energy_kwh": pl.Float64,
        },
        orient="row",
    )


def prices_frame(start: dt.datetime, prices: Sequence[float], minutes: int = 60) -> pl.DataFrame:
    """Consecutive price rows of ``minutes`` from ``start`` [NOK/kWh excl. VAT]."""
    step = dt.timedelta(minutes=minutes)
    return pl.DataFrame(
        {
            "start_utc": [start + i * step for i in range(len(prices))],
            "end_utc": [start + (i + 1) * step for i in range(len(prices))],
            "spot_nok_per_kwh": [float(p) for p in prices],
        },
        schema={
            "start_utc": pl.Datetime("us", "UTC"),
            "end_utc": pl.Datetime("us", "UTC"),
            "spot_nok_per_kwh": pl.Float64,
        },
    )


def flat_prices(
    start: dt.datetime, end: dt.datetime, price: float, minutes: int = 60
) -> pl.DataFrame:
    count = int((end - start) / dt.timedelta(minutes=minutes))
    return prices_frame(start, [price] * count, minutes)


TEST_RATES = """
[vat]
exempt_counties = ["Nordland", "Troms", "Finnmark"]
[[vat.rates]]
valid_from = 2020-01-01
rate = 0.25

[elavgift]
exempt_counties = ["Finnmark"]
exempt_municipalities = ["Nordreisa"]
[[elavgift.rates]]
valid_from = 2020-01-01
nok_per_kwh = 0.10

[[elavgift_reduced.rates]]
valid_from = 2020-01-01
nok_per_kwh = 0.005

[[enova.rates]]
valid_from = 2020-01-01
nok_per_kwh = 0.01

[[enova_yearly.rates]]
valid_from = 2020-01-01
nok_per_year = 800

[[stromstotte.rates]]
valid_from = 2020-01-01
threshold_nok_per_kwh = 0.75
coverage = 0.90
cap_kwh_per_dwelling_month = 5000

[[norgespris.rates]]
valid_from = 2025-10-01
valid_to = 2027-01-01
price_nok_per_kwh = 0.40
cap_kwh_per_dwelling_month = 5000

[[supplier.rates]]
valid_from = 2020-01-01
markup_nok_per_kwh = 0.0

[grid.testnett]
name = "Test Nett AS"
[[grid.testnett.periods]]
valid_from = 2020-01-01
energy_nok_per_kwh = 0.20
capacity_method = "three_daily_peaks"
capacity_steps_kw = [0, 2, 5, 10, 15]
capacity_nok_per_year = [1200, 2400, 3600, 4800, 6000]
[[grid.testnett.periods.rules]]
name = "day, working days 06-22"
days = ["working"]
hours = [6, 22]
energy_nok_per_kwh = 0.40
"""


def round_rates(tmp_path: Path, extra: str = ""):
    """Round-number rate tables (no shipped files) for hand arithmetic."""
    path = tmp_path / "rates.toml"
    path.write_text(TEST_RATES + extra, encoding="utf-8")
    return load_rates([path], shipped=False)


def build_store(
    path: Path,
    sessions: pl.DataFrame,
    details: pl.DataFrame,
    prices: pl.DataFrame | None = None,
    *,
    price_area: str = "NO1",
    timezone: str = "Europe/Oslo",
):
    """A store holding one installation, the sessions, their details and prices (via the door)."""
    con = open_store(path)
    installation = frame_for(
        "installations",
        [
            {
                "installation_id": INSTALLATION,
                "name": "Borettslaget Test",
                "timezone": timezone,
                "price_area": price_area,
                "_record": 0,
            }
        ],
    )
    session_rows = [
        {**row, "installation_id": INSTALLATION, "_record": i}
        for i, row in enumerate(sessions.to_dicts())
    ]
    index = {row["session_id"]: row["_record"] for row in session_rows}
    detail_rows = [{**row, "_record": index[row["session_id"]]} for row in details.to_dicts()]
    with IngestRun(con, "test") as run:
        run.admit(["installation"], {"installations": installation}, record_table="installations")
        run.admit(
            [json.dumps(r, default=str) for r in session_rows],
            {
                "sessions": frame_for("sessions", session_rows),
                "energy_details": frame_for("energy_details", detail_rows),
            },
            record_table="sessions",
        )
        if prices is not None and prices.height:
            price_rows = [
                {**row, "price_area": price_area, "_record": i}
                for i, row in enumerate(prices.to_dicts())
            ]
            run.admit(
                [json.dumps(r, default=str) for r in price_rows],
                {"prices": frame_for("prices", price_rows)},
                record_table="prices",
            )
    return con
