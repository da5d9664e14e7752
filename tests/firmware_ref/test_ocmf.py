"""OCMF in Zaptec's dialect: payload layout, signature verification, determinism."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_ref.emeter import EMeter
from firmware_ref.ocmf import (
    OcmfReading,
    OcmfSigner,
    cloud_identification,
    derive_private_key,
    format_tm,
    public_key_der_base64,
    public_key_pem,
    rfid_identification,
)

SEED = 20250607
SERIAL = "ZCS000101"
SESSION_ID = "7f1c2a9e-3b4d-4c5e-8f60-718293a4b5c6"
T_BEGIN = datetime(2025, 6, 7, 9, 20, 55, 943000, tzinfo=UTC).timestamp()
TM_PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3}\+00:00 [RSIU]$")


def make_signer(seed=SEED, serial=SERIAL, **kwargs) -> OcmfSigner:
    kwargs.setdefault("gateway_id", "Zaptec Pro MID")
    kwargs.setdefault("gateway_version", "5.0.2.1")
    return OcmfSigner.from_seed(seed, serial, **kwargs)


def session_readings():
    return [
        OcmfReading(T_BEGIN, 1_537_688, "B"),
        OcmfReading(T_BEGIN + 3600.0, 1_542_951, "T"),
        OcmfReading(T_BEGIN + 5400.0, 1_546_403, "E"),
    ]


def split(record: str) -> tuple[str, dict]:
    header, rest = record.split("|", 1)
    assert header == "OCMF"
    payload, signature = rest.rsplit("|", 1)
    return payload, json.loads(signature)


def verify(record: str, public_key: ec.EllipticCurvePublicKey) -> None:
    payload, signature = split(record)
    assert signature["SA"] == "ECDSA-secp384r1-SHA256"
    assert signature["SE"] == "base64"
    der = base64.b64decode(signature["SD"])
    public_key.verify(der, payload.encode("utf-8"), ec.ECDSA(hashes.SHA256()))


def load_pem(signer: OcmfSigner) -> ec.EllipticCurvePublicKey:
    return serialization.load_pem_public_key(signer.public_key_pem.encode("ascii"))


def load_der(signer: OcmfSigner) -> ec.EllipticCurvePublicKey:
    return serialization.load_der_public_key(base64.b64decode(signer.public_key_der_base64))


def test_session_record_verifies_with_pem_and_der_public_key():
    signer = make_signer()
    record = signer.session_record(SESSION_ID, session_readings(), rfid_identification("04A1B2C3"))
    verify(record, load_pem(signer))
    verify(record, load_der(signer))
    assert isinstance(load_pem(signer).curve, ec.SECP384R1)


def test_fiscal_record_verifies():
    signer = make_signer()
    verify(signer.fiscal_record(T_BEGIN, 2_410_009), load_pem(signer))


def test_every_single_byte_change_of_the_payload_breaks_the_signature():
    signer = make_signer()
    record = signer.fiscal_record(T_BEGIN, 2_410_009)
    payload, signature = split(record)
    public_key = load_pem(signer)
    raw = bytearray(payload.encode("ascii"))
    for index in range(len(raw)):
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        forged = f"OCMF|{tampered.decode('latin-1')}|{json.dumps(signature)}"
        with pytest.raises(InvalidSignature):
            verify(forged, public_key)


def test_changed_register_value_fails_and_other_chargers_key_fails():
    signer = make_signer()
    record = signer.session_record(SESSION_ID, session_readings())
    tampered = record.replace('"RV":1546.403', '"RV":1546.404')
    assert tampered != record
    with pytest.raises(InvalidSignature):
        verify(tampered, load_pem(signer))
    with pytest.raises(InvalidSignature):
        verify(record, load_pem(make_signer(serial="ZCS000102")))


def test_same_seed_gives_byte_identical_keys_and_records():
    outputs = []
    for _ in range(2):
        signer = make_signer()
        records = [
            signer.fiscal_record(T_BEGIN, 2_410_009),
            signer.session_record(SESSION_ID, session_readings(), cloud_identification("u-42")),
            signer.fiscal_record(T_BEGIN + 900.0, 2_411_000),
        ]
        outputs.append((signer.public_key_pem, signer.public_key_der_base64, records))
    assert outputs[0] == outputs[1]


def test_different_seed_or_serial_gives_a_different_key():
    base = public_key_der_base64(derive_private_key(SEED, SERIAL))
    assert public_key_der_base64(derive_private_key(SEED + 1, SERIAL)) != base
    assert public_key_der_base64(derive_private_key(SEED, "ZCS000102")) != base
    assert public_key_der_base64(derive_private_key(str(SEED), SERIAL)) == base
    assert public_key_der_base64(derive_private_key(str(SEED).encode(), SERIAL)) == base


def test_public_key_formats_describe_the_same_key():
    key = derive_private_key(SEED, SERIAL)
    pem_key = serialization.load_pem_public_key(public_key_pem(key).encode())
    der_key = serialization.load_der_public_key(base64.b64decode(public_key_der_base64(key)))
    assert pem_key.public_numbers() == der_key.public_numbers() == key.public_key().public_numbers()
    assert public_key_pem(key.public_key()) == public_key_pem(key)
    assert public_key_pem(key).startswith("-----BEGIN PUBLIC KEY-----")


def test_fiscal_payload_layout_matches_zaptec_pro():
    signer = make_signer()
    payload, signature = split(signer.fiscal_record(T_BEGIN, 2_410_009))
    assert payload == (
        '{"FV":"1.0","GI":"Zaptec Pro MID","GS":"ZCS000101","GV":"5.0.2.1","PG":"F1",'
        '"MF":"v1.3.6","RD":[{"TM":"2025-06-07T09:20:55,943+00:00 R","RV":2410.009,'
        '"RI":"1-0:1.8.0","RU":"kWh","ST":"G"}]}'
    )
    assert signature["SD"].startswith("MG")


def test_session_payload_fields():
    signer = make_signer()
    payload, _ = split(
        signer.session_record(SESSION_ID, session_readings(), rfid_identification("04A1B2C3"))
    )
    data = json.loads(payload)
    assert list(data) == [
        "FV", "GI", "GS", "GV", "PG", "MF", "IS", "IL", "IF", "IT", "ID", "ZS", "RD",
    ]  # fmt: skip
    assert data["PG"] == "T1"
    assert data["ZS"] == SESSION_ID
    assert (data["IS"], data["IL"], data["IT"], data["ID"]) == (
        True, "HEARSAY", "ISO14443", "04A1B2C3",
    )  # fmt: skip
    assert [r["TX"] for r in data["RD"]] == ["B", "T", "E"]
    assert [r["RV"] for r in data["RD"]] == [1537.688, 1542.951, 1546.403]
    assert ["RU" in r for r in data["RD"]] == [True, False, False]
    assert all(r["RI"] == "1-0:1.8.0" and r["RT"] == "AC" and r["ST"] == "G" for r in data["RD"])
    assert all(TM_PATTERN.match(r["TM"]) for r in data["RD"])
    assert re.findall(r'"RV":(\d+\.\d+)', payload) == ["1537.688", "1542.951", "1546.403"]


def test_anonymous_session_and_meter_error_reading():
    signer = make_signer()
    readings = [OcmfReading(T_BEGIN, 1_000, "B"), OcmfReading(T_BEGIN + 60.0, 0, "E", status="E")]
    data = json.loads(split(signer.session_record(SESSION_ID, readings))[0])
    assert (data["IS"], data["IT"]) == (False, "NONE")
    assert "IL" not in data
    end = data["RD"][1]
    assert end["ST"] == "E"
    assert "RV" not in end and "RI" not in end
    with pytest.raises(ValueError):
        signer.session_record(SESSION_ID, [])
    with pytest.raises(ValueError):
        signer.session_record(SESSION_ID, [OcmfReading(T_BEGIN, 1, "Q")])


def test_pagination_counts_per_record_kind_or_stays_fixed():
    signer = make_signer()
    pages = [json.loads(split(signer.fiscal_record(T_BEGIN, 1))[0])["PG"] for _ in range(3)]
    sessions = [
        json.loads(split(signer.session_record(SESSION_ID, session_readings()))[0])["PG"]
        for _ in range(2)
    ]
    assert pages == ["F1", "F2", "F3"]
    assert sessions == ["T1", "T2"]
    signer.session_payload(SESSION_ID, session_readings(), dry_run=True)
    assert signer.transaction_page == 2

    fixed = make_signer(fixed_pagination=True)
    fixed_pages = {json.loads(split(fixed.fiscal_record(T_BEGIN, 1))[0])["PG"] for _ in range(3)}
    assert fixed_pages == {"F1"}


def test_unsigned_record_has_two_sections():
    record = make_signer().fiscal_record(T_BEGIN, 1, signed=False)
    assert record.count("|") == 1
    assert json.loads(record.split("|")[1])["PG"] == "F1"


def test_format_tm():
    assert format_tm(T_BEGIN) == "2025-06-07T09:20:55,943+00:00 R"
    oslo_summer = timezone(timedelta(hours=2))
    local = datetime(2025, 6, 7, 11, 20, 55, 943000, tzinfo=oslo_summer)
    assert format_tm(local, "S") == "2025-06-07T09:20:55,943+00:00 S"
    assert format_tm(T_BEGIN + 0.0004) == format_tm(T_BEGIN)
    assert format_tm(datetime(2025, 6, 7, 9, 20, 55, 999600, tzinfo=UTC)).startswith(
        "2025-06-07T09:20:56,000"
    )
    with pytest.raises(ValueError):
        format_tm(datetime(2025, 6, 7, 9, 20, 55))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError):
        format_tm(T_BEGIN, "X")


def test_register_from_emeter_round_trips_through_rv():
    meter = EMeter(register_wh=2_409_000, t_s=T_BEGIN, gain_error=0.018)
    meter.advance(T_BEGIN + 900.0, (3680.0, 3680.0, 3680.0))
    signer = make_signer()
    rv = json.loads(split(signer.fiscal_record(meter.t_s, meter.register_wh))[0])["RD"][0]["RV"]
    assert rv == meter.register_kwh
    assert round(rv * 1000) == meter.register_wh


def test_signer_rejects_keys_on_other_curves():
    key = ec.derive_private_key(12345, ec.SECP256R1())
    with pytest.raises(ValueError):
        OcmfSigner(key, "Zaptec Pro MID", SERIAL, "5.0.2.1")
