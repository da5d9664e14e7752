"""Installation simulator: a day to a year of an installation, with ground truth.

``simulate(config, seed) -> SimulationResult`` runs a discrete-event simulation of
one installation (a home with up to three chargers on APM, a housing co-op or a
workplace with dozens of chargers) and returns polars frames of everything the real
sources would show plus what really happened. :mod:`firmware_ref.formats` writes the
frames out in the real source formats.

How it works: cars arrive, authorise, charge and leave (:mod:`firmware_ref.demand`);
the reference allocator (:mod:`firmware_ref.allocator`) shares the available current
on every change; chargers change the pilot at most every 5 s and cars follow within
the grace window (:mod:`firmware_ref.pilot`, :mod:`firmware_ref.sim_engine`); meters
integrate exactly between events (:mod:`firmware_ref.sim_timeline`); faults are
injected as configured (:mod:`firmware_ref.faults`). Same config and seed, same
result: all randomness comes from a numpy Generator seeded from ``seed``; no wall
clock, no set or dict order is involved.

All times are tz-aware UTC (``Datetime("us", "UTC")``, rounded to the millisecond).
Times a charger *reports* (its clock may drift, see :class:`~firmware_ref.faults.ClockDrift`)
are in ``*_reported_utc`` columns.

Frames
------
``installation`` (dict) : installation_id, name, address, zip_code, city, kind,
    network_type, main_fuse_a [A], available_current_a [A], apm, timezone, price_area,
    circuit_id, circuit_name, han_meter_id, line_voltage_v [V] (per line: L-N on TN,
    L-L on IT), start_utc, end_utc, model, device_type, firmware_version,
    ocmf_gateway_id, meter_firmware, energy_details_interval_s [s],
    meter_sample_interval_s [s].
``chargers`` : charger_index, charger_id, device_id, name, model, device_type,
    circuit_id, phase_rotation, max_current_a [A], firmware_version,
    meter_gain_error [fraction], meter_offset_w [W], register_start_wh [Wh],
    submeter_id (null when none), submeter_gain_error [fraction].
``sessions`` : session_id, charger_id, device_id, user_id, user_full_name,
    user_email, token_name, rfid_tag, car_model, car_max_current_a [A], car_phases,
    energy_need_kwh [kWh], plug_in_utc, start_utc (authorisation), first_current_utc,
    full_utc (car stopped drawing; null if it left first), end_utc (unplugged: the
    real end, ``CommitEndDateTime``), cloud_end_utc (when the cloud closed it:
    ``EndDateTime``), start_reported_utc, end_reported_utc, register_start_wh [Wh],
    register_end_wh [Wh], energy_kwh [kWh] (register difference, what is billed),
    true_energy_kwh [kWh] (delivered), commit_metadata (Zaptec bitmask), is_offline,
    is_void, replaced_by_session_id, ocpp_transaction_id, signed_session (OCMF, null
    when signing is off), ocmf_tampered.
``interval_energies`` : session_id, charger_id, tx ('B' start, 'T' tick, 'E' end),
    ts_utc, ts_reported_utc, register_wh [Wh], energy_kwh [kWh] (register delta since
    the previous reading; 0 at 'B'), true_energy_kwh [kWh] (delivered in the same
    interval). Ticks fall on the quarter hour (Pro/Home) or the hour (Go), a second
    or so late, as Zaptec's EnergyDetails do. Rows are stamped at the interval end.
``meter_samples`` (time order) : charger_id, ts_utc, ts_reported_utc, register_wh [Wh],
    true_energy_wh [Wh] (delivered since the simulation start), power_w [W],
    current_l1_a, current_l2_a, current_l3_a [A] (charger terminals),
    offered_current_a [A] (pilot), ocmf_emitted (a periodic signed record, StateId
    554, is sent: the register moved since the previous sample, or 00:00 UTC),
    ocmf (the record, null when not emitted or signing is off).
``allocations`` : ts_utc, charger_id, allocated_current_a [A], phases, lines
    ("L1,L2,L3"), paused, binding_constraint. A change log: a row holds until the
    charger's next row.
``allocator_runs`` : ts_utc, active_chargers, available_l{1,2,3}_a [A],
    allocated_l{1,2,3}_a [A] (charger load per line the allocation implies),
    household_l{1,2,3}_a [A] (load the allocator knew of, APM).
``line_currents`` : ts_utc, chargers_l{n}_a, household_l{n}_a, total_l{n}_a,
    available_l{n}_a, allocated_l{n}_a [A], main_fuse_a [A], chargers_over_available
    (charger load above the current the allocator had), over_main_fuse (load behind the
    main fuse above it: chargers, plus the household on APM sites; elsewhere the common
    load has its own circuit behind the same AMS meter). A change log of the actual
    currents on supply lines L1..L3 (phasor magnitudes on IT); total = chargers +
    household/common load, as the AMS meter sees it.
``state_observations`` : ts_utc, ts_reported_utc, charger_id, device_id, state_id,
    state_name, value (string, as Zaptec sends it): 501-503 voltages [V], 507-509
    currents [A], 513 power [W], 519 SetPhases, 554 SignedMeterValue, 708
    ChargeCurrentSet [A], 710 ChargerOperationMode, 721 SessionIdentifier.
``han_readings`` : meter_id, ts_utc, list_type (2 or 3), power_import_w [W],
    power_export_w [W], reactive_import_var [var], reactive_export_var [var],
    current_l{1,2,3}_a [A], voltage_l{1,2,3}_v [V], energy_import_wh [Wh],
    energy_export_wh [Wh], reactive_energy_import_varh, reactive_energy_export_varh
    (cumulative registers of the installation's AMS meter; List 3 carries them).
``submeter_readings`` : meter_id, charger_id, ts_utc, energy_import_kwh [kWh]
    (cumulative, 10 Wh resolution), current_l{1,2,3}_a [A].
``faults`` : tuple of :class:`~firmware_ref.faults.InjectedFault` (ground truth).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from firmware_ref.allocator import PhaseSwitchConfig
from firmware_ref.charger import GO, HOME, PRO, ChargerModel
from firmware_ref.demand import (
    CAR_FLEET,
    INSTALLATION_KINDS,
    draw_household_load,
    draw_users,
    draw_visits,
    local_to_epoch_s,
)
from firmware_ref.faults import (
    ClockDrift,
    Fault,
    IgnoreAllocation,
    InjectedFault,
    MeterGainError,
    RegisterReset,
)
from firmware_ref.grid import spread_phase_rotations
from firmware_ref.products import check_product_limits
from firmware_ref.sim_engine import Engine, EngineSite, EngineVisits, IgnoreFaultPlan
from firmware_ref.sim_faults import first_idle_moment, ground_truth_faults
from firmware_ref.sim_outputs import build_outputs
from firmware_ref.sim_timeline import ChargerTimeline, StepSeries, epoch_to_datetime

__all__ = [
    "CHARGER_MODELS",
    "SimulationConfig",
    "SimulationResult",
    "simulate",
]

#: Charger models by name; the serial prefix of the Pro follows the API's "ZPR…" ids.
CHARGER_MODELS: dict[str, ChargerModel] = {
    "pro": replace(PRO, serial_prefix="ZPR"),
    "home": HOME,
    "go": GO,
}
DEVICE_TYPE = {"pro": 1, "home": 1, "go": 4}
ENERGY_DETAILS_INTERVAL_S = {"pro": 900.0, "home": 900.0, "go": 3600.0}

_DEFAULT_FUSE_A = {"home": 40.0, "coop": 63.0, "workplace": 63.0}
_DEFAULT_MODEL = {"home": "home", "coop": "pro", "workplace": "pro"}


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    Parameters
    ----------
    kind : {'home', 'coop', 'workplace'}
        Installation kind: sets the daily rhythm, the household or common load and
        the defaults below.
    n_chargers : int
        Number of chargers (Home: at most 3, Pro: at most 100).
    main_fuse_a : float, optional
        Main fuse of the charging installation [A]; default 40 A (home), 63 A.
    network : {'TN', 'IT'}
        Supply network (3-phase; TN 230/400 V, IT 3 x 230 V).
    start : datetime.date
        First local day simulated.
    days : int
        Number of days.
    timezone : str
        IANA zone of the installation.
    price_area : str
        Nord Pool bidding zone (NO1...NO5).
    available_current_a : float, optional
        Installation ``AvailableCurrent`` per line [A]; default the main fuse.
    apm : bool, optional
        Available current follows the HAN-measured household load (default on for
        homes, off otherwise: co-ops and workplaces keep their common load on another
        circuit behind the same AMS meter).
    apm_margin_a : float
        Margin kept free under APM [A].
    charger_model : {'pro', 'home', 'go'}, optional
        Default: 'home' for homes, 'pro' otherwise.
    charger_max_current_a : float
        ``maxChargeCurrent`` of every charger [A].
    phase_switching : bool
        1↔3-phase switching of the allocator (an installation setting, off unless
        enabled).
    three_to_one_current_a : float
        ``ThreeToOnePhaseSwitchCurrent`` [A].
    faults : tuple of Fault
        Faults to inject (:mod:`firmware_ref.faults`).
    healthy_gain_sigma : float
        Spread of the true gain error of healthy meters [fraction] (well inside ±1 %).
    meter_sample_interval_s : float, optional
        Interval of ``meter_samples`` and periodic OCMF records [s]; default the
        model's ``meterValueInterval`` (Pro 900 s).
    han_interval_s : float
        Interval of List 2 readings in ``han_readings`` [s].
    submeter_chargers : tuple of int
        Chargers with a MID sub-meter.
    submeter_interval_s : float
        Interval of sub-meter readings [s].
    sign_ocmf : bool
        Build and sign OCMF records (each signature costs ~0.2 ms; turn off for large
        benchmark runs).
    periodic_ocmf : bool, optional
        Also build the periodic signed register records (StateId 554); default: as
        ``sign_ocmf``. A year of 100 Pro chargers emits ~300 000 of them.
    void_session_share, offline_session_share : float
        Share of sessions that come with a void twin (replaced session) / that were
        recorded offline and reached the cloud late [fraction].
    installation_name : str, optional
        Display name; a default is made from the kind.
    enforce_product_limits : bool
        Refuse what the product's manual does not allow: more chargers in one
        installation, a larger installation fuse, or a higher charge current
        (:func:`firmware_ref.products.check_product_limits`; e.g. ZAPTEC HOME: at most 3
        chargers on at most 40 A). Turn off only for load studies beyond one product
        installation, such as a fleet-sized benchmark on one large supply.

    Raises
    ------
    firmware_ref.products.ProductLimitError
        When ``enforce_product_limits`` and a manual's limit is exceeded.
    """

    kind: str = "coop"
    n_chargers: int = 8
    main_fuse_a: float | None = None
    network: str = "TN"
    start: date = date(2025, 10, 1)
    days: int = 31
    timezone: str = "Europe/Oslo"
    price_area: str = "NO1"
    available_current_a: float | None = None
    apm: bool | None = None
    apm_margin_a: float = 1.0
    charger_model: str | None = None
    charger_max_current_a: float = 32.0
    phase_switching: bool = False
    three_to_one_current_a: float = 15.0
    faults: tuple[Fault, ...] = ()
    healthy_gain_sigma: float = 0.002
    meter_sample_interval_s: float | None = None
    han_interval_s: float = 60.0
    submeter_chargers: tuple[int, ...] = ()
    submeter_interval_s: float = 300.0
    sign_ocmf: bool = True
    periodic_ocmf: bool | None = None
    void_session_share: float = 0.02
    offline_session_share: float = 0.02
    installation_name: str | None = None
    enforce_product_limits: bool = True

    def __post_init__(self) -> None:
        if self.kind not in INSTALLATION_KINDS:
            raise ValueError(f"kind must be one of {INSTALLATION_KINDS}, got {self.kind!r}")
        if self.network not in ("TN", "IT"):
            raise ValueError(f"network must be 'TN' or 'IT', got {self.network!r}")
        if self.n_chargers < 1:
            raise ValueError("n_chargers must be at least 1")
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if self.model_name not in CHARGER_MODELS:
            raise ValueError(f"charger_model must be one of {sorted(CHARGER_MODELS)}")
        if self.enforce_product_limits:
            check_product_limits(
                CHARGER_MODELS[self.model_name],
                chargers=self.n_chargers,
                installation_fuse_a=self.fuse_a,
                charger_max_current_a=self.charger_max_current_a,
            )
        for fault in self.faults:
            if not 0 <= fault.charger_index < self.n_chargers:
                raise ValueError(f"fault on charger {fault.charger_index}: no such charger")
        for index in self.submeter_chargers:
            if not 0 <= index < self.n_chargers:
                raise ValueError(f"sub-meter on charger {index}: no such charger")

    @property
    def model_name(self) -> str:
        """Charger model name ('pro', 'home' or 'go')."""
        return self.charger_model or _DEFAULT_MODEL[self.kind]

    @property
    def fuse_a(self) -> float:
        """Main fuse [A]."""
        return float(self.main_fuse_a if self.main_fuse_a is not None else _DEFAULT_FUSE_A[self.kind])

    @property
    def uses_apm(self) -> bool:
        """Whether the allocator follows the household load."""
        return self.apm if self.apm is not None else self.kind == "home"


