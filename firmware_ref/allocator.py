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
   in 3 phases and drops to 1 phase when its 3-phase current would be below
   ``three_to_one_current_a`` (Pro default 15 A). It returns to 3 phases only if allowed, after
   ``min_dwell_s`` in 1 phase, and only if a trial allocation gives it at least threshold +
   ``hysteresis_a`` on three phases. A switch while charging pauses the charger for ``pause_s``
   and counts; after ``max_switches_per_session`` (default 5) switches the session stays on one
   phase (an up-switch is refused unless a later down-switch would still be allowed).
   Mode changes while the charger is not yet delivering current are free.

Alternative policies with the same signature, for what-if replays: :func:`equal_share`
(max-min fair water-filling, priority ignored, fixed phases), :func:`first_come` (each charger
in arrival order takes the most it can, then the next) and :func:`priority` (prioritised then
by arrival: minimum current to each in order while it fits, then the rest greedily in order).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from firmware_ref.grid import (
    LINE_NAMES,
    LINE_VOLTAGE_UNIT,
    charger_lines,
    line_weights,
    spread_phase_rotations,
)

#: Tolerance [A] for limit comparisons.
EPS_A = 1e-9


@dataclass(frozen=True, slots=True)
class CircuitLimit:
    """A circuit (Zaptec ``Circuit``) with its own maximum current per line.

    Parameters
    ----------
    circuit_id : str
        Identifier used by :attr:`ChargerDemand.circuit_id`.
    max_current_a : float
        Maximum current on each line of the circuit [A] (breaker rating).
    parent_id : str or None
        Enclosing circuit; None means directly under the installation.
    """

    circuit_id: str
    max_current_a: float
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class PhaseSwitchConfig:
    """1↔3-phase switching settings of the installation.

    Parameters
    ----------
    enabled : bool
        Whether 3-phase capable chargers may switch to 1 phase.
    three_to_one_current_a : float
        ``ThreeToOnePhaseSwitchCurrent`` [A]: below this 3-phase current the charger goes to
        1 phase. Zaptec Pro default 15 A (Go 2 default 8 A, range 6–31 A).
    hysteresis_a : float
        Extra current [A] a 3-phase trial must reach before returning to 3 phases.
    return_to_three_phase : bool
        "Allow chargers to return to three phase".
    min_dwell_s : float
        Minimum time [s] in 1 phase before a return is tried, and between failed trials.
    pause_s : float
        Time [s] the charger delivers no current while it switches.
    max_switches_per_session : int
        "Switches allowed before locking to single phase" (default 5, max 20).
    """

    enabled: bool = True
    three_to_one_current_a: float = 15.0
    hysteresis_a: float = 2.0
    return_to_three_phase: bool = True
    min_dwell_s: float = 600.0
    pause_s: float = 10.0
    max_switches_per_session: int = 5


@dataclass(frozen=True, slots=True)
class SiteLimits:
    """Limits of an installation for one allocation.

    Parameters
    ----------
    available_current_a : tuple of float
        Current available to the chargers on supply lines L1, L2, L3 [A].
    network_type : str
        ``"TN"``, ``"IT"`` (``"TT"`` is treated as TN).
    circuits : tuple of CircuitLimit
        Circuits of the installation.
    phase_switch : PhaseSwitchConfig
        1↔3-phase switching settings.
    """

    available_current_a: tuple[float, float, float]
    network_type: str = "TN"
    circuits: tuple[CircuitLimit, ...] = ()
    phase_switch: PhaseSwitchConfig = field(default_factory=PhaseSwitchConfig)

    @classmethod
    def from_fuse(
        cls,
        main_fuse_a: float,
        household_current_a: Sequence[float] = (0.0, 0.0, 0.0),
        network_type: str = "TN",
        circuits: tuple[CircuitLimit, ...] = (),
        phase_switch: PhaseSwitchConfig | None = None,
        margin_a: float = 0.0,
    ) -> SiteLimits:
        """Limits from the main fuse minus the household load (APM), see
        :func:`available_current_from_fuse`."""
        return cls(
            available_current_a=available_current_from_fuse(
                main_fuse_a, household_current_a, margin_a
            ),
            network_type=network_type,
            circuits=circuits,
            phase_switch=phase_switch if phase_switch is not None else PhaseSwitchConfig(),
        )


