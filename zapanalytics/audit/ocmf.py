"""Read and verify OCMF (Open Charge Metering Format) signed meter records.

A record is ``OCMF|<payload JSON>|<signature JSON>``. The signature covers the exact
bytes of the payload section, between the first and the second ``|``, so the payload
is located by scanning its JSON (a ``|`` inside a JSON string, e.g. in the tariff
text ``TT``, is lawful) and is never re-serialised: ``"RV" : "   9.038"`` or
whitespace around keys must survive as written.

:func:`parse` reads a record into an :class:`OcmfRecord` and raises only
:class:`OcmfError`. :func:`verify` checks the signature against a public key and
returns a :class:`Verdict` whose kind is one of ``valid``, ``invalid_signature``,
``unsupported_curve``, ``key_mismatch``, ``malformed`` or ``unsigned``; for a
transaction record it also carries the transaction checks of
:func:`zapanalytics.audit.ocmf_transaction.check_transaction`.

Dialects
--------
The reader accepts what real chargers emit and names every departure from the
specification in :attr:`OcmfRecord.deviations` instead of rejecting the evidence:

* Zaptec: comma decimals and ``+00:00`` offsets in ``TM``, no ``MS``, vendor fields
  ``ZS`` (session id) and ``ZE`` (event log), ``RU``/``RI`` on the first reading only,
  ``SA`` ``ECDSA-secp384r1-SHA256`` with a base64 ``SD``, and records without a
  signature section (older Go firmware).
* Others: ``RV`` as a padded string, whitespace inside the JSON, ``+0200`` offsets,
  ``brainpoolP256r1`` spelt either way, raw ``r‖s`` signatures, a fourth ``|`` section
  holding a public key, and records delivered hex-encoded.

Values omitted from a reading because they equal the previous reading's (``RI``,
``RU``, ``RT``, ``ST``) are carried forward, as the specification allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from zapanalytics.audit.ocmf_crypto import (
    PublicKeyError,
    UnsupportedAlgorithmError,
    curve_name_of,
    load_public_key,
    resolve_algorithm,
    signature_to_der,
)
from zapanalytics.audit.ocmf_parse import (
    OcmfError,
    OcmfRecord,
    Reading,
    SignatureSection,
    parse,
    parse_tm,
)
from zapanalytics.audit.ocmf_transaction import TransactionCheck, check_transaction

__all__ = [
    "OcmfError",
    "OcmfRecord",
    "PublicKeyError",
    "Reading",
    "SignatureSection",
    "TransactionCheck",
    "Verdict",
    "VerdictKind",
    "check_transaction",
    "load_public_key",
    "parse",
    "parse_tm",
    "verify",
    "verify_many",
]


class VerdictKind(StrEnum):
    """Outcome of checking one record's signature."""

    VALID = "valid"
    INVALID_SIGNATURE = "invalid_signature"
    UNSUPPORTED_CURVE = "unsupported_curve"
    KEY_MISMATCH = "key_mismatch"
    MALFORMED = "malformed"
    UNSIGNED = "unsigned"


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`verify` for one record.

    Attributes
    ----------
    kind : VerdictKind
    reason : str
        One line saying why; empty reasons are never produced.
    record : OcmfRecord or None
        ``None`` only when the record was malformed.
    algorithm : str or None
        The algorithm checked (``SA`` or its default).
    transaction : TransactionCheck or None
        Transaction checks, for transaction records.
    """

    kind: VerdictKind
    reason: str
    record: OcmfRecord | None = None
    algorithm: str | None = None
    transaction: TransactionCheck | None = None

    @property
    def ok(self) -> bool:
        """True when the signature is valid."""
        return self.kind is VerdictKind.VALID

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: verdict, reason, readings and transaction checks."""
        record = self.record
        return {
            "verdict": self.kind.value,
            "reason": self.reason,
            "algorithm": self.algorithm,
            "payload_sha256": None if record is None else record.payload_sha256,
            "pagination": None if record is None else record.pagination,
            "gateway_id": None if record is None else record.gateway_id,
            "gateway_serial": None if record is None else record.gateway_serial,
            "meter_serial": None if record is None else record.meter_serial,
            "session_id": None if record is None else record.session_id,
            "deviations": [] if record is None else list(record.deviations),
            "readings": [] if record is None else [r.as_dict() for r in record.readings],
            "transaction_checks": None if self.transaction is None else self.transaction.as_dict(),
        }


