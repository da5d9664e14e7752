"""Control pilot: IEC 61851-1 duty cycle <-> current, CP states, PWM rate limit, EV lag."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_ref.pilot import (
    EV_RESPONSE_GRACE_S,
    CpState,
    PilotMeaning,
    PwmRateLimiter,
    classify_duty_cycle,
    current_for_duty_cycle,
    duty_cycle_for_current,
    ev_current_at,
    ev_current_steps,
    next_pwm_change_time,
    signalled_current,
)

# IEC 61851-1 Table A.7: D = I / 0.6 up to 51 A, D = I / 2.5 + 64 from 52.5 A to 80 A.
MAPPING_POINTS = [
    (6.0, 10.0),
    (10.0, 100.0 / 6.0),
    (16.0, 160.0 / 6.0),
    (32.0, 320.0 / 6.0),
    (51.0, 85.0),
    (63.0, 89.2),
    (80.0, 96.0),
]


@pytest.mark.parametrize(("current_a", "duty_pct"), MAPPING_POINTS)
def test_duty_cycle_for_current_matches_iec_table(current_a, duty_pct):
    assert duty_cycle_for_current(current_a) == pytest.approx(duty_pct, abs=1e-9)


@pytest.mark.parametrize(("current_a", "duty_pct"), MAPPING_POINTS)
def test_current_for_duty_cycle_reads_back_the_signalled_current(current_a, duty_pct):
    assert current_for_duty_cycle(duty_pct) == pytest.approx(current_a, abs=1e-9)
    assert current_for_duty_cycle(duty_cycle_for_current(current_a)) == pytest.approx(
        current_a, abs=1e-9
    )
    assert signalled_current(current_a) == current_a


def test_rounded_duty_cycles_of_common_currents():
    assert round(duty_cycle_for_current(16.0), 1) == 26.7
    assert round(duty_cycle_for_current(32.0), 1) == 53.3


def test_gap_between_51_and_52_5_a_is_never_over_signalled():
    assert duty_cycle_for_current(52.0) == pytest.approx(85.0)
    assert signalled_current(52.0) == 51.0
    assert signalled_current(52.5) == 51.0
    assert signalled_current(52.6) == 52.6


def test_zero_current_switches_pwm_off_and_reads_as_no_charging():
    assert duty_cycle_for_current(0.0) == 100.0
    assert current_for_duty_cycle(100.0) == 0.0
    assert classify_duty_cycle(100.0) is PilotMeaning.NO_CHARGING


@pytest.mark.parametrize("current_a", [0.5, 5.9, 80.1, 100.0, -6.0, math.nan])
def test_currents_the_pilot_cannot_signal_raise(current_a):
    with pytest.raises(ValueError):
        duty_cycle_for_current(current_a)


@pytest.mark.parametrize(
    ("duty_pct", "meaning", "current_a"),
    [
        (0.0, PilotMeaning.NO_CHARGING, 0.0),
        (2.9, PilotMeaning.NO_CHARGING, 0.0),
        (3.0, PilotMeaning.DIGITAL_COMMUNICATION, 0.0),
        (5.0, PilotMeaning.DIGITAL_COMMUNICATION, 0.0),
        (7.0, PilotMeaning.DIGITAL_COMMUNICATION, 0.0),
        (7.5, PilotMeaning.NO_CHARGING, 0.0),
        (8.0, PilotMeaning.CURRENT, 6.0),
        (9.9, PilotMeaning.CURRENT, 6.0),
        (85.5, PilotMeaning.CURRENT, 53.75),
        (96.5, PilotMeaning.CURRENT, 80.0),
        (97.0, PilotMeaning.CURRENT, 80.0),
        (97.5, PilotMeaning.NO_CHARGING, 0.0),
    ],
)
def test_vehicle_side_ranges(duty_pct, meaning, current_a):
    assert classify_duty_cycle(duty_pct) is meaning
    assert current_for_duty_cycle(duty_pct) == pytest.approx(current_a)


@pytest.mark.parametrize("duty_pct", [-0.1, 100.1, math.nan])
def test_duty_cycles_outside_0_100_raise(duty_pct):
    with pytest.raises(ValueError):
        current_for_duty_cycle(duty_pct)


@given(st.floats(min_value=6.0, max_value=80.0))
def test_round_trip_never_exceeds_request(current_a):
    back = current_for_duty_cycle(duty_cycle_for_current(current_a))
    assert back <= current_a + 1e-9
    if not 51.0 < current_a <= 52.5:
        assert back == pytest.approx(current_a, abs=1e-9)


@given(st.floats(min_value=8.0, max_value=97.0), st.floats(min_value=8.0, max_value=97.0))
def test_current_is_monotonic_in_duty_cycle(d1, d2):
    low, high = sorted((d1, d2))
    assert current_for_duty_cycle(low) <= current_for_duty_cycle(high)


def test_cp_state_voltages():
    assert [s.voltage_v for s in CpState] == [12.0, 9.0, 6.0, 3.0, 0.0, -12.0]
    assert [s.letter for s in CpState] == list("ABCDEF")
    assert {s for s in CpState if s.vehicle_connected} == {CpState.B, CpState.C, CpState.D}
    assert {s for s in CpState if s.energy_requested} == {CpState.C, CpState.D}


def test_next_pwm_change_time():
    assert next_pwm_change_time(100.0, 102.0) == 105.0
    assert next_pwm_change_time(100.0, 107.0) == 107.0


def test_rate_limiter_holds_changes_for_five_seconds():
    pwm = PwmRateLimiter()
    assert pwm.request(0.0, 16.0) == 0.0
    assert pwm.current_at(0.0) == 16.0
    assert pwm.request(2.0, 10.0) == 5.0
    assert pwm.current_at(4.99) == 16.0
    assert pwm.current_at(5.0) == 10.0
    assert pwm.request(6.0, 32.0) == 10.0
    assert pwm.current_at(9.0) == 10.0
    assert pwm.current_at(10.0) == 32.0


def test_rate_limiter_latest_request_wins_and_same_value_cancels():
    pwm = PwmRateLimiter(current_a=16.0)
    pwm.request(0.0, 20.0)
    assert pwm.request(1.0, 6.0) == 5.0
    assert pwm.request(2.0, 12.0) == 5.0
    assert pwm.current_at(5.0) == 12.0
    pwm.request(6.0, 20.0)
    assert pwm.request(7.0, 12.0) == 7.0
    assert pwm.current_at(20.0) == 12.0


def test_ev_follows_a_reduction_after_its_delay():
    steps = ev_current_steps(100.0, 32.0, 16.0, ev_max_a=32.0, delay_s=3.0)
    assert steps == ((100.0, 32.0), (103.0, 16.0))
    assert ev_current_at(99.0, 100.0, 32.0, 16.0, 32.0, 3.0) == 32.0
    assert ev_current_at(102.9, 100.0, 32.0, 16.0, 32.0, 3.0) == 32.0
    assert ev_current_at(103.0, 100.0, 32.0, 16.0, 32.0, 3.0) == 16.0


def test_ev_never_draws_above_its_own_maximum_and_default_delay_is_the_grace():
    steps = ev_current_steps(0.0, 6.0, 32.0, ev_max_a=16.0)
    assert steps == ((0.0, 6.0), (EV_RESPONSE_GRACE_S, 16.0))
    assert ev_current_steps(0.0, 16.0, 32.0, ev_max_a=16.0) == ((0.0, 16.0),)
    assert ev_current_steps(0.0, 16.0, 10.0, ev_max_a=32.0, delay_s=0.0) == ((0.0, 10.0),)
    with pytest.raises(ValueError):
        ev_current_steps(0.0, 16.0, 10.0, ev_max_a=32.0, delay_s=-1.0)
