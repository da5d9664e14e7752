"""SIGKILL a real ingestion at random moments: the store survives, whole, and a rerun completes it.

Each trial starts ``python -m zapanalytics ingest zaptec --dump ... --db ...`` on a generated
dump of a few seconds' work, waits for the store file to appear (migrations start), kills
the process with SIGKILL after a random delay across the whole run, then:

* the store opens (DuckDB replays or discards its write-ahead log);
* it holds no partial batch: the stored sessions are exactly those of the first *k*
  charge-history pages (one page = one transaction at the door), each with every one of its
  EnergyDetails rows, and no interval row without its session;
* running the ingestion again ends with the same content as one uninterrupted run.

The default suite runs three trials; ``make test-slow`` runs twenty-four, a third of them
killed twice before the final run.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.store import CONTRACT_TABLES, open_store

from .dumps import GeneratedDump, write_dump

REPO = Path(__file__).resolve().parents[2]
#: Columns that record when or in which run a row was written, not what it says.
_BOOKKEEPING = {"ingested_at", "quarantined_at", "run_id"}


def snapshot(con) -> dict[str, list[tuple]]:
    """Every contract table's content, bookkeeping columns left out, in a stable order."""
    content = {}
    for table in CONTRACT_TABLES:
        if table == "ingest_runs":
            continue
        columns = [
            r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            if r[0] not in _BOOKKEEPING
        ]
        listed = ", ".join(f'"{c}"' for c in columns)
        rows = con.execute(f'SELECT {listed} FROM "{table}" ORDER BY ALL').fetchall()  # noqa: S608 - catalogue names
        content[table] = rows
    return content


@dataclasses.dataclass
class Prepared:
    """A dump, the store one clean run makes of it, and how long the CLI works on it."""

    dump: GeneratedDump
    uninterrupted: dict[str, list[tuple]]
    span_s: float


def _trial_batch_bytes(dump: GeneratedDump) -> int:
    """About ten pages of the dump per transaction, so a kill can leave many different
    prefixes of whole batches behind (the default batch would hold every page at once)."""
    sizes = sorted(p.stat().st_size for p in dump.root.rglob("chargehistory/page_*.json"))
    return 10 * sizes[len(sizes) // 2]


def _start(dump: GeneratedDump, db: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ZAPANALYTICS_DEBUG"}
    env["ZAPANALYTICS_INGEST_BATCH_BYTES"] = str(_trial_batch_bytes(dump))
    return subprocess.Popen(
        [sys.executable, "-m", "zapanalytics", "ingest", "zaptec", "--dump", str(dump.root), "--db", str(db), "--json"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_for_store(process: subprocess.Popen, db: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not db.exists():
        if process.poll() is not None:
            raise AssertionError(f"ingestion ended before creating the store: {process.stderr.read()!r}")
        if time.monotonic() > deadline:
            raise AssertionError("the store never appeared")
        time.sleep(0.002)


def prepare(work: Path, n_sessions: int, page_size: int) -> Prepared:
    dump = write_dump(work / "dump", n_sessions=n_sessions, page_size=page_size, bad_every=97)
    con = open_store(work / "clean.duckdb")
    try:
        counts = ingest_zaptec_dump(con, dump.root)
        assert counts.rows_quarantined == dump.bad_items
        uninterrupted = snapshot(con)
    finally:
        con.close()
    # How long the CLI works on the store, from its creation to its exit.
    db = work / "timed.duckdb"
    process = _start(dump, db)
    _wait_for_store(process, db)
    began = time.monotonic()
    assert process.wait(timeout=600) == 0, process.stderr.read()
    process.stderr.close()
    return Prepared(dump, uninterrupted, time.monotonic() - began)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Prepared:
    return prepare(tmp_path_factory.mktemp("crash_small"), n_sessions=500, page_size=50)


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Prepared:
    # 75 pages in batches of about ten (_trial_batch_bytes), so a kill can leave many
    # different prefixes of whole pages behind (with 15 pages only 0, 10 and 15 were possible).
    return prepare(tmp_path_factory.mktemp("crash_large"), n_sessions=1500, page_size=20)


def kill_at_random(dump: GeneratedDump, db: Path, delay_s: float) -> bool:
    """Start an ingestion, SIGKILL it ``delay_s`` after the store appears; True if it was killed."""
    process = _start(dump, db)
    try:
        _wait_for_store(process, db)
        time.sleep(delay_s)
        if process.poll() is not None:
            return False  # finished first: the trial still checks the store
        process.send_signal(signal.SIGKILL)
        return True
    finally:
        process.wait(timeout=60)
        process.stderr.close()


def assert_whole_batches(con, dump: GeneratedDump) -> int:
    """The store holds whole pages only; return how many pages it holds."""
    present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(CONTRACT_TABLES) <= present, f"missing tables: {set(CONTRACT_TABLES) - present}"
    per_session = dict(con.execute(
        "SELECT s.session_id, count(d.session_id) FROM sessions s LEFT JOIN energy_details d USING (session_id)"
        " GROUP BY s.session_id"
    ).fetchall())
    for session_id, rows in per_session.items():
        assert rows == dump.details[session_id], f"session {session_id} has {rows} of {dump.details[session_id]} intervals"
    orphans = con.execute(
        "SELECT count(*) FROM energy_details d ANTI JOIN sessions s USING (session_id)"
    ).fetchall()[0][0]
    assert orphans == 0, "interval rows without their session"
    stored = set(per_session)
    pages_held = 0
    for page in dump.pages:
        if not set(page) <= stored:
            break
        pages_held += 1
    expected = {s for page in dump.pages[:pages_held] for s in page}
    assert stored == expected, (
        f"not a prefix of whole pages: {len(stored)} sessions stored, the first {pages_held} pages hold {len(expected)}"
    )
    return pages_held


def run_trials(prepared: Prepared, tmp_path: Path, trials: int, seed: int, double_kill_every: int = 0):
    dump = prepared.dump
    rng = random.Random(seed)
    killed = 0
    held = []
    for trial in range(trials):
        db = tmp_path / f"trial{trial}.duckdb"
        kills = 2 if double_kill_every and trial % double_kill_every == double_kill_every - 1 else 1
        for _ in range(kills):
            killed += kill_at_random(dump, db, rng.uniform(0.0, prepared.span_s * 1.05))
            con = open_store(db)  # must open: WAL replayed or dropped, migrations completed
            try:
                held.append(assert_whole_batches(con, dump))
                statuses = {r[0] for r in con.execute("SELECT status FROM ingest_runs").fetchall()}
                assert statuses <= {"running", "ok", "failed"}
            finally:
                con.close()
        con = open_store(db)
        try:
            ingest_zaptec_dump(con, dump.root)
            assert snapshot(con) == prepared.uninterrupted, f"trial {trial}: the rerun differs from a clean run"
        finally:
            con.close()
        for leftover in tmp_path.glob(f"trial{trial}.duckdb*"):
            leftover.unlink()
    return killed, held


def test_three_random_kills_leave_a_whole_store_that_a_rerun_completes(small, tmp_path):
    killed, held = run_trials(small, tmp_path, trials=3, seed=11)
    assert killed >= 1, "no trial was killed before it finished"


@pytest.mark.slow
def test_twenty_four_random_kills(large, tmp_path):
    killed, held = run_trials(large, tmp_path, trials=24, seed=20251026, double_kill_every=3)
    # The kills must land across the run, not all before or after the writes.
    assert killed >= 20
    assert len(set(held)) >= 4, f"kill points too clustered: pages held {sorted(held)}"
    print(f"crash trials: {killed} kills survived; pages held at kill: {sorted(held)}")
