"""Hypothesis strategies and profiles shared by the parser properties.

Every property runs twice: a fast, derandomised pass in the default suite and a long random
pass under the ``slow`` marker (``make test-slow``). :func:`fast_and_slow` makes both tests
from one property.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                              HealthCheck.filter_too_much],
}


def fast_and_slow(*strategies, fast: int = 60, slow: int = 2000):
    """Return ``(fast_test, slow_test)`` running ``check`` on the given strategies."""

    def decorate(check):
        fast_test = settings(max_examples=fast, derandomize=True, **_COMMON)(given(*strategies)(check))
        slow_test = settings(max_examples=slow, **_COMMON)(given(*strategies)(check))
        # Thousands of examples on a busy machine can pass the suite's 10-minute test limit.
        slow_test = pytest.mark.slow(pytest.mark.timeout(1800)(slow_test))
        return fast_test, slow_test

    return decorate


# -- building blocks ------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**420), max_value=10**420)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
#: Any value JSON (as Python reads it, NaN and Infinity included) can hold.
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

_offsets = st.sampled_from(["", "Z", "+00:00", "+01:00", "+02:00", "-05:30", "+0100", "+99:00", "+23:59"])
# Naive on purpose: the texts built from them get their offset (or none) separately.
_datetimes = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))  # noqa: DTZ001


@st.composite
def iso_texts(draw) -> str:
    """ISO-8601-looking text: valid, naive, odd offsets, odd fractions, out of range."""
    stamp = draw(_datetimes)
    sep = draw(st.sampled_from(["T", " ", "t"]))
    text = stamp.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".123456789", ",250"]))
    return text + fraction + draw(_offsets)


timestamp_like = iso_texts() | json_values | st.text(alphabet="0123456789-:TZ+. ", max_size=32)
number_like = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**420), max_value=10**420)
    | st.text(max_size=10)
    | st.none()
    | st.booleans()
)
hostile_text = st.sampled_from([
    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "x'); DROP TABLE sessions; --",
    "=cmd|' /C calc'!A0", "+SUM(A1)", "@x", "\x00", "\ud800", "Ω≈ç√", "",
]) | st.text(max_size=20)


def zaptec_items() -> st.SearchStrategy[dict]:
    """Charge-history items: the documented fields, each valid-looking or anything."""
    detail = st.fixed_dictionaries({}, optional={"Timestamp": timestamp_like, "Energy": number_like})
    return st.fixed_dictionaries(
        {},
        optional={
            "Id": hostile_text | json_values,
            "ChargerId": hostile_text | json_values,
            "StartDateTime": timestamp_like,
            "EndDateTime": timestamp_like,
            "CommitEndDateTime": timestamp_like,
            "Energy": number_like,
            "CommitMetadata": st.integers(min_value=-5, max_value=2**40) | json_values,
            "UserFullName": hostile_text | json_values,
            "UserId": hostile_text,
            "TokenName": hostile_text,
            "SignedSession": st.text(max_size=40) | json_values,
            "EnergyDetails": st.lists(detail | json_values, max_size=4) | json_values,
            "ChargerFirmwareVersion": st.fixed_dictionaries(
                {}, optional={k: json_values for k in ("Major", "Minor", "Build", "Revision")}
            ) | json_values,
            "ReplacedBySessionId": hostile_text,
            "ExternalId": hostile_text | json_values,
        },
    )


def json_text(values: st.SearchStrategy) -> st.SearchStrategy[str]:
    """JSON documents of ``values``, NaN/Infinity literals allowed as Python writes them."""
    return values.map(lambda v: json.dumps(v, allow_nan=True))


def mangled(texts: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Bytes of a text, sometimes cut, with a BOM, or with a stray non-UTF-8 byte."""

    @st.composite
    def build(draw) -> bytes:
        data = draw(texts).encode("utf-8", "surrogatepass")
        choice = draw(st.integers(0, 4))
        if choice == 1 and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif choice == 2:
            data = b"\xef\xbb\xbf" + data
        elif choice == 3 and data:
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.sampled_from([b"\xff", b"\xe6", b"\x00", b"\xc3"])) + data[at:]
        return data

    return build()
