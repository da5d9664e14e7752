"""Who plugs in, when, with which car and how much energy they need; and the
non-charging load behind the same main fuse.

Everything here is synthetic but shaped after how Norwegian installations are used:
residents of a housing co-op (borettslag) or a home plug in when they come home in
the evening and leave in the morning; employees at a workplace plug in on arrival in
the morning and leave in the afternoon. Energy needs follow a log-normal daily
driving distance. The car fleet mixes the on-board chargers found on Norwegian roads:
three-phase 16 A (11 kW) dominates, with single-phase 32 A (7.4 kW), two-phase 16 A
and a few three-phase 32 A (22 kW) cars.

Times are floats: seconds since the Unix epoch, UTC (the convention of the whole
:mod:`firmware_ref` package). Local clock times are converted through the
installation's IANA zone, so DST days get their 23 or 25 hours.

Every draw goes through the :class:`numpy.random.Generator` handed in, in a fixed
order, so a seed reproduces the same visits and loads.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

__all__ = [
    "CAR_FLEET",
    "CarModel",
    "HouseholdLoad",
    "Visits",
    "draw_household_load",
    "draw_users",
    "draw_visits",
    "local_hour_of_day",
    "local_to_epoch_s",
    "utc_offset_s",
]

INSTALLATION_KINDS = ("home", "coop", "workplace")


@dataclass(frozen=True)
class CarModel:
    """An electric car as the charger sees it.

    Attributes
    ----------
    name : str
        Model name (display only).
    max_current_a : float
        Largest current per phase the on-board charger draws [A].
    phases : int
        Number of supply conductors the on-board charger uses (1, 2 or 3).
    battery_kwh : float
        Usable battery capacity [kWh]; caps the energy a visit can need.
    share : float
        Share of the fleet [fraction].
    """

    name: str
    max_current_a: float
    phases: int
    battery_kwh: float
    share: float


# A synthetic fleet mix; shares sum to one.
CAR_FLEET: tuple[CarModel, ...] = (
    CarModel("Tesla Model Y", 16.0, 3, 75.0, 0.24),
    CarModel("Tesla Model 3", 16.0, 3, 57.5, 0.08),
    CarModel("Volkswagen ID.4", 16.0, 3, 77.0, 0.12),
    CarModel("Skoda Enyaq", 16.0, 3, 77.0, 0.07),
    CarModel("Audi Q4 e-tron", 16.0, 3, 76.6, 0.05),
    CarModel("Polestar 2", 16.0, 3, 75.0, 0.05),
    CarModel("BMW iX3", 16.0, 3, 74.0, 0.04),
    CarModel("Nissan Leaf", 32.0, 1, 39.0, 0.08),
    CarModel("Hyundai Kona Electric (2019)", 32.0, 1, 64.0, 0.06),
    CarModel("Kia e-Niro (2019)", 32.0, 1, 64.0, 0.04),
    CarModel("Volkswagen e-Golf", 16.0, 2, 32.0, 0.05),
    CarModel("Renault Zoe", 32.0, 3, 52.0, 0.04),
    CarModel("Toyota bZ4X (2022)", 32.0, 1, 64.0, 0.03),
    CarModel("Mercedes EQA", 16.0, 3, 66.5, 0.05),
)

KWH_PER_KM = 0.19  # average consumption incl. charging losses [kWh/km]


@dataclass(frozen=True)
class Visits:
    """Plug-in visits of cars at the chargers, sorted by arrival time.

    All arrays have one element per visit.

    Attributes
    ----------
    charger_index : ndarray of int
        Index of the charger the car plugs into.
    arrival_s, departure_s : ndarray of float
        Cable plugged in / unplugged [s since epoch, UTC].
    energy_need_kwh : ndarray of float
        Energy the car would take if charged without limit [kWh].
    car_index : ndarray of int
        Index into :data:`CAR_FLEET`.
    user_index : ndarray of int
        Index of the user (RFID tag owner) who authorises the visit.
    """

    charger_index: np.ndarray
    arrival_s: np.ndarray
    departure_s: np.ndarray
    energy_need_kwh: np.ndarray
    car_index: np.ndarray
    user_index: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival_s.size)


@dataclass(frozen=True)
class HouseholdLoad:
    """Non-charging load behind the main fuse, piecewise constant.

    ``current_a[k]`` holds from ``t_s[k]`` until ``t_s[k + 1]``.

    Attributes
    ----------
    t_s : ndarray of float, shape (n,)
        Change times [s since epoch, UTC]; the first is the start of the simulation.
    current_a : ndarray of float, shape (n, 3)
        Current on grid lines L1, L2, L3 [A].
    power_factor : float
        Power factor of the load [-], used to turn current into active power.
    """

    t_s: np.ndarray
    current_a: np.ndarray
    power_factor: float

    def at(self, t_s: np.ndarray | float) -> np.ndarray:
        """Line currents at the given times [A], shape (..., 3)."""
        idx = np.searchsorted(self.t_s, t_s, side="right") - 1
        return self.current_a[np.clip(idx, 0, self.t_s.size - 1)]


def car_fleet_shares() -> np.ndarray:
    """Shares of :data:`CAR_FLEET` normalised to sum to one [fraction]."""
    shares = np.array([c.share for c in CAR_FLEET], dtype=float)
    return shares / shares.sum()


# --- time helpers -------------------------------------------------------------


def local_to_epoch_s(day: date, hour: float, tz: ZoneInfo) -> float:
    """Epoch seconds of a local wall-clock time ``hour`` hours after midnight of ``day``.

    Hours of 24 or more roll over to the following days. Wall times inside the spring
    DST gap resolve with ``fold=0`` (they land one hour later in UTC terms).

    Parameters
    ----------
    day : datetime.date
        Local calendar date.
    hour : float
        Wall-clock hour after local midnight [h].
    tz : zoneinfo.ZoneInfo
        Installation's IANA zone.

    Returns
    -------
    float
        Seconds since the Unix epoch, UTC.
    """
    whole_days = math.floor(hour / 24.0)
    day = day + timedelta(days=whole_days)
    seconds = (hour - 24.0 * whole_days) * 3600.0
    whole = int(seconds)
    micro = int(round((seconds - whole) * 1e6))
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    hh, rem = divmod(whole, 3600)
    mm, ss = divmod(rem, 60)
    wall = datetime(day.year, day.month, day.day, hh, mm, ss, micro, tzinfo=tz)
    return wall.timestamp()


def utc_offset_s(t_s: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """UTC offset of the zone at each time [s] (e.g. 7200 for CEST).

    Offsets of European zones change on whole UTC hours, so evaluating the zone once
    per UTC hour spanned by ``t_s`` is exact.
    """
    t_s = np.asarray(t_s, dtype=float)
    if t_s.size == 0:
        return np.zeros(0)
    first = math.floor(float(t_s.min()) / 3600.0)
    last = math.floor(float(t_s.max()) / 3600.0)
    hours = np.arange(first, last + 1)
    offsets = np.array(
        [
            datetime.fromtimestamp(h * 3600.0, tz=UTC).astimezone(tz).utcoffset().total_seconds()  # type: ignore[union-attr]
            for h in hours
        ]
    )
    idx = (np.floor(t_s / 3600.0) - first).astype(np.int64)
    return offsets[idx]


def local_hour_of_day(t_s: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """Local wall-clock hour of day in [0, 24) at each time [h]."""
    t_s = np.asarray(t_s, dtype=float)
    local = t_s + utc_offset_s(t_s, tz)
    return np.mod(local, 86400.0) / 3600.0


def _is_weekend(day: date) -> bool:
    return day.weekday() >= 5


# --- visits -------------------------------------------------------------------


def _draw_residential_day(rng: np.random.Generator, n: int, weekend: np.ndarray):
    """Plug-in probability, arrival hour, stay [h] for residents (home, co-op)."""
    plug = rng.random(n) < np.where(weekend, 0.42, 0.58)
    evening = rng.random(n) < 0.8
    arrival = np.where(
        evening, rng.normal(17.3, 1.5, n), rng.normal(20.8, 1.4, n)
    )
    arrival = np.clip(arrival, 11.0, 23.7)
    # Next-morning departure, later at weekends; some visits are short top-ups.
    leave_next = np.where(weekend, rng.normal(34.0, 1.8, n), rng.normal(31.4, 0.8, n))
    leave_next = np.clip(leave_next, 29.0, 39.0)
    short = rng.random(n) < 0.12
    short_stay = rng.uniform(0.7, 3.5, n)
    departure = np.where(short, arrival + short_stay, leave_next)
    need = np.exp(rng.normal(math.log(11.0), 0.6, n))
    return plug, arrival, departure, need


def _draw_workplace_day(rng: np.random.Generator, n: int, weekend: np.ndarray):
    """Plug-in probability, arrival hour, stay [h] for employees."""
    plug = rng.random(n) < np.where(weekend, 0.06, 0.78)
    arrival = np.clip(rng.normal(8.1, 0.8, n), 6.0, 12.0)
    stay = np.clip(rng.normal(8.2, 1.1, n), 1.5, 11.0)
    departure = arrival + stay
    need = np.exp(rng.normal(math.log(9.0), 0.55, n))
    return plug, arrival, departure, need


def draw_visits(
    kind: str,
    n_chargers: int,
    start_day: date,
    days: int,
    tz: ZoneInfo,
    rng: np.random.Generator,
    end_s: float | None = None,
) -> Visits:
    """Draw the plug-in visits of an installation.

    Parameters
    ----------
    kind : {'home', 'coop', 'workplace'}
        Installation kind; sets the daily rhythm and who the users are.
    n_chargers : int
        Number of chargers.
    start_day : datetime.date
        First local day simulated.
    days : int
        Number of local days.
    tz : zoneinfo.ZoneInfo
        Installation's IANA zone.
    rng : numpy.random.Generator
        Source of randomness.
    end_s : float, optional
        End of the simulation [s since epoch]. Visits still plugged in then are left
        out, so every returned visit is complete (a charge history lists completed
        sessions only).

    Returns
    -------
    Visits
        Non-overlapping visits per charger, sorted by arrival.
    """
    if kind not in INSTALLATION_KINDS:
        raise ValueError(f"kind must be one of {INSTALLATION_KINDS}, got {kind!r}")
    shares = car_fleet_shares()
    n_cars = len(CAR_FLEET)
    # Residents own one car per parking spot (a few households have two users);
    # employees come from a pool a bit larger than the number of chargers.
    if kind == "workplace":
        n_users = max(2, int(round(n_chargers * 1.4)))
        user_car = rng.choice(n_cars, size=n_users, p=shares)
    else:
        n_users = 2 * n_chargers
        spot_car = rng.choice(n_cars, size=n_chargers, p=shares)
        user_car = np.repeat(spot_car, 2)
    visitor_car = rng.choice(n_cars, size=(days, n_chargers), p=shares)

    chargers: list[np.ndarray] = []
    arrivals: list[np.ndarray] = []
    departures: list[np.ndarray] = []
    needs: list[np.ndarray] = []
    cars: list[np.ndarray] = []
    users: list[np.ndarray] = []
    charger_ids = np.arange(n_chargers)
    for d in range(days):
        day = start_day + timedelta(days=d)
        weekend = np.full(n_chargers, _is_weekend(day))
        if kind == "workplace":
            plug, arr_h, dep_h, need = _draw_workplace_day(rng, n_chargers, weekend)
            user = rng.integers(0, n_users, n_chargers)
            car = user_car[user]
        else:
            plug, arr_h, dep_h, need = _draw_residential_day(rng, n_chargers, weekend)
            second_user = rng.random(n_chargers) < 0.25
            user = 2 * charger_ids + second_user.astype(np.int64)
            visitor = rng.random(n_chargers) < 0.04
            car = np.where(visitor, visitor_car[d], user_car[user])
        chosen = np.flatnonzero(plug)
        chargers.append(charger_ids[chosen])
        arrivals.append(np.array([local_to_epoch_s(day, float(arr_h[i]), tz) for i in chosen]))
        departures.append(np.array([local_to_epoch_s(day, float(dep_h[i]), tz) for i in chosen]))
        needs.append(need[chosen])
        cars.append(car[chosen])
        users.append(user[chosen])

    charger_index = np.concatenate(chargers) if chargers else np.zeros(0, np.int64)
    arrival = np.concatenate(arrivals) if arrivals else np.zeros(0)
    departure = np.concatenate(departures) if departures else np.zeros(0)
    need = np.concatenate(needs) if needs else np.zeros(0)
    car = np.concatenate(cars) if cars else np.zeros(0, np.int64)
    user = np.concatenate(users) if users else np.zeros(0, np.int64)
    battery = np.array([c.battery_kwh for c in CAR_FLEET])[car] if car.size else np.zeros(0)
    need = np.clip(need, 0.3, 0.92 * battery)

    # Keep per charger only visits that start after the previous car left (plus a
    # few minutes to manoeuvre), so one cable never serves two cars at once.
    order = np.lexsort((arrival, charger_index))
    keep = np.zeros(arrival.size, dtype=bool)
    last_departure = np.full(n_chargers, -np.inf)
    for i in order:
        c = charger_index[i]
        if arrival[i] >= last_departure[c] + 300.0 and (end_s is None or departure[i] <= end_s):
            keep[i] = True
            last_departure[c] = departure[i]
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((charger_index[idx], arrival[idx]))]
    return Visits(
        charger_index=charger_index[idx].astype(np.int64),
        arrival_s=arrival[idx],
        departure_s=departure[idx],
        energy_need_kwh=np.round(need[idx], 3),
        car_index=car[idx].astype(np.int64),
        user_index=user[idx].astype(np.int64),
    )


# --- users ------------------------------------------------------------------

_FIRST_NAMES = (
    "Kari", "Ola", "Ingrid", "Lars", "Nora", "Jonas", "Emma", "Henrik", "Sofie", "Magnus",
    "Ida", "Sindre", "Maja", "Eirik", "Thea", "Anders", "Hanna", "Kristian", "Sara", "Martin",
    "Line", "Even", "Silje", "Tore", "Marit", "Bjørn", "Astrid", "Knut", "Solveig", "Håkon",
)  # fmt: skip
_LAST_NAMES = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen",
    "Lund", "Sørensen", "Strand", "Solberg", "Moen", "Bakken", "Gundersen",
)  # fmt: skip
_ASCII = str.maketrans({"ø": "o", "å": "a", "æ": "ae", "Ø": "O", "Å": "A", "Æ": "AE"})


def draw_users(rng: np.random.Generator, n_users: int) -> pl.DataFrame:
    """Synthetic users (RFID tag holders) with Norwegian names.

    Returns
    -------
    polars.DataFrame
        ``user_index``, ``user_id`` (UUID), ``user_full_name``, ``user_email``
        (``@example.org``), ``token_name`` (the tag's name in the portal), ``rfid_tag``
        (4-byte ISO 14443 UID in hex).
    """
    first = rng.integers(0, len(_FIRST_NAMES), n_users)
    last = rng.integers(0, len(_LAST_NAMES), n_users)
    rows = []
    for k in range(n_users):
        f, la = _FIRST_NAMES[first[k]], _LAST_NAMES[last[k]]
        tag = rng.bytes(4).hex().upper()
        rows.append(
            {
                "user_index": k,
                "user_id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                "user_full_name": f"{f} {la}",
                "user_email": f"{f}.{la}.{k + 1}@example.org".lower().translate(_ASCII),
                "token_name": f"Brikke {f}",
                "rfid_tag": tag,
            }
        )
    return pl.DataFrame(rows)


# --- household load -----------------------------------------------------------


def _diurnal_home(hour: np.ndarray) -> np.ndarray:
    """Relative household demand of a Norwegian home by local hour [-]."""
    morning = np.exp(-0.5 * ((hour - 7.5) / 1.2) ** 2)
    evening = np.exp(-0.5 * ((hour - 18.5) / 2.0) ** 2)
    night = 0.35
    return night + 0.55 * morning + 0.9 * evening


def _diurnal_common(hour: np.ndarray) -> np.ndarray:
    """Relative common load of a co-op garage or office building by local hour [-]."""
    day = np.exp(-0.5 * ((hour - 13.0) / 4.5) ** 2)
    return 0.55 + 0.45 * day


def draw_household_load(
    kind: str,
    start_s: float,
    end_s: float,
    tz: ZoneInfo,
    rng: np.random.Generator,
    max_current_a: float,
    mean_step_s: float | None = None,
) -> HouseholdLoad:
    """Draw the non-charging load behind the main fuse.

    A home has heating, cooking and appliances with a morning and an evening peak and
    fast changes (steps every ~10 min). A co-op's garage or a workplace has a smooth
    common load (ventilation, lighting, ramp heating) changing every ~30 min.

    Parameters
    ----------
    kind : {'home', 'coop', 'workplace'}
        Installation kind.
    start_s, end_s : float
        Simulated span [s since epoch, UTC].
    tz : zoneinfo.ZoneInfo
        Installation's IANA zone (the rhythm follows local time).
    rng : numpy.random.Generator
        Source of randomness.
    max_current_a : float
        Cap of the load on any line [A].
    mean_step_s : float, optional
        Mean time between changes [s]; defaults by kind.

    Returns
    -------
    HouseholdLoad
    """
    if mean_step_s is None:
        mean_step_s = 600.0 if kind == "home" else 1800.0
    span = max(end_s - start_s, 1.0)
    n_guess = int(span / mean_step_s * 1.2) + 16
    gaps = rng.exponential(mean_step_s, n_guess)
    while gaps.sum() < span:
        gaps = np.concatenate([gaps, rng.exponential(mean_step_s, n_guess)])
    t = start_s + np.concatenate([[0.0], np.cumsum(gaps)])
    t = t[t < end_s]
    n = t.size
    hour = local_hour_of_day(t, tz)
    if kind == "home":
        level = 7.0 * _diurnal_home(hour)[:, None] * np.exp(rng.normal(0.0, 0.35, (n, 3)))
        # Cooking, washing and water heating land on one line at a time.
        big = rng.random(n) < 0.10 + 0.25 * np.exp(-0.5 * ((hour - 17.5) / 1.5) ** 2)
        big_line = rng.integers(0, 3, n)
        big_a = rng.uniform(6.0, 14.0, n)
        level[np.arange(n), big_line] += np.where(big, big_a, 0.0)
        power_factor = 0.95
    else:
        base = max_current_a * 0.06
        level = base * _diurnal_common(hour)[:, None] * np.exp(rng.normal(0.0, 0.15, (n, 3)))
        power_factor = 0.9
    current = np.clip(np.round(level, 2), 0.0, max_current_a)
    return HouseholdLoad(t_s=t, current_a=current, power_factor=power_factor)
