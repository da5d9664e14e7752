"""AMS/HAN readings of the installation's main meter as real HDLC frames.

Norwegian AMS meters push DLMS/COSEM ``DataNotification`` APDUs in HDLC frames on
the HAN port: List 2 (power, currents, voltages) every 10 s and List 3 (plus the
meter clock and the cumulative energy registers) every hour. This module encodes
readings of :attr:`SimulationResult.han_readings` as such frames, in the layouts of
two vendors:

* **Kaifa** (``MA304H3E``, three-phase): a structure of bare values, the list
  identified by its length (13 items List 2, 18 items List 3); powers in W,
  currents in mA, voltages in 0.1 V, energies in Wh; the APDU carries the local
  meter time with an unspecified UTC deviation, as Kaifa meters send it.
* **Aidon** (``6525``, three-phase): an array of ``{OBIS, value, scaler-unit}``
  structures; currents and voltages in 0.1 units, energies with scaler +1 (10 Wh).

HDLC framing: flag ``7E``, frame format type 3 with the 11-bit length, the vendor's
addresses and control byte, the header check sequence and the frame check sequence
(CRC-16/X.25, least significant byte first), flag ``7E``. No octet stuffing, as the
meters send it. The ``amshan`` package decodes these frames (tested).

Files: ``han/<meter_id>.hex`` with one frame per line, ``<ISO-8601 UTC time> <hex>``,
and ``han/meters.json`` describing the meter.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

__all__ = [
    "aidon_list_payload",
    "encode_hdlc_frame",
    "fcs16",
    "kaifa_list_payload",
    "write_han",
]

_FCS_TABLE: list[int] = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0x8408 if _crc & 1 else _crc >> 1
    _FCS_TABLE.append(_crc)

_KAIFA_ADDRESSES = bytes([0x01, 0x02, 0x01, 0x10])  # destination, source (2 bytes), control
_AIDON_ADDRESSES = bytes([0x41, 0x08, 0x83, 0x13])
_LLC_HEADER = bytes([0xE6, 0xE7, 0x00])
_INVOKE_ID = bytes([0x0F, 0x40, 0x00, 0x00, 0x00])
KAIFA_LIST_ID = "Kfm_001"
KAIFA_METER_TYPE = "MA304H3E"
AIDON_LIST_ID = "AIDON_V0001"
AIDON_METER_TYPE = "6525"


def fcs16(data: bytes) -> int:
    """HDLC frame check sequence (CRC-16/X.25) of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _FCS_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def encode_hdlc_frame(payload: bytes, addresses: bytes = _KAIFA_ADDRESSES) -> bytes:
    """Wrap an LLC PDU in an HDLC frame with flags, HCS and FCS.

    Parameters
    ----------
    payload : bytes
        Information field (LLC header + APDU).
    addresses : bytes
        Destination address, source address and control byte.

    Returns
    -------
    bytes
        ``7E ... 7E``.
    """
    length = 2 + len(addresses) + 2 + len(payload) + 2
    if length > 0x7FF:
        raise ValueError("HDLC frame too long")
    header = struct.pack(">H", 0xA000 | length) + addresses
    hcs = fcs16(header)
    body = header + struct.pack("<H", hcs) + payload
    fcs = fcs16(body)
    return b"\x7e" + body + struct.pack("<H", fcs) + b"\x7e"


def _u32(value: int) -> bytes:
    return b"\x06" + struct.pack(">I", max(0, min(int(value), 0xFFFFFFFF)))


def _octets(text: str) -> bytes:
    data = text.encode("ascii")
    return b"\x09" + bytes([len(data)]) + data


