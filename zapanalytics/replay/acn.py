"""A peer, side by side: the same sessions through ACN-Sim (Caltech's ``acnportal``).

ACN-Sim steps through fixed periods (one minute here) and schedules with sorting
algorithms. Two of its algorithms do what two of our policies do:

=============  ====================================================================
ours           ACN-Sim
=============  ====================================================================
equal_share    ``RoundRobin(first_come_first_served)``: every car gets the next
               allowed pilot step in turn until a constraint binds (equal share)
first_come     ``SortedSchedulingAlgo(first_come_first_served)``: in arrival order,
               each car gets the highest pilot that still fits
=============  ====================================================================

To make the two runs see the same problem, both get the sessions on ACN-Sim's period grid
(arrival rounded up, departure rounded down to a period), the same nominal voltage, the
same per-line limits, no phase switching, and each car's own maximum current in whole
amperes: ACN-Sim
only knows a station's pilot set, so every (charger, phases, car maximum) combination is a
station whose pilot set is 0 and the minimum up to that car's maximum in 1 A steps (the
AeroVironment set ACN-Sim ships, 0 and 6–32 A). A three-phase charge is one station
counted on all three line constraints at three times the line-to-neutral voltage. ACN-Sim
gives a station one phase angle, so a three-phase charger on IT (different angles on each
line) has no equivalent: the comparison covers TN installations with a constant limit.

Cars plugged in within the same period are ordered by charger id on both sides.

Where ours allocates continuously, ACN-Sim allocates whole amperes once per period, so
delivered energies agree closely rather than exactly under congestion; without congestion
every car charges at its maximum in both and they agree to rounding.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import polars as pl

from firmware_ref.grid import charger_lines, is_neutral_network
from zapanalytics.replay.demands import LimitSeries
from zapanalytics.replay.intervals import epoch_s, from_epoch_s
from zapanalytics.replay.recording import NOMINAL_VOLTAGE_V
from zapanalytics.replay.whatif import simulate_sessions

#: Our policy → ACN-Sim algorithm (description).
ACN_ALGORITHMS = {
    "equal_share": "RoundRobin(first_come_first_served)",
    "first_come": "SortedSchedulingAlgo(first_come_first_served)",
}


def acnsim_status() -> tuple[bool, str]:
    """Whether ACN-Sim can be imported here, and why not.

    Returns
    -------
    tuple of (bool, str)
        ``(True, version)`` or ``(False, reason)``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import acnportal
            from acnportal import acnsim, algorithms  # noqa: F401
    except Exception as exc:  # any import failure means the peer cannot run
        return False, f"acnportal does not import: {type(exc).__name__}: {exc}"
    return True, str(getattr(acnportal, "__version__", "unknown version"))


@dataclass
class PeerComparison:
    """Our policy and ACN-Sim's algorithm on the same sessions.

    Attributes
    ----------
    policy : str
        Our policy name.
    acn_algorithm : str
        ACN-Sim's algorithm.
    sessions : polars.DataFrame
        ``session_id, energy_requested_kwh, ours_kwh, acn_kwh``.
    ours_s, acn_s : float
        Wall time of each run [s].
    skipped : str or None
        Why ACN-Sim did not run, if it did not.
    """

    policy: str
    acn_algorithm: str
    sessions: pl.DataFrame = field(default_factory=pl.DataFrame)
    ours_s: float = 0.0
    acn_s: float = 0.0
    skipped: str | None = None

    @property
    def ours_total_kwh(self) -> float:
        """Energy delivered by our policy [kWh]."""
        return float(self.sessions["ours_kwh"].sum()) if self.sessions.height else 0.0

    @property
    def acn_total_kwh(self) -> float:
        """Energy delivered by ACN-Sim [kWh]."""
        return float(self.sessions["acn_kwh"].sum()) if self.sessions.height else 0.0

    @property
    def relative_difference(self) -> float | None:
        """``|ours − acn| / acn`` of the totals."""
        acn = self.acn_total_kwh
        return abs(self.ours_total_kwh - acn) / acn if acn > 0 else None

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        diff = (
            (self.sessions["ours_kwh"] - self.sessions["acn_kwh"]).abs()
            if self.sessions.height
            else pl.Series([0.0])
        )
        return {
            "policy": self.policy,
            "acn_algorithm": self.acn_algorithm,
            "sessions": self.sessions.height,
            "ours_kwh": round(self.ours_total_kwh, 3),
            "acn_kwh": round(self.acn_total_kwh, 3),
            "relative_difference": (
                None if self.relative_difference is None else round(self.relative_difference, 5)
            ),
            "max_session_difference_kwh": round(float(diff.max() or 0.0), 4),
            "ours_s": round(self.ours_s, 3),
            "acn_s": round(self.acn_s, 3),
            "skipped": self.skipped,
        }


