"""AMS/HAN frames of Aidon, Kaifa and Kamstrup meters into reference readings."""

from __future__ import annotations

import datetime as dt
import struct
from zoneinfo import ZoneInfo

import pytest

from firmware_ref.formats.han import aidon_list_payload, encode_hdlc_frame, kaifa_list_payload
from zapanalytics.ingest.meters.han import (
    HanError,
    MeterClock,
    decode_frame,
    ingest_han,
    read_hex_dump,
    reading_row,
)
from zapanalytics.store import open_store

OSLO = ZoneInfo("Europe/Oslo")
AIDON_ADDRESSES = bytes([0x41, 0x08, 0x83, 0x13])
KAMSTRUP_ADDRESSES = bytes([0x2B, 0x21, 0x13])


def _reading(list_type: int, energy_wh: int = 27_000_123, power_w: int = 7400) -> dict:
    return {
        "list_type": list_type, "power_import_w": power_w, "power_export_w": 0,
        "reactive_import_var": 40, "reactive_export_var": 0,
        "current_l1_a": 10.5, "current_l2_a": 10.25, "current_l3_a": 0.5,
        "voltage_l1_v": 231.2, "voltage_l2_v": 229.9, "voltage_l3_v": 230.4,
        "energy_import_wh": energy_wh, "energy_export_wh": 0,
        "reactive_energy_import_varh": 1_000, "reactive_energy_export_varh": 0,
    }


def kaifa_frame(local: dt.datetime, list_type: int = 3, **values) -> bytes:
    return encode_hdlc_frame(kaifa_list_payload(_reading(list_type, **values), "6970631454259841", local))


def aidon_frame(local: dt.datetime, list_type: int = 3, **values) -> bytes:
    return encode_hdlc_frame(
        aidon_list_payload(_reading(list_type, **values), "7359992895741742", local), AIDON_ADDRESSES
    )


def _cosem_time(local: dt.datetime) -> bytes:
    return struct.pack(">HBBBBBBBhB", local.year, local.month, local.day, local.isoweekday(),
                       local.hour, local.minute, local.second, 0xFF, -0x8000, 0x00)


def kamstrup_frame(local: dt.datetime, energy_10wh: int, power_w: int = 3680) -> bytes:
    """A Kamstrup three-phase List 3 notification (structure of OBIS/value pairs)."""

    def obis(*code: int) -> bytes:
        return b"\x09\x06" + bytes(code)

    def text(value: str, tag: int = 0x0A) -> bytes:
        return bytes([tag, len(value)]) + value.encode("ascii")

    def u32(value: int) -> bytes:
        return b"\x06" + struct.pack(">I", value)

    def u16(value: int) -> bytes:
        return b"\x12" + struct.pack(">H", value)

    items = [
        text("Kamstrup_V0001"),
        obis(1, 1, 0, 0, 5, 255), text("5706567000000000"),
        obis(1, 1, 96, 1, 1, 255), text("6841121BN243101040"),
        obis(1, 1, 1, 7, 0, 255), u32(power_w),
        obis(1, 1, 2, 7, 0, 255), u32(0),
        obis(1, 1, 3, 7, 0, 255), u32(0),
        obis(1, 1, 4, 7, 0, 255), u32(0),
        obis(1, 1, 31, 7, 0, 255), u32(1600),  # 0.01 A
        obis(1, 1, 51, 7, 0, 255), u32(1550),
        obis(1, 1, 71, 7, 0, 255), u32(20),
        obis(1, 1, 32, 7, 0, 255), u16(231),
        obis(1, 1, 52, 7, 0, 255), u16(230),
        obis(1, 1, 72, 7, 0, 255), u16(232),
        obis(0, 1, 1, 0, 0, 255), b"\x09\x0c" + _cosem_time(local),
        obis(1, 1, 1, 8, 0, 255), u32(energy_10wh),  # 10 Wh
        obis(1, 1, 2, 8, 0, 255), u32(0),
        obis(1, 1, 3, 8, 0, 255), u32(0),
        obis(1, 1, 4, 8, 0, 255), u32(0),
    ]
    body = b"\x02" + bytes([len(items)]) + b"".join(items)
    payload = b"\xe6\xe7\x00" + b"\x0f\x00\x00\x00\x00" + b"\x0c" + _cosem_time(local) + body
    return encode_hdlc_frame(payload, KAMSTRUP_ADDRESSES)


