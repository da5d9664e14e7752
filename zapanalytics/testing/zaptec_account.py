"""What a fake Zaptec account holds: installations, chargers, sessions, state observations.

:class:`FakeData` reads and writes the dump layout (``zaptec/constants.json``,
``installation_<id>.json``, ``chargers.json``, ``chargehistory/page_NNNN.json``,
``observations.jsonl``) that :mod:`zapanalytics.ingest.zaptec.files` ingests and
:class:`zapanalytics.testing.zaptec_fake.ZaptecFake` serves.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from zapanalytics.ingest.zaptec.records import RecordError, parse_zaptec_time

MAX_PAGE_SIZE = 100

#: A small observation catalogue used when a dump holds no ``constants.json``
#: (ids and names from Zaptec's state-observation reference).
DEFAULT_CONSTANTS: dict[str, Any] = {
    "Observations": {
        "IsOcppConnected": -3,
        "IsOnline": -2,
        "Pulse": -1,
        "Capabilities": 100,
        "CommunicationMode": 150,
        "TemperatureInternal5": 201,
        "VoltagePhase1": 501,
        "VoltagePhase2": 502,
        "VoltagePhase3": 503,
        "CurrentPhase1": 507,
        "CurrentPhase2": 508,
        "CurrentPhase3": 509,
        "ChargerMaxCurrent": 510,
        "ChargerMinCurrent": 511,
        "TotalChargePower": 513,
        "SetPhases": 519,
        "TotalChargePowerSession": 553,
        "SignedMeterValue": 554,
        "ChargeCurrentSet": 708,
        "ChargerOperationMode": 710,
        "FinalStopActive": 718,
        "SessionIdentifier": 721,
        "ChargerCurrentUserUuid": 722,
        "CompletedSession": 723,
        "MCUApplicationVersion": 908,
        "ComputerApplicationVersion": 911,
    },
    "Settings": {},
    "Commands": {"RestartCharger": 102, "StopChargingFinal": 506, "ResumeCharging": 507},
}


@dataclasses.dataclass(slots=True)
class _Session:
    item: dict[str, Any]
    installation_id: str | None
    start: dt.datetime
    arrival: dt.datetime | None
    """When the cloud got the session (``EndDateTime``; ``recognizedDateTime`` when archived)."""
    end: dt.datetime | None
    """When charging ended (``CommitEndDateTime``, else ``EndDateTime``)."""
    json_full: str
    json_summary: str
    json_archived: str
    """The session as ``/api/sessions/archived`` lists it."""


#: ``CommitMetadata`` bit → ``/api/sessions/archived`` flag (bit 1, online, has none).
_ARCHIVED_FLAGS = {
    2: "offline",
    4: "reliableClock",
    8: "stoppedByRfid",
    16: "signed",
    32: "voided",
    64: "aborted",
    128: "ocppNative",
}


def _utc_text(value: object) -> object:
    """A naive Zaptec time as the archived listing writes it (``Z``); anything else as is."""
    if isinstance(value, str) and _lenient_time(value) is not None and value[-1:].isdigit():
        return value + "Z"
    return value


def archived_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A charge-history item as ``/api/sessions/archived`` lists the same session.

    camelCase, booleans for the ``CommitMetadata`` bits, a nested ``authorizedUser``,
    ``sessionSignature``, firmware as ``"5.0.2.1"``; ``endDateTime`` is when charging ended
    and ``recognizedDateTime`` when the cloud got the session (shapes as two public clients
    of the endpoint read them).
    """
    out: dict[str, Any] = {
        "id": item.get("Id"),
        "chargerId": item.get("ChargerId"),
        "deviceId": item.get("DeviceId"),
        "deviceName": item.get("DeviceName"),
        "startDateTime": _utc_text(item.get("StartDateTime")),
        "endDateTime": _utc_text(item.get("CommitEndDateTime") or item.get("EndDateTime")),
        "recognizedDateTime": _utc_text(item.get("EndDateTime")),
        "energy": item.get("Energy"),
    }
    metadata = item.get("CommitMetadata")
    if isinstance(metadata, int) and not isinstance(metadata, bool):
        out.update({flag: bool(metadata & bit) for bit, flag in _ARCHIVED_FLAGS.items()})
        out["externallyAbandoned"] = False
    if item.get("UserId") or item.get("UserFullName"):
        out["authorizedUser"] = {
            "id": item.get("UserId"),
            "email": item.get("UserEmail"),
            "fullName": item.get("UserFullName"),
        }
    for history, archived in (
        ("TokenName", "tokenName"),
        ("ExternalId", "externalId"),
        ("ReplacedBySessionId", "replacedBySessionId"),
        ("SignedSession", "sessionSignature"),
    ):
        if item.get(history) is not None:
            out[archived] = item[history]
    firmware = item.get("ChargerFirmwareVersion")
    if isinstance(firmware, Mapping):
        parts = [firmware.get(k) for k in ("Major", "Minor", "Build", "Revision")]
        if all(isinstance(p, int) for p in parts):
            out["chargerFirmwareVersion"] = ".".join(str(p) for p in parts)
    details = item.get("EnergyDetails")
    if isinstance(details, list):
        out["energyDetails"] = [
            {"timestamp": p.get("Timestamp"), "energy": p.get("Energy")}
            if isinstance(p, Mapping)
            else p
            for p in details
        ]
    return out