def _cosem_datetime(local: datetime, deviation_min: int | None = None) -> bytes:
    """COSEM date-time (12 bytes); ``deviation_min`` None means "not specified".

    The clock-status byte sets its daylight-saving bit in summer time, which tells the
    two 02:xx hours of the autumn DST change apart.
    """
    deviation = -0x8000 if deviation_min is None else deviation_min
    dst = local.dst()
    status = 0x80 if dst is not None and dst.total_seconds() else 0x00
    return struct.pack(
        ">HBBBBBBBhB",
        local.year,
        local.month,
        local.day,
        local.isoweekday(),
        local.hour,
        local.minute,
        local.second,
        0xFF,
        deviation,
        status,
    )


def kaifa_list_payload(reading: dict, meter_id: str, local_time: datetime) -> bytes:
    """LLC PDU of a Kaifa three-phase List 2 or List 3 notification.

    Parameters
    ----------
    reading : dict
        One row of ``han_readings``.
    meter_id : str
        Meter serial (16 digits).
    local_time : datetime
        Meter clock (local wall time).
    """
    stamp = b"\x09\x0c" + _cosem_datetime(local_time)
    items = [
        _octets(KAIFA_LIST_ID),
        _octets(meter_id),
        _octets(KAIFA_METER_TYPE),
        _u32(reading["power_import_w"]),
        _u32(reading["power_export_w"]),
        _u32(reading["reactive_import_var"]),
        _u32(reading["reactive_export_var"]),
        _u32(round(reading["current_l1_a"] * 1000)),
        _u32(round(reading["current_l2_a"] * 1000)),
        _u32(round(reading["current_l3_a"] * 1000)),
        _u32(round(reading["voltage_l1_v"] * 10)),
        _u32(round(reading["voltage_l2_v"] * 10)),
        _u32(round(reading["voltage_l3_v"] * 10)),
    ]
    if reading["list_type"] == 3:
        items += [
            b"\x09\x0c" + _cosem_datetime(local_time),
            _u32(reading["energy_import_wh"]),
            _u32(reading["energy_export_wh"]),
            _u32(reading["reactive_energy_import_varh"]),
            _u32(reading["reactive_energy_export_varh"]),
        ]
    body = b"\x02" + bytes([len(items)]) + b"".join(items)
    return _LLC_HEADER + _INVOKE_ID + stamp + body


def _obis(code: tuple[int, int, int, int, int, int]) -> bytes:
    return b"\x09\x06" + bytes(code)


def _aidon_value(code, type_byte: int, packed: bytes, scaler: int, unit: int) -> bytes:
    return (
        b"\x02\x03"
        + _obis(code)
        + bytes([type_byte])
        + packed
        + b"\x02\x02\x0f"
        + struct.pack(">b", scaler)
        + b"\x16"
        + bytes([unit])
    )


def _aidon_string(code, text: str) -> bytes:
    data = text.encode("ascii")
    return b"\x02\x02" + _obis(code) + b"\x0a" + bytes([len(data)]) + data


