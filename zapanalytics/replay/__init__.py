"""Load-balancing replay: rebuild what an installation did, check it against the reference
allocator, measure fairness and try what-if scenarios.

* :mod:`~zapanalytics.replay.recording` — per-phase load and allocations as step functions
  from the store (:func:`load_recording`).
* :mod:`~zapanalytics.replay.conformance` — findings (:func:`check_conformance`).
* :mod:`~zapanalytics.replay.fairness` — Jain's index, max-min shortfall, waits.
* :mod:`~zapanalytics.replay.whatif` — other fuse, chargers, policy or APM budget.
* :mod:`~zapanalytics.replay.acn` — the same sessions through ACN-Sim.
* :mod:`~zapanalytics.replay.run` — all of it at once (:func:`run_replay`).
"""

from zapanalytics.replay.conformance import ConformanceConfig, Finding, check_conformance
from zapanalytics.replay.fairness import FairnessReport, fairness_report
from zapanalytics.replay.recording import (
    InstallationInfo,
    Recording,
    build_recording,
    load_recording,
)
from zapanalytics.replay.run import ReplayResult, run_replay
from zapanalytics.replay.whatif import Scenario, ScenarioResult, compare_scenarios, run_scenario

__all__ = [
    "ConformanceConfig",
    "FairnessReport",
    "Finding",
    "InstallationInfo",
    "Recording",
    "ReplayResult",
    "Scenario",
    "ScenarioResult",
    "build_recording",
    "check_conformance",
    "compare_scenarios",
    "fairness_report",
    "load_recording",
    "run_replay",
    "run_scenario",
]
