"""The DuckDB bulk reader takes only lines it reads exactly as the per-record reader does.

Every line the bulk path takes must give the per-record reader's rows, bit for bit (a
``-0.0`` included); a line it hands back is the per-record reader's to decide. Lines where
DuckDB's JSON or time parsing would differ from Python's must be handed back. A spool of
plain and odd lines (and the bad-input corpus) loads to the same store and quarantine
either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ocpp_spool_paths import TABLES, _snapshot, meter_value_strategy

from zapanalytics.ingest.ocpp.blocks import block_of_lines
from zapanalytics.ingest.ocpp.bulk import read_meter_values_sql
from zapanalytics.ingest.ocpp.load import load_spool
from zapanalytics.ingest.ocpp.parse import ChargerDirectory, parse_spool_record
from zapanalytics.ingest.ocpp.records import METER_COLUMNS
from zapanalytics.ingest.spool import SegmentWriter, encode_record
from zapanalytics.store import open_store

CORPUS = Path(__file__).parents[1] / "badinput" / "corpus" / "ocpp"
RECEIVED = "2025-03-30T01:00:00.000000+00:00"
ENERGY = {"value": "2410.009", "measurand": "Energy.Active.Import.Register", "unit": "kWh"}


def compact_message(payload: dict | str, unique_id: str = "m1") -> str:
    body = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f'[2,"{unique_id}","MeterValues",{body}]'


def line(message: str, reply: str | None = '[3,"m1",{}]', ts: str = RECEIVED, cp: str = "CP1") -> bytes:
    record = {"ts": ts, "charge_point_id": cp, "direction": "in", "message": message}
    if reply is not None:
        record["reply"] = reply
    return encode_record(record).rstrip(b"\n")


def plain(meter_value: list, **kwargs) -> bytes:
    return line(compact_message({"connectorId": 1, "meterValue": meter_value}), **kwargs)


def samples(*sampled: dict, ts: str = "2025-03-30T00:59:00Z") -> list:
    return [{"timestamp": ts, "sampledValue": list(sampled)}]


@pytest.fixture(scope="module")
def directory(tmp_path_factory) -> ChargerDirectory:
    con = open_store(tmp_path_factory.mktemp("store") / "store.duckdb")
    yield ChargerDirectory(con)
    con.close()


def _per_record(text: bytes, directory: ChargerDirectory) -> list | None:
    record = parse_spool_record(text.decode("utf-8"), directory)
    if record.rejection is not None:
        return None
    return [
        (row.values["ts_utc"], tuple(repr(row.values[c]) for c in METER_COLUMNS))
        for row in record.rows if row.table == "meter_values"
    ]


def _bulk(lines: list[bytes]) -> tuple[dict[int, list], list[int]]:
    frame, slow = read_meter_values_sql(duckdb.connect(), block_of_lines(lines))
    rows: dict[int, list] = {i: [] for i in range(len(lines)) if i not in slow}
    for row in frame.iter_rows(named=True):
        rows[row["_record"]].append((row["ts_utc"], tuple(repr(row[c]) for c in METER_COLUMNS)))
    return rows, slow


def _assert_taken_lines_agree(lines: list[bytes], directory: ChargerDirectory) -> list[int]:
    taken, slow = _bulk(lines)
    for index, rows in taken.items():
        expected = _per_record(lines[index], directory)
        assert expected is not None, f"bulk took a line the per-record reader refuses: {lines[index]!r}"
        assert rows == expected, lines[index]
    return slow


@settings(max_examples=150, deadline=None)
@given(meter_value_strategy)
def test_bulk_reader_agrees_with_the_per_record_reader(directory, meter_value):
    _assert_taken_lines_agree([plain(meter_value)], directory)


#: Lines where DuckDB's reading would differ from Python's: each must be handed back.
HAZARDS = {
    "value key twice": line(compact_message(
        '{"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[{"value":"1","value":"2",'
        '"measurand":"Energy.Active.Import.Register","unit":"kWh"}]}]}')),
    "unit key twice, spaced": line(compact_message(
        '{"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[{"value":"1",'
        '"measurand":"Energy.Active.Import.Register","unit":"kWh","unit" :"Wh"}]}]}')),
    "meterValue twice": line(compact_message(
        '{"meterValue":[],"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[{"value":"1"}]}]}')),
    "trailing comma in payload": line(compact_message(
        '{"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[{"value":"1"},]}]}')),
    "payload not JSON": line(compact_message('{"meterValue":[1 2]}')),
    "trailing comma in reply": plain(samples(ENERGY), reply='[3,"m1",{"a":1,}]'),
    "reply not JSON": plain(samples(ENERGY), reply='[3,"m1",{]}]'),
    "hour 24": plain(samples(ENERGY, ts="2025-03-30T24:00:00Z")),
    "second 60": plain(samples(ENERGY, ts="2025-03-30T23:59:60Z")),
    "record ts hour 24": plain(samples(ENERGY), ts="2025-03-30T24:00:00+00:00"),
    "record ts year 0": plain(samples(ENERGY), ts="0000-03-30T00:00:00+00:00"),
    "record ts overflows UTC": plain(samples(ENERGY), ts="9999-12-31T23:00:00-05:00"),
    "number as text field": line(compact_message(
        '{"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[{"value":2410}]}]}')),
    "null unit": line(compact_message(
        '{"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[{"value":"1","unit":null}]}]}')),
    "null sample": line(compact_message('{"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[null]}]}')),
    "number sample": line(compact_message('{"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[5]}]}')),
    "escaped key": line(compact_message(
        '{"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[{"\\u0076alue":"1"}]}]}')),
    "deep nesting elsewhere": line(compact_message(
        '{"x":' + "[" * 3000 + "]" * 3000
        + ',"meterValue":[{"timestamp":"2025-03-30T00:59:00Z","sampledValue":[{"value":"1"}]}]}')),
    "three phases, inexact sum": plain(samples(*(
        {"value": v, "measurand": "Power.Active.Import", "phase": p, "unit": "W"}
        for v, p in (("0.1", "L1"), ("0.2", "L2"), ("0.3", "L3"))))),
    "three phases summing to -0": plain(samples(*(
        {"value": "-0", "measurand": "Power.Active.Import", "phase": p, "unit": "W"} for p in ("L1", "L2", "L3")))),
    "fields in another order": b'{"ts":"2025-03-30T01:00:00Z","reply":"[3,\\"a\\",{}]","charge_point_id":"CP1",'
                               b'"direction":"in","message":"[2,\\"a\\",\\"MeterValues\\",{\\"meterValue\\":[]}]"}',
    "no meterValue": line(compact_message("{}")),
    "key added to the line": line(compact_message({"meterValue": samples(ENERGY)}))[:-1] + b',"extra":"x"}',
    "ts key twice in the line": line(compact_message({"meterValue": samples(ENERGY)}))[:-1] + b',"ts":"nope"}',
    "NaN in the line": line(compact_message({"meterValue": samples(ENERGY)}))[:-1] + b',"extra":NaN}',
}


@pytest.mark.parametrize("name", sorted(HAZARDS))
def test_lines_duckdb_would_read_otherwise_are_handed_back(directory, name):
    slow = _assert_taken_lines_agree([HAZARDS[name]], directory)
    assert slow == [0], name


def test_plain_lines_are_taken_and_exact_sums_kept():
    exact = plain(samples(*(
        {"value": v, "measurand": "Power.Active.Import", "phase": p, "unit": "W"}
        for v, p in (("2300.5", "L1"), ("2301", "L2"), ("2299.25", "L3")))))
    lines = [plain(samples(ENERGY)), exact, plain([]), plain(samples(ENERGY, ts="2025-03-30T02:00:00.5+02:00"))]
    taken, slow = _bulk(lines)
    assert slow == []
    assert taken[0][0][1][METER_COLUMNS.index("energy_register_kwh")] == "2410.009"
    assert taken[1][0][1][METER_COLUMNS.index("power_w")] == repr(2300.5 + 2301 + 2299.25)
    assert taken[2] == []  # no meter values: read, stored as nothing


def _mixed_spool(directory: Path) -> int:
    lines = []
    register = 1000.0
    for n in range(300):
        minute = n % 60
        ts = f"2025-03-30T{n // 60:02d}:{minute:02d}:00Z"
        register += 0.25
        reading = register if n % 17 else register - 3.0  # now and then a reading goes backwards
        sampled = [{"value": f"{reading:.3f}", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
                   {"value": "7360", "measurand": "Power.Active.Import", "unit": "W"}]
        if n % 23 == 0:
            sampled.append({"value": "99999", "measurand": "Current.Import", "phase": "L1", "unit": "A"})
        cp = f"ZPR{n % 3}"
        lines.append(plain(samples(*sampled, ts=ts), cp=cp, reply=f'[3,"m{n}",{{}}]'))
        if n % 29 == 0:  # same instant, other content
            lines.append(plain(samples({**sampled[0], "value": "1.0"}, ts=ts), cp=cp))
        if n % 31 == 0:
            lines.append(plain(samples(*sampled, ts="2099-01-01T00:00:00Z"), cp=cp))
    lines += list(HAZARDS.values())
    for path in sorted(CORPUS.glob("*.jsonl")):
        lines += [raw for raw in path.read_bytes().split(b"\n")[:-1]]  # complete lines only
    with SegmentWriter(directory, fsync=False, max_segment_bytes=60_000) as writer:
        writer.write_batch([raw + b"\n" for raw in lines])
    return len(lines)


def test_a_spool_of_plain_and_odd_lines_loads_the_same_in_bulk_or_line_by_line(tmp_path):
    count = _mixed_spool(tmp_path / "spool")
    results = {}
    for bulk in (True, False):
        con = open_store(tmp_path / f"{bulk}.duckdb")
        report = load_spool(con, tmp_path / "spool", batch_bytes=40_000, fast_path=bulk)
        assert report.counts.rows_in == report.lines_read == count
        assert report.counts.rows_in == report.counts.rows_stored + report.counts.rows_quarantined
        results[bulk] = (_snapshot(con), report.counts.as_dict())
        con.close()
    assert results[True][1] == results[False][1]
    for table in (*TABLES, "quarantine"):
        assert results[True][0][table] == results[False][0][table], table
    shot = results[True][0]
    assert len(shot["meter_values"]) > 250
    reasons = " ".join(reason for _, reason in shot["quarantine"])
    assert "decreased" in reasons and "current_l1_a" in reasons and "plausible_time" in reasons


@settings(max_examples=25, deadline=None)
@given(st.lists(meter_value_strategy, min_size=2, max_size=6))
def test_bulk_reader_agrees_on_batches_of_lines(directory, meter_values):
    lines = [plain(mv, cp=f"CP{n % 2}", reply=f'[3,"m{n}",{{}}]') for n, mv in enumerate(meter_values)]
    _assert_taken_lines_agree(lines, directory)
