"""Shared fixtures: a small Zaptec API dump built in code, so foundation tests need no generator."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest
from hypothesis import settings

# Timing-based deadlines fail property tests on a loaded 2-core CI machine; examples are
# bounded by max_examples instead.
settings.register_profile("zapanalytics", deadline=None)
settings.load_profile("zapanalytics")

INSTALLATION_ID = "4a1b2c3d-0000-4000-8000-000000000001"
CHARGERS = [
    {"Id": "c0000000-0000-4000-8000-00000000000a", "DeviceId": "ZPR100001", "Name": "Plass 1"},
    {"Id": "c0000000-0000-4000-8000-00000000000b", "DeviceId": "ZPR100002", "Name": "Plass 2"},
]


def _session(number: int, charger: dict, start: str, end: str, details: list[tuple[str, float]], **extra):
    item = {
        "Id": f"5e550000-0000-4000-8000-{number:012d}",
        "DeviceId": charger["DeviceId"],
        "ChargerId": charger["Id"],
        "StartDateTime": start,
        "EndDateTime": end,
        "CommitEndDateTime": end,
        "Energy": round(sum(e for _, e in details), 3),
        "CommitMetadata": 1 | 4 | 16,
        "UserFullName": "Kari Nordmann" if number % 2 else "Ola Nordmann",
        "UserId": "u-kari" if number % 2 else "u-ola",
        "TokenName": None,
        "EnergyDetails": [{"Timestamp": ts, "Energy": e} for ts, e in details],
        "ChargerFirmwareVersion": {"Major": 5, "Minor": 0, "Build": 2, "Revision": 1},
        "SignedSession": None,
    }
    item.update(extra)
    return item


def dump_sessions() -> list[dict]:
    """Four sessions; number 3 spans the DST change of 26 Oct 2025 (Oslo 03:00 CEST → 02:00 CET)."""
    a, b = CHARGERS
    return [
        _session(1, a, "2025-10-24T16:02:11.5", "2025-10-24T17:30:00.12",
                 [("2025-10-24T16:02:11.45+00:00", 0.0), ("2025-10-24T16:15:00.01+00:00", 2.5),
                  ("2025-10-24T17:00:00+00:00", 8.25), ("2025-10-24T17:30:00.1+00:00", 4.0)]),
        _session(2, b, "2025-10-25T18:00:00", "2025-10-25T19:00:00",
                 [("2025-10-25T18:00:00+00:00", 0.0), ("2025-10-25T19:00:00+00:00", 11.0)]),
        _session(3, a, "2025-10-25T23:40:00", "2025-10-26T02:10:00",
                 [("2025-10-25T23:40:00+00:00", 0.0), ("2025-10-26T00:00:00+00:00", 3.0),
                  ("2025-10-26T01:00:00+00:00", 9.5), ("2025-10-26T02:00:00+00:00", 9.5),
                  ("2025-10-26T02:10:00+00:00", 1.5)]),
        _session(4, b, "2025-10-27T06:00:00.000", "2025-10-27T07:00:00.000",
                 [("2025-10-27T06:00:00+00:00", 0.0), ("2025-10-27T07:00:00+00:00", 7.0)],
                 CommitMetadata=1 | 32, ReplacedBySessionId="5e550000-0000-4000-8000-000000000002"),
    ]


def write_dump(root: Path, sessions: list[dict] | None = None, *, page_size: int = 2) -> Path:
    """Write a Zaptec API dump (installation, chargers, paged charge history, observations)."""
    base = root / "zaptec"
    (base / "chargehistory").mkdir(parents=True, exist_ok=True)
    (base / "constants.json").write_text(
        json.dumps({"Observations": {"ChargeCurrentSet": 708, "ChargerOperationMode": 710}})
    )
    (base / f"installation_{INSTALLATION_ID}.json").write_text(json.dumps({
        "Id": INSTALLATION_ID, "Name": "Borettslaget Eksempel", "NetworkType": 4,
        "MaxCurrent": 63.0, "PropertyMainFuseCurrent": 63.0, "TimeZoneIanaName": "Europe/Oslo",
    }))
    (base / "chargers.json").write_text(json.dumps({
        "Pages": 1, "Data": [{**c, "InstallationId": INSTALLATION_ID} for c in CHARGERS], "Message": None,
    }))
    items = dump_sessions() if sessions is None else sessions
    pages = [items[i:i + page_size] for i in range(0, len(items), page_size)] or [[]]
    for index, page in enumerate(pages):
        (base / "chargehistory" / f"page_{index:04d}.json").write_text(
            json.dumps({"Pages": len(pages), "Data": page, "Message": None})
        )
    observations = [
        {"ChargerId": CHARGERS[0]["Id"], "StateId": 708, "Timestamp": "2025-10-24T16:02:12", "ValueAsString": "16"},
        {"ChargerId": CHARGERS[0]["Id"], "StateId": 710, "Timestamp": "2025-10-24T16:02:12", "ValueAsString": "3"},
        {"ChargerId": CHARGERS[0]["Id"], "StateId": -1, "Timestamp": "2025-10-24T16:03:00"},
    ]
    (base / "observations.jsonl").write_text("".join(json.dumps(o) + "\n" for o in observations))
    return root


@pytest.fixture
def zaptec_dump(tmp_path: Path) -> Path:
    """A small, valid Zaptec API dump directory."""
    return write_dump(tmp_path / "dump")


def _run_demo(out: Path) -> Path:
    from zapanalytics.pipeline import bundled_sample_dir, run_demo

    sample = bundled_sample_dir()
    if not (sample / "zaptec").is_dir():
        sample = write_dump(out / "dump")
    run_demo(out / "out", sample)
    return out / "out"


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory, request) -> Path:
    """The demo run once per test run on the bundled sample (a built dump until one exists).

    Under pytest-xdist (``make test``) each worker is its own session: the first worker to
    ask runs the demo into the run's shared temporary directory while holding a file lock,
    the others wait for it and read the same output (read-only, as every user does).
    """
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    if worker is None:
        return _run_demo(tmp_path_factory.mktemp("demo"))
    shared = tmp_path_factory.getbasetemp().parent / "demo-shared"
    shared.mkdir(exist_ok=True)
    done = shared / "done"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            _run_demo(shared)
            done.touch()
    return shared / "out"
