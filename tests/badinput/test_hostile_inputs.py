"""Hostile inputs too large to check in: bounded memory and time, one line or quarantine.

Each case is made in a temporary directory (garbage, a huge single line, zip bombs of
several ratios, deep nesting, a 2 GB sparse file, a folder where a file belongs) and run
through the real CLI, one forked process per case (``cli_driver.py``), whose peak resident
memory is taken from ``wait4`` (what GNU ``time -f %M`` reports). Every case must end within
60 s, at most 1.5 GB, without a traceback, either with one line ``error: ...`` naming the
file (and the limit) or with the file quarantined and the count rule holding.

Memory must not grow with the size of a bad file: the same case at 20 MB and at 100 MB
(200 MB in the slow profile) peaks within 50 MB. Forked children start with the driver's
own pages, so only differences between cases and the 1.5 GB ceiling are asserted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from .corpus_readers import BASE_DUMP

DRIVER = Path(__file__).resolve().parent / "cli_driver.py"
REPO = Path(__file__).resolve().parents[2]
MB = 1024 * 1024
#: The ceiling every case must stay under [kB] and its deadline [s].
MAX_RSS_KB = int(1.5 * 1024 * 1024)
DEADLINE_S = 60
#: Two sizes of the same bad input may differ by less than this in peak memory [kB].
FLAT_KB = 50 * 1024
DEFAULT_SIZES_MB = (20, 100)
SLOW_SIZES_MB = (200,)
HEADER = "timestamp,energy_import_kwh,current_l1_a,current_l2_a,current_l3_a\n"
GOOD_READING = "2025-03-10T12:00:00+01:00,1200.50,7.10,7.20,7.30\n"
DAY = "2025-03-10"


# -- making the inputs ---------------------------------------------------------------------


def garbage(scratch: Path, size_mb: int) -> Path:
    """``size_mb`` of random bytes, made once per size and hard-linked into each case."""
    path = scratch / f"garbage_{size_mb}MB.bin"
    if not path.exists():
        with path.open("wb") as handle:
            for _ in range(size_mb):
                handle.write(os.urandom(MB))
    return path


def placed(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)
    return target


def sparse(target: Path, size: str = "2G") -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("truncate"):
        subprocess.run(["truncate", "-s", size, str(target)], check=True)
    else:  # pragma: no cover - coreutils is on every supported machine
        with target.open("wb") as handle:
            handle.truncate(2 * 1024 * MB)
    return target


def huge_line(target: Path, size_mb: int, *, head: str, tail: str, prefix: str, digit: bytes) -> Path:
    """A file whose one middle line is ``size_mb`` long."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        handle.write(head.encode() + prefix.encode())
        block = digit * MB
        for _ in range(size_mb):
            handle.write(block)
        handle.write(b"\n" + tail.encode())
    return target


