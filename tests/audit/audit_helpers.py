"""Builders for signed OCMF records and synthetic store frames used by the audit tests."""

from __future__ import annotations

import base64
import json
from functools import cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

CURVES = {
    "secp192r1": ec.SECP192R1,
    "secp256k1": ec.SECP256K1,
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
}

# Zaptec's dialect: colon offsets, comma milliseconds, RU only on the first reading, ZS.
ZAPTEC_SESSION_PAYLOAD = (
    '{"FV":"1.0","GI":"Zaptec Go+","GS":"ZAP123456","GV":"2.1.0.4","PG":"T1","MF":"v1.3.6",'
    '"IS":true,"IL":"TRUSTED","IF":["RFID_RELATED"],"IT":"ISO14443","ID":"04A1B2C3",'
    '"ZS":"7c1f3f36-2c41-4f2e-9d51-1f4a0b1c2d3e","RD":['
    '{"TM":"2025-06-07T09:20:55,943+00:00 R","TX":"B","RV":1537.688,"RI":"1-0:1.8.0",'
    '"RU":"kWh","RT":"AC","ST":"G"},'
    '{"TM":"2025-06-07T12:00:00,000+00:00 R","TX":"T","RV":1542.951,"RI":"1-0:1.8.0","RT":"AC",'
    '"ST":"G"},'
    '{"TM":"2025-06-07T16:46:56,877+00:00 R","TX":"E","RV":1546.403,"RI":"1-0:1.8.0","RT":"AC",'
    '"ST":"G"}]}'
)

# Another vendor's style: spaces in the JSON, RV as padded strings, +0200 offsets, MS.
VENDOR_SESSION_PAYLOAD = (
    '{"FV" : "1.0", "GI" : "SEAL AG", "GS" : "1850006a", "GV" : "1.34", "PG" : "T9289", '
    '"MV" : "Carlo Gavazzi", "MM" : "EM340-DIN.AV2.3.X.S1.PF", "MS" : "******240084S", '
    '"MF" : "B4", "IS" : true, "IL" : "NONE", "IF" : ["RFID_PLAIN", "OCPP_RS_TLS"], '
    '"IT" : "ISO14443", "ID" : "1F2D3A4F5506C7", "TT" : "Tarif A | 0,39 EUR/kWh", '
    '"RD" : [ {"TM" : "2018-07-24T13:22:04,000+0200 S", "TX" : "B", "RV" : "       2935.6", '
    '"RI" : "1-b:1.8.0", "RU" : "kWh", "RT" : "AC", "EF" : "", "ST" : "G"}, '
    '{"TM" : "2018-07-24T13:26:04,000+0200 S", "TX" : "E", "RV" : "       2965.1", '
    '"RI" : "1-b:1.8.0", "RU" : "kWh", "RT" : "AC", "EF" : "", "ST" : "G"} ] }'
)

ZAPTEC_FISCAL_PAYLOAD = (
    '{"FV":"1.0","GI":"Zaptec Pro MID","GS":"ZPR294591","GV":"5.0.2.1","PG":"F1","MF":"v1.3.6",'
    '"RD":[{"TM":"2025-04-09T17:45:00,507+00:00 R","RV":2410.000,"RI":"1-0:1.8.0","RU":"kWh",'
    '"ST":"G"}]}'
)


@cache
def private_key(curve_name: str, index: int = 0) -> ec.EllipticCurvePrivateKey:
    """A fresh key per (curve, index), generated once per test run."""
    return ec.generate_private_key(CURVES[curve_name]())


def key_forms(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public key as hex DER, base64 DER and PEM."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "hex_der": der.hex(),
        "base64_der": base64.b64encode(der).decode("ascii"),
        "pem": pem.decode("ascii"),
    }


def sign(
    payload: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    sa: str | None,
    se: str | None = "base64",
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> str:
    """``OCMF|payload|{SA, SE, SD}``; ``None`` leaves a field out."""
    signature = key.sign(payload.encode("utf-8"), ec.ECDSA(hash_algorithm or hashes.SHA256()))
    sd = base64.b64encode(signature).decode("ascii") if se == "base64" else signature.hex()
    section = {k: v for k, v in (("SA", sa), ("SE", se), ("SD", sd)) if v is not None}
    return f"OCMF|{payload}|{json.dumps(section)}"


def tamper_digit(record: str, old: str, new: str) -> str:
    """Replace one occurrence of ``old`` inside the payload section."""
    header, rest = record.split("|", 1)
    assert old in rest
    return header + "|" + rest.replace(old, new, 1)
