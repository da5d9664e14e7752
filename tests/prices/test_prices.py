"""Spot prices from hvakosterstrommen.no JSON and ENTSO-E XML: DST days, 15-minute days, bad input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from zapanalytics.cli import app
from zapanalytics.ingest.prices.spot import (
    PriceFileError,
    coverage_problems,
    delivery_day_utc,
    intervals_in_day,
    load_prices,
    parse_entsoe,
)
from zapanalytics.store import open_store
from zapanalytics.testing import store_snapshot

OSLO = ZoneInfo("Europe/Oslo")
EXR = 11.5


def day_rows(day: dt.date, minutes: int) -> list[dict]:
    """A day in the hvakosterstrommen.no shape: local offsets, one row per interval."""
    start, end = delivery_day_utc(day)
    rows, slot, n = [], start, 0
    while slot < end:
        nok = round(0.4 + 0.013 * n, 5)
        rows.append(
            {
                "NOK_per_kWh": nok,
                "EUR_per_kWh": round(nok / EXR, 5),
                "EXR": EXR,
                "time_start": slot.astimezone(OSLO).isoformat(),
                "time_end": (slot + dt.timedelta(minutes=minutes)).astimezone(OSLO).isoformat(),
            }
        )
        slot += dt.timedelta(minutes=minutes)
        n += 1
    return rows


def write_day(root: Path, day: dt.date, minutes: int, area: str = "NO1", rows=None) -> Path:
    path = root / "prices" / area / f"{day:%Y-%m-%d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(day_rows(day, minutes) if rows is None else rows))
    return path


@pytest.fixture
def con(tmp_path):
    con = open_store(tmp_path / "prices.duckdb")
    yield con
    con.close()


def _stored(con, day: dt.date):
    first, last = delivery_day_utc(day)
    return con.execute(
        "SELECT start_utc, end_utc, spot_nok_per_kwh, source FROM prices"
        " WHERE start_utc >= ? AND start_utc < ? ORDER BY start_utc",
        [first, last],
    ).fetchall()


@pytest.mark.parametrize(
    ("day", "minutes", "expected"),
    [
        (dt.date(2025, 3, 30), 60, 23),  # spring forward: 02:00-03:00 does not exist
        (dt.date(2025, 10, 26), 60, 25),  # fall back: 02:00-03:00 happens twice
        (dt.date(2025, 3, 31), 60, 24),
        (dt.date(2025, 10, 1), 15, 96),  # first day of 15-minute day-ahead prices
        (dt.date(2025, 10, 26), 15, 100),
        (dt.date(2026, 3, 29), 15, 92),
    ],
)
def test_hvakosterstrommen_day_loads_whole(con, tmp_path, day, minutes, expected):
    write_day(tmp_path, day, minutes)
    result = load_prices(con, area="NO1", first_day=day, last_day=day, source=tmp_path)
    assert result.problems == [] and result.missing_days == [] and result.days_loaded == [day]
    assert result.counts.rows_stored == expected == intervals_in_day(day, minutes)
    rows = _stored(con, day)
    assert len(rows) == expected
    first, last = delivery_day_utc(day)
    assert rows[0][0] == first and rows[-1][1] == last
    assert all(a[1] == b[0] for a, b in zip(rows, rows[1:], strict=False))  # contiguous
    assert {r[3] for r in rows} == {"hvakosterstrommen"}


def test_fall_back_day_keeps_both_two_oclock_hours(con, tmp_path):
    day = dt.date(2025, 10, 26)
    write_day(tmp_path, day, 60)
    load_prices(con, area="NO1", first_day=day, last_day=day, source=tmp_path)
    local = [start.astimezone(OSLO) for start, *_ in _stored(con, day)]
    assert [t.hour for t in local][:5] == [0, 1, 2, 2, 3]
    assert local[2].utcoffset() == dt.timedelta(hours=2)
    assert local[3].utcoffset() == dt.timedelta(hours=1)
    assert day_rows(day, 60)[3]["time_start"] == "2025-10-26T02:00:00+01:00"


def test_spring_forward_day_has_no_two_oclock(con, tmp_path):
    day = dt.date(2025, 3, 30)
    write_day(tmp_path, day, 60)
    load_prices(con, area="NO1", first_day=day, last_day=day, source=tmp_path)
    hours = [start.astimezone(OSLO).hour for start, *_ in _stored(con, day)]
    assert hours[:4] == [0, 1, 3, 4] and 2 not in hours


def test_missing_days_and_hours_are_reported(con, tmp_path):
    write_day(tmp_path, dt.date(2025, 3, 1), 60)
    gappy = day_rows(dt.date(2025, 3, 3), 60)
    del gappy[5]
    write_day(tmp_path, dt.date(2025, 3, 3), 60, rows=gappy)
    result = load_prices(
        con,
        area="NO1",
        first_day=dt.date(2025, 3, 1),
        last_day=dt.date(2025, 3, 3),
        source=tmp_path,
    )
    assert result.missing_days == [dt.date(2025, 3, 2)]
    assert result.days_loaded == [dt.date(2025, 3, 1), dt.date(2025, 3, 3)]
    assert result.problems == [
        "2025-03-03: 23 prices, expected 24 of 60 min",
        "2025-03-03: no price from 04:00 to 05:00 UTC",
    ]


def test_bad_rows_are_quarantined_and_counted(con, tmp_path):
    day = dt.date(2025, 4, 2)
    rows = day_rows(day, 60)
    rows[0]["time_start"] = "2025-04-02T00:00:00"  # naive: refused
    rows[1]["NOK_per_kWh"] = float("nan")
    rows[2]["NOK_per_kWh"] = "1,23"
    rows[3]["time_end"] = rows[3]["time_start"]
    rows[4]["NOK_per_kWh"] = 1e6  # a unit error the schema refuses
    path = write_day(tmp_path, day, 60, rows=rows)
    assert "NaN" in path.read_text()  # JSON has no NaN, but Python (and some servers) write it
    result = load_prices(con, area="NO1", first_day=day, last_day=day, source=tmp_path)
    counts = result.counts
    assert (counts.rows_in, counts.rows_stored, counts.rows_quarantined) == (24, 19, 5)
    reasons = [
        r[0] for r in con.execute("SELECT reason FROM quarantine ORDER BY reason").fetchall()
    ]
    assert any("naive timestamp" in r for r in reasons)
    assert any("not a finite number" in r for r in reasons)
    assert any("expected a number, got str" in r for r in reasons)
    assert any("not after time_start" in r for r in reasons)
    assert any("spot_nok_per_kwh" in r for r in reasons)
    assert "2025-04-02: 19 prices, expected 24 of 60 min" in result.problems


def test_unreadable_file_is_quarantined_whole(con, tmp_path):
    day = dt.date(2025, 4, 3)
    path = write_day(tmp_path, day, 60)
    path.write_text('[{"NOK_per_kWh": 0.5, "time_st')
    result = load_prices(con, area="NO1", first_day=day, last_day=day, source=tmp_path)
    raw = con.execute("SELECT raw, reason, source_file FROM quarantine").fetchall()
    assert raw[0][0] == '[{"NOK_per_kWh": 0.5, "time_st'
    assert raw[0][1].startswith("2025-04-03.json: not JSON") and raw[0][2] == str(path)
    assert result.missing_days == [day] and result.counts.rows_quarantined == 1
    assert con.execute("SELECT status FROM ingest_runs").fetchall() == [("partial",)]


def test_reloading_is_idempotent(con, tmp_path):
    day = dt.date(2025, 10, 26)
    write_day(tmp_path, day, 15)
    load_prices(con, area="NO1", first_day=day, last_day=day, source=tmp_path)
    before = store_snapshot(con, ("prices",))
    load_prices(con, area="NO1", first_day=day, last_day=day, source=tmp_path)
    assert store_snapshot(con, ("prices",)) == before and len(before["prices"]) == 100


def test_hvakosterstrommen_file_layout_is_found(con, tmp_path):
    day = dt.date(2025, 5, 17)
    path = tmp_path / "2025" / "05-17_NO2.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(day_rows(day, 60)))
    result = load_prices(con, area="NO2", first_day=day, last_day=day, source=tmp_path)
    assert result.counts.rows_stored == 24


# -- ENTSO-E ---------------------------------------------------------------------------------

NS = "urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3"


def entsoe_document(series: list[str]) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<Publication_MarketDocument xmlns="{NS}">'
        "<mRID>doc</mRID><type>A44</type>" + "".join(series) + "</Publication_MarketDocument>"
    )


def entsoe_series(
    start: dt.datetime,
    end: dt.datetime,
    resolution: str,
    points: dict[int, float],
    *,
    curve: str = "A03",
    eic: str = "10YNO-1--------2",
    mrid: str = "1",
) -> str:
    fmt = "%Y-%m-%dT%H:%MZ"
    body = "".join(
        f"<Point><position>{p}</position><price.amount>{v}</price.amount></Point>"
        for p, v in sorted(points.items())
    )
    return (
        f"<TimeSeries><mRID>{mrid}</mRID><businessType>A62</businessType>"
        f'<in_Domain.mRID codingScheme="A01">{eic}</in_Domain.mRID>'
        f'<out_Domain.mRID codingScheme="A01">{eic}</out_Domain.mRID>'
        "<currency_Unit.name>EUR</currency_Unit.name><price_Measure_Unit.name>MWH</price_Measure_Unit.name>"
        f"<curveType>{curve}</curveType><Period><timeInterval><start>{start:{fmt}}</start>"
        f"<end>{end:{fmt}}</end></timeInterval><resolution>{resolution}</resolution>{body}</Period>"
        "</TimeSeries>"
    )


def test_entsoe_a03_gaps_repeat_the_previous_price_on_the_spring_dst_day():
    start, end = delivery_day_utc(dt.date(2025, 3, 30))
    assert (end - start) == dt.timedelta(hours=23)
    document = entsoe_document(
        [entsoe_series(start, end, "PT60M", {1: 50.0, 2: 42.5, 5: 61.0, 23: 70.0})]
    )
    parsed = parse_entsoe(document, area="NO1")
    prices = [row["spot_eur_per_kwh"] for row in parsed.rows]
    assert len(prices) == 23
    assert prices[:6] == [0.05, 0.0425, 0.0425, 0.0425, 0.061, 0.061]
    assert prices[-1] == 0.07
    assert parsed.rows[0]["start_utc"] == start and parsed.rows[-1]["end_utc"] == end
    assert all(row["spot_nok_per_kwh"] is None for row in parsed.rows)


def test_entsoe_a01_gap_stays_a_gap():
    start, end = delivery_day_utc(dt.date(2025, 6, 2))
    document = entsoe_document(
        [entsoe_series(start, end, "PT60M", {p: 30.0 for p in range(1, 25) if p != 7}, curve="A01")]
    )
    parsed = parse_entsoe(document, area="NO1")
    assert len(parsed.rows) == 23
    problems = coverage_problems(
        [r["start_utc"] for r in parsed.rows],
        [r["end_utc"] for r in parsed.rows],
        dt.date(2025, 6, 2),
    )
    assert "2025-06-02: no price from 04:00 to 05:00 UTC" in problems


def test_entsoe_keeps_the_finer_resolution_and_loads_with_an_exchange_rate(con, tmp_path):
    day = dt.date(2025, 10, 26)
    start, end = delivery_day_utc(day)
    quarters = {p: 40.0 + p / 10 for p in range(1, 101)}
    hours = {p: 99.0 for p in range(1, 26)}
    document = entsoe_document(
        [
            entsoe_series(start, end, "PT15M", quarters, mrid="1"),
            entsoe_series(start, end, "PT60M", hours, mrid="2"),
            entsoe_series(start, end, "PT60M", hours, eic="10YSE-1--------K", mrid="3"),
        ]
    )
    (tmp_path / "entsoe").mkdir()
    (tmp_path / "entsoe" / "day_ahead.xml").write_text(document)
    result = load_prices(
        con, area="NO1", first_day=day, last_day=day, source=tmp_path, eur_nok=11.0
    )
    assert result.skipped_points == 25 and result.problems == []
    rows = con.execute(
        "SELECT end_utc - start_utc, spot_eur_per_kwh, spot_nok_per_kwh, source FROM prices ORDER BY start_utc"
    ).fetchall()
    assert len(rows) == 100
    assert {r[0] for r in rows} == {dt.timedelta(minutes=15)}
    assert rows[0][1] == pytest.approx(0.0401) and rows[0][2] == pytest.approx(0.0401 * 11.0)
    assert {r[3] for r in rows} == {"entsoe"}


def test_entsoe_refusals(con, tmp_path):
    ack = (
        '<Acknowledgement_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0">'
        "<Reason><code>999</code><text>No matching data found</text></Reason></Acknowledgement_MarketDocument>"
    )
    (tmp_path / "ack.xml").write_text(ack)
    (tmp_path / "evil.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><Publication_MarketDocument/>'
    )
    day = dt.date(2025, 6, 1)
    result = load_prices(con, area="NO1", first_day=day, last_day=day, source=tmp_path)
    assert "ack.xml: ENTSO-E answered with no data: No matching data found" in result.problems
    assert "evil.xml: XML with a DTD or entities is refused" in result.problems
    assert result.counts.rows_quarantined == 2 and result.missing_days == [day]


def test_entsoe_point_outside_the_period_is_quarantined():
    start, end = delivery_day_utc(dt.date(2025, 6, 2))
    document = entsoe_document([entsoe_series(start, end, "PT60M", {1: 10.0, 30: 11.0})])
    parsed = parse_entsoe(document, area="NO1")
    assert len(parsed.rows) == 24  # A03 fills 2..24 from position 1
    assert [r.reason for r in parsed.rejected] == ["Point position '30' outside 1..24"]


# -- CLI -------------------------------------------------------------------------------------


def test_cli_ingest_prices(tmp_path):
    for day in (dt.date(2025, 3, 29), dt.date(2025, 3, 30)):
        write_day(tmp_path / "src", day, 60)
    db = str(tmp_path / "zap.duckdb")
    runner = CliRunner()
    args = [
        "ingest",
        "prices",
        "--db",
        db,
        "--area",
        "NO1",
        "--from",
        "2025-03-29",
        "--to",
        "2025-03-31",
    ]
    result = runner.invoke(app, [*args, "--source", str(tmp_path / "src")])
    assert result.exit_code == 0, result.output
    assert (
        "NO1: 2 day(s) with prices, 1 missing; records in 47, stored 47, quarantined 0"
        in result.output
    )
    assert "missing: 2025-03-31" in result.output
    result = runner.invoke(app, [*args, "--source", str(tmp_path / "src"), "--json"])
    payload = json.loads(result.output)
    assert payload["days_loaded"] == ["2025-03-29", "2025-03-30"] and payload["rows_stored"] == 47

    bad = runner.invoke(
        app,
        [
            "ingest",
            "prices",
            "--db",
            db,
            "--area",
            "SE3",
            "--from",
            "2025-03-29",
            "--to",
            "2025-03-29",
            "--source",
            str(tmp_path),
        ],
    )
    assert bad.exit_code != 0 and "--area must be one of" in str(bad.exception) + bad.output
    backwards = runner.invoke(
        app,
        [
            "ingest",
            "prices",
            "--db",
            db,
            "--area",
            "NO1",
            "--from",
            "2025-03-29",
            "--to",
            "2025-03-28",
            "--source",
            str(tmp_path),
        ],
    )
    assert "--to is before --from" in str(backwards.exception) + backwards.output


# -- hostile files: one bad file never sinks the run ------------------------------------------


def test_a_non_utf8_xml_and_a_folder_are_quarantined_by_name_and_the_day_file_loads(con, tmp_path):
    day = dt.date(2025, 3, 10)
    write_day(tmp_path, day, 60)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "binary.xml").write_bytes(b"\xff\xfe\x00<garbage" + bytes(range(256)))
    (tmp_path / "junk" / "folder.xml").mkdir()
    result = load_prices(con, area="NO1", first_day=day, last_day=day, source=tmp_path)
    assert result.counts.rows_stored == 24 and result.days_loaded == [day]
    reasons = sorted(r[0] for r in con.execute("SELECT reason FROM quarantine").fetchall())
    assert reasons[0].startswith("binary.xml: not UTF-8 text (byte 0xff at offset 0)")
    assert reasons[1] == "folder.xml: is a directory, not a file"
    assert not any("codec" in r or "Errno" in r for r in reasons)
    assert con.execute("SELECT status FROM ingest_runs").fetchall() == [("partial",)]


def test_a_declared_latin1_entsoe_document_is_read():
    start, end = delivery_day_utc(dt.date(2025, 6, 2))
    text = entsoe_document([entsoe_series(start, end, "PT60M", {1: 10.0})])
    text = text.replace("<Publication_MarketDocument", "<!-- m\u00e5ned --><Publication_MarketDocument", 1)
    data = ('<?xml version="1.0" encoding="ISO-8859-1"?>' + text.split("?>", 1)[-1]).encode("latin-1")
    assert len(parse_entsoe(data, area="NO1").rows) == 24


def test_a_huge_point_position_is_one_quarantined_record():
    start, end = delivery_day_utc(dt.date(2025, 6, 2))
    document = entsoe_document([entsoe_series(start, end, "PT60M", {1: 10.0})]).replace(
        "</Period>", "<Point><position>99999999999999999999</position><price.amount>1</price.amount></Point></Period>"
    )
    parsed = parse_entsoe(document, area="NO1")
    assert len(parsed.rows) == 24
    assert [r.reason for r in parsed.rejected] == ["Point position '99999999999999999999' outside 1..24"]


def test_a_period_of_centuries_is_refused_before_it_is_walked():
    start = dt.datetime(1000, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
    document = entsoe_document([entsoe_series(start, end, "PT15M", {1: 10.0})])
    with pytest.raises(PriceFileError, match="is not a period of up to 400 days"):
        parse_entsoe(document, area="NO1")
