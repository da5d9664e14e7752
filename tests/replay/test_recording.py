"""Per-line load from terminal currents: TN plain sums, IT phasor sums; rotations."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from firmware_ref.grid import line_currents_a, parse_phase_rotation
from tests.replay.builders import at, drawing, recording
from zapanalytics.replay.wiring import charger_line_phasors, set_phases_lines

SQRT3 = math.sqrt(3.0)


def _lines(rotations):
    return np.array([parse_phase_rotation(r) for r in rotations])


def test_tn_single_phase_lands_on_the_rotated_line():
    phasors = charger_line_phasors(np.array([[16.0, 0.0, 0.0]]), _lines(["STR"]), "TN")
    assert np.abs(phasors[0]) == pytest.approx([0.0, 16.0, 0.0])


def test_it_three_line_to_line_loads_give_root_three_per_line():
    currents = np.array([[10.0, 10.0, 0.0]] * 3)
    phasors = charger_line_phasors(currents, _lines(["RST", "STR", "TRS"]), "IT")
    assert np.abs(phasors.sum(axis=0)) == pytest.approx([10 * SQRT3] * 3)


def test_it_matches_firmware_ref_grid_for_mixed_loads():
    rotations = ["RST", "STR", "TRS", "RST"]
    currents = np.array([[12.0, 12.0, 0.0], [8.0, 8.0, 0.0], [16.0, 16.0, 16.0], [0.0, 7.0, 7.0]])
    ours = np.abs(charger_line_phasors(currents, _lines(rotations), "IT").sum(axis=0))
    terminals = [0, 0, 0, 1]
    theirs = line_currents_a([12.0, 8.0, 16.0, 7.0], rotations, [1, 1, 3, 1], "IT", terminals)
    assert ours == pytest.approx(theirs)


@pytest.mark.parametrize(
    ("value", "network", "lines"),
    [(2, "TN", (1,)), (4, "TN", (0, 1, 2)), (8, "IT", (0, 1)), (5, "IT", (2, 0)), (None, "TN", ())],
)
def test_set_phases_lines(value, network, lines):
    assert set_phases_lines(value, network) == lines


def _two_chargers(network):
    rows = [
        ("a", 0, 710, 2), ("a", 0, 708, 16), ("a", 0, 519, 4 if network == "TN" else 8),
        *drawing("a", 1, 16, 16, 16 if network == "TN" else 0),
        ("b", 0, 710, 2), ("b", 0, 708, 16), ("b", 0, 519, 2 if network == "TN" else 6),
        *drawing("b", 2, 16, 16 if network == "IT" else 0, 0),
        *drawing("a", 30, 0, 0, 0), ("a", 30, 710, 5), ("a", 30, 708, 0),
    ]  # fmt: skip
    return recording(rows, [("s1", "a", 0, 60), ("s2", "b", 0, 60)], {"a": "RST", "b": "STR"},
                     network=network)  # fmt: skip


def test_tn_line_load_sums_three_phase_and_single_phase_chargers():
    steps = _two_chargers("TN").line_steps
    at_10 = steps.filter(pl.col("start_utc") <= at(10)).tail(1)
    # a: 16 A on three lines; b: 16 A single-phase on its terminal L1 = supply L2 (STR).
    assert at_10.select("chargers_l1_a", "chargers_l2_a", "chargers_l3_a").row(0) == (
        16.0,
        32.0,
        16.0,
    )
    after = steps.filter(pl.col("start_utc") <= at(40)).tail(1)
    assert after.select("chargers_l1_a", "chargers_l2_a", "chargers_l3_a").row(0) == (
        0.0,
        16.0,
        0.0,
    )


def test_it_line_load_is_a_phasor_sum():
    steps = _two_chargers("IT").line_steps
    row = steps.filter(pl.col("start_utc") <= at(10)).tail(1)
    # a: L1-L2 at 16 A; b (STR): terminals L1-L2 = supply L2-L3 at 16 A; L2 is shared.
    expected = line_currents_a([16.0, 16.0], ["RST", "STR"], [1, 1], "IT")
    got = row.select("chargers_l1_a", "chargers_l2_a", "chargers_l3_a").row(0)
    assert got == pytest.approx(tuple(expected), abs=1e-6)
    assert got[1] == pytest.approx(16 * SQRT3, abs=1e-6)


def test_sessions_get_first_current_full_and_peak():
    sessions = _two_chargers("TN").sessions.sort("session_id")
    assert sessions["first_current_utc"].to_list() == [at(1), at(2)]
    assert sessions["full_utc"].to_list() == [at(30), None]
    assert sessions["peak_current_a"].to_list() == [16.0, 16.0]
    assert sessions["max_active_terminals"].to_list() == [3, 1]


def test_unknown_rotation_is_inferred_from_single_phase_charges():
    rows = [("c", 0, 708, 16), ("c", 0, 519, 3), *drawing("c", 1, 0.0, 16.0, 0.0)]
    rec = recording(rows, [("s", "c", 0, 60)], {"c": None})
    # Terminal L2 carries the charge on supply L3: the cyclic rotation with L2 → L3 is STR.
    assert rec.chargers.row(0, named=True)["phase_rotation"] == "STR"
    assert rec.chargers["phase_rotation_source"].to_list() == ["observed"]
    row = rec.line_steps.filter(pl.col("start_utc") <= at(5)).tail(1)
    assert row.select("chargers_l1_a", "chargers_l2_a", "chargers_l3_a").row(0) == (0.0, 0.0, 16.0)