@dataclass
class SimulationResult:
    """Frames of one simulated installation; see the module docstring for columns.

    Besides the frames it keeps the per-charger timelines, so format writers can
    read registers and currents at any time (:meth:`register_wh_at`).
    """

    config: SimulationConfig
    seed: int
    installation: dict
    chargers: pl.DataFrame
    sessions: pl.DataFrame
    interval_energies: pl.DataFrame
    meter_samples: pl.DataFrame
    allocations: pl.DataFrame
    allocator_runs: pl.DataFrame
    line_currents: pl.DataFrame
    state_observations: pl.DataFrame
    han_readings: pl.DataFrame
    submeter_readings: pl.DataFrame
    faults: tuple[InjectedFault, ...]
    stats: dict = field(default_factory=dict)
    timelines: list[ChargerTimeline] = field(default_factory=list, repr=False)
    pilots: list[StepSeries] = field(default_factory=list, repr=False)
    offered_power: list[StepSeries] = field(default_factory=list, repr=False)
    clock: list[tuple[float, float, float]] = field(default_factory=list, repr=False)

    def register_wh_at(self, charger_index: int, t_s: np.ndarray) -> np.ndarray:
        """Register of a charger's meter at epoch times ``t_s`` [Wh]."""
        return self.timelines[charger_index].register_wh(np.asarray(t_s, dtype=float))

    def offered_current_at(self, charger_index: int, t_s: np.ndarray) -> np.ndarray:
        """Current signalled on a charger's pilot at epoch times ``t_s`` [A]."""
        return self.pilots[charger_index].at(np.asarray(t_s, dtype=float)).astype(float)

    def offered_power_w_at(self, charger_index: int, t_s: np.ndarray) -> np.ndarray:
        """Power the pilot offers (offered current x voltage x phases) at ``t_s`` [W]."""
        return self.offered_power[charger_index].at(np.asarray(t_s, dtype=float)).astype(float)

    def reported_time(self, charger_index: int, t_s: np.ndarray) -> np.ndarray:
        """Times as a charger's clock shows them [s since epoch]."""
        return reported_time(self.clock[charger_index], np.asarray(t_s, dtype=float))


