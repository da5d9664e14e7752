"""Turn the engine's logs into the simulator's frames, in bulk.

Everything here is vectorised over sessions, ticks and samples with numpy and polars;
the only per-item Python loops build and sign OCMF records (one signature each).
Column meanings and units are documented in :mod:`firmware_ref.simulate`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from firmware_ref.faults import InjectedFault, TamperedOcmf
from firmware_ref.ocmf import OcmfReading, OcmfSigner, rfid_identification
from firmware_ref.sim_engine import EngineLogs, EngineVisits
from firmware_ref.sim_observations import observations_frame, reported, reported_all
from firmware_ref.sim_timeline import (
    ChargerTimeline,
    LineCodes,
    StepSeries,
    epoch_to_datetime,
    ts_series,
)

# CommitMetadata bits (Zaptec): Online, Offline, ReliableClock, StoppedByRFID, Signed, Void.
ONLINE, OFFLINE, RELIABLE_CLOCK, SIGNED, VOID = 1, 2, 4, 16, 32


def _per_charger(
    timelines: list[ChargerTimeline], charger: np.ndarray, t: np.ndarray, method: str
) -> np.ndarray:
    """Evaluate a timeline method for rows belonging to different chargers."""
    if t.size == 0:
        return getattr(timelines[0], method)(t)
    out: np.ndarray | None = None
    for c in np.unique(charger):
        sel = charger == c
        values = getattr(timelines[int(c)], method)(t[sel])
        if out is None:
            out = np.zeros((t.size,) + values.shape[1:], dtype=values.dtype)
        out[sel] = values
    assert out is not None
    return out


def build_outputs(
    *,
    config,
    seed: int,
    installation: dict,
    chargers: pl.DataFrame,
    users: pl.DataFrame,
    visits,
    engine_visits: EngineVisits,
    logs: EngineLogs,
    codes: LineCodes,
    timelines: list[ChargerTimeline],
    pilots: list[StepSeries],
    clocks: list[tuple[float, float, float]],
    household,
    rng: np.random.Generator,
    start_s: float,
    end_s: float,
) -> dict[str, Any]:
    """Build every frame of a :class:`~firmware_ref.simulate.SimulationResult`."""
    charger_ids = np.array(chargers["charger_id"].to_list(), dtype=object)
    device_ids = np.array(chargers["device_id"].to_list(), dtype=object)
    signers = None
    if config.sign_ocmf or config.periodic_ocmf:
        signers = [
            OcmfSigner.from_seed(
                seed,
                dev,
                gateway_id=installation["ocmf_gateway_id"],
                gateway_version=installation["firmware_version"],
                meter_firmware=installation["meter_firmware"],
            )
            for dev in device_ids
        ]
    sessions, intervals, tamper_faults = _sessions(
        config, installation, charger_ids, device_ids, users, visits, engine_visits, logs,
        timelines, clocks, rng, signers if config.sign_ocmf else None, end_s,
    )  # fmt: skip
    periodic = config.sign_ocmf if config.periodic_ocmf is None else config.periodic_ocmf
    samples = _meter_samples(
        installation, charger_ids, timelines, pilots, clocks, rng,
        signers if periodic else None, start_s, end_s,
    )  # fmt: skip
    allocations = pl.DataFrame(
        {
            "ts_utc": ts_series("ts_utc", np.asarray(logs.alloc_t)),
            "charger_id": charger_ids[np.asarray(logs.alloc_charger, dtype=np.int64)].tolist()
            if logs.alloc_t
            else pl.Series([], dtype=pl.String),
            "allocated_current_a": pl.Series(logs.alloc_current, dtype=pl.Float64),
            "phases": pl.Series(logs.alloc_phases, dtype=pl.Int8),
            "lines": pl.Series(logs.alloc_lines, dtype=pl.String),
            "paused": pl.Series(logs.alloc_paused, dtype=pl.Boolean),
            "binding_constraint": pl.Series(logs.alloc_binding, dtype=pl.String),
        }
    )
    runs, line_currents, han = _site_currents(
        config, installation, logs, codes, household, start_s, end_s, rng
    )
    observations = observations_frame(
        installation, charger_ids, device_ids, visits, logs, codes, sessions, samples, clocks, rng
    )
    submeter = _submeter_readings(config, chargers, timelines, start_s, end_s, rng)
    return {
        "sessions": sessions,
        "interval_energies": intervals,
        "meter_samples": samples,
        "allocations": allocations,
        "allocator_runs": runs,
        "line_currents": line_currents,
        "state_observations": observations,
        "han_readings": han,
        "submeter_readings": submeter,
        "tamper_faults": tamper_faults,
    }


# --- sessions and interval energies ------------------------------------------------


def _sessions(
    config, installation, charger_ids, device_ids, users, visits, ev: EngineVisits,
    logs: EngineLogs, timelines, clocks, rng, signers, end_s,
):  # fmt: skip
    nv = len(visits)
    charger = visits.charger_index
    auth = ev.auth_s
    dep = visits.departure_s
    session_ids = [_uuid(rng) for _ in range(nv)]
    start_lag = rng.uniform(0.005, 0.05, nv)
    offline = rng.random(nv) < config.offline_session_share
    cloud_delay = np.where(offline, rng.uniform(600.0, 6 * 3600.0, nv), rng.uniform(0.3, 2.5, nv))
    with_void = rng.random(nv) < config.void_session_share
    order_tx = np.argsort(auth, kind="stable")
    transaction_id = np.empty(nv, dtype=np.int64)
    transaction_id[order_tx] = 1001 + np.arange(nv)

    # Interval ticks: quarter hours (Pro/Home) or hours (Go), a little late.
    step = float(installation["energy_details_interval_s"])
    first_tick = (np.floor(auth / step) + 1.0) * step
    n_ticks = np.maximum(0, np.ceil((dep - 2.0 - first_tick) / step)).astype(np.int64)
    rows_per = n_ticks + 2
    visit_of_row = np.repeat(np.arange(nv), rows_per)
    pos = np.arange(visit_of_row.size) - np.repeat(np.cumsum(rows_per) - rows_per, rows_per)
    is_b = pos == 0
    is_e = pos == rows_per[visit_of_row] - 1
    tick_t = first_tick[visit_of_row] + (pos - 1) * step + rng.uniform(0.2, 1.5, pos.size)
    t = np.where(is_b, auth[visit_of_row], np.where(is_e, dep[visit_of_row], tick_t))
    row_charger = charger[visit_of_row]
    register = _per_charger(timelines, row_charger, t, "register_wh")
    true_wh = _per_charger(timelines, row_charger, t, "true_wh")
    reported = reported_all(clocks, row_charger, t)
    prev_reg = np.concatenate([[0], register[:-1]])
    prev_true = np.concatenate([[0.0], true_wh[:-1]])
    delta_kwh = np.where(is_b, 0.0, (register - prev_reg) / 1000.0)
    delta_true = np.where(is_b, 0.0, (true_wh - prev_true) / 1000.0)
    tx = np.where(is_b, "B", np.where(is_e, "E", "T"))
    session_of_row = np.array(session_ids, dtype=object)[visit_of_row]
    intervals = pl.DataFrame(
        {
            "session_id": pl.Series(session_of_row.tolist(), dtype=pl.String),
            "charger_id": pl.Series(charger_ids[row_charger].tolist(), dtype=pl.String),
            "tx": pl.Series(tx.tolist(), dtype=pl.String),
            "ts_utc": ts_series("ts_utc", t),
            "ts_reported_utc": ts_series("ts_reported_utc", reported),
            "register_wh": register.astype(np.int64),
            "energy_kwh": np.round(delta_kwh, 3),
            "true_energy_kwh": np.round(delta_true, 6),
        }
    )
    reg_b = register[is_b]
    reg_e = register[is_e]
    true_b = true_wh[is_b]
    true_e = true_wh[is_e]

    # Signed session records, per charger in start order (T1, T2, ...).
    signed: list[str | None] = [None] * nv
    tampered = np.zeros(nv, dtype=bool)
    tamper_faults: list[InjectedFault] = []
    user_rows = users.to_dicts()
    if signers is not None:
        bounds = np.concatenate([[0], np.cumsum(rows_per)])
        tm = reported
        by_charger = sorted(range(nv), key=lambda k: (int(charger[k]), float(auth[k])))
        for k in by_charger:
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            readings = [
                OcmfReading(float(tm[i]), int(register[i]), str(tx[i])) for i in range(lo, hi)
            ]
            tag = user_rows[int(visits.user_index[k])]["rfid_tag"]
            signed[k] = signers[int(charger[k])].session_record(
                session_ids[k], readings, rfid_identification(tag)
            )
        for fault in config.faults:
            if isinstance(fault, TamperedOcmf):
                tamper_faults.append(
                    _tamper(fault, charger, auth, dep, reg_e - reg_b, signed, tampered,
                            session_ids, charger_ids, device_ids)
                )  # fmt: skip

    metadata = np.where(offline, OFFLINE, ONLINE) | RELIABLE_CLOCK | (SIGNED if signers else 0)
    user_idx = visits.user_index
    car_names = [_car_name(i) for i in visits.car_index.tolist()]
    start_true = auth + start_lag
    frame = pl.DataFrame(
        {
            "session_id": pl.Series(session_ids, dtype=pl.String),
            "charger_id": pl.Series(charger_ids[charger].tolist(), dtype=pl.String),
            "device_id": pl.Series(device_ids[charger].tolist(), dtype=pl.String),
            "user_id": pl.Series([user_rows[u]["user_id"] for u in user_idx.tolist()], dtype=pl.String),
            "user_full_name": pl.Series([user_rows[u]["user_full_name"] for u in user_idx.tolist()], dtype=pl.String),
            "user_email": pl.Series([user_rows[u]["user_email"] for u in user_idx.tolist()], dtype=pl.String),
            "token_name": pl.Series([user_rows[u]["token_name"] for u in user_idx.tolist()], dtype=pl.String),
            "rfid_tag": pl.Series([user_rows[u]["rfid_tag"] for u in user_idx.tolist()], dtype=pl.String),
            "car_model": pl.Series(car_names, dtype=pl.String),
            "car_max_current_a": ev.car_max_a.astype(float),
            "car_phases": pl.Series(ev.car_phases, dtype=pl.Int8),
            "energy_need_kwh": visits.energy_need_kwh,
            "plug_in_utc": ts_series("plug_in_utc", visits.arrival_s),
            "start_utc": ts_series("start_utc", start_true),
            "first_current_utc": ts_series("first_current_utc", logs.first_draw_s),
            "full_utc": ts_series("full_utc", logs.full_s),
            "end_utc": ts_series("end_utc", dep),
            "cloud_end_utc": ts_series("cloud_end_utc", dep + cloud_delay),
            "start_reported_utc": ts_series(
                "start_reported_utc", reported_all(clocks, charger, start_true)
            ),
            "end_reported_utc": ts_series("end_reported_utc", reported_all(clocks, charger, dep)),
            "register_start_wh": reg_b.astype(np.int64),
            "register_end_wh": reg_e.astype(np.int64),
            "energy_kwh": np.round((reg_e - reg_b) / 1000.0, 3),
            "true_energy_kwh": np.round((true_e - true_b) / 1000.0, 6),
            "commit_metadata": pl.Series(metadata, dtype=pl.Int32),
            "is_offline": offline,
            "is_void": np.zeros(nv, dtype=bool),
            "replaced_by_session_id": pl.Series([None] * nv, dtype=pl.String),
            "ocpp_transaction_id": transaction_id,
            "signed_session": pl.Series(signed, dtype=pl.String),
            "ocmf_tampered": tampered,
        }
    )
    voids = np.flatnonzero(with_void)
    if voids.size:
        void_ids = [_uuid(rng) for _ in voids]
        void_len = rng.uniform(20.0, 300.0, voids.size)
        void = frame[voids.tolist()].with_columns(
            pl.Series("session_id", void_ids),
            pl.Series("replaced_by_session_id", [session_ids[k] for k in voids.tolist()]),
            pl.lit(True).alias("is_void"),
            pl.lit(False).alias("ocmf_tampered"),
            pl.lit(None, dtype=pl.String).alias("signed_session"),
            pl.lit(0.0).alias("energy_kwh"),
            pl.lit(0.0).alias("true_energy_kwh"),
            pl.lit(None, dtype=pl.Int64).alias("ocpp_transaction_id"),
            (pl.col("register_start_wh")).alias("register_end_wh"),
            pl.lit(VOID | OFFLINE | RELIABLE_CLOCK, dtype=pl.Int32).alias("commit_metadata"),
            pl.lit(True).alias("is_offline"),
            pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("full_utc"),
            pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("first_current_utc"),
            (pl.col("start_utc") + pl.duration(milliseconds=pl.Series(np.round(void_len * 1000).astype(np.int64)))).alias("end_utc"),
        )  # fmt: skip
        void = void.with_columns(
            pl.col("end_utc").alias("end_reported_utc"),
            (pl.col("end_utc") + pl.duration(seconds=5)).alias("cloud_end_utc"),
        )
        frame = pl.concat([frame, void])
    frame = frame.sort(["start_utc", "charger_id", "is_void"])
    return frame, intervals.sort(["ts_utc", "session_id"]), tamper_faults


def _car_name(index: int) -> str:
    from firmware_ref.demand import CAR_FLEET

    return CAR_FLEET[index].name


def _uuid(rng: np.random.Generator) -> str:
    import uuid

    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _tamper(fault, charger, auth, dep, energy_wh, signed, tampered, session_ids, charger_ids, device_ids):
    c = fault.charger_index
    candidates = [k for k in np.argsort(auth, kind="stable").tolist() if charger[k] == c]
    candidates = [k for k in candidates if energy_wh[k] > 0 and signed[k] is not None]
    if not candidates:
        return InjectedFault(
            "tampered_ocmf", charger_ids[c], device_ids[c], None, None, 0.0, "byte",
            {"triggered": False},
        )  # fmt: skip
    k = candidates[fault.session_number % len(candidates)]
    original = signed[k]
    payload_start = original.index("|") + 1
    payload_end = original.rindex("|")
    rv_at = original.rindex('"RV":', payload_start, payload_end) + len('"RV":')
    end_of_number = rv_at
    while original[end_of_number] in "0123456789.":
        end_of_number += 1
    # Raise the end reading: the last digit below 9 goes up by one (a single byte).
    last = end_of_number - 1
    while original[last] in "9.":
        last -= 1
    new_digit = str(int(original[last]) + 1)
    record = original[:last] + new_digit + original[last + 1 :]
    signed[k] = record
    tampered[k] = True
    return InjectedFault(
        "tampered_ocmf", charger_ids[c], device_ids[c], epoch_to_datetime(float(auth[k])),
        epoch_to_datetime(float(dep[k])), 1.0, "byte",
        {
            "triggered": True,
            "session_id": session_ids[k],
            "record": "SignedSession",
            "byte_offset": last,
            "original_char": original[last],
            "tampered_char": new_digit,
            "original_record": original,
            "tampered_record": record,
        },
    )  # fmt: skip


# --- periodic meter samples --------------------------------------------------------


def _meter_samples(installation, charger_ids, timelines, pilots, clocks, rng, signers, start_s, end_s):
    step = float(installation["meter_sample_interval_s"])
    grid = np.arange(math.ceil(start_s / step) * step, end_s, step)
    n = len(timelines)
    columns: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "charger", "t", "shown", "register", "true", "power", "i1", "i2", "i3", "offered",
            "emitted",
        )
    }  # fmt: skip
    ocmf: list[str | None] = []
    for c in range(n):
        t = grid + rng.uniform(0.1, 0.9, grid.size)
        t = t[t < end_s]
        tl = timelines[c]
        reg = tl.register_wh(t)
        currents = tl.terminal_currents_at(t)
        emitted = np.ones(t.size, dtype=bool)
        if t.size > 1:
            daily = np.isclose(np.mod(np.floor(t / step) * step, 86400.0), 0.0)
            emitted[1:] = (reg[1:] != reg[:-1]) | daily[1:]
        shown = reported(clocks[c], t)
        records: list[str | None] = [None] * t.size
        if signers is not None:
            signer = signers[c]
            for i in np.flatnonzero(emitted).tolist():
                records[i] = signer.fiscal_record(float(shown[i]), int(reg[i]))
        ocmf.extend(records)
        for key, values in (
            ("charger", np.full(t.size, c, dtype=np.int64)),
            ("t", t),
            ("shown", shown),
            ("register", reg),
            ("true", np.round(tl.true_wh(t), 3)),
            ("power", np.round(tl.power_w_at(t), 1)),
            ("i1", np.round(currents[:, 0], 3)),
            ("i2", np.round(currents[:, 1], 3)),
            ("i3", np.round(currents[:, 2], 3)),
            ("offered", np.round(pilots[c].at(t).astype(float), 3)),
            ("emitted", emitted),
        ):
            columns[key].append(values)
    flat = {k: np.concatenate(v) for k, v in columns.items()}
    # Time order, chargers in installation order within a time stamp.
    order = np.lexsort((flat["charger"], np.round(flat["t"] * 1000.0)))
    flat = {k: v[order] for k, v in flat.items()}
    records_series = pl.Series("ocmf", ocmf, dtype=pl.String)
    if signers is not None:
        records_series = records_series.gather(order)
    else:
        records_series = pl.Series("ocmf", [None] * order.size, dtype=pl.String)
    return pl.DataFrame(
        {
            "charger_id": pl.Series(charger_ids.tolist(), dtype=pl.String).gather(flat["charger"]),
            "ts_utc": ts_series("ts_utc", flat["t"]),
            "ts_reported_utc": ts_series("ts_reported_utc", flat["shown"]),
            "register_wh": flat["register"],
            "true_energy_wh": flat["true"],
            "power_w": flat["power"],
            "current_l1_a": flat["i1"],
            "current_l2_a": flat["i2"],
            "current_l3_a": flat["i3"],
            "offered_current_a": flat["offered"],
            "ocmf_emitted": flat["emitted"],
            "ocmf": records_series,
        }
    )


# --- line currents, allocator runs, HAN ------------------------------------------


def _household_power(installation, household) -> tuple[np.ndarray, np.ndarray]:
    """Active [W] and reactive [var] power of the household steps."""
    v = np.asarray(installation["line_voltage_v"], dtype=float)
    if installation["network_type"] == "IT":
        v = np.full(3, v.mean() / math.sqrt(3.0))
    apparent = household.current_a @ v
    p = household.power_factor * apparent
    q = apparent * math.sqrt(max(0.0, 1.0 - household.power_factor**2))
    return p, q


def _site_currents(config, installation, logs: EngineLogs, codes: LineCodes, household, start_s, end_s, rng):
    draw_t = np.asarray(logs.draw_t)
    draw_c = np.asarray(logs.draw_charger, dtype=np.int64)
    amps = np.asarray(logs.draw_a)
    code = np.asarray(logs.draw_code, dtype=np.int64)
    weights = np.asarray(codes.weights, dtype=complex)  # (codes, 3)
    watts_per_amp = np.asarray(codes.watts_per_amp)
    contrib = amps[:, None] * weights[code] if draw_t.size else np.zeros((0, 3), complex)
    power = amps * watts_per_amp[code] if draw_t.size else np.zeros(0)
    # Per-charger deltas: each row replaces the charger's previous contribution.
    order = np.lexsort((np.arange(draw_t.size), draw_c))
    prev_contrib = np.zeros_like(contrib)
    prev_power = np.zeros_like(power)
    if draw_t.size:
        same = np.concatenate([[False], draw_c[order][1:] == draw_c[order][:-1]])
        shifted = np.vstack([np.zeros((1, 3), complex), contrib[order][:-1]])
        shifted_p = np.concatenate([[0.0], power[order][:-1]])
        prev_contrib[order] = np.where(same[:, None], shifted, 0.0)
        prev_power[order] = np.where(same, shifted_p, 0.0)
    phasor = np.vstack([np.zeros((1, 3), complex), np.cumsum(contrib - prev_contrib, axis=0)])
    charger_power = np.concatenate([[0.0], np.cumsum(power - prev_power)])
    charger_steps_t = np.concatenate([[start_s], draw_t])

    run_t = np.asarray(logs.run_t)
    run_available = np.asarray(logs.run_available, dtype=float).reshape(-1, 3)
    run_allocated = np.asarray(logs.run_allocated, dtype=float).reshape(-1, 3)
    house_at_runs = household.at(run_t) if run_t.size else np.zeros((0, 3))
    runs = pl.DataFrame(
        {
            "ts_utc": ts_series("ts_utc", run_t),
            "active_chargers": pl.Series(logs.run_active, dtype=pl.Int32),
            **{f"available_l{k + 1}_a": np.round(run_available[:, k], 6) for k in range(3)},
            **{f"allocated_l{k + 1}_a": np.round(run_allocated[:, k], 6) for k in range(3)},
            **{f"household_l{k + 1}_a": house_at_runs[:, k] for k in range(3)},
        }
    )

    times = np.unique(np.concatenate([charger_steps_t, household.t_s, run_t]))
    ci = np.clip(np.searchsorted(charger_steps_t, times, side="right") - 1, 0, None)
    # The last row at a time stamp holds; searchsorted(side="right") picks it.
    chargers_a = np.abs(phasor[ci])
    house_a = household.at(times)
    total_a = chargers_a + house_a
    # Before the first allocator run (or in a span with none, e.g. one quiet day) the
    # installation's available current holds and nothing is allocated.
    available = np.full((times.size, 3), float(installation["available_current_a"]))
    allocated = np.zeros((times.size, 3))
    ri = np.searchsorted(run_t, times, side="right") - 1
    after_run = ri >= 0
    if after_run.any():
        available[after_run] = run_available[ri[after_run]]
        allocated[after_run] = run_allocated[ri[after_run]]
    fuse = float(installation["main_fuse_a"])
    # Behind the main fuse: the chargers, plus the household on APM sites (elsewhere the
    # common load sits on another circuit behind the same AMS meter).
    behind_fuse = chargers_a + house_a if installation["apm"] else chargers_a
    line_currents = pl.DataFrame(
        {
            "ts_utc": ts_series("ts_utc", times),
            **{f"chargers_l{k + 1}_a": np.round(chargers_a[:, k], 4) for k in range(3)},
            **{f"household_l{k + 1}_a": house_a[:, k] for k in range(3)},
            **{f"total_l{k + 1}_a": np.round(total_a[:, k], 4) for k in range(3)},
            **{f"available_l{k + 1}_a": np.round(available[:, k], 6) for k in range(3)},
            **{f"allocated_l{k + 1}_a": np.round(allocated[:, k], 6) for k in range(3)},
            "main_fuse_a": np.full(times.size, fuse),
            "chargers_over_available": (chargers_a > available + 1e-6).any(axis=1),
            "over_main_fuse": (behind_fuse > fuse + 1e-6).any(axis=1),
        }
    )

    # HAN: the AMS meter sees chargers plus household.
    house_p, house_q = _household_power(installation, household)
    hi_all = np.clip(np.searchsorted(household.t_s, times, side="right") - 1, 0, None)
    total_p = charger_power[ci] + house_p[hi_all]
    total_q = house_q[hi_all]
    dt_h = np.diff(np.append(times, end_s)) / 3600.0
    cum_p = np.concatenate([[0.0], np.cumsum(total_p * dt_h)[:-1]])
    cum_q = np.concatenate([[0.0], np.cumsum(total_q * dt_h)[:-1]])
    han = _han_readings(config, installation, times, total_p, total_q, cum_p, cum_q, total_a, start_s, end_s, rng)
    return runs, line_currents.sort("ts_utc"), han


def _han_readings(config, installation, times, total_p, total_q, cum_p, cum_q, total_a, start_s, end_s, rng):
    step2 = float(config.han_interval_s)
    list2 = np.arange(math.ceil(start_s / step2) * step2, end_s, step2)
    list3 = np.arange(math.ceil(start_s / 3600.0) * 3600.0, end_s + 1e-6, 3600.0)
    list2 = list2[~np.isin(list2, list3)]
    q = np.concatenate([list2, list3])
    kind = np.concatenate([np.full(list2.size, 2), np.full(list3.size, 3)])
    order = np.argsort(q, kind="stable")
    q, kind = q[order], kind[order]
    i = np.clip(np.searchsorted(times, q, side="right") - 1, 0, None)
    energy = cum_p[i] + total_p[i] * (q - times[i]) / 3600.0
    reactive = cum_q[i] + total_q[i] * (q - times[i]) / 3600.0
    v = np.asarray(installation["line_voltage_v"], dtype=float)
    volts = np.round(v[None, :] + rng.normal(0.0, 0.6, (q.size, 3)), 1)
    base = 1_000_000 * (1 + int(rng.integers(0, 40)))
    return pl.DataFrame(
        {
            "meter_id": [installation["han_meter_id"]] * q.size,
            "ts_utc": ts_series("ts_utc", q),
            "list_type": pl.Series(kind, dtype=pl.Int8),
            "power_import_w": np.round(total_p[i]).astype(np.int64),
            "power_export_w": np.zeros(q.size, dtype=np.int64),
            "reactive_import_var": np.round(total_q[i]).astype(np.int64),
            "reactive_export_var": np.zeros(q.size, dtype=np.int64),
            **{f"current_l{k + 1}_a": np.round(total_a[i, k], 3) for k in range(3)},
            **{f"voltage_l{k + 1}_v": volts[:, k] for k in range(3)},
            "energy_import_wh": (base + np.floor(energy)).astype(np.int64),
            "energy_export_wh": np.zeros(q.size, dtype=np.int64),
            "reactive_energy_import_varh": (base // 4 + np.floor(reactive)).astype(np.int64),
            "reactive_energy_export_varh": np.zeros(q.size, dtype=np.int64),
        },
        schema_overrides={"meter_id": pl.String},
    )


# --- sub-meters ------------------------------------------------------------------


def _submeter_readings(config, chargers: pl.DataFrame, timelines, start_s, end_s, rng):
    step = float(config.submeter_interval_s)
    grid = np.arange(math.ceil(start_s / step) * step, end_s + 1e-6, step)
    frames = []
    for row in chargers.filter(pl.col("submeter_id").is_not_null()).iter_rows(named=True):
        c = int(row["charger_index"])
        tl = timelines[c]
        base_10wh = int(rng.integers(10_000, 500_000))
        counted = tl.true_wh(grid) * (1.0 + float(row["submeter_gain_error"]))
        steps_10wh = base_10wh + np.floor(counted / 10.0 + 1e-9).astype(np.int64)
        currents = tl.terminal_currents_at(grid)
        frames.append(
            pl.DataFrame(
                {
                    "meter_id": [row["submeter_id"]] * grid.size,
                    "charger_id": [row["charger_id"]] * grid.size,
                    "ts_utc": ts_series("ts_utc", grid),
                    "energy_import_kwh": np.round(steps_10wh / 100.0, 2),
                    "current_l1_a": np.round(currents[:, 0], 2),
                    "current_l2_a": np.round(currents[:, 1], 2),
                    "current_l3_a": np.round(currents[:, 2], 2),
                },
                schema_overrides={"meter_id": pl.String, "charger_id": pl.String},
            )
        )
    if not frames:
        return pl.DataFrame(
            schema={
                "meter_id": pl.String,
                "charger_id": pl.String,
                "ts_utc": pl.Datetime("us", "UTC"),
                "energy_import_kwh": pl.Float64,
                "current_l1_a": pl.Float64,
                "current_l2_a": pl.Float64,
                "current_l3_a": pl.Float64,
            }
        )
    return pl.concat(frames)