def _dump(path, frames: list[tuple[dt.datetime | None, bytes]]) -> None:
    lines = []
    for received, frame in frames:
        stamp = "" if received is None else received.isoformat().replace("+00:00", "Z") + " "
        lines.append(stamp + frame.hex())
    path.write_text("\n".join(lines) + "\n")


LOCAL = dt.datetime(2025, 1, 15, 18, 0, tzinfo=OSLO)


@pytest.mark.parametrize(
    ("frame", "meter_id", "energy_kwh", "resolution_kwh", "currents"),
    [
        (kaifa_frame(LOCAL), "6970631454259841", 27000.123, 0.001, (10.5, 10.25, 0.5)),
        (aidon_frame(LOCAL), "7359992895741742", 27000.12, 0.01, (10.5, 10.2, 0.5)),
        (kamstrup_frame(LOCAL, 2_700_012), "5706567000000000", 27000.12, 0.01, (16.0, 15.5, 0.2)),
    ],
    ids=["kaifa", "aidon", "kamstrup"],
)
def test_list_3_of_each_vendor_becomes_a_reading(frame, meter_id, energy_kwh, resolution_kwh, currents):
    row = reading_row(
        read_frame(frame), MeterClock("Europe/Oslo"), meter_id=None, installation_id="inst-1"
    )
    assert row["meter_id"] == meter_id and row["kind"] == "han" and row["installation_id"] == "inst-1"
    assert row["ts_utc"] == dt.datetime(2025, 1, 15, 17, 0, tzinfo=dt.UTC)  # meter clock, CET
    assert row["energy_import_kwh"] == pytest.approx(energy_kwh, abs=1e-9)
    assert row["energy_resolution_kwh"] == resolution_kwh
    assert (row["current_l1_a"], row["current_l2_a"], row["current_l3_a"]) == pytest.approx(currents)
    assert row["voltage_l1_v"] > 200 and row["power_w"] > 0


def read_frame(frame: bytes):
    from zapanalytics.ingest.meters.han import HanFrame

    return HanFrame(frame, None, "test")


def test_list_2_uses_the_receive_time_and_has_no_register():
    from zapanalytics.ingest.meters.han import HanFrame

    received = dt.datetime(2025, 1, 15, 17, 0, 10, tzinfo=dt.UTC)
    row = reading_row(HanFrame(kaifa_frame(LOCAL, list_type=2), received, "t"), MeterClock("Europe/Oslo"),
                      meter_id=None, installation_id=None)
    assert row["ts_utc"] == received
    assert row["energy_import_kwh"] is None and row["energy_resolution_kwh"] is None
    assert row["power_w"] == 7400.0


def test_damaged_frames_are_refused_with_a_reason():
    frame = bytearray(kaifa_frame(LOCAL))
    frame[30] ^= 0xFF
    with pytest.raises(HanError, match="check sequence|HDLC"):
        decode_frame(bytes(frame))
    with pytest.raises(HanError):
        decode_frame(bytes.fromhex("7ea0080102011000007e"))


def _autumn_frames() -> list[tuple[dt.datetime, bytes]]:
    """List 3 frames around the end of summer time (26 Oct 2025): 02:00 local happens twice."""
    frames = []
    for hour_utc in range(23, 28):  # 25 Oct 23:00Z .. 26 Oct 03:00Z
        utc = dt.datetime(2025, 10, 25, tzinfo=dt.UTC) + dt.timedelta(hours=hour_utc)
        local = utc.astimezone(OSLO)
        frames.append((utc, kaifa_frame(local, energy_wh=30_000_000 + 1000 * hour_utc)))
    return frames


