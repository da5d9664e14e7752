"""What each recorded session asked of the load balancer, and the site limits over time.

A session's demand is rebuilt from what the charger reported:

* it joins the allocation at its authorisation (the session start) and leaves when the car
  is full (``ChargerOperationMode`` 5) or unplugged, whichever comes first;
* the phases it can use are the most terminals it drew current on (on IT two terminals are
  one line-to-line charge);
* the car's maximum current is the larger of its peak drawn current and the most it was
  allocated: neither exceeds the car's true maximum, and every allocation it got is within
  it, so a max-min fair or first-come allocation is the same as with the true maximum; a
  session that was never allocated nor drew is given the charger's maximum.

The site limit is the installation's available current per line or, on an APM site, the
main fuse minus the household load (HAN reading minus the chargers' measured load at each
HAN sample) minus a margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from firmware_ref.allocator import ChargerDemand, PhaseSwitchConfig
from firmware_ref.grid import is_neutral_network
from zapanalytics.replay.intervals import epoch_s
from zapanalytics.replay.recording import Recording
from zapanalytics.replay.wiring import ACTIVE_CURRENT_A

#: Household estimates are rounded to this step [A] so HAN noise does not trigger
#: reallocations that change nothing.
HOUSEHOLD_STEP_A = 0.1


def session_demands(recording: Recording) -> pl.DataFrame:
    """One row per recorded session with what it asked of the load balancer.

    Returns
    -------
    polars.DataFrame
        ``session_id, charger_id, user_id, user_name, arrival_utc`` (authorisation),
        ``release_utc`` (full or unplugged), ``departure_utc`` (unplugged),
        ``full`` (the car stopped drawing before it left), ``phases``,
        ``car_max_current_a``, ``charger_max_current_a``, ``min_current_a``,
        ``phase_rotation``, ``circuit_id``, ``energy_kwh`` (delivered),
        ``first_current_utc``, sorted by arrival.
    """
    cached = recording.cache.get("session_demands")
    if cached is not None:
        return cached
    it = not is_neutral_network(recording.installation.network_type)
    terminals = pl.col("max_active_terminals").fill_null(0)
    phases = (
        pl.when(terminals >= 3).then(3).when(terminals == 0).then(3)
        .otherwise(pl.lit(1) if it else terminals)
    )  # fmt: skip
    end = pl.col("end_utc").fill_null(pl.lit(recording.end_utc))
    seen = pl.max_horizontal(
        pl.col("peak_current_a").fill_null(0.0), pl.col("peak_allocated_a").fill_null(0.0)
    )
    frame = recording.sessions.join(recording.chargers, on="charger_id", how="left").with_columns(
        pl.col("start_utc").alias("arrival_utc"),
        end.alias("departure_utc"),
        pl.min_horizontal(pl.col("full_utc"), end).alias("release_utc"),
        (pl.col("full_utc").is_not_null() & (pl.col("full_utc") < end)).alias("full"),
        phases.cast(pl.Int8).alias("phases"),
        pl.when(seen > ACTIVE_CURRENT_A)
        .then(pl.min_horizontal(seen, "max_current_a"))
        .otherwise(pl.col("max_current_a"))
        .alias("car_max_current_a"),
        pl.col("max_current_a").alias("charger_max_current_a"),
    )
    return frame.select(
        "session_id",
        "charger_id",
        "user_id",
        "user_name",
        "arrival_utc",
        "release_utc",
        "departure_utc",
        "full",
        "phases",
        "car_max_current_a",
        "charger_max_current_a",
        "min_current_a",
        "phase_rotation",
        "circuit_id",
        "energy_kwh",
        "first_current_utc",
    ).sort("arrival_utc", "charger_id")


def demand_of(row: dict, *, dynamic_phase_selection: bool, priority: bool = False) -> ChargerDemand:
    """The allocator's view of one session row of :func:`session_demands`."""
    return ChargerDemand(
        charger_id=row["charger_id"],
        circuit_id=None,
        active=True,
        phases=int(row["phases"]),
        phase_rotation=row["phase_rotation"] or "RST",
        min_current_a=float(row["min_current_a"]),
        car_max_current_a=float(row["car_max_current_a"]),
        charger_max_current_a=float(row["charger_max_current_a"]),
        priority=priority,
        arrival_s=float(row["arrival_s"]),
        dynamic_phase_selection=dynamic_phase_selection,
    )


@dataclass(frozen=True)
class LimitSeries:
    """Available current per line over time, as a step function.

    Attributes
    ----------
    t_s : numpy.ndarray
        Change times [s since epoch], ascending; the first applies from the start.
    available_a : numpy.ndarray
        Available current per line at and after each change [A], shape ``(n, 3)``.
    household_a : numpy.ndarray
        Household load per line the limit accounts for [A], shape ``(n, 3)``.
    """

    t_s: np.ndarray
    available_a: np.ndarray
    household_a: np.ndarray

    def at(self, t_s: float) -> tuple[float, float, float]:
        """Available current per line at ``t_s`` [A]."""
        i = max(int(np.searchsorted(self.t_s, t_s, side="right")) - 1, 0)
        row = self.available_a[i]
        return (float(row[0]), float(row[1]), float(row[2]))


