"""What if the installation had another fuse, more or fewer chargers, another policy?

The recorded sessions (who arrived when, how much energy they took or asked for, what
their car can draw, when they left) are run again through an allocator policy in an
event-driven simulation: cars draw what they are allocated until their energy is in or
they leave; the allocation is recomputed whenever a car arrives, becomes full or leaves,
or the available current moves (APM). With fewer chargers than sessions at a time, cars
queue for a free charger (first come, first plugged) and leave at their recorded time
whether or not they got one.

Each scenario reports energy not delivered by departure, the peak line current and power,
and the Norwegian capacity charge step (*kapasitetsledd*: the mean of the three highest
hourly energies on three different days of the month). The step table is a plain
parameter; prices belong to the billing tariffs.

Energy asked for: a session that ended with the car full asked for what it got. A session
still charging when the car left asked for at least what it got; the recording cannot say
how much more, so its request is a lower bound (``request_is_lower_bound``).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from firmware_ref.allocator import POLICIES, AllocatorState, PhaseSwitchConfig, SiteLimits
from firmware_ref.grid import CYCLIC_ROTATIONS, is_neutral_network
from zapanalytics.replay.demands import (
    LimitSeries,
    demand_of,
    detect_phase_switching,
    session_demands,
    site_limits,
)
from zapanalytics.replay.intervals import UTC_DTYPE, epoch_s, from_epoch_s
from zapanalytics.replay.power import (
    CAPACITY_STEPS_KW,
    capacity_steps,
    effective_voltage,
    household_power,
    recorded_power,
    site_hourly,
)
from zapanalytics.replay.recording import NOMINAL_VOLTAGE_V, Recording

#: A session counts as not full when it misses more than this [kWh] and more than
#: :data:`REQUEST_TOLERANCE` of its request: recorded energies come from meters at the real
#: voltage, the what-if from currents at a calibrated one.
ENERGY_TOLERANCE_KWH = 0.01
REQUEST_TOLERANCE = 0.005

_DEPART, _FULL, _LIMIT, _ARRIVE, _WAKE = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Scenario:
    """One what-if.

    Parameters
    ----------
    name : str
        Label in reports.
    policy : str
        ``reference``, ``equal_share``, ``first_come`` or ``priority``.
    main_fuse_a : float, optional
        Another main fuse [A] (the headroom left for other loads is kept).
    n_chargers : int, optional
        Another number of chargers.
    apm : bool, optional
        Follow the household load (default: as recorded).
    apm_budget_kw : float, optional
        APM power budget for the whole installation [kW].
    """

    name: str
    policy: str = "reference"
    main_fuse_a: float | None = None
    n_chargers: int | None = None
    apm: bool | None = None
    apm_budget_kw: float | None = None


@dataclass
class ScenarioResult:
    """Outcome of a scenario (or of the recording itself).

    Attributes
    ----------
    scenario : Scenario
        What was run.
    sessions : polars.DataFrame
        Per session: ``session_id, user_id, charger_id, arrival_utc, plugged_utc,
        first_current_utc, full_utc, departure_utc, energy_requested_kwh,
        energy_delivered_kwh, energy_not_delivered_kwh, request_is_lower_bound, wait_s``.
    load : polars.DataFrame
        Step frame of the chargers' load: ``start_utc, end_utc, chargers_l{n}_a, power_w``.
    summary : dict
        Headline figures (see :func:`summarise`).
    capacity : polars.DataFrame
        Per local month: ``month, top3_mean_kw, step_index, step_label`` (and
        ``charge_nok`` when prices are given).
    """

    scenario: Scenario
    sessions: pl.DataFrame
    load: pl.DataFrame
    summary: dict
    capacity: pl.DataFrame = field(default_factory=pl.DataFrame)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the scenario and monthly capacity steps."""
        return {
            "scenario": asdict(self.scenario),
            **self.summary,
            "capacity_by_month": self.capacity.to_dicts(),
        }


# --------------------------------------------------------------------------------------------
# The event-driven simulation
# --------------------------------------------------------------------------------------------


