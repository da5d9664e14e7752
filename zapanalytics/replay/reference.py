"""Drive an allocator policy through the recorded demands, event by event.

The allocator (:mod:`firmware_ref.allocator`) is called whenever the set of sessions asking
for current changes (an authorisation, a car full, a car unplugged), when the available
current moves (APM), and when one of its phase-switch timers runs out: the same moments
the charger firmware reallocates. Sessions come and go at their *recorded* times, so the
result is what the policy would have allocated given what really happened; to let the
policy change what happens (cars filling sooner or later) use :mod:`zapanalytics.replay.whatif`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from firmware_ref.allocator import POLICIES, AllocatorState, PhaseSwitchConfig, SiteLimits
from zapanalytics.replay.demands import (
    LimitSeries,
    demand_of,
    detect_phase_switching,
    session_demands,
    site_limits,
)
from zapanalytics.replay.intervals import epoch_s, from_epoch_s, hold_steps
from zapanalytics.replay.recording import Recording

_RELEASE, _LIMIT, _ARRIVAL, _WAKE = 0, 1, 2, 3


@dataclass
class AllocationReplay:
    """Allocations a policy gives the recorded demands.

    Attributes
    ----------
    allocations : polars.DataFrame
        Step frame per charger: ``charger_id, start_utc, end_utc, current_a, phases,
        lines, binding_constraint``; chargers without a session hold 0 A.
    runs : polars.DataFrame
        One row per allocator call: ``ts_utc, active_chargers, available_l{n}_a,
        allocated_l{n}_a``.
    policy : str
        Policy name.
    """

    allocations: pl.DataFrame
    runs: pl.DataFrame
    policy: str


def replay_allocations(
    recording: Recording,
    *,
    policy: str = "reference",
    demands: pl.DataFrame | None = None,
    limits: LimitSeries | None = None,
    phase_switch: PhaseSwitchConfig | None = None,
    dynamic_phase_selection: bool = True,
    apm_margin_a: float = 1.0,
) -> AllocationReplay:
    """Allocate the recorded demands with ``policy`` at every recorded event.

    Parameters
    ----------
    recording : Recording
        The recording.
    policy : str
        A name in :data:`firmware_ref.allocator.POLICIES`.
    demands : polars.DataFrame, optional
        :func:`~zapanalytics.replay.demands.session_demands` (built when not given).
    limits : LimitSeries, optional
        Available current over time (default: the recorded site, see
        :func:`~zapanalytics.replay.demands.site_limits`).
    phase_switch : PhaseSwitchConfig, optional
        Default: enabled when the recording shows switching.
    dynamic_phase_selection : bool
        Chargers pick the terminal of a single-phase charge.
    apm_margin_a : float
        Margin kept free under APM [A] (when ``limits`` is built here).

    Returns
    -------
    AllocationReplay
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    allocate = POLICIES[policy]
    demands = session_demands(recording) if demands is None else demands
    limits = site_limits(recording, apm_margin_a=apm_margin_a) if limits is None else limits
    switch = detect_phase_switching(recording) if phase_switch is None else phase_switch
    network = recording.installation.network_type

    rows = demands.with_columns(
        pl.Series("arrival_s", epoch_s(demands["arrival_utc"])),
        pl.Series("release_s", epoch_s(demands["release_utc"])),
    ).to_dicts()
    heap: list[tuple[float, int, int]] = []
    for index, row in enumerate(rows):
        if row["release_s"] > row["arrival_s"]:
            heapq.heappush(heap, (row["arrival_s"], _ARRIVAL, index))
            heapq.heappush(heap, (row["release_s"], _RELEASE, index))
    for k in range(1, limits.t_s.size):
        heapq.heappush(heap, (float(limits.t_s[k]), _LIMIT, k))
    charger_order = {cid: i for i, cid in enumerate(recording.chargers["charger_id"])}

    active: dict[str, object] = {}
    state: AllocatorState | None = None
    available = tuple(float(x) for x in limits.available_a[0])
    last: dict[str, tuple[float, int, str]] = {}
    log_t: list[float] = []
    log_charger: list[str] = []
    log_current: list[float] = []
    log_phases: list[int] = []
    log_lines: list[str] = []
    log_binding: list[str] = []
    run_t: list[float] = []
    run_active: list[int] = []
    run_available: list[tuple[float, float, float]] = []
    run_allocated: list[tuple[float, float, float]] = []
    wakes: set[float] = set()

    def log(t: float, charger: str, amps: float, phases: int, lines: str, binding: str) -> None:
        key = (round(amps, 9), phases, lines)
        if last.get(charger) == key:
            return
        last[charger] = key
        log_t.append(t)
        log_charger.append(charger)
        log_current.append(amps)
        log_phases.append(phases)
        log_lines.append(lines)
        log_binding.append(binding)

    while heap:
        t = heap[0][0]
        changed = False
        while heap and heap[0][0] == t:
            _, kind, index = heapq.heappop(heap)
            if kind == _RELEASE:
                charger = rows[index]["charger_id"]
                demand = active.get(charger)
                if demand is not None and demand.arrival_s == rows[index]["arrival_s"]:
                    del active[charger]
                    log(t, charger, 0.0, 0, "", "inactive")
                    changed = True
            elif kind == _ARRIVAL:
                row = rows[index]
                active[row["charger_id"]] = demand_of(
                    row, dynamic_phase_selection=dynamic_phase_selection
                )
                changed = True
            elif kind == _LIMIT:
                available = tuple(float(x) for x in limits.available_a[index])
                changed = changed or bool(active)
            else:
                wakes.discard(t)
                changed = changed or bool(active)
        if not changed:
            continue
        site = SiteLimits(available_current_a=available, network_type=network, phase_switch=switch)
        order = sorted(active, key=lambda c: charger_order.get(c, math.inf))
        result = allocate(site, [active[c] for c in order], state, t)
        state = result.state
        for charger, alloc in result.allocations.items():
            log(t, charger, float(alloc.current_a), int(alloc.phases), ",".join(alloc.lines),
                alloc.binding_constraint)  # fmt: skip
        run_t.append(t)
        run_active.append(len(order))
        run_available.append(available)
        run_allocated.append(result.line_currents_a)
        wake = math.inf
        for sess in result.state.sessions.values():
            for moment in (sess.pause_until_s, sess.next_trial_s):
                if t < moment < wake:
                    wake = moment
        if wake < math.inf and wake not in wakes:
            wakes.add(wake)
            heapq.heappush(heap, (wake, _WAKE, -1))

    return AllocationReplay(
        allocations=_allocation_steps(
            recording, log_t, log_charger, log_current, log_phases, log_lines, log_binding
        ),
        runs=_runs_frame(run_t, run_active, run_available, run_allocated),
        policy=policy,
    )


