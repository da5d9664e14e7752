"""Hostile strings from a source stay data everywhere: in SQL, HTML, spreadsheets and the terminal.

One installation whose names and ids are hostile (script tags, an attribute break-out, SQL
that would drop a table, spreadsheet formulas, rich console markup) goes through ingestion,
the demo report, billing statements, the audit and the exports. Then:

* the store still has every table and holds the strings verbatim (SQL is parameterised);
* every HTML page shows them only escaped: no injected element or event attribute appears
  when the page is parsed, and plotly's embedded JSON cannot close its script element;
* CSV and XLSX cells starting with ``= + - @`` are neutralised with a leading ``'``, and no
  XLSX cell is a formula;
* console tables print them as text.

A static scan finds every SQL statement the package builds from strings; each must be on the
allow-list below, with the reason its interpolated pieces are safe.
"""

from __future__ import annotations

import csv
import html
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from zapanalytics.store import CONTRACT_TABLES, read_only_store

from .dumps import write_dump
from .sql_scan import scan_file, scan_package

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "badinput" / "cli_driver.py"

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'
SQL = "x'); DROP TABLE sessions; --"
FORMULAS = ['=HYPERLINK("http://evil.example","pay")', "+SUM(A1:A9)", "-2+3", "@cmd|' /C calc'!A0",
            # Leading blanks a spreadsheet skips: no-break space, ideographic space, BOM, em space.
            '\u00a0=HYPERLINK("http://evil.example","nbsp")', "\u3000=1+1", "\ufeff@SUM(1)",
            "\u2003-2+3"]
MARKUP = ["[/x]", "[bold red]Kari[/bold red]"]
USER_NAMES = [XSS_SCRIPT, XSS_ATTR, SQL, *FORMULAS, *MARKUP, "Kari Nordmann"]
CHARGER_NAMES = [XSS_SCRIPT, XSS_ATTR, "=cmd|' /C calc'!A0", SQL]
INSTALLATION_ID = "inst'); DROP TABLE installations; --"
SESSION_ID = "s'); DELETE FROM sessions; --{number:04d}"
CHARGER_ID = "c\"; DROP TABLE chargers; --{number:02d}"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict:
    """The hostile installation through every output, by the console script where one exists."""
    from zapanalytics.pipeline import run_demo

    work = tmp_path_factory.mktemp("hostile")
    dump = write_dump(
        work / "dump", n_sessions=45, page_size=20, n_chargers=4, user_names=USER_NAMES,
        charger_names=CHARGER_NAMES, installation_name=XSS_SCRIPT, installation_id=INSTALLATION_ID,
        session_id_template=SESSION_ID, charger_id_template=CHARGER_ID, device_ids=["ZPR500001", "[/x]"],
    )
    demo = run_demo(work / "demo", dump.root)
    db = demo.database
    cases = [
        {"id": "bill", "argv": ["bill", "--db", str(db), "--month", "2025-09", "--method", "flat", "--price", "2.5",
                                "--installation", INSTALLATION_ID, "--out", str(work / "bills")]},
        {"id": "audit", "argv": ["audit", "--db", str(db), "--out", str(work / "audit")]},
        {"id": "demo", "argv": ["demo", "--sample", str(dump.root), "--out", str(work / "demo_cli")]},
    ]
    for table in ("sessions", "chargers", "installations"):
        for fmt in ("csv", "xlsx", "parquet"):
            name = f"{table}.{fmt}" if fmt != "parquet" else table
            cases.append({"id": f"export {table} {fmt}",
                          "argv": ["export", "--db", str(db), "--table", table, "--format", fmt,
                                   "--out", str(work / "exports" / name)]})
    env = {k: v for k, v in os.environ.items() if k != "ZAPANALYTICS_DEBUG"}
    env.update(NO_COLOR="1", COLUMNS="250", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(DRIVER)], input=json.dumps(cases), capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=900, check=True)
    results = {r["id"]: r for r in json.loads(done.stdout)}
    report = getattr(demo.report, "path", demo.report)  # a ReportResult, or the path itself
    return {"work": work, "db": db, "report": report, "results": results, "dump": dump}


# -- SQL -------------------------------------------------------------------------------------------


