"""IEC 61851-1 control pilot: CP states, PWM duty cycle <-> current, timing.

Duty cycle and current (IEC 61851-1 Annex A)
--------------------------------------------
Supply side (:func:`duty_cycle_for_current`), what the charger signals:

* 6 A <= I <= 51 A: ``D = I / 0.6`` [%] (6 A = 10 %, 51 A = 85 %).
* 52.5 A < I <= 80 A: ``D = I / 2.5 + 64`` [%] (63 A = 89.2 %, 80 A = 96 %).
* 51 A < I <= 52.5 A cannot be signalled (85 % means 51 A, anything above 85 % means
  more than 52.5 A), so it is rounded *down* to 85 % = 51 A: never offer more than asked.
* I = 0: PWM off, a steady 100 % "no charging allowed" (state X1).
* 0 < I < 6 A, I > 80 A, negative or NaN: :class:`ValueError` -- these currents cannot
  be offered over the pilot at all; the allocator must give >= 6 A or nothing.

Vehicle side (:func:`current_for_duty_cycle`), what the EV reads:

===================  =====================================
duty cycle D [%]     maximum current
===================  =====================================
D < 3                no charging allowed -> 0 A
3 <= D <= 7          digital communication required (5 % nominal); the PWM
                     carries no current -> 0 A (:data:`PilotMeaning.DIGITAL_COMMUNICATION`)
7 < D < 8            no charging allowed -> 0 A
8 <= D < 10          6 A
10 <= D <= 85        D x 0.6 A
85 < D <= 96         (D - 64) x 2.5 A
96 < D <= 97         80 A
D > 97               no charging allowed (100 % = PWM off) -> 0 A
===================  =====================================

So the invalid ranges *map to "no charging"* (0 A) on the vehicle side, as IEC
61851-1 prescribes for an EV; :func:`classify_duty_cycle` says why. A duty cycle
outside 0-100 % or NaN is not a signal at all and raises :class:`ValueError`.

Timing
------
* The charger changes the PWM at most every :data:`PWM_MIN_CHANGE_INTERVAL_S` (5 s);
  :class:`PwmRateLimiter` holds a requested change until it may be applied.
* The EV follows a new duty cycle within :data:`EV_RESPONSE_GRACE_S` (5 s).
  :func:`ev_current_steps` / :func:`ev_current_at` give the EV's drawn current over
  time for one pilot change as a piecewise-constant step function (event friendly:
  a change is one or two breakpoints, never a per-second series).

Times are float seconds since the Unix epoch, UTC.

Public API
----------
``CpState`` (A-F, ``.voltage_v``, ``.description``), ``PilotMeaning``,
``duty_cycle_for_current(current_a) -> float``, ``current_for_duty_cycle(duty_pct) -> float``,
``classify_duty_cycle(duty_pct) -> PilotMeaning``, ``signalled_current(current_a) -> float``,
``PwmRateLimiter(min_interval_s=5.0)`` with ``request(t_s, current_a) -> float`` and
``current_at(t_s) -> float``, ``next_pwm_change_time(last_change_s, request_s, min_interval_s)``,
``ev_current_steps(pilot_change_s, drawn_before_a, pilot_after_a, ev_max_a, delay_s)``,
``ev_current_at(t_s, ...)``.
"""

from __future__ import annotations

import math
from enum import Enum

__all__ = [
    "EV_RESPONSE_GRACE_S",
    "MAX_SIGNALLED_CURRENT_A",
    "MIN_CHARGING_CURRENT_A",
    "NO_CHARGING_DUTY_PCT",
    "PWM_MIN_CHANGE_INTERVAL_S",
    "CpState",
    "PilotMeaning",
    "PwmRateLimiter",
    "classify_duty_cycle",
    "current_for_duty_cycle",
    "duty_cycle_for_current",
    "ev_current_at",
    "ev_current_steps",
    "next_pwm_change_time",
    "signalled_current",
]

MIN_CHARGING_CURRENT_A = 6.0
MAX_SIGNALLED_CURRENT_A = 80.0
NO_CHARGING_DUTY_PCT = 100.0
PWM_MIN_CHANGE_INTERVAL_S = 5.0
EV_RESPONSE_GRACE_S = 5.0

_LOW_RANGE_MAX_A = 51.0
_HIGH_RANGE_MIN_A = 52.5