def _allocation_steps(
    recording: Recording,
    t: list[float],
    charger: list[str],
    current: list[float],
    phases: list[int],
    lines: list[str],
    binding: list[str],
) -> pl.DataFrame:
    ids = recording.chargers["charger_id"].to_list()
    start = epoch_s(pl.Series([recording.start_utc]))[0]
    points = pl.DataFrame(
        {
            "charger_id": pl.Series(ids + charger, dtype=pl.String),
            "ts_utc": from_epoch_s("ts_utc", np.asarray([start] * len(ids) + t, dtype=float)),
            "current_a": pl.Series([0.0] * len(ids) + current, dtype=pl.Float64),
            "phases": pl.Series([0] * len(ids) + phases, dtype=pl.Int8),
            "lines": pl.Series([""] * len(ids) + lines, dtype=pl.String),
            "binding_constraint": pl.Series(["inactive"] * len(ids) + binding, dtype=pl.String),
        }
    )
    # Several calls at one time stamp: the last one holds.
    points = points.group_by("charger_id", "ts_utc", maintain_order=True).last()
    return hold_steps(points, by=["charger_id"], end_utc=recording.end_utc)


def _runs_frame(
    t: list[float],
    active: list[int],
    available: list[tuple[float, float, float]],
    allocated: list[tuple[float, float, float]],
) -> pl.DataFrame:
    avail = np.asarray(available, dtype=float).reshape(-1, 3)
    alloc = np.asarray(allocated, dtype=float).reshape(-1, 3)
    return pl.DataFrame(
        {
            "ts_utc": from_epoch_s("ts_utc", np.asarray(t, dtype=float)),
            "active_chargers": pl.Series(active, dtype=pl.Int32),
            **{f"available_l{k + 1}_a": avail[:, k] for k in range(3)},
            **{f"allocated_l{k + 1}_a": np.round(alloc[:, k], 6) for k in range(3)},
        }
    )
