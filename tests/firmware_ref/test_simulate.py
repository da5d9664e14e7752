"""Installation simulator: determinism, energy conservation, allocator ground truth, faults."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_ref.demand import (
    draw_household_load,
    draw_visits,
    local_hour_of_day,
    local_to_epoch_s,
)
from firmware_ref.emeter import EMeter
from firmware_ref.faults import (
    ClockDrift,
    IgnoreAllocation,
    LostOcppMessages,
    MeterGainError,
    RegisterReset,
    TamperedOcmf,
)
from firmware_ref.ocmf import derive_private_key
from firmware_ref.sim_timeline import ChargerTimeline, LineCodes
from firmware_ref.simulate import SimulationConfig, simulate

OSLO = ZoneInfo("Europe/Oslo")
FRAMES = (
    "chargers",
    "sessions",
    "interval_energies",
    "meter_samples",
    "allocations",
    "allocator_runs",
    "line_currents",
    "state_observations",
    "han_readings",
    "submeter_readings",
)
# A small co-op on a tight fuse, so the load balancer has work to do.
SMALL = SimulationConfig(
    kind="coop", n_chargers=4, main_fuse_a=16.0, days=4, start=date(2025, 10, 24),
    submeter_chargers=(0,), submeter_interval_s=900.0, han_interval_s=900.0,
)  # fmt: skip
ALL_FAULTS = (
    MeterGainError(2, 0.018),
    IgnoreAllocation(1, duration_s=1200.0, min_excess_a=2.0),
    TamperedOcmf(0, session_number=0),
    RegisterReset(0, register_wh=0),
    ClockDrift(2, drift_ppm=50.0, offset_s=90.0),
    LostOcppMessages(1, duration_s=3600.0),
)


def _epoch(column: pl.Series) -> np.ndarray:
    return column.dt.epoch("us").to_numpy() / 1e6


@pytest.fixture(scope="module")
def small():
    return simulate(SMALL, 7)


@pytest.fixture(scope="module")
def faulty():
    config = SimulationConfig(
        kind="coop", n_chargers=4, main_fuse_a=20.0, days=8, start=date(2025, 10, 1),
        faults=ALL_FAULTS, submeter_chargers=(2, 3), han_interval_s=900.0,
    )  # fmt: skip
    return simulate(config, 11)


def test_same_seed_gives_identical_frames(small):
    again = simulate(SMALL, 7)
    for name in FRAMES:
        assert getattr(small, name).equals(getattr(again, name)), name
    assert small.faults == again.faults
    other = simulate(SMALL, 8)
    assert not small.sessions.equals(other.sessions)


def test_sessions_have_the_documented_columns(small):
    sessions = small.sessions
    for column in ("session_id", "charger_id", "start_utc", "end_utc", "energy_kwh",
                   "true_energy_kwh", "register_start_wh", "register_end_wh", "signed_session"):  # fmt: skip
        assert column in sessions.columns
    assert sessions["start_utc"].dtype == pl.Datetime("us", "UTC")
    real = sessions.filter(~pl.col("is_void"))
    assert real.height > 5
    assert (real["end_utc"] > real["start_utc"]).all()
    assert real["signed_session"].str.starts_with("OCMF|").all()


def test_energy_is_conserved(small):
    real = small.sessions.filter(~pl.col("is_void"))
    per_session = small.interval_energies.group_by("session_id").agg(
        pl.col("energy_kwh").sum().alias("sum_kwh"),
        pl.col("true_energy_kwh").sum().alias("sum_true_kwh"),
    )
    joined = real.join(per_session, on="session_id")
    assert joined.height == real.height
    register_kwh = (joined["register_end_wh"] - joined["register_start_wh"]) / 1000.0
    np.testing.assert_allclose(joined["sum_kwh"], joined["energy_kwh"], atol=1e-9)
    np.testing.assert_allclose(joined["energy_kwh"], register_kwh, atol=1e-9)
    np.testing.assert_allclose(joined["sum_true_kwh"], joined["true_energy_kwh"], atol=1e-5)
    # Delivered energy never exceeds what the car asked for, and most cars get it all.
    assert (joined["true_energy_kwh"] <= joined["energy_need_kwh"] + 1e-6).all()
    assert (joined["true_energy_kwh"] > 0).all()
    # The billed energy follows the meter's true gain error within the Wh resolution.
    gains = dict(zip(small.chargers["charger_id"], small.chargers["meter_gain_error"], strict=True))
    expected = joined["true_energy_kwh"] * (1 + joined["charger_id"].replace_strict(gains))
    assert (joined["energy_kwh"] - expected).abs().max() <= 0.0011


def test_register_model_matches_the_emeter():
    codes = LineCodes("TN", (230.0, 231.0, 229.0))
    code3 = codes.code("RST", 3, ("L1", "L2", "L3"))
    code1 = codes.code("RST", 1, ("L2",))
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(10, 3000, 200)) + 1.7e9
    amps = np.where(rng.random(200) < 0.3, 0.0, rng.uniform(6, 32, 200))
    code = np.where(rng.random(200) < 0.5, code3, code1)
    timeline = ChargerTimeline(1.7e9, t[-1] + 100, t, amps, code, codes, gain_error=0.018,
                               register_start_wh=1234)  # fmt: skip
    meter = EMeter(register_wh=1234, t_s=1.7e9, gain_error=0.018)
    previous = np.zeros(3)
    registers = []
    for k in range(t.size):
        meter.advance(t[k], previous)
        registers.append(meter.register_wh)
        watts = np.zeros(3)
        for line in codes.lines[code[k]]:
            watts[int(line[1]) - 1] = amps[k] * codes.line_voltage_v[int(line[1]) - 1]
        previous = watts
    ours = timeline.register_wh(t)
    assert np.abs(ours - np.array(registers)).max() <= 1
    assert (ours == np.array(registers)).mean() > 0.98


def test_allocator_never_exceeds_the_available_current(small):
    runs = small.allocator_runs
    assert runs.height > 0
    for k in (1, 2, 3):
        assert (runs[f"allocated_l{k}_a"] <= runs[f"available_l{k}_a"] + 1e-6).all()
    # The fuse binds sometimes: the load balancer was exercised.
    assert small.allocations["binding_constraint"].str.starts_with("fuse_").any()
    # Every active charger gets at least 6 A or is paused.
    active = small.allocations.filter(pl.col("binding_constraint") != "inactive")
    assert ((active["allocated_current_a"] >= 6.0 - 1e-9) | active["paused"]).all()
    # Actual currents stay within the limit (decreases are signalled before increases).
    assert not small.line_currents["chargers_over_available"].any()
    assert not small.line_currents["over_main_fuse"].any()


def _episodes(frame: pl.DataFrame, flag: str) -> list[tuple[float, float]]:
    t = _epoch(frame["ts_utc"])
    f = frame[flag].to_numpy()
    out, k = [], 0
    while k < f.size:
        if f[k]:
            j = k
            while j < f.size and f[j]:
                j += 1
            out.append((t[k], (t[j] if j < t.size else t[-1]) - t[k]))
            k = j
        else:
            k += 1
    return out


def test_apm_home_keeps_the_fuse_within_the_pilot_grace_window():
    config = SimulationConfig(kind="home", n_chargers=2, days=3, start=date(2025, 10, 1))
    result = simulate(config, 5)
    assert result.installation["apm"]
    runs = result.allocator_runs
    for k in (1, 2, 3):
        used = runs[f"allocated_l{k}_a"] + runs[f"household_l{k}_a"]
        assert (used <= config.fuse_a - config.apm_margin_a + 1e-6).all()
    # Household steps the chargers must react to may overload for at most the PWM
    # rate limit plus the car's response (5 s + 5 s).
    assert all(duration <= 10.5 for _, duration in _episodes(result.line_currents, "over_main_fuse"))


def test_it_network_uses_phasor_line_currents():
    config = SimulationConfig(kind="coop", n_chargers=3, network="IT", days=2, main_fuse_a=25.0)
    result = simulate(config, 3)
    lc = result.line_currents
    assert lc.height > 0 and not lc["chargers_over_available"].any()
    charging = result.meter_samples.filter(pl.col("power_w") > 0)
    assert charging.height > 0
    # On IT a 3-phase charge gives sqrt(3) x 230 V x I, a 1-phase charge 230 V x I.
    v = np.mean(result.installation["line_voltage_v"])
    currents = charging.select("current_l1_a", "current_l2_a", "current_l3_a").to_numpy()
    per_amp = charging["power_w"].to_numpy() / currents.max(axis=1)
    loaded = (currents > 0).sum(axis=1)
    three = loaded == 3
    assert np.allclose(per_amp[three], np.sqrt(3) * v, rtol=0.02)
    assert np.allclose(per_amp[~three], v, rtol=0.02)


def test_dst_day_has_one_hundred_quarter_hours(small):
    day_start = datetime(2025, 10, 26, tzinfo=OSLO).timestamp()
    day_end = datetime(2025, 10, 27, tzinfo=OSLO).timestamp()
    assert day_end - day_start == 25 * 3600
    t = _epoch(small.meter_samples["ts_utc"])
    charger = small.chargers["charger_id"][0]
    mine = small.meter_samples["charger_id"].to_numpy() == charger
    assert ((t >= day_start) & (t < day_end) & mine).sum() == 100


def test_arrivals_follow_the_daily_rhythm():
    rng = np.random.default_rng(1)
    start = date(2025, 10, 6)
    home = draw_visits("coop", 40, start, 10, OSLO, rng)
    work = draw_visits("workplace", 40, start, 10, OSLO, rng)
    assert 15.0 < np.median(local_hour_of_day(home.arrival_s, OSLO)) < 20.5
    assert 6.5 < np.median(local_hour_of_day(work.arrival_s, OSLO)) < 9.5
    # Residents mostly stay overnight; employees leave the same afternoon.
    assert np.median(home.departure_s - home.arrival_s) > 8 * 3600
    assert np.median(work.departure_s - work.arrival_s) < 10 * 3600
    for visits in (home, work):
        for c in range(40):
            mine = np.flatnonzero(visits.charger_index == c)
            assert (visits.arrival_s[mine][1:] >= visits.departure_s[mine][:-1]).all()


def test_local_time_conversion_across_dst():
    # 07:00 local on the day the clocks go back is 8 elapsed hours after midnight.
    midnight = local_to_epoch_s(date(2025, 10, 26), 0.0, OSLO)
    assert local_to_epoch_s(date(2025, 10, 26), 7.0, OSLO) - midnight == 8 * 3600
    assert local_to_epoch_s(date(2025, 10, 25), 31.0, OSLO) == local_to_epoch_s(
        date(2025, 10, 26), 7.0, OSLO
    )


def test_household_load_is_piecewise_constant_and_capped():
    start = datetime(2025, 10, 1, tzinfo=UTC).timestamp()
    load = draw_household_load("home", start, start + 2 * 86400, OSLO, np.random.default_rng(2), 28.0)
    assert (np.diff(load.t_s) > 0).all() and load.t_s[0] == start
    assert load.current_a.max() <= 28.0 and load.current_a.min() >= 0.0
    assert np.array_equal(load.at(load.t_s[3] + 1.0), load.current_a[3])


def test_faults_are_in_the_ground_truth(faulty):
    kinds = sorted(f.kind for f in faulty.faults)
    assert kinds == sorted(
        ["meter_gain_error", "ignore_allocation", "tampered_ocmf", "register_reset",
         "clock_drift", "lost_ocpp_messages"]  # fmt: skip
    )
    by_kind = {f.kind: f for f in faulty.faults}
    ids = faulty.chargers["charger_id"].to_list()
    assert by_kind["meter_gain_error"].charger_id == ids[2]
    assert by_kind["meter_gain_error"].magnitude == pytest.approx(0.018)
    assert json.loads(json.dumps([f.to_json() for f in faulty.faults]))


def test_gain_error_shows_in_billed_energy(faulty):
    charger = faulty.chargers["charger_id"][2]
    real = faulty.sessions.filter((pl.col("charger_id") == charger) & ~pl.col("is_void"))
    ratio = real["energy_kwh"].sum() / real["true_energy_kwh"].sum()
    assert ratio == pytest.approx(1.018, abs=0.001)


def test_ignoring_charger_draws_more_than_allocated(faulty):
    fault = next(f for f in faulty.faults if f.kind == "ignore_allocation")
    assert fault.details["triggered"]
    assert fault.magnitude >= 2.0
    assert (fault.end_utc - fault.start_utc).total_seconds() == pytest.approx(1200.0, abs=1.0)
    obs = faulty.state_observations.filter(pl.col("charger_id") == fault.charger_id)
    setpoints = obs.filter(pl.col("state_id") == 708)
    within = setpoints.filter(
        (pl.col("ts_utc") >= fault.start_utc) & (pl.col("ts_utc") < fault.end_utc)
    )
    allocated = float(within["value"].cast(pl.Float64).min())
    samples = faulty.meter_samples.filter(
        (pl.col("charger_id") == fault.charger_id)
        & (pl.col("ts_utc") > fault.start_utc + timedelta(seconds=30))
        & (pl.col("ts_utc") < fault.end_utc)
    )
    assert samples.height >= 1
    drawn = samples.select(pl.max_horizontal("current_l1_a", "current_l2_a", "current_l3_a"))
    assert (drawn.to_series() > allocated + 1.0).all()
    # No other charger's current leaves the allocation; only this window may overload.
    outside = [
        (t, d) for t, d in _episodes(faulty.line_currents, "chargers_over_available")
        if not (fault.start_utc.timestamp() - 1 <= t <= fault.end_utc.timestamp() + 1)
    ]  # fmt: skip
    assert outside == []


def test_register_reset_drops_the_register(faulty):
    fault = next(f for f in faulty.faults if f.kind == "register_reset")
    samples = faulty.meter_samples.filter(pl.col("charger_id") == fault.charger_id)
    before = samples.filter(pl.col("ts_utc") < fault.start_utc)["register_wh"]
    after = samples.filter(pl.col("ts_utc") >= fault.start_utc)["register_wh"]
    assert before.max() == fault.details["register_before_wh"]
    assert after.min() < 1000 < before.max()
    assert fault.magnitude == fault.details["register_before_wh"]


def test_clock_drift_shows_in_reported_times(faulty):
    fault = next(f for f in faulty.faults if f.kind == "clock_drift")
    obs = faulty.state_observations.filter(pl.col("charger_id") == fault.charger_id)
    error = _epoch(obs["ts_reported_utc"]) - _epoch(obs["ts_utc"])
    assert error.min() >= 90.0 - 1e-3
    assert error.max() > error.min()
    others = faulty.state_observations.filter(pl.col("charger_id") != fault.charger_id)
    assert (others["ts_reported_utc"] == others["ts_utc"]).all()


def _verify(record: str, device_id: str, seed: int) -> bool:
    _, payload, signature = record.split("|", 2)
    sig = json.loads(signature)
    key = derive_private_key(seed, device_id).public_key()
    try:
        key.verify(base64.b64decode(sig["SD"]), payload.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def test_tampered_record_fails_and_the_rest_verify(faulty):
    fault = next(f for f in faulty.faults if f.kind == "tampered_ocmf")
    assert fault.details["triggered"]
    signed = faulty.sessions.filter(pl.col("signed_session").is_not_null())
    verdicts = {
        row["session_id"]: _verify(row["signed_session"], row["device_id"], faulty.seed)
        for row in signed.iter_rows(named=True)
    }
    assert verdicts.pop(fault.details["session_id"]) is False
    assert all(verdicts.values())
    original = fault.details["original_record"]
    assert _verify(original, fault.device_id, faulty.seed)
    assert sum(a != b for a, b in zip(original, fault.details["tampered_record"], strict=True)) == 1


def test_session_record_readings_match_the_interval_energies(small):
    row = small.sessions.filter(~pl.col("is_void")).row(0, named=True)
    payload = json.loads(row["signed_session"].split("|")[1])
    rv = [reading["RV"] for reading in payload["RD"]]
    assert [r["TX"] for r in payload["RD"]][0] == "B" and payload["RD"][-1]["TX"] == "E"
    details = small.interval_energies.filter(pl.col("session_id") == row["session_id"]).sort("ts_utc")
    assert np.allclose(np.diff(rv), details["energy_kwh"].to_numpy()[1:], atol=1e-9)
    assert rv[-1] - rv[0] == pytest.approx(row["energy_kwh"], abs=1e-9)


def test_one_observation_per_state_and_time_stamp(faulty):
    obs = faulty.state_observations
    assert obs.height > 0
    assert obs.select("charger_id", "state_id", "ts_utc").is_duplicated().sum() == 0
    modes = obs.filter(pl.col("state_id") == 710).sort("charger_id", "ts_utc", maintain_order=True)
    repeated = modes.select(
        (pl.col("value") == pl.col("value").shift(1).over("charger_id")).fill_null(False)
    ).to_series()
    assert not repeated.any()
