"""Reading OCPP 1.6 payloads into store columns: units, phases, locations, timestamps."""

from __future__ import annotations

import datetime as dt

import pytest

from zapanalytics.ingest.ocpp.records import (
    ERROR_STATE_ID_BASE,
    STATUS_STATE_ID_BASE,
    RecordError,
    charger_model,
    meter_value_rows,
    parse_utc,
    sampled_values_row,
    session_id_for,
    status_rows,
    wh_to_kwh,
)

ZAPTEC_SAMPLE = [
    {"value": "2410.009", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
    {"value": "7360", "measurand": "Power.Active.Import", "unit": "W"},
    {"value": "11040", "measurand": "Power.Offered", "unit": "W"},
    {"value": "10.67", "measurand": "Current.Import", "phase": "L1-N", "unit": "A"},
    {"value": "10.66", "measurand": "Current.Import", "phase": "L2-N", "unit": "A"},
    {"value": "10.68", "measurand": "Current.Import", "phase": "L3-N", "unit": "A"},
]


def test_zaptec_measurands_map_to_columns():
    row = sampled_values_row(ZAPTEC_SAMPLE)
    assert row["energy_register_kwh"] == pytest.approx(2410.009)
    assert row["power_w"] == 7360.0
    assert row["power_offered_w"] == 11040.0
    assert (row["current_l1_a"], row["current_l2_a"], row["current_l3_a"]) == (10.67, 10.66, 10.68)
    assert row["voltage_l1_v"] is None and row["temperature_c"] is None


def test_defaults_follow_ocpp_16_register_in_wh():
    # No measurand and no unit: Energy.Active.Import.Register in Wh.
    assert sampled_values_row([{"value": "1234567"}])["energy_register_kwh"] == pytest.approx(1234.567)


@pytest.mark.parametrize(
    ("sample", "column", "expected"),
    [
        ({"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"}, "power_w", 7200.0),
        ({"value": "300", "measurand": "Temperature", "unit": "K", "location": "Body"}, "temperature_c", 26.85),
        ({"value": "95", "measurand": "Temperature", "unit": "Fahrenheit"}, "temperature_c", 35.0),
        ({"value": "231.5", "measurand": "Voltage", "phase": "L2-N", "unit": "V"}, "voltage_l2_v", 231.5),
        ({"value": "16", "measurand": "Current.Offered", "unit": "A"}, "current_offered_a", 16.0),
    ],
)
def test_units_convert_to_store_units(sample, column, expected):
    assert sampled_values_row([sample])[column] == pytest.approx(expected)


def test_phase_values_sum_when_no_total_and_total_wins_when_given():
    phases = [
        {"value": "2000", "measurand": "Power.Active.Import", "phase": p, "unit": "W"} for p in ("L1", "L2", "L3")
    ]
    assert sampled_values_row(phases)["power_w"] == 6000.0
    total = [*phases, {"value": "5900", "measurand": "Power.Active.Import", "unit": "W"}]
    assert sampled_values_row(total)["power_w"] == 5900.0


def test_outlet_beats_inlet_and_car_side_values_are_skipped():
    samples = [
        {"value": "100", "unit": "kWh", "location": "Inlet"},
        {"value": "99", "unit": "kWh", "location": "Outlet"},
        {"value": "7", "measurand": "Power.Active.Import", "location": "EV", "unit": "W"},
    ]
    row = sampled_values_row(samples)
    assert row["energy_register_kwh"] == 99.0
    assert row["power_w"] is None


def test_signed_values_line_to_line_voltage_and_unknown_measurands_are_not_stored():
    row = sampled_values_row([
        {"value": "OCMF|{...}", "format": "SignedData"},
        {"value": "400", "measurand": "Voltage", "phase": "L1-L2", "unit": "V"},
        {"value": "55", "measurand": "SoC", "unit": "Percent"},
        {"value": "10", "measurand": "Current.Import", "unit": "A"},
    ])
    assert all(value is None for value in row.values())


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({"value": "lots", "unit": "Wh"}, "not a number"),
        ({"value": "1", "unit": "varh"}, "unit 'varh'"),
        ({"value": 12}, "not a string"),
    ],
)
def test_unreadable_values_are_record_errors(sample, message):
    with pytest.raises(RecordError, match=message):
        sampled_values_row([sample])


def test_meter_value_rows_combine_samples_with_one_timestamp():
    rows = meter_value_rows([
        {"timestamp": "2025-03-30T00:59:00Z", "sampledValue": [{"value": "1000"}]},
        {"timestamp": "2025-03-30T02:59:00+01:00", "sampledValue": [
            {"value": "5", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": "2000"},
        ]},
        {"timestamp": "2025-03-30T01:59:00Z", "sampledValue": []},
    ])
    # 02:59+01:00 is 01:59Z; the empty sample adds nothing; the first register wins.
    assert len(rows) == 2
    ts, columns = rows[1]
    assert ts == dt.datetime(2025, 3, 30, 1, 59, tzinfo=dt.UTC)
    assert columns["energy_register_kwh"] == 2.0 and columns["power_w"] == 5.0


@pytest.mark.parametrize("text", ["2025-01-01T10:00:00", "yesterday", 17])
def test_timestamps_without_offset_or_unreadable_are_refused(text):
    with pytest.raises(RecordError):
        parse_utc(text, "timestamp")


def test_parse_utc_converts_offsets():
    assert parse_utc("2025-10-26T02:30:00+02:00", "t") == dt.datetime(2025, 10, 26, 0, 30, tzinfo=dt.UTC)


def test_meter_start_must_be_integer_wh():
    assert wh_to_kwh(1234, "meterStart") == 1.234
    for bad in (12.5, "12", True):
        with pytest.raises(RecordError):
            wh_to_kwh(bad, "meterStart")


def test_status_rows_use_negative_state_ids_per_connector():
    received = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    rows = status_rows(
        {"connectorId": 1, "status": "Faulted", "errorCode": "GroundFailure", "vendorErrorCode": "E12"},
        received,
    )
    assert [(r["state_id"], r["value"]) for r in rows] == [
        (STATUS_STATE_ID_BASE - 1, "Faulted"),
        (ERROR_STATE_ID_BASE - 1, "GroundFailure vendorErrorCode=E12"),
    ]
    assert rows[0]["ts_utc"] == received  # no timestamp in the payload: time received
    ok = status_rows({"connectorId": 0, "status": "Available", "errorCode": "NoError",
                      "timestamp": "2025-02-01T00:00:00Z"}, received)
    assert len(ok) == 1 and ok[0]["state_id"] == STATUS_STATE_ID_BASE
    assert ok[0]["ts_utc"] == dt.datetime(2025, 2, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("vendor", "model", "expected"),
    [
        ("Zaptec", "ZapCharger Pro", "Pro"),
        ("Zaptec", "Go", "Go"),
        ("Zaptec", "Go 2", "Go2"),
        ("ZAPTEC", "ZAPTEC HOME", "Home"),
        ("Easee", "Home", None),
    ],
)
def test_charger_model_mapping(vendor, model, expected):
    assert charger_model(vendor, model) == expected


def test_session_id_convention():
    assert session_id_for("ZPR100001", 42) == "ocpp:ZPR100001:42"
