"""Write the bad-input corpus under ``tests/badinput/corpus/`` (run by hand, output checked in).

    .venv/bin/python tests/badinput/build_corpus.py

The files are crafted, not simulated: each one breaks one rule a real source can break
(truncation, wrong types, NaN, huge numbers, resets, duplicates, DST, encodings, hostile
text). Several files also hold a good record, to show that a bad record costs nothing
else. What each file must do is declared in ``corpus/manifest.toml``; this script only
makes the bytes (some are awkward to type: BOMs, Latin-1, NaN literals, workbooks).
"""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"

INSTALLATION_ID = "1a5e0000-0000-4000-8000-0000000000b1"
CHARGER_1 = "c4a60000-0000-4000-8000-0000000000c1"
CHARGER_2 = "c4a60000-0000-4000-8000-0000000000c2"

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'
SQL_HOSTILE = "x'); DROP TABLE sessions; --"
FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"pay\")", "+SUM(A1:A9)", "-2+3", "@cmd|' /C calc'!A0"]


def _write(relative: str, content: str | bytes) -> None:
    path = CORPUS / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)


def _json(value) -> str:
    # allow_nan: some inputs carry the NaN/Infinity literals other writers emit.
    return json.dumps(value, ensure_ascii=False, indent=1, allow_nan=True)


# -- Zaptec API dump ---------------------------------------------------------------------------


def session(number: int, **changes) -> dict:
    """A valid charge-history item (DetailLevel=1) whose details add up to its Energy."""
    item = {
        "Id": f"5e550000-0000-4000-8000-{number:012d}",
        "DeviceId": "ZPR200001",
        "ChargerId": CHARGER_1,
        "StartDateTime": "2025-03-10T16:00:00.000",
        "EndDateTime": "2025-03-10T18:00:00.000",
        "CommitEndDateTime": "2025-03-10T18:00:00.000",
        "Energy": 10.0,
        "CommitMetadata": 5,
        "UserFullName": "Kari Nordmann",
        "UserId": "u-kari",
        "TokenName": None,
        "EnergyDetails": [
            {"Timestamp": "2025-03-10T17:00:00+00:00", "Energy": 6.0},
            {"Timestamp": "2025-03-10T18:00:00+00:00", "Energy": 4.0},
        ],
        "ChargerFirmwareVersion": {"Major": 5, "Minor": 0, "Build": 2, "Revision": 1},
        "SignedSession": None,
    }
    item.update(changes)
    return item


def page(*items) -> dict:
    return {"Pages": 1, "Data": list(items), "Message": None}


def with_detail(item: dict, position: int, **changes) -> dict:
    item = copy.deepcopy(item)
    item["EnergyDetails"][position].update(changes)
    return item


