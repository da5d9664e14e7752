"""Source-format writers: shapes, OCPP schema validity, HAN frames amshan decodes, byte-identity."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from han import autodecoder, hdlc
from ocpp.messages import get_validator

from firmware_ref.faults import (
    ClockDrift,
    IgnoreAllocation,
    LostOcppMessages,
    MeterGainError,
    RegisterReset,
    TamperedOcmf,
)
from firmware_ref.formats import FormatOptions, write_dataset
from firmware_ref.formats.prices import synthetic_spot_prices, write_prices
from firmware_ref.simulate import SimulationConfig, simulate

NAIVE_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?$")
OFFSET_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
Z_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    config = SimulationConfig(
        kind="coop", n_chargers=3, main_fuse_a=16.0, days=4, start=date(2025, 10, 24),
        faults=(
            MeterGainError(2, 0.018),
            IgnoreAllocation(1, duration_s=1200.0, min_excess_a=2.0),
            TamperedOcmf(0, session_number=0),
            RegisterReset(0),
            ClockDrift(2, drift_ppm=50.0, offset_s=90.0),
            LostOcppMessages(1, duration_s=7200.0),
        ),
        submeter_chargers=(1, 2), submeter_interval_s=900.0, han_interval_s=300.0,
    )  # fmt: skip
    result = simulate(config, 42)
    out = tmp_path_factory.mktemp("dataset")
    write_dataset(result, out, FormatOptions(page_size=5, han_list2_interval_s=900.0))
    return result, out


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path):
    script = (
        "import sys\n"
        "from datetime import date\n"
        "from firmware_ref.dataset import DatasetSpec, generate_dataset\n"
        "generate_dataset(sys.argv[1], DatasetSpec(days=2, n_chargers=3, faults='all',"
        " start=date(2025, 10, 25), main_fuse_a=16.0))\n"
    )
    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"run{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, cwd=ROOT)
        digests.append(_tree_digest(out))
    assert digests[0] == digests[1]
    assert any(name.startswith("zaptec/chargehistory/") for name in digests[0])
    assert "ground_truth/allocations.parquet" in digests[0]


def test_zaptec_installation_and_chargers(dataset):
    result, out = dataset
    inst_id = result.installation["installation_id"]
    listing = _load(out / "zaptec" / "installations.json")
    assert set(listing) == {"Pages", "Data", "Message"} and listing["Data"][0]["Id"] == inst_id
    detail = _load(out / "zaptec" / f"installation_{inst_id}.json")
    for key in ("Id", "Name", "Address", "ZipCode", "City", "CountryId", "InstallationType",
                "MaxCurrent", "AvailableCurrent", "AvailableCurrentPhase1", "AvailableCurrentPhase2",
                "AvailableCurrentPhase3", "NetworkType", "TimeZoneIanaName",
                "PropertyMainFuseCurrent"):  # fmt: skip
        assert key in detail
    assert detail["NetworkType"] == 4 and detail["TimeZoneIanaName"] == "Europe/Oslo"
    assert detail["PropertyMainFuseCurrent"] == 16.0
    chargers = _load(out / "zaptec" / "chargers.json")
    assert [c["Id"] for c in chargers["Data"]] == result.chargers["charger_id"].to_list()
    assert all(re.fullmatch(r"ZPR\d{6}", c["DeviceId"]) for c in chargers["Data"])
    assert all(c["InstallationId"] == inst_id for c in chargers["Data"])
    hierarchy = _load(out / "zaptec" / f"hierarchy_{inst_id}.json")
    assert len(hierarchy["Circuits"][0]["Chargers"]) == 3
    constants = _load(out / "zaptec" / "constants.json")
    for name, state_id in (("ChargeCurrentSet", 708), ("ChargerOperationMode", 710),
                           ("CurrentPhase1", 507), ("SignedMeterValue", 554)):  # fmt: skip
        assert constants["Observations"][name] == state_id


def _history(out: Path) -> list[dict]:
    pages = sorted((out / "zaptec" / "chargehistory").glob("page_*.json"))
    items = []
    for index, page in enumerate(pages):
        assert page.name == f"page_{index:04d}.json"
        body = _load(page)
        assert set(body) == {"Pages", "Data", "Message"} and body["Pages"] == len(pages)
        assert len(body["Data"]) <= 5
        items += body["Data"]
    return items


def test_charge_history_items(dataset):
    result, out = dataset
    tampered = next(f for f in result.faults if f.kind == "tampered_ocmf").details["session_id"]
    items = _history(out)
    assert len(items) == result.sessions.height
    starts = [item["StartDateTime"] for item in items]
    assert starts == sorted(starts)
    ids = {item["Id"] for item in items}
    for item in items:
        for key in ("StartDateTime", "EndDateTime", "CommitEndDateTime"):
            assert NAIVE_UTC.match(item[key]), item[key]
        assert item["ChargerFirmwareVersion"]["Major"] == 5
        if item["CommitMetadata"] & 32:
            assert item["ReplacedBySessionId"] in ids and item["Energy"] == 0.0
            continue
        details = item["EnergyDetails"]
        assert details[0]["Energy"] == 0.0
        assert all(OFFSET_UTC.match(d["Timestamp"]) for d in details)
        assert sum(d["Energy"] for d in details) == pytest.approx(item["Energy"], abs=1e-9)
        payload = json.loads(item["SignedSession"].split("|")[1])
        rv = [reading["RV"] for reading in payload["RD"]]
        matches = np.allclose(np.diff(rv), [d["Energy"] for d in details[1:]], atol=1e-9)
        # The tampered record's end reading no longer matches the cloud's energy.
        assert matches is (item["Id"] != tampered)
        assert (abs(rv[-1] - rv[0] - item["Energy"]) < 1e-9) is (item["Id"] != tampered)
        assert payload["ZS"] == item["Id"] and payload["PG"].startswith("T")


def test_signed_records_verify_with_the_published_keys(dataset):
    result, out = dataset
    tampered = next(f for f in result.faults if f.kind == "tampered_ocmf").details["session_id"]
    verdicts = {}
    for item in _history(out):
        if not item["SignedSession"]:
            continue
        key = serialization.load_pem_public_key((out / "keys" / f"{item['DeviceId']}.pem").read_bytes())
        _, payload, signature = item["SignedSession"].split("|", 2)
        try:
            key.verify(
                base64.b64decode(json.loads(signature)["SD"]), payload.encode(), ec.ECDSA(hashes.SHA256())
            )
            verdicts[item["Id"]] = True
        except InvalidSignature:
            verdicts[item["Id"]] = False
    assert verdicts.pop(tampered) is False
    assert verdicts and all(verdicts.values())


def test_observations(dataset):
    result, out = dataset
    lines = (out / "zaptec" / "observations.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == result.state_observations.height
    seen = set()
    for line in lines:
        obs = json.loads(line)
        assert set(obs) == {"DeviceId", "DeviceType", "ChargerId", "StateId", "Timestamp", "ValueAsString"}
        assert isinstance(obs["ValueAsString"], str) and Z_UTC.match(obs["Timestamp"])
        seen.add(obs["StateId"])
    assert {708, 710, 507, 508, 509, 501, 513, 519, 554} <= seen
    modes = {json.loads(line)["ValueAsString"] for line in lines if '"StateId":710' in line}
    assert modes <= {"1", "2", "3", "5"} and {"1", "2", "3"} <= modes


def _ocpp_messages(out: Path) -> dict[str, list[dict]]:
    return {
        path.stem: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for path in sorted((out / "ocpp").glob("*.jsonl"))
    }


def test_ocpp_messages_are_valid_ocpp16(dataset):
    result, out = dataset
    logs = _ocpp_messages(out)
    assert sorted(logs) == sorted(result.chargers["device_id"].to_list())
    actions: set[str] = set()
    for cp, rows in logs.items():
        pending: dict[str, str] = {}
        times = [row["ts"] for row in rows]
        assert times == sorted(times)
        for row in rows:
            assert row["charge_point_id"] == cp and Z_UTC.match(row["ts"])
            message = row["message"]
            if message[0] == 2:
                _, uid, action, payload = message
                get_validator(2, action, "1.6").validate(payload)
                pending[uid] = action
                actions.add(action)
                for key in ("timestamp",):
                    if key in payload:
                        assert Z_UTC.match(payload[key])
            else:
                _, uid, payload = message
                get_validator(3, pending.pop(uid), "1.6").validate(payload)
        assert not pending
    assert {"BootNotification", "StatusNotification", "Authorize", "StartTransaction",
            "MeterValues", "StopTransaction"} <= actions  # fmt: skip


def test_ocpp_transactions_match_the_charge_history(dataset):
    result, out = dataset
    logs = _ocpp_messages(out)
    lost = next(f for f in result.faults if f.kind == "lost_ocpp_messages")
    energies = {}
    for rows in logs.values():
        starts = {}
        for row in rows:
            message = row["message"]
            if message[0] == 2 and message[2] == "StopTransaction":
                energies[message[3]["transactionId"]] = message[3]["meterStop"]
            if message[0] == 2 and message[2] == "MeterValues":
                measurands = {v["measurand"] for v in message[3]["meterValue"][0]["sampledValue"]}
                assert measurands == {"Energy.Active.Import.Register", "Power.Active.Import",
                                      "Power.Offered", "Current.Import"}  # fmt: skip
            if message[0] == 2 and message[2] == "StartTransaction":
                starts[message[1]] = message[3]["meterStart"]
    sessions = result.sessions.filter(~pl.col("is_void"))
    for row in sessions.iter_rows(named=True):
        if row["ocpp_transaction_id"] in energies:
            assert energies[row["ocpp_transaction_id"]] == row["register_end_wh"]
    # The lost window: nothing of that charger inside it, and the count is in the truth.
    rows = logs[lost.device_id]
    inside = [r for r in rows if lost.start_utc.isoformat()[:19] <= r["ts"][:19] < lost.end_utc.isoformat()[:19]]
    assert inside == []
    truth = _load(out / "ground_truth.json")
    recorded = next(f for f in truth["faults"] if f["kind"] == "lost_ocpp_messages")
    assert recorded["details"]["lost_message_count"] > 0


def test_han_frames_decode_with_amshan(dataset):
    result, out = dataset
    meta = _load(out / "han" / "meters.json")
    (meter_id,) = meta
    lines = (out / "han" / f"{meter_id}.hex").read_text(encoding="ascii").splitlines()
    decoder = autodecoder.AutoDecoder()
    energies = []
    for line in lines:
        ts, hexframe = line.split(" ")
        frames = hdlc.HdlcFrameReader(False).read(bytes.fromhex(hexframe))
        assert len(frames) == 1 and frames[0].is_good_ffc and frames[0].is_expected_length
        decoded = decoder.decode_message_payload(frames[0].payload)
        assert decoded["meter_manufacturer"] == "Kaifa" and decoded["meter_id"] == meter_id
        if "active_power_import_total" in decoded:
            assert ts.endswith(":00:00.000Z")
            energies.append(decoded["active_power_import_total"])
    hours = (result.installation["end_utc"] - result.installation["start_utc"]).total_seconds() / 3600
    assert len(energies) == int(hours) + 1
    assert all(b >= a for a, b in zip(energies, energies[1:], strict=False))
    # Everything the chargers delivered went through the main meter.
    delivered = result.sessions["true_energy_kwh"].sum() * 1000
    assert energies[-1] - energies[0] > delivered


def test_aidon_frames_decode_too(dataset, tmp_path):
    result, _ = dataset
    from firmware_ref.formats.han import write_han

    path, _ = write_han(result, tmp_path, vendor="aidon")
    ts, hexframe = path.read_text(encoding="ascii").splitlines()[0].split(" ")
    frames = hdlc.HdlcFrameReader(False).read(bytes.fromhex(hexframe))
    decoded = autodecoder.AutoDecoder().decode_message_payload(frames[0].payload)
    assert decoded["meter_manufacturer"] == "Aidon" and "active_power_import_total" in decoded


def test_submeter_csv(dataset):
    result, out = dataset
    meters = _load(out / "submeter" / "meters.json")
    assert len(meters) == 2
    device_of = dict(zip(result.chargers["charger_id"], result.chargers["device_id"], strict=True))
    for meter_id, info in meters.items():
        assert device_of[info["charger_id"]] == info["device_id"]
        frame = pl.read_csv(out / "submeter" / f"{meter_id}.csv")
        assert frame.columns == ["timestamp", "energy_import_kwh", "current_l1_a", "current_l2_a", "current_l3_a"]
        stamps = [datetime.fromisoformat(t) for t in frame["timestamp"]]
        assert all(t.utcoffset() is not None for t in stamps)
        assert {t.utcoffset().total_seconds() for t in stamps} == {3600.0, 7200.0}  # across DST
        energy = frame["energy_import_kwh"].to_numpy()
        assert (np.diff(energy) >= 0).all()
        assert np.allclose(np.round(energy * 100), energy * 100)


def test_gain_error_is_visible_against_the_submeter(dataset):
    result, out = dataset
    charger = result.chargers.row(2, named=True)
    frame = pl.read_csv(out / "submeter" / f"{charger['submeter_id']}.csv")
    reference_kwh = frame["energy_import_kwh"][-1] - frame["energy_import_kwh"][0]
    samples = result.meter_samples.filter(pl.col("charger_id") == charger["charger_id"])
    metered_kwh = (samples["register_wh"].max() - samples["register_wh"].min()) / 1000
    assert reference_kwh > 5
    assert metered_kwh / reference_kwh == pytest.approx(1.018, abs=0.004)


def test_prices_on_dst_days(tmp_path):
    written = write_prices(tmp_path, "NO1", date(2025, 3, 30), date(2025, 3, 30), seed=1)
    assert len(_load(written[0])) == 23
    written = write_prices(tmp_path, "NO1", date(2025, 9, 30), date(2025, 10, 26), seed=1)
    by_day = {p.stem: _load(p) for p in written}
    assert len(by_day["2025-09-30"]) == 24 and len(by_day["2025-10-01"]) == 96
    autumn = by_day["2025-10-26"]
    assert len(autumn) == 100
    assert autumn[0]["time_start"] == "2025-10-26T00:00:00+02:00"
    assert autumn[-1]["time_end"] == "2025-10-27T00:00:00+01:00"
    for row in autumn:
        assert set(row) == {"NOK_per_kWh", "EUR_per_kWh", "EXR", "time_start", "time_end"}
        assert row["NOK_per_kWh"] == pytest.approx(row["EUR_per_kWh"] * row["EXR"], abs=1e-5)
    frame = synthetic_spot_prices("NO1", date(2025, 10, 6), date(2025, 10, 12), seed=1)
    hour = frame["start_utc"].dt.convert_time_zone("Europe/Oslo").dt.hour()
    evening = frame.filter(hour.is_between(17, 19))["eur_per_kwh"].mean()
    night = frame.filter(hour.is_between(2, 4))["eur_per_kwh"].mean()
    assert evening > 1.2 * night


def test_ground_truth(dataset):
    result, out = dataset
    truth = _load(out / "ground_truth.json")
    assert truth["seed"] == 42 and truth["allocator_fuse_violations"] == 0
    assert {f["kind"] for f in truth["faults"]} == {f.kind for f in result.faults}
    gains = {c["charger_id"]: c["meter_gain_error"] for c in truth["chargers"]}
    assert gains[result.chargers["charger_id"][2]] == 0.018
    sessions = {s["session_id"]: s for s in truth["sessions"]}
    assert len(sessions) == result.sessions.height
    allocations = pl.read_parquet(out / "ground_truth" / "allocations.parquet")
    assert allocations.equals(result.allocations)
    lines = pl.read_parquet(out / "ground_truth" / "line_currents.parquet")
    assert {"total_l1_a", "available_l1_a", "over_main_fuse"} <= set(lines.columns)
    assert sorted(p.stem for p in (out / "keys").glob("*.pem")) == sorted(result.chargers["device_id"])


SAMPLE = ROOT / "data" / "sample"


@pytest.mark.skipif(not (SAMPLE / "ground_truth.json").exists(), reason="no bundled sample")
def test_bundled_sample_is_small_and_has_its_faults():
    size = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert size <= 5_000_000
    truth = _load(SAMPLE / "ground_truth.json")
    faults = {f["kind"]: f for f in truth["faults"]}
    assert faults["meter_gain_error"]["magnitude"] == 0.018
    ignore = faults["ignore_allocation"]
    start = datetime.fromisoformat(ignore["start_utc"])
    end = datetime.fromisoformat(ignore["end_utc"])
    assert ignore["details"]["triggered"] and (end - start).total_seconds() == 1200.0
    assert truth["allocator_fuse_violations"] == 0
    meters = _load(SAMPLE / "submeter" / "meters.json")
    faulty = faults["meter_gain_error"]["charger_id"]
    assert faulty in {m["charger_id"] for m in meters.values()} and len(meters) == 2


@pytest.mark.slow
@pytest.mark.skipif(not (SAMPLE / "ground_truth.json").exists(), reason="no bundled sample")
def test_bundled_sample_regenerates_byte_identically(tmp_path):
    from firmware_ref.dataset import generate_dataset

    _, files = generate_dataset(tmp_path)
    for path in files:
        relative = path.relative_to(tmp_path)
        assert (SAMPLE / relative).read_bytes() == path.read_bytes(), relative
