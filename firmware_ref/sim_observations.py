"""State observations of the simulated chargers, as Zaptec's cloud records them.

Built in bulk from the engine's logs: 710 ChargerOperationMode on plug-in, current
changes, car full and unplugging; 708 ChargeCurrentSet and 519 SetPhases from the
allocation log; 507-509 CurrentPhase1..3 and 513 TotalChargePower on every change of
the drawn current; 501-503 voltages at plug-in and unplugging; 721 SessionIdentifier
at authorisation; 554 SignedMeterValue from the emitted periodic records.

Values are strings, as the API sends them. ``ts_reported_utc`` carries the charger's
clock error (see :class:`firmware_ref.faults.ClockDrift`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from firmware_ref.sim_engine import EngineLogs
from firmware_ref.sim_timeline import LineCodes, ts_series

__all__ = ["STATE_NAMES", "observations_frame", "reported", "reported_all"]

STATE_NAMES = {
    501: "VoltagePhase1",
    502: "VoltagePhase2",
    503: "VoltagePhase3",
    507: "CurrentPhase1",
    508: "CurrentPhase2",
    509: "CurrentPhase3",
    513: "TotalChargePower",
    519: "SetPhases",
    554: "SignedMeterValue",
    708: "ChargeCurrentSet",
    710: "ChargerOperationMode",
    721: "SessionIdentifier",
}


def reported(clock: tuple[float, float, float], t: np.ndarray) -> np.ndarray:
    """Times [s] as a clock with error ``(start_s, offset_s, drift_ppm)`` shows them."""
    start_s, offset_s, drift_ppm = clock
    if offset_s == 0.0 and drift_ppm == 0.0:
        return t
    return np.where(t >= start_s, t + offset_s + drift_ppm * 1e-6 * (t - start_s), t)


def reported_all(clocks, charger: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Reported times of rows that belong to different chargers [s]."""
    out = np.array(t, dtype=float, copy=True)
    for c, clock in enumerate(clocks):
        if clock[1] == 0.0 and clock[2] == 0.0:
            continue
        sel = charger == c
        out[sel] = reported(clock, out[sel])
    return out


def _fmt(values: np.ndarray, digits: int) -> list[str]:
    return [f"{v:.{digits}f}" for v in np.asarray(values, dtype=float).tolist()]


def _set_phases_value(network: str, phases: int, lines: str) -> str:
    """StateId 519: 1/2/3 = TN L1/L2/L3, 4 = 3-phase; on IT 8/6/5 by the first line."""
    if phases == 3 or not lines:
        return "4"
    first = int(lines.split(",")[0][1])
    if network == "IT":
        return {1: "8", 2: "6", 3: "5"}[first]
    return "4" if phases == 2 else str(first)