def test_hostile_ids_and_names_are_stored_verbatim_and_every_table_survives(hostile):
    con = read_only_store(hostile["db"])
    try:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert set(CONTRACT_TABLES) <= present
        assert con.execute("SELECT count(*) FROM sessions").fetchall() == [(45,)]
        assert con.execute("SELECT count(*) FROM energy_details").fetchall() == [(45 * 8,)]
        assert con.execute("SELECT DISTINCT installation_id FROM sessions").fetchall() == [(INSTALLATION_ID,)]
        ids = {r[0] for r in con.execute("SELECT session_id FROM sessions").fetchall()}
        assert ids == {SESSION_ID.format(number=n) for n in range(45)}
        names = {r[0] for r in con.execute("SELECT DISTINCT user_name FROM sessions").fetchall()}
        assert names == set(USER_NAMES)
        chargers = {r[0] for r in con.execute("SELECT name FROM chargers").fetchall()}
        assert chargers == set(CHARGER_NAMES)
    finally:
        con.close()
    for name in ("bill", "audit"):
        assert hostile["results"][name]["exit_code"] in (0, 1), hostile["results"][name]["stderr"]
        assert "Traceback" not in hostile["results"][name]["stderr"]


#: Dynamic SQL sites and why each is safe: every interpolated piece is an identifier the code
#: chose or validated, or fixed SQL text; values always travel as ``?`` parameters.
ALLOWED_DYNAMIC_SQL = {
    ("zapanalytics/audit/store_audit.py", "audit_store"):
        "meter_select is a column list built from the store's catalogue; charger and installation ids are parameters",
    ("zapanalytics/billing/monthly.py", "_sessions_and_details"):
        "window is this function's fixed SQL text; the installation and times are parameters",
    ("zapanalytics/billing/monthly.py", "resolve_installation"):
        "column names from a fixed list, filtered by the catalogue",
    ("zapanalytics/billing/monthly.py", "set_installation_settings"):
        "column checked against _SITE_COLUMNS just above; the value is a parameter",
    ("zapanalytics/dataset.py", "_partition_query"):
        "table must be a key of the fixed _PARTITIONING map, which also gives the join and instant "
        "text; columns come from the store's catalogue; the placeholders are module constants",
    ("zapanalytics/dataset.py", "_partition_stats"):
        "query comes from _partition_query",
    ("zapanalytics/dataset.py", "_write_partitions"):
        "columns from the catalogue via _partition_query; the partitions travel as a registered table",
    ("zapanalytics/ingest/portal/fold.py", "_fold"):
        "the views are uuid4-hex names this function registers itself; tables come from the "
        "store's catalogue (columns named installation_id), installation columns from DESCRIBE; "
        "ids travel as parameters",
    ("zapanalytics/ingest/portal/fold.py", "_repoint_chargers"):
        "table and key columns come from the store's catalogue (_tables_with); the view is "
        "_fold's uuid4-hex registration; no value is interpolated",
    ("zapanalytics/store/canonical.py", "resolve_session_copies"):
        "view is a uuid4-hex name this function registers itself; the links travel as that view",
    ("zapanalytics/export.py", "_partitioned_query"):
        "table checked against CONTRACT_TABLES, columns from the catalogue, joins and instants fixed per table",
    ("zapanalytics/export.py", "export_table"):
        "query from _partitioned_query; table checked against CONTRACT_TABLES; the output path is a parameter",
    ("zapanalytics/ingest/zaptec/states.py", "_derive_numeric"):
        "where fragments from _filters: fixed text with ? placeholders",
    ("zapanalytics/ingest/zaptec/states.py", "_derive_signed"):
        "a state-id constant and _filters' fixed text with ? placeholders",
    ("zapanalytics/ingest/zaptec/states.py", "_observations_sql"):
        "state ids from the NUMERIC_STATES constant; where fragments from _filters",
    ("zapanalytics/store/queries.py", "table"):
        "name checked against CONTRACT_TABLES",
    ("zapanalytics/ingest/door.py", "_failed_rows"):
        "view is a uuid4-hex name registered here on a private in-memory connection; the "
        "conditions are generated by contract_sql from the pandera schemas",
    ("zapanalytics/ingest/ocpp/bulk.py", "_statements"):
        "table names, patterns, measurand mappings and the source are this module's constants "
        "(quoted by _quote where they are literals); the contract conditions are generated by "
        "contract_sql; the spool lines travel in a registered table",
    ("zapanalytics/ingest/ocpp/bulk.py", "read_meter_values_sql"):
        "the module's constant staging-table names; record numbers are a ? parameter",
    ("zapanalytics/store/upsert.py", "_few_against_many"):
        "staged is the relation name merge_staged was given (a view or temporary table it names)",
    ("zapanalytics/store/upsert.py", "merge_staged"):
        "table and columns checked against the catalogue and quoted by _quote; staged is a view or "
        "temporary table the caller named; rows travel in that relation",
    ("zapanalytics/ingest/zaptec/bulk.py", "_stage_statements"):
        "JSON paths, patterns and type names are this module's constants; the installation id and "
        "source travel in the z_source table, written with ? parameters",
    ("zapanalytics/ingest/zaptec/bulk.py", "_session_rows_sql"):
        "bit constants and a fixed tolerance expression; run values come from z_source",
    ("zapanalytics/ingest/zaptec/bulk.py", "_routing_statements"):
        "the conditions are generated by contract_sql from the pandera schemas (column names and "
        "the schemas' own constants)",
    ("zapanalytics/ingest/zaptec/bulk.py", "_write_clean"):
        "contract column lists from the schemas and a fixed filter",
    ("zapanalytics/ingest/zaptec/bulk.py", "admit_history_texts"):
        "incoming is a uuid4-hex view name registered here; the names dropped are module constants",
    ("zapanalytics/testing/__init__.py", "store_snapshot"):
        "a test helper: table and column names from the catalogue",
}


