"""eMeter: exact integration, Wh resolution, gain/offset error, monotonic register."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_ref.emeter import EMeter, integrate_energy_wh, register_kwh_text

T0 = 1_750_000_000.0


def test_one_hour_of_7_36_kw_single_phase_is_7360_wh():
    meter = EMeter(register_wh=1_000_000, t_s=T0)
    assert meter.advance(T0 + 3600.0, (7360.0, 0.0, 0.0)) == 1_007_360
    assert meter.register_kwh == 1007.36
    assert meter.energy_wh_per_phase == pytest.approx([7360.0, 0.0, 0.0])
    assert meter.true_energy_wh == pytest.approx(7360.0)


def test_three_phase_power_adds_per_phase():
    meter = EMeter(t_s=T0)
    meter.advance(T0 + 1800.0, (7360.0, 7360.0, 7360.0))
    assert meter.register_wh == 11040
    assert meter.energy_wh_per_phase == pytest.approx([3680.0] * 3)


def test_gain_error_reads_high_by_the_fraction():
    meter = EMeter(t_s=T0, gain_error=0.018)
    meter.advance(T0 + 3600.0, (7360.0, 0.0, 0.0))
    assert meter.register_wh == 7492  # 7360 * 1.018 = 7492.48, floored to whole Wh
    assert meter.true_energy_wh == pytest.approx(7360.0)
    assert meter.register_wh / meter.true_energy_wh - 1.0 == pytest.approx(0.018, abs=2e-4)


def test_offset_applies_only_to_loaded_phases():
    meter = EMeter(t_s=T0, offset_w=20.0)
    meter.advance(T0 + 3600.0, (1000.0, 0.0, 0.0))
    assert meter.register_wh == 1020
    meter.advance(T0 + 7200.0, (0.0, 0.0, 0.0))
    assert meter.register_wh == 1020


def test_negative_offset_never_runs_the_register_backwards():
    assert integrate_energy_wh(10.0, 3600.0, offset_w=-50.0) == 0.0
    assert integrate_energy_wh(-500.0, 3600.0) == 0.0
    with pytest.raises(ValueError):
        integrate_energy_wh(100.0, -1.0)


def test_first_advance_without_clock_only_sets_the_clock():
    meter = EMeter(register_wh=5)
    assert meter.advance(T0, (7000.0, 7000.0, 7000.0)) == 5
    assert meter.t_s == T0
    assert meter.advance(T0 + 360.0, (1000.0, 0.0, 0.0)) == 105


def test_time_going_backwards_raises_and_keeps_the_clock():
    meter = EMeter(t_s=T0)
    with pytest.raises(ValueError):
        meter.advance(T0 - 1.0, (100.0, 0.0, 0.0))
    assert meter.t_s == T0


def test_register_has_wh_resolution():
    meter = EMeter(t_s=T0)
    meter.advance(T0 + 1.0, (3599.0, 0.0, 0.0))  # 0.9997 Wh
    assert meter.register_wh == 0
    meter.advance(T0 + 2.0, (3599.0, 0.0, 0.0))
    assert meter.register_wh == 1
    assert register_kwh_text(2_410_009) == "2410.009"
    assert register_kwh_text(7) == "0.007"
    with pytest.raises(ValueError):
        register_kwh_text(-1)


def test_reset_register_models_a_register_reset():
    meter = EMeter(register_wh=9_000, t_s=T0)
    meter.advance(T0 + 3600.0, (1000.0, 0.0, 0.0))
    meter.reset_register(T0 + 3600.0)
    assert meter.register_wh == 0
    meter.advance(T0 + 7200.0, (1000.0, 0.0, 0.0))
    assert meter.register_wh == 1000
    assert meter.true_energy_wh == pytest.approx(2000.0)


intervals = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=7200.0),
        st.floats(min_value=-100.0, max_value=11_000.0),
        st.floats(min_value=-100.0, max_value=11_000.0),
        st.floats(min_value=-100.0, max_value=11_000.0),
    ),
    min_size=1,
    max_size=40,
)


@given(intervals, st.floats(min_value=-0.05, max_value=0.05))
def test_register_is_monotonic_and_equals_the_analytic_integral(steps, gain):
    meter = EMeter(t_s=T0, gain_error=gain)
    t = T0
    previous = meter.register_wh
    expected_wh = 0.0
    for duration, p1, p2, p3 in steps:
        t += duration
        register = meter.advance(t, (p1, p2, p3))
        assert register >= previous
        previous = register
        expected_wh += sum(integrate_energy_wh(p, duration, gain) for p in (p1, p2, p3))
    assert abs(meter.register_wh - expected_wh) <= 1.0


@given(st.integers(min_value=1, max_value=500), st.floats(min_value=0.0, max_value=22_000.0))
def test_many_short_intervals_equal_one_long_interval(pieces, power_w):
    whole = EMeter(t_s=T0)
    whole.advance(T0 + 3600.0, (power_w, 0.0, 0.0))
    split = EMeter(t_s=T0)
    for k in range(1, pieces + 1):
        split.advance(T0 + 3600.0 * k / pieces, (power_w, 0.0, 0.0))
    assert abs(split.register_wh - whole.register_wh) <= 1