@pytest.mark.parametrize("with_receive_times", [True, False])
def test_the_repeated_autumn_hour_is_told_apart(tmp_path, with_receive_times):
    frames = _autumn_frames()
    if with_receive_times:
        _dump(tmp_path / "meter.hex", frames)
        path = tmp_path / "meter.hex"
    else:
        path = tmp_path / "meter.bin"
        path.write_bytes(b"".join(frame for _, frame in frames))
    con = open_store(tmp_path / "s.duckdb")
    counts = ingest_han(con, [path])
    stored = con.execute("SELECT ts_utc, energy_import_kwh FROM reference_readings ORDER BY ts_utc").fetchall()
    assert counts.rows_stored == 5 and counts.rows_quarantined == 0
    assert [ts for ts, _ in stored] == [utc for utc, _ in frames]
    assert [e for _, e in stored] == sorted(e for _, e in stored)
    con.close()


def test_bad_lines_decreasing_registers_and_reloads(tmp_path):
    good = [(dt.datetime(2025, 1, 15, 17, tzinfo=dt.UTC), kaifa_frame(LOCAL, energy_wh=27_000_000)),
            (dt.datetime(2025, 1, 15, 18, tzinfo=dt.UTC),
             kaifa_frame(LOCAL + dt.timedelta(hours=1), energy_wh=27_001_000))]
    _dump(tmp_path / "meter.hex", good)
    with open(tmp_path / "meter.hex", "a") as handle:
        handle.write("2025-01-15T19:00:00Z zz-not-hex\n")
        handle.write("2025-01-15T19:00:00 " + kaifa_frame(LOCAL).hex() + "\n")  # naive receive time
        handle.write(kaifa_frame(LOCAL + dt.timedelta(hours=2), energy_wh=26_000_000).hex() + "\n")
        broken = bytearray(kaifa_frame(LOCAL + dt.timedelta(hours=3)))
        broken[-3] ^= 0x01
        handle.write(bytes(broken).hex() + "\n")
    con = open_store(tmp_path / "s.duckdb")
    counts = ingest_han(con, [tmp_path / "meter.hex"])
    assert (counts.rows_in, counts.rows_stored, counts.rows_quarantined) == (6, 2, 4)
    reasons = "\n".join(r[0] for r in con.execute("SELECT reason FROM quarantine").fetchall())
    assert "not '<time> <hex>'" in reasons
    assert "has no UTC offset" in reasons
    assert "reference_readings.energy_import_kwh decreased: 26000 kWh" in reasons
    assert "check sequence" in reasons
    again = ingest_han(con, [tmp_path / "meter.hex"])
    assert (again.rows_stored, again.rows_quarantined) == (2, 4)
    assert con.execute("SELECT count(*) FROM reference_readings").fetchall()[0][0] == 2
    assert con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == 4
    con.close()


def test_list_2_and_list_3_of_one_instant_merge(tmp_path):
    received = dt.datetime(2025, 1, 15, 17, tzinfo=dt.UTC)
    list2 = kaifa_frame(LOCAL, list_type=2)
    list3 = kaifa_frame(LOCAL, list_type=3)
    _dump(tmp_path / "a.hex", [(received, list2)])
    _dump(tmp_path / "b.hex", [(received, list3)])
    con = open_store(tmp_path / "s.duckdb")
    ingest_han(con, [tmp_path / "a.hex"])
    counts = ingest_han(con, [tmp_path / "b.hex"])
    assert counts.rows_quarantined == 0
    [(energy, power, resolution)] = con.execute(
        "SELECT energy_import_kwh, power_w, energy_resolution_kwh FROM reference_readings").fetchall()
    assert (energy, power, resolution) == (27000.123, 7400.0, 0.001)
    con.close()


def test_the_bundled_sample_dump_reads_whole(tmp_path):
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "data" / "sample" / "han"
    if not any(sample.glob("*.hex")):
        pytest.skip("no bundled HAN dump")
    frames = [f for f in read_hex_dump(next(sample.glob("*.hex")))]
    con = open_store(tmp_path / "s.duckdb")
    counts = ingest_han(con, [sample])
    assert counts.rows_in == len(frames) == counts.rows_stored
    hourly = con.execute(
        "SELECT count(*), count(DISTINCT ts_utc) FROM reference_readings WHERE energy_import_kwh IS NOT NULL"
    ).fetchall()[0]
    assert hourly[0] == hourly[1] > 24 * 28
    assert con.execute("SELECT count(DISTINCT installation_id) FROM reference_readings").fetchall()[0][0] == 1
    con.close()
