"""Ground truth of the injected faults: what happened, to which charger, when, how much.

Turns the :mod:`firmware_ref.faults` requests in a :class:`SimulationConfig` into
:class:`~firmware_ref.faults.InjectedFault` records once the engine has run (the
ignore-allocation window is only known then), and picks default moments for faults
given without a time.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from firmware_ref.faults import (
    ClockDrift,
    IgnoreAllocation,
    InjectedFault,
    LostOcppMessages,
    MeterGainError,
    RegisterReset,
    TamperedOcmf,
)
from firmware_ref.sim_timeline import ChargerTimeline, epoch_to_datetime

__all__ = ["first_idle_moment", "ground_truth_faults"]


def first_idle_moment(visits, charger: int, after_s: float) -> float:
    """First time at or after ``after_s`` when no car is connected to ``charger``."""
    t = after_s
    sel = np.flatnonzero(visits.charger_index == charger)
    for k in sel:
        if visits.departure_s[k] < t:
            continue
        if visits.arrival_s[k] <= t:
            t = float(visits.departure_s[k]) + 60.0
        else:
            break
    return float(math.floor(t))


def _in_session_moment(sessions: pl.DataFrame, charger_id: str, after_s: float) -> float:
    """An hour into the charger's first session starting after ``after_s`` (or its last
    session; noon UTC of that day when it has none): a window there loses transaction
    messages."""
    mine = sessions.filter((pl.col("charger_id") == charger_id) & ~pl.col("is_void"))
    starts = mine["start_utc"].dt.epoch("ms").to_numpy() / 1000.0
    if starts.size == 0:
        return math.floor(after_s / 86400.0) * 86400.0 + 43200.0
    later = starts[starts >= after_s]
    first = float(later.min()) if later.size else float(starts.max())
    return float(math.floor(first + 3600.0))


def ground_truth_faults(
    config,
    chargers: pl.DataFrame,
    logs,
    resets: dict[int, tuple[float, int]],
    clocks: list[tuple[float, float, float]],
    timelines: list[ChargerTimeline],
    sessions: pl.DataFrame,
    start_s: float,
    end_s: float,
) -> list[InjectedFault]:
    ids = chargers["charger_id"].to_list()
    devs = chargers["device_id"].to_list()
    out: list[InjectedFault] = []
    ignore_seen: set[int] = set()
    for fault in config.faults:
        c = fault.charger_index
        if isinstance(fault, MeterGainError):
            out.append(
                InjectedFault(
                    "meter_gain_error", ids[c], devs[c], None, None, float(fault.gain_error),
                    "fraction", {"description": "meter reads high by gain_error for the whole run"},
                )  # fmt: skip
            )
        elif isinstance(fault, IgnoreAllocation):
            windows = [w for w in logs.ignore_windows if w[0] == c]
            if c in ignore_seen or not windows:
                out.append(
                    InjectedFault(
                        "ignore_allocation", ids[c], devs[c], None, None, 0.0, "A",
                        {"triggered": False, "duration_s": fault.duration_s},
                    )  # fmt: skip
                )
                continue
            ignore_seen.add(c)
            _, t0, t1, frozen, min_set, set0, excess = windows[0]
            out.append(
                InjectedFault(
                    "ignore_allocation", ids[c], devs[c], epoch_to_datetime(t0),
                    epoch_to_datetime(t1), round(excess, 3), "A",
                    {
                        "triggered": True,
                        "signalled_current_a": round(frozen, 3),
                        "allocated_current_a_at_start": round(set0, 3),
                        "lowest_allocated_current_a": round(min_set, 3),
                        "planned_duration_s": fault.duration_s,
                        "description": "charger kept signalling its previous current "
                        "after the allocator lowered it",
                    },
                )  # fmt: skip
            )
        elif isinstance(fault, RegisterReset):
            at, value = resets[c]
            before = int(timelines[c].register_wh(np.array([at - 1e-3]))[0])
            out.append(
                InjectedFault(
                    "register_reset", ids[c], devs[c], epoch_to_datetime(at), epoch_to_datetime(at),
                    float(before - value), "Wh",
                    {"register_before_wh": before, "register_after_wh": value},
                )  # fmt: skip
            )
        elif isinstance(fault, ClockDrift):
            begin, offset, ppm = clocks[c]
            error_end = offset + ppm * 1e-6 * (end_s - begin)
            out.append(
                InjectedFault(
                    "clock_drift", ids[c], devs[c], epoch_to_datetime(begin),
                    epoch_to_datetime(end_s), float(ppm), "ppm",
                    {"offset_s": offset, "error_at_end_s": round(error_end, 3)},
                )  # fmt: skip
            )
        elif isinstance(fault, LostOcppMessages):
            if fault.start is not None:
                begin = fault.start.timestamp()
            else:
                begin = _in_session_moment(sessions, ids[c], 0.5 * (start_s + end_s))
            out.append(
                InjectedFault(
                    "lost_ocpp_messages", ids[c], devs[c], epoch_to_datetime(begin),
                    epoch_to_datetime(begin + fault.duration_s), float(fault.duration_s), "s",
                    {"description": "every OCPP message of the charger in the window is lost"},
                )  # fmt: skip
            )
        elif isinstance(fault, TamperedOcmf):
            continue  # recorded while the records are built
    return out