def test_sql_is_built_from_strings_only_where_the_allow_list_says_why():
    sites = scan_package(REPO / "zapanalytics")
    found = {site.key for site in sites}
    unexplained = sorted(site for site in sites if site.key not in ALLOWED_DYNAMIC_SQL)
    assert not unexplained, (
        "SQL built from strings without a reviewed reason (bind values with ?, or add the site to "
        "ALLOWED_DYNAMIC_SQL saying why every interpolated piece is a validated identifier):\n"
        + "\n".join(f"  {s.path}:{s.line} in {s.function}: {s.pieces}" for s in unexplained)
    )
    stale = sorted(set(ALLOWED_DYNAMIC_SQL) - found)
    assert not stale, f"allow-list entries with no dynamic SQL left (remove them): {stale}"


def test_the_scan_finds_each_way_of_building_sql(tmp_path):
    sample = tmp_path / "pkg" / "mod.py"
    sample.parent.mkdir()
    sample.write_text(
        "def direct(con, name):\n"
        "    con.execute(f\"SELECT * FROM t WHERE name = '{name}'\")\n"
        "def through_a_variable(con, name):\n"
        "    sql = \"SELECT * FROM t WHERE name = '%s'\" % name\n"
        "    con.execute(sql)\n"
        "def formatted(con, name):\n"
        "    return con.sql(\"DELETE FROM t WHERE name = '{}'\".format(name))\n"
        "def helper(name):\n"
        "    return \"UPDATE t SET x = 1 WHERE name = '\" + name + \"'\"\n"
        "def with_frame(con, name):\n"
        "    return frame(con, f'SELECT {name}', [])\n"
        "def parameterised(con, name):\n"
        "    con.execute('SELECT * FROM t WHERE name = ?', [name])\n"
        "def not_sql(name):\n"
        "    return f'hello {name}'\n"
    )
    found = {site.function for site in scan_file(sample, tmp_path)}
    assert found == {"direct", "through_a_variable", "formatted", "helper", "with_frame"}


# -- HTML ------------------------------------------------------------------------------------------


