"""Every parser, fed anything: it returns, or raises its documented error type, nothing else.

A crash of any other type (OverflowError, RecursionError, KeyError, a polars or DuckDB error)
would end an ingestion run instead of quarantining one record, so it fails the property.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math

from hypothesis import strategies as st

from .strategies import (
    fast_and_slow,
    iso_texts,
    json_text,
    json_values,
    mangled,
    timestamp_like,
    zaptec_items,
)

# -- OCMF -------------------------------------------------------------------------------------

_OCMF_READING = st.fixed_dictionaries(
    {},
    optional={
        "TM": st.text(max_size=40) | st.sampled_from(["2025-03-10T16:00:00,000+00:00 R", "2025-03-10T16:00:00,000+0100 S"]) | json_values,
        "TX": st.sampled_from(["B", "T", "E", "X", ""]) | json_values,
        "RV": st.floats(allow_nan=False) | st.integers() | st.text(max_size=12) | json_values,
        "RU": st.sampled_from(["kWh", "Wh", "X"]) | json_values,
        "RI": st.text(max_size=12),
        "ST": st.sampled_from(["G", "E"]) | json_values,
        "EF": json_values,
    },
)
_OCMF_PAYLOAD = st.fixed_dictionaries(
    {}, optional={"FV": json_values, "GS": json_values, "PG": json_values, "RD": st.lists(_OCMF_READING, max_size=4) | json_values}
)
_OCMF_SIGNATURE = st.fixed_dictionaries(
    {}, optional={"SA": st.sampled_from(["ECDSA-secp384r1-SHA256", "ECDSA-brainpoolP256r1-SHA256", "x"]) | json_values,
                  "SE": st.sampled_from(["hex", "base64", "z"]) | json_values,
                  "SD": st.text(alphabet="0123456789abcdefABCDEF+/=!", max_size=40) | json_values},
)


@st.composite
def ocmf_records(draw) -> str:
    payload = json.dumps(draw(_OCMF_PAYLOAD), allow_nan=True)
    parts = ["OCMF", payload]
    if draw(st.booleans()):
        parts.append(json.dumps(draw(_OCMF_SIGNATURE), allow_nan=True))
    text = "|".join(parts)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


def _check_ocmf(record) -> None:
    from zapanalytics.audit.ocmf import OcmfError, parse, verify

    try:
        parsed = parse(record)
    except OcmfError as exc:
        assert exc.reason
        return
    assert parsed.readings, "a parsed record has readings"
    for reading in parsed.readings:
        assert reading.time_utc.tzinfo is not None
    verdict = verify(record, _ocmf_key())
    assert verdict.kind is not None


@functools.cache
def _ocmf_key() -> str:
    from firmware_ref.ocmf import derive_private_key, public_key_pem

    return public_key_pem(derive_private_key("properties", "ZPR000001"))


test_ocmf_text, test_ocmf_text_slow = fast_and_slow(st.text(max_size=200) | st.binary(max_size=200))(_check_ocmf)
test_ocmf_structured, test_ocmf_structured_slow = fast_and_slow(ocmf_records() | mangled(ocmf_records()))(_check_ocmf)


# -- Zaptec pages --------------------------------------------------------------------------------


def _check_zaptec_item(item) -> None:
    from zapanalytics.ingest.zaptec.records import RecordError, session_rows

    try:
        session, details = session_rows(item)
    except RecordError as exc:
        assert exc.field
        return
    assert session["session_id"]
    assert session["start_utc"].tzinfo is dt.UTC
    for point in details:
        assert point["ts_utc"].tzinfo is dt.UTC
        assert math.isfinite(point["energy_kwh"])
    if session["energy_kwh"] is not None:
        assert math.isfinite(session["energy_kwh"])


test_zaptec_session_rows, test_zaptec_session_rows_slow = fast_and_slow(zaptec_items() | json_values, fast=150)(
    _check_zaptec_item
)


def _check_zaptec_objects(item) -> None:
    from zapanalytics.ingest.zaptec.records import (
        RecordError,
        charger_row,
        installation_row,
        state_row,
    )

    for mapper in (installation_row, charger_row, lambda i: state_row(i, {708: "ChargeCurrentSet"})):
        try:
            mapper(item)
        except RecordError:
            pass


_OBJECT_KEYS = ["Id", "Name", "NetworkType", "MaxCurrent", "PropertyMainFuseCurrent", "TimeZoneIanaName",
                "DeviceId", "InstallationId", "MaxChargeCurrent", "ChargerFirmwareVersion", "ChargerId",
                "StateId", "Timestamp", "ValueAsString"]
test_zaptec_objects, test_zaptec_objects_slow = fast_and_slow(
    st.dictionaries(st.sampled_from(_OBJECT_KEYS), json_values | timestamp_like, max_size=8) | json_values
)(_check_zaptec_objects)


def _check_timestamp(text) -> None:
    from zapanalytics.ingest.zaptec.records import RecordError, parse_timestamp

    for naive_is_utc in (True, False):
        try:
            stamp = parse_timestamp(text, "t", naive_is_utc=naive_is_utc)
        except RecordError:
            continue
        assert stamp.tzinfo is dt.UTC


test_zaptec_timestamps, test_zaptec_timestamps_slow = fast_and_slow(iso_texts() | timestamp_like, fast=200)(_check_timestamp)


def _check_zaptec_page(data) -> None:
    """A whole page through the door: never raises, and the door's counts add up."""
    from zapanalytics.ingest.door import IngestRun
    from zapanalytics.ingest.zaptec.files import admit_chargehistory_page
    from zapanalytics.store import open_store

    con = open_store(":memory:")
    try:
        with IngestRun(con, "property") as run:
            counts = admit_chargehistory_page(run, data)
        assert counts.rows_in == counts.rows_stored + counts.rows_quarantined
        stored = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
        assert stored <= counts.rows_stored
        orphans = con.execute(
            "SELECT count(*) FROM energy_details d ANTI JOIN sessions s USING (session_id)"
        ).fetchall()[0][0]
        assert orphans == 0, "interval rows without their session"
    finally:
        con.close()


