"""Statements: formula-injection guard, HTML escaping, and issued statements that never change."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import polars as pl
import pytest
from billing_helpers import (
    INSTALLATION,
    build_store,
    details_frame,
    flat_prices,
    sessions_frame,
    utc,
)
from openpyxl import load_workbook
from typer.testing import CliRunner

from zapanalytics.billing.monthly import bill_month, set_installation_settings
from zapanalytics.billing.statements import (
    guard_formula,
    issue,
    issued,
    statement_document,
)
from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.report.statements_files import user_stems, write_statements
from zapanalytics.store import read_only_store

HOSTILE = [
    ("u-eq", '=HYPERLINK("http://x","y")'),
    ("u-plus", "+47 999"),
    ("u-minus", "-2+3"),
    ("u-at", "@SUM(A1)"),
    ("u-tab", "\t=1+1"),
    ("u-cr", "\r=1+1"),
    ("u-html", "<script>alert('x')</script> & <b>Ola</b>"),
    ("../../etc/passwd", "Path Traversal"),
]


@pytest.mark.parametrize(
    ("text", "guarded"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\t=x", "'\t=x"),
        ("\r=x", "'\r=x"),
        ("  =x", "'  =x"),
        ("＝1", "'＝1"),
        ("Kari", "Kari"),
        ("", ""),
    ],
)
def test_guard_formula(text, guarded):
    assert guard_formula(text) == guarded


def test_guard_leaves_numbers_alone():
    assert guard_formula(-12.5) == -12.5
    assert guard_formula(None) is None


@pytest.fixture
def hostile_store(tmp_path):
    rows = [
        {
            "session_id": f"s{i}",
            "user_id": user_id,
            "user_name": name,
            "start_utc": utc(2025, 10, 6 + i, 16),
            "end_utc": utc(2025, 10, 6 + i, 17),
            "energy_kwh": 1.0 + i,
        }
        for i, (user_id, name) in enumerate(HOSTILE)
    ]
    start, end = utc(2025, 9, 30, 22), utc(2025, 10, 31, 23)
    con = build_store(
        tmp_path / "z.duckdb", sessions_frame(rows), details_frame([]), flat_prices(start, end, 1.0)
    )
    set_installation_settings(con, INSTALLATION, grid_company="elvia")
    return con


def test_csv_xlsx_and_html_are_safe_with_hostile_names(hostile_store, tmp_path):
    bill = bill_month(hostile_store, "2025-10", "spot", now=utc(2026, 1, 1))
    document = statement_document(bill)
    files = write_statements(document, tmp_path / "out", plotlyjs="directory")
    csv_file, xlsx_file = files[0], files[1]
    with csv_file.open(encoding="utf-8", newline="") as handle:
        names = {row["user_name"] for row in csv.DictReader(handle)}
    for _, name in HOSTILE:
        if name.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")):
            assert "'" + name in names and name not in names
    book = load_workbook(xlsx_file)
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(("=", "+", "-", "@", "\t", "\r")), cell.value
    pages = [p for p in files if p.suffix == ".html"]
    assert len(pages) == len(HOSTILE) + 1  # one per user plus the index
    assert all(p.parent == tmp_path / "out" / "statements_2025-10_spot" for p in pages)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script>alert" not in text and "<b>Ola</b>" not in text
    # The file names are the users' names, made safe: no path ever leaves the folder.
    stems = user_stems(document)
    assert stems["../../etc/passwd"] == "2025-10 Path Traversal"
    assert stems["u-html"] == "2025-10 script alert('x') script & b Ola b"
    html_page = (
        tmp_path / "out" / "statements_2025-10_spot" / f"{stems['u-html']}.html"
    ).read_text()
    assert (
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;Ola&lt;/b&gt;" in html_page
    )
    assert "Plotly.newPlot" in html_page and "plotly.min.js" in html_page
    assert (
        tmp_path / "out" / "statements_2025-10_spot" / "plotly.min.js"
    ).stat().st_size > 1_000_000


def test_inline_page_works_offline(hostile_store, tmp_path):
    document = statement_document(
        bill_month(hostile_store, "2025-10", "flat", price_nok_per_kwh=2.0, now=utc(2026, 1, 1))
    )
    files = write_statements(document, tmp_path / "inline")
    stem = user_stems(document)["u-eq"]
    assert stem == "2025-10 =HYPERLINK( http x , y )"
    page = next(p for p in files if p.name == f"{stem}.html").read_text()
    assert re.search(r"<script[^>]*\bsrc=", page) is None  # no external script to fetch
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js embedded


def _store_with_prices(tmp_path):
    sessions = sessions_frame(
        [
            {
                "session_id": "a",
                "user_id": "kari",
                "user_name": "Kari",
                "start_utc": utc(2025, 10, 14, 16),
                "end_utc": utc(2025, 10, 14, 18),
                "energy_kwh": 10.0,
            },
            {
                "session_id": "b",
                "user_id": "ola",
                "user_name": "Ola",
                "start_utc": utc(2025, 10, 15, 16),
                "end_utc": utc(2025, 10, 15, 17),
                "energy_kwh": 5.0,
            },
        ]
    )
    details = details_frame([("a", utc(2025, 10, 14, 17), 4.0), ("a", utc(2025, 10, 14, 18), 6.0)])
    prices = flat_prices(utc(2025, 9, 30, 22), utc(2025, 10, 31, 23), 1.0, minutes=15)
    con = build_store(tmp_path / "z.duckdb", sessions, details, prices)
    set_installation_settings(con, INSTALLATION, grid_company="elvia")
    con.close()
    return tmp_path / "z.duckdb"


def test_issued_statement_is_never_rewritten_by_a_later_rate_change(tmp_path):
    db = _store_with_prices(tmp_path)
    runner = CliRunner()
    first = runner.invoke(
        app,
        [
            "bill",
            "--db",
            str(db),
            "--month",
            "2025-10",
            "--method",
            "full",
            "--out",
            str(tmp_path / "bills"),
            "--json",
        ],
    )
    assert first.exit_code == 0, first.output
    issued_doc = json.loads(first.output)
    assert issued_doc["issued"]["version"] == 1
    # A correction to October's elavgift is published later.
    correction = tmp_path / "correction.toml"
    correction.write_text("[[elavgift.rates]]\nvalid_from = 2025-04-01\nnok_per_kwh = 0.50\n")
    again = runner.invoke(
        app,
        [
            "bill",
            "--db",
            str(db),
            "--month",
            "2025-10",
            "--method",
            "full",
            "--tariff",
            str(correction),
            "--out",
            str(tmp_path / "bills"),
            "--json",
        ],
    )
    assert again.exit_code == 0, again.output
    shown = json.loads(again.output)
    # The issued statement stands, unchanged, and the option it was not made with is named.
    assert shown.pop("not_applied") == [f"--tariff {correction}"]
    assert shown == issued_doc
    reissued = runner.invoke(
        app,
        [
            "bill",
            "--db",
            str(db),
            "--month",
            "2025-10",
            "--method",
            "full",
            "--tariff",
            str(correction),
            "--out",
            str(tmp_path / "bills"),
            "--reissue",
            "--json",
        ],
    )
    assert reissued.exit_code == 0, reissued.output
    new = json.loads(reissued.output)
    assert new["issued"]["version"] == 2
    assert new["rates"]["sha256"] != issued_doc["rates"]["sha256"]
    # 15 kWh × (0.50 − 0.1693) more elavgift excl. VAT = 4.9605 → the total grows by about 6.20 NOK.
    assert new["total_cost_nok"] - issued_doc["total_cost_nok"] == pytest.approx(
        15 * (0.50 - 0.1693) * 1.25, abs=0.03
    )
    con = read_only_store(db)
    try:
        versions = con.execute(
            "SELECT version, rates_sha256, total_cost_nok FROM issued_statements ORDER BY version"
        ).fetchall()
        assert [v[0] for v in versions] == [1, 2]
        assert float(versions[0][2]) == issued_doc["total_cost_nok"]
        assert issued(con, INSTALLATION, "2025-10", "full")["issued"]["version"] == 2
    finally:
        con.close()


def test_bill_json_has_the_documented_shape(tmp_path):
    db = _store_with_prices(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "bill",
            "--db",
            str(db),
            "--month",
            "2025-10",
            "--method",
            "spot",
            "--markup",
            "0.05",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert {"month", "method", "currency", "users", "total_energy_kwh", "total_cost_nok"} <= set(
        document
    )
    assert (document["month"], document["method"], document["currency"]) == (
        "2025-10",
        "spot",
        "NOK",
    )
    assert "hourly" not in document
    kari = next(u for u in document["users"] if u["user_id"] == "kari")
    assert set(kari) == {
        "user_id",
        "user_name",
        "energy_kwh",
        "cost_ex_vat_nok",
        "vat_nok",
        "cost_nok",
        "lines",
        "user_email",
        "sessions",
    }
    # Kari: 10 kWh × (1.00 + 0.05) = 10.50 excl. VAT, + 2.50 + 0.13 VAT (per line) = 13.13.
    assert (kari["energy_kwh"], kari["cost_ex_vat_nok"], kari["vat_nok"], kari["cost_nok"]) == (
        10.0,
        10.5,
        2.63,
        13.13,
    )
    assert [line["line"] for line in kari["lines"]] == ["spot", "markup"]
    assert document["total_energy_kwh"] == 15.0
    assert document["total_cost_nok"] == pytest.approx(
        sum(u["cost_nok"] for u in document["users"])
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2025-10", "--method", "flat"], "needs --price"),
        (["--month", "10-2025", "--method", "spot"], "YYYY-MM"),
        (["--month", "2025-10", "--method", "cheap"], "--method must be one of"),
        (
            ["--month", "2025-10", "--method", "spot", "--price-area", "NO3"],
            "no spot prices for NO3 in 2025-10",
        ),
        (
            ["--month", "2025-10", "--method", "full", "--grid-company", "nowhere"],
            "no grid tariff 'nowhere'",
        ),
        (
            ["--month", "2025-10", "--method", "full", "--tariff", "missing.toml"],
            "no such tariff file",
        ),
        (
            ["--month", "2025-10", "--method", "spot", "--invoice", "missing.csv"],
            "no such invoice file",
        ),
    ],
)
def test_cli_errors_are_user_errors(tmp_path, args, message):
    db = _store_with_prices(tmp_path)
    result = CliRunner().invoke(app, ["bill", "--db", str(db), *args])
    assert isinstance(result.exception, UserError), result.exception
    assert message in str(result.exception)


def test_cli_error_reaches_the_user_as_one_line(tmp_path):
    db = _store_with_prices(tmp_path)
    command = [
        sys.executable,
        "-c",
        "from zapanalytics.cli import main; main()",
        "bill",
        "--db",
        str(db),
        "--month",
        "2025-10",
        "--method",
        "full",
        "--price-area",
        "NO3",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: the store has no spot prices for NO3 in 2025-10; ingest them first"
    ]
    assert "Traceback" not in completed.stderr


def test_issue_function_versions(tmp_path):
    db = _store_with_prices(tmp_path)
    from zapanalytics.store import open_store

    con = open_store(db)
    try:
        document = statement_document(bill_month(con, "2025-10", "flat", price_nok_per_kwh=3.0))
        assert issued(con, INSTALLATION, "2025-10", "flat") is None
        first = issue(con, document)
        second = issue(con, document)
        assert (first["issued"]["version"], second["issued"]["version"]) == (1, 2)
        stored = issued(con, INSTALLATION, "2025-10", "flat")
        assert stored["users"] == document["users"]
        # 15 kWh × 3.00 = 45.00 incl. VAT.
        assert stored["total_cost_nok"] == 45.0
        assert pl.DataFrame(stored["users"])["cost_nok"].sum() == 45.0
    finally:
        con.close()


def test_summary_prints_names_as_written_not_as_markup(tmp_path):
    sessions = sessions_frame(
        [
            {
                "session_id": "a",
                "user_id": "u1",
                "user_name": "[/x]",
                "start_utc": utc(2025, 10, 6, 10),
                "end_utc": utc(2025, 10, 6, 11),
                "energy_kwh": 1.0,
            },
            {
                "session_id": "b",
                "user_id": "u2",
                "user_name": "[bold red]Kari[/bold red]",
                "start_utc": utc(2025, 10, 7, 10),
                "end_utc": utc(2025, 10, 7, 11),
                "energy_kwh": 1.0,
            },
        ]
    )
    build_store(tmp_path / "z.duckdb", sessions, details_frame([])).close()
    result = CliRunner().invoke(
        app,
        [
            "bill",
            "--db",
            str(tmp_path / "z.duckdb"),
            "--month",
            "2025-10",
            "--method",
            "flat",
            "--price",
            "2.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "[/x]" in result.output and "[bold red]Kari[/bold red]" in result.output
