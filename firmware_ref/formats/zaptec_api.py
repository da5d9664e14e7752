"""A dump of the Zaptec cloud API for one installation, as its endpoints answer.

Layout under ``zaptec/`` (read by the ingestion and by the local fake API server):

=====================================  ==============================================
file                                   endpoint it answers
=====================================  ==============================================
``constants.json``                     ``GET /api/constants`` (``Observations``,
                                       ``Settings``, ``Commands``: ``{Name: id}``)
``installations.json``                 ``GET /api/installation`` (``{Pages, Data,
                                       Message}`` envelope)
``installation_<Id>.json``             ``GET /api/installation/{id}``
``hierarchy_<Id>.json``                ``GET /api/installation/{id}/hierarchy``
``chargers.json``                      ``GET /api/chargers`` (envelope)
``chargehistory/page_NNNN.json``       ``GET /api/chargehistory?InstallationId=…&
                                       DetailLevel=1&PageSize=100&PageIndex=N``,
                                       sorted by ``StartDateTime`` ascending
``observations.jsonl``                 state observations, one Service-Bus message
                                       body (inner JSON) per line, in time order
=====================================  ==============================================

Spellings follow the live API (see ``zaptec_api.md`` §2.4): PascalCase keys;
``StartDateTime``/``EndDateTime``/``CommitEndDateTime`` naive UTC with 0-3 fraction
digits; ``EnergyDetails[].Timestamp`` with ``+00:00``; ``EnergyDetails[].Energy`` a
per-interval kWh delta (first point 0.0 at the start, then quarter-hour or hourly
ticks, then the end) equal to the differences of the ``SignedSession`` readings, so
``Energy`` = RV(E) − RV(B). Observation values are strings, as the API sends them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

from firmware_ref.formats._time import naive_utc

__all__ = ["OBSERVATION_IDS", "write_zaptec_api"]

#: Observation names and ids of ``/api/constants`` used or useful here.
OBSERVATION_IDS: dict[str, int] = {
    "IsOcppConnected": -3,
    "IsOnline": -2,
    "Pulse": -1,
    "Capabilities": 100,
    "CommunicationMode": 150,
    "TemperatureInternal5": 201,
    "TemperatureInternal6": 202,
    "Humidity": 270,
    "VoltagePhase1": 501,
    "VoltagePhase2": 502,
    "VoltagePhase3": 503,
    "CurrentPhase1": 507,
    "CurrentPhase2": 508,
    "CurrentPhase3": 509,
    "ChargerMaxCurrent": 510,
    "ChargerMinCurrent": 511,
    "ActivePhases": 512,
    "TotalChargePower": 513,
    "PowerFactor": 518,
    "SetPhases": 519,
    "MaxPhases": 520,
    "ChargerOfflinePhase": 522,
    "ChargerOfflineCurrent": 523,
    "TotalChargePowerSession": 553,
    "SignedMeterValue": 554,
    "SignedMeterValueInterval": 555,
    "ChargeMode": 702,
    "ChargeCurrentInstallationMaxLimit": 707,
    "ChargeCurrentSet": 708,
    "ChargerOperationMode": 710,
    "IsEnabled": 711,
    "IsStandAlone": 712,
    "CableType": 714,
    "NetworkType": 715,
    "FinalStopActive": 718,
    "SessionIdentifier": 721,
    "ChargerCurrentUserUuid": 722,
    "CompletedSession": 723,
    "Notifications": 803,
    "Warnings": 804,
    "DiagnosticsString": 808,
    "CommunicationSignalStrength": 809,
    "MainboardApplicationVersion": 908,
    "ComputerApplicationVersion": 911,
}
_SETTINGS = {
    "MaxChargeCurrent": 510,
    "MinChargeCurrent": 511,
    "MaxPhases": 520,
    "ChargerOfflinePhase": 522,
    "ChargerOfflineCurrent": 523,
    "MeterValueInterval": 555,
    "AuthenticationRequired": 120,
}
_COMMANDS = {
    "Restart": 102,
    "UpgradeFirmware": 200,
    "StopChargingFinal": 506,
    "ResumeCharging": 507,
    "DeauthorizeAndStop": 10001,
}
#: Zaptec ``NetworkType`` enum (3-phase installations).
NETWORK_TYPE = {"IT": 2, "TN": 4}
_COUNTRY_ID_NORWAY = "86a4b1a4-7b6f-4a5c-9d2e-1f3b6c8d0e21"  # synthetic GUID
_INSTALLATION_TYPE = {"pro": 0, "home": 1, "go": 1}


def _dump(path: Path, payload: Any, indent: int | None = None) -> Path:
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(payload, ensure_ascii=False, indent=indent, separators=separators)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _envelope(data: list, pages: int = 1) -> dict:
    return {"Pages": pages, "Data": data, "Message": None}


def _firmware_object(version: str) -> dict:
    parts = [int(p) for p in version.split(".")]
    parts += [0] * (4 - len(parts))
    major, minor, build, revision = parts[:4]
    return {
        "Major": major,
        "Minor": minor,
        "Build": build,
        "Revision": revision,
        "MajorRevision": revision >> 16,
        "MinorRevision": revision & 0xFFFF,
    }


def _installation_detail(result) -> dict:
    inst = result.installation
    available = inst["available_current_a"]
    return {
        "Id": inst["installation_id"],
        "Name": inst["name"],
        "Address": inst["address"],
        "ZipCode": inst["zip_code"],
        "City": inst["city"],
        "CountryId": _COUNTRY_ID_NORWAY,
        "InstallationType": _INSTALLATION_TYPE[inst["model"]],
        "MaxCurrent": inst["main_fuse_a"],
        "AvailableCurrent": available,
        "AvailableCurrentPhase1": available,
        "AvailableCurrentPhase2": available,
        "AvailableCurrentPhase3": available,
        "AvailableCurrentMode": 2 if inst["apm"] else 0,
        "ThreeToOnePhaseSwitchCurrent": result.config.three_to_one_current_a
        if result.config.phase_switching
        else None,
        "UseLoadBalancing": True,
        "IsRequiredAuthentication": True,
        "NetworkType": NETWORK_TYPE[inst["network_type"]],
        "AuthenticationType": 0,
        "MessagingEnabled": True,
        "TimeZoneName": "W. Europe Standard Time",
        "TimeZoneIanaName": inst["timezone"],
        "PropertyMainFuseCurrent": inst["main_fuse_a"],
        "ActiveChargerCount": result.chargers.height,
        "Active": True,
        "CurrentUserRoles": 2,
        "CreatedOnDate": naive_utc(inst["start_utc"]),
    }


def _charger_items(result) -> list[dict]:
    inst = result.installation
    items = []
    for row in result.chargers.iter_rows(named=True):
        items.append(
            {
                "Id": row["charger_id"],
                "MID": row["device_id"],
                "DeviceId": row["device_id"],
                "SerialNo": row["device_id"],
                "Name": row["name"],
                "CreatedOnDate": naive_utc(inst["start_utc"]),
                "CircuitId": row["circuit_id"],
                "Active": True,
                "CurrentUserRoles": 2,
                "Pin": None,
                "DeviceType": row["device_type"],
                "InstallationName": inst["name"],
                "InstallationId": inst["installation_id"],
                "AuthenticationType": 0,
                "IsAuthorizationRequired": True,
                "OperatingMode": 1,
                "IsOnline": True,
            }
        )
    return items


def _naive_utc_expr(column: str) -> pl.Expr:
    """Vectorised :func:`naive_utc`: no offset, 0-3 fraction digits."""
    return (
        pl.col(column)
        .dt.convert_time_zone("UTC")
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.3f")
        .str.replace(r"\.?0+$", "")
    )


def _iso_ms_expr(column: str, suffix: str) -> pl.Expr:
    """UTC with milliseconds and the given offset spelling (``+00:00`` or ``Z``)."""
    return pl.col(column).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.3f") + suffix


def _session_items(result) -> list[str]:
    """Charge-history items as compact JSON texts, sorted by ``StartDateTime``.

    Built column-wise with polars (``json_encode`` spells values as ``json.dumps``
    does), so a year of a large installation serialises in seconds.
    """
    details = (
        result.interval_energies.sort(["session_id", "ts_utc"])
        .select(
            "session_id",
            pl.struct(
                _iso_ms_expr("ts_reported_utc", "+00:00").alias("Timestamp"),
                pl.col("energy_kwh").round(3).alias("Energy"),
            ).alias("point"),
        )
        .group_by("session_id", maintain_order=True)
        .agg(pl.col("point").alias("EnergyDetails"))
    )
    firmware = _firmware_object(result.installation["firmware_version"])
    names = result.chargers.select(pl.col("charger_id"), pl.col("name").alias("DeviceName"))
    ordered = (
        result.sessions.sort(["start_reported_utc", "is_void", "session_id"])
        .join(names, on="charger_id", how="left", maintain_order="left")
        .join(details, on="session_id", how="left", maintain_order="left")
    )
    firmware_struct = pl.struct(
        *[pl.lit(value, dtype=pl.Int64).alias(key) for key, value in firmware.items()]
    )
    items = ordered.select(
        pl.struct(
            pl.col("session_id").alias("Id"),
            pl.col("device_id").alias("DeviceId"),
            _naive_utc_expr("start_reported_utc").alias("StartDateTime"),
            _naive_utc_expr("cloud_end_utc").alias("EndDateTime"),
            pl.col("energy_kwh").round(3).alias("Energy"),
            pl.col("commit_metadata").alias("CommitMetadata"),
            _naive_utc_expr("end_reported_utc").alias("CommitEndDateTime"),
            pl.col("user_full_name").alias("UserFullName"),
            pl.col("charger_id").alias("ChargerId"),
            pl.col("DeviceName"),
            pl.col("user_email").alias("UserEmail"),
            pl.col("user_id").alias("UserId"),
            pl.col("token_name").alias("TokenName"),
            pl.lit(None, dtype=pl.String).alias("ExternalId"),
            pl.lit(False).alias("ExternallyEnded"),
            pl.when(pl.col("is_void"))
            .then(pl.lit([], dtype=pl.List(details.schema["EnergyDetails"].inner)))
            .otherwise(pl.col("EnergyDetails"))
            .alias("EnergyDetails"),
            firmware_struct.alias("ChargerFirmwareVersion"),
            pl.col("signed_session").alias("SignedSession"),
            pl.col("replaced_by_session_id").alias("ReplacedBySessionId"),
        )
        .struct.json_encode()
        .alias("item")
    )
    return items["item"].to_list()


def _observation_lines(result) -> list[str]:
    """Observations as Service-Bus message bodies, one compact JSON text per line."""
    device_type = int(result.installation["device_type"])
    encoded = result.state_observations.select(
        pl.struct(
            pl.col("device_id").alias("DeviceId"),
            pl.lit(device_type, dtype=pl.Int64).alias("DeviceType"),
            pl.col("charger_id").alias("ChargerId"),
            pl.col("state_id").alias("StateId"),
            _iso_ms_expr("ts_reported_utc", "Z").alias("Timestamp"),
            pl.col("value").alias("ValueAsString"),
        )
        .struct.json_encode()
        .alias("line")
    )
    return encoded["line"].to_list()


def write_zaptec_api(result, out_dir: Path, page_size: int = 100) -> list[Path]:
    """Write the Zaptec API dump of a simulated installation.

    Parameters
    ----------
    result : SimulationResult
        Simulation output.
    out_dir : pathlib.Path
        Dataset root; files go to ``zaptec/``.
    page_size : int
        Charge-history page size (the API's maximum is 100).

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    if not 1 <= page_size <= 100:
        raise ValueError("page_size must be within 1..100 (the API's limit)")
    root = out_dir / "zaptec"
    history = root / "chargehistory"
    history.mkdir(parents=True, exist_ok=True)
    for old in sorted(history.glob("page_*.json")):
        old.unlink()
    inst = result.installation
    written = [
        _dump(
            root / "constants.json",
            {"Observations": OBSERVATION_IDS, "Settings": _SETTINGS, "Commands": _COMMANDS},
            indent=2,
        )
    ]
    listing = {
        "Id": inst["installation_id"],
        "Name": inst["name"],
        "Active": True,
        "CurrentUserRoles": 2,
        "InstallationType": _INSTALLATION_TYPE[inst["model"]],
        "NetworkType": NETWORK_TYPE[inst["network_type"]],
        "Address": inst["address"],
        "ZipCode": inst["zip_code"],
        "City": inst["city"],
    }
    written.append(_dump(root / "installations.json", _envelope([listing]), indent=2))
    detail = _installation_detail(result)
    written.append(
        _dump(root / f"installation_{inst['installation_id']}.json", detail, indent=2)
    )
    charger_items = _charger_items(result)
    hierarchy = {
        "Id": inst["installation_id"],
        "Name": inst["name"],
        "NetworkType": NETWORK_TYPE[inst["network_type"]],
        "Circuits": [
            {
                "Id": inst["circuit_id"],
                "Name": inst["circuit_name"],
                "MaxCurrent": inst["main_fuse_a"],
                "IsActive": True,
                "InstallationId": inst["installation_id"],
                "Chargers": [
                    {
                        "Id": c["Id"],
                        "Name": c["Name"],
                        "DeviceId": c["DeviceId"],
                        "DeviceType": c["DeviceType"],
                        "Active": True,
                    }
                    for c in charger_items
                ],
            }
        ],
    }
    written.append(
        _dump(root / f"hierarchy_{inst['installation_id']}.json", hierarchy, indent=2)
    )
    pages = max(1, math.ceil(len(charger_items) / 100))
    written.append(_dump(root / "chargers.json", _envelope(charger_items, pages), indent=2))

    items = _session_items(result)
    n_pages = max(1, math.ceil(len(items) / page_size))
    for page in range(n_pages):
        chunk = items[page * page_size : (page + 1) * page_size]
        # The envelope as json.dumps(..., separators=(",", ":")) spells it.
        text = f'{{"Pages":{n_pages},"Data":[{",".join(chunk)}],"Message":null}}\n'
        path = history / f"page_{page:04d}.json"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    obs_path = root / "observations.jsonl"
    obs_path.write_text("".join(line + "\n" for line in _observation_lines(result)), encoding="utf-8")
    written.append(obs_path)
    return written
