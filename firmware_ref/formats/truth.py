"""Public keys and the ground truth of a simulated dataset.

* ``keys/<DeviceId>.pem``: each charger's OCMF public key (SPKI PEM).
* ``ground_truth.json``: how the data were made (seed, configuration), the injected
  faults with charger, times and magnitude, each charger's true meter gain error,
  and per session the energy really delivered next to the billed (metered) one.
* ``ground_truth/allocations.parquet``: the allocator's decisions over time (a change
  log per charger, with the binding constraint).
* ``ground_truth/allocator_runs.parquet``: one row per allocator run: available and
  allocated current per line.
* ``ground_truth/line_currents.parquet``: actual line currents over time (a change
  log) with the limits and overload flags.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from pathlib import Path

import polars as pl

from firmware_ref.ocmf import derive_private_key, public_key_pem

__all__ = ["write_ground_truth", "write_keys"]


def write_keys(result, out_dir: Path) -> list[Path]:
    """Write every charger's OCMF public key as ``keys/<DeviceId>.pem``."""
    key_dir = out_dir / "keys"
    key_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for device_id in result.chargers["device_id"].to_list():
        path = key_dir / f"{device_id}.pem"
        path.write_text(public_key_pem(derive_private_key(result.seed, device_id)), encoding="ascii")
        written.append(path)
    return written


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "type": type(value).__name__,
            **{k: _json_value(v) for k, v in dataclasses.asdict(value).items()},
        }
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _config_json(config) -> dict:
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "faults":
            out[f.name] = [_json_value(v) for v in value]
        else:
            out[f.name] = _json_value(value)
    return out


def write_ground_truth(
    result,
    out_dir: Path,
    lost_ocpp_messages: dict[str, int] | None = None,
    formats: dict | None = None,
) -> list[Path]:
    """Write ``ground_truth.json`` and the ``ground_truth/*.parquet`` files.

    Parameters
    ----------
    result : SimulationResult
        Simulation output.
    out_dir : pathlib.Path
        Dataset root.
    lost_ocpp_messages : dict, optional
        Messages dropped per charge point by the OCPP writer (added to the faults).
    formats : dict, optional
        Format options used, recorded for reproducibility.

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    lost = lost_ocpp_messages or {}
    faults = []
    for fault in result.faults:
        item = fault.to_json()
        if fault.kind == "lost_ocpp_messages":
            item["details"] = {**item["details"], "lost_message_count": lost.get(fault.device_id)}
        faults.append(item)
    inst = {k: _json_value(v) for k, v in result.installation.items()}
    chargers = [
        {
            "charger_id": row["charger_id"],
            "device_id": row["device_id"],
            "name": row["name"],
            "phase_rotation": row["phase_rotation"],
            "meter_gain_error": row["meter_gain_error"],
            "meter_offset_w": row["meter_offset_w"],
            "submeter_id": row["submeter_id"],
            "submeter_gain_error": row["submeter_gain_error"],
        }
        for row in result.chargers.iter_rows(named=True)
    ]
    sessions = [
        {
            "session_id": row["session_id"],
            "charger_id": row["charger_id"],
            "start_utc": _json_value(row["start_utc"]),
            "end_utc": _json_value(row["end_utc"]),
            "energy_need_kwh": row["energy_need_kwh"],
            "true_energy_kwh": row["true_energy_kwh"],
            "billed_energy_kwh": row["energy_kwh"],
            "is_void": row["is_void"],
            "ocmf_tampered": row["ocmf_tampered"],
        }
        for row in result.sessions.iter_rows(named=True)
    ]
    runs = result.allocator_runs
    over = [
        pl.col(f"allocated_l{k}_a") > pl.col(f"available_l{k}_a") + 1e-6 for k in (1, 2, 3)
    ]
    allocator_violations = runs.filter(pl.any_horizontal(over)).height
    truth = {
        "generator": "firmware_ref.simulate",
        "seed": result.seed,
        "config": _config_json(result.config),
        "formats": formats or {},
        "installation": inst,
        "stats": result.stats,
        "allocator_fuse_violations": allocator_violations,
        "faults": faults,
        "chargers": chargers,
        "sessions": sessions,
    }
    path = out_dir / "ground_truth.json"
    path.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    gt_dir = out_dir / "ground_truth"
    gt_dir.mkdir(parents=True, exist_ok=True)
    written = [path]
    for name, frame in (
        ("allocations", result.allocations),
        ("allocator_runs", result.allocator_runs),
        ("line_currents", result.line_currents),
    ):
        target = gt_dir / f"{name}.parquet"
        frame.write_parquet(target, compression="zstd", statistics=False)
        written.append(target)
    return written
