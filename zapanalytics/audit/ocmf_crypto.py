"""Signature algorithms and public keys for OCMF records.

OCMF names its algorithm in the signature section's ``SA`` field, e.g.
``ECDSA-secp384r1-SHA256``; when ``SA`` is absent the specification's default
``ECDSA-secp256r1-SHA256`` applies. The specification (Table 22) lists seven curves,
all hashed with SHA-256. Real records also spell the brainpool curves
``brainpoolP256r1`` rather than the specification's ``brainpool256r1``; both are
accepted. Curves and hashes outside the table that the ``cryptography`` package can
verify (secp521r1, brainpoolP512r1, SHA-384/512) are accepted too and reported as a
deviation from the specification. secp192k1 is in the table but ``cryptography``
cannot load it, so records that use it are reported as an unsupported curve.

Public keys are accepted as PEM, as DER SubjectPublicKeyInfo (raw bytes, hex or
base64), and, when the curve is known from ``SA``, as a bare SEC1 point (``04‖X‖Y``,
compressed ``02/03‖X``, or ``X‖Y`` without a prefix). Loaded keys are cached, so
verifying many records with one key parses the key once.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "DEFAULT_SIGNATURE_ALGORITHM",
    "SPEC_ALGORITHMS",
    "PublicKeyError",
    "SignatureAlgorithm",
    "UnsupportedAlgorithmError",
    "load_public_key",
    "resolve_algorithm",
    "signature_to_der",
]

DEFAULT_SIGNATURE_ALGORITHM = "ECDSA-secp256r1-SHA256"

# Canonical curve name -> cryptography curve class (None: named by OCMF, not loadable).
_CURVES: dict[str, type[ec.EllipticCurve] | None] = {
    "secp192k1": None,
    "secp192r1": ec.SECP192R1,
    "secp256k1": ec.SECP256K1,
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
    "brainpoolP512r1": ec.BrainpoolP512R1,
}
# Spellings seen in records and standards, lower-cased, mapped to the canonical name.
_CURVE_ALIASES = {
    **{name.lower(): name for name in _CURVES},
    "prime256v1": "secp256r1",
    "prime192v1": "secp192r1",
    "p256": "secp256r1",
    "p384": "secp384r1",
    "p521": "secp521r1",
    "brainpool256r1": "brainpoolP256r1",
    "brainpool384r1": "brainpoolP384r1",
    "brainpool512r1": "brainpoolP512r1",
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
# Table 22 of the OCMF specification (rev 1.4.1): every curve with SHA-256.
SPEC_ALGORITHMS = frozenset(
    (
        "secp192k1",
        "secp256k1",
        "secp192r1",
        "secp256r1",
        "brainpoolP256r1",
        "secp384r1",
        "brainpoolP384r1",
    )
)
_SA_PATTERN = re.compile(
    r"(?P<method>[A-Za-z]+)-(?P<curve>[A-Za-z0-9]+)-(?P<hash>SHA-?\d+)", re.ASCII | re.IGNORECASE
)


class PublicKeyError(ValueError):
    """The public key given for verification cannot be read."""


class UnsupportedAlgorithmError(ValueError):
    """The record's ``SA`` names an algorithm this verifier cannot check."""


@dataclass(frozen=True)
class SignatureAlgorithm:
    """A resolved OCMF signature algorithm.

    Attributes
    ----------
    name : str
        The algorithm as written in the record, or the default when ``SA`` is absent.
    curve_name : str
        Canonical curve name, e.g. ``"secp384r1"``, ``"brainpoolP256r1"``.
    hash_name : str
        ``"SHA256"``, ``"SHA384"`` or ``"SHA512"``.
    in_specification : bool
        Whether the OCMF specification's Table 22 lists this curve/hash pair.
    """

    name: str
    curve_name: str
    hash_name: str
    in_specification: bool

    @property
    def curve(self) -> ec.EllipticCurve:
        curve_class = _CURVES[self.curve_name]
        if curve_class is None:  # resolve_algorithm never returns these
            raise UnsupportedAlgorithmError(f"curve {self.curve_name} cannot be loaded")
        return curve_class()

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return _HASHES[self.hash_name]()

    @property
    def coordinate_bytes(self) -> int:
        """Size of one curve coordinate (and of r or s) [bytes]."""
        return (self.curve.key_size + 7) // 8


def resolve_algorithm(sa: str | None) -> SignatureAlgorithm:
    """Resolve an OCMF ``SA`` value to a curve and a hash.

    Parameters
    ----------
    sa : str or None
        The ``SA`` field; ``None`` means the specification's default
        ``ECDSA-secp256r1-SHA256``.

    Returns
    -------
    SignatureAlgorithm

    Raises
    ------
    UnsupportedAlgorithmError
        For a method other than ECDSA, an unknown curve or hash, or a curve the
        ``cryptography`` package cannot load (secp192k1).
    """
    name = DEFAULT_SIGNATURE_ALGORITHM if sa is None else sa
    match = _SA_PATTERN.fullmatch(name.strip())
    if match is None:
        raise UnsupportedAlgorithmError(f"SA {name!r} is not of the form ECDSA-<curve>-<hash>")
    if match["method"].upper() != "ECDSA":
        raise UnsupportedAlgorithmError(f"SA {name!r}: only ECDSA signatures are defined by OCMF")
    curve_name = _CURVE_ALIASES.get(match["curve"].lower())
    if curve_name is None:
        raise UnsupportedAlgorithmError(f"SA {name!r}: unknown curve {match['curve']!r}")
    if _CURVES[curve_name] is None:
        raise UnsupportedAlgorithmError(
            f"SA {name!r}: curve {curve_name} is named by OCMF but the cryptography "
            "library cannot load it"
        )
    hash_name = match["hash"].upper().replace("-", "")
    if hash_name not in _HASHES:
        raise UnsupportedAlgorithmError(f"SA {name!r}: unsupported hash {match['hash']!r}")
    return SignatureAlgorithm(
        name=name,
        curve_name=curve_name,
        hash_name=hash_name,
        in_specification=curve_name in SPEC_ALGORITHMS and hash_name == "SHA256",
    )