@dataclass(frozen=True, slots=True)
class ChargerDemand:
    """What one charger and its car ask for at the time of an allocation.

    Parameters
    ----------
    charger_id : str
        Charger identifier.
    circuit_id : str or None
        Circuit the charger sits on; None = directly under the installation.
    active : bool
        A car is connected and wants current.
    phases : int
        Phases the car and the charger can use (1, 2 or 3).
    phase_rotation : str
        Installer's wiring of the charger's terminals (``"RST"``, ``"STR"``, ``"TRS"``, …).
    min_current_a : float
        Minimum current [A] below which the charger pauses (``minChargeCurrent``, 6 A).
    car_max_current_a : float
        Most the car draws per phase [A].
    charger_max_current_a : float
        Charger's own maximum per phase [A] (``maxChargeCurrent``, ≤ 32 A).
    priority : bool
        Prioritised session.
    arrival_s : float
        Session start [s] (any epoch, same as ``now_s``).
    dynamic_phase_selection : bool
        The charger chooses the terminal of a 1-phase charge (least-loaded line); otherwise
        terminal L1 (TN) or L1-L2 (IT).
    """

    charger_id: str
    circuit_id: str | None = None
    active: bool = True
    phases: int = 3
    phase_rotation: str = "RST"
    min_current_a: float = 6.0
    car_max_current_a: float = 32.0
    charger_max_current_a: float = 32.0
    priority: bool = False
    arrival_s: float = 0.0
    dynamic_phase_selection: bool = False

    @property
    def max_current_a(self) -> float:
        """Most the charger can use per phase [A]: min of car and charger maximum."""
        return min(self.car_max_current_a, self.charger_max_current_a)


@dataclass(slots=True)
class ChargerAllocation:
    """Allocation of one charger (treat as read-only; not frozen only because it is built for
    every charger at every call and frozen construction costs four times as much).

    Parameters
    ----------
    charger_id : str
        Charger identifier.
    current_a : float
        Per-phase current to offer [A]; 0 when paused or inactive.
    phases : int
        Phases in use (1, 2, 3); 0 when inactive.
    lines : tuple of str
        Supply lines carrying its current (or that would, when paused).
    paused : bool
        Active but given no current.
    binding_constraint : str
        What stopped it getting more (see module docstring).
    """

    charger_id: str
    current_a: float
    phases: int
    lines: tuple[str, ...]
    paused: bool
    binding_constraint: str


@dataclass(slots=True)
class SessionState:
    """Per-session memory the allocator needs for phase-switch hysteresis (read-only by
    convention, like :class:`ChargerAllocation`; the allocator never mutates its input state).

    Parameters
    ----------
    arrival_s : float
        Session start [s]; a different ``arrival_s`` in the demand starts a new session.
    phase_mode : int
        Phases the session uses now (1, 2, 3).
    switch_count : int
        1↔3-phase switches made while charging in this session.
    mode_since_s : float
        When the current phase mode began [s].
    pause_until_s : float
        End of a switching pause [s].
    next_trial_s : float
        Earliest time of the next 1→3-phase trial [s].
    single_phase_terminal : int or None
        Terminal chosen for a 1-phase charge by dynamic phase selection (sticky per session).
    last_current_a : float
        Current given at the last allocation [A].
    has_charged : bool
        The session has received current; from then on a phase switch pauses and counts.
    """

    arrival_s: float
    phase_mode: int
    switch_count: int = 0
    mode_since_s: float = 0.0
    pause_until_s: float = -math.inf
    next_trial_s: float = -math.inf
    single_phase_terminal: int | None = None
    last_current_a: float = 0.0
    has_charged: bool = False


