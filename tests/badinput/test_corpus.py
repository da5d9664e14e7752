"""Every corpus input meets its declared outcome, in process and through the real CLI.

The manifest (``corpus/manifest.toml``) says, per input, which reader takes it and what must
happen: a clear error, quarantine with a reason, storage (with a flag). Beyond the declared
outcome every run must keep the door's promise (records in = stored + quarantined, the run
recorded in ``ingest_runs`` with matching counts, every store table still there), and no
traceback may reach a CLI user.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .corpus_readers import (
    CORPUS,
    READER_MODULES,
    RUNNERS,
    Outcome,
    cli_invocation,
    load_manifest,
    module_ready,
)

ENTRIES = load_manifest()
EXPECTS = {"error", "quarantine", "stored", "flagged", "unreadable", "answered", "callerror",
           "verdict", "loaded"}
KEYS = {"file", "source", "what", "expect", "quarantined", "stored", "reason", "error", "note",
        "check", "row1", "rows", "defect", "day", "role", "code", "verdict", "failed", "grid",
        "cli_error"}
DRIVER = Path(__file__).resolve().parent / "cli_driver.py"
REPO = Path(__file__).resolve().parents[2]


def _params(entries) -> list:
    params = []
    for entry in entries:
        marks = []
        if "defect" in entry:
            marks.append(pytest.mark.xfail(strict=True, reason=entry["defect"]))
        params.append(pytest.param(entry, id=entry["file"], marks=marks))
    return params


def _skip_unless_ready(entry) -> None:
    module = READER_MODULES[entry["source"]]
    if not module_ready(module):
        pytest.skip(f"the reader {module} is not built yet")
    if entry["source"] not in RUNNERS:
        pytest.skip(f"no runner for {entry['source']} inputs yet")


def _strict_json(text: str):
    """Parse JSON refusing NaN/Infinity, which other JSON readers reject."""

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


# -- the manifest itself -------------------------------------------------------------------


def test_manifest_covers_every_corpus_file_once():
    on_disk = {
        p.relative_to(CORPUS).as_posix()
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name != "manifest.toml" and not any(part.startswith("_") for part in p.relative_to(CORPUS).parts)
    }
    listed = [e["file"] for e in ENTRIES]
    assert len(listed) == len(set(listed)), "an input is listed twice"
    assert set(listed) == on_disk
    assert len(listed) >= 60
    sources = {e["source"] for e in ENTRIES}
    assert sources == set(READER_MODULES), "every source has inputs"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_manifest_entry_is_complete(entry):
    assert set(entry) <= KEYS, f"unknown keys {set(entry) - KEYS}"
    assert entry["expect"] in EXPECTS
    assert entry["file"].startswith(entry["source"] + "/")
    assert entry.get("what"), "say what is wrong with the input"
    needs = {
        "error": {"error"},
        "quarantine": {"stored", "reason"},
        "stored": {"stored"},
        "flagged": {"stored"},
        "unreadable": {"rows", "quarantined"},
        "callerror": {"code", "reason"},
        "verdict": {"verdict", "failed"},
        "loaded": {"grid"},
        "answered": set(),
    }[entry["expect"]]
    assert needs <= set(entry), f"{entry['expect']} needs {needs - set(entry)}"
    for key in ("reason", "error", "note", "failed"):
        if key in entry:
            re.compile(entry[key])


# -- in process ----------------------------------------------------------------------------


def _assert_door(outcome: Outcome) -> None:
    """The door's bookkeeping: per run, in = stored + quarantined; tables intact.

    A run ends ``ok``, or ``partial`` when a file was quarantined whole (named in the row's
    ``source_file``); never ``running`` or ``failed`` once it returned.
    """
    assert outcome.rows_in == outcome.stored + outcome.quarantined
    con = outcome.con
    if con is None:
        return
    from zapanalytics.store import CONTRACT_TABLES

    present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(CONTRACT_TABLES) <= present, "a store table went missing"
    whole_files = con.execute(
        "SELECT count(*) FROM quarantine WHERE source_file IS NOT NULL AND raw_size_bytes IS NOT NULL"
    ).fetchall()[0][0]
    for source, rows_in, stored, quarantined, status in outcome.run_rows:
        assert status in ("ok", "partial"), f"run of {source} ended {status}"
        if status == "partial":
            assert whole_files, "a partial run quarantined no file whole"
        assert rows_in == stored + quarantined
    distinct = con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    total_quarantined = sum(r[3] for r in outcome.run_rows)
    # One row per distinct rejected payload: the same bad record twice is stored once.
    assert (distinct == 0) == (total_quarantined == 0)
    assert distinct <= total_quarantined


def _assert_check(entry, outcome: Outcome) -> None:
    check = entry.get("check")
    if check is None:
        return
    rows = [list(r) for r in outcome.con.execute(check["sql"]).fetchall()]
    expected = check["equals"]
    assert len(rows) == len(expected), rows
    for got, want in zip(rows, expected, strict=True):
        for g, w in zip(got, want, strict=True):
            if isinstance(w, float):
                assert g is not None and math.isclose(g, w, rel_tol=1e-9), (rows, expected)
            else:
                assert g == w, (rows, expected)


def _value_text(value) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else value


@pytest.mark.parametrize("entry", _params(ENTRIES))
def test_input_meets_its_declared_outcome(entry, tmp_path):
    _skip_unless_ready(entry)
    outcome = RUNNERS[entry["source"]](entry, tmp_path)
    expect = entry["expect"]
    try:
        if expect == "error":
            assert outcome.error is not None, "the input was accepted"
            assert re.search(entry["error"], str(outcome.error)), str(outcome.error)
            # A refused input leaves its run marked failed, never 'running'.
            assert all(row[4] == "failed" for row in outcome.run_rows)
            return
        assert outcome.error is None, f"refused: {outcome.error}"
        if expect in ("quarantine", "stored", "flagged"):
            _assert_door(outcome)
            assert outcome.stored == entry["stored"]
            assert outcome.quarantined == entry.get("quarantined", 0)
            if expect == "quarantine":
                assert outcome.reasons, "nothing in quarantine"
                for reason in outcome.reasons:
                    assert re.search(entry["reason"], reason), reason
            if expect == "stored" and "note" not in entry:
                assert outcome.notes == [], "a clean input reported problems"
        elif expect == "unreadable":
            assert outcome.rows_in == entry["rows"]
            assert outcome.quarantined == entry["quarantined"]
            for reason in outcome.reasons:
                assert re.search(entry["reason"], reason), reason
            first = outcome.values["export"].row(0, named=True)
            for column, value in entry.get("row1", {}).items():
                assert _value_text(first[column]) == value, (column, first[column])
        elif expect in ("answered", "callerror"):
            reply = outcome.values["reply"]
            if expect == "answered":
                assert reply[0] == 3, reply
            else:
                assert reply[0] == 4 and reply[2] == entry["code"], reply
                assert re.search(entry["reason"], reply[3]), reply
        elif expect == "verdict":
            assert outcome.values["verdict"] == entry["verdict"], outcome.values
            failed = outcome.values["transaction_failed"] or ""
            if entry["failed"]:
                assert re.search(entry["failed"], failed), outcome.values
            else:
                assert failed == "", outcome.values
        elif expect == "loaded":
            assert entry["grid"] in outcome.values["grid_companies"]
        if "note" in entry:
            assert any(re.search(entry["note"], note) for note in outcome.notes), outcome.notes
        _assert_check(entry, outcome)
    finally:
        if outcome.con is not None:
            outcome.con.close()


# -- through the console script ------------------------------------------------------------


def _cli_entries():
    return [e for e in ENTRIES if e["source"] != "ocpp_frames"]


def _cli_sample() -> list[dict]:
    """The default run's CLI cases: per source, the first input of each expected outcome, every
    input whose CLI wording differs, and every input with a known defect."""
    chosen, seen = [], set()
    for entry in _cli_entries():
        kind = (entry["source"], entry["expect"])
        if kind not in seen or "cli_error" in entry or "defect" in entry:
            seen.add(kind)
            chosen.append(entry)
    return chosen


def _run_driver(cases: list[dict], timeout_s: float) -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if k != "ZAPANALYTICS_DEBUG"}
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, str(DRIVER)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout_s,
        check=True,
    )
    return {r["id"]: r for r in json.loads(done.stdout)}


def _driven(entries, tmp_path_factory) -> dict[str, dict]:
    cases = []
    for entry in entries:
        if not module_ready(READER_MODULES[entry["source"]]):
            continue
        argv = cli_invocation(entry, tmp_path_factory.mktemp("cli"))
        if argv is not None:
            cases.append({"id": entry["file"], "argv": argv})
    return _run_driver(cases, timeout_s=1800)


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory) -> dict[str, dict]:
    """The sampled inputs through ``zapanalytics``, one forked process each."""
    return _driven(_cli_sample(), tmp_path_factory)


@pytest.fixture(scope="module")
def cli_results_all(tmp_path_factory) -> dict[str, dict]:
    """Every CLI-readable input through ``zapanalytics``, one forked process each."""
    return _driven(_cli_entries(), tmp_path_factory)


def assert_cli_result(entry, result) -> None:
    """The user-facing contract of one CLI run on one input."""
    stdout, stderr, code = result["stdout"], result["stderr"], result["exit_code"]
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    assert code >= 0, f"killed by signal {-code}"
    source, expect = entry["source"], entry["expect"]
    if source == "ocmf" and "cli_error" not in entry:
        lines = [_strict_json(line) for line in stdout.splitlines() if line.strip()]
        assert len(lines) == 1, stdout
        verdict = lines[0]
        if expect == "error":
            assert code == 1
            assert verdict["verdict"] == "malformed"
            assert re.search(entry["error"], verdict["reason"]), verdict["reason"]
        else:
            assert verdict["verdict"] == entry["verdict"]
            checks = verdict["transaction_checks"] or {}
            failed = ", ".join(checks.get("failed") or [])
            # `audit ocmf` fails on signatures only; failed transaction checks are reported
            # (and fail the run only with --strict).
            assert code == (0 if entry["verdict"] == "valid" else 1), (code, stderr)
            if entry["failed"]:
                assert re.search(entry["failed"], failed), failed
        return
    if expect == "error":
        assert code in (1, 2), (code, stdout, stderr)
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one error line, got {stderr!r}"
        assert lines[0].startswith("error: "), lines[0]
        assert re.search(entry.get("cli_error", entry["error"]), lines[0]), lines[0]
        return
    assert code == 0, (code, stderr)
    document = _strict_json(stdout)
    if source in ("zaptec", "prices", "ocpp", "han", "submeter"):
        assert document["rows_in"] == document["rows_stored"] + document["rows_quarantined"]
        assert document["rows_quarantined"] == entry.get("quarantined", 0)
        if source != "zaptec":  # a dump's counts include its base records
            assert document["rows_stored"] == entry["stored"]
        else:
            assert document["rows_stored"] >= entry["stored"]
    elif source == "portal":
        assert document["summary"].get("unreadable", 0) == entry["quarantined"]
        rows = [r for r in document["rows"] if r["row"] is not None]
        assert len(rows) == entry["rows"]
    elif source == "tariff":
        # The store's one session, 10 kWh at the flat 2.5 NOK/kWh, billed with the file loaded.
        assert document["method"] == "flat"
        assert document["total_energy_kwh"] == 10.0 and document["total_cost_nok"] == 25.0
        assert Path(entry["file"]).name in json.dumps(document["rates"])


@pytest.mark.parametrize("entry", _params(_cli_sample()))
def test_cli_user_sees_the_outcome_and_no_traceback(entry, cli_results):
    _skip_unless_ready(entry)
    result = cli_results.get(entry["file"])
    assert result is not None, "no CLI run for this input"
    assert_cli_result(entry, result)


@pytest.mark.slow
@pytest.mark.parametrize("entry", _params(_cli_entries()))
def test_cli_every_input(entry, cli_results_all):
    _skip_unless_ready(entry)
    result = cli_results_all.get(entry["file"])
    assert result is not None, "no CLI run for this input"
    assert_cli_result(entry, result)


def _real_cli(argv: list[str], timeout_s: float = 300) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ZAPANALYTICS_DEBUG"}
    env.update(NO_COLOR="1", COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "zapanalytics", *argv],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout_s, check=False,
    )
    return {"exit_code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


#: One input per outcome kind, through ``python -m zapanalytics`` itself (the fork driver's
#: results must be the same as the real process's).
REAL_CLI_SAMPLE = ["zaptec/installation_truncated.json", "prices/day_truncated.json"]


@pytest.mark.parametrize("name", REAL_CLI_SAMPLE)
def test_real_console_script_agrees_with_the_driver(name, tmp_path, cli_results):
    entry = next(e for e in ENTRIES if e["file"] == name)
    result = _real_cli(cli_invocation(entry, tmp_path))
    assert_cli_result(entry, result)
    driven = cli_results[name]
    assert result["exit_code"] == driven["exit_code"]
    assert result["stderr"] == driven["stderr"]


@pytest.mark.slow
@pytest.mark.parametrize("entry", _params(_cli_entries()))
def test_every_input_through_python_m_zapanalytics(entry, tmp_path):
    _skip_unless_ready(entry)
    assert_cli_result(entry, _real_cli(cli_invocation(entry, tmp_path)))


def test_the_driver_shows_a_traceback_that_escapes_the_cli(tmp_path):
    """The no-traceback check can fail: with --debug the CLI lets the exception through."""
    argv = ["ingest", "zaptec", "--dump", str(tmp_path / "missing"), "--db", str(tmp_path / "x.duckdb")]
    results = _run_driver([{"id": "plain", "argv": argv}, {"id": "debug", "argv": ["--debug", *argv]}], 300)
    assert results["plain"]["exit_code"] == 2
    assert results["plain"]["stderr"].strip() == f"error: no such directory: {tmp_path / 'missing'}"
    assert "Traceback (most recent call last)" in results["debug"]["stderr"]
    assert results["debug"]["exit_code"] == 1
