"""Time handling: explicit naive-UTC conversion for Zaptec, DST days, interval attribution."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tests.conftest import write_dump
from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.ingest.zaptec.records import RecordError, parse_timestamp, parse_zaptec_time
from zapanalytics.store import open_store
from zapanalytics.timebins import interval_start_bin


def test_zaptec_naive_time_is_utc_with_fractions():
    assert parse_zaptec_time("2025-06-07T09:20:55.967", "x") == dt.datetime(
        2025, 6, 7, 9, 20, 55, 967000, tzinfo=dt.UTC
    )
    assert parse_zaptec_time("2025-06-07T09:20:55", "x").tzinfo is dt.UTC


def test_offsets_convert_to_utc():
    assert parse_timestamp("2025-10-26T02:30:00+01:00", "x", naive_is_utc=False) == dt.datetime(
        2025, 10, 26, 1, 30, tzinfo=dt.UTC
    )
    assert parse_timestamp("2025-10-26T02:30:00+0200", "x", naive_is_utc=False) == dt.datetime(
        2025, 10, 26, 0, 30, tzinfo=dt.UTC
    )


def test_naive_time_refused_where_not_documented():
    with pytest.raises(RecordError, match="naive"):
        parse_timestamp("2025-10-26T02:30:00", "ts", naive_is_utc=False)


def test_dst_day_round_trips_through_the_store(tmp_path):
    # Session 3 runs across 26 Oct 2025 02:00-03:00 local, which happens twice in Oslo.
    root = write_dump(tmp_path / "dump")
    path = tmp_path / "s.duckdb"
    con = open_store(path)
    ingest_zaptec_dump(con, root)
    con.close()
    con = open_store(path)
    stamps = [
        r[0]
        for r in con.execute(
            "SELECT ts_utc FROM energy_details WHERE session_id LIKE '%3' ORDER BY ts_utc"
        ).fetchall()
    ]
    expected = [
        dt.datetime(2025, 10, 25, 23, 40, tzinfo=dt.UTC),
        dt.datetime(2025, 10, 26, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2025, 10, 26, 1, 0, tzinfo=dt.UTC),
        dt.datetime(2025, 10, 26, 2, 0, tzinfo=dt.UTC),
        dt.datetime(2025, 10, 26, 2, 10, tzinfo=dt.UTC),
    ]
    assert stamps == expected
    local = con.execute(
        "SELECT strftime(ts_utc AT TIME ZONE 'Europe/Oslo', '%H:%M') FROM energy_details"
        " WHERE session_id LIKE '%3' ORDER BY ts_utc"
    ).fetchall()
    # 01:00 UTC is 02:00 CET (second pass of 02:00), 00:00 UTC is 02:00 CEST (first pass).
    assert [r[0] for r in local] == ["01:40", "02:00", "02:00", "03:00", "03:10"]


def test_on_the_hour_delta_belongs_to_the_hour_before_and_dst_hours_stay_apart():
    ends = [dt.datetime(2025, 10, 26, 0, 0, tzinfo=dt.UTC) + dt.timedelta(hours=h) for h in range(4)]
    frame = pl.DataFrame({"ts_utc": ends}).with_columns(pl.col("ts_utc").dt.cast_time_unit("us"))
    bins = frame.select(interval_start_bin(pl.col("ts_utc"), "1h", "Europe/Oslo")).to_series().to_list()
    offsets = [b.utcoffset() for b in bins]
    hours = [b.hour for b in bins]
    # Ends at 00,01,02,03 UTC → local hours starting 01 CEST, 02 CEST, 02 CET, 03 CET.
    assert hours == [1, 2, 2, 3]
    assert offsets == [dt.timedelta(hours=2), dt.timedelta(hours=2), dt.timedelta(hours=1), dt.timedelta(hours=1)]


def test_serial_prefixes_follow_the_manuals():
    from zapanalytics.ingest.zaptec.records import model_for_device

    # The manuals' example serials: ZCH123456 (ZAPTEC HOME), ZCS123456 (ZapCharger Pro).
    assert model_for_device("ZCH123456") == "Home"
    assert model_for_device("ZCS123456") == "Pro"
    assert model_for_device("ZPR294591") == "Pro"
    assert model_for_device("ZAP025320") == "Go"
    assert model_for_device("XYZ000001") is None