def verify(
    record: str | bytes | OcmfRecord,
    public_key: str | bytes | ec.EllipticCurvePublicKey,
) -> Verdict:
    """Verify an OCMF record's signature against a public key.

    Parameters
    ----------
    record : str, bytes or OcmfRecord
        The record, or one already parsed.
    public_key : str, bytes or EllipticCurvePublicKey
        PEM, or DER SubjectPublicKeyInfo as bytes, hex or base64 (or a bare point on
        the record's curve). Keys are cached, so pass the same value for many records.

    Returns
    -------
    Verdict
        ``malformed`` when the record cannot be read; ``unsigned`` when it has no
        signature; ``unsupported_curve`` when ``SA`` names an algorithm that cannot be
        checked; ``key_mismatch`` when the key is not on ``SA``'s curve;
        ``invalid_signature`` or ``valid`` otherwise. Transaction records carry their
        transaction checks whatever the signature verdict.

    Raises
    ------
    PublicKeyError
        When ``public_key`` cannot be read at all (a usage error, not a verdict).
    """
    if isinstance(record, OcmfRecord):
        parsed = record
    else:
        try:
            parsed = parse(record)
        except OcmfError as exc:
            return Verdict(VerdictKind.MALFORMED, exc.reason)
    transaction = check_transaction(parsed) if parsed.is_transaction else None
    signature = parsed.signature
    if signature is None:
        return Verdict(
            VerdictKind.UNSIGNED, "the record has no signature", parsed, None, transaction
        )
    algorithm_name = signature.effective_algorithm
    try:
        algorithm = resolve_algorithm(signature.algorithm)
    except UnsupportedAlgorithmError as exc:
        return Verdict(VerdictKind.UNSUPPORTED_CURVE, str(exc), parsed, algorithm_name, transaction)
    key = load_public_key(public_key, algorithm.curve_name)
    key_curve = curve_name_of(key)
    if key_curve != algorithm.curve_name:
        return Verdict(
            VerdictKind.KEY_MISMATCH,
            f"the key is on {key_curve} but SA {algorithm_name!r} names {algorithm.curve_name}",
            parsed,
            algorithm_name,
            transaction,
        )
    try:
        der = signature_to_der(signature.data, algorithm.coordinate_bytes)
    except ValueError as exc:
        return Verdict(VerdictKind.INVALID_SIGNATURE, str(exc), parsed, algorithm_name, transaction)
    try:
        key.verify(der, parsed.payload_bytes, ec.ECDSA(algorithm.hash_algorithm))
    except InvalidSignature:
        return Verdict(
            VerdictKind.INVALID_SIGNATURE,
            "the signature does not match the payload and key",
            parsed,
            algorithm_name,
            transaction,
        )
    note = "" if algorithm.in_specification else " (algorithm outside the OCMF table)"
    return Verdict(VerdictKind.VALID, f"signature valid{note}", parsed, algorithm_name, transaction)


def verify_many(
    records: Iterable[str | bytes | OcmfRecord],
    public_key: str | bytes | ec.EllipticCurvePublicKey,
    *,
    workers: int | None = 2,
) -> list[Verdict]:
    """Verify many records with one key, in order.

    ECDSA verification in ``cryptography`` releases the GIL, so a small thread pool
    scales with cores without the cost of processes.

    Parameters
    ----------
    records : iterable of str, bytes or OcmfRecord
    public_key : str, bytes or EllipticCurvePublicKey
    workers : int or None
        Threads to use; ``None`` or 1 verifies in the calling thread.

    Returns
    -------
    list of Verdict
    """
    items: Sequence[str | bytes | OcmfRecord] = list(records)
    if not workers or workers <= 1 or len(items) < 64:
        return [verify(item, public_key) for item in items]
    # Few large chunks: one future per record would cost more than the GIL it frees.
    size = -(-len(items) // (workers * 4))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(lambda chunk: [verify(item, public_key) for item in chunk], chunks)
        return [verdict for part in parts for verdict in part]
