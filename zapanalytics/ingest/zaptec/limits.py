"""How often the Zaptec client may call and retry: the rate limiter and the retry policy.

Zaptec allows 10 requests/s per user and answers 429 above it; transient 5xx and transport
errors are retried with exponential backoff. Both rules are pure bookkeeping, kept apart from
the HTTP client (:mod:`zapanalytics.ingest.zaptec.api`) so they can be tested on a fake clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import random
import threading
import time
from collections.abc import Callable

import httpx

#: Documented per-user limit [requests/s].
ZAPTEC_REQUESTS_PER_SECOND = 10


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed call is retried.

    The defaults follow the Home Assistant integration's tuning (backoff 0.3 s × 2.1 with
    jitter), with a shorter budget so a command-line user gets an answer within a minute.
    """

    max_retries: int = 6
    backoff_base_s: float = 0.3
    backoff_factor: float = 2.1
    backoff_max_s: float = 30.0
    jitter: float = 0.2

    def delay(self, retry: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.backoff_max_s)
        base = self.backoff_base_s * self.backoff_factor**retry
        spread = base * self.jitter
        return min(base + rng.uniform(-spread, spread), self.backoff_max_s)


class SlidingWindowLimiter:
    """Keep at most ``max_requests`` requests in any window of ``period_s`` seconds, as the
    server sees them (thread-safe).

    A request occupies its slot from when it is sent until ``period_s`` after its response
    arrived. The server stamps a request somewhere between those two moments, so however
    long a request waits in a thread or on the network, no ``max_requests + 1`` requests
    can reach the server within one period. (A token bucket, or a log of send times, cannot
    promise that when a request is delayed after it was counted.)

    Use :meth:`acquire` before sending and :meth:`release` once the response is read.
    """

    def __init__(
        self,
        max_requests: int = ZAPTEC_REQUESTS_PER_SECOND,
        period_s: float = 1.0,
        *,
        margin_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self.max_requests = max_requests
        self.window_s = period_s + margin_s
        self._slots: list[list[float | None]] = []
        self._cond = threading.Condition()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> list[float | None]:
        """Block until one more request fits, then claim a slot for it."""
        with self._cond:
            while True:
                now = self._clock()
                self._slots = [s for s in self._slots if s[1] is None or now - s[1] < self.window_s]
                if len(self._slots) < self.max_requests:
                    slot: list[float | None] = [now, None]
                    self._slots.append(slot)
                    return slot
                finished = sorted(s[1] for s in self._slots if s[1] is not None)
                needed = len(self._slots) - self.max_requests + 1
                if len(finished) >= needed:
                    # A floor keeps float rounding from stalling the loop on a zero wait.
                    wait = max(finished[needed - 1] + self.window_s - now, 1e-4)
                    if len(finished) == len(self._slots):
                        self._sleep(wait)
                    else:
                        self._cond.wait(wait)
                else:
                    self._cond.wait()  # until a request in flight gets its response

    def release(self, slot: list[float | None]) -> None:
        """Mark the request of ``slot`` answered (or failed)."""
        with self._cond:
            slot[1] = self._clock()
            self._cond.notify_all()


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The wait [s] a response asks for in ``Retry-After`` (seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)