def price_source(root: Path) -> Path:
    """A price directory with one good NO1 day file for 2025-03-10."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    oslo = ZoneInfo("Europe/Oslo")
    start = dt.datetime(2025, 3, 10, tzinfo=oslo)
    rows = [
        {"NOK_per_kWh": 0.5, "EUR_per_kWh": 0.04, "EXR": 11.5,
         "time_start": (start + dt.timedelta(hours=h)).isoformat(),
         "time_end": (start + dt.timedelta(hours=h + 1)).isoformat()}
        for h in range(24)
    ]
    day = root / "prices" / "NO1" / f"{DAY}.json"
    day.parent.mkdir(parents=True, exist_ok=True)
    day.write_text(json.dumps(rows))
    return root


def zaptec_dump(root: Path) -> Path:
    shutil.copytree(BASE_DUMP, root)
    return root


def sheet_xml_bomb(target: Path, rows: int, *, distinct: bool) -> Path:
    """An XLSX whose one sheet holds ``rows`` rows: identical rows compress ~1000-fold,
    numbered ones 20- to 60-fold."""
    target.parent.mkdir(parents=True, exist_ok=True)
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        "</Types>"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )
    workbook = (
        '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="Sessions" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    workbook_rels = (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        "</Relationships>"
    )
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", content_types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
                        b'spreadsheetml/2006/main"><sheetData>'
                        b'<row><c t="inlineStr"><is><t>Energy (kWh)</t></is></c></row>')
            batch = 10_000
            for first in range(0, rows, batch):
                if distinct:
                    chunk = "".join(f"<row><c><v>{n}.{n % 97}</v></c></row>" for n in range(first, first + batch))
                else:
                    chunk = "<row><c><v>1</v></c></row>" * batch
                sheet.write(chunk.encode())
            sheet.write(b"</sheetData></worksheet>")
    return target


# -- the cases -----------------------------------------------------------------------------
# A case: (argv, expectation) built in a directory; the expectation checks the CLI result.

Expectation = Callable[[dict], None]


def one_line_error(*patterns: str) -> Expectation:
    def check(result: dict) -> None:
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["exit_code"] in (1, 2), result
        assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
        for pattern in patterns:
            assert re.search(pattern, lines[0]), lines[0]
        for raw in ("Errno", "codec can't", "field larger than field limit", "Python int too large",
                    "TransactionContext", "panicked"):
            assert raw not in lines[0], lines[0]

    return check


def quarantined(count: int, stored: int | None = None) -> Expectation:
    def check(result: dict) -> None:
        assert result["exit_code"] == 0, result
        assert result["stderr"].strip() == "", result["stderr"]
        document = json.loads(result["stdout"])
        assert document["rows_in"] == document["rows_stored"] + document["rows_quarantined"]
        assert document["rows_quarantined"] == count, document
        if stored is not None:
            assert document["rows_stored"] == stored, document

    return check


def _db(case_dir: Path) -> str:
    return str(case_dir / "store.duckdb")


def submeter_garbage(case_dir: Path, scratch: Path, size_mb: int):
    csv = placed(garbage(scratch, size_mb), case_dir / "meters" / "MID-1.csv")
    return ["ingest", "submeter", str(csv), "--db", _db(case_dir), "--json"], quarantined(1, 0)


def submeter_text_junk(case_dir: Path, scratch: Path, size_mb: int):
    """A good header over ``size_mb`` of short junk lines (millions of records)."""
    csv = case_dir / "meters" / "MID-4.csv"
    csv.parent.mkdir(parents=True)
    block = "".join(f"junk-{n:07d},not a number,,,\n" for n in range(40_000)).encode()
    with csv.open("wb") as handle:
        handle.write(HEADER.encode())
        while handle.tell() < size_mb * MB:
            handle.write(block)
    return ["ingest", "submeter", str(csv), "--db", _db(case_dir), "--json"], quarantined(1, 0)


def submeter_huge_line(case_dir: Path, scratch: Path, size_mb: int):
    csv = huge_line(case_dir / "meters" / "MID-2.csv", size_mb, head=HEADER + GOOD_READING,
                    prefix="2025-03-10T12:15:00+01:00,", digit=b"7",
                    tail="2025-03-10T12:30:00+01:00,1201.00,0,0,0\n")
    return ["ingest", "submeter", str(csv), "--db", _db(case_dir), "--json"], quarantined(1, 2)


def han_huge_line(case_dir: Path, scratch: Path, size_mb: int):
    dump = huge_line(case_dir / "han" / "meter.hex", size_mb, head="", prefix="2025-03-10T12:00:10Z ",
                     digit=b"e", tail="")
    return ["ingest", "han", str(dump), "--db", _db(case_dir), "--json"], quarantined(1, 0)


def zaptec_page_garbage(case_dir: Path, scratch: Path, size_mb: int):
    dump = zaptec_dump(case_dir / "dump")
    placed(garbage(scratch, size_mb), dump / "zaptec" / "chargehistory" / "page_0001.json")
    argv = ["ingest", "zaptec", "--dump", str(dump), "--db", _db(case_dir), "--price-area", "NO1", "--json"]

    def check(result: dict) -> None:
        assert result["exit_code"] == 0, result
        document = json.loads(result["stdout"])
        assert document["rows_in"] == document["rows_stored"] + document["rows_quarantined"]
        assert document["rows_quarantined"] == 1 and document["rows_stored"] >= 3, document

    return argv, check


def prices_xml_garbage(case_dir: Path, scratch: Path, size_mb: int):
    source = price_source(case_dir / "prices")
    placed(garbage(scratch, size_mb), source / "entsoe" / "garbage.xml")
    argv = ["ingest", "prices", "--db", _db(case_dir), "--area", "NO1", "--from", DAY, "--to", DAY,
            "--source", str(source), "--json"]
    return argv, quarantined(1, 24)


def portal_csv_garbage(case_dir: Path, scratch: Path, size_mb: int):
    export = placed(garbage(scratch, size_mb), case_dir / "export.csv")
    argv = ["ingest", "portal", "--db", _db(case_dir), "--file", str(export), "--json"]
    return argv, one_line_error(r"export\.csv: .* over the limit of 16,777,216 bytes per document")


SIZED_CASES = {
    "submeter_garbage": submeter_garbage,
    "submeter_text_junk": submeter_text_junk,
    "submeter_huge_line": submeter_huge_line,
    "han_huge_line": han_huge_line,
    "zaptec_page_garbage": zaptec_page_garbage,
    "prices_xml_garbage": prices_xml_garbage,
    "portal_csv_garbage": portal_csv_garbage,
}


def fixed_cases(work: Path) -> dict[str, tuple[list[str], Expectation]]:
    """Cases of one size: sparse files, zip bombs, deep nesting, folders where files belong."""
    cases: dict[str, tuple[list[str], Expectation]] = {}

    d = work / "sparse_submeter"
    csv = sparse(d / "meters" / "MID-3.csv")
    cases["sparse_2GB_submeter"] = (["ingest", "submeter", str(csv), "--db", _db(d), "--json"], quarantined(1, 0))

    d = work / "sparse_zaptec_page"
    dump = zaptec_dump(d / "dump")
    sparse(dump / "zaptec" / "chargehistory" / "page_0001.json")
    cases["sparse_2GB_zaptec_page"] = (
        ["ingest", "zaptec", "--dump", str(dump), "--db", _db(d), "--json"],
        one_line_error(r"page_0001\.json: 2,147,483,648 bytes, over the limit of 1,073,741,824 bytes per file "
                       r"\(raise it with ZAPANALYTICS_MAX_FILE_BYTES\)$"),
    )

    d = work / "sparse_prices"
    source = price_source(d / "prices")
    sparse(source / "entsoe" / "huge.xml")
    cases["sparse_2GB_price_xml"] = (
        ["ingest", "prices", "--db", _db(d), "--area", "NO1", "--from", DAY, "--to", DAY, "--source", str(source),
         "--json"],
        quarantined(1, 24),
    )

    d = work / "sparse_portal"
    export = sparse(d / "export.xlsx")
    cases["sparse_2GB_portal_xlsx"] = (
        ["ingest", "portal", "--db", _db(d), "--file", str(export), "--json"],
        one_line_error(r"export\.xlsx: .*bytes per file"),
    )

    d = work / "bomb_1000"
    bomb = sheet_xml_bomb(d / "bomb.xlsx", 3_000_000, distinct=False)
    cases["xlsx_bomb_ratio_1000"] = (
        ["ingest", "portal", "--db", _db(d), "--file", str(bomb), "--json"],
        one_line_error(r"bomb\.xlsx: entry 'xl/worksheets/sheet1\.xml' inflates [\d,]+-fold, over the limit of 100 "
                       r"compression ratio \(raise it with ZAPANALYTICS_MAX_COMPRESSION_RATIO\)"),
    )

    d = work / "bomb_rows"
    bomb = sheet_xml_bomb(d / "rows.xlsx", 30_000, distinct=True)
    cases["xlsx_bomb_rows_low_ratio"] = (  # the default 200,000 rows: in the slow profile
        ["ingest", "portal", "--db", _db(d), "--file", str(bomb), "--json"],
        one_line_error(r"rows\.xlsx: more rows than that, over the limit of 20,000 rows per sheet "
                       r"\(raise it with ZAPANALYTICS_MAX_ROWS_PER_SHEET\)$"),
    )

    d = work / "bomb_lowered"
    bomb = sheet_xml_bomb(d / "mid.xlsx", 300_000, distinct=True)
    cases["xlsx_bomb_past_a_lowered_size_limit"] = (
        ["ingest", "portal", "--db", _db(d), "--file", str(bomb), "--json"],
        one_line_error(r"mid\.xlsx: entries inflate to more than [\d,]+ bytes, over the limit of 1,048,576 "
                       r"uncompressed bytes per archive"),
    )

    d = work / "deep_json"
    source = price_source(d / "prices")
    (source / "prices" / "NO1" / f"{DAY}.json").write_text("[" * 1_000_000 + "]" * 1_000_000)
    cases["prices_deep_json_nesting"] = (
        ["ingest", "prices", "--db", _db(d), "--area", "NO1", "--from", DAY, "--to", DAY, "--source", str(source),
         "--json"],
        quarantined(1, 0),
    )

    d = work / "folder_page"
    dump = zaptec_dump(d / "dump")
    (dump / "zaptec" / "chargehistory" / "page_0001.json").mkdir(parents=True)
    cases["zaptec_folder_where_a_page_belongs"] = (
        ["ingest", "zaptec", "--dump", str(dump), "--db", _db(d), "--json"],
        one_line_error(r"page_0001\.json: is a directory, not a file$"),
    )

    d = work / "folder_xml"
    source = price_source(d / "prices")
    (source / "entsoe" / "day.xml").mkdir(parents=True)
    cases["prices_folder_named_xml"] = (
        ["ingest", "prices", "--db", _db(d), "--area", "NO1", "--from", DAY, "--to", DAY, "--source", str(source),
         "--json"],
        quarantined(1, 24),
    )
    return cases


#: Environment per case (a limit lowered to show its option works).
CASE_ENV = {
    "xlsx_bomb_past_a_lowered_size_limit": {"ZAPANALYTICS_MAX_UNCOMPRESSED_BYTES": str(MB)},
    "xlsx_bomb_rows_low_ratio": {"ZAPANALYTICS_MAX_ROWS_PER_SHEET": "20000"},
}


def run_cases(cases: dict[str, tuple[list[str], Expectation]]) -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if k != "ZAPANALYTICS_DEBUG" and not k.startswith("ZAPANALYTICS_MAX")}
    env.update(NO_COLOR="1", COLUMNS="400", PYTHONPATH=str(REPO))
    payload = [
        {"id": name, "argv": argv, "timeout_s": DEADLINE_S + 5, "env": CASE_ENV.get(name, {})}
        for name, (argv, _) in cases.items()
    ]
    done = subprocess.run(
        [sys.executable, str(DRIVER)], input=json.dumps(payload), capture_output=True, text=True,
        cwd=REPO, env=env, timeout=60 + 70 * len(payload), check=True,
    )
    return {r["id"]: r for r in json.loads(done.stdout)}


def assert_bounded(name: str, result: dict) -> None:
    assert result["exit_code"] >= 0, f"{name}: killed by signal {-result['exit_code']} (deadline or memory)"
    assert "Traceback" not in result["stderr"] + result["stdout"], result["stderr"]
    assert result["seconds"] <= DEADLINE_S, f"{name}: took {result['seconds']:.0f} s"
    assert result["max_rss_kb"] <= MAX_RSS_KB, f"{name}: peak {result['max_rss_kb'] / 1024:.0f} MB"


def _sized(work: Path, sizes: tuple[int, ...]) -> dict[str, tuple[list[str], Expectation]]:
    scratch = work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    cases = {}
    for name, make in SIZED_CASES.items():
        for size in sizes:
            case_dir = work / f"{name}_{size}"
            case_dir.mkdir()
            cases[f"{name}_{size}MB"] = make(case_dir, scratch, size)
    return cases


@pytest.fixture(scope="module")
def default_results(tmp_path_factory) -> tuple[dict, dict]:
    work = tmp_path_factory.mktemp("hostile")
    cases = {**_sized(work, DEFAULT_SIZES_MB), **fixed_cases(work)}
    results = run_cases(cases)
    for name, result in results.items():
        print(f"{name}: exit {result['exit_code']}, {result['seconds']:.1f} s, peak {result['max_rss_kb'] / 1024:.0f} MB")
    return cases, results


DEFAULT_NAMES = [f"{name}_{size}MB" for name in SIZED_CASES for size in DEFAULT_SIZES_MB] + [
    "sparse_2GB_submeter", "sparse_2GB_zaptec_page", "sparse_2GB_price_xml", "sparse_2GB_portal_xlsx",
    "xlsx_bomb_ratio_1000", "xlsx_bomb_rows_low_ratio", "xlsx_bomb_past_a_lowered_size_limit",
    "prices_deep_json_nesting", "zaptec_folder_where_a_page_belongs", "prices_folder_named_xml",
]


@pytest.mark.parametrize("name", DEFAULT_NAMES)
def test_hostile_input_is_refused_or_quarantined_within_bounds(name, default_results):
    cases, results = default_results
    assert set(cases) == set(DEFAULT_NAMES)
    result = results[name]
    assert_bounded(name, result)
    cases[name][1](result)


@pytest.mark.parametrize("name", list(SIZED_CASES))
def test_memory_does_not_grow_with_the_size_of_a_bad_file(name, default_results):
    _, results = default_results
    small, large = (results[f"{name}_{size}MB"]["max_rss_kb"] for size in DEFAULT_SIZES_MB)
    assert abs(large - small) < FLAT_KB, f"{name}: {small / 1024:.0f} MB at 20 MB, {large / 1024:.0f} MB at 100 MB"


def test_a_folder_where_a_page_belongs_commits_nothing(default_results):
    import duckdb

    cases, results = default_results
    argv = cases["zaptec_folder_where_a_page_belongs"][0]
    db = argv[argv.index("--db") + 1]
    con = duckdb.connect(db, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM installations").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM chargers").fetchall() == [(0,)]
    finally:
        con.close()


def test_a_file_quarantined_whole_names_itself_and_the_run_is_partial(default_results):
    import duckdb

    cases, _ = default_results
    argv = cases["prices_xml_garbage_100MB"][0]
    con = duckdb.connect(argv[argv.index("--db") + 1], read_only=True)
    try:
        (reason, source_file, size, truncated, raw_length), = con.execute(
            "SELECT reason, source_file, raw_size_bytes, raw_truncated, length(raw) FROM quarantine").fetchall()
        statuses = con.execute("SELECT status FROM ingest_runs").fetchall()
    finally:
        con.close()
    assert reason.startswith("garbage.xml: ") and "over the limit of 16,777,216 bytes per document" in reason
    assert source_file.endswith("entsoe/garbage.xml") and size == 100 * MB and truncated
    assert raw_length <= 4096
    assert statuses == [("partial",)]


@pytest.mark.slow
def test_the_200_mb_cases(tmp_path):
    work = tmp_path / "hostile200"
    cases = _sized(work, SLOW_SIZES_MB)
    d = work / "bomb_952k"
    cases["xlsx_bomb_3_million_rows"] = (
        ["ingest", "portal", "--db", _db(d), "--file", str(sheet_xml_bomb(d / "big.xlsx", 3_000_000, distinct=False)),
         "--json"],
        one_line_error(r"big\.xlsx: .*(compression ratio|rows per sheet)"),
    )
    d = work / "bomb_rows"
    cases["xlsx_bomb_rows_past_the_default"] = (
        ["ingest", "portal", "--db", _db(d), "--file", str(sheet_xml_bomb(d / "rows.xlsx", 250_000, distinct=True)),
         "--json"],
        one_line_error(r"rows\.xlsx: more rows than that, over the limit of 200,000 rows per sheet"),
    )
    results = run_cases(cases)
    for name, (_, check) in cases.items():
        result = results[name]
        print(f"{name}: exit {result['exit_code']}, {result['seconds']:.1f} s, peak {result['max_rss_kb'] / 1024:.0f} MB")
        assert_bounded(name, results[name])
        check(results[name])
