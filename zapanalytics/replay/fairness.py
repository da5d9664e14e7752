"""How fairly was the current shared? Per allocation interval, per user, and waiting times.

Per interval (between two moments the allocation could change: an arrival, a car full or
gone, a limit change) over the sessions asking for current:

* **Jain's index** of the allocations, each normalised by what the car can take (its
  maximum current), ``J = (Σx)² / (n·Σx²)``: 1 when all get the same share, ``k/n`` when
  ``k`` of ``n`` share equally and the rest get nothing. Normalising by the car's maximum
  keeps a 16 A car at 16 A from looking short-changed next to a 32 A car.
* **Max-min shortfall**: the most any charger got below its max-min fair allocation (the
  water-filling share, :func:`firmware_ref.allocator.equal_share` on the same demands) [A].

Per user: sessions, energy delivered, how many sessions ended with the car full before it
left, and — when the energy asked for is known (simulations, what-if scenarios) — energy not
delivered by departure. Waiting: the time from authorisation to the first current.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from firmware_ref.allocator import SiteLimits, equal_share
from zapanalytics.replay.demands import LimitSeries, demand_of, session_demands, site_limits
from zapanalytics.replay.intervals import UTC_DTYPE, epoch_s
from zapanalytics.replay.recording import Recording

#: Below this Jain's index an interval counts as unfair in the summary.
UNFAIR_JAIN = 0.9


@dataclass
class FairnessReport:
    """Fairness of a recording.

    Attributes
    ----------
    intervals : polars.DataFrame
        Per allocation interval: ``start_utc, end_utc, active_sessions, jain_index,
        jain_index_fair, max_min_shortfall_a, total_shortfall_a``.
    users : polars.DataFrame
        Per user: ``user_id, user_name, sessions, energy_kwh, sessions_full,
        sessions_left_charging, share_full, energy_requested_kwh,
        energy_not_delivered_kwh, mean_wait_s, max_wait_s``.
    waits : polars.DataFrame
        Per session: ``session_id, charger_id, user_id, arrival_utc, first_current_utc,
        wait_s, never_charged``.
    summary : dict
        Time-weighted figures (see :func:`fairness_report`).
    """

    intervals: pl.DataFrame
    users: pl.DataFrame
    waits: pl.DataFrame
    summary: dict

    def as_dict(self) -> dict:
        """JSON-ready summary plus the per-user table."""
        return {"summary": self.summary, "users": self.users.to_dicts()}


def jain_index(shares: np.ndarray) -> float:
    """Jain's fairness index of non-negative shares; NaN when all are zero.

    Parameters
    ----------
    shares : numpy.ndarray
        One value per participant.

    Returns
    -------
    float
        ``(Σx)² / (n·Σx²)`` in ``[1/n, 1]``.
    """
    x = np.asarray(shares, dtype=float)
    square = float(np.sum(x * x))
    if x.size == 0 or square == 0.0:
        return float("nan")
    return float(np.sum(x) ** 2 / (x.size * square))


def fairness_report(
    recording: Recording,
    *,
    demands: pl.DataFrame | None = None,
    limits: LimitSeries | None = None,
    requested: pl.DataFrame | None = None,
    dynamic_phase_selection: bool = True,
    shortfall_tolerance_a: float = 0.5,
) -> FairnessReport:
    """Fairness of the recorded allocations.

    Parameters
    ----------
    recording : Recording
        The recording.
    demands : polars.DataFrame, optional
        :func:`~zapanalytics.replay.demands.session_demands` (built when not given).
    limits : LimitSeries, optional
        Available current over time (default: the recorded site).
    requested : polars.DataFrame, optional
        ``session_id, energy_requested_kwh`` when the energy asked for is known.
    dynamic_phase_selection : bool
        Chargers choose the terminal of a single-phase charge (max-min fair reference).
    shortfall_tolerance_a : float
        Shortfalls up to this count as none in the summary [A].

    Returns
    -------
    FairnessReport
        ``summary`` holds ``mean_jain_index`` and ``mean_jain_index_fair``
        (time-weighted over intervals with two or more sessions),
        ``unfair_time_share`` (share of that time with ``J < 0.9``),
        ``max_min_shortfall_a`` (largest), ``shortfall_time_share``, the wait
        statistics and session counts.
    """
    demands = session_demands(recording) if demands is None else demands
    limits = site_limits(recording) if limits is None else limits
    intervals = _interval_fairness(recording, demands, limits, dynamic_phase_selection)
    waits = _waits(demands)
    users = _users(demands, waits, requested)
    summary = _summary(intervals, waits, demands, shortfall_tolerance_a)
    return FairnessReport(intervals=intervals, users=users, waits=waits, summary=summary)


def allocation_moments(demands: pl.DataFrame, limits: LimitSeries) -> np.ndarray:
    """Times the allocation may change: arrivals, releases and limit changes [s]."""
    arrival = epoch_s(demands["arrival_utc"])
    release = epoch_s(demands["release_utc"])
    keep = release > arrival
    return np.unique(np.concatenate([arrival[keep], release[keep], limits.t_s[1:]]))


def max_min_fair_at(
    rows: list[dict],
    network_type: str,
    available: tuple[float, float, float],
    t_s: float,
    *,
    dynamic_phase_selection: bool = True,
) -> list[float]:
    """Max-min fair (water-filling) currents of sessions at one moment [A]
    (:func:`firmware_ref.allocator.equal_share`), in the order given.

    ``rows`` are rows of :func:`~zapanalytics.replay.demands.session_demands` with
    ``arrival_s`` [s since epoch] added.
    """
    wanted = [demand_of(r, dynamic_phase_selection=dynamic_phase_selection) for r in rows]
    site = SiteLimits(available_current_a=available, network_type=network_type)
    result = equal_share(site, wanted, None, t_s)
    return [float(result.allocations[r["charger_id"]].current_a) for r in rows]


def _interval_fairness(
    recording: Recording, demands: pl.DataFrame, limits: LimitSeries, dynamic: bool
) -> pl.DataFrame:
    empty = pl.DataFrame(
        schema={
            "start_utc": UTC_DTYPE,
            "end_utc": UTC_DTYPE,
            "active_sessions": pl.Int32,
            "jain_index": pl.Float64,
            "jain_index_fair": pl.Float64,
            "max_min_shortfall_a": pl.Float64,
            "total_shortfall_a": pl.Float64,
        }
    )
    if demands.is_empty():
        return empty
    moments = allocation_moments(demands, limits)
    ends = np.append(moments[1:], epoch_s(pl.Series([recording.end_utc]))[0])
    arrival = epoch_s(demands["arrival_utc"])
    release = epoch_s(demands["release_utc"])
    first = np.searchsorted(moments, arrival, side="left")
    last = np.searchsorted(moments, release, side="left")
    counts = np.clip(last - first, 0, None)
    session = np.repeat(np.arange(demands.height), counts)
    epoch = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) + np.repeat(
        first, counts
    )
    if epoch.size == 0:
        return empty
    # The recorded allocation in the middle of each interval, past any pilot-change lag.
    middle = 0.5 * (moments + ends)
    points = pl.DataFrame(
        {
            "epoch": epoch.astype(np.int64),
            "session": session.astype(np.int64),
            "charger_id": demands["charger_id"].gather(session),
            "cap_a": demands["car_max_current_a"].gather(session),
            "ts_utc": pl.Series(np.round(middle[epoch] * 1e6).astype(np.int64)).cast(UTC_DTYPE),
        }
    ).sort("charger_id", "ts_utc")
    recorded = recording.charger_steps.select(
        "charger_id", pl.col("start_utc").alias("ts_utc"),
        pl.col("allocated_current_a").fill_null(0.0).alias("recorded_a"),
    ).sort("charger_id", "ts_utc")  # fmt: skip
    joined = points.join_asof(
        recorded, on="ts_utc", by="charger_id", check_sortedness=False
    ).with_columns(pl.col("recorded_a").fill_null(0.0))
    # Where every car got its maximum nothing fairer exists; elsewhere water-fill.
    short = (
        joined.filter(pl.col("recorded_a") < pl.col("cap_a") - 0.01)
        .select("epoch").unique()
        .join(joined.select("epoch", "session"), on="epoch")
        .group_by("epoch").agg(pl.col("session").sort())
    )  # fmt: skip
    fixes_epoch: list[int] = []
    fixes_session: list[int] = []
    fixes_fair: list[float] = []
    rows = demands.with_columns(pl.Series("arrival_s", arrival)).to_dicts() if short.height else []
    network = recording.installation.network_type
    for e, sessions in short.iter_rows():
        t = float(moments[e])
        fair = max_min_fair_at([rows[k] for k in sessions], network, limits.at(t), t,
                               dynamic_phase_selection=dynamic)  # fmt: skip
        fixes_epoch.extend([e] * len(sessions))
        fixes_session.extend(sessions)
        fixes_fair.extend(fair)
    fixes = pl.DataFrame(
        {"epoch": fixes_epoch, "session": fixes_session, "_fair": fixes_fair},
        schema={"epoch": pl.Int64, "session": pl.Int64, "_fair": pl.Float64},
    )
    joined = joined.join(fixes, on=["epoch", "session"], how="left").with_columns(
        pl.coalesce("_fair", "cap_a").alias("fair_a")
    )
    share = pl.col("recorded_a") / pl.col("cap_a")
    fair_share = pl.col("fair_a") / pl.col("cap_a")
    shortfall = (pl.col("fair_a") - pl.col("recorded_a")).clip(lower_bound=0.0)
    grouped = joined.group_by("epoch").agg(
        pl.len().cast(pl.Int32).alias("active_sessions"),
        share.sum().alias("_s"),
        (share * share).sum().alias("_s2"),
        fair_share.sum().alias("_f"),
        (fair_share * fair_share).sum().alias("_f2"),
        shortfall.max().alias("max_min_shortfall_a"),
        shortfall.sum().alias("total_shortfall_a"),
    )
    n = pl.col("active_sessions").cast(pl.Float64)
    out = grouped.with_columns(
        pl.when(pl.col("_s2") > 0).then(pl.col("_s") ** 2 / (n * pl.col("_s2"))).alias("jain_index"),
        pl.when(pl.col("_f2") > 0).then(pl.col("_f") ** 2 / (n * pl.col("_f2")))
        .alias("jain_index_fair"),
    ).sort("epoch")  # fmt: skip
    index = out["epoch"].to_numpy()
    return out.with_columns(
        pl.Series("start_utc", np.round(moments[index] * 1e6).astype(np.int64)).cast(UTC_DTYPE),
        pl.Series("end_utc", np.round(ends[index] * 1e6).astype(np.int64)).cast(UTC_DTYPE),
    ).select(empty.columns)


def _waits(demands: pl.DataFrame) -> pl.DataFrame:
    never = pl.col("first_current_utc").is_null()
    until = pl.when(never).then(pl.col("release_utc")).otherwise(pl.col("first_current_utc"))
    return demands.select(
        "session_id", "charger_id", "user_id", "arrival_utc", "first_current_utc",
        ((until - pl.col("arrival_utc")).dt.total_microseconds() / 1e6).clip(lower_bound=0.0)
        .alias("wait_s"),
        never.alias("never_charged"),
    )  # fmt: skip


def _users(
    demands: pl.DataFrame, waits: pl.DataFrame, requested: pl.DataFrame | None
) -> pl.DataFrame:
    frame = demands.join(waits.select("session_id", "wait_s"), on="session_id", how="left")
    if requested is not None:
        frame = frame.join(
            requested.select("session_id", "energy_requested_kwh"), on="session_id", how="left"
        )
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("energy_requested_kwh"))
    unmet = (pl.col("energy_requested_kwh") - pl.col("energy_kwh").fill_null(0.0)).clip(
        lower_bound=0.0
    )
    users = frame.group_by("user_id").agg(
        pl.col("user_name").drop_nulls().first(),
        pl.len().alias("sessions"),
        pl.col("energy_kwh").sum().round(3),
        pl.col("full").sum().alias("sessions_full"),
        (~pl.col("full")).sum().alias("sessions_left_charging"),
        pl.col("energy_requested_kwh").sum().round(3),
        unmet.sum().round(3).alias("energy_not_delivered_kwh"),
        pl.col("wait_s").mean().round(1).alias("mean_wait_s"),
        pl.col("wait_s").max().round(1).alias("max_wait_s"),
    )
    users = users.with_columns(
        (pl.col("sessions_full") / pl.col("sessions")).round(3).alias("share_full")
    )
    if requested is None:
        users = users.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("energy_requested_kwh"),
            pl.lit(None, dtype=pl.Float64).alias("energy_not_delivered_kwh"),
        )
    return users.select(
        "user_id", "user_name", "sessions", "energy_kwh", "sessions_full",
        "sessions_left_charging", "share_full", "energy_requested_kwh",
        "energy_not_delivered_kwh", "mean_wait_s", "max_wait_s",
    ).sort("energy_kwh", descending=True, nulls_last=True)  # fmt: skip


def _summary(
    intervals: pl.DataFrame, waits: pl.DataFrame, demands: pl.DataFrame, tolerance_a: float
) -> dict:
    shared = intervals.filter(pl.col("active_sessions") >= 2).with_columns(
        ((pl.col("end_utc") - pl.col("start_utc")).dt.total_microseconds() / 1e6).alias("d")
    )
    total = float(shared["d"].sum()) if not shared.is_empty() else 0.0

    def weighted(column: str) -> float | None:
        rows = shared.filter(pl.col(column).is_not_null())
        weight = float(rows["d"].sum()) if not rows.is_empty() else 0.0
        if weight <= 0:
            return None
        return round(float((rows[column] * rows["d"]).sum()) / weight, 4)

    def share_of_time(expr: pl.Expr) -> float | None:
        if total <= 0:
            return None
        return round(float(shared.filter(expr)["d"].sum()) / total, 4)

    wait = waits["wait_s"]
    return {
        "sessions": demands.height,
        "sessions_full": int(demands["full"].sum()) if demands.height else 0,
        "shared_time_h": round(total / 3600.0, 3),
        "mean_jain_index": weighted("jain_index"),
        "mean_jain_index_fair": weighted("jain_index_fair"),
        "unfair_time_share": share_of_time(pl.col("jain_index") < UNFAIR_JAIN),
        "max_min_shortfall_a": (
            round(float(intervals["max_min_shortfall_a"].max()), 3)
            if not intervals.is_empty() else None
        ),
        "shortfall_time_share": share_of_time(pl.col("max_min_shortfall_a") > tolerance_a),
        "mean_wait_s": round(float(wait.mean()), 1) if waits.height else None,
        "p95_wait_s": round(float(wait.quantile(0.95)), 1) if waits.height else None,
        "max_wait_s": round(float(wait.max()), 1) if waits.height else None,
        "sessions_never_charged": int(waits["never_charged"].sum()) if waits.height else 0,
    }  # fmt: skip
