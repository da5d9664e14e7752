"""Verify 10,000 Zaptec-shaped OCMF session records (ECDSA secp384r1) and print records/s.

Compared side by side, each over the same records and key:

* ``zapanalytics verify_many`` (key cached, a two-thread pool: verification releases the GIL);
* ``zapanalytics verify`` in a plain loop (key cached, one thread);
* ``parse`` alone (no cryptography), to show the share of the cost that is reading;
* a naive loop that decodes and loads the key again for every record;
* ``pyocmf`` (``OCMF.from_string(...).verify_signature(key)``), when it is installed.

Run: ``.venv/bin/python benchmarks/bench_ocmf.py [--records N]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from zapanalytics.audit.ocmf import parse, verify, verify_many

SA = "ECDSA-secp384r1-SHA256"


def _tm(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S,") + f"{ts.microsecond // 1000:03d}+00:00 R"


def zaptec_session_records(count: int, key: ec.EllipticCurvePrivateKey) -> list[str]:
    """``count`` distinct signed session records in Zaptec's dialect."""
    records = []
    start = datetime(2025, 1, 1, 17, 3, 12, 250000, tzinfo=UTC)
    register_wh = 1_537_688
    for index in range(count):
        begin = start + timedelta(hours=9 * index)
        energy_wh = 4000 + (index * 7919) % 30000
        middle_wh = register_wh + energy_wh // 2
        payload = (
            '{"FV":"1.0","GI":"Zaptec Go+","GS":"ZAP123456","GV":"2.1.0.4","PG":"T1",'
            '"MF":"v1.3.6","IS":true,"IL":"TRUSTED","IF":["RFID_RELATED"],"IT":"ISO14443",'
            f'"ID":"04A1B2C3","ZS":"{uuid.UUID(int=index)}","RD":['
            f'{{"TM":"{_tm(begin)}","TX":"B","RV":{register_wh / 1000:.3f},"RI":"1-0:1.8.0",'
            '"RU":"kWh","RT":"AC","ST":"G"},'
            f'{{"TM":"{_tm(begin + timedelta(hours=1))}","TX":"T","RV":{middle_wh / 1000:.3f},'
            '"RI":"1-0:1.8.0","RT":"AC","ST":"G"},'
            f'{{"TM":"{_tm(begin + timedelta(hours=3))}","TX":"E",'
            f'"RV":{(register_wh + energy_wh) / 1000:.3f},"RI":"1-0:1.8.0","RT":"AC","ST":"G"}}]}}'
        )
        signature = key.sign(payload.encode(), ec.ECDSA(hashes.SHA256()))
        section = json.dumps({"SA": SA, "SE": "base64", "SD": base64.b64encode(signature).decode()})
        records.append(f"OCMF|{payload}|{section}")
        register_wh += energy_wh + 37
    return records


def naive_verify(record: str, key_b64: str) -> bool:
    """Split on '|', decode the key from text and load it again for every record."""
    _, payload, signature_json = record.split("|")
    json.loads(payload)
    signature = json.loads(signature_json)
    key = serialization.load_der_public_key(base64.b64decode(key_b64))
    try:
        key.verify(base64.b64decode(signature["SD"]), payload.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _rate(label: str, count: int, run: Callable[[], int]) -> float:
    start = time.perf_counter()
    good = run()
    elapsed = time.perf_counter() - start
    rate = count / elapsed
    print(f"{label:<46} {rate:>10,.0f} records/s  ({elapsed:6.2f} s, {good} valid)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    count = args.records

    key = ec.generate_private_key(ec.SECP384R1())
    key_b64 = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    t0 = time.perf_counter()
    records = zaptec_session_records(count, key)
    print(
        f"signed {count:,} secp384r1 records in {time.perf_counter() - t0:.1f} s "
        f"on {os.cpu_count()} CPU(s)"
    )

    _rate(
        "zapanalytics verify_many (2 threads)",
        count,
        lambda: sum(v.ok for v in verify_many(records, key_b64, workers=2)),
    )
    _rate(
        "zapanalytics verify, one thread",
        count,
        lambda: sum(verify(r, key_b64).ok for r in records),
    )
    _rate("zapanalytics parse only", count, lambda: sum(bool(parse(r).readings) for r in records))
    _rate(
        "naive loop, key reloaded per record",
        count,
        lambda: sum(naive_verify(r, key_b64) for r in records),
    )
    try:
        import warnings

        from pyocmf import OCMF
    except ImportError:
        print("pyocmf is not installed; `.venv/bin/pip install pyocmf` to compare")
        return

    def run_pyocmf() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sum(OCMF.from_string(r).verify_signature(key_b64) for r in records)

    _rate("pyocmf from_string + verify_signature", count, run_pyocmf)


if __name__ == "__main__":
    main()