def reported_time(clock: tuple[float, float, float], t_s: np.ndarray) -> np.ndarray:
    """Apply a clock error ``(start_s, offset_s, drift_ppm)`` to true times [s]."""
    start_s, offset_s, drift_ppm = clock
    if offset_s == 0.0 and drift_ppm == 0.0:
        return t_s
    error = offset_s + drift_ppm * 1e-6 * (t_s - start_s)
    return np.where(t_s >= start_s, t_s + error, t_s)


# --- identities -------------------------------------------------------------------

def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _installation_name(kind: str) -> tuple[str, str, str, str]:
    if kind == "coop":
        return "Solsikken borettslag - garasje", "Solsikkeveien 12", "0580", "Oslo"
    if kind == "workplace":
        return "Fjordparken kontorbygg - P-kjeller", "Fjordalléen 4", "0250", "Oslo"
    return "Eneboligen Bakkeli", "Bakkeliveien 7", "1363", "Høvik"


def _charger_name(kind: str, index: int) -> str:
    if kind == "coop":
        return f"Plass {index + 1:02d}"
    if kind == "workplace":
        return f"P-kjeller lader {index + 1:03d}"
    return f"Lader {index + 1}"


# --- the simulation -------------------------------------------------------------


def simulate(config: SimulationConfig, seed: int) -> SimulationResult:
    """Simulate an installation.

    Parameters
    ----------
    config : SimulationConfig
        What to simulate.
    seed : int
        Seed of every random draw; the same config and seed give the same result.

    Returns
    -------
    SimulationResult
        Frames of observations and ground truth (columns in the module docstring).
    """
    streams = np.random.SeedSequence(seed).spawn(8)
    rng_ids, rng_visits, rng_load, rng_meter, rng_timing, rng_out, rng_site, _ = (
        np.random.default_rng(s) for s in streams
    )
    tz = ZoneInfo(config.timezone)
    model = CHARGER_MODELS[config.model_name]
    n = config.n_chargers
    start_s = local_to_epoch_s(config.start, 0.0, tz)
    end_s = local_to_epoch_s(config.start + timedelta(days=config.days), 0.0, tz)

    # Identities.
    installation_id = _uuid(rng_ids)
    circuit_id = _uuid(rng_ids)
    charger_ids = [_uuid(rng_ids) for _ in range(n)]
    serials = rng_ids.choice(np.arange(100000, 1000000), size=n, replace=False)
    device_ids = [f"{model.serial_prefix}{int(s):06d}" for s in serials]
    rotations = spread_phase_rotations([circuit_id] * n)
    han_meter_id = f"69706314{int(rng_ids.integers(10**7, 10**8)):08d}"
    name, address, zip_code, city = _installation_name(config.kind)

    # Meters: healthy gains spread well inside ±1 %, faults override.
    gains = np.round(rng_meter.normal(0.0, config.healthy_gain_sigma, n), 5)
    register_start = rng_meter.integers(150_000, 4_000_000, n)
    sub_gains = np.round(rng_meter.normal(0.0, 0.0005, n), 5)
    for fault in config.faults:
        if isinstance(fault, MeterGainError):
            gains[fault.charger_index] = fault.gain_error

    # Visits and the household or common load.
    visits = draw_visits(config.kind, n, config.start, config.days, tz, rng_visits, end_s=end_s)
    nv = len(visits)
    car_max = np.array([c.max_current_a for c in CAR_FLEET])[visits.car_index]
    car_phases = np.array([c.phases for c in CAR_FLEET])[visits.car_index]
    auth_delay = rng_timing.uniform(4.0, 45.0, nv)
    engine_visits = EngineVisits(
        charger=visits.charger_index,
        arrival_s=visits.arrival_s,
        auth_s=np.minimum(visits.arrival_s + auth_delay, visits.departure_s - 1.0),
        departure_s=visits.departure_s,
        energy_need_wh=visits.energy_need_kwh * 1000.0,
        car_max_a=np.minimum(car_max, config.charger_max_current_a),
        car_phases=car_phases,
        follow_delay_s=rng_timing.uniform(1.0, 4.5, nv),
        start_delay_s=rng_timing.uniform(2.0, 15.0, nv),
    )
    load_cap = config.fuse_a * (0.7 if config.kind == "home" else 0.15)
    household = draw_household_load(config.kind, start_s, end_s, tz, rng_load, load_cap)
    voltages = tuple(float(v) for v in np.round(rng_site.normal(231.0, 1.5, 3), 2))

    available = (
        float(config.available_current_a)
        if config.available_current_a is not None
        else config.fuse_a
    )
    site = EngineSite(
        charger_ids=charger_ids,
        phase_rotations=rotations,
        charger_max_current_a=config.charger_max_current_a,
        network_type=config.network,
        line_voltage_v=voltages,  # type: ignore[arg-type]
        main_fuse_a=config.fuse_a,
        available_current_a=available,
        apm=config.uses_apm,
        apm_margin_a=config.apm_margin_a,
        phase_switch=PhaseSwitchConfig(
            enabled=config.phase_switching,
            three_to_one_current_a=config.three_to_one_current_a,
        ),
        soft_start_s=model.soft_start_s,
        soft_start_current_a=model.soft_start_current_a,
    )

    ignore_plans = []
    for fault in config.faults:
        if isinstance(fault, IgnoreAllocation):
            not_before = (
                fault.not_before.timestamp() if fault.not_before is not None else start_s + 86400.0
            )
            ignore_plans.append(
                IgnoreFaultPlan(
                    fault.charger_index,
                    not_before,
                    fault.duration_s,
                    fault.draw_a,
                    fault.min_excess_a,
                )
            )

    engine = Engine(site, engine_visits, household.t_s, household.current_a, start_s, end_s, ignore_plans)
    logs = engine.run()

    # Register resets and clocks.
    resets: dict[int, tuple[float, int]] = {}
    clocks = [(start_s, 0.0, 0.0)] * n
    for fault in config.faults:
        if isinstance(fault, RegisterReset):
            at = fault.at.timestamp() if fault.at is not None else None
            if at is None:
                at = first_idle_moment(visits, fault.charger_index, 0.5 * (start_s + end_s))
            resets[fault.charger_index] = (at, int(fault.register_wh))
        elif isinstance(fault, ClockDrift):
            begin = fault.start.timestamp() if fault.start is not None else start_s
            clocks[fault.charger_index] = (begin, float(fault.offset_s), float(fault.drift_ppm))

    draw_t = np.asarray(logs.draw_t)
    draw_c = np.asarray(logs.draw_charger, dtype=np.int64)
    draw_a = np.asarray(logs.draw_a)
    draw_code = np.asarray(logs.draw_code, dtype=np.int64)
    pilot_t = np.asarray(logs.pilot_t)
    pilot_c = np.asarray(logs.pilot_charger, dtype=np.int64)
    pilot_a = np.asarray(logs.pilot_a)
    pilot_w = pilot_a * np.asarray(engine.codes.watts_per_amp)[
        np.asarray(logs.pilot_code, dtype=np.int64)
    ]
    timelines: list[ChargerTimeline] = []
    pilots: list[StepSeries] = []
    offered_power: list[StepSeries] = []
    for c in range(n):
        sel = draw_c == c
        reset = resets.get(c)
        timelines.append(
            ChargerTimeline(
                start_s,
                end_s,
                draw_t[sel],
                draw_a[sel],
                draw_code[sel],
                engine.codes,
                gain_error=float(gains[c]),
                register_start_wh=int(register_start[c]),
                reset_s=reset[0] if reset else None,
                reset_wh=reset[1] if reset else 0,
            )
        )
        psel = pilot_c == c
        pilots.append(
            StepSeries(
                np.concatenate([[start_s], pilot_t[psel]]),
                np.concatenate([[0.0], pilot_a[psel]]),
            )
        )
        offered_power.append(
            StepSeries(
                np.concatenate([[start_s], pilot_t[psel]]),
                np.concatenate([[0.0], pilot_w[psel]]),
            )
        )

    sample_interval = config.meter_sample_interval_s or model.periodic_meter_interval_s
    installation = {
        "installation_id": installation_id,
        "name": config.installation_name or name,
        "address": address,
        "zip_code": zip_code,
        "city": city,
        "kind": config.kind,
        "network_type": config.network,
        "main_fuse_a": config.fuse_a,
        "available_current_a": available,
        "apm": config.uses_apm,
        "timezone": config.timezone,
        "price_area": config.price_area,
        "circuit_id": circuit_id,
        "circuit_name": "Ladeanlegg",
        "han_meter_id": han_meter_id,
        "line_voltage_v": list(voltages),
        "start_utc": epoch_to_datetime(start_s),
        "end_utc": epoch_to_datetime(end_s),
        "model": config.model_name,
        "device_type": DEVICE_TYPE[config.model_name],
        "firmware_version": model.firmware_version,
        "ocmf_gateway_id": model.ocmf_gateway_id,
        "meter_firmware": model.meter_firmware,
        "energy_details_interval_s": ENERGY_DETAILS_INTERVAL_S[config.model_name],
        "meter_sample_interval_s": sample_interval,
    }
    submeter_ids = {c: f"MID-{70_000_000 + int(serials[c]) % 10_000_000:08d}" for c in config.submeter_chargers}
    chargers = pl.DataFrame(
        {
            "charger_index": pl.Series(np.arange(n), dtype=pl.Int32),
            "charger_id": charger_ids,
            "device_id": device_ids,
            "name": [_charger_name(config.kind, c) for c in range(n)],
            "model": [model.name] * n,
            "device_type": pl.Series([DEVICE_TYPE[config.model_name]] * n, dtype=pl.Int32),
            "circuit_id": [circuit_id] * n,
            "phase_rotation": rotations,
            "max_current_a": [config.charger_max_current_a] * n,
            "firmware_version": [model.firmware_version] * n,
            "meter_gain_error": gains,
            "meter_offset_w": np.zeros(n),
            "register_start_wh": register_start.astype(np.int64),
            "submeter_id": pl.Series([submeter_ids.get(c) for c in range(n)], dtype=pl.String),
            "submeter_gain_error": [float(sub_gains[c]) if c in submeter_ids else 0.0 for c in range(n)],
        }
    )
    users = draw_users(rng_ids, int(visits.user_index.max()) + 1 if nv else 1)

    outputs = build_outputs(
        config=config,
        seed=seed,
        installation=installation,
        chargers=chargers,
        users=users,
        visits=visits,
        engine_visits=engine_visits,
        logs=logs,
        codes=engine.codes,
        timelines=timelines,
        pilots=pilots,
        clocks=clocks,
        household=household,
        rng=rng_out,
        start_s=start_s,
        end_s=end_s,
    )

    faults = ground_truth_faults(
        config, chargers, logs, resets, clocks, timelines, outputs["sessions"], start_s, end_s
    ) + outputs.pop("tamper_faults")

    stats = {
        "events": logs.events,
        "allocator_calls": logs.allocator_calls,
        "visits": nv,
        "sessions": int(outputs["sessions"].filter(~pl.col("is_void")).height),
        "draw_changes": len(logs.draw_t),
        "pilot_changes": len(logs.pilot_t),
    }
    return SimulationResult(
        config=config,
        seed=seed,
        installation=installation,
        chargers=chargers,
        faults=tuple(faults),
        stats=stats,
        timelines=timelines,
        pilots=pilots,
        offered_power=offered_power,
        clock=clocks,
        **outputs,
    )
