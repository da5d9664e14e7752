"""Signed meter records in Zaptec's dialect of OCMF (Open Charge Metering Format).

A record is ``OCMF|<payload JSON>|<signature JSON>``. The signature is ECDSA on
curve secp384r1 with SHA-256 over the exact UTF-8 bytes of the payload section,
encoded as base64 DER (``{"SA":"ECDSA-secp384r1-SHA256","SE":"base64","SD":...}``),
which is what Zaptec Pro MID and Go+ firmware emit.

Zaptec's dialect, as reproduced here
------------------------------------
* Payload keys in this order: ``FV GI GS GV PG MF`` then, for session records,
  ``IS`` (and ``IL IF IT ID`` when the user was identified), the vendor key ``ZS``
  (session UUID), and ``RD``.
* ``PG`` is ``"T<n>"`` for session (transaction) records and ``"F<n>"`` for periodic
  (fiscal) register records, counting up from 1 per charger. Zaptec's Go+ firmware
  hard-codes ``T1``/``F1``; ``fixed_pagination=True`` reproduces that.
* Readings: ``TM`` is ``YYYY-MM-DDThh:mm:ss,fff+00:00 <status>`` (comma before the
  milliseconds, a colon in the offset, unlike the OCMF specification's ``+0000``),
  with status ``R`` (relative time) by default. ``TX`` is ``B``/``T``/``E`` in
  session records and absent in periodic ones. ``RV`` is a JSON number in kWh with
  three decimals (the Wh register / 1000). ``RI`` is ``"1-0:1.8.0"``; ``RU`` (``"kWh"``)
  appears on the first reading only; ``RT`` is ``"AC"`` in session readings.
  ``ST`` is ``"G"``; a meter error gives ``"E"`` and drops ``RV``/``RI``/``RU``.
* Periodic records look like the Pro's StateId 554 value:
  ``{"FV":"1.0","GI":"Zaptec Pro MID","GS":"ZCS000001","GV":"5.0.2.1","PG":"F1",
  "MF":"v1.3.6","RD":[{"TM":"...","RV":2410.009,"RI":"1-0:1.8.0","RU":"kWh","ST":"G"}]}``.

Keys
----
One key pair per charger, derived deterministically: the private scalar is
SHA-512 of a domain tag, the seed and the charger serial, reduced into [1, n-1] of
the P-384 group. Signing uses RFC 6979 deterministic ECDSA, so the same seed and
inputs give byte-identical records.

Time stamps are float seconds since the Unix epoch (UTC) or tz-aware datetimes.

Public API
----------
``derive_private_key(seed, serial) -> EllipticCurvePrivateKey``
``public_key_pem(key) -> str`` / ``public_key_der_base64(key) -> str`` (SPKI)
``format_tm(ts, status="R") -> str``
``OcmfReading(ts, register_wh, tx=None, status="G")``
``OcmfIdentification(level, flags, id_type, data)``; ``rfid_identification(tag)``,
``cloud_identification(user_id)``
``OcmfSigner(private_key, gateway_id, gateway_serial, gateway_version,
meter_firmware="v1.3.6", fixed_pagination=False, time_status="R")`` and
``OcmfSigner.from_seed(seed, serial, **kw)``, with
``session_record(session_id, readings, identification=None, signed=True) -> str``,
``fiscal_record(ts, register_wh, status="G", signed=True) -> str``,
``session_payload(...)``/``fiscal_payload(...)`` (payload text only, no page advance
for ``dry_run``), ``sign_payload(payload) -> str`` (base64 DER), ``public_key_pem``,
``public_key_der_base64``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_ref.emeter import register_kwh_text

__all__ = [
    "OBIS_ACTIVE_IMPORT",
    "SIGNATURE_ALGORITHM",
    "OcmfIdentification",
    "OcmfReading",
    "OcmfSigner",
    "cloud_identification",
    "derive_private_key",
    "format_tm",
    "public_key_der_base64",
    "public_key_pem",
    "rfid_identification",
]

SIGNATURE_ALGORITHM = "ECDSA-secp384r1-SHA256"
OBIS_ACTIVE_IMPORT = "1-0:1.8.0"
FORMAT_VERSION = "1.0"

# Order of the secp384r1 group (SEC 2, section 2.5.1).
_P384_ORDER = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
    16,
)
_KEY_DOMAIN = b"firmware_ref.ocmf.p384.v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_TIME_STATUSES = frozenset("USIR")
_READING_TX = frozenset("BCXELRAPST")


def _seed_bytes(seed: bytes | str | int) -> bytes:
    if isinstance(seed, bytes):
        return seed
    if isinstance(seed, bool):
        raise TypeError("seed must be bytes, str or int")
    if isinstance(seed, int):
        return str(seed).encode("ascii")
    if isinstance(seed, str):
        return seed.encode("utf-8")
    raise TypeError(f"seed must be bytes, str or int, got {type(seed).__name__}")


def derive_private_key(seed: bytes | str | int, serial: str) -> ec.EllipticCurvePrivateKey:
    """Derive a charger's P-384 signing key from a seed and its serial number.

    Parameters
    ----------
    seed : bytes, str or int
        Simulation seed; the same seed and serial always give the same key.
    serial : str
        Charger serial number, e.g. ``"ZCS000123"``.

    Returns
    -------
    cryptography.hazmat.primitives.asymmetric.ec.EllipticCurvePrivateKey
    """
    material = _KEY_DOMAIN + b"\x00" + _seed_bytes(seed) + b"\x00" + serial.encode("utf-8")
    digest = hashlib.sha512(material).digest()
    scalar = int.from_bytes(digest, "big") % (_P384_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP384R1())


def _public(
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey,
) -> ec.EllipticCurvePublicKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.public_key()
    return key


def public_key_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """Public key as PEM text (SubjectPublicKeyInfo)."""
    return (
        _public(key)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def public_key_der_base64(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """Public key as base64 of its DER SubjectPublicKeyInfo (the usual OCMF key form)."""
    der = _public(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def _epoch_ms(ts: float | datetime) -> int:
    if isinstance(ts, datetime):
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError("naive datetime; pass a tz-aware UTC datetime")
        micros = (ts - _EPOCH) // _ONE_US
        return (micros + 500) // 1000
    return round(ts * 1000.0)


def format_tm(ts: float | datetime, status: str = "R") -> str:
    """Format an OCMF reading time the way Zaptec firmware does.

    Parameters
    ----------
    ts : float or datetime
        Seconds since the Unix epoch (UTC), or a tz-aware datetime; rounded to ms.
    status : {"R", "S", "I", "U"}
        Time-status letter: relative, synchronised, informative, unknown.

    Returns
    -------
    str
        e.g. ``"2025-06-07T09:20:55,943+00:00 R"``.
    """
    if status not in _TIME_STATUSES:
        raise ValueError(f"unknown OCMF time status {status!r}")
    ms = _epoch_ms(ts)
    seconds, millis = divmod(ms, 1000)
    stamp = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp},{millis:03d}+00:00 {status}"


class OcmfReading(NamedTuple):
    """One register reading inside a record.

    Attributes
    ----------
    ts : float or datetime
        Time of the reading [s since epoch, UTC] or tz-aware datetime.
    register_wh : int
        Lifetime import register [Wh].
    tx : str or None
        Transaction code ``"B"``, ``"T"`` or ``"E"`` (``None`` in periodic records).
    status : str
        Meter status: ``"G"`` good, ``"E"`` meter error (drops RV/RI/RU).
    """

    ts: float | datetime
    register_wh: int
    tx: str | None = None
    status: str = "G"


class OcmfIdentification(NamedTuple):
    """User identification written into a session record (IL/IF/IT/ID)."""

    level: str
    flags: tuple[str, ...]
    id_type: str
    data: str


def rfid_identification(tag: str) -> OcmfIdentification:
    """Identification for an RFID tag read by the charger (Zaptec: HEARSAY, ISO14443)."""
    return OcmfIdentification("HEARSAY", ("RFID_RELATED",), "ISO14443", tag)


def cloud_identification(user_id: str) -> OcmfIdentification:
    """Identification for a start authorised by the cloud (Zaptec: TRUSTED, CENTRAL)."""
    return OcmfIdentification("TRUSTED", (), "CENTRAL", user_id)


def _js(value: str) -> str:
    return json.dumps(value)


class OcmfSigner:
    """Emits and signs OCMF records for one charger; reuse one per charger.

    Parameters
    ----------
    private_key : EllipticCurvePrivateKey
        secp384r1 key, e.g. from :func:`derive_private_key`.
    gateway_id : str
        ``GI``, e.g. ``"Zaptec Pro MID"``.
    gateway_serial : str
        ``GS``, the charger serial.
    gateway_version : str
        ``GV``, charger firmware version.
    meter_firmware : str, default "v1.3.6"
        ``MF``.
    fixed_pagination : bool, default False
        Always ``T1``/``F1`` (Go+ behaviour) instead of counting pages.
    time_status : str, default "R"
        Time-status letter for every ``TM``.
    """

    __slots__ = (
        "_ecdsa",
        "_header",
        "_key",
        "fiscal_page",
        "fixed_pagination",
        "gateway_id",
        "gateway_serial",
        "gateway_version",
        "meter_firmware",
        "time_status",
        "transaction_page",
    )

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        gateway_id: str,
        gateway_serial: str,
        gateway_version: str,
        meter_firmware: str = "v1.3.6",
        fixed_pagination: bool = False,
        time_status: str = "R",
    ) -> None:
        if not isinstance(private_key.curve, ec.SECP384R1):
            raise ValueError("Zaptec OCMF records are signed on secp384r1")
        if time_status not in _TIME_STATUSES:
            raise ValueError(f"unknown OCMF time status {time_status!r}")
        self._key = private_key
        self._ecdsa = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        self.gateway_id = gateway_id
        self.gateway_serial = gateway_serial
        self.gateway_version = gateway_version
        self.meter_firmware = meter_firmware
        self.fixed_pagination = fixed_pagination
        self.time_status = time_status
        self.transaction_page = 0
        self.fiscal_page = 0
        self._header = (
            f'{{"FV":{_js(FORMAT_VERSION)},"GI":{_js(gateway_id)},'
            f'"GS":{_js(gateway_serial)},"GV":{_js(gateway_version)},'
        )

    @classmethod
    def from_seed(cls, seed: bytes | str | int, serial: str, **kwargs: object) -> OcmfSigner:
        """Signer with the key :func:`derive_private_key` gives for ``seed`` and ``serial``.

        Remaining keyword arguments go to the constructor (``gateway_id`` and
        ``gateway_version`` are required; ``gateway_serial`` defaults to ``serial``).
        """
        kwargs.setdefault("gateway_serial", serial)
        return cls(derive_private_key(seed, serial), **kwargs)  # type: ignore[arg-type]

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        return self._key

    @property
    def public_key_pem(self) -> str:
        """The charger's public key as PEM (SPKI)."""
        return public_key_pem(self._key)

    @property
    def public_key_der_base64(self) -> str:
        """The charger's public key as base64 DER (SPKI)."""
        return public_key_der_base64(self._key)

    def sign_payload(self, payload: str) -> str:
        """Base64 DER ECDSA-P384-SHA256 signature over the payload's UTF-8 bytes."""
        der = self._key.sign(payload.encode("utf-8"), self._ecdsa)
        return base64.b64encode(der).decode("ascii")

    def record(self, payload: str, signed: bool = True) -> str:
        """Assemble ``OCMF|payload|signature`` (or ``OCMF|payload`` when unsigned)."""
        if not signed:
            return f"OCMF|{payload}"
        signature = (
            f'{{"SA":"{SIGNATURE_ALGORITHM}","SE":"base64","SD":"{self.sign_payload(payload)}"}}'
        )
        return f"OCMF|{payload}|{signature}"

    def _reading_json(self, reading: OcmfReading, first: bool, with_rt: bool) -> str:
        parts = [f'"TM":"{format_tm(reading.ts, self.time_status)}"']
        if reading.tx is not None:
            if reading.tx not in _READING_TX:
                raise ValueError(f"unknown OCMF transaction code {reading.tx!r}")
            parts.append(f'"TX":"{reading.tx}"')
        if reading.status == "G":
            parts.append(f'"RV":{register_kwh_text(reading.register_wh)}')
            parts.append(f'"RI":"{OBIS_ACTIVE_IMPORT}"')
            if first:
                parts.append('"RU":"kWh"')
        if with_rt:
            parts.append('"RT":"AC"')
        parts.append(f'"ST":{_js(reading.status)}')
        return "{" + ",".join(parts) + "}"

    def _next_page(self, kind: str, dry_run: bool) -> str:
        if self.fixed_pagination:
            return f"{kind}1"
        if kind == "T":
            page = self.transaction_page + 1
            if not dry_run:
                self.transaction_page = page
        else:
            page = self.fiscal_page + 1
            if not dry_run:
                self.fiscal_page = page
        return f"{kind}{page}"

    def session_payload(
        self,
        session_id: str,
        readings: Sequence[OcmfReading],
        identification: OcmfIdentification | None = None,
        dry_run: bool = False,
    ) -> str:
        """Payload text of a session (transaction) record, ``PG`` ``"T<n>"``.

        Parameters
        ----------
        session_id : str
            Session UUID, written as the vendor key ``ZS``.
        readings : sequence of OcmfReading
            Usually a ``B`` reading, optional ``T`` readings and an ``E`` reading.
        identification : OcmfIdentification, optional
            Who started the session; ``None`` writes ``"IS":false,"IT":"NONE"``.
        dry_run : bool, default False
            Build the text without advancing the page counter.
        """
        if not readings:
            raise ValueError("a session record needs at least one reading")
        page = self._next_page("T", dry_run)
        ident: list[str]
        if identification is None:
            ident = ['"IS":false', '"IT":"NONE"']
        else:
            ident = [
                '"IS":true',
                f'"IL":{_js(identification.level)}',
                f'"IF":{json.dumps(list(identification.flags), separators=(",", ":"))}',
                f'"IT":{_js(identification.id_type)}',
                f'"ID":{_js(identification.data)}',
            ]
        rd = ",".join(
            self._reading_json(reading, index == 0, with_rt=True)
            for index, reading in enumerate(readings)
        )
        return (
            f'{self._header}"PG":"{page}","MF":{_js(self.meter_firmware)},'
            f'{",".join(ident)},"ZS":{_js(session_id)},"RD":[{rd}]}}'
        )

    def fiscal_payload(
        self, ts: float | datetime, register_wh: int, status: str = "G", dry_run: bool = False
    ) -> str:
        """Payload text of a periodic (fiscal) register record, ``PG`` ``"F<n>"``."""
        page = self._next_page("F", dry_run)
        reading = self._reading_json(OcmfReading(ts, register_wh, None, status), True, False)
        return f'{self._header}"PG":"{page}","MF":{_js(self.meter_firmware)},"RD":[{reading}]}}'

    def session_record(
        self,
        session_id: str,
        readings: Sequence[OcmfReading],
        identification: OcmfIdentification | None = None,
        signed: bool = True,
    ) -> str:
        """Complete signed session record ``OCMF|...|...``; advances ``T<n>``."""
        return self.record(self.session_payload(session_id, readings, identification), signed)

    def fiscal_record(
        self, ts: float | datetime, register_wh: int, status: str = "G", signed: bool = True
    ) -> str:
        """Complete signed periodic register record ``OCMF|...|...``; advances ``F<n>``."""
        return self.record(self.fiscal_payload(ts, register_wh, status), signed)