def curve_name_of(key: ec.EllipticCurvePublicKey) -> str:
    """Canonical curve name of a loaded key (``cryptography`` spells brainpool in lower case)."""
    return _CURVE_ALIASES.get(key.curve.name.lower(), key.curve.name)


_HEX = re.compile(r"[0-9A-Fa-f]+", re.ASCII)
_WHITESPACE = re.compile(r"\s+")


def _candidate_encodings(text: str) -> list[bytes]:
    """Byte strings that ``text`` may encode: hex first (it is also valid base64), then base64."""
    compact = _WHITESPACE.sub("", text)
    candidates = []
    if compact and len(compact) % 2 == 0 and _HEX.fullmatch(compact):
        candidates.append(bytes.fromhex(compact))
    try:
        candidates.append(base64.b64decode(compact, validate=True))
    except (binascii.Error, ValueError):
        pass
    return candidates


def _load_der_or_point(raw: bytes, curve_name: str | None) -> ec.EllipticCurvePublicKey | None:
    try:
        key = serialization.load_der_public_key(raw)
    except UnsupportedAlgorithm as exc:
        raise PublicKeyError(
            f"the public key uses an unsupported algorithm or curve: {exc}"
        ) from exc
    except ValueError:
        key = None
    if key is not None:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise PublicKeyError(
                f"the public key is a {type(key).__name__.removeprefix('_')}, not an EC key"
            )
        return key
    if curve_name is None or _CURVES.get(curve_name) is None:
        return None
    curve = _CURVES[curve_name]()
    size = (curve.key_size + 7) // 8
    point = b"\x04" + raw if len(raw) == 2 * size else raw
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _load_cached(key: str | bytes, curve_name: str | None) -> ec.EllipticCurvePublicKey:
    if isinstance(key, bytes) and key.lstrip().startswith(b"-----BEGIN"):
        key = key.decode("ascii", errors="replace")
    if isinstance(key, str):
        text = key.strip()
        if text.startswith("-----BEGIN"):
            try:
                loaded = serialization.load_pem_public_key(text.encode("ascii", errors="replace"))
            except UnsupportedAlgorithm as exc:
                raise PublicKeyError(f"the PEM key uses an unsupported curve: {exc}") from exc
            except ValueError as exc:
                raise PublicKeyError(f"the PEM public key cannot be read: {exc}") from exc
            if not isinstance(loaded, ec.EllipticCurvePublicKey):
                raise PublicKeyError(
                    f"the public key is a {type(loaded).__name__.removeprefix('_')}, not an EC key"
                )
            return loaded
        candidates = _candidate_encodings(text)
        if not candidates:
            raise PublicKeyError("the public key is neither PEM, hex nor base64")
    else:
        candidates = [key]
        try:
            candidates += _candidate_encodings(key.decode("ascii"))
        except UnicodeDecodeError:
            pass
    for raw in candidates:
        loaded = _load_der_or_point(raw, curve_name)
        if loaded is not None:
            return loaded
    raise PublicKeyError(
        "the public key is not a DER SubjectPublicKeyInfo"
        + (" nor a point on the record's curve" if curve_name else "")
    )


def load_public_key(
    key: str | bytes | ec.EllipticCurvePublicKey, curve_name: str | None = None
) -> ec.EllipticCurvePublicKey:
    """Load an EC public key in any of the forms OCMF keys are published in.

    Parameters
    ----------
    key : str, bytes or EllipticCurvePublicKey
        PEM text; DER SubjectPublicKeyInfo as bytes, hex or base64; or, when
        ``curve_name`` is given, a bare SEC1 point (bytes, hex or base64).
    curve_name : str, optional
        Curve the key is expected on, used only to read a bare point.

    Returns
    -------
    EllipticCurvePublicKey

    Raises
    ------
    PublicKeyError
        When the key cannot be read or is not an elliptic-curve key.
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key
    if not isinstance(key, str | bytes):
        raise PublicKeyError(f"a public key must be text or bytes, not {type(key).__name__}")
    return _load_cached(key, curve_name)


def signature_to_der(signature: bytes, coordinate_bytes: int) -> bytes:
    """Return the signature as DER, converting a raw ``r‖s`` signature if needed.

    Parameters
    ----------
    signature : bytes
        DER ``SEQUENCE{r, s}`` (OCMF's ``application/x-der``) or raw ``r‖s``.
    coordinate_bytes : int
        Size of r and s on the curve [bytes].

    Raises
    ------
    ValueError
        When the bytes are neither.
    """
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        if len(signature) != 2 * coordinate_bytes:
            raise ValueError(
                "the signature is neither DER nor raw r||s of the curve's size"
            ) from None
        r = int.from_bytes(signature[:coordinate_bytes], "big")
        s = int.from_bytes(signature[coordinate_bytes:], "big")
    # Re-encoding normalises lenient DER (e.g. superfluous leading zeros) to strict DER.
    return encode_dss_signature(r, s)
