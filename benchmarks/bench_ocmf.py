"""B4: verify 10,000 Zaptec-shaped OCMF session records (ECDSA secp384r1), records/s.

Timed side by side (alternating, medians of ``--repeats``) over the same records and key:

* ours: ``zapanalytics.audit.ocmf.verify_many`` (key loaded once, a pool of ``THREADS``
  threads: verification releases the GIL);
* the comparator: ``pyocmf`` from PyPI (``OCMF.from_string(r).verify_signature(key)``) when
  it is installed (``make bench`` installs it), else the plain reference loop (split on
  ``|``, load the key again and verify), in a thread pool of the same size and the same
  chunking as ours: the comparison is of the verifiers, not of the thread counts.

One record in a hundred has its end register changed after signing: both verifiers must
reject exactly those (the agree column). ``parse`` alone (no cryptography) is timed once
to show how much of the cost is reading.

Run: ``.venv/bin/python -m benchmarks.bench_ocmf [--quick] [--records N] [--repeats N]``
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from benchmarks.harness import Result, alternate, argument_parser, emit
from zapanalytics.audit.ocmf import parse, verify_many

SA = "ECDSA-secp384r1-SHA256"
TAMPER_EVERY = 100
#: Threads for ours and for the comparator alike.
THREADS = 2


def in_thread_pool(check, records: list[str], key_b64: str, workers: int = THREADS) -> list[bool]:
    """``check(record, key)`` over ``records`` in a pool of ``workers`` threads, chunked as
    :func:`~zapanalytics.audit.ocmf.verify_many` chunks (four chunks per thread), in order."""
    size = -(-len(records) // (workers * 4))
    chunks = [records[i : i + size] for i in range(0, len(records), size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(lambda chunk: [check(r, key_b64) for r in chunk], chunks)
        return [ok for part in parts for ok in part]


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


def tamper(records: list[str]) -> list[str]:
    """Change the last digit of the end register of every ``TAMPER_EVERY``-th record."""
    changed = list(records)
    for index in range(TAMPER_EVERY // 2, len(changed), TAMPER_EVERY):
        head, payload, signature = changed[index].split("|")
        cut = payload.rindex('"RV":') + 5
        end = payload.index(",", cut)
        value = payload[cut:end]
        digit = str((int(value[-1]) + 1) % 10)
        changed[index] = f"{head}|{payload[:cut]}{value[:-1]}{digit}{payload[end:]}|{signature}"
    return changed


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


def pyocmf_verifier():
    """``pyocmf``'s verify as ``(record, key) -> bool``, or None when it is not installed."""
    try:
        from pyocmf import OCMF
    except ImportError:
        return None

    def check(record: str, key_b64: str) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return bool(OCMF.from_string(record).verify_signature(key_b64))
            except Exception:  # noqa: BLE001 - a verifier that raises on a bad record rejects it
                return False

    return check


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=None)
    args = parser.parse_args(argv)
    count = args.records or (300 if args.quick else 10_000)

    key = ec.generate_private_key(ec.SECP384R1())
    key_b64 = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    began = time.perf_counter()
    records = tamper(zaptec_session_records(count, key))
    expected = [index % TAMPER_EVERY != TAMPER_EVERY // 2 for index in range(count)]
    print(f"signed {count:,} secp384r1 records in {time.perf_counter() - began:.1f} s "
          f"on {os.cpu_count()} CPU(s); {expected.count(False)} tampered")  # fmt: skip

    peer = pyocmf_verifier()
    peer_name = f"pyocmf from_string + verify_signature ({THREADS} threads)"
    if peer is None:
        peer, peer_name = naive_verify, f"plain loop, key reloaded per record, {THREADS} threads (pyocmf not installed)"
    timings = alternate(
        {
            "ours": lambda: [v.ok for v in verify_many(records, key_b64, workers=THREADS)],
            "peer": lambda: in_thread_pool(peer, records, key_b64),
        },
        repeats=args.repeats,
    )
    began = time.perf_counter()
    parsed = sum(bool(parse(r).readings) for r in records)
    parse_s = time.perf_counter() - began
    ours, theirs = timings["ours"], timings["peer"]
    agree = ours.value == expected and theirs.value == expected
    for label, timing in ((f"zapanalytics verify_many ({THREADS} threads)", ours), (peer_name, theirs)):
        print(f"{label:<60} {count / timing.median_s:>8,.0f} records/s (median "
              f"{timing.median_s:.2f} s of {[round(r, 2) for r in timing.runs_s]}), "
              f"{sum(timing.value)} valid")  # fmt: skip
    print(f"{'zapanalytics parse only':<60} {count / parse_s:>8,.0f} records/s ({parsed} read)")
    ratio = theirs.median_s / ours.median_s
    row = Result(
        workload=f"B4 OCMF verification, {count:,} secp384r1 records",
        ours=f"verify_many ({THREADS} threads)",
        ours_value=count / ours.median_s,
        comparator=peer_name,
        comparator_value=count / theirs.median_s,
        unit="records/s",
        higher_is_better=True,
        peak_rss_mb=ours.peak_rss_mb,
        agree=agree,
        notes=(
            f"{expected.count(False)} tampered records rejected by both: {agree}; parse alone "
            f"{count / parse_s:,.0f} records/s: the cost is the ECDSA P-384 verification "
            f"itself (OpenSSL in both); both run in the same {THREADS}-thread pool, so the "
            f"ratio ({ratio:.1f}×) is what ours saves around the verification (key loaded once, "
            f"one parse) and how much of its work releases the GIL"
        ),
    )
    emit([row], args.result)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