def build_zaptec() -> None:
    base = "zaptec/_base/zaptec"
    _write(f"{base}/constants.json", _json({"Observations": {"ChargeCurrentSet": 708, "ChargerOperationMode": 710}}))
    _write(
        f"{base}/installation_{INSTALLATION_ID}.json",
        _json({"Id": INSTALLATION_ID, "Name": "Sameie Testgården", "NetworkType": 4, "MaxCurrent": 63.0,
               "PropertyMainFuseCurrent": 63.0, "TimeZoneIanaName": "Europe/Oslo"}),
    )
    _write(
        f"{base}/chargers.json",
        _json(page({"Id": CHARGER_1, "DeviceId": "ZPR200001", "Name": "Plass 1", "InstallationId": INSTALLATION_ID},
                   {"Id": CHARGER_2, "DeviceId": "ZPR200002", "Name": "Plass 2", "InstallationId": INSTALLATION_ID})),
    )
    _write(f"{base}/observations.jsonl", json.dumps(
        {"ChargerId": CHARGER_1, "StateId": 708, "Timestamp": "2025-03-10T16:00:00", "ValueAsString": "16"}) + "\n")
    good = session(1)
    z = "zaptec"
    full = _json(page(good, session(2)))
    _write(f"{z}/page_truncated.json", full[: len(full) // 2])
    _write(f"{z}/page_empty.json", b"")
    _write(f"{z}/page_data_not_a_list.json", _json({"Pages": 1, "Data": "none today"}))
    _write(f"{z}/page_bom.json", b"\xef\xbb\xbf" + _json(page(good)).encode("utf-8"))
    _write(f"{z}/page_latin1.json", _json(page(session(1, UserFullName="Bjørn Ærø"))).encode("latin-1"))
    _write(f"{z}/page_deep_nesting.json", '{"Pages": 1, "Data": ' + "[" * 50_000)
    _write(f"{z}/page_huge_integer_literal.json",
           _json(page(good)).replace('"Energy": 10.0', '"Energy": 1' + "0" * 5000, 1))
    _write(f"{z}/page_negative_energy.json", _json(page(good, session(2, Energy=-3.5))))
    _write(f"{z}/page_energy_nan.json", _json(page(good, session(2, Energy=float("nan")))))
    _write(f"{z}/page_energy_infinity.json", _json(page(good, session(2, Energy=float("inf")))))
    _write(f"{z}/page_energy_huge.json", _json(page(good, session(2, Energy=1.0e308))))
    _write(f"{z}/page_energy_bigint.json", _json(page(good, session(2, Energy=10**400))))
    _write(f"{z}/page_energy_string.json", _json(page(good, session(2, Energy="12,5"))))
    _write(f"{z}/page_energy_bool.json", _json(page(good, session(2, Energy=True))))
    missing_start = session(2)
    del missing_start["StartDateTime"]
    _write(f"{z}/page_missing_start.json", _json(page(good, missing_start)))
    missing_id = session(2)
    del missing_id["Id"]
    _write(f"{z}/page_missing_id.json", _json(page(good, missing_id)))
    _write(f"{z}/page_duplicate_id_different.json", _json(page(good, session(1, Energy=12.0,
           EnergyDetails=[{"Timestamp": "2025-03-10T17:00:00+00:00", "Energy": 12.0}]))))
    _write(f"{z}/page_duplicate_id_identical.json", _json(page(good, session(2), copy.deepcopy(good))))
    _write(f"{z}/page_detail_naive_timestamp.json",
           _json(page(good, with_detail(session(2), 1, Timestamp="2025-03-10T18:00:00"))))
    _write(f"{z}/page_far_future.json", _json(page(good, session(2, StartDateTime="2099-01-01T00:00:00",
           EndDateTime="2099-01-01T01:00:00", CommitEndDateTime="2099-01-01T01:00:00"))))
    _write(f"{z}/page_impossible_date.json", _json(page(good, session(2, StartDateTime="2025-02-30T10:00:00"))))
    _write(f"{z}/page_year_one_with_offset.json", _json(page(good, session(2, StartDateTime="0001-01-01T00:00:00+01:00"))))
    _write(f"{z}/page_offset_out_of_range.json", _json(page(good, session(2, StartDateTime="2025-03-10T16:00:00+99:00"))))
    _write(f"{z}/page_end_before_start.json", _json(page(good, session(2, EndDateTime="2025-03-10T15:00:00",
           CommitEndDateTime="2025-03-10T15:00:00"))))
    _write(f"{z}/page_details_not_a_list.json", _json(page(good, session(2, EnergyDetails={"Energy": 10.0}))))
    _write(f"{z}/page_commit_metadata_text.json", _json(page(good, session(2, CommitMetadata="Signed"))))
    _write(f"{z}/page_commit_metadata_bigint.json", _json(page(good, session(2, CommitMetadata=2**40))))
    _write(f"{z}/page_details_do_not_add_up.json", _json(page(session(2, Energy=25.0))))
    _write(f"{z}/page_dst_fall_back.json", _json(page(session(
        3, StartDateTime="2025-10-26T00:30:00", EndDateTime="2025-10-26T02:30:00",
        CommitEndDateTime="2025-10-26T02:30:00", Energy=9.0,
        # 02:00 and 03:00 local (+02:00, then +01:00): the repeated hour, told apart by offset.
        EnergyDetails=[{"Timestamp": "2025-10-26T02:00:00+02:00", "Energy": 3.0},
                       {"Timestamp": "2025-10-26T02:00:00+01:00", "Energy": 4.0},
                       {"Timestamp": "2025-10-26T02:30:00+00:00", "Energy": 2.0}]))))
    _write(f"{z}/page_nanosecond_times.json", _json(page(session(
        4, StartDateTime="2025-03-10T16:00:00.123456789Z", EndDateTime="2025-03-10T18:00:00.999999999Z",
        CommitEndDateTime="2025-03-10T18:00:00.999999999Z"))))
    _write(f"{z}/page_formula_names.json", _json(page(*[
        session(10 + n, UserFullName=formula, UserId=f"u-formula-{n}", TokenName=formula)
        for n, formula in enumerate(FORMULAS)])))
    _write(f"{z}/page_html_names.json", _json(page(session(20, UserFullName=XSS_SCRIPT, UserId="u-xss"),
           session(21, UserFullName=XSS_ATTR, UserId="u-attr"))))
    _write(f"{z}/page_sql_metacharacters.json", _json(page(session(30, Id=SQL_HOSTILE, UserFullName=SQL_HOSTILE,
           UserId="u'--", ChargerId=SQL_HOSTILE))))
    _write(f"{z}/page_unpaired_surrogate.json",
           _json(page(good, session(2))).replace("Kari Nordmann", "Kari \\udc80 Nordmann", 2).encode("utf-8"))
    _write(f"{z}/page_signed_register_reset.json", _json(page(good, session(2, SignedSession=(
        'OCMF|{"FV":"1.0","GI":"Zaptec Pro MID","GS":"ZPR200001","PG":"T1","RD":['
        '{"TM":"2025-03-10T16:00:00,000+00:00 R","TX":"B","RV":5123.4,"RI":"1-0:1.8.0","RU":"kWh","ST":"G"},'
        '{"TM":"2025-03-10T18:00:00,000+00:00 R","TX":"E","RV":12.0,"ST":"G"}]}')))))
    _write(f"{z}/installation_network_type_unknown.json",
           _json({"Id": INSTALLATION_ID, "Name": "Sameie", "NetworkType": 9, "TimeZoneIanaName": "Europe/Oslo"}))
    _write(f"{z}/installation_truncated.json", '{"Id": "' + INSTALLATION_ID + '", "Name": "Sam')
    _write(f"{z}/installation_bad_timezone.json",
           _json({"Id": INSTALLATION_ID, "Name": "Sameie", "NetworkType": 4, "TimeZoneIanaName": "'; DROP TABLE x"}))
    _write(f"{z}/chargers_current_out_of_range.json", _json(page(
        {"Id": CHARGER_1, "DeviceId": "ZPR200001", "Name": "Plass 1", "MaxChargeCurrent": 800.0},
        {"Id": CHARGER_2, "DeviceId": "ZPR200002", "Name": "Plass 2", "MaxChargeCurrent": 32.0})))
    _write(f"{z}/chargers_hostile_names.json", _json(page(
        {"Id": CHARGER_1, "DeviceId": "ZPR200001", "Name": XSS_SCRIPT},
        {"Id": CHARGER_2, "DeviceId": "ZPR200002", "Name": "=cmd|' /C calc'!A0"})))
    _write(f"{z}/chargers_not_an_envelope.json", _json({"Chargers": []}))
    _write(f"{z}/constants_bom.json",
           b"\xef\xbb\xbf" + _json({"Observations": {"ChargeCurrentSet": 708}}).encode("utf-8"))
    _write(f"{z}/constants_truncated.json", '{"Observations": {"ChargeCurrentSet": 7')
    obs = [
        json.dumps({"ChargerId": CHARGER_1, "StateId": 708, "Timestamp": "2025-03-10T16:00:00", "ValueAsString": "16"}),
        json.dumps({"ChargerId": CHARGER_1, "StateId": 710, "Timestamp": "2025-03-10T16:00:00", "ValueAsString": "3"}),
    ]
    lines = [obs[0].encode(), obs[1][:60].encode(),
             json.dumps({"ChargerId": CHARGER_1, "StateId": 708, "Timestamp": "2025-03-10T16:05:00",
                         "ValueAsString": "Bjørn"}, ensure_ascii=False).encode("latin-1"),
             json.dumps({"ChargerId": CHARGER_1, "StateId": "708", "Timestamp": "2025-03-10T16:06:00"}).encode(),
             json.dumps({"ChargerId": CHARGER_1, "StateId": 2**40, "Timestamp": "2025-03-10T16:07:00"}).encode()]
    _write(f"{z}/observations_mixed.jsonl", b"\n".join(lines) + b"\n")


# -- spot prices (hvakosterstrommen.no day files, ENTSO-E XML) ----------------------------------


def price_rows(day: str = "2025-03-10", hours: int = 24, offset: str = "+01:00", start_price: float = 0.5) -> list[dict]:
    rows = []
    for hour in range(hours):
        rows.append({
            "NOK_per_kWh": round(start_price + hour / 100, 5),
            "EUR_per_kWh": round((start_price + hour / 100) / 11.5, 5),
            "EXR": 11.5,
            "time_start": f"{day}T{hour:02d}:00:00{offset}",
            "time_end": f"{day}T{hour + 1:02d}:00:00{offset}" if hour < 23 else f"{day[:-2]}{int(day[-2:]) + 1:02d}T00:00:00{offset}",
        })
    return rows


def dst_fall_back_rows(drop_hour: int | None = None) -> list[dict]:
    """2025-10-26 in Oslo: 25 hours, local 02:00 twice (+02:00 then +01:00)."""
    stamps = [f"2025-10-26T{h:02d}:00:00+02:00" for h in range(3)]
    stamps += [f"2025-10-26T{h:02d}:00:00+01:00" for h in range(2, 24)] + ["2025-10-27T00:00:00+01:00"]
    rows = [{"NOK_per_kWh": 0.4 + n / 100, "EUR_per_kWh": 0.03, "EXR": 11.6, "time_start": s, "time_end": e}
            for n, (s, e) in enumerate(zip(stamps[:-1], stamps[1:], strict=True))]
    if drop_hour is not None:
        del rows[drop_hour]
    return rows


def build_prices() -> None:
    p = "prices"
    full = _json(price_rows())
    _write(f"{p}/day_truncated.json", full[: len(full) // 3])
    _write(f"{p}/day_object_not_list.json", _json({"prices": price_rows()}))
    _write(f"{p}/day_latin1.json", full.encode("utf-8").replace(b"0.5", "0.5\u00e6".encode("latin-1"), 1))
    _write(f"{p}/day_bom.json", b"\xef\xbb\xbf" + full.encode("utf-8"))
    rows = price_rows()
    rows[3]["NOK_per_kWh"] = float("nan")
    rows[4]["NOK_per_kWh"] = float("inf")
    _write(f"{p}/day_nan_and_infinity.json", _json(rows))
    rows = price_rows()
    rows[5]["NOK_per_kWh"] = "0,55"
    _write(f"{p}/day_price_as_text.json", _json(rows))
    rows = price_rows()
    del rows[6]["time_end"]
    _write(f"{p}/day_missing_time_end.json", _json(rows))
    rows = price_rows()
    rows[7]["time_start"] = "2025-03-10T07:00:00"
    _write(f"{p}/day_naive_time.json", _json(rows))
    rows = price_rows()
    rows[8]["NOK_per_kWh"] = 1.0e9
    rows[9]["NOK_per_kWh"] = 10**400
    _write(f"{p}/day_huge_prices.json", _json(rows))
    rows = price_rows(start_price=-0.8)
    _write(f"{p}/day_negative_prices.json", _json(rows))
    _write(f"{p}/day_dst_fall_back.json", _json(dst_fall_back_rows()))
    _write(f"{p}/day_dst_fall_back_missing_hour.json", _json(dst_fall_back_rows(drop_hour=3)))
    rows = price_rows()
    rows.append({**rows[10], "NOK_per_kWh": 9.99})
    _write(f"{p}/day_duplicate_start_different.json", _json(rows))
    _write(f"{p}/day_far_future.json", _json(price_rows(day="2099-03-10")))
    rows = price_rows()
    rows[11]["time_end"] = "2025-03-10T11:30:00+01:00"
    _write(f"{p}/day_half_hour_interval.json", _json(rows))
    rows = price_rows()
    rows[12]["time_end"] = rows[12]["time_start"]
    _write(f"{p}/day_end_equals_start.json", _json(rows))
    _write(f"{p}/entsoe_billion_laughs.xml", (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><Publication_MarketDocument>&lol3;</Publication_MarketDocument>'))
    _write(f"{p}/entsoe_truncated.xml",
           '<?xml version="1.0"?><Publication_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3">'
           '<TimeSeries><mRID>1</mRID>')


# -- portal consumption export (CSV / XLSX) ------------------------------------------------------

PORTAL_HEADER = ["Session Id", "Charger", "User", "Start", "End", "Energy (kWh)"]


def _csv(rows: list[list[str]], delimiter: str = ",") -> str:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


def _xlsx(rows: list[list]) -> bytes:
    from datetime import datetime

    import openpyxl

    book = openpyxl.Workbook()
    # A fixed creation time, so a rebuild writes the same bytes.
    book.properties.created = datetime(2025, 3, 10, 12, 0)  # noqa: DTZ001
    sheet = book.active
    for row in rows:
        sheet.append(row)
    saved = io.BytesIO()
    book.save(saved)
    # Zip entries carry their write time: restamp them, so a rebuild writes the same bytes.
    out = io.BytesIO()
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            stamped = zipfile.ZipInfo(info.filename, date_time=(2025, 3, 10, 12, 0, 0))
            stamped.compress_type = zipfile.ZIP_DEFLATED
            data = source.read(info)
            if info.filename == "docProps/core.xml":  # openpyxl stamps "modified" on save
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2025-03-10T12:00:00Z", data)
            target.writestr(stamped, data)
    return out.getvalue()


def build_portal() -> None:
    q = "portal"
    _write(f"{q}/export_empty.csv", b"")
    _write(f"{q}/export_no_energy_column.csv", _csv([["Session Id", "Charger", "Start"],
                                                     ["a", "Plass 1", "10.03.2025 16:00"]]))
    _write(f"{q}/export_legacy.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    _write(f"{q}/export_corrupt.xlsx", b"PK\x03\x04 this is not really a workbook")
    _write(f"{q}/export_bom_semicolon_comma_decimal.csv", b"\xef\xbb\xbf" + _csv([
        ["Økt-ID", "Lader", "Bruker", "Starttid", "Sluttid", "Energi (kWh)"],
        [session(1)["Id"], "Plass 1", "Kari Nordmann", "10.03.2025 17:00:00", "10.03.2025 19:00:00", "10,000"],
    ], delimiter=";").encode("utf-8"))
    _write(f"{q}/export_cp1252.csv", _csv([
        PORTAL_HEADER, ["", "Plass 1", "Bjørn Ærø", "10.03.2025 17:00", "10.03.2025 19:00", "10.0"],
    ]).encode("cp1252"))
    _write(f"{q}/export_hostile_names.csv", _csv([PORTAL_HEADER] + [
        ["", "Plass 1", name, f"10.03.2025 1{n}:00", "", "1.0"]
        for n, name in enumerate([*FORMULAS, XSS_SCRIPT, XSS_ATTR, SQL_HOSTILE])]))
    _write(f"{q}/export_bad_numbers.csv", _csv([
        PORTAL_HEADER,
        ["", "Plass 1", "A", "10.03.2025 16:00", "", "NaN"],
        ["", "Plass 1", "B", "10.03.2025 17:00", "", "inf"],
        ["", "Plass 1", "C", "10.03.2025 18:00", "", "ti kWh"],
        ["", "Plass 1", "D", "10.03.2025 19:00", "", "1e999"],
        ["", "Plass 1", "E", "10.03.2025 20:00", "", "4.5"],
    ]))
    _write(f"{q}/export_dst_ambiguous.csv", _csv([
        PORTAL_HEADER, ["", "Plass 1", "Kari", "26.10.2025 02:30", "26.10.2025 04:00", "3.0"]]))
    _write(f"{q}/export_dst_gap.csv", _csv([
        PORTAL_HEADER, ["", "Plass 1", "Kari", "30.03.2025 02:30", "30.03.2025 04:00", "3.0"]]))
    _write(f"{q}/export_truncated_rows.csv", _csv([
        PORTAL_HEADER, ["", "Plass 1", "Kari", "10.03.2025 16:00"], ["", "Plass 2", "Ola", "10.03.2025 17:00", "", "2.0"]]))
    _write(f"{q}/export_impossible_dates.csv", _csv([
        PORTAL_HEADER, ["", "Plass 1", "Kari", "31.02.2025 16:00", "", "1.0"],
        ["", "Plass 1", "Kari", "01.01.10000 00:00", "", "1.0"]]))
    _write(f"{q}/export_formulas.xlsx", _xlsx([
        PORTAL_HEADER,
        ["", "Plass 1", "=HYPERLINK(\"http://evil.example\",\"x\")", "10.03.2025 16:00", "", "=1+1"],
        ["", "Plass 1", "Kari", "10.03.2025 17:00", "", 2.5],
    ]))


# -- OCPP spool segments ------------------------------------------------------------------------

CP = "ZPR300001"
TS = "2025-03-10T12:00:00.000000+00:00"


def spool_line(message, reply=None, charge_point_id: str = CP, ts: str = TS, direction: str = "in") -> str:
    record = {"ts": ts, "charge_point_id": charge_point_id, "direction": direction,
              "message": message if isinstance(message, str) else json.dumps(message)}
    if reply is not None:
        record["reply"] = reply if isinstance(reply, str) else json.dumps(reply)
    return json.dumps(record, separators=(",", ":"))


def meter_values(unique_id: str, ts: str, register: str, unit: str = "Wh", **extra) -> tuple[list, list]:
    sampled = [{"value": register, "measurand": "Energy.Active.Import.Register", "unit": unit}]
    sampled += [{"value": v, "measurand": m, "unit": u} for m, (v, u) in extra.items()]
    message = [2, unique_id, "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": ts, "sampledValue": sampled}]}]
    return message, [3, unique_id, {}]


def start_transaction(unique_id: str, transaction_id: int, meter_start, ts="2025-03-10T10:00:00Z", id_tag="TAG1"):
    message = [2, unique_id, "StartTransaction", {"connectorId": 1, "idTag": id_tag, "meterStart": meter_start, "timestamp": ts}]
    return message, [3, unique_id, {"transactionId": transaction_id, "idTagInfo": {"status": "Accepted"}}]


def stop_transaction(unique_id: str, transaction_id: int, meter_stop, ts="2025-03-10T11:00:00Z"):
    message = [2, unique_id, "StopTransaction", {"transactionId": transaction_id, "meterStop": meter_stop, "timestamp": ts}]
    return message, [3, unique_id, {}]


def _segment(*lines: str | bytes) -> bytes:
    return b"".join((line.encode("ascii") if isinstance(line, str) else line) + b"\n" for line in lines)


def build_ocpp() -> None:
    o = "ocpp"
    good = spool_line(*meter_values("g1", "2025-03-10T11:00:00Z", "1000000"))
    _write(f"{o}/segment_line_not_json.jsonl", _segment(good, '{"ts":"2025-03-10T12:00:00+00:00","charge_point_id":"ZPR3'))
    _write(f"{o}/segment_line_not_object.jsonl", _segment(good, "[1, 2, 3]"))
    _write(f"{o}/segment_missing_charge_point.jsonl", _segment(good, json.dumps({"ts": TS, "direction": "in", "message": "[]"})))
    _write(f"{o}/segment_message_not_json.jsonl", _segment(good, spool_line('[2,"u9","MeterValues",{', '[4,"u9","FormationViolation","frame is not valid JSON",{}]')))
    _write(f"{o}/segment_callerror_answered.jsonl", _segment(good, spool_line(
        [2, "u2", "MeterValues", {"connectorId": "one"}], [4, "u2", "TypeConstraintViolation", "connectorId is not an integer", {}])))
    _write(f"{o}/segment_values_nan_inf.jsonl", _segment(good,
        spool_line(*meter_values("u3", "2025-03-10T11:10:00Z", "NaN")),
        spool_line(*meter_values("u4", "2025-03-10T11:20:00Z", "1e400")),
        spool_line(*meter_values("u5", "2025-03-10T11:30:00Z", "1000100", **{"Power.Active.Import": ("inf", "W")}))))
    _write(f"{o}/segment_negative_register.jsonl", _segment(good, spool_line(*meter_values("u6", "2025-03-10T11:40:00Z", "-500"))))
    _write(f"{o}/segment_register_reset.jsonl", _segment(good,
        spool_line(*meter_values("u7", "2025-03-10T11:50:00Z", "1000500")),
        spool_line(*meter_values("u8", "2025-03-10T12:00:00Z", "20"))))
    _write(f"{o}/segment_stop_without_start.jsonl", _segment(good, spool_line(*stop_transaction("u9", 4711, 1000900))))
    _write(f"{o}/segment_meter_stop_below_start.jsonl", _segment(good,
        spool_line(*start_transaction("u10", 17, 1000000)), spool_line(*stop_transaction("u11", 17, 999000))))
    _write(f"{o}/segment_huge_meter_start.jsonl", _segment(good,
        spool_line(*start_transaction("u12", 18, 10**400)), spool_line(*start_transaction("u13", 19, 1.5e300))))
    _write(f"{o}/segment_naive_timestamp.jsonl", _segment(good, spool_line(*meter_values("u14", "2025-03-10T11:55:00", "1000200"))))
    _write(f"{o}/segment_far_future.jsonl", _segment(good, spool_line(*meter_values("u15", "2099-03-10T11:55:00Z", "1000300"))))
    _write(f"{o}/segment_year_one_timestamp.jsonl", _segment(good, spool_line(*meter_values("u16", "0001-01-01T00:00:00+01:00", "1000300"))))
    _write(f"{o}/segment_duplicate_instant_different.jsonl", _segment(good,
        spool_line(*meter_values("u17", "2025-03-10T11:00:00Z", "1000007"))))
    _write(f"{o}/segment_hostile_ids.jsonl", _segment(
        spool_line(*meter_values("u18", "2025-03-10T11:00:00Z", "2000000"), charge_point_id=SQL_HOSTILE),
        spool_line(*start_transaction("u19", 21, 2000000, id_tag=XSS_SCRIPT), charge_point_id="=cmd|' /C calc'!A0"),
        spool_line([2, "u20", "BootNotification", {"chargePointVendor": XSS_ATTR, "chargePointModel": "<b>",
                    "firmwareVersion": SQL_HOSTILE}], [3, "u20", {"status": "Accepted", "currentTime": TS, "interval": 300}],
                   charge_point_id="ZPR300009")))
    raw_line = spool_line(*start_transaction("u21", 22, 1000000, id_tag="TAG\u00e6")).encode("ascii")
    _write(f"{o}/segment_non_utf8_bytes.jsonl", _segment(good, raw_line.replace(b"TAG\\\\u00e6", b"TAG\xe6\xff")))
    _write(f"{o}/segment_deep_nesting.jsonl", _segment(good, "[" * 50_000))
    _write(f"{o}/segment_bom_first_line.jsonl", b"\xef\xbb\xbf" + _segment(good))
    status = [2, "u22", "StatusNotification", {"connectorId": -1, "errorCode": "NoError", "status": "Charging"}]
    _write(f"{o}/segment_status_negative_connector.jsonl", _segment(good, spool_line(status, [3, "u22", {}])))
    _write(f"{o}/segment_torn_last_line.jsonl", _segment(good)[:-1] + b"\n" + spool_line(*meter_values("u23", "2025-03-10T11:58:00Z", "1000900")).encode()[:40])


# -- OCPP frames as a charge point sends them ----------------------------------------------------


def build_frames() -> None:
    f = "ocpp_frames"
    _write(f"{f}/frame_not_json.txt", '[2, "abc", "Heartbeat", {')
    _write(f"{f}/frame_wrong_type_id.txt", '[7, "abc", "Heartbeat", {}]')
    _write(f"{f}/frame_unique_id_too_long.txt", json.dumps([2, "x" * 200, "Heartbeat", {}]))
    _write(f"{f}/frame_payload_schema_violation.txt", json.dumps([2, "abc", "MeterValues", {"connectorId": "one", "meterValue": []}]))
    _write(f"{f}/frame_huge_meter_start.txt", '[2, "abc", "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 1' + "0" * 400 + ', "timestamp": "2025-03-10T10:00:00Z"}]')
    _write(f"{f}/frame_nan_payload.txt", '[2, "abc", "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": NaN, "timestamp": "2025-03-10T10:00:00Z"}]')
    _write(f"{f}/frame_deep_nesting.txt", '[2, "abc", "DataTransfer", {"vendorId": "x", "data": ' + "[" * 50_000)
    _write(f"{f}/frame_unknown_action.txt", json.dumps([2, "abc", "<script>alert(1)</script>", {}]))
    _write(f"{f}/frame_bigint_literal.txt", '[2, "abc", "Heartbeat", {"x": 1' + "0" * 5000 + "}]")


# -- OCMF records -----------------------------------------------------------------------------------


def build_ocmf() -> None:
    from firmware_ref.ocmf import OcmfSigner, derive_private_key, public_key_pem

    key = derive_private_key("badinput-corpus", "ZPR400001")
    _write("ocmf/_public_key.pem", public_key_pem(key))
    signer = OcmfSigner(key, gateway_id="Zaptec Pro MID", gateway_serial="ZPR400001", gateway_version="5.0.2.1")
    payload = (
        '{"FV":"1.0","GI":"Zaptec Pro MID","GS":"ZPR400001","GV":"5.0.2.1","PG":"T1","MV":"Iskra","MS":"7410",'
        '"IS":true,"IL":"TRUSTED","IF":[],"IT":"CENTRAL","ID":"u-kari","RD":['
        '{"TM":"2025-03-10T16:00:00,000+00:00 R","TX":"B","RV":100.0,"RI":"1-0:1.8.0","RU":"kWh","ST":"G"},'
        '{"TM":"2025-03-10T18:00:00,000+00:00 R","TX":"E","RV":110.0,"RI":"1-0:1.8.0","RU":"kWh","ST":"G"}]}'
    )
    valid = signer.record(payload)
    m = "ocmf"
    _write(f"{m}/record_empty.txt", "   \n")
    _write(f"{m}/record_no_header.txt", valid.replace("OCMF|", "OCNF|", 1))
    _write(f"{m}/record_truncated.txt", valid[: len(valid) // 2])
    _write(f"{m}/record_no_readings.txt", signer.record(payload.replace('"RD":[', '"XD":[')))
    _write(f"{m}/record_nan_value.txt", signer.record(payload.replace('"RV":110.0', '"RV":NaN')))
    _write(f"{m}/record_huge_value.txt", signer.record(payload.replace('"RV":110.0', '"RV":1e400')))
    _write(f"{m}/record_duplicate_keys.txt", signer.record(payload.replace('"GS":"ZPR400001"', '"GS":"ZPR400001","GS":"ZPR999999"')))
    _write(f"{m}/record_latin1.txt", signer.record(payload.replace("u-kari", "u-bjørn")).encode("latin-1"))
    _write(f"{m}/record_bom.txt", b"\xef\xbb\xbf" + valid.encode("utf-8"))
    _write(f"{m}/record_bad_time.txt", signer.record(payload.replace("2025-03-10T18:00:00,000+00:00 R", "10.03.2025 18:00")))
    _write(f"{m}/record_hex_encoded.txt", valid.encode("utf-8").hex())
    _write(f"{m}/record_tampered_value.txt", valid.replace('"RV":110.0', '"RV":190.0'))
    _write(f"{m}/record_register_reset.txt", signer.record(payload.replace('"RV":110.0', '"RV":3.5')))
    _write(f"{m}/record_signature_garbage.txt", valid.rsplit("|", 1)[0] + '|{"SA":"ECDSA-secp384r1-SHA256","SE":"base64","SD":"!!notbase64!!"}')
    _write(f"{m}/record_far_future.txt", signer.record(payload.replace("2025-03-10T18:00:00", "2099-03-10T18:00:00")))
    _write(f"{m}/record_hostile_identification.txt", signer.record(payload.replace('"ID":"u-kari"', '"ID":"<script>alert(1)</script>\'); DROP TABLE sessions; --"')))


# -- tariff TOML --------------------------------------------------------------------------------------

GRID = """
[grid.testnett]
name = "Testnett AS"

[[grid.testnett.periods]]
valid_from = 2025-01-01
energy_nok_per_kwh = {energy}
capacity_method = "three_daily_peaks"
capacity_steps_kw = {steps}
capacity_nok_per_year = [1200, 1800, 2900]
"""


def build_tariffs() -> None:
    t = "tariff"
    good = GRID.format(energy="0.15", steps="[0, 2, 5]")
    _write(f"{t}/tariff_not_toml.toml", good.replace("= 2025-01-01", "= 2025-01-01 [[["))
    _write(f"{t}/tariff_unknown_site_key.toml", "[site]\ncounty = \"Oslo\"\nbank_account = \"1234\"\n" + good)
    _write(f"{t}/tariff_energy_as_text.toml", GRID.format(energy='"0,15"', steps="[0, 2, 5]"))
    _write(f"{t}/tariff_negative_energy.toml", GRID.format(energy="-0.15", steps="[0, 2, 5]"))
    _write(f"{t}/tariff_nan_energy.toml", GRID.format(energy="nan", steps="[0, 2, 5]"))
    _write(f"{t}/tariff_inf_energy.toml", GRID.format(energy="inf", steps="[0, 2, 5]"))
    _write(f"{t}/tariff_huge_energy.toml", GRID.format(energy="1e300", steps="[0, 2, 5]"))
    _write(f"{t}/tariff_valid_from_text.toml", good.replace("valid_from = 2025-01-01", 'valid_from = "1. januar"'))
    _write(f"{t}/tariff_steps_not_increasing.toml", GRID.format(energy="0.15", steps="[0, 5, 2]"))
    _write(f"{t}/tariff_latin1.toml", ("# nettleie for Bjørnøya\n" + good).encode("latin-1"))
    _write(f"{t}/tariff_bom.toml", b"\xef\xbb\xbf" + good.encode("utf-8"))
    _write(f"{t}/tariff_far_future.toml", good.replace("valid_from = 2025-01-01", "valid_from = 9999-12-31"))
    hostile = GRID.format(energy="0.15", steps="[0, 2, 5]").replace(
        "grid.testnett", '"grid"."x\'); DROP TABLE sessions; --"').replace("Testnett AS", XSS_SCRIPT)
    _write(f"{t}/tariff_hostile_company.toml", hostile)


# -- HAN frames and sub-meter CSV (the formats firmware_ref writes) --------------------------------------


def build_han() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from firmware_ref.formats.han import encode_hdlc_frame, kaifa_list_payload

    oslo = ZoneInfo("Europe/Oslo")
    list2 = {"list_type": 2, "power_import_w": 5400, "power_export_w": 0, "reactive_import_var": 0,
             "reactive_export_var": 0, "current_l1_a": 7.5, "current_l2_a": 8.1, "current_l3_a": 7.9,
             "voltage_l1_v": 231.2, "voltage_l2_v": 229.8, "voltage_l3_v": 230.4}
    list3 = {**list2, "list_type": 3, "energy_import_wh": 45_000_000, "energy_export_wh": 0,
             "reactive_energy_import_varh": 0, "reactive_energy_export_varh": 0}

    def line(ts: datetime, reading: dict, *, stamp: str | None = None) -> str:
        frame = encode_hdlc_frame(kaifa_list_payload(reading, "7359992890000001", ts.astimezone(oslo)))
        return f"{stamp or ts.strftime('%Y-%m-%dT%H:%M:%SZ')} {frame.hex()}"

    t0 = datetime(2025, 3, 10, 12, 0, 10, tzinfo=UTC)
    good = line(t0, list2)
    frame_hex = good.split()[1]
    h = "han"
    _write(f"{h}/frames_truncated.hex", good + "\n" + good[: len(good) // 2] + "\n")
    broken = bytearray(bytes.fromhex(frame_hex))
    broken[-3] ^= 0xFF  # last byte of the frame check sequence, before the closing flag
    _write(f"{h}/frames_bad_checksum.hex", good + "\n" + f"2025-03-10T12:00:20Z {bytes(broken).hex()}\n")
    _write(f"{h}/frames_not_hex.hex", good + "\n2025-03-10T12:00:30Z 7ea0zz<script>\n")
    _write(f"{h}/frames_naive_time.hex", line(t0, list2, stamp="2025-03-10T12:00:10") + "\n")
    _write(f"{h}/frames_latin1.hex", (good + "\n# måler Bjørn\n").encode("latin-1"))
    _write(f"{h}/frames_garbage_bytes.hex", bytes(range(256)) * 4)
    hour = datetime(2025, 3, 10, 13, 0, 0, tzinfo=UTC)
    _write(f"{h}/frames_register_reset.hex", "\n".join([
        line(hour, list3), line(hour.replace(hour=14), {**list3, "energy_import_wh": 1_200})]) + "\n")
    _write(f"{h}/frames_dst_repeated_hour.hex", "\n".join([
        line(datetime(2025, 10, 26, 0, 30, tzinfo=UTC), list2),   # 02:30 CEST
        line(datetime(2025, 10, 26, 1, 30, tzinfo=UTC), list2),   # 02:30 CET
    ]) + "\n")
    _write(f"{h}/frames_far_future.hex", line(datetime(2099, 3, 10, 12, 0, tzinfo=UTC), list2) + "\n")


def build_submeter() -> None:
    s = "submeter"
    header = "timestamp,energy_import_kwh,current_l1_a,current_l2_a,current_l3_a\n"
    good = "2025-03-10T12:00:00+01:00,1200.50,7.10,7.20,7.30\n"
    _write(f"{s}/readings_register_reset.csv", header + good + "2025-03-10T12:15:00+01:00,3.20,7.10,7.20,7.30\n")
    _write(f"{s}/readings_negative_energy.csv", header + good + "2025-03-10T12:15:00+01:00,-5.00,0,0,0\n")
    _write(f"{s}/readings_nan_inf.csv", header + good + "2025-03-10T12:15:00+01:00,NaN,inf,-inf,0\n")
    _write(f"{s}/readings_naive_dst_ambiguous.csv", header + "2025-10-26T02:30:00,1200.50,0,0,0\n")
    _write(f"{s}/readings_bom_semicolon.csv", b"\xef\xbb\xbf" + (header + good).replace(",", ";").encode())
    _write(f"{s}/readings_latin1.csv", (header + good + "# måler i garasjen\n").encode("latin-1"))
    _write(f"{s}/readings_truncated.csv", header + good + "2025-03-10T12:15:00+01:00,12")
    _write(f"{s}/readings_duplicate_time_different.csv", header + good + good.replace("1200.50", "1201.00"))
    _write(f"{s}/readings_far_future.csv", header + "2099-03-10T12:00:00+01:00,1200.50,0,0,0\n")
    _write(f"{s}/readings_huge_values.csv", header + "2025-03-10T12:00:00+01:00,1e308,1e308,0,0\n")


# -- hostile inputs: past a reader's limits (the large ones are made at test time) ------------

ENTSOE_NS = "urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3"


def entsoe_day(points: str, *, declaration: str = '<?xml version="1.0" encoding="UTF-8"?>') -> str:
    """An ENTSO-E day-ahead document for NO1 on 2025-03-10 (23:00 to 23:00 UTC, hourly)."""
    return (
        f'{declaration}<Publication_MarketDocument xmlns="{ENTSOE_NS}"><mRID>d</mRID><type>A44</type>'
        "<TimeSeries><mRID>1</mRID><businessType>A62</businessType>"
        '<in_Domain.mRID codingScheme="A01">10YNO-1--------2</in_Domain.mRID>'
        "<currency_Unit.name>EUR</currency_Unit.name><price_Measure_Unit.name>MWH</price_Measure_Unit.name>"
        "<curveType>A03</curveType><Period><timeInterval><start>2025-03-09T23:00Z</start>"
        "<end>2025-03-10T23:00Z</end></timeInterval><resolution>PT60M</resolution>"
        f"{points}</Period></TimeSeries></Publication_MarketDocument>"
    )


def build_limits() -> None:
    point = "<Point><position>{}</position><price.amount>{}</price.amount></Point>"
    first = point.format(1, "42.5")
    _write("prices/entsoe_huge_position.xml", entsoe_day(first + point.format("99999999999999999999", "1")))
    _write("prices/entsoe_not_utf8.xml", b"\xff\xfe" + entsoe_day(first).encode("utf-16-le")[:4000])
    _write("prices/entsoe_latin1_undeclared.xml", entsoe_day(first + "<!-- m\u00e5ned -->").encode("latin-1"))
    _write("prices/entsoe_period_of_centuries.xml", entsoe_day(first).replace(
        "2025-03-09T23:00Z", "1000-01-01T00:00Z").replace("2025-03-10T23:00Z", "9000-01-01T00:00Z"))
    _write("prices/day_deep_nesting.json", "[" * 200 + "]" * 200)
    header = "timestamp,energy_import_kwh,current_l1_a,current_l2_a,current_l3_a\n"
    good = "2025-03-10T12:00:00+01:00,1200.50,7.10,7.20,7.30\n"
    _write("submeter/readings_field_over_csv_limit.csv",
           header + good + "2025-03-10T12:15:00+01:00,1201" + "0" * 140_000 + ",0,0,0\n")
    _write("submeter/readings_garbage.csv", bytes((n * 7919 + 13) % 256 for n in range(64 * 1024)))


def main() -> None:
    for child in CORPUS.iterdir() if CORPUS.exists() else ():
        if child.is_dir():
            shutil.rmtree(child)
    build_zaptec()
    build_prices()
    build_portal()
    build_ocpp()
    build_frames()
    build_ocmf()
    build_tariffs()
    build_han()
    build_submeter()
    build_limits()
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.name != "manifest.toml"
             and not any(part.startswith("_") for part in p.relative_to(CORPUS).parts)]
    print(f"{len(files)} corpus inputs written under {CORPUS}")


if __name__ == "__main__":
    main()
