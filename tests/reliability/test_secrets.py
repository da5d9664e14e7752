"""A full Zaptec sync with a distinctive password and token leaves them in no output.

The sync runs against the local fake of the Zaptec API (real HTTP on 127.0.0.1), in process
with every logger at DEBUG, and through the console script; then a report, statements, an
audit and exports are made from what it stored. Every output is searched for the password,
the token and their encodings (URL-encoded as in the token request, base64 as in a Basic
header): log records, exception messages and tracebacks, CLI stdout and stderr, every file
written (DuckDB store and its WAL byte by byte and through SQL over every text column,
saved API dumps, HTML, JSON, CSV, the XML inside XLSX, Parquet values).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import traceback
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from zapanalytics.store import open_store

from .dumps import write_dump

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "badinput" / "cli_driver.py"

USERNAME = "styret@sameie.example"
PASSWORD = "Pw-Q7xZ!3kT9#vLm-DISTINCT"
TOKEN = "tok-8F3a91Cc7Be24dd0-DISTINCT"
WRONG_PASSWORD = "Wrong-Pw-M2y9&qR-DISTINCT"


def secret_forms() -> dict[str, bytes]:
    """Every spelling of a secret an output could carry."""
    forms = {}
    for name, secret in (("password", PASSWORD), ("token", TOKEN), ("wrong password", WRONG_PASSWORD)):
        spellings = {
            secret,
            urllib.parse.quote(secret, safe=""),
            urllib.parse.quote_plus(secret),
            json.dumps(secret)[1:-1],
            base64.b64encode(secret.encode()).decode(),
            base64.b64encode(f"{USERNAME}:{secret}".encode()).decode(),
        }
        for spelling in spellings:
            forms[f"{name} as {spelling!r}"] = spelling.encode()
    return forms


def leaks_in(data: bytes, where: str) -> list[str]:
    return [f"{form} in {where}" for form, needle in secret_forms().items() if needle in data]


def leaks_in_file(path: Path) -> list[str]:
    found = leaks_in(path.read_bytes(), str(path))
    if zipfile.is_zipfile(path):  # XLSX: the cells live in compressed XML
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                found += leaks_in(archive.read(member), f"{path}!{member}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        found += leaks_in(json.dumps(table.to_pylist(), default=str).encode(), f"{path} (values)")
    if path.suffix == ".duckdb":
        found += leaks_in_store(path)
    return found


def leaks_in_store(path: Path) -> list[str]:
    """Search every text column of every table through SQL (DuckDB compresses strings on disk)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    found = []
    try:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
        ).fetchall()
        for table, column in columns:
            for form, needle in secret_forms().items():
                hits = con.execute(
                    f'SELECT count(*) FROM "{table}" WHERE contains("{column}", ?)',  # noqa: S608 - catalogue names
                    [needle.decode()],
                ).fetchall()[0][0]
                if hits:
                    found.append(f"{form} in {path}:{table}.{column}")
    finally:
        con.close()
    return found


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    from zapanalytics.testing.zaptec_fake import ZaptecFake

    dump = write_dump(tmp_path_factory.mktemp("secrets") / "account", n_sessions=60, page_size=30)
    with ZaptecFake.from_dump(
        dump.root, username=USERNAME, password=PASSWORD, issue_token=lambda: TOKEN, rate_limit=None
    ) as running:
        yield running


def _cli(cases: list[dict], cwd: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAPTEC_", "ZAPANALYTICS_"))}
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(DRIVER)], input=json.dumps(cases), capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=900, check=True)
    return json.loads(done.stdout)