class _Elements(HTMLParser):
    """Collect the elements and attributes a browser would build from a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.event_attributes: list[tuple[str, str]] = []
        self.text: list[str] = []
        self._in_script = False
        self.script_bodies: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.event_attributes += [(tag, name) for name, _ in attrs if name.lower().startswith("on")]
        self._in_script = tag == "script"
        if self._in_script:
            self.script_bodies.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_bodies[-1] += data
        else:
            self.text.append(data)


def _html_pages(hostile) -> list[Path]:
    work = hostile["work"]
    pages = [hostile["report"], *sorted((work / "bills").rglob("*.html")), *sorted((work / "audit").rglob("*.html"))]
    assert len(pages) >= 3, pages
    return pages


def test_html_pages_show_hostile_strings_only_escaped(hostile):
    for page in _html_pages(hostile):
        text = page.read_text("utf-8")
        # (Escaped forms such as &lt;img ... onerror=alert(1)&gt; are fine: they are text.)
        for raw in (XSS_SCRIPT, XSS_ATTR, "<img"):
            assert raw not in text, f"{page.name} holds {raw!r} unescaped"
        parsed = _Elements()
        parsed.feed(text)
        assert "img" not in parsed.tags, f"{page.name}: an injected element"
        assert parsed.event_attributes == [], f"{page.name}: event attributes {parsed.event_attributes}"
        # Inside scripts (plotly's embedded JSON) a name may appear only with < and > escaped,
        # so it can neither close the script element nor open a new one.
        for body in parsed.script_bodies:
            assert "alert(1)</" not in body and "<img" not in body


def test_the_report_shows_the_hostile_names_as_text(hostile):
    text = hostile["report"].read_text("utf-8")
    parsed = _Elements()
    parsed.feed(text)
    visible = "".join(parsed.text)
    assert XSS_SCRIPT in visible, "the installation name is shown (as text)"
    assert html.escape(XSS_SCRIPT) in text
    for name in (XSS_ATTR, SQL, FORMULAS[0]):
        assert name in visible or name in "".join(parsed.script_bodies), f"{name!r} is not shown"


# -- spreadsheets ----------------------------------------------------------------------------------

_PREFIXES = ("=", "+", "-", "@")


def _unblanked(text: str) -> str:
    """``text`` without the leading blanks of any Unicode kind a spreadsheet skips."""
    import unicodedata

    position = 0
    while position < len(text) and (
        text[position].isspace() or unicodedata.category(text[position]) in ("Zs", "Cf", "Cc")
    ):
        position += 1
    return text[position:]


@pytest.mark.parametrize(
    "blank",
    sorted({chr(c) for c in range(0x110000) if chr(c).isspace()} | {"\ufeff", "\u200b", "\u2060"}),
    ids=lambda b: f"U+{ord(b):04X}",
)
@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_every_unicode_blank_before_a_formula_is_looked_through(blank, prefix):
    from zapanalytics.spreadsheet import guard_formula

    text = f"{blank}{blank}{prefix}1+1"
    assert guard_formula(text) == "'" + text
    assert guard_formula(f"{blank}Kari") == (f"'{blank}Kari" if blank in "\t\r\n" else f"{blank}Kari")


def _spreadsheets(hostile, suffix: str) -> list[Path]:
    work = hostile["work"]
    files = sorted((work / "bills").rglob(f"*{suffix}")) + sorted((work / "exports").glob(f"*{suffix}"))
    assert len(files) >= 3, files
    return files


def test_csv_cells_that_would_run_as_formulas_are_neutralised(hostile):
    hostile_cells = set(FORMULAS) | {CHARGER_NAMES[2]}
    seen_guarded = set()
    for path in _spreadsheets(hostile, ".csv"):
        with path.open(newline="", encoding="utf-8-sig") as handle:
            sample = handle.read(4096)
            handle.seek(0)
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            for row in csv.reader(handle, dialect):
                for cell in row:
                    assert cell not in hostile_cells, f"{path.name}: {cell!r} would run as a formula"
                    if cell.startswith("'") and cell[1:] in hostile_cells:
                        seen_guarded.add(cell[1:])
    assert seen_guarded >= set(FORMULAS), f"hostile names missing from the CSVs: {set(FORMULAS) - seen_guarded}"


def test_xlsx_cells_are_never_formulas(hostile):
    import openpyxl

    seen_guarded = set()
    for path in _spreadsheets(hostile, ".xlsx"):
        book = openpyxl.load_workbook(path)
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", f"{path.name}!{cell.coordinate} is a formula: {cell.value!r}"
                    if isinstance(cell.value, str):
                        assert not _unblanked(cell.value).startswith(_PREFIXES), (
                            f"{path.name}!{cell.coordinate}: {cell.value!r}"
                        )
                        if cell.value.startswith("'"):
                            seen_guarded.add(cell.value[1:])
    assert seen_guarded >= set(FORMULAS)


def test_parquet_keeps_hostile_values_and_stays_in_its_directory(hostile):
    import pyarrow.dataset as ds

    root = hostile["work"] / "exports" / "sessions"
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root.resolve())
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    assert set(table.column("user_name").to_pylist()) == set(USER_NAMES)
    assert set(table.column("session_id").to_pylist()) == {SESSION_ID.format(number=n) for n in range(45)}


# -- the terminal ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "demo",
        "bill",
        "audit",
    ],
)
def test_console_tables_print_hostile_names_as_written(hostile, command):
    result = hostile["results"][command]
    assert result["exit_code"] in (0, 1) and "error: closing tag" not in result["stderr"], result["stderr"]
    assert "[/x]" in result["stdout"]
    if command != "audit":
        assert "[bold red]Kari[/bold red]" in result["stdout"]