_pages = st.lists(zaptec_items(), max_size=4).map(lambda items: {"Pages": 1, "Data": items}) | json_values
test_zaptec_page_through_the_door, test_zaptec_page_through_the_door_slow = fast_and_slow(
    mangled(json_text(_pages)), fast=25, slow=600
)(_check_zaptec_page)


# -- OCPP ----------------------------------------------------------------------------------------

_ACTIONS = ["BootNotification", "Heartbeat", "MeterValues", "StartTransaction", "StopTransaction",
            "StatusNotification", "Authorize", "DataTransfer", "FirmwareStatusNotification",
            "DiagnosticsStatusNotification", "Reset", "NoSuchAction"]
_sampled_value = st.fixed_dictionaries(
    {},
    optional={
        "value": st.text(max_size=12) | st.sampled_from(["NaN", "inf", "-1", "1e400", "12.5"]) | json_values,
        "measurand": st.sampled_from(["Energy.Active.Import.Register", "Power.Active.Import", "Current.Import",
                                      "Voltage", "Temperature", "Current.Offered", "SoC", "x"]) | json_values,
        "unit": st.sampled_from(["Wh", "kWh", "W", "kW", "A", "V", "Celsius", "K", "Fahrenheit", "x"]) | json_values,
        "phase": st.sampled_from(["L1", "L2", "L3", "L1-N", "L1-L2", "N"]) | json_values,
        "context": st.sampled_from(["Sample.Periodic", "Transaction.End"]) | json_values,
        "location": st.sampled_from(["Outlet", "Inlet", "EV"]) | json_values,
    },
)
_meter_value = st.fixed_dictionaries(
    {}, optional={"timestamp": timestamp_like, "sampledValue": st.lists(_sampled_value, max_size=4) | json_values}
)
_payload = st.fixed_dictionaries(
    {},
    optional={
        "connectorId": st.integers(-2, 3) | json_values,
        "meterValue": st.lists(_meter_value, max_size=3) | json_values,
        "transactionData": st.lists(_meter_value, max_size=2) | json_values,
        "meterStart": st.integers(-(10**20), 10**20) | json_values,
        "meterStop": st.integers(-(10**20), 10**20) | json_values,
        "transactionId": st.integers(-5, 2**40) | json_values,
        "timestamp": timestamp_like,
        "idTag": st.text(max_size=25),
        "status": st.sampled_from(["Available", "Charging", "Faulted", "x"]) | json_values,
        "errorCode": st.sampled_from(["NoError", "GroundFailure", "x"]) | json_values,
        "chargePointVendor": st.text(max_size=25),
        "chargePointModel": st.text(max_size=25),
    },
)


