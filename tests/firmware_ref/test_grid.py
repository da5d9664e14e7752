"""TN and IT grid physics: terminal-to-line wiring and line-current phasor sums."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_ref.grid import (
    CYCLIC_ROTATIONS,
    charger_lines,
    line_currents_a,
    line_weights,
    parse_phase_rotation,
    spread_phase_rotations,
    terminal_to_line_currents,
)

ROTATIONS = ["RST", "RTS", "SRT", "STR", "TRS", "TSR"]
SQRT3 = math.sqrt(3.0)


def test_parse_phase_rotation_accepts_ocpp_letters_and_line_names():
    assert parse_phase_rotation("RST") == (0, 1, 2)
    assert parse_phase_rotation("STR") == (1, 2, 0)
    assert parse_phase_rotation("L3L1L2") == (2, 0, 1)
    assert parse_phase_rotation("L2, L3, L1") == (1, 2, 0)
    with pytest.raises(ValueError):
        parse_phase_rotation("RRT")
    with pytest.raises(ValueError):
        parse_phase_rotation("Unknown")


def test_single_phase_uses_terminal_l1_on_tn_and_the_l1_l2_pair_on_it():
    assert charger_lines("STR", 1, "TN") == (1,)
    assert charger_lines("STR", 1, "IT") == (1, 2)
    assert charger_lines("TRS", 1, "IT") == (2, 0)
    assert charger_lines("TSR", 3, "TN") == (2, 1, 0)
    # Dynamic phase selection may move a 1-phase charge to another terminal.
    assert charger_lines("RST", 1, "TN", single_phase_terminal=2) == (2,)
    assert charger_lines("RST", 1, "IT", single_phase_terminal=1) == (1, 2)


def test_it_hand_computed_line_currents():
    # Three 10 A line-to-line loads on L1-L2, L2-L3, L3-L1: √3·10 on every line, not 20.
    currents = line_currents_a([10.0, 10.0, 10.0], ["RST", "STR", "TRS"], [1, 1, 1], "IT")
    np.testing.assert_allclose(currents, [10 * SQRT3] * 3, rtol=1e-12)
    # Two loads sharing L1 (L1-L2 and L3-L1): √3·10 on L1, 10 on the others.
    currents = line_currents_a([10.0, 10.0], ["RST", "TRS"], [1, 1], "IT")
    np.testing.assert_allclose(currents, [10 * SQRT3, 10.0, 10.0], rtol=1e-12)
    # Two loads on the same pair add arithmetically.
    currents = line_currents_a([10.0, 6.0], ["RST", "RST"], [1, 1], "IT")
    np.testing.assert_allclose(currents, [16.0, 16.0, 0.0], atol=1e-12)
    # A line-to-line load with a 3-phase star load: 30° apart, 2·cos(15°)·10 on L1 and L2.
    currents = line_currents_a([10.0, 10.0], ["RST", "RST"], [1, 3], "IT")
    expected = 20 * math.cos(math.radians(15))
    np.testing.assert_allclose(currents, [expected, expected, 10.0], rtol=1e-12)


def test_tn_line_currents_are_plain_sums():
    currents = line_currents_a([10.0, 7.0, 5.0], ["RST", "STR", "RST"], [1, 1, 3], "TN")
    np.testing.assert_allclose(currents, [15.0, 12.0, 5.0], atol=1e-12)


def test_line_currents_vectorise_over_time():
    series = np.array([[0.0, 0.0], [10.0, 10.0], [16.0, 6.0]])
    currents = line_currents_a(series, ["RST", "STR"], [1, 1], "IT")
    assert currents.shape == (3, 3)
    np.testing.assert_allclose(currents[1], [10.0, 10 * SQRT3, 10.0], rtol=1e-12)
    for row, charger_currents in zip(currents, series, strict=True):
        np.testing.assert_allclose(
            row, line_currents_a(charger_currents, ["RST", "STR"], [1, 1], "IT"), rtol=1e-12
        )


def test_terminal_currents_are_reordered_onto_supply_lines():
    out = terminal_to_line_currents([16.0, 0.0, 0.0], "STR")
    np.testing.assert_array_equal(out, [0.0, 16.0, 0.0])
    out = terminal_to_line_currents(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), "TRS")
    np.testing.assert_array_equal(out, [[2.0, 3.0, 1.0], [5.0, 6.0, 4.0]])


@pytest.mark.parametrize("network", ["TN", "IT"])
@pytest.mark.parametrize("rotation", ROTATIONS)
@pytest.mark.parametrize("phases", [1, 2, 3])
def test_each_used_line_carries_the_charger_current(network, rotation, phases):
    weights = line_weights(rotation, phases, network)
    used = charger_lines(rotation, phases, network)
    for line in range(3):
        assert abs(weights[line]) == pytest.approx(1.0 if line in used else 0.0, abs=1e-12)
    # Kirchhoff on IT: without a neutral, whatever leaves on one line returns on the others.
    if network == "IT":
        assert abs(sum(weights)) == pytest.approx(0.0, abs=1e-12)


def _brute_force_it(currents, rotations, phases):
    """Line phasors from first principles: loads in phase with the voltage across them."""
    volts = [cmath.rect(230.0, math.radians(a)) for a in (0.0, -120.0, 120.0)]
    lines = [0j, 0j, 0j]
    for amps, rotation, nph in zip(currents, rotations, phases, strict=True):
        wiring = ["RST".index(ch) for ch in rotation]
        if nph == 3:
            for k in range(3):
                lines[k] += amps * volts[k] / abs(volts[k])
        else:
            p, q = wiring[0], wiring[1]
            v_pq = volts[p] - volts[q]
            current = amps * v_pq / abs(v_pq)
            lines[p] += current
            lines[q] -= current
    return [abs(z) for z in lines]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 32.0), st.sampled_from(ROTATIONS), st.sampled_from([1, 3])),
        min_size=1,
        max_size=12,
    )
)
def test_it_line_currents_match_first_principles_and_bounds(chargers):
    currents = [c[0] for c in chargers]
    rotations = [c[1] for c in chargers]
    phases = [c[2] for c in chargers]
    got = line_currents_a(currents, rotations, phases, "IT")
    np.testing.assert_allclose(got, _brute_force_it(currents, rotations, phases), atol=1e-9)
    # Phasors never exceed the arithmetic sum of the loads on a line (triangle inequality) and,
    # since every contribution on a line lies within ±30° of the others, never drop below
    # cos(30°) of it.
    arithmetic = np.zeros(3)
    for amps, rotation, nph in chargers:
        for line in charger_lines(rotation, nph, "IT"):
            arithmetic[line] += amps
    assert np.all(got <= arithmetic + 1e-9)
    assert np.all(got >= arithmetic * math.cos(math.radians(30)) - 1e-9)


@given(st.lists(st.sampled_from(["a", "b", "c", None]), max_size=40))
def test_spread_rotations_balance_each_circuit_and_the_installation(circuits):
    rotations = spread_phase_rotations(circuits)
    assert set(rotations) <= set(CYCLIC_ROTATIONS)

    def spread(indices):
        counts = [0, 0, 0]
        for i in indices:
            counts[charger_lines(rotations[i], 1, "TN")[0]] += 1
        return max(counts) - min(counts)

    assert spread(range(len(circuits))) <= 1
    for circuit in set(circuits):
        assert spread([i for i, c in enumerate(circuits) if c == circuit]) <= 1
