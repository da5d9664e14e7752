"""A small, deterministic generator of Zaptec account data for tests and benchmarks.

It writes what the cloud API returns, in Zaptec's shapes: naive-UTC datetimes with
milliseconds, ``EnergyDetails`` as per-quarter-hour deltas stamped at the end of each
interval (first point 0.0 at the start), ``Energy`` equal to the telescoped register
difference, an unsigned OCMF ``SignedSession`` whose B/E readings bracket it, offline
sessions whose ``EndDateTime`` (cloud close) comes days after ``CommitEndDateTime``,
Void sessions with ``ReplacedBySessionId``, and string-valued state observations.

:mod:`firmware_ref`'s simulator is the reference data factory; this generator exists so the
client, the fake and the benchmark can be exercised at any size without it.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from typing import Any

from zapanalytics.testing.zaptec_account import DEFAULT_CONSTANTS, FakeData

QUARTER = dt.timedelta(minutes=15)


def zaptec_time(value: dt.datetime) -> str:
    """Zaptec's session datetime: naive UTC with milliseconds (``2025-06-07T09:20:55.967``)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _detail_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"


def _ocmf_tm(value: dt.datetime) -> str:
    text = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S,%f")[:-3]
    return f"{text}+00:00 R"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def unsigned_session_record(
    serial: str, session_id: str, readings: list[tuple[dt.datetime, str, int]]
) -> str:
    """An OCMF transaction record without a signature section (as older Go firmware sends).

    ``readings`` are (time, TX, register [Wh]).
    """
    rd = []
    for position, (stamp, tx, register_wh) in enumerate(readings):
        reading: dict[str, Any] = {"TM": _ocmf_tm(stamp), "TX": tx, "RV": register_wh / 1000}
        reading["RI"] = "1-0:1.8.0"
        if position == 0:
            reading["RU"] = "kWh"
        reading["RT"] = "AC"
        reading["ST"] = "G"
        rd.append(reading)
    payload = {
        "FV": "1.0",
        "GI": "Zaptec Pro MID",
        "GS": serial,
        "GV": "5.0.2.1",
        "PG": "T1",
        "MF": "v1.3.6",
        "IS": False,
        "ZS": session_id,
        "RD": rd,
    }
    return "OCMF|" + json.dumps(payload, separators=(",", ":"))