def aidon_list_payload(reading: dict, meter_id: str, local_time: datetime) -> bytes:
    """LLC PDU of an Aidon three-phase List 2 or List 3 notification."""
    w, var, amp, volt, wh, varh = 27, 29, 33, 35, 30, 32
    items = [
        _aidon_string((1, 1, 0, 2, 129, 255), AIDON_LIST_ID),
        _aidon_string((0, 0, 96, 1, 0, 255), meter_id),
        _aidon_string((0, 0, 96, 1, 7, 255), AIDON_METER_TYPE),
        _aidon_value((1, 0, 1, 7, 0, 255), 0x06, struct.pack(">I", reading["power_import_w"]), 0, w),
        _aidon_value((1, 0, 2, 7, 0, 255), 0x06, struct.pack(">I", reading["power_export_w"]), 0, w),
        _aidon_value((1, 0, 3, 7, 0, 255), 0x06, struct.pack(">I", reading["reactive_import_var"]), 0, var),
        _aidon_value((1, 0, 4, 7, 0, 255), 0x06, struct.pack(">I", reading["reactive_export_var"]), 0, var),
    ]  # fmt: skip
    for k, code in enumerate(((1, 0, 31, 7, 0, 255), (1, 0, 51, 7, 0, 255), (1, 0, 71, 7, 0, 255))):
        tenths = round(reading[f"current_l{k + 1}_a"] * 10)
        items.append(_aidon_value(code, 0x10, struct.pack(">h", tenths), -1, amp))
    for k, code in enumerate(((1, 0, 32, 7, 0, 255), (1, 0, 52, 7, 0, 255), (1, 0, 72, 7, 0, 255))):
        tenths = round(reading[f"voltage_l{k + 1}_v"] * 10)
        items.append(_aidon_value(code, 0x12, struct.pack(">H", tenths), -1, volt))
    if reading["list_type"] == 3:
        items.append(b"\x02\x02" + _obis((0, 0, 1, 0, 0, 255)) + b"\x09\x0c" + _cosem_datetime(local_time))
        for code, key, unit in (
            ((1, 0, 1, 8, 0, 255), "energy_import_wh", wh),
            ((1, 0, 2, 8, 0, 255), "energy_export_wh", wh),
            ((1, 0, 3, 8, 0, 255), "reactive_energy_import_varh", varh),
            ((1, 0, 4, 8, 0, 255), "reactive_energy_export_varh", varh),
        ):
            items.append(_aidon_value(code, 0x06, struct.pack(">I", reading[key] // 10), 1, unit))
    body = b"\x01" + bytes([len(items)]) + b"".join(items)
    return _LLC_HEADER + _INVOKE_ID + b"\x00" + body


def _iso_z(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_han(
    result,
    out_dir: Path,
    vendor: str = "kaifa",
    list2_interval_s: float | None = None,
) -> list[Path]:
    """Write the main meter's HAN frames.

    Parameters
    ----------
    result : SimulationResult
        Simulation output.
    out_dir : pathlib.Path
        Dataset root; files go to ``han/``.
    vendor : {'kaifa', 'aidon'}
        Frame layout.
    list2_interval_s : float, optional
        Keep List 2 readings only every this many seconds (a multiple of the
        simulation's ``han_interval_s``); List 3 stays hourly. Default: all.

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    if vendor not in ("kaifa", "aidon"):
        raise ValueError(f"vendor must be 'kaifa' or 'aidon', got {vendor!r}")
    han_dir = out_dir / "han"
    han_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(han_dir.glob("*.hex")):
        old.unlink()
    readings = result.han_readings
    if list2_interval_s is not None:
        epoch_s = readings["ts_utc"].dt.epoch("ms") // 1000
        keep = (pl.col("list_type") == 3) | (epoch_s % int(list2_interval_s) == 0)
        readings = readings.filter(keep)
    tz = ZoneInfo(result.installation["timezone"])
    meter_id = result.installation["han_meter_id"]
    encode = kaifa_list_payload if vendor == "kaifa" else aidon_list_payload
    addresses = _KAIFA_ADDRESSES if vendor == "kaifa" else _AIDON_ADDRESSES
    lines = []
    for row in readings.iter_rows(named=True):
        ts: datetime = row["ts_utc"]
        frame = encode_hdlc_frame(encode(row, meter_id, ts.astimezone(tz)), addresses)
        lines.append(f"{_iso_z(ts)} {frame.hex()}\n")
    path = han_dir / f"{meter_id}.hex"
    path.write_text("".join(lines), encoding="ascii")
    meta = {
        meter_id: {
            "installation_id": result.installation["installation_id"],
            "vendor": "Kaifa" if vendor == "kaifa" else "Aidon",
            "meter_type": KAIFA_METER_TYPE if vendor == "kaifa" else AIDON_METER_TYPE,
            "network_type": result.installation["network_type"],
            "list2_interval_s": list2_interval_s or result.config.han_interval_s,
            "list3_interval_s": 3600,
            "file": f"han/{meter_id}.hex",
            "line_format": "<ISO-8601 UTC receive time> <HDLC frame in hex, flags included>",
        }
    }
    meta_path = han_dir / "meters.json"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return [path, meta_path]