def on_period_grid(sessions: pl.DataFrame, start_utc: datetime, period_min: float) -> pl.DataFrame:
    """Sessions with arrival rounded up and departure rounded down to the period grid;
    sessions left shorter than one period are dropped.

    Adds ``arrival_period`` and ``departure_period`` (periods since ``start_utc``).
    """
    start = start_utc.timestamp()
    step = period_min * 60.0
    arrival = np.ceil((epoch_s(sessions["arrival_utc"]) - start) / step - 1e-9)
    departure = np.floor((epoch_s(sessions["departure_utc"]) - start) / step + 1e-9)
    out = sessions.with_columns(
        pl.Series("arrival_period", arrival.astype(np.int64)),
        pl.Series("departure_period", departure.astype(np.int64)),
        from_epoch_s("arrival_utc", start + arrival * step),
        from_epoch_s("departure_utc", start + departure * step),
    )
    return out.filter(pl.col("departure_period") > pl.col("arrival_period"))


def first_come_first_served(evs: list, interface: object) -> list:
    """ACN-Sim's first-come-first-served order with ties (cars plugged in the same period)
    broken by charger id, as our allocator breaks them; station ids start with it."""
    return sorted(evs, key=lambda ev: (ev.arrival, ev.station_id))


def run_acnsim(
    sessions: pl.DataFrame,
    chargers: pl.DataFrame,
    available_current_a: float,
    *,
    policy: str,
    start_utc: datetime,
    period_min: float = 1.0,
    voltage_v: float = NOMINAL_VOLTAGE_V,
) -> pl.DataFrame:
    """Run sessions (already on the period grid) through ACN-Sim.

    Parameters
    ----------
    sessions : polars.DataFrame
        :func:`on_period_grid` output with ``session_id, charger_id, phases,
        car_max_current_a, min_current_a, energy_requested_kwh``.
    chargers : polars.DataFrame
        ``charger_id, phase_rotation, max_current_a``.
    available_current_a : float
        Limit per line [A].
    policy : str
        ``equal_share`` or ``first_come``.
    start_utc : datetime
        Time of period 0.
    period_min : float
        Period length [min].
    voltage_v : float
        Line-to-neutral voltage [V].

    Returns
    -------
    polars.DataFrame
        ``session_id, acn_kwh``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from acnportal import acnsim, algorithms
        from acnportal.acnsim import events, models

    if policy == "equal_share":
        scheduler = algorithms.RoundRobin(first_come_first_served)
    elif policy == "first_come":
        scheduler = algorithms.SortedSchedulingAlgo(first_come_first_served)
    else:
        raise ValueError(f"ACN-Sim has no counterpart of policy {policy!r}")
    rotations = dict(zip(chargers["charger_id"], chargers["phase_rotation"], strict=True))
    charger_max = dict(zip(chargers["charger_id"], chargers["max_current_a"], strict=True))
    network = acnsim.ChargingNetwork(violation_tolerance=1e-4, relative_tolerance=1e-7)
    on_line: dict[int, list[str]] = {0: [], 1: [], 2: []}
    stations: dict[tuple, str] = {}
    evs = []
    for row in sessions.iter_rows(named=True):
        phases = int(row["phases"])
        cap = int(math.floor(min(float(row["car_max_current_a"]),
                                 float(charger_max[row["charger_id"]])) + 1e-9))  # fmt: skip
        low = int(math.ceil(float(row["min_current_a"]) - 1e-9))
        key = (row["charger_id"], phases, cap)
        station = stations.get(key)
        if station is None:
            station = f"{row['charger_id']}#{phases}#{cap}"
            stations[key] = station
            rates = [0, *range(low, cap + 1)] if cap >= low else [0]
            network.register_evse(models.FiniteRatesEVSE(station, rates), voltage_v * phases, 0.0)
            for line in charger_lines(rotations[row["charger_id"]], phases, "TN", 0):
                on_line[line].append(station)
        volts = voltage_v * phases
        energy = float(row["energy_requested_kwh"] or 0.0)
        battery = models.Battery(energy, 0.0, cap * volts / 1000.0)
        evs.append(
            models.EV(
                int(row["arrival_period"]),
                int(row["departure_period"]),
                energy,
                station,
                row["session_id"],
                battery,
            )  # fmt: skip
        )
    for line, members in on_line.items():
        if members:
            network.add_constraint(
                acnsim.Current(members), available_current_a, name=f"L{line + 1}"
            )
    queue = events.EventQueue(events.PluginEvent(ev.arrival, ev) for ev in evs)
    simulator = acnsim.Simulator(network, scheduler, queue, start_utc, period=period_min,
                                 verbose=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        simulator.run()
    return pl.DataFrame(
        {
            "session_id": [ev.session_id for ev in evs],
            "acn_kwh": [float(ev.energy_delivered) for ev in evs],
        }
    )


def compare_with_acnsim(
    sessions: pl.DataFrame,
    chargers: pl.DataFrame,
    limits: LimitSeries,
    *,
    network_type: str = "TN",
    policies: tuple[str, ...] = ("equal_share", "first_come"),
    period_min: float = 1.0,
    start_utc: datetime | None = None,
    voltage_v: float = NOMINAL_VOLTAGE_V,
) -> list[PeerComparison]:
    """Run the same sessions through our policies and ACN-Sim's counterparts.

    Parameters
    ----------
    sessions : polars.DataFrame
        What-if sessions (:func:`zapanalytics.replay.whatif.scenario_sessions`).
    chargers : polars.DataFrame
        ``charger_id, phase_rotation, max_current_a``.
    limits : LimitSeries
        Site limits; must be constant (no APM).
    network_type : str
        Only ``"TN"`` is comparable (see module docstring).
    policies : tuple of str
        Our policies to compare (keys of :data:`ACN_ALGORITHMS`).
    period_min : float
        ACN-Sim period [min].
    start_utc : datetime, optional
        Period 0 (default: midnight UTC before the first arrival).
    voltage_v : float
        Line-to-neutral voltage for both runs [V].

    Returns
    -------
    list of PeerComparison
        One per policy; ``skipped`` says why a comparison could not run.
    """
    out = []
    ok, reason = acnsim_status()
    problem = None
    if not ok:
        problem = reason
    elif not is_neutral_network(network_type):
        problem = "ACN-Sim gives each station one phase angle; three-phase IT loads need three"
    elif limits.t_s.size > 1 or np.ptp(limits.available_a[0]) > 0:
        problem = (
            "ACN-Sim constraints here are constant and equal per line; this site's limit varies"
        )
    if sessions.is_empty():
        problem = problem or "no sessions to compare"
    for policy in policies:
        algorithm = ACN_ALGORITHMS.get(policy)
        if algorithm is None:
            raise ValueError(f"no ACN-Sim counterpart for policy {policy!r}")
        if problem is not None:
            out.append(PeerComparison(policy, algorithm, skipped=problem))
            continue
        first = sessions["arrival_utc"].min()
        start = start_utc or datetime(first.year, first.month, first.day, tzinfo=UTC)
        # Whole-ampere car maxima for both: ACN-Sim's pilot sets are whole amperes.
        gridded = on_period_grid(sessions, start, period_min).with_columns(
            (pl.col("car_max_current_a") + 1e-9).floor(),
            (pl.col("min_current_a") - 1e-9).ceil(),
        )
        available = float(limits.available_a[0][0])
        began = time.perf_counter()
        ours, _ = simulate_sessions(
            gridded, chargers, limits, network_type=network_type, policy=policy,
            dynamic_phase_selection=False, voltage_v=voltage_v,
        )  # fmt: skip
        ours_s = time.perf_counter() - began
        began = time.perf_counter()
        acn = run_acnsim(gridded, chargers, available, policy=policy, start_utc=start,
                         period_min=period_min, voltage_v=voltage_v)  # fmt: skip
        acn_s = time.perf_counter() - began
        table = ours.select(
            "session_id", "energy_requested_kwh", pl.col("energy_delivered_kwh").alias("ours_kwh")
        ).join(acn, on="session_id", how="inner")
        out.append(PeerComparison(policy, algorithm, table, ours_s, acn_s))
    return out
