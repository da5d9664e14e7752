"""The demo report names every charger ``name (serial)`` in its tables, legends and sentences,
opens with one sentence per finding, and is rendered with escaping on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from zapanalytics.cli import app
from zapanalytics.naming import (
    charger_display_name,
    charger_names,
    named_record,
    with_charger_names,
)
from zapanalytics.report import blocks
from zapanalytics.report.document import report_path

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def chargers(demo_out) -> dict[str, str]:
    con = duckdb.connect(str(demo_out / "zap.duckdb"), read_only=True)
    try:
        frame = con.sql("SELECT charger_id, name, device_id FROM chargers").pl()
    finally:
        con.close()
    return charger_names(frame)


@pytest.fixture(scope="module")
def page(demo_out) -> str:
    return (demo_out / "report.html").read_text("utf-8")


def _figures(page: str) -> list[dict]:
    """Every plotly figure's data and layout, as plotly serialised them."""
    found = []
    for match in re.finditer(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{\"displaylogo\"", page, re.S):
        found.append({"data": json.loads(match.group(1)), "layout": json.loads(match.group(2))})
    return found


def test_every_charger_table_cell_is_name_and_serial(page, chargers):
    cells = re.findall(r'<td class="text">([^<]*)</td>', page)
    shown = {cell for cell in cells if cell in chargers.values()}
    assert shown == set(chargers.values())
    assert all(re.fullmatch(r"Plass \d\d \(ZPR\d{6}\)", name) for name in chargers.values())
    # No cell of the audit or load-balancing tables names a charger by its cloud id alone.
    audit = page[page.index('<section id="audit">'):page.index('<section id="usage">')]
    audit_cells = re.findall(r'<td class="text">([^<]*)</td>', audit)
    assert not [cell for cell in audit_cells if UUID.fullmatch(cell) and cell in chargers]


def test_legends_name_chargers_by_name_and_serial(page, chargers):
    figures = _figures(page)
    assert figures
    names = set(chargers.values())
    legends = {trace.get("name", "") for fig in figures for trace in fig["data"]}
    charger_legends = {name for name in legends if "ZPR" in name or UUID.search(name)}
    assert charger_legends, legends
    for legend in charger_legends:
        assert not UUID.search(legend), legend
        assert any(legend.startswith(name) for name in names), legend
    timeline = [fig for fig in figures if "Sessions per charger" in json.dumps(fig["layout"])]
    rows = {y for trace in timeline[0]["data"] for y in trace["y"]}
    assert rows <= names and rows


def test_the_first_screen_says_each_finding_in_one_sentence(page):
    summary = page[page.index('<section id="summary">'):page.index('<section id="overview">')]
    sentences = re.findall(r"<li[^>]*>(?:<a [^>]*>)?([^<]+)", summary)
    assert "Plass 06 (ZPR939140) drew 5.3 A over its allocation on 17 Oct 17:29–17:49" in sentences
    assert any(s.startswith("Plass 03 (ZPR944805) reads +1.80 % ± 0.6 %") and s.endswith("(fail)") for s in sentences)
    # Each linked sentence points at a chart of its own window, with the limit drawn.
    for anchor in re.findall(r'href="#([^"]+)"', summary):
        assert f'id="{anchor}"' in page, anchor
    finding_chart = page[page.index('id="fig-replay-finding-0-box"'):]
    assert "allocation 10.667 A" in finding_chart[:200_000]


def test_headers_are_words_with_units(page):
    headers = re.findall(r"<th [^>]*>([^<]*)</th>", page)
    assert "Energy [kWh]" in headers and "Charger" in headers and "Error [%]" in headers
    assert not [h for h in headers if re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", h)], headers


def test_unverified_signatures_are_a_warning_with_the_way_to_verify(demo_out, tmp_path):
    """Without keys the report says the records were not checked, and how to check them."""
    out = tmp_path / "board.html"
    run = CliRunner().invoke(app, ["report", "--db", str(demo_out / "zap.duckdb"), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert out.is_file()  # --out x.html writes that file, not a folder of that name
    text = out.read_text("utf-8")
    assert "Signatures checked" in text
    assert "were not verified" in text and "--public-keys" in text
    audit = CliRunner().invoke(app, ["audit", "--db", str(demo_out / "zap.duckdb"), "--json"])
    findings = json.loads(audit.stdout)["findings"]
    unverified = [f for f in findings if f["kind"] == "ocmf_not_verified"]
    assert unverified and {f["severity"] for f in unverified} == {"warning"}
    assert all(f["charger_name"].startswith("Plass ") for f in findings if f["charger_id"])


def test_report_out_directory_or_file(tmp_path):
    assert report_path(tmp_path / "x.html") == tmp_path / "x.html"
    assert report_path(str(tmp_path / "new") + "/") == tmp_path / "new" / "report.html"
    assert report_path(tmp_path) == tmp_path / "report.html"


def test_escaping_is_on_for_names_taken_from_a_source():
    section = blocks.section("s", "T", [
        blocks.table_block(pl.DataFrame({"charger_name": ["<script>x</script> (ZPR1)"]})),
        blocks.findings([blocks.Finding("<b>Plass</b> drew", "error", 'x" onclick="y')]),
    ])  # fmt: skip
    assert "<script>x" not in section.body and "&lt;script&gt;x" in section.body
    assert "<b>Plass" not in section.body
    assert 'onclick="y' not in section.body


def test_one_naming_function():
    assert charger_display_name("Plass 03", "ZPR944805") == "Plass 03 (ZPR944805)"
    assert charger_display_name("ZPR1", "ZPR1") == "ZPR1"
    assert charger_display_name(None, None, "2bdb103a") == "2bdb103a"
    frame = pl.DataFrame({"kind": ["k"], "charger_id": ["a"]})
    named = with_charger_names(frame, {"a": "Plass 01 (ZPR1)"})
    assert named.columns == ["kind", "charger_id", "charger_name"]
    assert named_record({"charger_id": "a", "x": 1}, {"a": "N"}) == {"charger_id": "a", "charger_name": "N", "x": 1}


def test_cli_help_shows_units_no_bool_and_a_version():
    runner = CliRunner()
    shown = runner.invoke(app, ["sample", "--help"], terminal_width=200)
    assert "[s]" in shown.output and "[A]" in shown.output
    assert "<bool>" not in shown.output
    replay = runner.invoke(app, ["replay", "--help"], terminal_width=200)
    assert "[A]" in replay.output and "<bool>" not in replay.output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("zapanalytics ")


def test_replay_json_findings_carry_charger_names(demo_out):
    run = CliRunner().invoke(app, ["replay", "--db", str(demo_out / "zap.duckdb"), "--json"])
    findings = json.loads(run.stdout)["findings"]
    assert findings
    for finding in findings:
        keys = list(finding)
        assert keys[keys.index("charger_id") + 1] == "charger_name"
        assert finding["charger_name"] == "Plass 06 (ZPR939140)"
    table = CliRunner().invoke(app, ["replay", "--db", str(demo_out / "zap.duckdb")], terminal_width=200)
    # The table may wrap a cell over two lines on a narrow terminal.
    assert "Plass 06" in table.output and "(ZPR939140)" in table.output
    assert "2bdb103a" not in table.output


def test_no_html_is_built_by_hand_in_the_report_package():
    package = Path(__file__).resolve().parents[2] / "zapanalytics" / "report"
    for source in package.glob("*.py"):
        text = source.read_text("utf-8")
        assert "html.escape" not in text, source.name
        assert not re.search(r"f['\"]<(p|h\d|table|div|td|li)\b", text), source.name