@dataclass(frozen=True, slots=True)
class AllocatorState:
    """State carried from one allocation to the next.

    Parameters
    ----------
    time_s : float
        Time of the allocation that produced it [s].
    sessions : Mapping[str, SessionState]
        Per charger id.
    """

    time_s: float = 0.0
    sessions: Mapping[str, SessionState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """Outcome of one allocation.

    Parameters
    ----------
    allocations : dict of str to ChargerAllocation
        Per charger id, in demand order.
    line_currents_a : tuple of float
        Charger load on supply lines L1, L2, L3 [A] (magnitudes; household excluded).
    circuit_line_currents_a : dict of str to tuple of float
        Load on each circuit's lines [A].
    available_current_a : tuple of float
        The limits used [A].
    state : AllocatorState
        Input for the next call.
    policy : str
        Name of the policy that produced it.
    """

    allocations: dict[str, ChargerAllocation]
    line_currents_a: tuple[float, float, float]
    circuit_line_currents_a: dict[str, tuple[float, float, float]]
    available_current_a: tuple[float, float, float]
    state: AllocatorState
    policy: str = "reference"


def available_current_from_fuse(
    main_fuse_a: float,
    household_current_a: Sequence[float] = (0.0, 0.0, 0.0),
    margin_a: float = 0.0,
) -> tuple[float, float, float]:
    """Current left for the chargers on each line when the household shares the main fuse.

    HAN meters report per-line current magnitudes without angles, so subtracting magnitudes is
    the safe choice: a phasor sum is never larger than the sum of magnitudes.

    Parameters
    ----------
    main_fuse_a : float
        Main fuse rating [A].
    household_current_a : sequence of float
        Household (non-charger) current per line L1, L2, L3 from the HAN port [A].
    margin_a : float
        Safety margin kept free on every line [A].

    Returns
    -------
    tuple of float
        Available current per line [A], never negative.
    """
    return tuple(  # type: ignore[return-value]
        max(0.0, main_fuse_a - margin_a - float(h)) for h in household_current_a
    )


# --------------------------------------------------------------------------------------------
# Constraint network: installation lines 0..2, then three lines per circuit.
# --------------------------------------------------------------------------------------------

_Path = tuple[tuple[int, complex], ...]


class _Network:
    """Constraint layout of one set of circuits, with per-charger paths memoised."""

    __slots__ = ("labels", "circuit_limits", "circuit_bases", "circuit_ids", "_paths")

    def __init__(self, circuits: tuple[CircuitLimit, ...]) -> None:
        by_id = {c.circuit_id: c for c in circuits}
        if len(by_id) != len(circuits):
            raise ValueError("circuit ids must be unique")
        labels = [f"fuse_{name}" for name in LINE_NAMES]
        limits: list[float] = []
        base_of: dict[str, int] = {}
        for k, circuit in enumerate(circuits):
            base_of[circuit.circuit_id] = 3 + 3 * k
            labels.extend([f"circuit:{circuit.circuit_id}"] * 3)
            limits.extend([float(circuit.max_current_a)] * 3)
        bases: dict[str | None, tuple[int, ...]] = {None: ()}
        for circuit in circuits:
            chain: list[int] = []
            seen: set[str] = set()
            node: str | None = circuit.circuit_id
            while node is not None:
                if node in seen:
                    raise ValueError(f"circuit parents form a cycle at {node!r}")
                if node not in by_id:
                    raise ValueError(f"unknown parent circuit {node!r}")
                seen.add(node)
                chain.append(base_of[node])
                node = by_id[node].parent_id
            bases[circuit.circuit_id] = tuple(chain)
        self.labels = tuple(labels)
        self.circuit_limits = tuple(limits)
        self.circuit_bases = bases
        self.circuit_ids = tuple(c.circuit_id for c in circuits)
        self._paths: dict[tuple, tuple[int, _Path, tuple[str, ...]]] = {}

    def limits(self, available_current_a: Sequence[float]) -> list[float]:
        if len(available_current_a) != 3:
            raise ValueError("available_current_a needs one value per line L1, L2, L3")
        return [max(0.0, float(a)) for a in available_current_a] + list(self.circuit_limits)

    def path(
        self, circuit_id: str | None, rotation: str, phases: int, network_type: str, terminal: int
    ) -> tuple[int, _Path, tuple[str, ...]]:
        key = (circuit_id, rotation, phases, network_type, terminal)
        hit = self._paths.get(key)
        if hit is not None:
            return hit
        if circuit_id not in self.circuit_bases:
            raise ValueError(f"charger on unknown circuit {circuit_id!r}")
        # Each line's phasors are kept in that line's own voltage frame: magnitudes are the
        # same, and on TN every weight becomes a real 1, which the fill loop exploits.
        weights = line_weights(rotation, phases, network_type, terminal)
        used = [
            (line, _own_frame(weights[line], line))
            for line in charger_lines(rotation, phases, network_type, terminal)
        ]
        path = [(line, w) for line, w in used]
        for base in self.circuit_bases[circuit_id]:
            path.extend((base + line, w) for line, w in used)
        entry = (terminal, tuple(path), tuple(LINE_NAMES[line] for line, _ in used))
        self._paths[key] = entry
        return entry


def _own_frame(phasor: complex, line: int) -> complex:
    """Rotate a line-current phasor into its line's voltage frame (exact 1 when in phase)."""
    z = phasor * LINE_VOLTAGE_UNIT[line].conjugate()
    if abs(z.imag) < 1e-12:
        return complex(round(z.real, 12), 0.0)
    return z


@lru_cache(maxsize=256)
def _network(circuits: tuple[CircuitLimit, ...]) -> _Network:
    return _Network(circuits)


class _Req:
    """Mutable working record of one active charger during an allocation."""

    __slots__ = (
        "demand", "seq", "key", "mode", "terminal", "path", "lines", "options", "lo", "cap",
        "cap_label", "x", "binding", "live", "sticky_terminal", "path_key", "switch_count", "mode_since", "pause_until",
        "next_trial", "has_charged", "refused", "trial", "switch_paused",
    )  # fmt: skip

    def __init__(self, demand: ChargerDemand, seq: int, mode: int, cap: float, cap_label: str):
        self.demand = demand
        self.seq = seq
        self.key = (demand.arrival_s, demand.charger_id)
        self.mode = mode
        self.terminal: int | None = None
        self.path: _Path = ()
        self.lines: tuple[str, ...] = ()
        self.options: tuple[tuple[int, _Path, tuple[str, ...]], ...] | None = None
        self.lo = float(demand.min_current_a)
        self.cap = cap
        self.cap_label = cap_label
        self.x = 0.0
        self.binding = "min_current_admission"
        self.live = False
        self.sticky_terminal: int | None = None
        self.path_key: tuple[int, int | None] | None = None
        self.switch_count = 0
        self.mode_since = 0.0
        self.pause_until = -math.inf
        self.next_trial = -math.inf
        self.has_charged = False
        self.refused = False
        self.trial = False
        self.switch_paused = False


def _set_paths(r: _Req, net: _Network, network_type: str) -> None:
    r.terminal = r.sticky_terminal
    if r.path_key == (r.mode, r.terminal):
        if r.options is not None:
            _, r.path, r.lines = r.options[0]
        return
    r.path_key = (r.mode, r.terminal)
    d = r.demand
    if d.dynamic_phase_selection and r.mode in (1, 2) and r.terminal is None:
        r.options = tuple(
            net.path(d.circuit_id, d.phase_rotation, r.mode, network_type, t) for t in range(3)
        )
        _, r.path, r.lines = r.options[0]
        return
    r.options = None
    _, r.path, r.lines = net.path(
        d.circuit_id, d.phase_rotation, r.mode, network_type, r.terminal or 0
    )


def _step(load: complex, rate: complex, limit: float) -> float:
    """Largest t ≥ 0 with |load + t·rate| ≤ limit (rate ≠ 0, magnitude monotone in t)."""
    a = rate.real * rate.real + rate.imag * rate.imag
    if a == 0.0:
        return math.inf
    c = load.real * load.real + load.imag * load.imag - limit * limit
    if c >= 0.0:
        return 0.0
    b = load.real * rate.real + load.imag * rate.imag
    return (-b + math.sqrt(b * b - a * c)) / a


def _fits(loads: list[complex], limits: list[float], path: _Path, amps: float) -> bool:
    for c, w in path:
        z = loads[c] + w * amps
        lim = limits[c] + EPS_A
        if z.real * z.real + z.imag * z.imag > lim * lim:
            return False
    return True


def _min_headroom(loads: list[complex], limits: list[float], path: _Path, amps: float) -> float:
    return min(limits[c] - abs(loads[c] + w * amps) for c, w in path)


def _admit(ordered: list[_Req], loads: list[complex], limits: list[float]) -> list[_Req]:
    """First-fit admission at minimum current, in the given order."""
    admitted = []
    for r in ordered:
        if r.options is not None:
            best = None
            best_room = -math.inf
            for option in r.options:
                if _fits(loads, limits, option[1], r.lo):
                    room = _min_headroom(loads, limits, option[1], r.lo)
                    if room > best_room + 1e-12:
                        best, best_room = option, room
            if best is None:
                continue
            r.terminal, r.path, r.lines = best
        elif not _fits(loads, limits, r.path, r.lo):
            continue
        for c, w in r.path:
            loads[c] += w * r.lo
        r.x = r.lo
        r.binding = "level"
        admitted.append(r)
    return admitted


def _water_fill(
    admitted: list[_Req], loads: list[complex], limits: list[float], labels: tuple[str, ...]
) -> None:
    """Raise admitted currents together (max-min fair) until caps or constraints stop them."""
    n = len(limits)
    rate = [0j] * n
    count = [0] * n
    members: list[list[_Req]] = [[] for _ in range(n)]
    touched: list[int] = []
    waiting = []
    for r in admitted:
        if r.cap <= r.x + EPS_A:
            r.binding = r.cap_label
        else:
            waiting.append(r)
    if not waiting:
        return
    waiting.sort(key=lambda r: r.x)
    heap: list[tuple[float, int, _Req]] = []
    live = 0
    wi = 0
    nw = len(waiting)
    level = waiting[0].x

    def freeze(r: _Req, amps: float, label: str) -> None:
        r.x = amps
        r.binding = label
        r.live = False
        for c, w in r.path:
            count[c] -= 1
            rate[c] = rate[c] - w if count[c] else 0j

    while True:
        while wi < nw and waiting[wi].x <= level + EPS_A:
            r = waiting[wi]
            wi += 1
            r.live = True
            live += 1
            heapq.heappush(heap, (r.cap, r.seq, r))
            for c, w in r.path:
                if not members[c]:
                    touched.append(c)
                rate[c] += w
                count[c] += 1
                members[c].append(r)
        if live == 0:
            if wi < nw:
                level = waiting[wi].x
                continue
            break
        while not heap[0][2].live:
            heapq.heappop(heap)
        step = heap[0][0] - level
        if wi < nw:
            step = min(step, waiting[wi].x - level)
        con_steps = []
        for c in touched:
            if count[c]:
                z = loads[c]
                b = rate[c]
                lim = limits[c]
                if b.imag == 0.0 and z.imag == 0.0:  # TN: all contributions in phase
                    s = (lim - z.real) / b.real if z.real < lim else 0.0
                else:
                    s = _step(z, b, lim)
                con_steps.append((c, s))
                if s < step:
                    step = s
        if step > 0.0:
            for c in touched:
                if count[c]:
                    loads[c] += rate[c] * step
            level += step
        while heap and heap[0][0] <= level + EPS_A:
            _, _, r = heapq.heappop(heap)
            if r.live:
                freeze(r, r.cap, r.cap_label)
                live -= 1
        for c, s in sorted(con_steps):
            if s <= step + EPS_A:
                for r in members[c]:
                    if r.live:
                        freeze(r, level, labels[c])
                        live -= 1


def _greedy_fill(
    ordered: list[_Req], loads: list[complex], limits: list[float], labels: tuple[str, ...]
) -> None:
    """Top each charger up as far as it can, one after another in the given order."""
    for r in ordered:
        room = r.cap - r.x
        label = r.cap_label
        for c, w in r.path:
            s = _step(loads[c], w, limits[c])
            if s < room:
                room, label = s, labels[c]
        room = max(room, 0.0)
        for c, w in r.path:
            loads[c] += w * room
        r.x += room
        r.binding = label


def _solve(
    reqs: list[_Req],
    net: _Network,
    limits: list[float],
    network_type: str,
    policy: str,
) -> list[complex]:
    """One allocation pass over fixed phase modes; returns constraint phasor loads.

    ``reqs`` must already be in arrival order (``_Req.key``).
    """
    loads = [0j] * len(limits)
    for r in reqs:
        r.x = 0.0
        r.binding = "min_current_admission"
        r.live = False
        _set_paths(r, net, network_type)
    labels = net.labels
    if policy == "reference":
        first = [r for r in reqs if r.demand.priority]
        rest = [r for r in reqs if not r.demand.priority] if first else reqs
        for group in (first, rest):
            if group:
                _water_fill(_admit(group, loads, limits), loads, limits, labels)
    elif policy == "equal_share":
        _water_fill(_admit(reqs, loads, limits), loads, limits, labels)
    elif policy == "priority":
        ordered = [r for r in reqs if r.demand.priority] + [
            r for r in reqs if not r.demand.priority
        ]
        _greedy_fill(_admit(ordered, loads, limits), loads, limits, labels)
    elif policy == "first_come":
        for r in reqs:
            admitted = _admit([r], loads, limits)
            if admitted:
                _greedy_fill(admitted, loads, limits, labels)
    else:
        raise ValueError(f"unknown policy {policy!r}")
    return loads


# --------------------------------------------------------------------------------------------
# Public policies
# --------------------------------------------------------------------------------------------


def _arrival_key(r: _Req) -> tuple[float, str]:
    return r.key


def _cap_of(demand: ChargerDemand) -> tuple[float, str]:
    if demand.charger_max_current_a <= demand.car_max_current_a:
        return float(demand.charger_max_current_a), "charger_max"
    return float(demand.car_max_current_a), "car_max"


def _switch_phases(reqs: list[_Req], cfg: PhaseSwitchConfig, now: float) -> tuple[list[_Req], bool]:
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


def _settle_trials(reqs: list[_Req], cfg: PhaseSwitchConfig, now: float) -> bool:
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
    net = _network(site.circuits)
    limits = net.limits(site.available_current_a)
    cfg = site.phase_switch
    switching = policy == "reference" and cfg.enabled
    sessions = state.sessions if state is not None else {}

    allocations: dict[str, ChargerAllocation] = {}
    new_sessions: dict[str, SessionState] = {}
    outcome: list = []  # per demand: a _Req, or a finished (allocation, session) pair
    reqs: list[_Req] = []
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
        r = _Req(d, seq, mode, cap, cap_label)
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
            _set_paths(r, net, network_type)
            r.binding = cap_label
            r.switch_paused = True  # excluded from solving; reported paused below
        elif switching and r.pause_until > now:
            _set_paths(r, net, network_type)
            r.binding = "phase_switch_pause"
            r.switch_paused = True
        reqs.append(r)
        outcome.append(r)

    reqs.sort(key=_arrival_key)
    solvable = [r for r in reqs if not r.switch_paused]
    loads = _solve(solvable, net, limits, network_type, policy)
    if switching:
        solvable, changed = _switch_phases(solvable, cfg, now)
        if changed:
            loads = _solve(solvable, net, limits, network_type, policy)
            if _settle_trials(solvable, cfg, now):
                solvable = [r for r in solvable if not r.switch_paused]
                loads = _solve(solvable, net, limits, network_type, policy)

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
