"""The allocator's solver: the constraint network of installation and circuit lines,
admission at minimum current, and max-min fair water-filling (exact phasors on IT).

Used by the policies in :mod:`firmware_ref.allocator`; nothing here is public API.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from functools import lru_cache

from firmware_ref.allocation import EPS_A, ChargerDemand, CircuitLimit
from firmware_ref.grid import (
    LINE_NAMES,
    LINE_VOLTAGE_UNIT,
    charger_lines,
    line_weights,
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
def constraint_network(circuits: tuple[CircuitLimit, ...]) -> _Network:
    return _Network(circuits)


class WorkingRequest:
    """Mutable working record of one active charger during an allocation."""

    __slots__ = (
        "demand", "seq", "key", "mode", "terminal", "path", "lines", "options", "lo", "cap",
        "cap_label", "x", "binding", "live", "sticky_terminal", "path_key", "switch_count",
        "mode_since", "pause_until", "next_trial", "has_charged", "refused", "trial",
        "switch_paused",
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


def set_paths(r: WorkingRequest, net: _Network, network_type: str) -> None:
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


def _admit(ordered: list[WorkingRequest], loads: list[complex], limits: list[float]) -> list[WorkingRequest]:
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
    admitted: list[WorkingRequest], loads: list[complex], limits: list[float], labels: tuple[str, ...]
) -> None:
    """Raise admitted currents together (max-min fair) until caps or constraints stop them."""
    n = len(limits)
    rate = [0j] * n
    count = [0] * n
    members: list[list[WorkingRequest]] = [[] for _ in range(n)]
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
    heap: list[tuple[float, int, WorkingRequest]] = []
    live = 0
    wi = 0
    nw = len(waiting)
    level = waiting[0].x

    def freeze(r: WorkingRequest, amps: float, label: str) -> None:
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
    ordered: list[WorkingRequest], loads: list[complex], limits: list[float], labels: tuple[str, ...]
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


def solve(
    reqs: list[WorkingRequest],
    net: _Network,
    limits: list[float],
    network_type: str,
    policy: str,
) -> list[complex]:
    """One allocation pass over fixed phase modes; returns constraint phasor loads.

    ``reqs`` must already be in arrival order (``WorkingRequest.key``).
    """
    loads = [0j] * len(limits)
    for r in reqs:
        r.x = 0.0
        r.binding = "min_current_admission"
        r.live = False
        set_paths(r, net, network_type)
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
