"""OCMF parsing and signature verification, with keys generated here."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from audit_helpers import (
    VENDOR_SESSION_PAYLOAD,
    ZAPTEC_FISCAL_PAYLOAD,
    ZAPTEC_SESSION_PAYLOAD,
    key_forms,
    private_key,
    sign,
    tamper_digit,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from zapanalytics.audit.ocmf import (
    OcmfError,
    PublicKeyError,
    VerdictKind,
    load_public_key,
    parse,
    verify,
    verify_many,
)

SPEC_SA = {
    "secp192r1": "ECDSA-secp192r1-SHA256",
    "secp256k1": "ECDSA-secp256k1-SHA256",
    "secp256r1": "ECDSA-secp256r1-SHA256",
    "secp384r1": "ECDSA-secp384r1-SHA256",
    "brainpoolP256r1": "ECDSA-brainpoolP256r1-SHA256",
    "brainpoolP384r1": "ECDSA-brainpoolP384r1-SHA256",
    # Outside OCMF's table, but the cryptography package verifies it.
    "secp521r1": "ECDSA-secp521r1-SHA256",
}


@pytest.mark.parametrize("curve", sorted(SPEC_SA))
@pytest.mark.parametrize("se", ["hex", "base64"])
@pytest.mark.parametrize("key_form", ["hex_der", "base64_der", "pem"])
def test_valid_signature_on_every_curve_encoding_and_key_form(curve, se, key_form):
    key = private_key(curve)
    record = sign(ZAPTEC_SESSION_PAYLOAD, key, sa=SPEC_SA[curve], se=se)

    verdict = verify(record, key_forms(key)[key_form])

    assert verdict.kind is VerdictKind.VALID, verdict.reason
    assert verdict.ok
    assert verdict.algorithm == SPEC_SA[curve]
    assert ("outside the OCMF table" in verdict.reason) == (curve == "secp521r1")


@pytest.mark.parametrize("curve", sorted(SPEC_SA))
@pytest.mark.parametrize("se", ["hex", "base64"])
def test_one_tampered_payload_byte_invalidates_the_signature(curve, se):
    key = private_key(curve)
    record = sign(ZAPTEC_SESSION_PAYLOAD, key, sa=SPEC_SA[curve], se=se)
    tampered = tamper_digit(record, "1546.403", "1546.413")

    verdict = verify(tampered, key_forms(key)["base64_der"])

    assert verdict.kind is VerdictKind.INVALID_SIGNATURE
    # The tampered record still reads: its transaction shows the altered energy.
    assert verdict.transaction.energy_kwh == pytest.approx(8.725)


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "brainpoolP256r1"])
def test_tampered_signature_bytes_are_invalid(curve):
    key = private_key(curve)
    record = sign(ZAPTEC_SESSION_PAYLOAD, key, sa=SPEC_SA[curve], se="hex")
    head, signature_section = record.rsplit("|", 1)
    section = json.loads(signature_section)
    r, s = decode_dss_signature(bytes.fromhex(section["SD"]))
    section["SD"] = encode_dss_signature(r, s ^ 1).hex()

    verdict = verify(head + "|" + json.dumps(section), key_forms(key)["pem"])

    assert verdict.kind is VerdictKind.INVALID_SIGNATURE


@pytest.mark.parametrize("curve", sorted(SPEC_SA))
def test_wrong_key_on_the_same_curve_is_an_invalid_signature(curve):
    record = sign(ZAPTEC_SESSION_PAYLOAD, private_key(curve), sa=SPEC_SA[curve])

    verdict = verify(record, key_forms(private_key(curve, index=1))["hex_der"])

    assert verdict.kind is VerdictKind.INVALID_SIGNATURE


@pytest.mark.parametrize(
    ("record_curve", "key_curve"),
    [
        ("secp384r1", "secp256r1"),
        ("secp256r1", "brainpoolP256r1"),
        ("brainpoolP384r1", "secp384r1"),
        ("secp256k1", "secp256r1"),
    ],
)
def test_key_of_another_curve_is_a_key_mismatch(record_curve, key_curve):
    record = sign(ZAPTEC_SESSION_PAYLOAD, private_key(record_curve), sa=SPEC_SA[record_curve])

    verdict = verify(record, key_forms(private_key(key_curve))["pem"])

    assert verdict.kind is VerdictKind.KEY_MISMATCH
    assert key_curve in verdict.reason and record_curve in verdict.reason


def test_missing_sa_means_the_specification_default_secp256r1():
    p256, p384 = private_key("secp256r1"), private_key("secp384r1")

    assert (
        verify(sign(VENDOR_SESSION_PAYLOAD, p256, sa=None, se="hex"), key_forms(p256)["pem"]).kind
        is VerdictKind.VALID
    )
    assert (
        verify(sign(VENDOR_SESSION_PAYLOAD, p384, sa=None, se="hex"), key_forms(p384)["pem"]).kind
        is VerdictKind.KEY_MISMATCH
    )


def test_missing_se_means_hex_and_base64_without_se_is_read_as_a_deviation():
    key = private_key("secp256r1")
    as_hex = sign(VENDOR_SESSION_PAYLOAD, key, sa="ECDSA-secp256r1-SHA256", se=None)
    as_base64 = (
        as_hex.rsplit("|", 1)[0]
        + "|"
        + json.dumps(
            {
                "SA": "ECDSA-secp256r1-SHA256",
                "SD": base64.b64encode(parse(as_hex).signature.data).decode(),
            }
        )
    )

    assert verify(as_hex, key_forms(key)["pem"]).ok
    verdict = verify(as_base64, key_forms(key)["pem"])
    assert verdict.ok
    assert "SD is base64 but SE is absent (default hex)" in verdict.record.deviations


@pytest.mark.parametrize(
    "spelling", ["ECDSA-brainpool256r1-SHA256", "ECDSA-brainpoolP256r1-SHA256"]
)
def test_brainpool_is_accepted_in_both_spellings(spelling):
    key = private_key("brainpoolP256r1")
    assert verify(sign(ZAPTEC_SESSION_PAYLOAD, key, sa=spelling), key_forms(key)["pem"]).ok


@pytest.mark.parametrize("hash_algorithm", [hashes.SHA384(), hashes.SHA512()])
def test_non_table_hashes_verify_with_their_hash(hash_algorithm):
    key = private_key("secp384r1")
    name = f"ECDSA-secp384r1-SHA{hash_algorithm.digest_size * 8}"
    record = sign(ZAPTEC_SESSION_PAYLOAD, key, sa=name, hash_algorithm=hash_algorithm)

    assert verify(record, key_forms(key)["pem"]).ok
    # Verified with SHA-256 instead, the same signature fails: the hash really is used.
    mislabelled = record.replace(name, "ECDSA-secp384r1-SHA256")
    assert verify(mislabelled, key_forms(key)["pem"]).kind is VerdictKind.INVALID_SIGNATURE


@pytest.mark.parametrize(
    "sa", ["ECDSA-secp192k1-SHA256", "ECDSA-sect283k1-SHA256", "RSA-2048-SHA256", "nonsense"]
)
def test_unsupported_algorithms_are_reported_as_unsupported_curve(sa):
    key = private_key("secp256r1")
    record = sign(ZAPTEC_SESSION_PAYLOAD, key, sa="ECDSA-secp256r1-SHA256").replace(
        "ECDSA-secp256r1-SHA256", sa
    )

    verdict = verify(record, key_forms(key)["pem"])

    assert verdict.kind is VerdictKind.UNSUPPORTED_CURVE
    assert sa in verdict.reason


@pytest.mark.parametrize(
    "record",
    [
        "OCMF|" + ZAPTEC_SESSION_PAYLOAD,
        "OCMF|" + ZAPTEC_SESSION_PAYLOAD + "|",
        "OCMF|" + ZAPTEC_SESSION_PAYLOAD + '|{"SA":"ECDSA-secp384r1-SHA256","SE":"base64"}',
        "OCMF|" + ZAPTEC_SESSION_PAYLOAD + '|{"SD":""}',
    ],
)
def test_missing_signature_is_unsigned_and_still_checked(record):
    verdict = verify(record, key_forms(private_key("secp384r1"))["pem"])

    assert verdict.kind is VerdictKind.UNSIGNED
    assert verdict.transaction is not None and verdict.transaction.passed
    assert verdict.transaction.energy_kwh == pytest.approx(8.715)


def _signed_zaptec() -> str:
    return sign(ZAPTEC_SESSION_PAYLOAD, private_key("secp384r1"), sa="ECDSA-secp384r1-SHA256")


@pytest.mark.parametrize(
    ("record", "reason_part"),
    [
        (_signed_zaptec()[:120], "not valid JSON"),
        ("OCMF|this is not json|{}", "not a JSON object"),
        ('OCMF|{"FV":"1.0", "RD": [}|{}', "not valid JSON"),
        (_signed_zaptec()[5:], "does not start with 'OCMF|'"),
        ("ocmf|" + ZAPTEC_SESSION_PAYLOAD, "does not start with 'OCMF|'"),
        ("", "empty"),
        ('OCMF|{"FV":"1.0","PG":"T1"}|{"SD":"00"}', "no RD"),
        ('OCMF|{"PG":"T1","RD":[]}', "no readings"),
        ('OCMF|{"PG":"T1","RD":{"TM":"x"}}', "array"),
        ('OCMF|{"PG":"T1","RD":[{"RV":1.0,"RU":"kWh"}]}', "no TM"),
        (
            'OCMF|{"PG":"T1","RD":[{"TM":"2025-13-01T00:00:00,000+0000 S","RV":1}]}',
            "not a valid date",
        ),
        ('OCMF|{"PG":"T1","RD":[{"TM":"yesterday","RV":1}]}', "TM"),
        ('OCMF|{"PG":"T1","RD":[{"TM":"2025-01-01T00:00:00,000+0000 Q","RV":1}]}', "clock status"),
        ('OCMF|{"PG":"T1","RD":[{"TM":"2025-01-01T00:00:00,000+2500 S","RV":1}]}', "offset"),
        (
            'OCMF|{"PG":"T1","RD":[{"TM":"2025-01-01T00:00:00,000+0000 S","RV":"abc"}]}',
            "not a number",
        ),
        ('OCMF|{"PG":"T1","RD":[{"TM":"2025-01-01T00:00:00,000+0000 S","RV":NaN}]}', "NaN"),
        ('OCMF|{"PG":"T1","PG":"T2","RD":[]}', "duplicate key"),
        ('OCMF|{"PG":"T1","RD":[{"TM":"2025-01-01T00:00:00,000+0000 S"}]}|{"SD":"zz!"}', "SD"),
        (
            'OCMF|{"PG":"T1","RD":[{"TM":"2025-01-01T00:00:00,000+0000 S"}]} trailing',
            "after the payload",
        ),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(record, reason_part):
    with pytest.raises(OcmfError) as caught:
        parse(record)
    assert reason_part in caught.value.reason

    verdict = verify(record, key_forms(private_key("secp384r1"))["pem"])
    assert verdict.kind is VerdictKind.MALFORMED
    assert reason_part in verdict.reason
    assert verdict.record is None


def test_a_pipe_inside_a_json_string_does_not_split_the_record():
    key = private_key("secp256r1")
    record = sign(VENDOR_SESSION_PAYLOAD, key, sa="ECDSA-secp256r1-SHA256", se="hex")

    parsed = parse(record)

    assert parsed.payload_text == VENDOR_SESSION_PAYLOAD
    assert parsed.payload["TT"] == "Tarif A | 0,39 EUR/kWh"
    assert verify(record, key_forms(key)["hex_der"]).ok


def test_the_exact_payload_bytes_are_verified_never_a_reserialisation():
    key = private_key("secp256r1")
    record = sign(VENDOR_SESSION_PAYLOAD, key, sa="ECDSA-secp256r1-SHA256", se="hex")
    parsed = parse(record)
    reserialised = json.dumps(json.loads(VENDOR_SESSION_PAYLOAD), separators=(",", ":"))
    section = record.rsplit("|", 1)[1]

    assert parsed.payload_bytes == VENDOR_SESSION_PAYLOAD.encode()
    assert verify(record, key_forms(key)["pem"]).ok
    assert verify(f"OCMF|{reserialised}|{section}", key_forms(key)["pem"]).kind is (
        VerdictKind.INVALID_SIGNATURE
    )


def test_raw_r_s_signatures_and_hex_encoded_records_are_accepted():
    key = private_key("secp256r1")
    record = sign(ZAPTEC_FISCAL_PAYLOAD, key, sa="ECDSA-secp256r1-SHA256", se="hex")
    r, s = decode_dss_signature(parse(record).signature.data)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raw_record = (
        record.rsplit("|", 1)[0]
        + "|"
        + json.dumps({"SA": "ECDSA-secp256r1-SHA256", "SE": "hex", "SD": raw.hex()})
    )

    assert verify(raw_record, key_forms(key)["pem"]).ok
    hex_verdict = verify(record.encode().hex(), key_forms(key)["pem"])
    assert hex_verdict.ok
    assert "record given hex-encoded" in hex_verdict.record.deviations


def test_a_key_embedded_in_a_fourth_section_is_never_trusted():
    genuine, forger = private_key("secp256r1"), private_key("secp256r1", index=1)
    forged = sign(
        ZAPTEC_FISCAL_PAYLOAD.replace("2410.000", "1410.000"), forger, sa="ECDSA-secp256r1-SHA256"
    )
    with_key = forged + "|" + key_forms(forger)["base64_der"]

    verdict = verify(with_key, key_forms(genuine)["pem"])

    assert verdict.kind is VerdictKind.INVALID_SIGNATURE
    assert verdict.record.embedded_public_key == key_forms(forger)["base64_der"]


def test_zaptec_and_vendor_dialects_read_into_the_same_model():
    zaptec = parse("OCMF|" + ZAPTEC_SESSION_PAYLOAD)
    vendor = parse("OCMF|" + VENDOR_SESSION_PAYLOAD)

    begin, tariff, end = zaptec.readings
    assert begin.time_utc == datetime(2025, 6, 7, 9, 20, 55, 943000, tzinfo=UTC)
    assert [r.unit for r in zaptec.readings] == ["kWh", "kWh", "kWh"]  # RU carried forward
    assert end.value == Decimal("1546.403") and end.resolution == Decimal("0.001")
    assert tariff.transaction_code == "T"
    assert zaptec.session_id == "7c1f3f36-2c41-4f2e-9d51-1f4a0b1c2d3e"
    assert "TM offset has a colon (+hh:mm)" in zaptec.deviations
    assert "MS missing (specification: 1..1)" in zaptec.deviations

    vendor_begin, vendor_end = vendor.readings
    # 13:22:04 at +0200 is 11:22:04 UTC.
    assert vendor_begin.time_utc == datetime(2018, 7, 24, 11, 22, 4, tzinfo=UTC)
    assert vendor_begin.value == Decimal("2935.6") and vendor_begin.resolution == Decimal("0.1")
    assert "RV given as a string" in vendor.deviations
    assert vendor.meter_serial == "******240084S"
    assert vendor.is_transaction and not parse("OCMF|" + ZAPTEC_FISCAL_PAYLOAD).is_transaction


def test_tm_across_a_dst_change_converts_each_offset_to_utc():
    payload = (
        '{"PG":"T1","RD":[{"TM":"2025-03-30T01:59:00,000+0100 S","TX":"B","RV":1.00,'
        '"RI":"1-0:1.8.0","RU":"kWh","ST":"G"},'
        '{"TM":"2025-03-30T03:01:00,000+0200 S","TX":"E","RV":2.00,"ST":"G"}]}'
    )

    checks = verify("OCMF|" + payload, key_forms(private_key("secp256r1"))["pem"]).transaction

    # Local clock jumped 02:00 -> 03:00: two minutes passed, not 62.
    assert checks.duration_s == 120
    assert checks.passed


def test_wh_registers_convert_to_kwh():
    payload = (
        '{"PG":"T2","RD":[{"TM":"2025-01-01T00:00:00,000+0000 S","TX":"B","RV":120500,'
        '"RI":"1-0:1.8.0","RU":"Wh","ST":"G"},'
        '{"TM":"2025-01-01T01:00:00,000+0000 S","TX":"E","RV":127750,"ST":"G"}]}'
    )

    checks = verify("OCMF|" + payload, key_forms(private_key("secp256r1"))["pem"]).transaction

    assert checks.energy_kwh == pytest.approx(7.25)


def _with_readings(*readings: str, extra: str = "") -> str:
    return '{"PG":"T1"' + extra + ',"RD":[' + ",".join(readings) + "]}"


_B = (
    '{"TM":"2025-01-01T10:00:00,000+0000 S","TX":"B","RV":10.000,"RI":"1-0:1.8.0",'
    '"RU":"kWh","ST":"G"}'
)
_C = '{"TM":"2025-01-01T11:00:00,000+0000 S","TX":"C","RV":12.000,"ST":"G"}'
_E = '{"TM":"2025-01-01T12:00:00,000+0000 S","TX":"E","RV":15.000,"ST":"G"}'


@pytest.mark.parametrize(
    ("payload", "failed"),
    [
        (_with_readings(_B, _C, _E), set()),
        (_with_readings(_B, _C), {"one_begin_one_end"}),
        (_with_readings(_B, _B.replace("10:00", "10:30"), _E), {"one_begin_one_end"}),
        (
            _with_readings(
                _E.replace("12:00", "09:00").replace('"ST"', '"RI":"1-0:1.8.0","RU":"kWh","ST"'), _B
            ),
            {"one_begin_one_end", "values_non_decreasing"},
        ),
        (_with_readings(_B, _C.replace("12.000", "9.000"), _E), {"values_non_decreasing"}),
        (_with_readings(_B, _C.replace("11:00", "09:00"), _E), {"times_non_decreasing"}),
        (_with_readings(_B, _C.replace('"ST":"G"', '"ST":"E"'), _E), {"meter_status_ok"}),
        (_with_readings(_B, _C.replace('"ST":"G"', '"EF":"E","ST":"G"'), _E), {"no_error_flags"}),
        (_with_readings(_B, _C.replace('"TX":"C"', '"TX":"X"'), _E), {"no_exception_readings"}),
        (
            _with_readings(_B, _C.replace('"RV"', '"RU":"Wh","RV"'), _E),
            {"same_register", "values_non_decreasing"},
        ),
        (_with_readings(_B, _C, _E, extra=',"IL":"MISMATCH"'), {"identification_level_ok"}),
        (_with_readings(_B, _C, _E.replace("15.000", "1e400")), {"values_plausible"}),
        (
            _with_readings(
                _B.replace('"ST"', '"CL":0.1,"ST"'), _E.replace('"ST"', '"CL":0.3,"ST"')
            ),
            {"cable_loss_consistent"},
        ),
    ],
)
def test_transaction_checks_name_exactly_the_broken_rules(payload, failed):
    key = private_key("secp256r1")
    record = sign(payload, key, sa="ECDSA-secp256r1-SHA256", se="hex")

    verdict = verify(record, key_forms(key)["pem"])

    assert verdict.ok  # the signature is fine; the transaction may not be
    assert set(verdict.transaction.failed) == failed
    assert verdict.transaction.passed == (not failed)


def test_a_zaptec_meter_error_reading_without_rv_fails_the_status_check():
    error = '{"TM":"2025-01-01T11:00:00,000+00:00 R","TX":"T","ST":"E"}'
    record = "OCMF|" + _with_readings(_B, error, _E)

    checks = verify(record, key_forms(private_key("secp256r1"))["pem"]).transaction

    assert checks.failed == ("meter_status_ok",)
    assert checks.energy_kwh == pytest.approx(5.0)


def test_weakest_clock_status_is_reported():
    readings = (_B.replace(" S", " R"), _C.replace(" S", " I"), _E)
    checks = verify(
        "OCMF|" + _with_readings(*readings), key_forms(private_key("secp256r1"))["pem"]
    ).transaction

    assert checks.weakest_clock_status == "I"
    assert checks.as_dict()["weakest_clock_status"] == "I"


def test_public_keys_in_every_form_load_to_the_same_key_and_bad_keys_raise():
    public = private_key("secp384r1").public_key()
    forms = key_forms(public)
    numbers = public.public_numbers()
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )

    for form in (*forms.values(), bytes.fromhex(forms["hex_der"]), forms["pem"].encode()):
        assert load_public_key(form).public_numbers() == numbers
    assert load_public_key(point.hex(), "secp384r1").public_numbers() == numbers
    assert load_public_key(point[1:].hex(), "secp384r1").public_numbers() == numbers

    rsa_pem = key_forms_rsa()
    with pytest.raises(PublicKeyError, match="not an EC key"):
        load_public_key(rsa_pem)
    with pytest.raises(PublicKeyError):
        load_public_key("definitely not a key!")
    with pytest.raises(PublicKeyError):
        load_public_key("00ff00ff")


def key_forms_rsa() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_verify_with_a_bad_key_raises_rather_than_blaming_the_record():
    record = sign(ZAPTEC_SESSION_PAYLOAD, private_key("secp384r1"), sa="ECDSA-secp384r1-SHA256")
    with pytest.raises(PublicKeyError):
        verify(record, "not a key")


def test_verify_many_keeps_the_order_of_the_records():
    key = private_key("secp384r1")
    good = sign(ZAPTEC_SESSION_PAYLOAD, key, sa="ECDSA-secp384r1-SHA256")
    bad = tamper_digit(good, "1537.688", "1537.689")
    records = [good if i % 3 else bad for i in range(150)] + ["OCMF|{"]

    verdicts = verify_many(records, key_forms(key)["base64_der"], workers=2)

    expected = [VerdictKind.VALID if i % 3 else VerdictKind.INVALID_SIGNATURE for i in range(150)]
    assert [v.kind for v in verdicts] == [*expected, VerdictKind.MALFORMED]


def test_verify_accepts_a_loaded_key_object():
    key = private_key("secp256k1")
    record = sign(ZAPTEC_FISCAL_PAYLOAD, key, sa="ECDSA-secp256k1-SHA256")
    assert verify(record, key.public_key()).ok
    assert isinstance(load_public_key(key.public_key()), ec.EllipticCurvePublicKey)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_parse_raises_only_ocmf_error_on_arbitrary_input(data):
    try:
        record = parse(data)
    except OcmfError as exc:
        assert exc.reason
    else:
        assert record.readings


_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
_reading_like = st.dictionaries(
    st.sampled_from(["TM", "TX", "RV", "RI", "RU", "RT", "CL", "EF", "ST"]),
    st.one_of(_json_values, st.sampled_from(["2025-01-01T00:00:00,000+0000 S", "G", "kWh"])),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["FV", "PG", "GS", "MS", "IL", "ZS"]), _json_values),
    st.one_of(st.lists(_reading_like, max_size=3), _json_values),
    st.one_of(st.none(), st.dictionaries(st.sampled_from(["SA", "SE", "SD", "SM"]), _json_values)),
)
def test_parse_of_ocmf_shaped_json_raises_only_ocmf_error(payload, readings, signature):
    record = "OCMF|" + json.dumps({**payload, "RD": readings})
    if signature is not None:
        record += "|" + json.dumps(signature)
    try:
        parse(record)
    except OcmfError as exc:
        assert exc.reason


def test_surrounding_whitespace_and_a_byte_order_mark_do_not_change_the_signed_bytes():
    key = private_key("secp256r1")
    record = sign(ZAPTEC_FISCAL_PAYLOAD, key, sa="ECDSA-secp256r1-SHA256")

    verdict = verify("\ufeff  " + record + "\r\n", key_forms(key)["pem"])

    assert verdict.ok
    assert verdict.record.payload_text == ZAPTEC_FISCAL_PAYLOAD