#: Where the fake files a session whose start it cannot read (it still serves it as is).
_UNREADABLE_TIME = dt.datetime(2016, 1, 1, tzinfo=dt.UTC)


def _lenient_time(value: object) -> dt.datetime | None:
    try:
        return parse_zaptec_time(value, "time")
    except RecordError:
        return None


class FakeData:
    """What the fake account holds: installations, chargers, sessions and observations."""

    def __init__(
        self,
        *,
        constants: Mapping[str, Any] | None = None,
        installations: Iterable[Mapping[str, Any]] = (),
        chargers: Iterable[Mapping[str, Any]] = (),
        sessions: Iterable[Mapping[str, Any]] = (),
        observations: Iterable[Mapping[str, Any]] = (),
    ):
        self.constants = dict(constants or DEFAULT_CONSTANTS)
        self.installations = {str(i["Id"]): dict(i) for i in installations}
        self.chargers = [dict(c) for c in chargers]
        self._charger_installation = {
            str(c["Id"]): c.get("InstallationId") for c in self.chargers if "Id" in c
        }
        if len(self.installations) == 1:
            only = next(iter(self.installations))
            for key, value in self._charger_installation.items():
                self._charger_installation[key] = value or only
        self.sessions: list[_Session] = []
        self.observations: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.add_sessions(sessions)
        self.add_observations(observations)

    @classmethod
    def from_dump(cls, root: str | Path) -> FakeData:
        """Read a dump directory (``zaptec/…`` as written by the simulator or ``--save``)."""
        root = Path(root)
        base = root / "zaptec" if (root / "zaptec").is_dir() else root
        if not base.is_dir():
            raise FileNotFoundError(f"no Zaptec dump at {root}")
        constants_path = base / "constants.json"
        constants = (
            json.loads(constants_path.read_text("utf-8")) if constants_path.exists() else None
        )
        installations = [
            json.loads(p.read_text("utf-8")) for p in sorted(base.glob("installation_*.json"))
        ]
        chargers: list[Any] = []
        chargers_path = base / "chargers.json"
        if chargers_path.exists():
            body = json.loads(chargers_path.read_text("utf-8"))
            chargers = body["Data"] if isinstance(body, dict) else body
        sessions: list[Any] = []
        for page in sorted((base / "chargehistory").glob("page_*.json")):
            body = json.loads(page.read_text("utf-8"))
            sessions.extend(body["Data"] if isinstance(body, dict) else body)
        observations = []
        obs_path = base / "observations.jsonl"
        if obs_path.exists():
            with obs_path.open(encoding="utf-8") as handle:
                observations = [json.loads(line) for line in handle if line.strip()]
        return cls(
            constants=constants,
            installations=installations,
            chargers=chargers,
            sessions=sessions,
            observations=observations,
        )

    def write_dump(self, root: str | Path, page_size: int = MAX_PAGE_SIZE) -> Path:
        """Write the account in the dump layout (what :meth:`from_dump` reads)."""
        base = Path(root) / "zaptec"
        (base / "chargehistory").mkdir(parents=True, exist_ok=True)
        (base / "constants.json").write_text(json.dumps(self.constants), "utf-8")
        for installation_id, detail in self.installations.items():
            (base / f"installation_{installation_id}.json").write_text(json.dumps(detail), "utf-8")
        chargers = {"Pages": 1, "Data": self.chargers, "Message": None}
        (base / "chargers.json").write_text(json.dumps(chargers), "utf-8")
        pages = max(1, -(-len(self.sessions) // page_size))
        for index in range(pages):
            window = self.sessions[index * page_size : (index + 1) * page_size]
            text = ",".join(s.json_full for s in window)
            (base / "chargehistory" / f"page_{index:04d}.json").write_text(
                f'{{"Pages":{pages},"Data":[{text}],"Message":null}}', "utf-8"
            )
        with (base / "observations.jsonl").open("w", encoding="utf-8") as handle:
            for values in self.observations.values():
                for item in values:
                    handle.write(json.dumps(item) + "\n")
        return Path(root)

    def add_sessions(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Add (or replace, by ``Id``) charge-history items."""
        by_id = {s.item.get("Id"): s for s in self.sessions}
        for raw in items:
            item = dict(raw)
            summary = {k: v for k, v in item.items() if k != "EnergyDetails"}
            by_id[item.get("Id")] = _Session(
                item=item,
                installation_id=item.get("InstallationId")
                or self._charger_installation.get(str(item.get("ChargerId"))),
                start=_lenient_time(item.get("StartDateTime")) or _UNREADABLE_TIME,
                arrival=_lenient_time(item.get("EndDateTime") or item.get("CommitEndDateTime")),
                end=_lenient_time(item.get("CommitEndDateTime") or item.get("EndDateTime")),
                json_full=json.dumps(item, ensure_ascii=False, separators=(",", ":")),
                json_summary=json.dumps(summary, ensure_ascii=False, separators=(",", ":")),
                json_archived=json.dumps(
                    archived_item(item), ensure_ascii=False, separators=(",", ":")
                ),
            )
        self.sessions = sorted(by_id.values(), key=lambda s: (s.start, str(s.item.get("Id"))))

    def take_offline(
        self, charger_id: str, offline_from: dt.datetime, back_online: dt.datetime
    ) -> list[str]:
        """Let a charger lose its connection from ``offline_from`` until ``back_online``.

        Its sessions that started in between are committed offline and reach the cloud
        only when it is back (``EndDateTime`` a minute after ``back_online``), as a charger
        that was offline for weeks uploads them. Returns the ids of those sessions.
        """
        arrival = back_online + dt.timedelta(minutes=1)
        moved = []
        for session in self.sessions:
            item = session.item
            if str(item.get("ChargerId")) != charger_id:
                continue
            if not offline_from <= session.start < back_online:
                continue
            metadata = item.get("CommitMetadata") or 0
            item["CommitMetadata"] = (metadata & ~1) | 2
            item["CommitEndDateTime"] = item.get("CommitEndDateTime") or item.get("EndDateTime")
            item["EndDateTime"] = arrival.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            moved.append(item)
        self.add_sessions(moved)
        return [str(item.get("Id")) for item in moved]

    def add_observations(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Add state observations (``/state`` items with ``ChargerId``)."""
        for raw in items:
            self.observations[str(raw["ChargerId"])].append(dict(raw))
        for values in self.observations.values():
            values.sort(key=lambda o: parse_zaptec_time(o["Timestamp"], "Timestamp"))

    def installation_of(self, charger_id: str) -> str | None:
        return self._charger_installation.get(charger_id)