class CpState(Enum):
    """Control-pilot states of IEC 61851-1 with the nominal CP voltage [V].

    The positive level is shown; in states B-D the pilot oscillates between it and
    -12 V while PWM is on. E is the short circuit (0 V), F is the EVSE fault (-12 V).
    """

    A = ("A", 12.0, "vehicle not connected")
    B = ("B", 9.0, "vehicle connected, not ready to accept energy")
    C = ("C", 6.0, "vehicle connected, ready to accept energy, no ventilation needed")
    D = ("D", 3.0, "vehicle connected, ready to accept energy, ventilation required")
    E = ("E", 0.0, "short circuit CP-PE or supply not available")
    F = ("F", -12.0, "EVSE not available (fault)")

    def __init__(self, letter: str, voltage_v: float, description: str) -> None:
        self.letter = letter
        self.voltage_v = voltage_v
        self.description = description

    @property
    def vehicle_connected(self) -> bool:
        return self in (CpState.B, CpState.C, CpState.D)

    @property
    def energy_requested(self) -> bool:
        return self in (CpState.C, CpState.D)


class PilotMeaning(Enum):
    """What a duty cycle tells the vehicle."""

    NO_CHARGING = "no charging allowed"
    DIGITAL_COMMUNICATION = "digital communication required"
    CURRENT = "maximum current signalled"


def duty_cycle_for_current(current_a: float) -> float:
    """PWM duty cycle the charger signals for an offered current.

    Parameters
    ----------
    current_a : float
        Offered current per phase [A]: 0 (no charging) or 6-80 A.

    Returns
    -------
    float
        Duty cycle [%]; 100.0 for 0 A (PWM off).

    Raises
    ------
    ValueError
        For 0 < I < 6 A, I > 80 A, negative or NaN currents.
    """
    if current_a == 0.0:
        return NO_CHARGING_DUTY_PCT
    if not (MIN_CHARGING_CURRENT_A <= current_a <= MAX_SIGNALLED_CURRENT_A):
        raise ValueError(f"{current_a} A cannot be signalled on the pilot (0 A or 6-80 A only)")
    if current_a <= _LOW_RANGE_MAX_A:
        return current_a / 0.6
    if current_a <= _HIGH_RANGE_MIN_A:
        return _LOW_RANGE_MAX_A / 0.6
    return current_a / 2.5 + 64.0


def classify_duty_cycle(duty_pct: float) -> PilotMeaning:
    """Meaning of a duty cycle for the vehicle (IEC 61851-1 Annex A, EV side)."""
    if math.isnan(duty_pct) or duty_pct < 0.0 or duty_pct > 100.0:
        raise ValueError(f"duty cycle must be within 0-100 %, got {duty_pct}")
    if duty_pct < 3.0 or (7.0 < duty_pct < 8.0) or duty_pct > 97.0:
        return PilotMeaning.NO_CHARGING
    if duty_pct <= 7.0:
        return PilotMeaning.DIGITAL_COMMUNICATION
    return PilotMeaning.CURRENT


def current_for_duty_cycle(duty_pct: float) -> float:
    """Maximum current the vehicle may draw for a duty cycle.

    Parameters
    ----------
    duty_pct : float
        Duty cycle [%], 0-100.

    Returns
    -------
    float
        Current [A]; 0.0 wherever IEC 61851-1 says "no charging allowed" and in the
        digital-communication band (the PWM carries no current there).

    Raises
    ------
    ValueError
        For duty cycles outside 0-100 % or NaN.
    """
    if classify_duty_cycle(duty_pct) is not PilotMeaning.CURRENT:
        return 0.0
    if duty_pct < 10.0:
        return MIN_CHARGING_CURRENT_A
    if duty_pct <= 85.0:
        return duty_pct * 0.6
    if duty_pct <= 96.0:
        return (duty_pct - 64.0) * 2.5
    return MAX_SIGNALLED_CURRENT_A


def signalled_current(current_a: float) -> float:
    """Current a vehicle reads back when the charger offers ``current_a`` [A].

    Equal to the request except in the gap 51 A < I <= 52.5 A (read as 51 A); float noise of
    the two conversions is rounded off at 1 mA.
    """
    return round(current_for_duty_cycle(duty_cycle_for_current(current_a)), 3)


