"""Synthetic day-ahead spot prices in the hvakosterstrommen.no JSON shape.

``prices/<AREA>/<YYYY>-<MM>-<DD>.json`` holds one local day: a list of
``{"NOK_per_kWh", "EUR_per_kWh", "EXR", "time_start", "time_end"}`` with local
offsets (``"2025-10-01T00:00:00+02:00"``). Days from 2025-10-01 have 15-minute rows
(the day-ahead market's 15-minute products), earlier days hourly rows; DST days have
23/25 hours (92/100 quarters).

The prices are synthetic but shaped like Nordic day-ahead prices: a daily level that
wanders (log random walk) around an area level, a morning and a larger evening peak,
a night trough, cheaper weekends, and quarter-hours scattered around their hour.
Seeded: the same seed, area and days give the same numbers.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

__all__ = ["QUARTER_HOUR_FROM", "synthetic_spot_prices", "write_prices"]

#: First delivery day with 15-minute day-ahead prices.
QUARTER_HOUR_FROM = date(2025, 10, 1)
AREA_LEVEL_EUR_PER_KWH = {"NO1": 0.072, "NO2": 0.068, "NO3": 0.034, "NO4": 0.022, "NO5": 0.064}
_AREAS = tuple(AREA_LEVEL_EUR_PER_KWH)


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).astimezone(UTC)
    return start, end


def synthetic_spot_prices(
    area: str,
    first_day: date,
    last_day: date,
    seed: int,
    timezone: str = "Europe/Oslo",
) -> pl.DataFrame:
    """Synthetic spot prices for local days ``first_day`` .. ``last_day`` (inclusive).

    Parameters
    ----------
    area : {'NO1', 'NO2', 'NO3', 'NO4', 'NO5'}
        Bidding zone.
    first_day, last_day : datetime.date
        Local days.
    seed : int
        Seed.
    timezone : str
        Zone of the local days.

    Returns
    -------
    polars.DataFrame
        Columns ``day`` (local date), ``start_utc``, ``end_utc`` (Datetime UTC),
        ``eur_per_kwh`` [EUR/kWh], ``nok_per_kwh`` [NOK/kWh], ``exr`` [NOK/EUR].
    """
    if area not in AREA_LEVEL_EUR_PER_KWH:
        raise ValueError(f"unknown price area {area!r}; expected one of {_AREAS}")
    if last_day < first_day:
        raise ValueError("last_day precedes first_day")
    tz = ZoneInfo(timezone)
    rng = np.random.default_rng([seed, _AREAS.index(area), 5757])
    n_days = (last_day - first_day).days + 1
    level = AREA_LEVEL_EUR_PER_KWH[area] * np.exp(
        np.cumsum(rng.normal(0.0, 0.18, n_days)) * 0.6
    )
    exr = np.round(11.65 + np.cumsum(rng.normal(0.0, 0.03, n_days)), 4)
    rows: dict[str, list] = {k: [] for k in ("day", "start_utc", "end_utc", "eur", "exr")}
    for d in range(n_days):
        day = first_day + timedelta(days=d)
        start, end = _day_bounds(day, tz)
        step = 900 if day >= QUARTER_HOUR_FROM else 3600
        n = int((end - start).total_seconds()) // step
        starts = [start + timedelta(seconds=step * k) for k in range(n)]
        hours = np.array(
            [s.astimezone(tz).hour + s.astimezone(tz).minute / 60.0 for s in starts]
        )
        shape = (
            1.0
            + 0.30 * np.exp(-0.5 * ((hours - 8.0) / 1.3) ** 2)
            + 0.45 * np.exp(-0.5 * ((hours - 18.0) / 1.8) ** 2)
            - 0.25 * np.exp(-0.5 * ((hours - 3.5) / 2.0) ** 2)
        )
        weekend = 0.86 if day.weekday() >= 5 else 1.0
        noise = np.exp(rng.normal(0.0, 0.05 if step == 900 else 0.035, n))
        eur = np.maximum(level[d] * weekend * shape * noise, 0.0005)
        rows["day"] += [day] * n
        rows["start_utc"] += starts
        rows["end_utc"] += [s + timedelta(seconds=step) for s in starts]
        rows["eur"] += np.round(eur, 5).tolist()
        rows["exr"] += [float(exr[d])] * n
    frame = pl.DataFrame(
        {
            "day": rows["day"],
            "start_utc": pl.Series(rows["start_utc"], dtype=pl.Datetime("us", "UTC")),
            "end_utc": pl.Series(rows["end_utc"], dtype=pl.Datetime("us", "UTC")),
            "eur_per_kwh": rows["eur"],
            "exr": rows["exr"],
        }
    )
    return frame.with_columns(
        (pl.col("eur_per_kwh") * pl.col("exr")).round(5).alias("nok_per_kwh")
    ).select("day", "start_utc", "end_utc", "eur_per_kwh", "nok_per_kwh", "exr")


def write_prices(
    out_dir: Path,
    area: str,
    first_day: date,
    last_day: date,
    seed: int,
    timezone: str = "Europe/Oslo",
) -> list[Path]:
    """Write ``prices/<AREA>/<YYYY>-<MM>-<DD>.json`` files for the given days.

    Returns
    -------
    list of pathlib.Path
        Files written, one per day.
    """
    tz = ZoneInfo(timezone)
    prices = synthetic_spot_prices(area, first_day, last_day, seed, timezone)
    area_dir = out_dir / "prices" / area
    area_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (day,), chunk in prices.group_by(["day"], maintain_order=True):
        items = [
            {
                "NOK_per_kWh": row["nok_per_kwh"],
                "EUR_per_kWh": row["eur_per_kwh"],
                "EXR": row["exr"],
                "time_start": row["start_utc"].astimezone(tz).isoformat(),
                "time_end": row["end_utc"].astimezone(tz).isoformat(),
            }
            for row in chunk.iter_rows(named=True)
        ]
        path = area_dir / f"{day:%Y-%m-%d}.json"
        body = ",\n".join(json.dumps(item, separators=(",", ":")) for item in items)
        path.write_text("[\n" + body + "\n]\n", encoding="utf-8")
        written.append(path)
    return written
