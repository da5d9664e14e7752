"""MID sub-meter readings of chosen chargers, as CSV.

``submeter/<meter_id>.csv`` with columns ``timestamp`` (ISO-8601 with the local
offset, e.g. ``2025-10-26T02:30:00+01:00``), ``energy_import_kwh`` (cumulative import
register, 10 Wh resolution), ``current_l1_a``, ``current_l2_a``, ``current_l3_a``
(on the charger's terminals); and ``submeter/meters.json`` mapping each meter id to
the charger it measures.
"""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

__all__ = ["write_submeters"]


def write_submeters(result, out_dir: Path) -> list[Path]:
    """Write the sub-meter CSV files of a simulated installation.

    Parameters
    ----------
    result : SimulationResult
        Simulation output (meters from ``config.submeter_chargers``).
    out_dir : pathlib.Path
        Dataset root; files go to ``submeter/``.

    Returns
    -------
    list of pathlib.Path
        Files written (none when no charger has a sub-meter).
    """
    readings = result.submeter_readings
    if readings.height == 0:
        return []
    sub_dir = out_dir / "submeter"
    sub_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(sub_dir.glob("*.csv")):
        old.unlink()
    tz = ZoneInfo(result.installation["timezone"])
    chargers = result.chargers.filter(pl.col("submeter_id").is_not_null())
    written = []
    meta = {}
    for row in chargers.sort("submeter_id").iter_rows(named=True):
        meter_id = row["submeter_id"]
        rows = readings.filter(pl.col("meter_id") == meter_id).sort("ts_utc")
        lines = ["timestamp,energy_import_kwh,current_l1_a,current_l2_a,current_l3_a\n"]
        for ts, kwh, i1, i2, i3 in rows.select(
            "ts_utc", "energy_import_kwh", "current_l1_a", "current_l2_a", "current_l3_a"
        ).iter_rows():
            lines.append(
                f"{ts.astimezone(tz).isoformat()},{kwh:.2f},{i1:.2f},{i2:.2f},{i3:.2f}\n"
            )
        path = sub_dir / f"{meter_id}.csv"
        path.write_text("".join(lines), encoding="utf-8")
        written.append(path)
        meta[meter_id] = {
            "charger_id": row["charger_id"],
            "device_id": row["device_id"],
            "charger_name": row["name"],
            "resolution_kwh": 0.01,
            "interval_s": result.config.submeter_interval_s,
            "meter_class": "MID B",
        }
    meta_path = sub_dir / "meters.json"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    written.append(meta_path)
    return written
