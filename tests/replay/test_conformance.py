"""Each conformance check on hand-built recordings, on TN and IT."""

from __future__ import annotations

import math

import polars as pl
import pytest

from tests.replay.builders import at, drawing, recording
from zapanalytics.replay.conformance import (
    ConformanceConfig,
    allocation_mismatch,
    below_minimum,
    check_conformance,
    over_draw,
    phase_overload,
    phase_switching,
)

CONFIG = ConformanceConfig()


def _one_charger(draw_a: float, allocated_a: float, seconds: float, network: str = "TN"):
    minutes = seconds / 60.0
    second = draw_a if network == "IT" else 0.0
    rows = [
        ("a", 0, 710, 3), ("a", 0, 708, allocated_a), ("a", 0, 519, 1 if network == "TN" else 8),
        *drawing("a", 0, allocated_a, second and allocated_a, 0),
        *drawing("a", 10, draw_a, second, 0),
        *drawing("a", 10 + minutes, allocated_a, second and allocated_a, 0),
    ]  # fmt: skip
    return recording(rows, [("s", "a", 0, 90)], {"a": "RST"}, network=network)


@pytest.mark.parametrize("network", ["TN", "IT"])
def test_over_draw_beyond_grace_is_found(network):
    found = over_draw(_one_charger(16.0, 10.0, 120, network), CONFIG)
    assert len(found) == 1
    f = found[0]
    assert (f.start_utc, f.end_utc) == (at(10), at(12))
    assert f.magnitude_a == pytest.approx(6.0)
    assert f.limit_a == 10.0 and f.constraint == "allocation"
    assert f.phase == ("L1" if network == "TN" else "L1,L2")


def test_over_draw_within_grace_or_tolerance_is_not_found():
    assert over_draw(_one_charger(16.0, 10.0, 12), CONFIG) == []  # a pilot change
    assert over_draw(_one_charger(11.4, 10.0, 600), CONFIG) == []  # 10 % + 0.5 A


def _three_single_phase(network: str, amps: float, seconds: float):
    """Three single-phase cars on rotations RST, STR, TRS: one per line on TN, one per line
    pair on IT."""
    rows = []
    for charger in "abc":
        rows += [(charger, 0, 708, amps), (charger, 0, 710, 3)]
        rows += drawing(charger, 1, amps, amps if network == "IT" else 0, 0)
        rows += drawing(charger, 1 + seconds / 60, 0, 0, 0)
    sessions = [("s" + c, c, 0, 90) for c in "abc"]
    return recording(rows, sessions, {"a": "RST", "b": "STR", "c": "TRS"}, network=network,
                     available_a=32.0)  # fmt: skip


def test_it_overload_uses_phasor_sums():
    # 20 A between each pair: √3·20 = 34.6 A on every line of an IT supply (not 40, not 20).
    found = phase_overload(_three_single_phase("IT", 20.0, 300), CONFIG)
    assert sorted(f.phase for f in found) == ["L1", "L2", "L3"]
    for f in found:
        assert f.magnitude_a == pytest.approx(20 * math.sqrt(3) - 32.0, abs=1e-3)
        assert f.constraint == f"available_current_{f.phase}"
        assert (f.start_utc, f.end_utc) == (at(1), at(6))


def test_tn_same_currents_do_not_overload():
    assert phase_overload(_three_single_phase("TN", 20.0, 300), CONFIG) == []


def test_short_overload_is_within_grace():
    assert phase_overload(_three_single_phase("IT", 20.0, 10), CONFIG) == []


def test_overload_names_the_charger_over_its_allocation():
    rows = [
        ("a", 0, 708, 16), ("a", 0, 710, 3), *drawing("a", 1, 16, 16, 16),
        ("b", 0, 708, 16), ("b", 0, 710, 3), *drawing("b", 1, 16, 16, 16),
        ("a", 10, 708, 10), *drawing("a", 10.1, 10, 10, 10),
        ("b", 10, 708, 22), *drawing("b", 10.2, 22, 22, 22),  # b obeys its raise...
        ("a", 12, 708, 10), *drawing("a", 12, 16, 16, 16),  # ...a goes back to 16 A
    ]  # fmt: skip
    rec = recording(rows, [("s1", "a", 0, 60), ("s2", "b", 0, 60)], {"a": "RST", "b": "RST"})
    found = check_conformance(rec, ConformanceConfig(check_reference=False))
    overloads = [f for f in found if f.kind == "phase_overload"]
    assert sorted(f.phase for f in overloads) == ["L1", "L2", "L3"]
    assert {f.charger_id for f in overloads} == {"a"}
    assert all(f.magnitude_a == pytest.approx(6.0) for f in overloads)