def household_estimate(recording: Recording) -> tuple[np.ndarray, np.ndarray]:
    """Household load per line at each HAN sample: the meter's reading minus the chargers'.

    Returns
    -------
    tuple of numpy.ndarray
        Sample times [s since epoch] and household currents [A], shape ``(n, 3)``;
        empty without HAN readings.
    """
    han = recording.han
    if han.is_empty():
        return np.zeros(0), np.zeros((0, 3))
    steps = recording.line_steps.select(
        "start_utc", "chargers_l1_a", "chargers_l2_a", "chargers_l3_a"
    )
    joined = han.sort("ts_utc").join_asof(
        steps, left_on="ts_utc", right_on="start_utc", strategy="backward"
    )
    meter = joined.select("current_l1_a", "current_l2_a", "current_l3_a").to_numpy()
    chargers = joined.select("chargers_l1_a", "chargers_l2_a", "chargers_l3_a").fill_null(0.0)
    house = np.clip(meter - chargers.to_numpy(), 0.0, None)
    return epoch_s(joined["ts_utc"]), house


def site_limits(
    recording: Recording,
    *,
    main_fuse_a: float | None = None,
    available_current_a: float | None = None,
    apm: bool | None = None,
    apm_margin_a: float = 1.0,
    budget_kw: float | None = None,
) -> LimitSeries:
    """Available current for the chargers over time.

    Parameters
    ----------
    recording : Recording
        The recording (site facts and HAN samples).
    main_fuse_a, available_current_a : float, optional
        Override the recorded fuse / available current [A].
    apm : bool, optional
        Follow the household load (default: the installation's setting).
    apm_margin_a : float
        Margin kept free under APM [A].
    budget_kw : float, optional
        APM power budget [kW] for the whole installation (household included), shared
        evenly over three lines at nominal voltage: ``budget / (3 × 230 V)`` per line on
        TN, ``budget / (√3 × 230 V)`` on IT.

    Returns
    -------
    LimitSeries
    """
    site = recording.installation
    fuse = main_fuse_a if main_fuse_a is not None else site.main_fuse_a
    available = available_current_a if available_current_a is not None else site.chargers_limit_a
    if available is None:
        available = fuse
    if available is None:
        raise ValueError("the installation has no main fuse or available current; give one")
    if main_fuse_a is not None and available_current_a is None and site.main_fuse_a:
        # A bigger or smaller fuse keeps the headroom the installation left for other loads.
        recorded = site.chargers_limit_a or site.main_fuse_a
        available = max(0.0, main_fuse_a - (site.main_fuse_a - recorded))
    follow = site.apm if apm is None else apm
    start = epoch_s(pl.Series([recording.start_utc]))
    if not follow and budget_kw is None:
        row = np.full((1, 3), float(available))
        return LimitSeries(start, row, np.zeros((1, 3)))
    t, house = household_estimate(recording)
    if t.size == 0:
        t, house = start, np.zeros((1, 3))
    house = np.round(house / HOUSEHOLD_STEP_A) * HOUSEHOLD_STEP_A
    cap = float(fuse if (follow and fuse is not None) else available)
    if budget_kw is not None:
        volts = 230.0 * (3.0 if is_neutral_network(site.network_type) else math.sqrt(3.0))
        cap = min(cap, budget_kw * 1000.0 / volts)
    margin = apm_margin_a if follow else 0.0
    limit = np.clip(cap - house - margin, 0.0, None)
    if not follow:
        limit = np.minimum(limit, float(available))
    keep = np.ones(t.size, dtype=bool)
    keep[1:] = np.any(limit[1:] != limit[:-1], axis=1)
    return LimitSeries(t[keep], limit[keep], house[keep])


def detect_phase_switching(
    recording: Recording, three_to_one_current_a: float = 15.0
) -> PhaseSwitchConfig:
    """Phase-switch settings as the recording shows them: enabled when a session drew on
    three terminals at one time and on fewer at another."""
    drawing = recording.charger_steps.filter(
        pl.col("session_id").is_not_null() & (pl.col("drawn_current_a") > ACTIVE_CURRENT_A)
    )
    per_session = drawing.group_by("session_id").agg(
        pl.col("active_terminals").max().alias("most"),
        pl.col("active_terminals").min().alias("least"),
    )
    switched = per_session.filter((pl.col("most") == 3) & (pl.col("least") < 3)).height > 0
    return PhaseSwitchConfig(enabled=switched, three_to_one_current_a=three_to_one_current_a)
