"""Generate a complete dataset directory: simulate, then write every source format.

:func:`generate_dataset` is what ``zapanalytics sample`` runs, and what made the
bundled ``data/sample/``. Its defaults are the compact profile of that sample:
List 2 HAN readings every 30 min, sub-meter readings every 15 min, OCPP logs for the
sub-metered chargers with a 30-min ``MeterValueSampleInterval``. Same arguments, same
bytes.

Fault presets (:func:`fault_preset`):

``sample``  one charger's meter reads +1.8 % (with a MID sub-meter on it and on a
            healthy charger) and another charger ignores its allocation for 20 min
``none``    no faults (the two sub-meters stay)
``all``     ``sample`` plus a tampered signed session, a register reset, a charger
            clock drifting +50 ppm after a 90 s jump, and an hour of lost OCPP
            messages
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from firmware_ref.faults import (
    ClockDrift,
    Fault,
    IgnoreAllocation,
    LostOcppMessages,
    MeterGainError,
    RegisterReset,
    TamperedOcmf,
)
from firmware_ref.formats import FormatOptions, write_dataset
from firmware_ref.simulate import SimulationConfig, SimulationResult, simulate

__all__ = ["FAULT_PRESETS", "DatasetSpec", "fault_preset", "generate_dataset"]

FAULT_PRESETS = ("sample", "none", "all")


@dataclass(frozen=True)
class FaultPlan:
    """Faults of a preset and the chargers given MID sub-meters."""

    faults: tuple[Fault, ...]
    submeter_chargers: tuple[int, ...]


def fault_preset(name: str, n_chargers: int) -> FaultPlan:
    """Faults and sub-metered chargers of a preset for an installation of ``n_chargers``.

    The faulty meter sits on charger 3 (index 2) and the charger ignoring its
    allocation on charger 6 (index 5) when there are enough chargers; the healthy
    sub-metered charger is one without faults.
    """
    if name not in FAULT_PRESETS:
        raise ValueError(f"unknown fault preset {name!r}; expected one of {FAULT_PRESETS}")
    n = n_chargers
    gain = min(2, n - 1)
    ignore = 5 if n > 5 else (n - 1 if n - 1 != gain else (gain + 1) % n)
    extra = (gain, ignore)
    if name == "all":
        extra += tuple(k % n for k in (6, 7, 1))
    healthy = next((k for k in (4, 3, 0, 1, 7, 6) if k < n and k not in extra), None)
    submeters = tuple(sorted({gain} | ({healthy} if healthy is not None else set())))
    faults: tuple[Fault, ...] = (
        MeterGainError(gain, 0.018),
        IgnoreAllocation(ignore, duration_s=1200.0),
    )
    if name == "none":
        faults = ()
    elif name == "all":
        ocpp_charger = healthy if healthy is not None else gain
        faults += (
            TamperedOcmf(6 % n, session_number=1),
            RegisterReset(7 % n, register_wh=0),
            ClockDrift(1 % n, drift_ppm=50.0, offset_s=90.0),
            LostOcppMessages(ocpp_charger, duration_s=3600.0),
        )
    return FaultPlan(faults, submeters)


@dataclass(frozen=True)
class DatasetSpec:
    """Arguments of :func:`generate_dataset` (the ``zapanalytics sample`` options)."""

    days: int = 31
    n_chargers: int = 8
    seed: int = 2025
    start: date = date(2025, 10, 1)
    kind: str = "coop"
    main_fuse_a: float | None = None
    network: str = "TN"
    phase_switching: bool = False
    faults: str = "sample"
    han_list2_interval_s: float = 1800.0
    submeter_interval_s: float = 900.0
    meter_value_interval_s: float = 3600.0
    ocpp_meter_value_interval_s: float = 3600.0
    ocpp_chargers: tuple[int, ...] | None = None
    han_vendor: str = "kaifa"


#: Main fuse [A] by installation kind when a spec gives none: the bundled sample's
#: 32 A for a co-op (a small garage on a tight supply), 40 A for a home, 63 A otherwise.
DEFAULT_FUSE_A = {"coop": 32.0, "home": 40.0, "workplace": 63.0}


def build_config(spec: DatasetSpec) -> tuple[SimulationConfig, FormatOptions]:
    """Simulation config and writer options of a dataset spec."""
    plan = fault_preset(spec.faults, spec.n_chargers)
    fuse = spec.main_fuse_a if spec.main_fuse_a is not None else DEFAULT_FUSE_A[spec.kind]
    config = SimulationConfig(
        kind=spec.kind,
        n_chargers=spec.n_chargers,
        main_fuse_a=fuse,
        network=spec.network,
        start=spec.start,
        days=spec.days,
        phase_switching=spec.phase_switching,
        faults=plan.faults,
        han_interval_s=spec.han_list2_interval_s,
        submeter_chargers=plan.submeter_chargers,
        submeter_interval_s=spec.submeter_interval_s,
        meter_sample_interval_s=spec.meter_value_interval_s,
    )
    ocpp = spec.ocpp_chargers if spec.ocpp_chargers is not None else plan.submeter_chargers
    options = FormatOptions(
        ocpp_charge_points=ocpp,
        ocpp_meter_value_interval_s=spec.ocpp_meter_value_interval_s,
        han_vendor=spec.han_vendor,
    )
    return config, options


def generate_dataset(
    out_dir: Path | str, spec: DatasetSpec | None = None
) -> tuple[SimulationResult, list[Path]]:
    """Simulate an installation and write it as a dataset directory.

    Parameters
    ----------
    out_dir : pathlib.Path or str
        Target directory; files the writers own are replaced, others left alone.
    spec : DatasetSpec, optional
        What to generate; the default is the bundled sample.

    Returns
    -------
    (SimulationResult, list of pathlib.Path)
        The simulation and the files written.
    """
    spec = spec or DatasetSpec()
    config, options = build_config(spec)
    result = simulate(config, spec.seed)
    return result, write_dataset(result, out_dir, options)
