"""MID sub-meter CSV into reference readings: offsets, local times, bad rows, charger mapping."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zapanalytics.ingest.door import IngestRun, frame_for
from zapanalytics.ingest.meters.submeter import SubmeterError, ingest_submeter, parse_timestamp
from zapanalytics.store import open_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    con = open_store(tmp_path / "store.duckdb")
    yield con
    con.close()


def _rows(con):
    return con.execute(
        "SELECT meter_id, ts_utc, energy_import_kwh, current_l1_a, charger_id, energy_resolution_kwh"
        " FROM reference_readings ORDER BY ts_utc"
    ).fetchall()


def test_readings_with_offsets_across_the_autumn_change(tmp_path, store):
    csv = tmp_path / "MID-1.csv"
    csv.write_text(
        "timestamp,energy_import_kwh,current_l1_a,current_l2_a,current_l3_a\n"
        "2025-10-26T02:30:00+02:00,100.00,16.0,16.1,15.9\n"
        "2025-10-26T02:30:00+01:00,101.50,16.0,16.0,16.0\n"
        "2025-10-26T03:00:00+01:00,102.25,,,\n"
    )
    counts = ingest_submeter(store, [csv], resolution_kwh=0.01)
    assert (counts.rows_stored, counts.rows_quarantined) == (3, 0)
    rows = _rows(store)
    assert [r[1] for r in rows] == [
        dt.datetime(2025, 10, 26, 0, 30, tzinfo=dt.UTC),
        dt.datetime(2025, 10, 26, 1, 30, tzinfo=dt.UTC),
        dt.datetime(2025, 10, 26, 2, 0, tzinfo=dt.UTC),
    ]
    assert [r[2] for r in rows] == [100.0, 101.5, 102.25]
    assert rows[2][3] is None and rows[0][5] == 0.01 and rows[0][0] == "MID-1"


def test_local_times_need_a_zone_and_the_repeated_hour_is_refused():
    oslo = __import__("zoneinfo").ZoneInfo("Europe/Oslo")
    with pytest.raises(SubmeterError, match="no UTC offset"):
        parse_timestamp("2025-10-26T01:30:00", None)
    assert parse_timestamp("2025-10-26T01:30:00", oslo) == dt.datetime(2025, 10, 25, 23, 30, tzinfo=dt.UTC)
    with pytest.raises(SubmeterError, match="happens twice"):
        parse_timestamp("2025-10-26T02:30:00", oslo)
    with pytest.raises(SubmeterError, match="does not exist"):
        parse_timestamp("2025-03-30T02:30:00", oslo)


def test_bad_rows_are_quarantined_and_counted(tmp_path, store):
    csv = tmp_path / "MID-2.csv"
    csv.write_bytes(
        "\ufefftimestamp,energy_kwh,current_l1_a\n"
        "2025-01-01T00:00:00Z,10.00,1\n"
        "2025-01-01T00:15:00Z,10,50,2\n"              # a decimal comma splits the field
        "2025-01-01T00:30:00,10.75,3\n"               # no offset
        "2025-01-01T00:45:00Z,lots,4\n"               # not a number
        "2025-01-01T01:00:00Z,nan,5\n"                # not finite
        "2025-01-01T01:15:00Z,9.50,6\n"               # register went backwards
        "2025-01-01T01:30:00Z,-1,7\n"                 # negative
        "2099-01-01T00:00:00Z,12.00,8\n"              # far future
        "2025-01-01T01:45:00Z,11.00,9\n".encode()
    )
    counts = ingest_submeter(store, [csv])
    assert counts.rows_in == 9 == counts.rows_stored + counts.rows_quarantined
    assert counts.rows_stored == 2
    reasons = "\n".join(r[0] for r in store.execute("SELECT reason FROM quarantine").fetchall())
    for expected in ("more fields than header", "no UTC offset", "'lots' is not a number", "not a finite",
                     "energy_import_kwh decreased: 9.5 kWh", "energy_import_kwh: failed",
                     "plausible_time"):
        assert expected in reasons
    assert [r[2] for r in _rows(store)] == [10.0, 11.0]


def test_meters_json_maps_the_meter_to_the_stored_charger(tmp_path, store):
    cloud_id = "c0000000-0000-4000-8000-00000000000a"
    with IngestRun(store, "zaptec_files") as run:
        run.admit(["{}"], {"chargers": frame_for("chargers", [{
            "charger_id": cloud_id, "device_id": "ZPR100001", "installation_id": "inst-1", "_record": 0}])},
            record_table="chargers")
    (tmp_path / "meters.json").write_text(json.dumps({"MID-9": {"device_id": "ZPR100001", "resolution_kwh": 0.01}}))
    (tmp_path / "MID-9.csv").write_text("timestamp,energy_import_kwh\n2025-01-01T00:00:00Z,5.00\n")
    ingest_submeter(store, [tmp_path])
    [(meter, _, energy, _, charger, resolution)] = _rows(store)
    assert (meter, energy, charger, resolution) == ("MID-9", 5.0, cloud_id, 0.01)
    [(installation,)] = store.execute("SELECT installation_id FROM reference_readings").fetchall()
    assert installation == "inst-1"


def test_a_file_without_the_needed_columns_is_quarantined_whole_and_the_run_is_partial(tmp_path, store):
    odd = tmp_path / "odd.csv"
    odd.write_text("time,value\n2025-01-01T00:00:00Z,1\n2025-01-01T00:15:00Z,2\n")
    good = tmp_path / "good.csv"
    good.write_text("timestamp,energy_import_kwh\n2025-01-01T00:00:00Z,1\n")
    counts = ingest_submeter(store, [odd, good])
    assert (counts.rows_in, counts.rows_stored, counts.rows_quarantined) == (2, 1, 1)
    reason, source_file, size = store.execute(
        "SELECT reason, source_file, raw_size_bytes FROM quarantine").fetchall()[0]
    assert reason.startswith("odd.csv: needs the columns timestamp")
    assert source_file == str(odd) and size == odd.stat().st_size
    assert store.execute("SELECT status FROM ingest_runs").fetchall() == [("partial",)]


def test_a_folder_and_a_missing_file_are_quarantined_by_name_and_the_rest_loads(tmp_path, store):
    meters = tmp_path / "meters"
    (meters / "looks_like.csv").mkdir(parents=True)  # a folder where the glob expects a file
    good = meters / "good.csv"
    good.write_text("timestamp,energy_import_kwh\n2025-01-01T00:00:00Z,1\n")
    counts = ingest_submeter(store, [meters, tmp_path / "gone.csv"])
    assert (counts.rows_in, counts.rows_stored, counts.rows_quarantined) == (3, 1, 2)
    reasons = sorted(r[0] for r in store.execute("SELECT reason FROM quarantine").fetchall())
    assert reasons[0].endswith("gone.csv: no such file")
    assert reasons[1].endswith("looks_like.csv: is a directory, not a file")
    assert not any("Errno" in r for r in reasons)


def test_a_long_field_and_a_long_line_cost_their_record_only(tmp_path, store):
    from zapanalytics.ingest.limits import InputLimits

    path = tmp_path / "MID-2.csv"
    with path.open("w") as handle:
        handle.write("timestamp,energy_import_kwh\n")
        handle.write("2025-01-01T00:00:00Z,1\n")
        handle.write("2025-01-01T00:15:00Z," + "9" * 200_000 + "\n")  # past Python's csv limit
        handle.write("2025-01-01T00:30:00Z,\"" + "x" * 3_000_000 + "\"\n")  # past the line limit
        handle.write("2025-01-01T00:45:00Z,2\n")
    counts = ingest_submeter(store, [path], limits=InputLimits(max_line_bytes=2_000_000))
    assert (counts.rows_in, counts.rows_stored, counts.rows_quarantined) == (4, 2, 2)
    rows = store.execute(
        "SELECT reason, raw_size_bytes, raw_truncated, length(raw), source_file FROM quarantine ORDER BY reason"
    ).fetchall()
    assert rows[0][0].startswith("MID-2.csv:3: field 2 has 200,000 characters, over the limit of 10,000")
    assert rows[1][0].startswith("MID-2.csv:4: line of 3,000,023 bytes, over the limit of 2,000,000")
    assert rows[1][1] == 3_000_023 and rows[1][2] is True and rows[1][3] <= 4096
    assert rows[1][4] == str(path)
def test_cli_loads_the_bundled_sample_meters(tmp_path):
    sample = ROOT / "data" / "sample"
    if not (sample / "submeter").is_dir() or not (sample / "han").is_dir():
        pytest.skip("no bundled sample meters")
    db = tmp_path / "s.duckdb"
    cli = [sys.executable, "-c", "from zapanalytics.cli import main; main()"]
    env = {**os.environ, "COLUMNS": "200"}
    for command in (["ingest", "submeter", str(sample / "submeter")], ["ingest", "han", str(sample / "han")]):
        done = subprocess.run([*cli, *command, "--db", str(db), "--json"], cwd=ROOT, capture_output=True,
                              text=True, env=env, timeout=180)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["rows_in"] == report["rows_stored"] > 100
    bad = subprocess.run([*cli, "ingest", "han", str(sample / "han"), "--db", str(db), "--timezone", "Mars/Olympus"],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=180)
    assert bad.returncode == 2 and "IANA" in bad.stderr and "Traceback" not in bad.stderr
    con = open_store(db)
    kinds = dict(con.execute("SELECT kind, count(*) FROM reference_readings GROUP BY kind").fetchall())
    con.close()
    assert set(kinds) == {"han", "submeter"}


def test_a_file_of_junk_lines_under_a_good_header_is_quarantined_whole_not_line_by_line(tmp_path, store):
    junk = tmp_path / "junk.csv"
    junk.write_text("timestamp,energy_import_kwh\n" + "".join(f"noise{n},??\n" for n in range(30_000)))
    counts = ingest_submeter(store, [junk])
    assert (counts.rows_in, counts.rows_quarantined) == (1, 1)
    (reason, size), = store.execute("SELECT reason, raw_size_bytes FROM quarantine").fetchall()
    assert reason.startswith("junk.csv: none of the first 10,000 records is a reading (line 2: timestamp 'noise0'")
    assert size == junk.stat().st_size


def test_junk_lines_before_a_reading_are_quarantined_one_by_one(tmp_path, store):
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("timestamp,energy_import_kwh\n" + "".join(f"noise{n},??\n" for n in range(50))
                     + "2025-01-01T00:00:00Z,1\n")
    counts = ingest_submeter(store, [mixed])
    assert (counts.rows_in, counts.rows_stored, counts.rows_quarantined) == (51, 1, 50)
