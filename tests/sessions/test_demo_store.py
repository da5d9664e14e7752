"""The demo store as a user meets it: one row per charging wherever they look."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import polars as pl
import pytest

from tests.sessions.helpers import MONTH, cli
from zapanalytics.pipeline import bundled_sample_dir

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _readme_sessions() -> int:
    text = (bundled_sample_dir() / "README.md").read_text("utf-8")
    return int(re.search(r"\*\*(\d+) sessions\*\*", text).group(1))


def test_exported_sessions_sum_to_the_billed_energy(demo_out, tmp_path):
    db = demo_out / "zap.duckdb"
    out = tmp_path / "sessions.csv"
    exported = cli("export", "--db", db, "--table", "sessions", "--out", out, "--json")
    sessions = pl.read_csv(out)
    assert exported["rows"] == sessions.height
    assert sessions["session_id"].n_unique() == sessions.height
    assert sessions.filter(~pl.col("is_void").fill_null(False)).height == _readme_sessions()
    bill = cli("bill", "--db", db, "--month", MONTH, "--method", "flat", "--price", "2.5", "--json")
    assert sessions["energy_kwh"].sum() == pytest.approx(bill["total_energy_kwh"], abs=0.001)
    # The copies are there too, under their own name, each naming an exported session.
    copies_out = tmp_path / "copies.csv"
    copies = cli("export", "--db", db, "--table", "session_copies", "--out", copies_out, "--json")
    assert copies["rows"] > 0  # the sample's OCPP logs record sub-metered chargings again
    linked = pl.read_csv(copies_out)["canonical_session_id"]
    assert linked.is_in(sessions["session_id"].implode()).all()


def test_report_counts_the_sessions_the_sample_readme_states(demo_out):
    page = (demo_out / "report.html").read_text("utf-8")
    shown = re.search(r">\s*Sessions\s*<b>\s*([\d,  ]+)\s*</b>", page)
    assert shown is not None
    assert int(re.sub(r"\D", "", shown.group(1))) == _readme_sessions()


def test_quickstart_first_per_user_table_has_no_null_user(demo_out, monkeypatch):
    monkeypatch.setenv("ZAPANALYTICS_DB", str(demo_out / "zap.duckdb"))
    monkeypatch.chdir(NOTEBOOKS)
    notebook = jupytext.read(NOTEBOOKS / "01_quickstart.py")
    namespace: dict = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        exec(compile(cell.source, "01_quickstart", "exec"), namespace)  # noqa: S102 - our notebook
        if "per_user" in namespace:
            break
    per_user = namespace["per_user"]
    namespace["con"].close()
    assert per_user["user_name"].null_count() == 0
    assert per_user["sessions"].sum() == _readme_sessions()
