"""Charger readings in meter_values derived from Zaptec state observations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapanalytics.audit.ocmf import parse
from zapanalytics.ingest.door import IngestRun
from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.ingest.zaptec.states import (
    OCMF_SOURCE,
    STATE_SOURCE,
    derive_meter_values,
    read_signed_meter_values,
    signed_reading,
)
from zapanalytics.store import open_store, upsert

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
CHARGER = "c0000000-0000-4000-8000-0000000000aa"
T0 = datetime(2025, 10, 26, 0, 30, tzinfo=UTC)  # the night clocks go back in Oslo
SIGNATURE = '{"SA":"ECDSA-secp384r1-SHA256","SE":"base64","SD":"MGUCMQCU"}'


def fiscal(tm: str, rv: str = "2863.662", **changes: str) -> str:
    fields = {"FV": "1.0", "GI": "Zaptec Pro MID", "GS": "ZPR944805", "GV": "5.0.2.1"}
    fields.update(changes)
    head = ",".join(f'"{k}":"{v}"' for k, v in fields.items())
    return (
        f'OCMF|{{{head},"PG":"F1","MF":"v1.3.6","RD":[{{"TM":"{tm}","RV":{rv},'
        f'"RI":"1-0:1.8.0","RU":"kWh","ST":"G"}}]}}|{SIGNATURE}'
    )


def state(minutes: float, state_id: int, value: str | None, charger: str = CHARGER) -> dict:
    return {
        "charger_id": charger,
        "ts_utc": T0 + timedelta(minutes=minutes),
        "state_id": state_id,
        "state_name": None,
        "value": value,
    }


def store_with(rows: list[dict]):
    con = open_store()
    upsert(
        con,
        "charger_states",
        pl.DataFrame(rows).with_columns(
            pl.col("ts_utc").cast(pl.Datetime("us", "UTC")), pl.col("state_id").cast(pl.Int32)
        ),
    )
    return con


def derive(con, **options):
    with IngestRun(con, "test") as run:
        return derive_meter_values(con, run, **options)


def rows(con, source: str) -> pl.DataFrame:
    return con.sql(
        f"SELECT * FROM meter_values WHERE source = '{source}' ORDER BY charger_id, ts_utc"
    ).pl()


@pytest.fixture(scope="module")
def sample_store():
    con = open_store()
    counts = ingest_zaptec_dump(con, SAMPLE, price_area="NO1")
    yield con, counts
    con.close()


def test_every_signed_meter_value_becomes_a_register_reading_at_its_tm(sample_store):
    con, counts = sample_store
    records = con.sql("SELECT charger_id, value FROM charger_states WHERE state_id = 554").pl()
    derived = rows(con, OCMF_SOURCE)

    assert derived.height == records.height == 584
    expected = set()
    for charger_id, value in records.iter_rows():
        reading = parse(value).readings[0]
        expected.add((charger_id, reading.time_utc, reading.energy_kwh))
    got = {
        (c, t.astimezone(UTC), e)
        for c, t, e in derived.select("charger_id", "ts_utc", "energy_register_kwh").iter_rows()
    }
    assert got == expected
    assert counts.rows_in == counts.rows_stored + counts.rows_quarantined
    assert counts.rows_quarantined == 0


def test_state_rows_carry_each_state_until_it_changes(sample_store):
    con, _ = sample_store
    plass_03 = con.execute(
        "SELECT charger_id FROM chargers WHERE device_id = 'ZPR944805'"
    ).fetchall()[0][0]
    frame = rows(con, STATE_SOURCE).filter(pl.col("charger_id") == plass_03)
    at = {row["ts_utc"].astimezone(UTC): row for row in frame.iter_rows(named=True)}

    # 18:35:25.728: currents and power observed (6 A ramp); the voltage seen at 18:35:00.926
    # and the offered 16 A set at 18:35:07.947 still hold.
    ramp = at[datetime(2025, 10, 6, 18, 35, 25, 728000, tzinfo=UTC)]
    assert (ramp["current_l1_a"], ramp["power_w"]) == (6.0, 4157.8)
    assert ramp["voltage_l1_v"] == 232.973 and ramp["current_offered_a"] == 16.0
    full = at[datetime(2025, 10, 6, 18, 35, 55, 728000, tzinfo=UTC)]
    assert (full["current_l1_a"], full["current_l3_a"], full["power_w"]) == (16.0, 16.0, 11087.5)
    stop = at[datetime(2025, 10, 6, 19, 20, 12, 126000, tzinfo=UTC)]
    assert (stop["current_l2_a"], stop["power_w"], stop["current_offered_a"]) == (0.0, 0.0, 0.0)
    # One row per instant with something observed, never more.
    instants = con.execute(
        "SELECT count(DISTINCT ts_utc) FROM charger_states WHERE charger_id = ? AND state_id IN "
        "(501, 502, 503, 507, 508, 509, 513, 708, 201)",
        [plass_03],
    ).fetchall()[0][0]
    assert frame.height == instants


def test_a_value_that_does_not_parse_is_quarantined_and_not_carried():
    con = store_with(
        [
            state(0, 507, "16.000"),
            state(0, 501, "231.5"),
            state(1, 507, "sixteen"),
            state(1, 513, "11087.5"),
            state(2, 501, "232,0"),  # a comma decimal is read
            state(3, 507, "10.667"),
            state(4, 508, "500"),  # beyond any charger: unusable
            state(5, 508, "NaN"),
        ]
    )

    counts = derive(con)

    assert counts.rows_in == 6 and counts.rows_quarantined == 3
    frame = rows(con, STATE_SOURCE)
    assert frame["ts_utc"].to_list() == [T0, T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)]
    # After the bad current the current is unknown until observed again; the rest holds.
    at_2 = frame.row(1, named=True)
    assert at_2["current_l1_a"] is None and at_2["voltage_l1_v"] == 232.0
    assert at_2["power_w"] == 11087.5
    assert frame.row(2, named=True)["current_l1_a"] == 10.667
    reasons = con.execute("SELECT reason, raw FROM quarantine ORDER BY reason").fetchall()
    assert len(reasons) == 3
    assert any("state 507 value sixteen" in r for r, _ in reasons)
    assert any("state 508 value 500" in r for r, _ in reasons)
    raw = json.loads(next(raw for r, raw in reasons if "sixteen" in r))
    # The raw record is every observation of that instant, the good one too.
    assert {o["state_id"]: o["value"] for o in raw["observations"]} == {
        507: "sixteen",
        513: "11087.5",
    }


def test_a_signed_value_that_does_not_parse_is_quarantined_with_its_record():
    good = fiscal("2025-10-26T00:30:00,151+00:00 R")
    con = store_with(
        [
            state(0, 554, good),
            state(60, 554, "OCMF|{not json"),
            state(
                120, 554, fiscal("2025-10-26T02:30:00,000+00:00 R").replace('"ST":"G"', '"ST":"E"')
            ),
            state(180, 554, None),
        ]
    )

    counts = derive(con)

    assert (counts.rows_in, counts.rows_stored, counts.rows_quarantined) == (4, 1, 3)
    derived = rows(con, OCMF_SOURCE)
    assert derived["energy_register_kwh"].to_list() == [2863.662]
    quarantined = dict(con.execute("SELECT reason, raw FROM quarantine").fetchall())
    assert any("does not parse" in reason for reason in quarantined)
    assert any("status 'E'" in reason for reason in quarantined)
    assert any("empty" in reason for reason in quarantined)
    assert any(
        json.loads(raw)["observations"][0]["value"] == "OCMF|{not json"
        for raw in quarantined.values()
    )


def test_deriving_twice_changes_nothing(sample_store):
    con, _ = sample_store
    before = con.sql("SELECT * FROM meter_values ORDER BY ALL").fetchall()
    quarantined = con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]

    first = derive(con)
    second = derive(con)

    assert first == second and first.rows_quarantined == 0
    assert con.sql("SELECT * FROM meter_values ORDER BY ALL").fetchall() == before
    assert con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == quarantined


def test_a_later_span_of_one_charger_starts_from_the_states_held_before_it():
    other = "c0000000-0000-4000-8000-0000000000bb"
    con = store_with(
        [
            state(0, 501, "230.0"),
            state(0, 708, "16"),
            state(10, 507, "16.0"),
            state(20, 507, "8.0"),
            state(20, 507, "9.0", charger=other),
        ]
    )

    counts = derive(con, charger_ids=[CHARGER], since_utc=T0 + timedelta(minutes=15))

    assert counts.rows_in == 1
    (row,) = rows(con, STATE_SOURCE).iter_rows(named=True)
    assert row["charger_id"] == CHARGER and row["ts_utc"] == T0 + timedelta(minutes=20)
    assert (row["current_l1_a"], row["voltage_l1_v"], row["current_offered_a"]) == (
        8.0,
        230.0,
        16.0,
    )
    with pytest.raises(ValueError, match="tz-aware"):
        derive(con, since_utc=datetime(2025, 10, 26))  # noqa: DTZ001 - the point of the test


def test_tm_offsets_are_converted_to_utc_on_the_night_clocks_go_back():
    # 02:30 happens twice in Oslo on 26 October: the offset tells which.
    values = pl.Series(
        [
            fiscal("2025-10-26T02:30:00,000+02:00 R"),
            fiscal("2025-10-26T02:30:00,000+01:00 S"),
        ]
    )

    read = read_signed_meter_values(values)

    assert read["ts_utc"].to_list() == [
        datetime(2025, 10, 26, 0, 30, tzinfo=UTC),
        datetime(2025, 10, 26, 1, 30, tzinfo=UTC),
    ]
    assert read["reason"].null_count() == 2


RECORD_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)


@given(
    tm=st.sampled_from(
        [
            "2025-10-26T00:30:00,151+00:00 R",
            "2025-02-29T10:00:00,000+00:00 R",  # no such day
            "2025-03-30T02:30:00,999+01:00 U",
            "2025-03-30T02:30:00,999+24:00 R",  # impossible offset
            "2025-03-30T02:30:00.999+01:00 R",  # '.' before the fraction
        ]
    ),
    rv=st.sampled_from(["2863.662", "0", "0.1", "9999999.999", "12345678.0", "012.5", "3e3"]),
    serial=RECORD_TEXT,
    cut=st.integers(min_value=0, max_value=400),
    insert=RECORD_TEXT,
)
def test_the_column_wise_reader_agrees_with_parse_on_every_record(tm, rv, serial, cut, insert):
    record = fiscal(tm, rv, GS=serial.replace('"', "").replace("\\", ""))
    mutated = record[:cut] + insert + record[cut:]

    read = read_signed_meter_values(pl.Series([record, mutated]))

    for index, text in enumerate((record, mutated)):
        expected = signed_reading(text)
        row = read.row(index, named=True)
        if isinstance(expected, str):
            assert row["ts_utc"] is None and row["reason"] == expected
        else:
            assert (row["ts_utc"], row["energy_register_kwh"], row["reason"]) == (*expected, None)


def test_the_canonical_form_is_read_without_parsing_each_record(monkeypatch):
    import zapanalytics.ingest.zaptec.states as module

    calls = []
    monkeypatch.setattr(module, "signed_reading", lambda text: calls.append(text) or "x")
    values = pl.Series([fiscal("2025-10-26T00:30:00,151+00:00 R"), "OCMF|{}"])

    read = read_signed_meter_values(values)

    assert calls == ["OCMF|{}"]
    assert read["energy_register_kwh"].to_list() == [2863.662, None]