def watts_per_amp(phases: int, network_type: str, voltage_v: float = NOMINAL_VOLTAGE_V) -> float:
    """Power per ampere of pilot current for a charge on ``phases`` [W/A].

    ``voltage_v`` is line-to-neutral on TN and line-to-line on IT (230 V both in Norway).
    """
    if phases <= 0:
        return 0.0
    if is_neutral_network(network_type):
        return voltage_v * phases
    return voltage_v * (math.sqrt(3.0) if phases == 3 else 1.0)


def simulate_sessions(
    sessions: pl.DataFrame,
    chargers: pl.DataFrame,
    limits: LimitSeries,
    *,
    network_type: str = "TN",
    policy: str = "reference",
    phase_switch: PhaseSwitchConfig | None = None,
    dynamic_phase_selection: bool = True,
    end_s: float | None = None,
    voltage_v: float = NOMINAL_VOLTAGE_V,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run sessions through a policy, event by event.

    Parameters
    ----------
    sessions : polars.DataFrame
        ``session_id, user_id, charger_id`` (preferred charger), ``arrival_utc,
        departure_utc, energy_requested_kwh, phases, car_max_current_a, min_current_a``.
    chargers : polars.DataFrame
        ``charger_id, phase_rotation, max_current_a`` of the installation simulated.
    limits : LimitSeries
        Available current over time.
    network_type : str
        ``"TN"`` or ``"IT"``.
    policy : str
        Allocator policy name.
    phase_switch : PhaseSwitchConfig, optional
        Switching settings (reference policy); default off.
    dynamic_phase_selection : bool
        Chargers choose the terminal of a single-phase charge.
    end_s : float, optional
        Stop time [s since epoch]; default the last departure.
    voltage_v : float
        Supply voltage for power and energy [V] (see :func:`watts_per_amp`).

    Returns
    -------
    tuple of polars.DataFrame
        Per-session outcome and the load step frame (see :class:`ScenarioResult`).
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    allocate = POLICIES[policy]
    switch = phase_switch or PhaseSwitchConfig(enabled=False)
    rows = sessions.with_columns(
        pl.Series("arrival_s", epoch_s(sessions["arrival_utc"])),
        pl.Series("departure_s", epoch_s(sessions["departure_utc"])),
    ).to_dicts()
    n = len(rows)
    charger_ids = chargers["charger_id"].to_list()
    position = {cid: i for i, cid in enumerate(charger_ids)}
    rotation = chargers["phase_rotation"].to_list()
    charger_max = chargers["max_current_a"].to_list()
    end_s = end_s if end_s is not None else max((r["departure_s"] for r in rows), default=0.0)

    # Per-session state as plain lists: the loop touches one element at a time.
    nan = float("nan")
    plugged = [nan] * n
    first_current = [nan] * n
    full_at = [nan] * n
    delivered_wh = [0.0] * n
    assigned: list[str | None] = [None] * n
    need_wh = [max(0.0, float(r["energy_requested_kwh"] or 0.0)) * 1000.0 for r in rows]
    watts = {p: watts_per_amp(p, network_type, voltage_v) for p in (0, 1, 2, 3)}

    heap: list[tuple[float, int, int, int]] = []
    for k, r in enumerate(rows):
        if r["departure_s"] > r["arrival_s"]:
            heapq.heappush(heap, (r["arrival_s"], _ARRIVE, k, 0))
            heapq.heappush(heap, (r["departure_s"], _DEPART, k, 0))
    for j in range(1, limits.t_s.size):
        heapq.heappush(heap, (float(limits.t_s[j]), _LIMIT, j, 0))

    free = set(range(len(charger_ids)))
    queue: deque[int] = deque()
    on_charger: dict[int, int] = {}  # charger position -> session
    demands: dict[int, object] = {}  # session -> ChargerDemand (active, wants current)
    power_w = [0.0] * n
    since = [0.0] * n
    token = [0] * n
    available = tuple(float(x) for x in limits.available_a[0])
    state: AllocatorState | None = None
    wakes: set[float] = set()
    load_t: list[float] = []
    load_lines: list[tuple[float, float, float]] = []
    load_power: list[float] = []

    def integrate(k: int, t: float) -> None:
        if power_w[k] > 0.0:
            delivered_wh[k] += power_w[k] * (t - since[k]) / 3600.0
        since[k] = t

    def plug(k: int, charger: int, t: float) -> None:
        free.discard(charger)
        on_charger[charger] = k
        plugged[k] = t
        assigned[k] = charger_ids[charger]
        since[k] = t
        if need_wh[k] > 0.0:
            r = rows[k]
            demands[k] = demand_of(
                {
                    **r,
                    "charger_id": charger_ids[charger],
                    "phase_rotation": rotation[charger],
                    "charger_max_current_a": charger_max[charger],
                    "car_max_current_a": min(float(r["car_max_current_a"]),
                                             float(charger_max[charger])),
                    "arrival_s": t,
                },
                dynamic_phase_selection=dynamic_phase_selection,
            )  # fmt: skip

    def release(k: int, t: float) -> None:
        integrate(k, t)
        power_w[k] = 0.0
        token[k] += 1
        demands.pop(k, None)

    while heap:
        t = heap[0][0]
        if t > end_s:
            break
        changed = False
        while heap and heap[0][0] == t:
            _, kind, k, tok = heapq.heappop(heap)
            if kind == _DEPART:
                if assigned[k] is None:
                    queue_remove(queue, k)
                    continue
                was_active = k in demands
                release(k, t)
                charger = position[assigned[k]]
                del on_charger[charger]
                free.add(charger)
                changed = changed or was_active
                while queue and free:
                    waiting = queue.popleft()
                    plug(waiting, min(free), t)
                    changed = True
            elif kind == _FULL:
                if tok == token[k] and k in demands:
                    release(k, t)
                    delivered_wh[k] = need_wh[k]
                    full_at[k] = t
                    changed = True
            elif kind == _ARRIVE:
                preferred = position.get(rows[k]["charger_id"])
                if preferred is not None and preferred in free:
                    plug(k, preferred, t)
                elif free:
                    plug(k, min(free), t)
                else:
                    queue.append(k)
                    continue
                changed = changed or k in demands
            elif kind == _LIMIT:
                available = tuple(float(x) for x in limits.available_a[k])
                changed = changed or bool(demands)
            else:
                wakes.discard(t)
                changed = changed or bool(demands)
        if not changed:
            continue
        order = sorted(demands, key=lambda s: position[assigned[s]])
        site = SiteLimits(available_current_a=available, network_type=network_type,
                          phase_switch=switch)  # fmt: skip
        result = allocate(site, [demands[s] for s in order], state, t)
        state = result.state
        total_power = 0.0
        for s in order:
            alloc = result.allocations[assigned[s]]
            power = alloc.current_a * watts[alloc.phases]
            total_power += power
            if power == power_w[s]:
                continue  # still drawing the same: its "full" event stands
            integrate(s, t)
            power_w[s] = power
            token[s] += 1
            if power > 0.0:
                if first_current[s] != first_current[s]:
                    first_current[s] = t
                remaining = need_wh[s] - delivered_wh[s]
                heapq.heappush(heap, (t + max(remaining, 0.0) / power * 3600.0, _FULL, s,
                                      token[s]))  # fmt: skip
        load_t.append(t)
        load_lines.append(result.line_currents_a)
        load_power.append(total_power)
        wake = math.inf
        for sess in result.state.sessions.values():
            for moment in (sess.pause_until_s, sess.next_trial_s):
                if t < moment < wake:
                    wake = moment
        if wake < math.inf and wake not in wakes:
            wakes.add(wake)
            heapq.heappush(heap, (wake, _WAKE, -1, 0))

    for k in list(demands):
        release(k, min(end_s, rows[k]["departure_s"]))
    outcome = _session_outcome(
        sessions, rows, assigned, np.asarray(plugged), np.asarray(first_current),
        np.asarray(full_at), np.asarray(delivered_wh), np.asarray(need_wh),
    )  # fmt: skip
    return outcome, _load_frame(load_t, load_lines, load_power, end_s)


def queue_remove(queue: deque[int], k: int) -> None:
    """Drop session ``k`` from the waiting queue (it left before a charger came free)."""
    try:
        queue.remove(k)
    except ValueError:
        pass


def _session_outcome(
    sessions: pl.DataFrame,
    rows: list[dict],
    assigned: list[str | None],
    plugged: np.ndarray,
    first_current: np.ndarray,
    full_at: np.ndarray,
    delivered_wh: np.ndarray,
    need_wh: np.ndarray,
) -> pl.DataFrame:
    def times(name: str, values: np.ndarray) -> pl.Series:
        micros = pl.Series(name, np.round(np.nan_to_num(values) * 1e6).astype(np.int64))
        missing = pl.Series(np.isnan(values))
        return (
            pl.select(pl.when(missing).then(None).otherwise(micros))
            .to_series()
            .cast(UTC_DTYPE)
            .alias(name)
        )

    delivered = np.minimum(delivered_wh, need_wh) / 1000.0
    requested = need_wh / 1000.0
    arrival = np.array([r["arrival_s"] for r in rows])
    started = np.where(np.isnan(first_current), np.array([r["departure_s"] for r in rows]),
                       first_current)  # fmt: skip
    lower_bound = (
        sessions["request_is_lower_bound"]
        if "request_is_lower_bound" in sessions.columns
        else pl.Series([False] * len(rows))
    )
    return pl.DataFrame(
        {
            "session_id": sessions["session_id"],
            "user_id": sessions["user_id"],
            "charger_id": pl.Series(assigned, dtype=pl.String),
            "arrival_utc": sessions["arrival_utc"],
            "plugged_utc": times("plugged_utc", plugged),
            "first_current_utc": times("first_current_utc", first_current),
            "full_utc": times("full_utc", full_at),
            "departure_utc": sessions["departure_utc"],
            "energy_requested_kwh": np.round(requested, 6),
            "energy_delivered_kwh": np.round(delivered, 6),
            "energy_not_delivered_kwh": np.round(np.clip(requested - delivered, 0.0, None), 6),
            "request_is_lower_bound": lower_bound,
            "wait_s": np.round(np.clip(started - arrival, 0.0, None), 3),
        }
    )


def _load_frame(
    t: list[float], lines: list[tuple[float, float, float]], power: list[float], end_s: float
) -> pl.DataFrame:
    times = np.asarray(t, dtype=float)
    values = np.asarray(lines, dtype=float).reshape(-1, 3)
    # No session, no allocation: an empty load series, not one end without a start.
    ends = np.append(times[1:], max(end_s, times[-1])) if times.size else times
    frame = pl.DataFrame(
        {
            "start_utc": from_epoch_s("start_utc", times),
            "end_utc": from_epoch_s("end_utc", ends),
            **{f"chargers_l{k + 1}_a": np.round(values[:, k], 6) for k in range(3)},
            "power_w": np.round(np.asarray(power, dtype=float), 3),
        }
    )
    # Several allocations at one instant: the last holds.
    return frame.filter(pl.col("end_utc") > pl.col("start_utc"))


# --------------------------------------------------------------------------------------------
# Scenarios side by side
# --------------------------------------------------------------------------------------------


def scenario_sessions(recording: Recording, demands: pl.DataFrame | None = None) -> pl.DataFrame:
    """The recorded sessions as what-if inputs (requests = energy delivered, see module)."""
    demands = session_demands(recording) if demands is None else demands
    return demands.with_columns(
        pl.col("energy_kwh").fill_null(0.0).alias("energy_requested_kwh"),
        (~pl.col("full")).alias("request_is_lower_bound"),
    )


def scenario_chargers(recording: Recording, n_chargers: int | None) -> pl.DataFrame:
    """The recorded chargers, cut to ``n_chargers`` or extended with new ones whose phase
    rotations continue the cyclic spread."""
    chargers = recording.chargers.select("charger_id", "phase_rotation", "max_current_a")
    if n_chargers is None or n_chargers == chargers.height:
        return chargers
    if n_chargers < 1:
        raise ValueError("a scenario needs at least one charger")
    if n_chargers < chargers.height:
        return chargers.head(n_chargers)
    extra = n_chargers - chargers.height
    start = chargers.height
    most = float(chargers["max_current_a"].max() or 32.0)
    added = pl.DataFrame(
        {
            "charger_id": [f"added-{k + 1:03d}" for k in range(extra)],
            "phase_rotation": [CYCLIC_ROTATIONS[(start + k) % 3] for k in range(extra)],
            "max_current_a": [most] * extra,
        }
    )
    return pl.concat([chargers, added])


def run_scenario(
    recording: Recording,
    scenario: Scenario,
    *,
    sessions: pl.DataFrame | None = None,
    apm_margin_a: float = 1.0,
    household: pl.DataFrame | None = None,
    steps_kw: Sequence[float] = CAPACITY_STEPS_KW,
    prices_nok_per_month: Sequence[float] | None = None,
    voltage_v: float | None = None,
) -> ScenarioResult:
    """Run one scenario on the recorded sessions.

    Parameters
    ----------
    recording : Recording
        The recording (site, chargers, sessions).
    scenario : Scenario
        What to change.
    sessions : polars.DataFrame, optional
        :func:`scenario_sessions` (built when not given).
    apm_margin_a : float
        Margin kept free under APM [A].
    household : polars.DataFrame, optional
        Household power step frame (``start_utc, end_utc, power_w``) added to the
        chargers' load for the capacity step (default: estimated from HAN when present).
    steps_kw, prices_nok_per_month
        Capacity step table (see :func:`zapanalytics.replay.power.capacity_steps`).
    voltage_v : float, optional
        Supply voltage [V]; default :func:`zapanalytics.replay.power.effective_voltage`.

    Returns
    -------
    ScenarioResult
    """
    sessions = scenario_sessions(recording) if sessions is None else sessions
    limits = site_limits(
        recording,
        main_fuse_a=scenario.main_fuse_a,
        apm=scenario.apm,
        apm_margin_a=apm_margin_a,
        budget_kw=scenario.apm_budget_kw,
    )
    chargers = scenario_chargers(recording, scenario.n_chargers)
    switch = detect_phase_switching(recording) if scenario.policy == "reference" else None
    if voltage_v is None:
        voltage_v = effective_voltage(recording)
    outcome, load = simulate_sessions(
        sessions,
        chargers,
        limits,
        network_type=recording.installation.network_type,
        policy=scenario.policy,
        phase_switch=switch,
        end_s=float(epoch_s(pl.Series([recording.end_utc]))[0]),
        voltage_v=voltage_v,
    )
    household = household_power(recording) if household is None else household
    capacity = capacity_steps(
        site_hourly(load, household),
        recording.installation.timezone,
        steps_kw=steps_kw,
        prices_nok_per_month=prices_nok_per_month,
    )
    summary = summarise(outcome, load, capacity, n_chargers=chargers.height,
                        main_fuse_a=_fuse(recording, scenario))  # fmt: skip
    return ScenarioResult(scenario, outcome, load, summary, capacity)


def _fuse(recording: Recording, scenario: Scenario) -> float | None:
    return (
        scenario.main_fuse_a
        if scenario.main_fuse_a is not None
        else (recording.installation.main_fuse_a)
    )


def summarise(
    outcome: pl.DataFrame,
    load: pl.DataFrame,
    capacity: pl.DataFrame,
    *,
    n_chargers: int,
    main_fuse_a: float | None,
) -> dict[str, Any]:
    """Headline figures of a scenario or of the recording.

    Returns
    -------
    dict
        ``chargers, main_fuse_a, sessions, sessions_not_full`` (left with energy not
        delivered), ``energy_requested_kwh, energy_delivered_kwh,
        energy_not_delivered_kwh, peak_line_current_a, peak_power_kw, mean_wait_s,
        max_wait_s, worst_capacity_step`` (label of the highest monthly step),
        ``max_top3_mean_kw``.
    """
    missed = pl.col("energy_not_delivered_kwh")
    not_full = outcome.filter(
        (missed > ENERGY_TOLERANCE_KWH)
        & (missed > REQUEST_TOLERANCE * pl.col("energy_requested_kwh"))
    )
    lines = [f"chargers_l{k}_a" for k in (1, 2, 3)]
    peak_line = (
        float(load.select(pl.max_horizontal(lines).max()).item()) if not load.is_empty() else 0.0
    )
    worst = None
    top = None
    if not capacity.is_empty():
        row = capacity.sort("top3_mean_kw", descending=True).row(0, named=True)
        worst, top = row["step_label"], row["top3_mean_kw"]
    return {
        "chargers": n_chargers,
        "main_fuse_a": main_fuse_a,
        "sessions": outcome.height,
        "sessions_not_full": not_full.height,
        "energy_requested_kwh": round(float(outcome["energy_requested_kwh"].sum()), 3),
        "energy_delivered_kwh": round(float(outcome["energy_delivered_kwh"].sum()), 3),
        "energy_not_delivered_kwh": round(float(outcome["energy_not_delivered_kwh"].sum()), 3),
        "peak_line_current_a": round(peak_line, 3),
        "peak_power_kw": round(float(load["power_w"].max() or 0.0) / 1000.0, 3),
        "mean_wait_s": round(float(outcome["wait_s"].mean() or 0.0), 1),
        "max_wait_s": round(float(outcome["wait_s"].max() or 0.0), 1),
        "worst_capacity_step": worst,
        "max_top3_mean_kw": top,
    }


def recorded_result(
    recording: Recording,
    *,
    sessions: pl.DataFrame | None = None,
    steps_kw: Sequence[float] = CAPACITY_STEPS_KW,
    prices_nok_per_month: Sequence[float] | None = None,
) -> ScenarioResult:
    """The recording itself in the shape of a scenario result (for side-by-side tables).

    ``sessions_not_full`` counts the cars that left still charging; how much more they
    wanted is unknown, so ``energy_not_delivered_kwh`` is None.
    """
    sessions = scenario_sessions(recording) if sessions is None else sessions
    outcome = sessions.select(
        "session_id", "user_id", "charger_id", "arrival_utc",
        pl.col("arrival_utc").alias("plugged_utc"), "first_current_utc",
        pl.when(pl.col("full")).then(pl.col("release_utc")).alias("full_utc"),
        "departure_utc", "energy_requested_kwh",
        pl.col("energy_kwh").fill_null(0.0).alias("energy_delivered_kwh"),
        pl.lit(0.0).alias("energy_not_delivered_kwh"),
        "request_is_lower_bound",
        ((pl.coalesce("first_current_utc", "release_utc") - pl.col("arrival_utc"))
         .dt.total_microseconds() / 1e6).clip(lower_bound=0.0).alias("wait_s"),
    )  # fmt: skip
    load = (
        recording.line_steps.select(
            "start_utc", "end_utc", "chargers_l1_a", "chargers_l2_a", "chargers_l3_a"
        )
        .join_asof(recorded_power(recording), on="start_utc", strategy="backward")
        .with_columns(pl.col("power_w").fill_null(0.0))
    )
    capacity = capacity_steps(
        site_hourly(load, household_power(recording)),
        recording.installation.timezone,
        steps_kw=steps_kw,
        prices_nok_per_month=prices_nok_per_month,
    )
    summary = summarise(outcome, load, capacity, n_chargers=recording.chargers.height,
                        main_fuse_a=recording.installation.main_fuse_a)  # fmt: skip
    # What the cars that left still charging wanted is unknown: count them, leave the energy.
    summary["sessions_not_full"] = int((~sessions["full"]).sum())
    summary["energy_not_delivered_kwh"] = None
    return ScenarioResult(Scenario("recorded", policy="recorded"), outcome, load, summary,
                          capacity)  # fmt: skip


def compare_scenarios(
    recording: Recording,
    scenarios: Sequence[Scenario],
    *,
    include_baseline: bool = True,
    apm_margin_a: float = 1.0,
    steps_kw: Sequence[float] = CAPACITY_STEPS_KW,
    prices_nok_per_month: Sequence[float] | None = None,
) -> list[ScenarioResult]:
    """The recording, a baseline (the reference allocator on the recorded site) and each
    scenario, side by side.

    Returns
    -------
    list of ScenarioResult
        ``recorded`` first, then ``baseline`` (when asked), then the scenarios.
    """
    sessions = scenario_sessions(recording)
    household = household_power(recording)
    voltage_v = effective_voltage(recording)
    common = {"steps_kw": steps_kw, "prices_nok_per_month": prices_nok_per_month}
    out = [recorded_result(recording, sessions=sessions, **common)]
    runs = ([Scenario("baseline")] if include_baseline else []) + list(scenarios)
    for scenario in runs:
        out.append(
            run_scenario(
                recording,
                scenario,
                sessions=sessions,
                apm_margin_a=apm_margin_a,
                household=household,
                voltage_v=voltage_v,
                **common,
            )  # fmt: skip
        )
    return out
