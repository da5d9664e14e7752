"""Simulated recordings for the replay tests, with their ground truth.

Every simulation is small (ten chargers, three days) and seeded, so a fixture costs well
under a second. The available current (32 A per line) is below what ten cars want in the
morning, so the load balancer is busy and an ignored allocation overloads a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl
import pytest

from firmware_ref.faults import IgnoreAllocation
from firmware_ref.simulate import SimulationConfig, simulate
from zapanalytics.replay.recording import InstallationInfo, Recording, build_recording

#: Grace window of the conformance checks [s] (ConformanceConfig default).
GRACE_S = 15.0


def installation_info(result, *, apm: bool | None = None) -> InstallationInfo:
    site = result.installation
    return InstallationInfo(
        installation_id=site["installation_id"],
        network_type=site["network_type"],
        main_fuse_a=site["main_fuse_a"],
        available_current_a=site["available_current_a"],
        timezone=site["timezone"],
        apm=site["apm"] if apm is None else apm,
        name=site["name"],
    )


def recording_from_simulation(result, *, with_han: bool = True) -> Recording:
    """The recording the store would hold: state observations at the charger's reported
    time, the charge history, and the AMS meter's HAN readings."""
    site = result.installation
    states = result.state_observations.select(
        "charger_id", pl.col("ts_reported_utc").alias("ts_utc"), "state_id", "value"
    )
    sessions = result.sessions.select(
        "session_id", "charger_id", "user_id", pl.col("user_full_name").alias("user_name"),
        pl.col("start_reported_utc").alias("start_utc"), pl.col("end_reported_utc").alias("end_utc"),
        "energy_kwh", "is_void",
    )  # fmt: skip
    chargers = result.chargers.select("charger_id", "phase_rotation", "max_current_a")
    han = result.han_readings.select("ts_utc", "current_l1_a", "current_l2_a", "current_l3_a")
    return build_recording(
        installation_info(result),
        chargers,
        sessions,
        states,
        None,
        han if with_han else None,
        start_utc=site["start_utc"],
        end_utc=site["end_utc"],
    )


@dataclass(frozen=True)
class Run:
    """A ground-truth interval."""

    start: datetime
    end: datetime
    peak: float

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def truth_runs(times: list[datetime], excess: list[float], end: datetime) -> list[Run]:
    """Intervals of a change log where ``excess`` > 0 (plain loop, independent of the
    replay's own interval code)."""
    out: list[Run] = []
    start = None
    peak = 0.0
    for k, (t, x) in enumerate(zip(times, excess, strict=True)):
        if x > 0 and start is None:
            start, peak = t, x
        elif x > 0:
            peak = max(peak, x)
        elif start is not None:
            out.append(Run(start, t, peak))
            start = None
        if k == len(times) - 1 and start is not None:
            out.append(Run(start, end, peak))
    return out


def overloads_by_line(result, *, behind_fuse: bool = False) -> dict[str, list[Run]]:
    """Ground-truth line overloads: the chargers above the available current (or, with
    ``behind_fuse``, the AMS total above the main fuse), per line."""
    lc = result.line_currents.sort("ts_utc")
    times = lc["ts_utc"].to_list()
    out = {}
    for k in (1, 2, 3):
        if behind_fuse:
            excess = (lc[f"total_l{k}_a"] - lc["main_fuse_a"]).to_list()
        else:
            excess = (lc[f"chargers_l{k}_a"] - lc[f"available_l{k}_a"] - 1e-6).to_list()
        out[f"L{k}"] = truth_runs(times, excess, result.installation["end_utc"])
    return out


def simulate_with_ignored_allocation(seed: int = 0, **config) -> tuple[object, object]:
    """Simulate with an ignore-allocation fault on the first charger where it triggers."""
    for charger in range(config.get("n_chargers", 10)):
        result = simulate(
            SimulationConfig(sign_ocmf=False, faults=(IgnoreAllocation(charger),), **config),
            seed,
        )
        fault = result.faults[0]
        if fault.details.get("triggered"):
            return result, fault
    raise AssertionError("the ignore-allocation fault never triggered; pick a busier site")


BUSY_SITE = {"kind": "workplace", "n_chargers": 10, "days": 3, "available_current_a": 32.0}


@pytest.fixture(scope="session")
def healthy_tn():
    return simulate(SimulationConfig(sign_ocmf=False, **BUSY_SITE), 0)


@pytest.fixture(scope="session")
def healthy_it():
    return simulate(SimulationConfig(sign_ocmf=False, network="IT", **BUSY_SITE), 0)


@pytest.fixture(scope="session")
def faulty_tn():
    return simulate_with_ignored_allocation(**BUSY_SITE)


@pytest.fixture(scope="session")
def faulty_it():
    return simulate_with_ignored_allocation(network="IT", **BUSY_SITE)


def near(a: datetime, b: datetime, seconds: float) -> bool:
    return abs((a - b) / timedelta(seconds=1)) <= seconds
