"""``zapanalytics ingest zaptec`` against the fake: output, errors, secrets, a real SIGKILL."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zapanalytics.cli import app
from zapanalytics.ingest.zaptec.api import RetryPolicy, ZaptecClient
from zapanalytics.store import read_only_store
from zapanalytics.testing import store_snapshot

from .conftest import PASSWORD, USERNAME, make_account

MAIN = "from zapanalytics.cli import main; main()"


def _run_cli(args: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 120):
    """Run the console script in a subprocess, as a user would (errors go through run_app)."""
    full_env = {**os.environ, **env}
    full_env.pop("ZAPANALYTICS_DEBUG", None)
    # A third-party import warning (pandas 3 under pyspark) is not the command's output.
    full_env["PYTHONWARNINGS"] = "ignore::FutureWarning"
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )


def _env(fake, username=USERNAME, password=PASSWORD) -> dict[str, str]:
    return {
        "ZAPTEC_USERNAME": username,
        "ZAPTEC_PASSWORD": password,
        "ZAPTEC_BASE_URL": fake.base_url,
    }


def test_cli_sync_prints_counts_and_json(fake, tmp_path, account):
    db = tmp_path / "zap.duckdb"
    done = _run_cli(["ingest", "zaptec", "--db", str(db), "--price-area", "NO1"], _env(fake))
    assert done.returncode == 0, done.stderr
    assert "synced 1 installation(s)" in done.stdout
    again = _run_cli(["ingest", "zaptec", "--db", str(db), "--json"], _env(fake))
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["rows_in"] == result["rows_stored"] + result["rows_quarantined"]
    assert result["endpoint"] == "archived"  # the fake has the newer listing
    con = read_only_store(db)
    try:
        stored = con.execute(
            "SELECT count(*), any_value(price_area) FROM sessions"
            " JOIN installations USING (installation_id)"
        ).fetchall()
        last_start = con.execute(
            "SELECT charger_id, max(start_utc) - INTERVAL 7 DAY FROM sessions GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    assert stored == [(len(account.sessions), "NO1")]
    # The second run is incremental: each charger from its last session less seven days.
    windows = {w["charger_id"]: w["from_utc"] for w in result["windows"]}
    assert windows == {
        charger_id: start.astimezone(dt.UTC).isoformat() for charger_id, start in last_start
    }


def test_cli_wrong_password_is_one_line_without_traceback(fake, tmp_path):
    secret = "Wr0ng-Pa55word-xyz"
    done = _run_cli(
        ["ingest", "zaptec", "--db", str(tmp_path / "z.duckdb")], _env(fake, password=secret)
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error: Zaptec login failed: wrong user name or password "
        "(invalid_grant: The user name or password is incorrect.)"
    ]
    assert "Traceback" not in done.stderr + done.stdout
    assert secret not in done.stderr + done.stdout


def test_cli_prompts_for_credentials_without_echoing_the_password(fake, tmp_path):
    env = {"ZAPTEC_BASE_URL": fake.base_url, "ZAPTEC_USERNAME": "", "ZAPTEC_PASSWORD": ""}
    done = _run_cli(
        ["ingest", "zaptec", "--db", str(tmp_path / "z.duckdb")],
        env,
        stdin=f"{USERNAME}\n{PASSWORD}\n",
    )
    assert done.returncode == 0, done.stderr
    assert "Zaptec password" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_cli_without_credentials_and_no_input_is_a_clear_error(fake, tmp_path):
    env = {"ZAPTEC_BASE_URL": fake.base_url, "ZAPTEC_USERNAME": "", "ZAPTEC_PASSWORD": ""}
    done = _run_cli(["ingest", "zaptec", "--db", str(tmp_path / "z.duckdb")], env, stdin="")
    assert done.returncode == 2
    assert (
        "error: no Zaptec credentials: set ZAPTEC_USERNAME" in done.stderr.strip().splitlines()[-1]
    )
    assert "Traceback" not in done.stderr


def test_cli_5xx_storm_is_a_one_line_error(fake, tmp_path):
    path = "/api/chargehistory"
    fake.inject(path, 503, times=None)
    db = tmp_path / "z.duckdb"
    args = ["ingest", "zaptec", "--db", str(db), "--retries", "2", "--endpoint", "chargehistory"]
    done = _run_cli(args, _env(fake))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: Zaptec API GET {path}: HTTP 503 after 3 attempts"
    )
    assert "Traceback" not in done.stderr
    con = read_only_store(db)
    try:
        runs = con.execute("SELECT status, error FROM ingest_runs").fetchall()
        sessions = con.execute("SELECT count(*) FROM sessions").fetchall()
    finally:
        con.close()
    assert runs == [("failed", f"ZaptecApiError: Zaptec API GET {path}: HTTP 503 after 3 attempts")]
    assert sessions == [(0,)]
    fake.clear_faults()
    fake.inject("/api/installation", 500, times=None)  # 500 on GET is retried, then given up
    done = _run_cli(["ingest", "zaptec", "--db", str(db), "--retries", "1"], _env(fake))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: Zaptec API GET /api/installation: HTTP 500 after 2 attempts"
    )


def test_cli_dump_and_api_options_do_not_mix(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "ingest",
            "zaptec",
            "--db",
            str(tmp_path / "z.duckdb"),
            "--dump",
            str(tmp_path),
            "--since",
            "2025-01-01",
        ],
    )
    assert result.exit_code != 0
    assert "apply to the API" in str(result.exception) + result.output


def test_no_secret_reaches_logs_database_output_or_errors(
    start_fake, account, tmp_path, caplog, monkeypatch
):
    """A full sync with a distinctive password and token; then grep everything for them."""
    password = "PW-zapsecret-5d1e9b7c"
    token_root = "TOKEN-zapsecret-0a9f3e"
    counter = itertools.count()
    fake = start_fake(
        account,
        password=password,
        rate_limit=None,
        issue_token=lambda: f"{token_root}-{next(counter)}",
    )
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ZAPTEC_USERNAME", USERNAME)
    monkeypatch.setenv("ZAPTEC_PASSWORD", password)
    monkeypatch.setenv("ZAPTEC_BASE_URL", fake.base_url)
    db = tmp_path / "secret.duckdb"
    saved = tmp_path / "saved"
    runner = CliRunner()
    outputs = []
    result = runner.invoke(app, ["ingest", "zaptec", "--db", str(db), "--save", str(saved)])
    assert result.exit_code == 0, result.output
    outputs.append(result.output)
    fake.expire_tokens()  # the second run must log in again: two tokens seen in all
    result = runner.invoke(app, ["ingest", "zaptec", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    outputs.append(result.output)
    assert fake.tokens_granted >= 2

    errors = []
    for failing in (
        lambda: fake.inject("/api/chargers", 401, times=None),
        lambda: fake.inject("/api/chargers", 503, times=None, body=f'{{"message":"{password}"}}'),
    ):
        fake.clear_faults()
        failing()
        client = ZaptecClient(
            USERNAME,
            password,
            base_url=fake.base_url,
            retry=RetryPolicy(max_retries=1, backoff_base_s=0.01),
        )
        with client, pytest.raises(Exception) as caught:  # noqa: B017 - any error will do
            client.chargers()
        errors.append(caught.value)
        errors.append(client)
    wrong = runner.invoke(
        app, ["ingest", "zaptec", "--db", str(db)], env={"ZAPTEC_PASSWORD": password + "-wrong"}
    )
    outputs.append(wrong.output)
    errors.append(wrong.exception)

    haystacks = {
        "cli output": "\n".join(outputs),
        "log records": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "exceptions": "\n".join(f"{e!s} {e!r}" for e in errors),
        "database": "\n".join(
            p.read_bytes().decode("latin-1") for p in tmp_path.glob("secret.duckdb*")
        ),
        "saved dump": "\n".join(p.read_text("utf-8") for p in saved.rglob("*") if p.is_file()),
    }
    assert "HTTP Request" in haystacks["log records"]  # the logs were captured at all
    for where, text in haystacks.items():
        assert password not in text, f"password found in {where}"
        assert token_root not in text, f"token found in {where}"


@pytest.mark.slow
def test_sigkill_mid_sync_then_rerun_equals_a_clean_sync(start_fake, tmp_path):
    account = make_account(chargers=10, days=120, seed=5)
    fake = start_fake(account)  # Zaptec's rate limit: the sync takes several seconds
    pages = -(-len(account.sessions) // 100)
    assert pages >= 12
    env = {**os.environ, **_env(fake)}
    killed_db = tmp_path / "killed.duckdb"
    args = [sys.executable, "-c", MAIN, "ingest", "zaptec", "--db", str(killed_db), "--json"]
    args += ["--endpoint", "chargehistory"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(fake.requests("/api/chargehistory")) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL
    fetched_before_kill = len(fake.requests("/api/chargehistory"))
    assert fetched_before_kill < pages

    con = read_only_store(killed_db)  # the store opens after the kill
    try:
        killed_run = con.execute("SELECT run_id, status FROM ingest_runs").fetchall()
        stored_before = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
    finally:
        con.close()
    assert [status for _, status in killed_run] == ["running"] and stored_before > 0

    mark = len(fake.log)
    done = _run_cli(
        ["ingest", "zaptec", "--db", str(killed_db), "--endpoint", "chargehistory"],
        _env(fake),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # The rerun goes on from what was stored: per charger, not from the start of history.
    resumed = [r for r in fake.log[mark:] if r.path == "/api/chargehistory"]
    assert resumed and all("chargerid" in r.query for r in resumed)

    clean_db = tmp_path / "clean.duckdb"
    done = _run_cli(["ingest", "zaptec", "--db", str(clean_db)], _env(fake), timeout=300)
    assert done.returncode == 0, done.stderr
    assert fake.max_requests_per_second() <= 10
    killed, clean = read_only_store(killed_db), read_only_store(clean_db)
    try:
        assert store_snapshot(killed) == store_snapshot(clean)
        statuses = killed.execute("SELECT run_id, status FROM ingest_runs").fetchall()
    finally:
        killed.close()
        clean.close()
    assert dict(statuses)[killed_run[0][0]] == "aborted"
