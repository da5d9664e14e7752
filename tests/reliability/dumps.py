"""Zaptec API dumps generated for the reliability tests, with what each page must yield.

Deterministic for a seed. Each charge-history page is one batch at the door (one
transaction), so after any crash the stored sessions must be exactly the sessions of the
first *k* pages, each with all its ``EnergyDetails`` rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from pathlib import Path

INSTALLATION_ID = "7e1a0000-0000-4000-8000-000000000001"


@dataclasses.dataclass
class GeneratedDump:
    """A dump on disk and the truth about it."""

    root: Path
    #: Session ids per page, in page order (bad items left out).
    pages: list[list[str]]
    #: EnergyDetails rows each good session must have.
    details: dict[str, int]
    #: Items per page that must be quarantined.
    bad_items: int
    charger_ids: list[str]
    user_names: list[str]


def charger_id(number: int, template: str = "c0de0000-0000-4000-8000-{number:012d}") -> str:
    return template.format(number=number)


def write_dump(
    root: Path,
    *,
    n_sessions: int,
    page_size: int = 100,
    details_per_session: int = 8,
    n_chargers: int = 12,
    seed: int = 2025,
    bad_every: int | None = None,
    user_names: list[str] | None = None,
    charger_names: list[str] | None = None,
    installation_name: str = "Borettslaget Pålitelig",
    installation_id: str = INSTALLATION_ID,
    session_id_template: str = "5e550000-0000-4000-8000-{number:012d}",
    charger_id_template: str = "c0de0000-0000-4000-8000-{number:012d}",
    device_ids: list[str] | None = None,
) -> GeneratedDump:
    """Write ``root/zaptec/...`` with ``n_sessions`` sessions of 15-minute EnergyDetails.

    Parameters
    ----------
    bad_every : int, optional
        Every ``bad_every``-th item gets a negative Energy (quarantined).
    user_names, charger_names : list of str, optional
        Names to cycle through (e.g. hostile ones).
    installation_id, session_id_template, charger_id_template : str, optional
        Ids (templates take ``{number}``), e.g. hostile ones.
    device_ids : list of str, optional
        Serials to cycle through (default ``ZPR500000`` and up).
    """
    rng = random.Random(seed)
    base = root / "zaptec"
    (base / "chargehistory").mkdir(parents=True, exist_ok=True)
    (base / "constants.json").write_text(json.dumps({"Observations": {"ChargeCurrentSet": 708}}))
    (base / "installation_0.json").write_text(json.dumps({
        "Id": installation_id, "Name": installation_name, "NetworkType": 4, "MaxCurrent": 125.0,
        "PropertyMainFuseCurrent": 125.0, "TimeZoneIanaName": "Europe/Oslo",
    }, ensure_ascii=False))
    names = charger_names or [f"Plass {n + 1}" for n in range(n_chargers)]
    chargers = [
        {"Id": charger_id(n, charger_id_template),
         "DeviceId": device_ids[n % len(device_ids)] if device_ids else f"ZPR{500000 + n}", "Name": names[n % len(names)],
         "InstallationId": installation_id, "MaxChargeCurrent": 32.0}
        for n in range(n_chargers)
    ]
    (base / "chargers.json").write_text(json.dumps({"Pages": 1, "Data": chargers, "Message": None}, ensure_ascii=False))
    users = user_names or ["Kari Nordmann", "Ola Nordmann", "Per Hansen", "Anne Olsen", "Nils Berg"]
    start0 = dt.datetime(2025, 9, 1, 16, 0, tzinfo=dt.UTC)
    pages: list[list[str]] = []
    details: dict[str, int] = {}
    bad_items = 0
    page_items: list[dict] = []
    page_ids: list[str] = []
    all_pages_items: list[list[dict]] = []
    for number in range(n_sessions):
        session_id = session_id_template.format(number=number)
        start = start0 + dt.timedelta(minutes=37 * number + rng.randint(0, 20))
        deltas = [round(rng.uniform(0.5, 2.8), 3) for _ in range(details_per_session)]
        points = [
            {"Timestamp": (start + dt.timedelta(minutes=15 * (k + 1))).isoformat(), "Energy": deltas[k]}
            for k in range(details_per_session)
        ]
        end = start + dt.timedelta(minutes=15 * details_per_session)
        user = number % len(users)
        item = {
            "Id": session_id,
            "DeviceId": chargers[number % n_chargers]["DeviceId"],
            "ChargerId": chargers[number % n_chargers]["Id"],
            "StartDateTime": start.replace(tzinfo=None).isoformat(timespec="milliseconds"),
            "EndDateTime": end.replace(tzinfo=None).isoformat(timespec="milliseconds"),
            "CommitEndDateTime": end.replace(tzinfo=None).isoformat(timespec="milliseconds"),
            "Energy": round(sum(deltas), 3),
            "CommitMetadata": 5,
            "UserFullName": users[user],
            "UserId": f"user-{user}",
            "EnergyDetails": points,
            "ChargerFirmwareVersion": {"Major": 5, "Minor": 0, "Build": 2, "Revision": 1},
        }
        if bad_every and number % bad_every == bad_every - 1:
            item["Energy"] = -1.0
            bad_items += 1
        else:
            page_ids.append(session_id)
            details[session_id] = details_per_session
        page_items.append(item)
        if len(page_items) == page_size:
            all_pages_items.append(page_items)
            pages.append(page_ids)
            page_items, page_ids = [], []
    if page_items:
        all_pages_items.append(page_items)
        pages.append(page_ids)
    for index, items in enumerate(all_pages_items):
        (base / "chargehistory" / f"page_{index:04d}.json").write_text(
            json.dumps({"Pages": len(all_pages_items), "Data": items, "Message": None}, ensure_ascii=False)
        )
    return GeneratedDump(root, pages, details, bad_items, [c["Id"] for c in chargers], users)