def synthetic_account(
    *,
    chargers: int = 3,
    days: int = 14,
    start: dt.datetime = dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
    sessions_per_day: float = 1.1,
    offline_fraction: float = 0.03,
    void_fraction: float = 0.005,
    mismatch_fraction: float = 0.0,
    installations: int = 1,
    seed: int = 7,
) -> FakeData:
    """Generate an account: installations, Pro chargers, a history of sessions, states.

    Parameters
    ----------
    chargers : int
        Chargers per installation.
    days : int
        Length of the history [days] from ``start``.
    sessions_per_day : float
        Mean sessions per charger per day.
    offline_fraction, void_fraction, mismatch_fraction : float
        Shares of sessions committed late (offline), voided and replaced, or given an
        ``Energy`` that its ``EnergyDetails`` do not add up to.
    """
    rng = random.Random(seed)
    installs, charger_items, sessions, observations = [], [], [], []
    for n_inst in range(installations):
        installation_id = _uuid(rng)
        installs.append(
            {
                "Id": installation_id,
                "Name": f"Borettslag {n_inst + 1}",
                "Address": "Testveien 1",
                "ZipCode": "0150",
                "City": "Oslo",
                "CountryId": _uuid(rng),
                "Active": True,
                "InstallationType": 0,
                "NetworkType": 4,
                "MaxCurrent": 125.0,
                "AvailableCurrent": 125.0,
                "PropertyMainFuseCurrent": 125.0,
                "TimeZoneName": "W. Europe Standard Time",
                "TimeZoneIanaName": "Europe/Oslo",
            }
        )
        circuit_id = _uuid(rng)
        users = [
            {
                "UserId": _uuid(rng),
                "UserFullName": f"Beboer {u + 1}",
                "TokenName": f"Brikke {u + 1}",
            }
            for u in range(max(2, chargers // 2))
        ]
        for n_ch in range(chargers):
            charger_id = _uuid(rng)
            serial = f"ZPR{100000 + n_inst * 1000 + n_ch:06d}"
            name = f"Plass {n_ch + 1}"
            charger_items.append(
                {
                    "Id": charger_id,
                    "MID": serial,
                    "DeviceId": serial,
                    "SerialNo": serial,
                    "Name": name,
                    "CreatedOnDate": zaptec_time(start - dt.timedelta(days=400)),
                    "CircuitId": circuit_id if n_ch % 2 == 0 else None,
                    "Active": True,
                    "DeviceType": 1,
                    "InstallationName": installs[-1]["Name"],
                    "InstallationId": installation_id,
                    "AuthenticationType": 0,
                    "IsAuthorizationRequired": True,
                    "OperatingMode": 1,
                    "IsOnline": True,
                }
            )
            register_wh = rng.randint(100_000, 2_000_000)
            for day in range(days):
                count = int(sessions_per_day) + (rng.random() < sessions_per_day % 1)
                day_start = start + dt.timedelta(days=day)
                begin = day_start + dt.timedelta(hours=rng.uniform(6, 12))
                for _ in range(count):
                    user = rng.choice(users)
                    session, register_wh = _session(
                        rng,
                        charger_id=charger_id,
                        serial=serial,
                        name=name,
                        user=user,
                        begin=begin,
                        register_wh=register_wh,
                        offline=rng.random() < offline_fraction,
                        mismatch=rng.random() < mismatch_fraction,
                    )
                    if rng.random() < void_fraction:
                        replacement_id = _uuid(rng)
                        void = {
                            k: v
                            for k, v in session.items()
                            if k not in ("EnergyDetails", "SignedSession")
                        }
                        void.update(
                            Id=_uuid(rng),
                            Energy=0.0,
                            CommitMetadata=session["CommitMetadata"] | 32,
                            ReplacedBySessionId=replacement_id,
                        )
                        session["Id"] = replacement_id
                        sessions.append(void)
                    sessions.append(session)
                    end = dt.datetime.fromisoformat(session["CommitEndDateTime"] + "+00:00")
                    begin = end + dt.timedelta(hours=rng.uniform(0.5, 6))
            for week in range(0, days, 7):
                observations.extend(
                    _states(rng, charger_id, start + dt.timedelta(days=week, hours=12), register_wh)
                )
    return FakeData(
        constants=DEFAULT_CONSTANTS,
        installations=installs,
        chargers=charger_items,
        sessions=sessions,
        observations=observations,
    )


def _session(
    rng: random.Random,
    *,
    charger_id: str,
    serial: str,
    name: str,
    user: dict[str, str],
    begin: dt.datetime,
    register_wh: int,
    offline: bool,
    mismatch: bool,
) -> tuple[dict[str, Any], int]:
    session_id = _uuid(rng)
    begin = begin.replace(microsecond=rng.randrange(0, 1000) * 1000)
    end = begin + dt.timedelta(hours=rng.uniform(0.5, 9))
    power_w = rng.choice([3680, 7360, 11040]) * rng.uniform(0.6, 1.0)
    start_register = register_wh
    details = [{"Timestamp": _detail_time(begin), "Energy": 0.0}]
    tick = begin.replace(minute=begin.minute - begin.minute % 15, second=0, microsecond=0) + QUARTER
    previous_time, previous_register = begin, register_wh
    stamps = []
    while tick < end:
        stamps.append(tick)
        tick += QUARTER
    stamps.append(end)
    for stamp in stamps:
        seconds = (stamp - previous_time).total_seconds()
        register_wh = previous_register + round(power_w * seconds / 3600)
        details.append(
            {"Timestamp": _detail_time(stamp), "Energy": (register_wh - previous_register) / 1000}
        )
        previous_time, previous_register = stamp, register_wh
    energy_kwh = (register_wh - start_register) / 1000
    if mismatch:
        energy_kwh = round(energy_kwh + 0.5, 3)
    metadata = 4 | 16 | (2 if offline else 1)
    arrival = end + (dt.timedelta(days=rng.uniform(1, 5)) if offline else dt.timedelta(seconds=2))
    middle = begin + (end - begin) / 2
    signed = unsigned_session_record(
        serial,
        session_id,
        [
            (begin, "B", start_register),
            (middle, "T", start_register + (register_wh - start_register) // 2),
            (end, "E", register_wh),
        ],
    )
    item = {
        "Id": session_id,
        "DeviceId": serial,
        "StartDateTime": zaptec_time(begin),
        "EndDateTime": zaptec_time(arrival),
        "Energy": energy_kwh,
        "CommitMetadata": metadata,
        "CommitEndDateTime": zaptec_time(end),
        "UserFullName": user["UserFullName"],
        "ChargerId": charger_id,
        "DeviceName": name,
        "UserEmail": None,
        "UserId": user["UserId"],
        "TokenName": user["TokenName"],
        "ExternallyEnded": False,
        "EnergyDetails": details,
        "ChargerFirmwareVersion": {
            "Major": 5,
            "Minor": 0,
            "Build": 2,
            "Revision": 1,
            "MajorRevision": 0,
            "MinorRevision": 1,
        },
        "SignedSession": signed,
    }
    return item, register_wh


def _states(
    rng: random.Random, charger_id: str, when: dt.datetime, register_wh: int
) -> list[dict[str, Any]]:
    stamp = zaptec_time(when)
    values: list[tuple[int, str | None]] = [
        (-2, "1"),
        (-1, None),
        (100, '{"DeviceType":"Pro","SerialNumber":"ZPR","MeterCalibrated":true}'),
        (501, f"{rng.uniform(225, 238):.3f}"),
        (502, f"{rng.uniform(225, 238):.3f}"),
        (503, f"{rng.uniform(225, 238):.3f}"),
        (513, f"{rng.uniform(0, 11000):.4f}"),
        (710, rng.choice(["1", "2", "3", "5"])),
        (911, "5.0.2.1"),
    ]
    out = []
    for state_id, value in values:
        item: dict[str, Any] = {"ChargerId": charger_id, "StateId": state_id, "Timestamp": stamp}
        if value is not None:
            item["ValueAsString"] = value
        out.append(item)
    return out
