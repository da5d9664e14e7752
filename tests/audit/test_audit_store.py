"""The store-wide audit and ``zapanalytics audit --db``, on a store holding injected faults."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest
from audit_helpers import build_fleet, build_han_frames, build_metered
from typer.testing import CliRunner

from zapanalytics.audit.store_audit import audit_store
from zapanalytics.cli import app
from zapanalytics.store import open_store, read_only_store, upsert

RESET, TAMPERED = "ZPR000002", "ZPR000003"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _stamp(frame: pl.DataFrame, **columns) -> pl.DataFrame:
    return frame.with_columns(**{k: pl.lit(v) for k, v in columns.items()}).with_columns(
        pl.col("ingested_at").cast(pl.Datetime("us", "UTC"))
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    fleet = build_fleet(days=8, reset_charger=RESET, tampered=(TAMPERED, 3), seed=31)
    metered = build_metered(gains={"SUB-ok": 0.0, "SUB-high": 0.018}, days=4, seed=32)
    han = build_han_frames({"HAN-ok": 0.0, "HAN-high": 0.018, "HAN-low": -0.004}, days=365, seed=21)
    path = tmp_path_factory.mktemp("audit") / "zap.duckdb"
    con = open_store(path)
    installations = pl.DataFrame(
        {"installation_id": ["inst-1", "inst-sub", "inst-han"], "timezone": "Europe/Oslo"}
    )
    upsert(con, "installations", _stamp(installations, source="test", ingested_at=NOW))
    fleet_chargers = pl.DataFrame(
        {
            "charger_id": ["ZPR000001", RESET, TAMPERED],
            "installation_id": "inst-1",
            "max_current_a": 32.0,
        }
    )
    chargers = pl.concat(
        [
            fleet_chargers,
            metered["chargers"].with_columns(installation_id=pl.lit("inst-sub")),
            han["chargers"],
        ]
    ).with_columns(model=pl.lit("Pro"))
    upsert(con, "chargers", _stamp(chargers, source="test", ingested_at=NOW))
    upsert(con, "sessions", _stamp(fleet["sessions"], ingested_at=NOW))
    upsert(con, "energy_details", fleet["energy_details"])
    upsert(con, "charger_states", fleet["charger_states"])
    upsert(
        con,
        "meter_values",
        pl.concat(
            [fleet["meter_values"], metered["meter_values"], han["meter_values"]],
            how="diagonal_relaxed",
        ),
    )
    upsert(
        con,
        "reference_readings",
        pl.concat(
            [
                metered["reference_readings"].with_columns(installation_id=pl.lit("inst-sub")),
                han["reference_readings"],
            ],
            how="diagonal_relaxed",
        ),
    )
    con.close()
    return path, fleet["truth"]


@pytest.fixture(scope="module")
def result(store):
    path, _ = store
    con = read_only_store(path)
    try:
        # The built AMS meter is exact: a calibrated HAN meter (0.1 %) lets the regression
        # judge; the default class B is tested in test_han_meter_uncertainty.
        return audit_store(con, gain_options={"han_uncertainty_pct": 0.1})
    finally:
        con.close()


def test_the_store_audit_finds_exactly_the_injected_faults(store, result):
    _, truth = store
    serious = result.findings.filter(pl.col("severity") != "info")

    assert set(serious.select("kind", "charger_id", "session_id").iter_rows()) == {
        ("register_reset", RESET, None),
        ("ocmf_invalid_signature", TAMPERED, truth["tampered_session"]),
        ("session_energy_mismatch", TAMPERED, truth["tampered_session"]),
    }
    accuracy = dict(result.accuracy.chargers.select("charger_id", "verdict").iter_rows())
    assert accuracy["SUB-high"] == "fail" and accuracy["SUB-ok"] == "pass"
    assert accuracy["ZPR000001"] == "inconclusive"  # no sub-meter
    flagged = result.gains.chargers.filter("flagged")["charger_id"].to_list()
    assert flagged == ["HAN-high"]
    assert not result.passed


def test_the_overview_has_one_row_per_charger_with_its_verdicts(result):
    overview = {row["charger_id"]: row for row in result.chargers.iter_rows(named=True)}

    assert len(overview) == 8
    assert overview[TAMPERED]["errors"] == 2
    assert overview[RESET]["warnings"] == 1 and overview[RESET]["errors"] == 0
    assert overview["SUB-high"]["accuracy_error_pct"] == pytest.approx(1.8, abs=0.15)
    assert overview["HAN-high"]["gain_verdict"] == "fail"
    assert overview["ZPR000001"]["errors"] == 0 and overview["ZPR000001"]["warnings"] == 0


def test_the_cli_writes_json_and_an_offline_html_report(store, tmp_path):
    path, truth = store
    out = tmp_path / "audit"

    outcome = CliRunner().invoke(
        app, ["audit", "--db", str(path), "--out", str(out), "--json", "--han-uncertainty", "0.1"]
    )

    assert outcome.exit_code == 1, outcome.output  # faults were found
    printed = json.loads(outcome.stdout)
    written = json.loads((out / "audit.json").read_text())
    assert printed["summary"] == written["summary"]
    assert printed["passed"] is False
    assert printed["summary"]["gain_flagged"] == ["HAN-high"]
    assert {f["session_id"] for f in printed["findings"] if f["severity"] == "error"} == {
        truth["tampered_session"]
    }
    page = (out / "audit.html").read_text()
    assert "Accuracy against sub-meters" in page and "SUB-high" in page
    # plotly.js is inline: no script is fetched from the network.
    assert "<script" in page and "<script src=" not in page


def test_the_cli_without_json_prints_a_table_and_rejects_a_missing_store(store, tmp_path):
    path, _ = store
    shown = CliRunner().invoke(app, ["audit", "--db", str(path), "--han-uncertainty", "0.1"])
    assert shown.exit_code == 1
    assert "HAN-high" in shown.output and "fail" in shown.output

    missing = CliRunner().invoke(app, ["audit", "--db", str(tmp_path / "nope.duckdb")])
    assert "no such store" in str(missing.exception)
