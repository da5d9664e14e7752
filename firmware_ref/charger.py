"""Charger state machine of ZAPTEC HOME, ZapCharger Pro and Zaptec Go.

The states follow the user manuals' status-indicator tables and troubleshooting
sections (ZAPTEC HOME: boots in 1-2 min, "ready" is white; ZapCharger Pro: boots in
2-3 min, "ready" is green). :mod:`firmware_ref.indicator` maps each state to the
manual's colour and pattern; :func:`operation_mode_for` derives Zaptec's
``ChargerOperationMode`` (StateId 710).

Event-driven
------------
Every event method takes the event time ``t_s`` -- float seconds since the Unix
epoch, UTC -- and returns the new :class:`ChargerState`. Timed transitions (end of
booting, the green "authentication OK" flash, the red "authentication failed" flash,
firmware update, end of soft start, eco-mode windows) are not polled: the charger
exposes :attr:`Charger.next_event_s`, and :meth:`Charger.advance` (called implicitly
by every event method) applies those that are due. After each call
:attr:`Charger.offered_current_a` is the current the charger offers on the pilot
from then on (0 or >= 6 A). The PWM rate limit and the car's lag are applied by the
caller with :mod:`firmware_ref.pilot`.

Session flow
------------
``connect_car`` -> without authentication straight to CHARGING (>= 6 A offered and
the car requests energy), QUEUED (< 6 A available, or outside the eco-mode windows)
or CONNECTED (car not requesting yet). With authentication -> WAITING_FOR_AUTHENTICATION;
``present_rfid``: a tag on the local allow-list -> AUTHENTICATION_OK; an unknown tag
while online -> WAITING_FOR_CLOUD until ``cloud_authorization``; an unknown tag
offline -> AUTHENTICATION_FAILED (back to WAITING_FOR_AUTHENTICATION after the flash).
``cloud_authorization`` also models an app start or a payment operator's start.
AUTHENTICATION_OK lasts :data:`AUTH_OK_DISPLAY_S` and then resolves like an
unauthenticated start. The car stopping its request after charging -> FINISHED.
Errors latch until the cable is disconnected (the manuals' remedy), or until
``clear_fault`` for a persistent fault.

Assumptions (the manuals give no figures)
----------------------------------------
* Soft start: the offered current is capped at 6 A for the first
  :attr:`ChargerModel.soft_start_s` (30 s) of every charging start.
* Temperature derating (manuals: "32A current is available but limited by the
  temperature build up inside the charging station"): stepped limits in
  :data:`DERATING_STEPS` -- from 60 °C 28 A, 65 °C 24 A, 70 °C 20 A, 75 °C 16 A,
  80 °C 0 A (thermal stop) -- and a step is released only when the internal
  temperature has fallen :data:`DERATING_HYSTERESIS_K` (5 K) below its threshold.
* Offline, a charging session continues at most at ``offline_current_a`` (6 A).
* The boot time defaults to the middle of the manual's range; pass ``boot_time_s``
  to sample it. Go figures (boot time, meter interval) are not in these manuals.
* Eco-mode waiting is shown as QUEUED: the charger waits for current it may use.

Public API
----------
``Product``, ``ChargerModel``, ``HOME``, ``PRO``, ``GO``, ``MODELS``;
``ChargerState``, ``OperationMode``, ``AuthMode``;
``operation_mode_for(state, car_connected)``, ``ocpp_status_for(state, has_charged)``;
``derating_level(temperature_c, previous_level, steps, hysteresis_k)``,
``derated_current_a(level, max_current_a, steps)``;
``eco_charging_slots(slot_starts_s, prices, now_s, departure_s, energy_kwh, power_kw, slot_s)``,
``slots_to_windows(slot_starts_s, slot_s)``;
``Charger(model, serial, ...)`` with events ``power_on, power_loss, connect_car,
disconnect_car, ev_requests_energy, present_rfid, cloud_authorization,
set_allocation, set_online, set_activated, set_temperature, set_eco_windows,
start_firmware_update, fault, clear_fault, set_permanent_cable_lock, advance``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from firmware_ref.pilot import MIN_CHARGING_CURRENT_A, CpState
from firmware_ref.products import (  # noqa: F401 - re-exported: the public API of this module
    _AUTHORISED_SESSION_STATES,
    _IDLE_STATES,
    _PREPARING_STATES,
    GO,
    HOME,
    MODELS,
    PRO,
    AuthMode,
    ChargerModel,
    ChargerState,
    OperationMode,
    Product,
    ocpp_status_for,
    operation_mode_for,
)

__all__ = [
    "AUTH_FAILED_DISPLAY_S",
    "AUTH_OK_DISPLAY_S",
    "DERATING_HYSTERESIS_K",
    "DERATING_STEPS",
    "GO",
    "HOME",
    "MODELS",
    "PRO",
    "AuthMode",
    "Charger",
    "ChargerModel",
    "ChargerState",
    "OperationMode",
    "Product",
    "derated_current_a",
    "derating_level",
    "eco_charging_slots",
    "ocpp_status_for",
    "operation_mode_for",
    "slots_to_windows",
]

AUTH_OK_DISPLAY_S = 3.0
AUTH_FAILED_DISPLAY_S = 5.0
DERATING_STEPS: tuple[tuple[float, float], ...] = (
    (60.0, 28.0),
    (65.0, 24.0),
    (70.0, 20.0),
    (75.0, 16.0),
    (80.0, 0.0),
)
DERATING_HYSTERESIS_K = 5.0


def derating_level(
    temperature_c: float,
    previous_level: int,
    steps: Sequence[tuple[float, float]] = DERATING_STEPS,
    hysteresis_k: float = DERATING_HYSTERESIS_K,
) -> int:
    """Number of derating steps in force at ``temperature_c`` [°C], with hysteresis.

    A step engages when the temperature reaches its threshold and is released only
    when the temperature falls ``hysteresis_k`` below it.
    """
    level = previous_level
    while level < len(steps) and temperature_c >= steps[level][0]:
        level += 1
    while level > 0 and temperature_c < steps[level - 1][0] - hysteresis_k:
        level -= 1
    return level


def derated_current_a(
    level: int, max_current_a: float, steps: Sequence[tuple[float, float]] = DERATING_STEPS
) -> float:
    """Current limit [A] for a derating level (0 = no derating)."""
    if level <= 0:
        return max_current_a
    return min(max_current_a, steps[level - 1][1])


def eco_charging_slots(
    slot_starts_s: Sequence[float],
    prices: Sequence[float],
    now_s: float,
    departure_s: float,
    energy_kwh: float,
    power_kw: float,
    slot_s: float = 3600.0,
) -> tuple[float, ...]:
    """Cheapest price slots that deliver ``energy_kwh`` before the departure.

    Only slots lying wholly within ``[now_s, departure_s]`` count. Enough of the
    cheapest are chosen to cover the need at ``power_kw``; ties go to the earlier
    slot. When the window is too short every slot in it is chosen.

    Parameters
    ----------
    slot_starts_s : sequence of float
        Start of each price slot [s since epoch, UTC].
    prices : sequence of float
        Price of each slot [any currency per kWh].
    now_s, departure_s : float
        Planning window [s].
    energy_kwh : float
        Energy the car needs [kWh].
    power_kw : float
        Charging power the car will get [kW], > 0.
    slot_s : float, default 3600
        Length of a price slot [s] (900 for 15-minute prices).

    Returns
    -------
    tuple of float
        Chosen slot starts, in time order.
    """
    if len(slot_starts_s) != len(prices):
        raise ValueError("slot_starts_s and prices differ in length")
    if power_kw <= 0:
        raise ValueError(f"power_kw must be > 0, got {power_kw}")
    if energy_kwh <= 0:
        return ()
    usable = [
        (price, start)
        for start, price in zip(slot_starts_s, prices, strict=True)
        if start >= now_s and start + slot_s <= departure_s
    ]
    slots_needed = math.ceil(energy_kwh / (power_kw * slot_s / 3600.0) - 1e-9)
    usable.sort()
    return tuple(sorted(start for _, start in usable[:slots_needed]))


def slots_to_windows(
    slot_starts_s: Sequence[float], slot_s: float = 3600.0
) -> tuple[tuple[float, float], ...]:
    """Merge slot starts into contiguous ``(start_s, end_s)`` windows."""
    windows: list[tuple[float, float]] = []
    for start in sorted(slot_starts_s):
        if windows and windows[-1][1] == start:
            windows[-1] = (windows[-1][0], start + slot_s)
        else:
            windows.append((start, start + slot_s))
    return tuple(windows)


class Charger:
    """One charger's state machine.

    Parameters
    ----------
    model : ChargerModel
        :data:`HOME`, :data:`PRO` or :data:`GO`.
    serial : str
        Serial number.
    auth_mode : AuthMode, default AuthMode.NONE
        NONE (free charging), RFID (local allow-list, cloud look-up for unknown tags),
        CLOUD (start by app or payment operator only).
    allow_list : iterable of str, optional
        RFID tags accepted locally.
    activated : bool, default True
        Whether the charger is activated in the portal.
    online : bool, default True
        Cloud connection.
    permanent_cable_lock : bool, default False
        Cable locked to the charger at all times (theft protection).
    offline_current_a : float, default 6.0
        Cap on the offered current while offline [A].
    boot_time_s : float, optional
        Boot duration [s]; defaults to the middle of the model's range.
    t_s : float, default 0.0
        Time of creation [s].
    state : ChargerState, default ChargerState.READY
        Initial state; UNPOWERED to start with :meth:`power_on`.
    """

    __slots__ = (
        "_error_persistent",
        "_timer_s",
        "activated",
        "allocation_a",
        "allow_list",
        "auth_mode",
        "boot_time_s",
        "car_connected",
        "car_requesting",
        "charging_since_s",
        "derate_level",
        "eco_windows",
        "has_charged",
        "model",
        "offered_current_a",
        "offline_current_a",
        "online",
        "pending_tag",
        "permanent_cable_lock",
        "serial",
        "state",
        "state_since_s",
        "t_s",
        "temperature_c",
    )

    def __init__(
        self,
        model: ChargerModel,
        serial: str,
        *,
        auth_mode: AuthMode = AuthMode.NONE,
        allow_list: Sequence[str] | frozenset[str] = (),
        activated: bool = True,
        online: bool = True,
        permanent_cable_lock: bool = False,
        offline_current_a: float = MIN_CHARGING_CURRENT_A,
        boot_time_s: float | None = None,
        t_s: float = 0.0,
        state: ChargerState = ChargerState.READY,
    ) -> None:
        self.model = model
        self.serial = serial
        self.auth_mode = AuthMode(auth_mode)
        self.allow_list = frozenset(allow_list)
        self.activated = activated
        self.online = online
        self.permanent_cable_lock = permanent_cable_lock
        self.offline_current_a = offline_current_a
        self.boot_time_s = model.boot_time_s if boot_time_s is None else boot_time_s
        self.t_s = t_s
        self.state_since_s = t_s
        self.car_connected = False
        self.car_requesting = False
        self.has_charged = False
        self.allocation_a = 0.0
        self.offered_current_a = 0.0
        self.temperature_c = 20.0
        self.derate_level = 0
        self.charging_since_s = -math.inf
        self.eco_windows: tuple[tuple[float, float], ...] | None = None
        self.pending_tag: str | None = None
        self._timer_s = math.inf
        self._error_persistent = False
        if state in (ChargerState.READY, ChargerState.OFFLINE, ChargerState.NOT_ACTIVATED):
            self.state = self._idle_state()
        elif state is ChargerState.UNPOWERED:
            self.state = state
        elif state is ChargerState.BOOTING:
            self.state = state
            self._timer_s = t_s + self.boot_time_s
        else:
            raise ValueError(f"cannot start in state {state}")

    # ----------------------------------------------------------------- derived
    @property
    def operation_mode(self) -> OperationMode:
        """Zaptec operation mode (710) now."""
        return operation_mode_for(self.state, self.car_connected)

    @property
    def cp_state(self) -> CpState:
        """Control-pilot state seen by the charger."""
        if self.state is ChargerState.ERROR:
            return CpState.F
        if not self.car_connected:
            return CpState.A
        return CpState.C if self.car_requesting else CpState.B

    @property
    def cable_locked(self) -> bool:
        """Whether the cable is locked in the charger's socket."""
        if self.permanent_cable_lock:
            return True
        return self.car_connected and self.state is not ChargerState.UNPOWERED

    @property
    def session_active(self) -> bool:
        return self.car_connected and self.state not in _IDLE_STATES

    @property
    def next_event_s(self) -> float:
        """Time of the next internal transition or change of offered current [s]."""
        next_s = self._timer_s
        if self.state is ChargerState.CHARGING:
            soft_end = self.charging_since_s + self.model.soft_start_s
            if soft_end > self.t_s and soft_end < next_s:
                next_s = soft_end
        if self.eco_windows is not None and self.state in _AUTHORISED_SESSION_STATES:
            for start, end in self.eco_windows:
                if start > self.t_s:
                    return min(next_s, start)
                if end > self.t_s:
                    return min(next_s, end)
        return next_s

    # -------------------------------------------------------------- internals
    def _idle_state(self) -> ChargerState:
        if not self.activated:
            return ChargerState.NOT_ACTIVATED
        if not self.online:
            return ChargerState.OFFLINE
        return ChargerState.READY

    def _enter(self, state: ChargerState, t_s: float) -> ChargerState:
        if state is not self.state:
            if state is ChargerState.CHARGING:
                self.charging_since_s = t_s
                self.has_charged = True
            self.state = state
            self.state_since_s = t_s
        self._update_offer(t_s)
        return state

    def _in_eco_window(self, t_s: float) -> bool:
        if self.eco_windows is None:
            return True
        for start, end in self.eco_windows:
            if start <= t_s < end:
                return True
        return False

    def _available_current_a(self, t_s: float) -> float:
        limit = min(
            self.allocation_a,
            self.model.max_current_a,
            derated_current_a(self.derate_level, self.model.max_current_a),
        )
        if not self.online:
            limit = min(limit, self.offline_current_a)
        if not self._in_eco_window(t_s):
            return 0.0
        return limit if limit >= MIN_CHARGING_CURRENT_A else 0.0

    def _update_offer(self, t_s: float) -> None:
        if self.state not in _AUTHORISED_SESSION_STATES:
            self.offered_current_a = 0.0
            return
        offer = self._available_current_a(t_s)
        if (
            self.state is ChargerState.CHARGING
            and t_s < self.charging_since_s + self.model.soft_start_s
        ):
            offer = min(offer, self.model.soft_start_current_a)
        self.offered_current_a = offer

    def _resolve_session(self, t_s: float) -> ChargerState:
        """State of an authorised session from offer and car request."""
        if not self.car_requesting:
            target = ChargerState.FINISHED if self.has_charged else ChargerState.CONNECTED
        elif self._available_current_a(t_s) >= MIN_CHARGING_CURRENT_A:
            target = ChargerState.CHARGING
        else:
            target = ChargerState.QUEUED
        return self._enter(target, t_s)

    def _begin_session(self, t_s: float) -> ChargerState:
        self.has_charged = False
        self.pending_tag = None
        if not self.activated:
            return self._enter(ChargerState.NOT_ACTIVATED, t_s)
        if self.auth_mode is AuthMode.NONE:
            return self._resolve_session(t_s)
        if self.auth_mode is AuthMode.CLOUD and not self.online:
            return self._enter(ChargerState.WAITING_FOR_CLOUD, t_s)
        return self._enter(ChargerState.WAITING_FOR_AUTHENTICATION, t_s)

    def _after_boot(self, t_s: float) -> ChargerState:
        if self.car_connected:
            return self._begin_session(t_s)
        return self._enter(self._idle_state(), t_s)

    def _on_timer(self, t_s: float) -> None:
        self._timer_s = math.inf
        state = self.state
        if state is ChargerState.BOOTING:
            self._after_boot(t_s)
        elif state is ChargerState.AUTHENTICATION_OK:
            self._resolve_session(t_s)
        elif state is ChargerState.AUTHENTICATION_FAILED:
            self._enter(ChargerState.WAITING_FOR_AUTHENTICATION, t_s)
        elif state is ChargerState.FIRMWARE_UPDATING:
            self._enter(ChargerState.BOOTING, t_s)
            self._timer_s = t_s + self.boot_time_s

    # ------------------------------------------------------------------ events
    def advance(self, t_s: float) -> ChargerState:
        """Apply every timed transition due up to ``t_s``; returns the state."""
        if t_s < self.t_s:
            raise ValueError(f"time went backwards: {t_s} < {self.t_s}")
        while True:
            due = self.next_event_s
            if due > t_s:
                break
            self.t_s = due
            if due >= self._timer_s:
                self._on_timer(due)
            elif self.state in _AUTHORISED_SESSION_STATES:
                self._resolve_session(due)
        self.t_s = t_s
        return self.state

    def power_on(self, t_s: float) -> ChargerState:
        """Mains restored: boot for ``boot_time_s`` (yellow flashing)."""
        self.advance(t_s)
        if self.state is not ChargerState.UNPOWERED:
            return self.state
        self._timer_s = t_s + self.boot_time_s
        return self._enter(ChargerState.BOOTING, t_s)

    def power_loss(self, t_s: float) -> ChargerState:
        """Mains lost: no light, session state forgotten."""
        self.advance(t_s)
        self._timer_s = math.inf
        self._error_persistent = False
        return self._enter(ChargerState.UNPOWERED, t_s)

    def connect_car(self, t_s: float, requesting: bool = True) -> ChargerState:
        """Cable plugged into a car (CP A -> B, or C when ``requesting``)."""
        self.advance(t_s)
        self.car_connected = True
        self.car_requesting = requesting
        if self.state in _IDLE_STATES:
            return self._begin_session(t_s)
        return self.state

    def disconnect_car(self, t_s: float) -> ChargerState:
        """Cable removed from the car (CP -> A): the session ends."""
        self.advance(t_s)
        self.car_connected = False
        self.car_requesting = False
        self.pending_tag = None
        state = self.state
        if state in (ChargerState.UNPOWERED, ChargerState.BOOTING, ChargerState.FIRMWARE_UPDATING):
            return state
        if state is ChargerState.ERROR and self._error_persistent:
            return state
        self._timer_s = math.inf
        return self._enter(self._idle_state(), t_s)

    def ev_requests_energy(self, t_s: float, requesting: bool) -> ChargerState:
        """The car switches between CP state C (requesting) and B (not requesting)."""
        self.advance(t_s)
        if not self.car_connected:
            raise ValueError("no car connected")
        self.car_requesting = requesting
        if self.state in _AUTHORISED_SESSION_STATES:
            return self._resolve_session(t_s)
        return self.state

    def present_rfid(self, t_s: float, tag: str) -> ChargerState:
        """An RFID tag is held to the reader."""
        self.advance(t_s)
        if self.state not in (
            ChargerState.WAITING_FOR_AUTHENTICATION,
            ChargerState.AUTHENTICATION_FAILED,
        ):
            return self.state
        self._timer_s = math.inf
        if tag in self.allow_list:
            self._timer_s = t_s + AUTH_OK_DISPLAY_S
            return self._enter(ChargerState.AUTHENTICATION_OK, t_s)
        if self.online:
            self.pending_tag = tag
            return self._enter(ChargerState.WAITING_FOR_CLOUD, t_s)
        self._timer_s = t_s + AUTH_FAILED_DISPLAY_S
        return self._enter(ChargerState.AUTHENTICATION_FAILED, t_s)

    def cloud_authorization(self, t_s: float, accepted: bool) -> ChargerState:
        """The cloud answers a tag look-up, or an app/payment operator starts charging."""
        self.advance(t_s)
        if self.state not in (
            ChargerState.WAITING_FOR_CLOUD,
            ChargerState.WAITING_FOR_AUTHENTICATION,
            ChargerState.AUTHENTICATION_FAILED,
        ):
            return self.state
        if not self.online:
            return self.state
        self.pending_tag = None
        if accepted:
            self._timer_s = t_s + AUTH_OK_DISPLAY_S
            return self._enter(ChargerState.AUTHENTICATION_OK, t_s)
        self._timer_s = t_s + AUTH_FAILED_DISPLAY_S
        return self._enter(ChargerState.AUTHENTICATION_FAILED, t_s)

    def set_allocation(self, t_s: float, current_a: float) -> ChargerState:
        """New current from the installation's load balancer [A per phase]."""
        self.advance(t_s)
        self.allocation_a = float(current_a)
        if self.state in _AUTHORISED_SESSION_STATES:
            return self._resolve_session(t_s)
        return self.state

    def set_online(self, t_s: float, online: bool) -> ChargerState:
        """Cloud connection lost or restored."""
        self.advance(t_s)
        self.online = online
        state = self.state
        if state in _IDLE_STATES:
            return self._enter(self._idle_state(), t_s)
        if state in _AUTHORISED_SESSION_STATES:
            return self._resolve_session(t_s)
        if online and state is ChargerState.WAITING_FOR_CLOUD and self.pending_tag is None:
            return self._enter(ChargerState.WAITING_FOR_AUTHENTICATION, t_s)
        if (
            not online
            and self.auth_mode is AuthMode.CLOUD
            and (state is ChargerState.WAITING_FOR_AUTHENTICATION)
        ):
            return self._enter(ChargerState.WAITING_FOR_CLOUD, t_s)
        return state

    def set_activated(self, t_s: float, activated: bool) -> ChargerState:
        """Activation in the portal changed."""
        self.advance(t_s)
        self.activated = activated
        if self.state in _IDLE_STATES:
            if self.car_connected and activated:
                return self._begin_session(t_s)
            return self._enter(self._idle_state(), t_s)
        return self.state

    def set_temperature(self, t_s: float, temperature_c: float) -> ChargerState:
        """Internal temperature reading [°C]; applies stepped derating."""
        self.advance(t_s)
        self.temperature_c = temperature_c
        level = derating_level(temperature_c, self.derate_level)
        if level != self.derate_level:
            self.derate_level = level
            if self.state in _AUTHORISED_SESSION_STATES:
                return self._resolve_session(t_s)
        return self.state

    def set_eco_windows(
        self, t_s: float, windows: Sequence[tuple[float, float]] | None
    ) -> ChargerState:
        """Eco mode: charge only inside these ``(start_s, end_s)`` windows; None = off."""
        self.advance(t_s)
        self.eco_windows = None if windows is None else tuple(sorted(windows))
        if self.state in _AUTHORISED_SESSION_STATES:
            return self._resolve_session(t_s)
        return self.state

    def start_firmware_update(self, t_s: float, duration_s: float) -> ChargerState:
        """Install firmware (purple), then reboot; refused while a car is connected."""
        self.advance(t_s)
        if self.car_connected or self.state not in _IDLE_STATES:
            return self.state
        self._timer_s = t_s + duration_s
        return self._enter(ChargerState.FIRMWARE_UPDATING, t_s)

    def fault(self, t_s: float, persistent: bool = False) -> ChargerState:
        """An error (red). Cleared by unplugging, or by :meth:`clear_fault` if persistent."""
        self.advance(t_s)
        if self.state in (ChargerState.UNPOWERED, ChargerState.BOOTING):
            return self.state
        self._timer_s = math.inf
        self._error_persistent = self._error_persistent or persistent
        return self._enter(ChargerState.ERROR, t_s)

    def clear_fault(self, t_s: float) -> ChargerState:
        """The cause of a persistent fault is repaired."""
        self.advance(t_s)
        if self.state is not ChargerState.ERROR:
            return self.state
        self._error_persistent = False
        if self.car_connected:
            return self.state
        return self._enter(self._idle_state(), t_s)

    def set_permanent_cable_lock(self, t_s: float, locked: bool) -> ChargerState:
        """Lock the cable to the charger permanently (app setting)."""
        self.advance(t_s)
        self.permanent_cable_lock = locked
        return self.state
