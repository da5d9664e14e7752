"""Done-when: on simulated recordings the replay reports exactly the injected misbehaviour
(a charger ignoring its allocation for 20 minutes and the line it overloads), and nothing on
the healthy recordings; TN and IT, with and without APM and phase switching."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firmware_ref.simulate import SimulationConfig, simulate
from tests.replay.conftest import (
    GRACE_S,
    near,
    overloads_by_line,
    recording_from_simulation,
    simulate_with_ignored_allocation,
)
from zapanalytics.replay import check_conformance


def _expect_exactly_the_fault(result, fault, findings, *, behind_fuse=False, min_truth_s=GRACE_S):
    over_draws = [f for f in findings if f.kind == "over_draw"]
    overloads = [f for f in findings if f.kind == "phase_overload"]
    others = [f for f in findings if f.kind not in ("over_draw", "phase_overload")]
    assert others == []
    # The charger that ignored its allocation, once, inside the fault window, by as much.
    assert len(over_draws) == 1
    finding = over_draws[0]
    assert finding.charger_id == fault.charger_id
    assert near(finding.start_utc, fault.start_utc, GRACE_S)
    assert finding.end_utc <= fault.end_utc + timedelta(seconds=GRACE_S)
    assert finding.duration_s > 60.0
    assert finding.magnitude_a == pytest.approx(fault.magnitude, abs=0.01)
    # Every overloaded line of the ground truth, and no other.
    truth = {
        line: [run for run in runs if run.seconds > min_truth_s]
        for line, runs in overloads_by_line(result, behind_fuse=behind_fuse).items()
    }
    expected_lines = sorted(line for line, runs in truth.items() if runs)
    assert expected_lines, "the fault should overload a line in this scenario"
    assert sorted(f.phase for f in overloads) == expected_lines
    for f in overloads:
        runs = truth[f.phase]
        assert any(f.start_utc < run.end and run.start < f.end_utc for run in runs)
        assert f.magnitude_a == pytest.approx(max(run.peak for run in runs), abs=0.02)
        assert f.charger_id == fault.charger_id
        assert f.constraint.endswith(f.phase)


def test_ignored_allocation_tn_reports_exactly_the_fault(faulty_tn):
    result, fault = faulty_tn
    findings = check_conformance(recording_from_simulation(result))
    _expect_exactly_the_fault(result, fault, findings)
    overload = next(f for f in findings if f.kind == "phase_overload")
    assert overload.constraint.startswith("available_current_")
    assert overload.limit_a == 32.0


def test_ignored_allocation_it_reports_exactly_the_fault(faulty_it):
    result, fault = faulty_it
    findings = check_conformance(recording_from_simulation(result))
    _expect_exactly_the_fault(result, fault, findings)


def test_healthy_tn_has_no_findings(healthy_tn):
    assert check_conformance(recording_from_simulation(healthy_tn)) == []


def test_healthy_it_has_no_findings(healthy_it):
    assert check_conformance(recording_from_simulation(healthy_it)) == []


def test_healthy_with_phase_switching_has_no_findings():
    result = simulate(
        SimulationConfig(
            kind="coop",
            n_chargers=12,
            days=4,
            available_current_a=25.0,
            phase_switching=True,
            sign_ocmf=False,
        ),  # fmt: skip
        1,
    )
    recording = recording_from_simulation(result)
    switched = result.allocations.filter(result.allocations["phases"] == 1)
    assert switched.height > 0, "the scenario should switch some cars to one phase"
    assert check_conformance(recording) == []


def test_healthy_apm_home_has_no_findings():
    result = simulate(
        SimulationConfig(kind="home", n_chargers=3, days=6, main_fuse_a=25.0, sign_ocmf=False), 1
    )
    recording = recording_from_simulation(result)
    assert recording.installation.apm
    assert check_conformance(recording) == []


def test_ignored_allocation_on_apm_home_overloads_the_main_fuse():
    result, fault = simulate_with_ignored_allocation(
        seed=0, kind="home", n_chargers=3, days=6, main_fuse_a=25.0
    )
    findings = check_conformance(recording_from_simulation(result))
    # The AMS meter is read once a minute, so an overload is known from sample to sample.
    _expect_exactly_the_fault(
        result, fault, findings, behind_fuse=True, min_truth_s=GRACE_S + 120.0
    )
    overload = next(f for f in findings if f.kind == "phase_overload")
    assert overload.constraint.startswith("main_fuse_")
    assert overload.details["measured"] == "han"
