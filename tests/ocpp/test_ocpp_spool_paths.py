"""Loading a spool through the bulk reader or line by line stores the same; shared strategies.

(The bulk reader itself is held to the per-record reader line by line in test_bulk_equality.)
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import strategies as st
from ocpp_helpers import SpoolBuilder

from zapanalytics.ingest.ocpp.load import load_spool
from zapanalytics.ingest.ocpp.records import RecordError, meter_value_rows
from zapanalytics.ingest.spool import encode_record
from zapanalytics.store import open_store

MEASURANDS = [None, "Energy.Active.Import.Register", "Power.Active.Import", "Power.Offered", "Current.Import",
              "Current.Offered", "Voltage", "Temperature", "SoC", "Energy.Reactive.Import.Register"]
UNITS = [None, "Wh", "kWh", "W", "kW", "A", "V", "Celsius", "K", "Fahrenheit", "varh", "Percent"]
PHASES = [None, "L1", "L2", "L3", "L1-N", "L2-N", "L3-N", "L1-L2", "N"]
LOCATIONS = [None, "Outlet", "Inlet", "Body", "EV", "Cable"]
VALUES = ["0", "12", "12.5", "1000.123", "-3", "1e3", "2.5E-1", " 7", "nan", "inf", "abc", "1_000", "+4", ".5"]
TIMESTAMPS = ["2025-03-30T00:59:00Z", "2025-03-30T01:00:00.5Z", "2025-03-30T03:00:00+02:00",
              "2025-03-30T01:00:00.123456+00:00", "2025-03-30T01:00:00", "2025-13-01T00:00:00Z",
              "2025-03-30 01:00:00Z", "2025-03-30T02:00:00.1234567Z"]

sample_strategy = st.fixed_dictionaries(
    {"value": st.sampled_from(VALUES)},
    optional={
        "measurand": st.sampled_from(MEASURANDS[1:]),
        "unit": st.sampled_from(UNITS[1:]),
        "phase": st.sampled_from(PHASES[1:]),
        "location": st.sampled_from(LOCATIONS[1:]),
        "format": st.sampled_from(["Raw", "SignedData"]),
        "context": st.just("Sample.Periodic"),
    },
)
meter_value_strategy = st.lists(
    st.fixed_dictionaries({"timestamp": st.sampled_from(TIMESTAMPS),
                           "sampledValue": st.lists(sample_strategy, max_size=5)}),
    min_size=1, max_size=3,
)


def _line(meter_value: list, unique_id: str = "m1") -> bytes:
    message = json.dumps([2, unique_id, "MeterValues", {"connectorId": 1, "meterValue": meter_value}],
                         separators=(",", ":"))
    return encode_record({"ts": "2025-03-30T01:00:00.000000+00:00", "charge_point_id": "CP", "direction": "in",
                          "message": message, "reply": f'[3,"{unique_id}",{{}}]'}).rstrip(b"\n")


def _per_record(meter_value: list):
    try:
        return [(ts, columns) for ts, columns in meter_value_rows(meter_value)]
    except RecordError:
        return None


def _random_spool(directory, seed: int) -> None:
    rng = random.Random(seed)
    spool = SpoolBuilder(directory, max_segment_bytes=40_000)
    registers = {f"ZPR{n}": 1000.0 for n in range(4)}
    for step in range(400):
        cp = rng.choice(list(registers))
        minute = step // 2
        ts = f"2025-03-30T{minute // 60:02d}:{minute % 60:02d}:00Z"
        roll = rng.random()
        if roll < 0.7:
            registers[cp] += rng.choice([0.0, 0.25, 1.5, -2.0 if rng.random() < 0.05 else 0.1])
            sampled = [{"value": f"{registers[cp]:.3f}", "measurand": "Energy.Active.Import.Register",
                        "unit": "kWh"}]
            for _ in range(rng.randrange(4)):
                sampled.append({k: v for k, v in {
                    "value": rng.choice(VALUES), "measurand": rng.choice(MEASURANDS),
                    "unit": rng.choice(UNITS), "phase": rng.choice(PHASES),
                    "location": rng.choice(LOCATIONS)}.items() if v is not None})
            stamp = ts if rng.random() > 0.05 else rng.choice(TIMESTAMPS)
            spool.call(cp, "MeterValues", {"connectorId": 1, "meterValue": [
                {"timestamp": stamp, "sampledValue": sampled}]})
        elif roll < 0.8:
            spool.meter(cp, ts, power_w=rng.choice([7000, 7360, -5]))  # same instant as another record
        elif roll < 0.9:
            spool.call(cp, "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                  "status": rng.choice(["Charging", "SuspendedEV"]),
                                                  "timestamp": ts})
        else:
            tx = spool.start(cp, int(registers[cp] * 1000), ts)
            spool.stop(cp, tx, int(registers[cp] * 1000) + rng.randrange(0, 5000), ts.replace(":00Z", ":30Z"),
                       transactionData=[{"timestamp": ts, "sampledValue": [
                           {"value": str(int(registers[cp] * 1000)), "context": "Transaction.Begin"}]}])
    spool.close()


TABLES = ("meter_values", "sessions", "charger_states", "chargers")


def _snapshot(con) -> dict:
    shot = {
        t: sorted(map(repr, con.execute(
            f"SELECT * EXCLUDE (ingested_at) FROM {t}" if t in ("sessions", "chargers") else f"SELECT * FROM {t}"
        ).fetchall()))
        for t in TABLES
    }
    shot["quarantine"] = sorted(con.execute("SELECT raw_sha256, reason FROM quarantine").fetchall())
    return shot


@pytest.mark.parametrize("seed", [1])
def test_loading_a_varied_spool_fast_or_line_by_line_stores_the_same(tmp_path, seed):
    _random_spool(tmp_path / "spool", seed)
    results = {}
    for fast in (True, False):
        con = open_store(tmp_path / f"{fast}.duckdb")
        report = load_spool(con, tmp_path / "spool", batch_bytes=50_000, fast_path=fast)
        assert report.counts.rows_in == report.counts.rows_stored + report.counts.rows_quarantined
        assert report.counts.rows_in == report.lines_read > 400
        results[fast] = (_snapshot(con), report.counts.as_dict())
        con.close()
    assert results[True][1] == results[False][1]
    fast_shot, slow_shot = results[True][0], results[False][0]
    for table in (*TABLES, "quarantine"):
        assert fast_shot[table] == slow_shot[table], table
    assert len(fast_shot["meter_values"]) > 100 and len(fast_shot["quarantine"]) > 5