def next_pwm_change_time(
    last_change_s: float, request_s: float, min_interval_s: float = PWM_MIN_CHANGE_INTERVAL_S
) -> float:
    """Earliest time a PWM change requested at ``request_s`` may be applied [s]."""
    return max(request_s, last_change_s + min_interval_s)


class PwmRateLimiter:
    """Applies requested pilot currents no more often than every ``min_interval_s``.

    A request that comes too soon after the last change is held until the interval
    has passed; a newer request replaces a held one (only the latest target counts).
    Decreases are rate-limited like increases: the pilot cannot be changed faster,
    which is why the allocator must budget for the lag.

    Parameters
    ----------
    min_interval_s : float, default 5.0
        Minimum time between two PWM changes [s].
    current_a : float, default 0.0
        Current signalled initially [A].
    """

    __slots__ = ("current_a", "last_change_s", "min_interval_s", "pending_a", "pending_at_s")

    def __init__(
        self, min_interval_s: float = PWM_MIN_CHANGE_INTERVAL_S, current_a: float = 0.0
    ) -> None:
        self.min_interval_s = min_interval_s
        self.current_a = current_a
        self.last_change_s = -math.inf
        self.pending_a: float | None = None
        self.pending_at_s = math.inf

    def _settle(self, t_s: float) -> None:
        if self.pending_a is not None and t_s >= self.pending_at_s:
            self.current_a = self.pending_a
            self.last_change_s = self.pending_at_s
            self.pending_a = None
            self.pending_at_s = math.inf

    def request(self, t_s: float, current_a: float) -> float:
        """Ask for ``current_a`` at ``t_s``; returns when the pilot will show it [s]."""
        self._settle(t_s)
        if current_a == self.current_a:
            self.pending_a = None
            self.pending_at_s = math.inf
            return t_s
        change_s = next_pwm_change_time(self.last_change_s, t_s, self.min_interval_s)
        if change_s <= t_s:
            self.current_a = current_a
            self.last_change_s = t_s
            self.pending_a = None
            self.pending_at_s = math.inf
            return t_s
        self.pending_a = current_a
        self.pending_at_s = change_s
        return change_s

    def current_at(self, t_s: float) -> float:
        """Current signalled on the pilot at ``t_s`` [A] (applies due changes)."""
        self._settle(t_s)
        return self.current_a


def ev_current_steps(
    pilot_change_s: float,
    drawn_before_a: float,
    pilot_after_a: float,
    ev_max_a: float,
    delay_s: float = EV_RESPONSE_GRACE_S,
) -> tuple[tuple[float, float], ...]:
    """The EV's drawn current after one pilot change, as steps ``(from_s, current_a)``.

    The EV keeps drawing its previous current for ``delay_s`` and then draws
    ``min(pilot_after_a, ev_max_a)``. A compliant EV has ``delay_s`` within the
    :data:`EV_RESPONSE_GRACE_S` window; a larger value models a car that lags.

    Parameters
    ----------
    pilot_change_s : float
        Time the pilot changed [s].
    drawn_before_a : float
        Current drawn just before the change [A].
    pilot_after_a : float
        Current signalled by the new duty cycle [A].
    ev_max_a : float
        The car's own maximum current [A] (on-board charger limit).
    delay_s : float, default 5.0
        Response delay of this car [s], ``>= 0``.

    Returns
    -------
    tuple of (float, float)
        One step when nothing changes, else two: the old current from
        ``pilot_change_s``, the new one from ``pilot_change_s + delay_s``.
    """
    if delay_s < 0:
        raise ValueError(f"delay_s must be >= 0, got {delay_s}")
    target_a = min(pilot_after_a, ev_max_a)
    if target_a == drawn_before_a or delay_s == 0.0:
        return ((pilot_change_s, target_a),)
    return ((pilot_change_s, drawn_before_a), (pilot_change_s + delay_s, target_a))


def ev_current_at(
    t_s: float,
    pilot_change_s: float,
    drawn_before_a: float,
    pilot_after_a: float,
    ev_max_a: float,
    delay_s: float = EV_RESPONSE_GRACE_S,
) -> float:
    """Current drawn by the EV at ``t_s`` for one pilot change [A]."""
    if t_s < pilot_change_s:
        return drawn_before_a
    current = drawn_before_a
    for from_s, step_a in ev_current_steps(
        pilot_change_s, drawn_before_a, pilot_after_a, ev_max_a, delay_s
    ):
        if t_s >= from_s:
            current = step_a
    return current
