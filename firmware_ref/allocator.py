"""Reference load-balancing allocator for an installation of Zaptec-style chargers.

``allocate(site, demands, state=None, now_s=None) -> AllocationResult`` is a pure function:
limits, demands and the previous state go in; per-charger currents, line currents and the next
state come out. Nothing is mutated. Call it at every event (arrival, departure, household-load
change, car limit change) and feed the returned ``state`` into the next call.

Data structures
---------------
:class:`SiteLimits` (one per call; rebuild or ``dataclasses.replace`` it when the APM budget moves)
    ``available_current_a``  current available to the chargers on each supply line L1, L2, L3 [A]:
                             the main fuse or installation ``AvailableCurrent``, or for APM the
                             fuse minus the HAN-measured household current per line
                             (:meth:`SiteLimits.from_fuse`).
    ``network_type``         ``"TN"`` | ``"IT"`` (``"TT"`` behaves as TN), see :mod:`firmware_ref.grid`.
    ``circuits``             tuple of :class:`CircuitLimit` ``(circuit_id, max_current_a per line,
                             parent_id)``; circuits nest under their parent or the installation.
    ``phase_switch``         :class:`PhaseSwitchConfig` for 1↔3-phase switching.

:class:`ChargerDemand` (one per charger known to the installation, every call)
    ``charger_id``, ``circuit_id`` (None = directly under the installation), ``active`` (a car is
    connected and wants current), ``phases`` the car *and* charger can use (1, 2 or 3),
    ``phase_rotation`` (installer wiring, ``"RST"``…, see grid), ``min_current_a`` (6 A),
    ``car_max_current_a`` and ``charger_max_current_a`` (their minimum is the property
    ``max_current_a``), ``priority`` (prioritised session), ``arrival_s`` (session start [s];
    together with ``charger_id`` it identifies the session), ``dynamic_phase_selection`` (the
    charger may choose which of its terminals carries a 1-phase charge, as the manuals describe
    for identical units; otherwise a 1-phase charge uses terminal L1, or L1-L2 on IT).

:class:`ChargerAllocation` (per charger in the result)
    ``current_a`` per-phase current to offer on the pilot [A] (0 = none), ``phases`` in use
    (0 when inactive), ``lines`` supply lines used (``("L2",)``, ``("L1", "L2", "L3")``),
    ``paused`` (active but 0 A), ``binding_constraint`` (why it got no more, below).

:class:`AllocationResult`
    ``allocations`` (dict charger_id → ChargerAllocation, demand order), ``line_currents_a``
    (charger load per supply line [A], phasor magnitudes on IT; household load excluded),
    ``circuit_line_currents_a`` (circuit_id → per-line [A]), ``available_current_a`` (echo),
    ``state`` (:class:`AllocatorState`), ``policy`` (name).

:class:`AllocatorState`
    ``time_s`` of the call and ``sessions``: charger_id → :class:`SessionState` (session arrival,
    phase mode, switch count, mode start, pause end, next 1→3 trial, chosen 1-phase terminal,
    last current). Sessions of chargers absent from the demands, or with a new ``arrival_s``,
    start afresh.

Binding constraints
-------------------
``car_max``, ``charger_max`` (the charger got its maximum), ``fuse_L1``/``fuse_L2``/``fuse_L3``
(installation line at its available current), ``circuit:<id>`` (a circuit line at its maximum),
``min_current_admission`` (paused: its minimum current did not fit), ``phase_switch_pause``
(paused while switching between 1 and 3 phases), ``phase_switch_limit`` (a wanted switch was
refused because the session used its switches), ``inactive`` (no car requesting).

Reference policy (:func:`allocate`)
-----------------------------------
1. Prioritised sessions form the first group, the rest the second; each group is served from
   what the groups before it left ("prioritised sessions first", Zaptec API doc).
2. Admission, per group, in order of arrival (then charger id): a charger is admitted if it and
   every charger admitted so far can all get their minimum current without any line or circuit
   exceeding its limit; otherwise it is paused (``min_current_admission``) and the scan goes on,
   so a later charger on a less loaded line or circuit may still start. A charger gets its
   minimum current or nothing.
3. Admitted chargers are water-filled: their currents rise together from the minimum; a charger
   stops at its own maximum, or when a line or circuit it loads becomes full (max-min fairness
   on every line and circuit, exact phasor magnitudes on IT).
4. 1↔3-phase switching (3-phase capable chargers, :class:`PhaseSwitchConfig`): a session starts
   in 3 phases and drops to 1 phase when its own 3-phase allocation is below
   ``three_to_one_current_a`` (Pro default 15 A), including when it could not be admitted on
   three phases. It returns to 3 phases only if allowed, after ``min_dwell_s`` in 1 phase, and
   only if a trial allocation gives it at least threshold + ``hysteresis_a`` on three phases
   (chargers due for a trial are tried together in one pass; a failed trial waits another
   ``min_dwell_s``). Before a session first draws current, mode changes are free (that is how
   it picks its starting mode). From then on every switch pauses the charger for ``pause_s``
   and counts; after ``max_switches_per_session`` (default 5) the session stays on one phase:
   an up-switch is refused unless a later down-switch would still be allowed, and a refused
   switch is reported as ``phase_switch_limit``.

Alternative policies with the same signature, for what-if replays: :func:`equal_share`
(max-min fair water-filling, priority ignored, fixed phases), :func:`first_come` (each charger
in arrival order takes the most it can, then the next) and :func:`priority` (prioritised then
by arrival: minimum current to each in order while it fits, then the rest greedily in order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from firmware_ref.allocation import (  # noqa: F401 - re-exported: the allocator's public API
    EPS_A,
    AllocationResult,
    AllocatorState,
    ChargerAllocation,
    ChargerDemand,
    CircuitLimit,
    PhaseSwitchConfig,
    SessionState,
    SiteLimits,
    available_current_from_fuse,
)
from firmware_ref.grid import (
    spread_phase_rotations,
)
from firmware_ref.products import RATED_CURRENT_A
from firmware_ref.waterfill import WorkingRequest, constraint_network, set_paths, solve

# --------------------------------------------------------------------------------------------
# Public policies
# --------------------------------------------------------------------------------------------


def _arrival_key(r: WorkingRequest) -> tuple[float, str]:
    return r.key


def _cap_of(demand: ChargerDemand) -> tuple[float, str]:
    # A charger set above its rating still offers no more than the rating (the manuals:
    # 32 A per phase for every product), whatever its demand says.
    charger_cap = min(float(demand.charger_max_current_a), RATED_CURRENT_A)
    if charger_cap <= demand.car_max_current_a:
        return charger_cap, "charger_max"
    return float(demand.car_max_current_a), "car_max"


def _switch_phases(reqs: list[WorkingRequest], cfg: PhaseSwitchConfig, now: float) -> tuple[list[WorkingRequest], bool]:
    """Apply 3→1 drops and start 1→3 trials after the first pass; returns (to_solve, changed)."""
    threshold = cfg.three_to_one_current_a
    changed = False
    for r in reqs:
        if r.demand.phases != 3:
            continue
        if r.mode == 3 and r.x < threshold - EPS_A:
            if r.has_charged and r.switch_count >= cfg.max_switches_per_session:
                r.refused = True
                continue
            r.mode = 1
            r.sticky_terminal = None
            r.mode_since = now
            r.next_trial = now + cfg.min_dwell_s
            if r.has_charged:
                r.switch_count += 1
                r.pause_until = now + cfg.pause_s
                r.switch_paused = cfg.pause_s > 0
            changed = True
        elif (
            r.mode == 1
            and cfg.return_to_three_phase
            and r.x >= threshold + cfg.hysteresis_a - EPS_A
            and now >= r.next_trial
        ):
            # Keep one switch in reserve so the session can still fall back to one phase.
            if r.has_charged and r.switch_count + 1 >= cfg.max_switches_per_session:
                r.refused = True
                continue
            r.mode = 3
            r.trial = True
            changed = True
    return [r for r in reqs if not r.switch_paused], changed


def _settle_trials(reqs: list[WorkingRequest], cfg: PhaseSwitchConfig, now: float) -> bool:
    """Keep 1→3 trials that reached threshold + hysteresis; returns whether a re-solve is due."""
    resolve = False
    for r in reqs:
        if not r.trial:
            continue
        r.trial = False
        if r.x >= cfg.three_to_one_current_a + cfg.hysteresis_a - EPS_A:
            r.mode_since = now
            if r.has_charged:
                r.switch_count += 1
                r.pause_until = now + cfg.pause_s
                if cfg.pause_s > 0:
                    r.switch_paused = True
                    resolve = True
        else:
            r.mode = 1
            r.next_trial = now + cfg.min_dwell_s
            resolve = True
    return resolve


def _run(
    site: SiteLimits,
    demands: Sequence[ChargerDemand],
    state: AllocatorState | None,
    now_s: float | None,
    policy: str,
) -> AllocationResult:
    now = float(now_s) if now_s is not None else (state.time_s if state is not None else 0.0)
    network_type = site.network_type.upper()
    if network_type not in ("TN", "TT", "IT"):
        raise ValueError(f"unknown network type {site.network_type!r}")
    net = constraint_network(site.circuits)
    limits = net.limits(site.available_current_a)
    cfg = site.phase_switch
    switching = policy == "reference" and cfg.enabled
    sessions = state.sessions if state is not None else {}

    allocations: dict[str, ChargerAllocation] = {}
    new_sessions: dict[str, SessionState] = {}
    outcome: list = []  # per demand: a WorkingRequest, or a finished (allocation, session) pair
    reqs: list[WorkingRequest] = []
    reference = policy == "reference"
    for seq, d in enumerate(demands):
        sess = sessions.get(d.charger_id)
        if sess is not None and sess.arrival_s != d.arrival_s:
            sess = None
        if not d.active:
            if sess is not None and sess.last_current_a != 0.0:
                sess = SessionState(
                    sess.arrival_s, sess.phase_mode, sess.switch_count, sess.mode_since_s,
                    sess.pause_until_s, sess.next_trial_s, sess.single_phase_terminal, 0.0,
                    sess.has_charged,
                )  # fmt: skip
            outcome.append((ChargerAllocation(d.charger_id, 0.0, 0, (), False, "inactive"), sess))
            continue
        if d.phases not in (1, 2, 3):
            raise ValueError(f"charger {d.charger_id}: phases must be 1, 2 or 3")
        cap, cap_label = _cap_of(d)
        mode = sess.phase_mode if (sess is not None and switching and d.phases == 3) else d.phases
        r = WorkingRequest(d, seq, mode, cap, cap_label)
        if sess is not None:
            r.switch_count = sess.switch_count
            r.mode_since = sess.mode_since_s
            r.pause_until = sess.pause_until_s
            r.next_trial = sess.next_trial_s
            r.has_charged = sess.has_charged
            if reference:
                r.sticky_terminal = sess.single_phase_terminal
        else:
            r.mode_since = now
        if cap < r.lo:
            set_paths(r, net, network_type)
            r.binding = cap_label
            r.switch_paused = True  # excluded from solving; reported paused below
        elif switching and r.pause_until > now:
            set_paths(r, net, network_type)
            r.binding = "phase_switch_pause"
            r.switch_paused = True
        reqs.append(r)
        outcome.append(r)

    reqs.sort(key=_arrival_key)
    solvable = [r for r in reqs if not r.switch_paused]
    loads = solve(solvable, net, limits, network_type, policy)
    if switching:
        solvable, changed = _switch_phases(solvable, cfg, now)
        if changed:
            loads = solve(solvable, net, limits, network_type, policy)
            if _settle_trials(solvable, cfg, now):
                solvable = [r for r in solvable if not r.switch_paused]
                loads = solve(solvable, net, limits, network_type, policy)

    for item in outcome:
        if type(item) is tuple:
            alloc, sess_out = item
            allocations[alloc.charger_id] = alloc
            if sess_out is not None:
                new_sessions[alloc.charger_id] = sess_out
            continue
        r = item
        d = r.demand
        if r.switch_paused:
            amps = 0.0
            binding = "phase_switch_pause" if r.pause_until > now else r.binding
        else:
            amps = r.x
            binding = "phase_switch_limit" if r.refused else r.binding
        # A dynamically chosen terminal sticks while the session draws current on it.
        sticky = reference and d.dynamic_phase_selection and r.mode != 3 and amps > 0.0
        allocations[d.charger_id] = ChargerAllocation(
            d.charger_id, amps, r.mode, r.lines, amps <= 0.0, binding
        )
        new_sessions[d.charger_id] = SessionState(
            d.arrival_s, r.mode, r.switch_count, r.mode_since, r.pause_until, r.next_trial,
            r.terminal if sticky else None, amps, r.has_charged or amps > 0.0,
        )  # fmt: skip
    circuit_currents = {
        cid: (abs(loads[3 + 3 * k]), abs(loads[4 + 3 * k]), abs(loads[5 + 3 * k]))
        for k, cid in enumerate(net.circuit_ids)
    }
    return AllocationResult(
        allocations=allocations,
        line_currents_a=(abs(loads[0]), abs(loads[1]), abs(loads[2])),
        circuit_line_currents_a=circuit_currents,
        available_current_a=(limits[0], limits[1], limits[2]),
        state=AllocatorState(time_s=now, sessions=new_sessions),
        policy=policy,
    )


def allocate(
    site: SiteLimits,
    demands: Sequence[ChargerDemand],
    state: AllocatorState | None = None,
    now_s: float | None = None,
) -> AllocationResult:
    """Reference allocation: priority groups, first-fit admission at minimum current,
    max-min fair water-filling, 1↔3-phase switching with hysteresis (see module docstring).

    Parameters
    ----------
    site : SiteLimits
        Available current per line, network type, circuits, phase-switch settings.
    demands : sequence of ChargerDemand
        Every charger of the installation (inactive ones are reported as ``inactive``).
    state : AllocatorState, optional
        State returned by the previous call; None at the start.
    now_s : float, optional
        Time of this allocation [s], same epoch as ``arrival_s``; defaults to the previous
        state's time (or 0). Pass it: phase-switch timers depend on it.

    Returns
    -------
    AllocationResult
        Per-charger allocations with binding constraints, line currents and the next state.
    """
    return _run(site, demands, state, now_s, "reference")


def equal_share(
    site: SiteLimits,
    demands: Sequence[ChargerDemand],
    state: AllocatorState | None = None,
    now_s: float | None = None,
) -> AllocationResult:
    """Equal share: admission by arrival, max-min fair water-filling, no priority, each charger
    on the phases it can use (no switching, 1-phase terminal chosen afresh each call)."""
    return _run(site, demands, state, now_s, "equal_share")


def first_come(
    site: SiteLimits,
    demands: Sequence[ChargerDemand],
    state: AllocatorState | None = None,
    now_s: float | None = None,
) -> AllocationResult:
    """First come, first served: in arrival order each charger takes as much as it can (up to its
    maximum) if at least its minimum fits, else it waits; no priority, no switching."""
    return _run(site, demands, state, now_s, "first_come")


def priority(
    site: SiteLimits,
    demands: Sequence[ChargerDemand],
    state: AllocatorState | None = None,
    now_s: float | None = None,
) -> AllocationResult:
    """Strict priority: order by prioritised, then arrival; minimum current to each in order while
    it fits, then the remainder greedily in the same order; no switching."""
    return _run(site, demands, state, now_s, "priority")


AllocatorPolicy = Callable[..., AllocationResult]

#: Policies by name, for what-if replays (``reference`` is the default).
POLICIES: dict[str, AllocatorPolicy] = {
    "reference": allocate,
    "equal_share": equal_share,
    "first_come": first_come,
    "priority": priority,
}


def choose_phase_rotations(demands: Sequence[ChargerDemand]) -> list[ChargerDemand]:
    """Return the demands with installer rotations chosen to spread single-phase load
    (:func:`firmware_ref.grid.spread_phase_rotations`, per circuit and installation-wide)."""
    rotations = spread_phase_rotations([d.circuit_id for d in demands])
    return [replace(d, phase_rotation=rot) for d, rot in zip(demands, rotations, strict=True)]
