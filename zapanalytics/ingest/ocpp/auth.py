"""Who may connect: charge point credentials (security profile 1), id tags, login throttling."""

from __future__ import annotations

import base64
import binascii
import collections
import ipaddress
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Charge point identity: the OCPP 2.0.1 identifierString alphabet, up to 48 characters.
CHARGE_POINT_ID_PATTERN = re.compile(r"^[A-Za-z0-9*\-_=:+|@.]{1,48}$")


def load_credentials(path: str | Path) -> dict[str, str]:
    """Read a credentials file mapping charge point id to password.

    Parameters
    ----------
    path : str or Path
        JSON object ``{"ZPR100001": "password", ...}``.

    Raises
    ------
    ValueError
        When the file is not such an object (the message never contains a password).
    """
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the credentials file {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path} must hold a JSON object mapping charge point id to password")
    for key, value in data.items():
        if not CHARGE_POINT_ID_PATTERN.match(str(key)):
            raise ValueError(f"{path}: {key!r} is not a valid charge point id")
        if not isinstance(value, str) or not value:
            raise ValueError(f"{path}: the password for {key!r} must be a non-empty string")
    return dict(data)


def load_id_tags(path: str | Path) -> frozenset[str]:
    """Read a local allow-list of id tags: a JSON array of strings."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the id-tag list {path}: {type(exc).__name__}") from None
    if not isinstance(data, list) or not all(isinstance(t, str) and 0 < len(t) <= 20 for t in data):
        raise ValueError(f"{path} must hold a JSON array of id tags (1 to 20 characters each)")
    return frozenset(data)


#: Keys (addresses, ids) the throttle remembers at most: bounds its memory [keys].
_MAX_THROTTLE_KEYS = 10_000


class LoginThrottle:
    """Delay answers to failed logins, doubling with each recent failure.

    Failures are counted per key (the peer address and the charge point id); the delay is
    the larger of the two, so neither spreading attempts over ids nor over addresses helps.
    """

    def __init__(
        self,
        *,
        free_failures: int = 3,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        window_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, collections.deque[float]] = {}

    def _recent(self, key: str) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        horizon = self._clock() - self.window_s
        while times and times[0] < horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        return len(times)

    def failed(self, *keys: str) -> float:
        """Record a failure for ``keys`` and return the delay to impose now [s]."""
        now = self._clock()
        if len(self._failures) > _MAX_THROTTLE_KEYS:
            for key in list(self._failures):
                self._recent(key)
            # Still too many within the window (ids sprayed from many addresses): forget the
            # oldest charge point ids first, keeping what each address did.
            for prefix in ("id:", ""):
                for key in list(self._failures):
                    if len(self._failures) <= _MAX_THROTTLE_KEYS // 2:
                        break
                    if key.startswith(prefix):
                        del self._failures[key]
        for key in keys:
            self._failures.setdefault(key, collections.deque(maxlen=64)).append(now)
        return self.delay_s(*keys)

    def delay_s(self, *keys: str) -> float:
        """The delay the recent failures of ``keys`` earn [s]."""
        count = max((self._recent(k) for k in keys), default=0)
        if count <= self.free_failures:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2 ** (count - self.free_failures - 1))

    def succeeded(self, key: str) -> None:
        """Forget the failures of ``key`` (a charge point that logged in correctly)."""
        self._failures.pop(key, None)


def basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def is_loopback(address: Any) -> bool:
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        return False