@st.composite
def ocpp_frames(draw) -> str:
    kind = draw(st.sampled_from([2, 2, 2, 3, 4, 5, "2"]))
    frame = [kind, draw(st.text(max_size=40) | json_values), draw(st.sampled_from(_ACTIONS) | json_values)]
    frame.append(draw(_payload | json_values))
    frame = frame[: draw(st.integers(0, 5))]
    text = json.dumps(frame, allow_nan=True)
    if draw(st.integers(0, 5)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


_CENTRAL = {}


def _central(tmp_dir):
    from zapanalytics.ingest.ocpp.server import CentralSystem, ServerSettings

    if "system" not in _CENTRAL:
        _CENTRAL["system"] = CentralSystem(ServerSettings(spool_dir=tmp_dir))
    return _CENTRAL["system"]


def _check_frame(text) -> None:
    """parse_frame raises FrameError only; a CALL always gets a JSON answer."""
    import tempfile
    from pathlib import Path

    from zapanalytics.ingest.ocpp.server import FrameError, parse_frame

    try:
        frame = parse_frame(text)
    except FrameError as exc:
        assert exc.code
        return
    if frame[0] == 2:
        central = _central(Path(tempfile.gettempdir()) / "zapanalytics-properties-spool")
        answer = json.loads(central.answer_call("ZPR100001", frame[1], frame[2], frame[3]))
        assert answer[0] in (3, 4) and answer[1] == frame[1]


test_ocpp_frames, test_ocpp_frames_slow = fast_and_slow(ocpp_frames() | st.text(max_size=80), fast=150)(_check_frame)


def _check_ocpp_payload(action, payload) -> None:
    """The loader's payload readers raise their RecordError only."""
    from zapanalytics.ingest.ocpp.records import (
        RecordError,
        meter_value_rows,
        parse_utc,
        status_rows,
        wh_to_kwh,
    )

    received = dt.datetime(2025, 3, 10, tzinfo=dt.UTC)
    calls = [
        lambda: meter_value_rows(payload.get("meterValue")),
        lambda: meter_value_rows(payload.get("transactionData")),
        lambda: status_rows(payload, received),
        lambda: wh_to_kwh(payload.get("meterStart"), "meterStart"),
        lambda: parse_utc(payload.get("timestamp"), "timestamp"),
    ]
    for call in calls:
        try:
            result = call()
        except RecordError:
            continue
        if isinstance(result, list):
            for row in result:
                ts = row[0] if isinstance(row, tuple) else row["ts_utc"]
                assert ts.tzinfo is not None


test_ocpp_payloads, test_ocpp_payloads_slow = fast_and_slow(
    st.sampled_from(_ACTIONS), _payload, fast=150
)(_check_ocpp_payload)


def _check_spool(lines) -> None:
    """Spool lines of any content through the loader: it never raises; counts add up."""
    import tempfile
    from pathlib import Path

    from zapanalytics.ingest.ocpp.load import load_spool
    from zapanalytics.ingest.spool import META_NAME, SPOOL_FORMAT, SPOOL_VERSION, segment_name
    from zapanalytics.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        spool = Path(tmp)
        meta = {"format": SPOOL_FORMAT, "version": SPOOL_VERSION, "spool_id": "property"}
        (spool / META_NAME).write_text(json.dumps(meta))
        (spool / segment_name(1, sealed=True)).write_bytes(b"".join(line + b"\n" for line in lines))
        con = open_store(":memory:")
        try:
            report = load_spool(con, spool)
            counts = report.counts
            assert counts.rows_in == counts.rows_stored + counts.rows_quarantined == len(lines)
            assert load_spool(con, spool).counts.rows_in == 0, "a second load reads nothing new"
        finally:
            con.close()


@st.composite
def spool_lines(draw) -> bytes:
    record = {"ts": draw(st.sampled_from(["2025-03-10T12:00:00.000000+00:00"]) | timestamp_like),
              "charge_point_id": draw(st.sampled_from(["ZPR100001", "ZPR100002"]) | json_values),
              "direction": draw(st.sampled_from(["in", "in", "out"]) | json_values),
              "message": draw(ocpp_frames())}
    if draw(st.booleans()):
        record["reply"] = json.dumps([3, "u", {"transactionId": draw(st.integers(0, 50))}])
    line = json.dumps(record, allow_nan=True).encode("ascii")
    if draw(st.integers(0, 6)) == 0:
        line = line[: draw(st.integers(0, len(line)))]
    return line.replace(b"\n", b" ")


test_ocpp_spool_through_the_loader, test_ocpp_spool_through_the_loader_slow = fast_and_slow(
    st.lists(spool_lines(), max_size=6), fast=20, slow=500
)(_check_spool)


# -- AMS HAN frames ------------------------------------------------------------------------------


def _han_frame() -> st.SearchStrategy[bytes]:
    from firmware_ref.formats.han import encode_hdlc_frame

    @st.composite
    def build(draw) -> bytes:
        choice = draw(st.integers(0, 3))
        if choice == 0:
            return draw(st.binary(max_size=160))
        payload = draw(st.binary(min_size=0, max_size=160))
        frame = bytearray(encode_hdlc_frame(payload))
        if choice == 2 and len(frame) > 2:
            frame[draw(st.integers(0, len(frame) - 1))] ^= draw(st.integers(1, 255))
        elif choice == 3:
            frame = frame[: draw(st.integers(0, len(frame)))]
        return bytes(frame)

    return build()


def _check_han_frame(data) -> None:
    from zapanalytics.ingest.meters.han import HanError, decode_frame

    try:
        fields, _payload = decode_frame(data)
    except HanError:
        return
    assert isinstance(fields, dict) and fields


test_han_frames, test_han_frames_slow = fast_and_slow(_han_frame(), fast=150)(_check_han_frame)


def _check_han_dump(lines) -> None:
    """Any hex-dump text through ingest_han: never raises, counts add up."""
    import tempfile
    from pathlib import Path

    from zapanalytics.ingest.meters.han import ingest_han
    from zapanalytics.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "meter.hex"
        path.write_bytes(b"\n".join(lines))
        con = open_store(":memory:")
        try:
            counts = ingest_han(con, [path], timezone="Europe/Oslo")
            assert counts.rows_in == counts.rows_stored + counts.rows_quarantined
        finally:
            con.close()


@st.composite
def han_lines(draw) -> bytes:
    stamp = draw(st.sampled_from(["2025-03-10T12:00:10Z ", "2025-10-26T01:30:00+00:00 ", ""])
                 | timestamp_like.map(lambda t: f"{t} "))
    return (str(stamp) + draw(_han_frame()).hex()).encode("utf-8", "surrogatepass")


test_han_dump_through_the_door, test_han_dump_through_the_door_slow = fast_and_slow(
    st.lists(han_lines() | st.binary(max_size=60), max_size=5), fast=20, slow=500
)(_check_han_dump)


# -- price files ---------------------------------------------------------------------------------

_price_row = st.fixed_dictionaries(
    {},
    optional={"NOK_per_kWh": st.floats(allow_nan=True, allow_infinity=True) | json_values,
              "EUR_per_kWh": st.floats() | json_values,
              "EXR": st.floats() | json_values,
              "time_start": timestamp_like, "time_end": timestamp_like},
)


def _check_hvakosterstrommen(data) -> None:
    from zapanalytics.ingest.prices.spot import PriceFileError, parse_hvakosterstrommen

    try:
        parsed = parse_hvakosterstrommen(data, "NO1")
    except PriceFileError:
        return
    assert len(parsed.records) == len(parsed.rows) + len(parsed.rejected)
    for row in parsed.rows:
        assert math.isfinite(row["spot_nok_per_kwh"])
        assert row["end_utc"] > row["start_utc"]


test_price_json, test_price_json_slow = fast_and_slow(
    mangled(json_text(st.lists(_price_row, max_size=5) | json_values)), fast=150
)(_check_hvakosterstrommen)


@st.composite
def entsoe_documents(draw) -> str:
    points = "".join(
        f"<Point><position>{draw(st.integers(-2, 30) | st.text(max_size=3))}</position>"
        f"<price.amount>{draw(st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5))}</price.amount></Point>"
        for _ in range(draw(st.integers(0, 4)))
    )
    start, end = draw(iso_texts()), draw(iso_texts())
    resolution = draw(st.sampled_from(["PT15M", "PT60M", "PT1H", "P1D", "x"]))
    zone = draw(st.sampled_from(["10YNO-1--------2", "10YNO-2--------T", "x"]))
    text = (
        '<?xml version="1.0"?><Publication_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3">'
        f"<TimeSeries><mRID>1</mRID><in_Domain.mRID>{zone}</in_Domain.mRID><currency_Unit.name>EUR</currency_Unit.name>"
        f"<price_Measure_Unit.name>{draw(st.sampled_from(['MWH', 'KWH', 'x']))}</price_Measure_Unit.name>"
        f"<curveType>{draw(st.sampled_from(['A01', 'A03']))}</curveType>"
        f"<Period><timeInterval><start>{start}</start><end>{end}</end></timeInterval>"
        f"<resolution>{resolution}</resolution>{points}</Period></TimeSeries></Publication_MarketDocument>"
    )
    if draw(st.integers(0, 4)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


def _check_entsoe(data) -> None:
    from zapanalytics.ingest.prices.spot import PriceFileError, parse_entsoe

    try:
        parsed = parse_entsoe(data, area="NO1")
    except PriceFileError:
        return
    assert len(parsed.records) == len(parsed.rows) + len(parsed.rejected)


test_price_entsoe, test_price_entsoe_slow = fast_and_slow(entsoe_documents() | st.text(max_size=60), fast=100, slow=1000)(
    _check_entsoe
)


# -- portal exports, tariffs, sub-meter CSV ------------------------------------------------------------

_csv_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["10,5", "NaN", "inf", "26.10.2025 02:30", "2025-03-10T16:00:00+01:00", "31.02.2025 10:00", "=1+1"]
)


@st.composite
def csv_documents(draw) -> bytes:
    header = draw(st.lists(st.sampled_from(["Session Id", "Charger", "User", "Start", "Energy (kWh)",
                                            "timestamp", "energy_import_kwh", "current_l1_a", "x"]),
                           min_size=0, max_size=6))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    rows = [delimiter.join(header)]
    for _ in range(draw(st.integers(0, 4))):
        rows.append(delimiter.join(draw(st.lists(_csv_cell, max_size=7))))
    text = "\n".join(rows)
    return draw(mangled(st.just(text)))


def _check_portal(tmp_path_factory_dir, data) -> None:
    from zapanalytics.ingest.portal.export import PortalReportError, read_consumption_export

    path = tmp_path_factory_dir / "export.csv"
    path.write_bytes(data)
    try:
        export = read_consumption_export(path)
    except PortalReportError:
        return
    readable = export.filter(export["problem"].is_null())
    assert readable["energy_kwh"].is_finite().all()


def _check_portal_bytes(data) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        _check_portal(Path(tmp), data)


test_portal_csv, test_portal_csv_slow = fast_and_slow(csv_documents(), fast=100)(_check_portal_bytes)


def _check_submeter(data) -> None:
    import tempfile
    from pathlib import Path

    from zapanalytics.ingest.meters.submeter import ingest_submeter
    from zapanalytics.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "meter1.csv"
        path.write_bytes(data)
        con = open_store(":memory:")
        try:
            counts = ingest_submeter(con, [path], timezone="Europe/Oslo")
            assert counts.rows_in == counts.rows_stored + counts.rows_quarantined
        finally:
            con.close()


test_submeter_csv, test_submeter_csv_slow = fast_and_slow(csv_documents(), fast=25, slow=500)(_check_submeter)


@st.composite
def toml_documents(draw) -> bytes:
    value = st.sampled_from(["0.15", "-1", "nan", "inf", "1e300", '"0,15"', "2025-01-01", "[0, 2, 5]", "[]",
                             "true", '"x"', "{}"])
    key = st.sampled_from(["energy_nok_per_kwh", "valid_from", "capacity_method", "capacity_steps_kw",
                           "capacity_nok_per_year", "name", "rate", "nok_per_kwh", "county", "x"])
    lines = []
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(st.sampled_from(["[grid.t]", "[[grid.t.periods]]", "[[vat.rates]]", "[site]",
                                           "[[elavgift.rates]]", "[[grid.t.periods.rules]]", "[x]"])))
        for _ in range(draw(st.integers(0, 4))):
            lines.append(f"{draw(key)} = {draw(value)}")
    return draw(mangled(st.just("\n".join(lines))))


def _check_tariff(data) -> None:
    import tempfile
    from pathlib import Path

    from zapanalytics.billing.rates import RateTableError, load_rates

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user.toml"
        path.write_bytes(data)
        try:
            load_rates([path])
        except RateTableError:
            return


test_tariff_toml, test_tariff_toml_slow = fast_and_slow(toml_documents(), fast=80)(_check_tariff)