def test_no_output_of_a_full_sync_holds_a_secret(fake, tmp_path, caplog):
    from zapanalytics.ingest.zaptec.api import ZaptecAuthError, ZaptecClient
    from zapanalytics.ingest.zaptec.sync import sync_zaptec
    from zapanalytics.pipeline import run_demo

    caplog.set_level(logging.DEBUG)
    texts: dict[str, str] = {}

    # In process: a full sync, then an incremental one through an expired token and a 503.
    db = tmp_path / "inprocess.duckdb"
    con = open_store(db)
    try:
        with ZaptecClient(USERNAME, PASSWORD, base_url=fake.base_url) as client:
            first = sync_zaptec(con, client, price_area="NO1", save_dir=tmp_path / "saved")
            fake.expire_tokens()
            fake.inject("/api/chargehistory", 503, times=1)
            second = sync_zaptec(con, client)
            texts["repr of the client"] = repr(client)
        texts["sync results"] = json.dumps([first.as_dict(), second.as_dict()], default=str)
    finally:
        con.close()
    assert first.counts.rows_stored > 60 and fake.tokens_granted >= 2, "the sync did not run as meant"
    stored = open_store(db)
    assert stored.execute("SELECT count(*) FROM sessions").fetchall() == [(60,)]
    stored.close()

    # A refused login: the exception, its chain and its traceback.
    with ZaptecClient(USERNAME, WRONG_PASSWORD, base_url=fake.base_url) as client:
        with pytest.raises(ZaptecAuthError) as refused:
            client.login()
    texts["refused login"] = "".join(traceback.format_exception(refused.value)) + repr(refused.value)

    # Through the console script: a sync, a refused login (plain and --debug), then the
    # statements, the audit and the exports made from the synced store.
    cli_db = tmp_path / "cli.duckdb"
    creds = {"ZAPTEC_USERNAME": USERNAME, "ZAPTEC_PASSWORD": PASSWORD}
    wrong = {"ZAPTEC_USERNAME": USERNAME, "ZAPTEC_PASSWORD": WRONG_PASSWORD}
    sync = ["ingest", "zaptec", "--db", str(cli_db), "--base-url", fake.base_url, "--price-area", "NO1",
            "--save", str(tmp_path / "cli_saved")]
    cases = [
        {"id": "sync", "argv": sync, "env": creds},
        {"id": "sync --json", "argv": [*sync, "--json"], "env": creds},
        {"id": "refused", "argv": sync, "env": wrong},
        {"id": "refused --debug", "argv": [*sync, "--debug"], "env": wrong},
        {"id": "bill", "argv": ["bill", "--db", str(cli_db), "--month", "2025-09", "--method", "flat",
                                "--price", "2.5", "--out", str(tmp_path / "bills"), "--json"]},
        {"id": "audit", "argv": ["audit", "--db", str(cli_db), "--out", str(tmp_path / "audit"), "--json"]},
    ]
    cases += [
        {"id": f"export {table} {fmt}",
         "argv": ["export", "--db", str(cli_db), "--table", table, "--format", fmt,
                  "--out", str(tmp_path / "exports" / (f"{table}.{fmt}" if fmt != "parquet" else table))]}
        for table, fmt in (("sessions", "csv"), ("sessions", "xlsx"), ("sessions", "parquet"),
                           ("ingest_runs", "csv"), ("ingest_runs", "xlsx"), ("installations", "parquet"))
    ]
    results = {r["id"]: r for r in _cli(cases, tmp_path)}
    assert results["sync"]["exit_code"] == 0, results["sync"]["stderr"]
    again = json.loads(results["sync --json"]["stdout"])  # incremental: from the cursor on
    assert again["rows_in"] == again["rows_stored"] + again["rows_quarantined"]
    assert results["refused"]["exit_code"] == 2 and "error:" in results["refused"]["stderr"]
    assert "Traceback" in results["refused --debug"]["stderr"], "--debug shows the traceback"
    for name in ("bill", "audit"):
        assert results[name]["exit_code"] in (0, 1), results[name]["stderr"]
    for name, result in results.items():
        if name.startswith("export"):
            assert result["exit_code"] == 0, (name, result["stderr"])
        texts[f"CLI {name} stdout"] = result["stdout"]
        texts[f"CLI {name} stderr"] = result["stderr"]

    # The real console script once, end to end.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPANALYTICS_")}
    env.update(creds)
    real = subprocess.run([sys.executable, "-m", "zapanalytics", *sync[:3], str(tmp_path / "real.duckdb"),
                           *sync[4:-2], "--json"], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=300, check=False)
    assert real.returncode == 0, real.stderr
    texts["python -m zapanalytics stdout"] = real.stdout
    texts["python -m zapanalytics stderr"] = real.stderr

    # The report built from the saved dump.
    demo = run_demo(tmp_path / "demo", tmp_path / "saved")
    assert Path(getattr(demo.report, "path", demo.report)).is_file()

    texts["log records"] = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    assert any("401" in r.getMessage() or "retry" in r.getMessage() for r in caplog.records), (
        "the token expiry and the 503 should have been logged"
    )

    leaks = []
    for where, text in texts.items():
        leaks += leaks_in(text.encode("utf-8", "backslashreplace"), where)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".xlsx" for p in files) and any(p.suffix == ".parquet" for p in files)
    assert any(p.suffix == ".html" for p in files) and any(p.name.endswith(".duckdb") for p in files)
    for path in files:
        leaks += leaks_in_file(path)
    print(f"secrets: searched {len(texts)} texts and {len(files)} files; leaks found: {len(leaks)}")
    assert leaks == []


def test_the_search_finds_a_planted_secret(tmp_path):
    """The search itself works: a secret in a store column, an XLSX cell or a log is found."""
    import openpyxl

    db = tmp_path / "planted.duckdb"
    con = open_store(db)
    con.execute("INSERT INTO ingest_runs (run_id, source, started_at, status, error) VALUES"
                " ('r', 's', now(), 'failed', ?)", [f"login failed for {PASSWORD}"])
    con.close()
    book = openpyxl.Workbook()
    book.active.append([TOKEN])
    book.save(tmp_path / "planted.xlsx")
    assert leaks_in_file(db)
    assert any("!xl/" in leak for leak in leaks_in_file(tmp_path / "planted.xlsx"))
    encoded = base64.b64encode(f"{USERNAME}:{WRONG_PASSWORD}".encode())
    assert leaks_in(b"Authorization: Basic " + encoded, "a header")