def test_below_minimum_while_charging():
    rows = [("a", 0, 710, 3), ("a", 0, 708, 16), *drawing("a", 0, 16, 16, 16),
            ("a", 5, 708, 4.0), *drawing("a", 5.05, 4, 4, 4), ("a", 8, 708, 6.0)]  # fmt: skip
    found = below_minimum(recording(rows, [("s", "a", 0, 60)], {"a": "RST"}), CONFIG)
    assert len(found) == 1
    assert (found[0].start_utc, found[0].end_utc) == (at(5), at(8))
    assert found[0].magnitude_a == pytest.approx(2.0)
    assert found[0].constraint == "min_current"


def _switching(n_switches: int):
    rows = [("a", 0, 710, 3), ("a", 0, 708, 16)]
    for k in range(n_switches + 1):
        three = k % 2 == 0
        rows += drawing("a", 1 + 11 * k, 16, 16 if three else 0, 16 if three else 0)
    return recording(rows, [("s", "a", 0, 200)], {"a": "RST"}, end_minute=200)


def test_phase_switching_more_often_than_allowed():
    assert phase_switching(_switching(5), CONFIG) == []
    found = phase_switching(_switching(7), CONFIG)
    assert len(found) == 1
    assert found[0].details == {"session_id": "s", "switches": 7, "allowed": 5}
    assert found[0].start_utc == at(1 + 11 * 6)  # the sixth switch


def test_allocation_mismatch_against_the_reference():
    # b alone takes 16 A (so its car can); a arrives; on 32 A the reference shares 16/16,
    # the record gives a 22 A and b 10 A.
    rows = [
        ("b", 0, 708, 16), ("b", 0, 710, 3), *drawing("b", 1, 16, 16, 16),
        ("a", 10, 708, 22), ("a", 10, 710, 3), ("b", 10, 708, 10),
        *drawing("b", 10.1, 10, 10, 10), *drawing("a", 10.2, 22, 22, 22),
    ]  # fmt: skip
    rec = recording(rows, [("s1", "a", 10, 60), ("s2", "b", 0, 60)], {"a": "RST", "b": "RST"})
    found = allocation_mismatch(rec, CONFIG)
    by_charger = {f.charger_id: f for f in found}
    assert set(by_charger) == {"a", "b"}
    assert by_charger["a"].magnitude_a == pytest.approx(6.0)
    assert by_charger["a"].details["reference_current_a"] == pytest.approx(16.0)
    assert by_charger["a"].constraint.startswith("fuse_L")
    assert (by_charger["b"].start_utc, by_charger["b"].end_utc) == (at(10), at(60))


def test_a_car_that_never_took_more_is_not_a_mismatch():
    # Without evidence that b's car takes more than 10 A, 22/10 is what the reference gives.
    rows = [
        ("a", 0, 708, 22), ("a", 0, 710, 3), *drawing("a", 1, 22, 22, 22),
        ("b", 0, 708, 10), ("b", 0, 710, 3), *drawing("b", 1, 10, 10, 10),
    ]  # fmt: skip
    rec = recording(rows, [("s1", "a", 0, 60), ("s2", "b", 0, 60)], {"a": "RST", "b": "RST"})
    assert allocation_mismatch(rec, CONFIG) == []


def test_apm_overload_needs_consecutive_han_samples():
    times = [at(m) for m in range(0, 30)]
    above = {10, 20, 21, 22}  # one lone sample, then three in a row
    han = pl.DataFrame(
        {
            "ts_utc": pl.Series(times, dtype=pl.Datetime("us", "UTC")),
            "current_l1_a": [30.0 if k in above else 20.0 for k in range(30)],
            "current_l2_a": [10.0] * 30,
            "current_l3_a": [10.0] * 30,
        }
    )
    rows = [("a", 0, 708, 10), ("a", 0, 710, 3), *drawing("a", 0, 10, 10, 10)]
    rec = recording(rows, [("s", "a", 0, 30)], {"a": "RST"}, fuse_a=25.0, apm=True, han=han,
                    end_minute=30)  # fmt: skip
    found = phase_overload(rec, CONFIG)
    assert len(found) == 1
    assert (found[0].start_utc, found[0].end_utc, found[0].phase) == (at(20), at(22), "L1")
    assert found[0].constraint == "main_fuse_L1"
    assert found[0].magnitude_a == pytest.approx(5.0)
