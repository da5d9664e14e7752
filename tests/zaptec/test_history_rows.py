"""The bulk EnergyDetails path gives exactly what mapping each item with session_rows gives."""

from __future__ import annotations

import copy

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from zapanalytics.ingest.door import frame_for
from zapanalytics.ingest.zaptec.admit import history_rows
from zapanalytics.ingest.zaptec.records import RecordError, session_rows

from .conftest import make_account

INSTALLATION = "inst-1"


def scalar_reference(entries):
    """Each item through session_rows, as zaptec_files does it."""
    sessions, details, rejected = [], [], []
    for record, item in entries:
        try:
            session, points = session_rows(item, installation_id=INSTALLATION)
        except RecordError as exc:
            rejected.append((record, str(exc)))
            continue
        sessions.append({**session, "_record": record})
        details.extend({**p, "_record": record} for p in points)
    return sessions, frame_for("energy_details", details), rejected


def assert_same(entries):
    sessions, details, rejected = history_rows(entries, installation_id=INSTALLATION)
    ref_sessions, ref_details, ref_rejected = scalar_reference(entries)
    assert sessions == ref_sessions
    order = ["_record", "ts_utc", "energy_kwh"]
    assert details.sort(order).equals(ref_details.select(details.columns).sort(order))
    assert [(r.record, r.reason) for r in rejected] == ref_rejected
    return sessions, details, rejected


ODD_TIMES = [
    "2025-03-01T10:00:00",  # naive: Zaptec's convention makes it UTC
    "2025-03-01T10:00:00.5+01:00",
    "2025-03-01 10:00:00Z",
    "2025-02-30T10:00:00+00:00",  # no such day
    "2025-03-01T10:00:00.1234567+00:00",  # 7 fraction digits
    " 2025-03-01T10:00:00+00:00",
    "2025-03-01T10:00:60+00:00",
    "yesterday",
    "",
]
ODD_ENERGIES = [float("nan"), float("inf"), -1.0, "0.5", None, True, 10**20, 2**53 + 1, 7]


def test_well_formed_and_broken_items_map_identically():
    account = make_account(days=20, mismatch_fraction=0.2)
    items = [copy.deepcopy(s.item) for s in account.sessions]
    with_details = [i for i in items if i.get("EnergyDetails")]
    for n, odd in enumerate(ODD_TIMES):
        with_details[n]["EnergyDetails"][1]["Timestamp"] = odd
    for n, odd in enumerate(ODD_ENERGIES, start=len(ODD_TIMES)):
        with_details[n]["EnergyDetails"][-1]["Energy"] = odd
    with_details[-1]["EnergyDetails"][2] = ["not", "an", "object"]
    with_details[-2]["StartDateTime"] = "soon"  # a bad session field with good details
    with_details[-3]["EnergyDetails"] = "none"
    entries = list(enumerate([*items, "not an object", None]))
    sessions, details, rejected = assert_same(entries)
    assert len(rejected) >= 10 and details.height > 300
    assert any(s["details_mismatch"] for s in sessions)


@settings(max_examples=60, deadline=None)
@given(
    stamps=st.lists(
        st.one_of(
            st.sampled_from(ODD_TIMES),
            st.datetimes().map(lambda d: d.isoformat() + st_choice(d)),
            st.text(max_size=30),
        ),
        min_size=1,
        max_size=5,
    ),
    energies=st.lists(
        st.one_of(st.floats(allow_nan=True), st.integers(), st.none(), st.booleans()),
        min_size=5,
        max_size=5,
    ),
)
def test_any_details_map_identically(stamps, energies):
    base = make_account(chargers=1, days=1).sessions[0].item
    item = copy.deepcopy(base)
    item["EnergyDetails"] = [
        {"Timestamp": stamp, "Energy": energies[n]} for n, stamp in enumerate(stamps)
    ]
    assert_same([(0, item), (1, copy.deepcopy(base))])


def st_choice(moment) -> str:
    """A suffix chosen from the value itself, so the strategy stays reproducible."""
    return ["+00:00", "Z", "", "+02:00"][moment.microsecond % 4]


def test_bulk_frame_has_the_store_types():
    account = make_account(chargers=1, days=2)
    entries = list(enumerate(s.item for s in account.sessions))
    _, details, _ = history_rows(entries, installation_id=INSTALLATION)
    assert details.schema == pl.Schema(
        {
            "session_id": pl.String,
            "ts_utc": pl.Datetime("us", "UTC"),
            "energy_kwh": pl.Float64,
            "_record": pl.Int64,
        }
    )
