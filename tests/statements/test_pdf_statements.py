"""Sendable statements: one PDF per user, read back as text; names, sessions, totals, files."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pypdf
import pytest
from typer.testing import CliRunner

from zapanalytics.billing.monthly import last_complete_month
from zapanalytics.cli import app
from zapanalytics.report.statements_files import safe_stem


def _bill(db, out, *extra):
    result = CliRunner().invoke(
        app,
        [
            "bill",
            "--db",
            str(db),
            "--month",
            "2026-03",
            "--method",
            "spot",
            "--out",
            str(out),
            "--json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _text(path) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(path).pages)


def test_one_pdf_per_user_holds_the_sessions_and_the_total(march_store, tmp_path):
    document = _bill(march_store, tmp_path / "bills")
    folder = tmp_path / "bills" / "statements_2026-03_spot"
    pdfs = sorted(p.name for p in folder.glob("*.pdf"))
    assert pdfs == ["2026-03 (no user).pdf", "2026-03 Kari Ødegård.pdf", "2026-03 Åse Ærø.pdf"]

    kari = _text(folder / "2026-03 Kari Ødegård.pdf")
    # Bokmål by default for a Norwegian site; Æ Ø Å come back as written.
    assert "Ladeoppgjør 2026-03" in kari and "Kari Ødegård" in kari
    assert "Borettslaget Test" in kari and "2026-03-01 00:00 – 2026-04-01 00:00" in kari
    # Session 1 crosses midnight into March: 23:00-02:00 local, 9 kWh spread over 3 hours, 6 in
    # March. Session 2 runs through the DST night: 01:00 CET to 05:00 CEST is 3 hours, 12 kWh.
    assert "2026-02-28 23:00 2026-03-01 02:00 Plass 7 (ZPR000111) 6,000" in kari
    assert "2026-03-29 01:00 2026-03-29 05:00 Plass 7 (ZPR000111) 12,000" in kari
    # 18 kWh × 1.00 NOK spot = 18.00 + 25 % VAT 4.50 = 22.50 NOK; the markup line is 0.00.
    assert "Sum: 22,50 NOK" in kari
    assert "Spotpris (strøm) 18,000 kWh 1,0000 ~ 18,00 4,50 22,50" in kari

    aase = _text(folder / "2026-03 Åse Ærø.pdf")
    # 7.5 kWh × 1.00 = 7.50 + 1.875 → 1.88 VAT = 9.38 NOK.
    assert "Åse Ærø" in aase and "Sum: 9,38 NOK" in aase
    assert "2026-03-10 17:00 2026-03-10 19:00 Plass 7 (ZPR000111) 7,500" in aase
    assert "Kari" not in aase  # one user's sessions only

    guest = _text(folder / "2026-03 (no user).pdf")
    assert "(uten bruker)" in guest and "Sum: 3,75 NOK" in guest  # 3 kWh: 3.00 + 0.75

    # The unverified markup placeholder is flagged on the statement itself.
    assert "* Satsen er ikke bekreftet" in kari
    assert any(
        r["line"] == "markup" and r["rate_status"] == "U" for r in document["rates"]["unverified"]
    )

    # statements.csv for a mail merge: user, e-mail (none in this source), file, total.
    with (folder / "statements.csv").open(encoding="utf-8") as handle:
        rows = {r["file"]: r for r in csv.DictReader(handle)}
    assert rows["2026-03 Kari Ødegård.pdf"]["total_nok"] == "22.50"
    assert rows["2026-03 Åse Ærø.pdf"]["user_name"] == "Åse Ærø"
    assert rows["2026-03 (no user).pdf"]["email"] == ""
    assert sum(float(r["total_nok"]) for r in rows.values()) == pytest.approx(
        document["total_cost_nok"]
    )


def test_english_statement_and_auditable_json_lines(march_store, tmp_path):
    document = _bill(march_store, tmp_path / "bills", "--lang", "en")
    text = _text(tmp_path / "bills" / "statements_2026-03_spot" / "2026-03 Kari Ødegård.pdf")
    assert "Charging statement 2026-03" in text and "Total: 22.50 NOK" in text
    kari = next(u for u in document["users"] if u["user_id"] == "kari")
    spot = next(line for line in kari["lines"] if line["line"] == "spot")
    assert {k: spot[k] for k in ("quantity", "unit", "unit_rate_nok", "unit_rate_basis")} == {
        "quantity": 18.0,
        "unit": "kWh",
        "unit_rate_nok": 1.0,
        "unit_rate_basis": "weighted mean",
    }
    assert (spot["amount_ex_vat_nok"], spot["vat_nok"], spot["amount_nok"]) == (18.0, 4.5, 22.5)
    assert spot["rate_source"].startswith("day-ahead spot prices of NO1") and spot["rate_verified"]
    markup = next(line for line in kari["lines"] if line["line"] == "markup")
    assert (markup["rate_valid_from"], markup["rate_verified"]) == ("2015-01-01", False)
    assert [s["energy_kwh"] for s in kari["sessions"]] == [6.0, 12.0]


@pytest.mark.parametrize(
    ("group_by", "parties"),
    [
        ("card", {"Brikke Kari": 22.5, "Brikke Åse": 9.38, None: 3.75}),
        # One charger: everyone's 28.5 kWh → 28.50 + 7.125 → 7.13 VAT = 35.63.
        ("charger", {"Plass 7 (ZPR000111)": 35.63}),
    ],
)
def test_group_by_card_or_charger(march_store, tmp_path, group_by, parties):
    document = _bill(march_store, tmp_path / group_by, "--group-by", group_by)
    assert {u["user_name"]: u["cost_nok"] for u in document["users"]} == parties
    assert document["group_by"] == group_by


def test_month_without_sessions_says_so_and_exits_1(march_store):
    result = CliRunner().invoke(
        app, ["bill", "--db", str(march_store), "--month", "2026-01", "--method", "spot"]
    )
    assert result.exception.exit_code == 1  # run_app turns this into exit status 1
    assert str(result.exception) == "no charging in 2026-01 at Borettslaget Test: nothing to bill"


def test_default_month_is_the_last_complete_one(march_store, monkeypatch):
    import zapanalytics.billing.monthly as monthly

    asked = []
    real = monthly.last_complete_month

    def on_first_of_april(timezone, now=None):
        asked.append(timezone)
        return real(timezone, dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC))

    monkeypatch.setattr(monthly, "last_complete_month", on_first_of_april)
    result = CliRunner().invoke(
        app, ["bill", "--db", str(march_store), "--method", "spot", "--json"]
    )
    assert result.exit_code == 0, result.output
    # In the installation's zone, 00:30 on 1 April: March is the last complete month.
    assert asked == ["Europe/Oslo"] and json.loads(result.output)["month"] == "2026-03"


@pytest.mark.parametrize(
    ("now", "month"),
    [
        (dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC), "2025-12"),  # already 1 Jan in Oslo
        (dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC), "2026-03"),  # 00:30 CEST on 1 April
        (dt.datetime(2026, 3, 31, 21, 30, tzinfo=dt.UTC), "2026-02"),  # 23:30 CEST, still March
    ],
)
def test_last_complete_month_in_local_time(now, month):
    assert last_complete_month("Europe/Oslo", now) == month


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("Kari Ødegård", "2026-03 Kari Ødegård"),
        ("../../etc/passwd", "2026-03 etc passwd"),
        ('a<b>c:"d"|e?*', "2026-03 a b c d e"),
        ("  .hidden. ", "2026-03 hidden"),
        ("CON", "2026-03 _CON"),
        ("\x00\x1f", "2026-03 user"),
        ("Å" * 300, "2026-03 " + "Å" * 75),  # 150 bytes of UTF-8
    ],
)
def test_file_names_are_safe(name, stem):
    assert safe_stem("2026-03", name) == stem


def test_same_names_get_distinct_files():
    taken: set[str] = set()
    assert [safe_stem("2026-03", n, taken) for n in ("Ola", "ola", "Ola")] == [
        "2026-03 Ola",
        "2026-03 ola (2)",
        "2026-03 Ola (3)",
    ]


def test_month_without_sessions_exits_1_as_a_process(march_store):
    import subprocess
    import sys

    completed = subprocess.run(
        [
            sys.executable, "-c", "from zapanalytics.cli import main; main()",
            "bill", "--db", str(march_store), "--month", "2026-01", "--method", "spot",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        "error: no charging in 2026-01 at Borettslaget Test: nothing to bill"
    ]


def test_rebilling_an_issued_month_names_each_option_not_applied(march_store, tmp_path):
    first = _bill(march_store, tmp_path / "bills")
    assert first["issued"]["version"] == 1
    again = _bill(
        march_store,
        tmp_path / "bills",
        "--markup",
        "0.05",
        "--customer",
        "business",
        "--group-by",
        "card",
    )
    # Shown as issued, unchanged; every option it was not made with is named.
    assert again.pop("not_applied") == ["--markup 0.05", "--group-by card", "--customer business"]
    assert again == first
