"""Discrete-event core of the installation simulator.

The engine advances from event to event (arrival, authorisation, allocation, pilot
change, the car following the pilot, car full, departure, household-load change,
fault start and end); nothing is stepped per second. Between events every charger
draws a constant current, so energies integrate exactly and everything sampled
later (registers, meter values, HAN readings) is computed in bulk from the logs
this engine writes (:mod:`firmware_ref.sim_outputs`).

Rules the engine follows
------------------------
* The load balancer (:func:`firmware_ref.allocator.allocate`) runs whenever the set
  of cars asking for current changes (authorised, full, gone), when the household
  load moves on an APM site, and when one of its phase-switch timers expires.
* A charger changes its pilot at most every 5 s (IEC 61851-1, :mod:`firmware_ref.pilot`).
  Decreases are signalled first; increases wait until every car due to lower its
  current (from this allocation or an earlier one still in flight) has followed, so
  healthy chargers never overload a line while currents move.
* A car follows a new pilot after its own response delay (within the 5 s grace
  window) and draws ``min(pilot, car maximum)`` on the lines the allocation gives.
* A car that has taken its energy need stops drawing (Zaptec operation mode 5) and
  is released from the allocation.

Times are float seconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from firmware_ref.allocator import (
    AllocatorState,
    ChargerDemand,
    PhaseSwitchConfig,
    SiteLimits,
    allocate,
    available_current_from_fuse,
)
from firmware_ref.pilot import PWM_MIN_CHANGE_INTERVAL_S, next_pwm_change_time
from firmware_ref.sim_timeline import LineCodes

# Event kinds, in the order they are handled when they share a time stamp.
DEPARTURE = 0
CAR_FULL = 1
FAULT_END = 2
ARRIVAL = 3
AUTHORISE = 4
HOUSEHOLD = 5
PILOT = 6
FOLLOW = 7
REALLOCATE = 8



@dataclass
class EngineSite:
    """Static description of the installation for the engine.

    Attributes
    ----------
    charger_ids : list of str
        Charger identifiers, by index.
    phase_rotations : list of str
        Installer wiring per charger (``"RST"``, ...).
    charger_max_current_a : float
        Charger maximum per phase [A].
    network_type : str
        ``"TN"`` or ``"IT"``.
    line_voltage_v : tuple of float
        Supply voltage per line [V]: line-to-neutral on TN, line-to-line (L1-L2,
        L2-L3, L3-L1) on IT.
    main_fuse_a : float
        Main fuse [A].
    available_current_a : float
        Installation ``AvailableCurrent`` per line [A] (non-APM sites).
    apm : bool
        Whether the available current follows the household load (fuse minus load).
    apm_margin_a : float
        Safety margin kept free on each line under APM [A].
    phase_switch : PhaseSwitchConfig
        1↔3-phase switching settings.
    dynamic_phase_selection : bool
        Chargers pick the least-loaded line for 1-phase charging.
    soft_start_s, soft_start_current_a : float
        Every charging start is capped at ``soft_start_current_a`` [A] for
        ``soft_start_s`` [s] (:data:`firmware_ref.charger.PRO` soft start).
    """

    charger_ids: list[str]
    phase_rotations: list[str]
    charger_max_current_a: float
    network_type: str
    line_voltage_v: tuple[float, float, float]
    main_fuse_a: float
    available_current_a: float
    apm: bool
    apm_margin_a: float = 1.0
    phase_switch: PhaseSwitchConfig = field(default_factory=PhaseSwitchConfig)
    dynamic_phase_selection: bool = True
    soft_start_s: float = 30.0
    soft_start_current_a: float = 6.0


@dataclass
class EngineVisits:
    """Per-visit inputs of the engine (arrays indexed by visit)."""

    charger: np.ndarray
    arrival_s: np.ndarray
    auth_s: np.ndarray
    departure_s: np.ndarray
    energy_need_wh: np.ndarray
    car_max_a: np.ndarray
    car_phases: np.ndarray
    follow_delay_s: np.ndarray
    start_delay_s: np.ndarray


@dataclass
class IgnoreFaultPlan:
    """An ignore-allocation fault to arm in the engine."""

    charger: int
    not_before_s: float
    duration_s: float
    draw_a: float | None
    min_decrease_a: float = 2.0


@dataclass
class EngineLogs:
    """What the engine recorded; columns as Python lists, turned into frames later."""

    # Allocation change log: one row per charger whose allocation changed.
    alloc_t: list[float] = field(default_factory=list)
    alloc_charger: list[int] = field(default_factory=list)
    alloc_current: list[float] = field(default_factory=list)
    alloc_phases: list[int] = field(default_factory=list)
    alloc_lines: list[str] = field(default_factory=list)
    alloc_paused: list[bool] = field(default_factory=list)
    alloc_binding: list[str] = field(default_factory=list)
    # Allocator runs: one row per call.
    run_t: list[float] = field(default_factory=list)
    run_available: list[tuple[float, float, float]] = field(default_factory=list)
    run_allocated: list[tuple[float, float, float]] = field(default_factory=list)
    run_active: list[int] = field(default_factory=list)
    # Pilot (signalled current) log.
    pilot_t: list[float] = field(default_factory=list)
    pilot_charger: list[int] = field(default_factory=list)
    pilot_a: list[float] = field(default_factory=list)
    pilot_code: list[int] = field(default_factory=list)
    # Drawn-current log.
    draw_t: list[float] = field(default_factory=list)
    draw_charger: list[int] = field(default_factory=list)
    draw_a: list[float] = field(default_factory=list)
    draw_code: list[int] = field(default_factory=list)
    # Per visit.
    first_draw_s: np.ndarray | None = None
    full_s: np.ndarray | None = None
    delivered_wh: np.ndarray | None = None
    # Ignore-allocation faults: (charger, start, end, signalled_a, min_setpoint_a,
    # setpoint_at_start, max_line_excess_a)
    ignore_windows: list[tuple[int, float, float, float, float, float, float]] = field(
        default_factory=list
    )
    events: int = 0
    allocator_calls: int = 0


class Engine:
    """Runs the event loop for one installation."""

    def __init__(
        self,
        site: EngineSite,
        visits: EngineVisits,
        household_t_s: np.ndarray,
        household_a: np.ndarray,
        start_s: float,
        end_s: float,
        ignore_faults: list[IgnoreFaultPlan],
    ) -> None:
        self.site = site
        self.visits = visits
        self.start_s = start_s
        self.end_s = end_s
        self.codes = LineCodes(site.network_type, site.line_voltage_v)
        n = len(site.charger_ids)
        self.n = n
        self.logs = EngineLogs()
        nv = visits.arrival_s.size
        self.logs.first_draw_s = np.full(nv, np.nan)
        self.logs.full_s = np.full(nv, np.nan)
        self.logs.delivered_wh = np.zeros(nv)
        self._heap: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        # Charger state.
        self.visit = [-1] * n
        self.active: dict[int, ChargerDemand] = {}
        self.setpoint = [(0.0, 0, ())] * n  # (current, phases, lines) from the allocator
        self.pilot = [0.0] * n  # signalled current
        self.pilot_code = [0] * n
        self.pilot_last_change = [-math.inf] * n
        self.pilot_token = [0] * n
        self.drawn = [0.0] * n
        self.drawn_code = [0] * n
        self.power_w = [0.0] * n
        self.last_t = [start_s] * n
        self.delivered = [0.0] * n  # true Wh in current visit
        self.full = [False] * n
        self.full_token = [0] * n
        self.follow_token = [0] * n
        self.soft_until = [-math.inf] * n
        # When each car still due to lower its current will have done so [s].
        self.lowering_due: dict[int, float] = {}
        self.alloc_state: AllocatorState | None = None
        self.realloc_at: set[float] = set()
        self.household_t = household_t_s
        self.household_a = household_a
        self.household_now = (0.0, 0.0, 0.0)
        self.ignore: dict[int, dict] = {}
        for plan in ignore_faults:
            self.ignore[plan.charger] = {"plan": plan, "state": "armed"}

    # --- queue ------------------------------------------------------------------

    def push(self, t: float, kind: int, charger: int = -1, token: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, kind, self._seq, charger, token))

    def request_reallocation(self, t: float) -> None:
        if t not in self.realloc_at:
            self.realloc_at.add(t)
            self.push(t, REALLOCATE)

    # --- main loop --------------------------------------------------------------

    def run(self) -> EngineLogs:
        v = self.visits
        for k in range(v.arrival_s.size):
            self.push(float(v.arrival_s[k]), ARRIVAL, int(v.charger[k]), k)
        if self.household_t.size:
            self.household_now = tuple(float(x) for x in self.household_a[0])  # type: ignore[assignment]
        if self.site.apm:
            for k in range(1, self.household_t.size):
                self.push(float(self.household_t[k]), HOUSEHOLD, -1, k)
        handlers = {
            DEPARTURE: self._departure,
            CAR_FULL: self._car_full,
            FAULT_END: self._fault_end,
            ARRIVAL: self._arrival,
            AUTHORISE: self._authorise,
            HOUSEHOLD: self._household,
            PILOT: self._pilot,
            FOLLOW: self._follow,
            REALLOCATE: self._reallocate,
        }
        heap = self._heap
        events = 0
        while heap:
            t, kind, _, charger, token = heapq.heappop(heap)
            if t > self.end_s:
                break
            events += 1
            handlers[kind](t, charger, token)
        # Close the books at the end of the simulation.
        for c in range(self.n):
            self._integrate(c, self.end_s)
        self.logs.events = events
        return self.logs

    # --- helpers ----------------------------------------------------------------

    def _integrate(self, c: int, t: float) -> None:
        dt = t - self.last_t[c]
        if dt > 0.0:
            p = self.power_w[c]
            if p > 0.0:
                self.delivered[c] += p * dt / 3600.0
            self.last_t[c] = t
        elif dt == 0.0:
            self.last_t[c] = t

    def _set_draw(self, c: int, t: float, amps: float, code: int) -> None:
        """Change the drawn current of charger ``c`` at ``t`` (integrates first)."""
        self._integrate(c, t)
        if amps == self.drawn[c] and (code == self.drawn_code[c] or amps == 0.0):
            return
        if amps <= 0.0:
            amps, code = 0.0, 0
        self.drawn[c] = amps
        self.drawn_code[c] = code
        self.power_w[c] = amps * self.codes.watts_per_amp[code]
        logs = self.logs
        logs.draw_t.append(t)
        logs.draw_charger.append(c)
        logs.draw_a.append(amps)
        logs.draw_code.append(code)
        k = self.visit[c]
        if amps > 0.0 and k >= 0 and math.isnan(logs.first_draw_s[k]):  # type: ignore[index]
            logs.first_draw_s[k] = t  # type: ignore[index]
        self._schedule_full(c, t)

    def _schedule_full(self, c: int, t: float) -> None:
        self.full_token[c] += 1
        k = self.visit[c]
        p = self.power_w[c]
        if k < 0 or p <= 0.0 or self.full[c]:
            return
        remaining = float(self.visits.energy_need_wh[k]) - self.delivered[c]
        t_full = t + max(remaining, 0.0) / p * 3600.0
        self.push(t_full, CAR_FULL, c, self.full_token[c])

    def _set_pilot(self, c: int, t: float, amps: float, code: int) -> None:
        if amps == self.pilot[c] and code == self.pilot_code[c]:
            return
        if amps <= 0.0:
            amps, code = 0.0, 0
        self.pilot[c] = amps
        self.pilot_code[c] = code
        self.pilot_last_change[c] = t
        logs = self.logs
        logs.pilot_t.append(t)
        logs.pilot_charger.append(c)
        logs.pilot_a.append(amps)
        logs.pilot_code.append(code)

    def _car_target(self, c: int, t: float) -> tuple[float, int]:
        """Current and line code the car draws given the signalled pilot."""
        k = self.visit[c]
        if k < 0 or self.full[c]:
            return 0.0, 0
        amps = min(self.pilot[c], float(self.visits.car_max_a[k]))
        if t < self.soft_until[c]:
            amps = min(amps, self.site.soft_start_current_a)
        return amps, self.pilot_code[c]

    # --- handlers ---------------------------------------------------------------

    def _arrival(self, t: float, c: int, k: int) -> None:
        self._integrate(c, t)
        self.visit[c] = k
        self.delivered[c] = 0.0
        self.full[c] = False
        v = self.visits
        self.push(float(v.auth_s[k]), AUTHORISE, c, k)
        self.push(float(v.departure_s[k]), DEPARTURE, c, k)

    def _authorise(self, t: float, c: int, k: int) -> None:
        if self.visit[c] != k:
            return
        v = self.visits
        site = self.site
        self.active[c] = ChargerDemand(
            charger_id=site.charger_ids[c],
            active=True,
            phases=int(v.car_phases[k]),
            phase_rotation=site.phase_rotations[c],
            car_max_current_a=float(v.car_max_a[k]),
            charger_max_current_a=site.charger_max_current_a,
            arrival_s=t,
            dynamic_phase_selection=site.dynamic_phase_selection,
        )
        self.request_reallocation(t)

    def _household(self, t: float, _c: int, k: int) -> None:
        self.household_now = tuple(float(x) for x in self.household_a[k])  # type: ignore[assignment]
        if self.active:
            self.request_reallocation(t)

    def _release(self, c: int, t: float) -> None:
        """Take charger ``c`` out of the allocation (car full or gone)."""
        self.lowering_due.pop(c, None)
        if c in self.active:
            del self.active[c]
            self.request_reallocation(t)
        if self.setpoint[c][0] != 0.0 or self.setpoint[c][1] != 0:
            self.setpoint[c] = (0.0, 0, ())
            self._log_alloc(t, c, 0.0, 0, (), False, "inactive")
        self.pilot_token[c] += 1
        self._set_pilot(c, t, 0.0, 0)

    def _car_full(self, t: float, c: int, token: int) -> None:
        if token != self.full_token[c] or self.visit[c] < 0:
            return
        k = self.visit[c]
        self._integrate(c, t)
        self.delivered[c] = float(self.visits.energy_need_wh[k])
        self.full[c] = True
        self.logs.full_s[k] = t  # type: ignore[index]
        self._set_draw(c, t, 0.0, 0)
        self._end_fault(c, t)
        self._release(c, t)

    def _departure(self, t: float, c: int, k: int) -> None:
        if self.visit[c] != k:
            return
        self._set_draw(c, t, 0.0, 0)
        self._end_fault(c, t)
        self._release(c, t)
        self.logs.delivered_wh[k] = self.delivered[c]  # type: ignore[index]
        self.visit[c] = -1
        self.full[c] = False
        self.follow_token[c] += 1

    def _pilot(self, t: float, c: int, token: int) -> None:
        if token != self.pilot_token[c] or self.visit[c] < 0:
            return
        amps, phases, lines = self.setpoint[c]
        code = self.codes.code(self.site.phase_rotations[c], phases, lines)
        fault = self.ignore.get(c)
        if fault is not None:
            if fault["state"] == "armed":
                self._maybe_start_fault(c, t, amps, code)
            if fault["state"] == "active":
                # The charger ignores the allocation: its pilot stays where it was.
                excess = self._line_excess(fault["frozen_a"], fault["frozen_code"], amps, code)
                fault["max_excess_a"] = max(fault["max_excess_a"], excess)
                fault["min_setpoint_a"] = min(fault["min_setpoint_a"], amps)
                self.lowering_due.pop(c, None)
                return
        before = self.pilot[c]
        self._set_pilot(c, t, amps, code)
        k = self.visit[c]
        delay = float(self.visits.follow_delay_s[k])
        if before == 0.0 and self.drawn[c] == 0.0:
            delay += float(self.visits.start_delay_s[k])
        self.follow_token[c] += 1
        self.push(t + delay, FOLLOW, c, self.follow_token[c])
        if c in self.lowering_due:
            self.lowering_due[c] = t + delay

    def _follow(self, t: float, c: int, token: int) -> None:
        if token != self.follow_token[c] or self.visit[c] < 0:
            return
        self.lowering_due.pop(c, None)
        amps, code = self._car_target(c, t)
        if amps > 0.0 and self.drawn[c] == 0.0 and self.site.soft_start_s > 0.0:
            # A charging start: soft start caps the current for a while.
            self.soft_until[c] = t + self.site.soft_start_s
            amps, code = self._car_target(c, t)
        if t < self.soft_until[c]:
            self.follow_token[c] += 1
            self.push(self.soft_until[c], FOLLOW, c, self.follow_token[c])
        self._set_draw(c, t, amps, code)

    def _reallocate(self, t: float, _c: int, _token: int) -> None:
        self.realloc_at.discard(t)
        site = self.site
        if site.apm:
            available = available_current_from_fuse(
                site.main_fuse_a, self.household_now, site.apm_margin_a
            )
        else:
            a = site.available_current_a
            available = (a, a, a)
        limits = SiteLimits(
            available_current_a=available,
            network_type=site.network_type,
            phase_switch=site.phase_switch,
        )
        order = sorted(self.active)
        demands = [self.active[c] for c in order]
        result = allocate(limits, demands, state=self.alloc_state, now_s=t)
        self.alloc_state = result.state
        logs = self.logs
        logs.allocator_calls += 1
        logs.run_t.append(t)
        logs.run_available.append(tuple(available))  # type: ignore[arg-type]
        logs.run_allocated.append(result.line_currents_a)
        logs.run_active.append(len(order))

        decreases: list[int] = []
        increases: list[int] = []
        for c in order:
            alloc = result.allocations[site.charger_ids[c]]
            new = (float(alloc.current_a), int(alloc.phases), tuple(alloc.lines))
            old = self.setpoint[c]
            if new != old:
                self.setpoint[c] = new
                self._log_alloc(
                    t, c, new[0], new[1], new[2], alloc.paused, alloc.binding_constraint
                )
                lowers = new[0] < self.pilot[c] or (new[1], new[2]) != (
                    self.codes.phases[self.pilot_code[c]],
                    self.codes.lines[self.pilot_code[c]],
                )
                (decreases if lowers and self.pilot[c] > 0.0 else increases).append(c)
        # Increases wait until every car due to lower its current has done so, including
        # cars still following an earlier allocation.
        for c in decreases:
            when = next_pwm_change_time(self.pilot_last_change[c], t, PWM_MIN_CHANGE_INTERVAL_S)
            self.pilot_token[c] += 1
            self.push(when, PILOT, c, self.pilot_token[c])
            k = self.visit[c]
            self.lowering_due[c] = when + float(self.visits.follow_delay_s[k])
        settle = max([t, *self.lowering_due.values()])
        for c in increases:
            when = max(
                settle,
                next_pwm_change_time(self.pilot_last_change[c], t, PWM_MIN_CHANGE_INTERVAL_S),
            )
            self.pilot_token[c] += 1
            self.push(when, PILOT, c, self.pilot_token[c])
        # Wake the allocator when one of its phase-switch timers runs out.
        wake = math.inf
        for sess in result.state.sessions.values():
            for moment in (sess.pause_until_s, sess.next_trial_s):
                if t < moment < wake:
                    wake = moment
        if wake < math.inf:
            self.request_reallocation(wake)

    def _log_alloc(
        self,
        t: float,
        c: int,
        amps: float,
        phases: int,
        lines: tuple[str, ...],
        paused: bool,
        binding: str,
    ) -> None:
        logs = self.logs
        logs.alloc_t.append(t)
        logs.alloc_charger.append(c)
        logs.alloc_current.append(amps)
        logs.alloc_phases.append(phases)
        logs.alloc_lines.append(",".join(lines))
        logs.alloc_paused.append(paused)
        logs.alloc_binding.append(binding)

    # --- ignore-allocation fault -------------------------------------------------

    def _line_excess(self, amps_a: float, code_a: int, amps_b: float, code_b: int) -> float:
        """Largest per-line current of (amps_a, code_a) above that of (amps_b, code_b) [A]."""
        used_a = self.codes.weights[code_a]
        used_b = self.codes.weights[code_b]
        return max(
            amps_a * abs(used_a[k]) - amps_b * abs(used_b[k]) for k in range(3)
        )

    def _maybe_start_fault(self, c: int, t: float, new_amps: float, new_code: int) -> None:
        fault = self.ignore[c]
        plan: IgnoreFaultPlan = fault["plan"]
        if t < plan.not_before_s or self.drawn[c] <= 0.0:
            return
        k = self.visit[c]
        frozen = self.pilot[c] if plan.draw_a is None else plan.draw_a
        frozen = min(frozen, self.site.charger_max_current_a)
        frozen_code = self.pilot_code[c]
        excess = self._line_excess(frozen, frozen_code, new_amps, new_code)
        if excess < plan.min_decrease_a:
            return
        # Only a window the car fills completely: it stays and keeps drawing throughout.
        self._integrate(c, t)
        drawn = min(frozen, float(self.visits.car_max_a[k]))
        power = drawn * self.codes.watts_per_amp[frozen_code]
        remaining_wh = float(self.visits.energy_need_wh[k]) - self.delivered[c]
        if power <= 0.0 or remaining_wh / power * 3600.0 < plan.duration_s * 1.05:
            return
        if float(self.visits.departure_s[k]) < t + plan.duration_s + 60.0:
            return
        fault.update(
            state="active",
            start=t,
            frozen_a=frozen,
            frozen_code=frozen_code,
            setpoint_at_start=new_amps,
            min_setpoint_a=new_amps,
            max_excess_a=excess,
        )
        if plan.draw_a is not None and frozen != self.pilot[c]:
            self._set_pilot(c, t, frozen, frozen_code)
            self.follow_token[c] += 1
            self.push(t + float(self.visits.follow_delay_s[k]), FOLLOW, c, self.follow_token[c])
        self.push(t + plan.duration_s, FAULT_END, c, 0)

    def _end_fault(self, c: int, t: float) -> None:
        fault = self.ignore.get(c)
        if fault is None or fault["state"] != "active":
            return
        fault["state"] = "done"
        self.logs.ignore_windows.append(
            (
                c,
                fault["start"],
                t,
                fault["frozen_a"],
                fault["min_setpoint_a"],
                fault["setpoint_at_start"],
                fault["max_excess_a"],
            )
        )

    def _fault_end(self, t: float, c: int, _token: int) -> None:
        fault = self.ignore.get(c)
        if fault is None or fault["state"] != "active":
            return
        self._end_fault(c, t)
        if self.visit[c] < 0:
            return
        amps, phases, lines = self.setpoint[c]
        code = self.codes.code(self.site.phase_rotations[c], phases, lines)
        self._set_pilot(c, t, amps, code)
        k = self.visit[c]
        self.follow_token[c] += 1
        self.push(t + float(self.visits.follow_delay_s[k]), FOLLOW, c, self.follow_token[c])
