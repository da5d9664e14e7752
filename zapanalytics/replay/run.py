"""One replay of a recording: conformance, fairness and scenarios, in one result.

The CLI (``zapanalytics replay``) and the load-balancing notebook call :func:`run_replay`
and show the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl

from zapanalytics.naming import charger_names, named_record
from zapanalytics.replay.acn import PeerComparison, compare_with_acnsim
from zapanalytics.replay.conformance import ConformanceConfig, Finding, check_conformance
from zapanalytics.replay.demands import session_demands, site_limits
from zapanalytics.replay.fairness import FairnessReport, fairness_report
from zapanalytics.replay.power import effective_voltage
from zapanalytics.replay.recording import Recording
from zapanalytics.replay.reference import AllocationReplay, replay_allocations
from zapanalytics.replay.whatif import (
    Scenario,
    ScenarioResult,
    compare_scenarios,
    scenario_sessions,
)


@dataclass
class ReplayResult:
    """Everything one replay found.

    Attributes
    ----------
    recording : Recording
        What was replayed.
    findings : list of Finding
        Conformance findings.
    reference : AllocationReplay
        The reference allocator on the recorded demands.
    fairness : FairnessReport
        Fairness of the recorded allocations.
    scenarios : list of ScenarioResult
        ``recorded``, ``baseline`` and the what-ifs.
    peer : list of PeerComparison
        ACN-Sim side by side (empty unless asked for).
    timings_s : dict
        Wall time of each step [s].
    """

    recording: Recording
    findings: list[Finding]
    reference: AllocationReplay
    fairness: FairnessReport
    scenarios: list[ScenarioResult]
    peer: list[PeerComparison] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        site = self.recording.installation
        names = charger_names(self.recording.chargers)
        return {
            "installation": {
                "installation_id": site.installation_id,
                "name": site.name,
                "network_type": site.network_type,
                "main_fuse_a": site.main_fuse_a,
                "available_current_a": site.available_current_a,
                "apm": site.apm,
                "timezone": site.timezone,
            },
            "start_utc": self.recording.start_utc.isoformat(),
            "end_utc": self.recording.end_utc.isoformat(),
            "chargers": self.recording.chargers.height,
            "sessions": self.recording.sessions.height,
            "findings": [named_record(f.as_dict(), names) for f in self.findings],
            "fairness": self.fairness.as_dict(),
            "scenarios": [s.as_dict() for s in self.scenarios],
            "peer": [p.as_dict() for p in self.peer],
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }


def run_replay(
    recording: Recording,
    scenarios: Sequence[Scenario] = (),
    *,
    config: ConformanceConfig | None = None,
    include_baseline: bool = True,
    peer: bool = False,
    peer_days: float = 7.0,
    prices_nok_per_month: Sequence[float] | None = None,
) -> ReplayResult:
    """Check conformance, measure fairness and run what-if scenarios on a recording.

    Parameters
    ----------
    recording : Recording
        From :func:`~zapanalytics.replay.recording.load_recording`.
    scenarios : sequence of Scenario
        What-ifs to run besides the recording and the baseline.
    config : ConformanceConfig, optional
        Conformance thresholds.
    include_baseline : bool
        Also run the reference allocator on the recorded site as a scenario.
    peer : bool
        Also run ACN-Sim on the recorded sessions (equal share and first come).
    peer_days : float
        ACN-Sim steps every minute and is slow: it gets the sessions that arrive in the
        first ``peer_days`` days [d].
    prices_nok_per_month : sequence of float, optional
        Capacity-step prices for the scenarios' capacity charge.

    Returns
    -------
    ReplayResult
    """
    config = config or ConformanceConfig()
    timings: dict[str, float] = {}
    began = time.perf_counter()
    demands = session_demands(recording)
    reference = replay_allocations(
        recording,
        policy="reference",
        demands=demands,
        phase_switch=config.phase_switch,
        dynamic_phase_selection=config.dynamic_phase_selection,
        apm_margin_a=config.apm_margin_a,
    )
    timings["reference_replay"] = time.perf_counter() - began

    began = time.perf_counter()
    findings = check_conformance(recording, config, reference=reference)
    timings["conformance"] = time.perf_counter() - began

    began = time.perf_counter()
    fairness = fairness_report(
        recording,
        demands=demands,
        limits=site_limits(recording, apm_margin_a=config.apm_margin_a),
        dynamic_phase_selection=config.dynamic_phase_selection,
    )
    timings["fairness"] = time.perf_counter() - began

    began = time.perf_counter()
    results = compare_scenarios(
        recording,
        scenarios,
        include_baseline=include_baseline,
        apm_margin_a=config.apm_margin_a,
        prices_nok_per_month=prices_nok_per_month,
    )
    timings["scenarios"] = time.perf_counter() - began

    comparisons: list[PeerComparison] = []
    if peer:
        began = time.perf_counter()
        window_end = recording.start_utc + timedelta(days=peer_days)
        comparisons = compare_with_acnsim(
            scenario_sessions(recording, demands).filter(pl.col("arrival_utc") < window_end),
            recording.chargers,
            site_limits(recording, apm_margin_a=config.apm_margin_a),
            network_type=recording.installation.network_type,
            voltage_v=effective_voltage(recording),
        )
        timings["peer"] = time.perf_counter() - began
    return ReplayResult(recording, findings, reference, fairness, results, comparisons, timings)