def _keep_changes(t: np.ndarray, charger: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Mask of rows (sorted by charger, then time) whose value differs from the last."""
    keep = np.ones(t.size, dtype=bool)
    keep[1:] = (charger[1:] != charger[:-1]) | (value[1:] != value[:-1])
    return keep


def observations_frame(
    installation: dict,
    charger_ids: np.ndarray,
    device_ids: np.ndarray,
    visits,
    logs: EngineLogs,
    codes: LineCodes,
    sessions: pl.DataFrame,
    samples: pl.DataFrame,
    clocks,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """All state observations, sorted by time, charger and state id."""
    parts: list[pl.DataFrame] = []

    def add(t, charger, state_id: int, values) -> None:
        t = np.asarray(t, dtype=float)
        charger = np.asarray(charger, dtype=np.int64)
        if t.size == 0:
            return
        parts.append(
            pl.DataFrame(
                {
                    "ts_utc": ts_series("ts_utc", t),
                    "ts_reported_utc": ts_series(
                        "ts_reported_utc", reported_all(clocks, charger, t)
                    ),
                    "charger_index": pl.Series(charger, dtype=pl.Int32),
                    "state_id": pl.Series(np.full(t.size, state_id), dtype=pl.Int32),
                    "value": pl.Series(list(values), dtype=pl.String),
                }
            )
        )

    draw_t = np.asarray(logs.draw_t)
    draw_c = np.asarray(logs.draw_charger, dtype=np.int64)
    draw_a = np.asarray(logs.draw_a)
    draw_code = np.asarray(logs.draw_code, dtype=np.int64)

    # 710: plug-in (2), current flowing (3) or not (2, or 5 once the car is full),
    # car full (5), unplugged (1).
    arrival, dep, vch = visits.arrival_s, visits.departure_s, visits.charger_index
    full_s = logs.full_s
    has_full = ~np.isnan(full_s)
    if draw_t.size:
        key_visit = vch * 1e12 + arrival
        vorder = np.argsort(key_visit, kind="stable")
        pos = np.searchsorted(key_visit[vorder], draw_c * 1e12 + draw_t, side="right") - 1
        full_of_draw = full_s[vorder[np.clip(pos, 0, None)]]
        after_full = draw_t >= np.nan_to_num(full_of_draw, nan=np.inf)
        draw_mode = np.where(draw_a > 0, 3, np.where(after_full, 5, 2))
    else:
        draw_mode = np.zeros(0, dtype=np.int64)
    mode_t = np.concatenate([arrival, draw_t, full_s[has_full], dep])
    mode_c = np.concatenate([vch, draw_c, vch[has_full], vch])
    mode_v = np.concatenate(
        [np.full(arrival.size, 2), draw_mode, np.full(int(has_full.sum()), 5), np.full(dep.size, 1)]
    )
    rank = np.concatenate(
        [
            np.zeros(arrival.size),
            np.ones(draw_t.size),
            np.full(int(has_full.sum()), 2.0),
            np.full(dep.size, 3.0),
        ]
    )
    order = np.lexsort((rank, mode_t, mode_c))
    mode_t, mode_c, mode_v = mode_t[order], mode_c[order], mode_v[order]
    # One value per charger and millisecond (the last state reached), then changes only.
    ms = np.round(mode_t * 1000.0)
    last = np.ones(ms.size, dtype=bool)
    last[:-1] = (mode_c[1:] != mode_c[:-1]) | (ms[1:] != ms[:-1])
    mode_t, mode_c, mode_v = mode_t[last], mode_c[last], mode_v[last]
    keep = _keep_changes(mode_t, mode_c, mode_v)
    add(mode_t[keep], mode_c[keep], 710, [str(int(v)) for v in mode_v[keep]])

    # 708 ChargeCurrentSet and 519 SetPhases from the allocation log.
    at = np.asarray(logs.alloc_t)
    ac = np.asarray(logs.alloc_charger, dtype=np.int64)
    add(at, ac, 708, _fmt(np.asarray(logs.alloc_current), 3))
    if at.size:
        phases = np.asarray(logs.alloc_phases, dtype=np.int64)
        lines = logs.alloc_lines
        values = np.array(
            [
                _set_phases_value(installation["network_type"], int(p), str(li))
                for p, li in zip(phases.tolist(), lines, strict=True)
            ],
            dtype=object,
        )
        sel = np.flatnonzero(phases > 0)
        o = sel[np.lexsort((at[sel], ac[sel]))]
        keep = _keep_changes(at[o], ac[o], values[o])
        add(at[o][keep], ac[o][keep], 519, values[o][keep].tolist())

    # 507-509 terminal currents and 513 power on every change of the drawn current.
    if draw_t.size:
        mask = np.asarray(codes.terminals, dtype=float)[draw_code]
        currents = mask * draw_a[:, None]
        for k in range(3):
            add(draw_t, draw_c, 507 + k, _fmt(currents[:, k], 3))
        watts = draw_a * np.asarray(codes.watts_per_amp)[draw_code]
        add(draw_t, draw_c, 513, _fmt(watts, 1))

    # 501-503 voltages a second after plug-in and unplugging.
    v = np.asarray(installation["line_voltage_v"], dtype=float)
    vt = np.concatenate([arrival + 1.0, dep + 1.0])
    vc = np.concatenate([vch, vch])
    noise = rng.normal(0.0, 0.5, (vt.size, 3))
    for k in range(3):
        add(vt, vc, 501 + k, _fmt(v[k] + noise[:, k], 3))

    # 721 SessionIdentifier at authorisation; 554 periodic signed register records.
    index_of = {cid: i for i, cid in enumerate(charger_ids.tolist())}
    real = sessions.filter(~pl.col("is_void")).sort("start_utc")
    add(
        real["start_utc"].dt.epoch("us").to_numpy() / 1e6,
        np.array([index_of[c] for c in real["charger_id"].to_list()], dtype=np.int64),
        721,
        real["session_id"].to_list(),
    )
    emitted = samples.filter(pl.col("ocmf").is_not_null())
    if emitted.height:
        add(
            emitted["ts_utc"].dt.epoch("us").to_numpy() / 1e6,
            np.array([index_of[c] for c in emitted["charger_id"].to_list()], dtype=np.int64),
            554,
            emitted["ocmf"].to_list(),
        )

    schema = {
        "ts_utc": pl.Datetime("us", "UTC"),
        "ts_reported_utc": pl.Datetime("us", "UTC"),
        "charger_id": pl.String,
        "device_id": pl.String,
        "state_id": pl.Int32,
        "state_name": pl.String,
        "value": pl.String,
    }
    if not parts:
        return pl.DataFrame(schema=schema)
    # A charger reports one value per state and time stamp: the last one it reached.
    frame = (
        pl.concat(parts)
        .sort(["ts_utc", "charger_index", "state_id"], maintain_order=True)
        .unique(["ts_utc", "charger_index", "state_id"], keep="last", maintain_order=True)
    )
    index = frame["charger_index"]
    frame = frame.with_columns(
        pl.Series("charger_id", charger_ids.tolist(), dtype=pl.String).gather(index),
        pl.Series("device_id", device_ids.tolist(), dtype=pl.String).gather(index),
        pl.col("state_id").replace_strict(STATE_NAMES, return_dtype=pl.String).alias("state_name"),
    )
    return frame.select(list(schema))
