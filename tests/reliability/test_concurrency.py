"""Two processes and one store: what DuckDB allows, and what zapanalytics supports.

DuckDB locks the database file per process: one process may open it for writing, or any
number of processes for reading, never both at once (an exclusive lock for a writer, a
shared one for readers; see duckdb.org/docs/current/connect/concurrency). So:

* a second writer gets :class:`~zapanalytics.store.StoreLockedError` saying who holds the
  file, and the CLI shows that as one line;
* a notebook cannot open the store, not even read-only, while an ingestion writes it; and an
  ingestion cannot start while a notebook has it open (its error says a reader holds it);
* several notebooks may read one store together;
* the collector (``zapanalytics ocpp serve``) never opens the store: it appends to its spool,
  and a notebook reads that spool (or loads it into its own DuckDB) while the collector keeps
  spooling. That is the supported way to watch live data.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from zapanalytics.store import StoreLockedError, open_store, read_only_store

from .dumps import write_dump

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "badinput" / "cli_driver.py"

_HOLD = """
import sys
from zapanalytics.store import open_store, read_only_store
con = (read_only_store if sys.argv[2] == "read" else open_store)(sys.argv[1])
print(con.execute("SELECT count(*) FROM sessions").fetchall()[0][0], flush=True)
sys.stdin.read()
"""


class Holder:
    """Another process holding the store open, for writing or for reading, until closed."""

    def __init__(self, db: Path, mode: str):
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(db), mode], cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            raise AssertionError(f"holder did not start: {line!r} {self.process.stderr.read()!r}")
        self.sessions = int(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.process.stdout.close()
        self.process.stderr.close()

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory) -> tuple[Path, Path]:
    """A store with sessions in it, and the dump it came from."""
    from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump

    work = tmp_path_factory.mktemp("concurrency")
    dump = write_dump(work / "dump", n_sessions=40, page_size=20)
    db = work / "zap.duckdb"
    con = open_store(db)
    ingest_zaptec_dump(con, dump.root)
    con.close()
    return db, dump.root


def _cli(commands: list[list[str]]) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "ZAPANALYTICS_DEBUG"}
    env.update(NO_COLOR="1", COLUMNS="300", PYTHONPATH=str(REPO))
    cases = [{"id": str(n), "argv": argv} for n, argv in enumerate(commands)]
    done = subprocess.run([sys.executable, str(DRIVER)], input=json.dumps(cases), capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=600, check=True)
    return json.loads(done.stdout)


def test_a_second_writer_gets_a_clear_error(filled_store, tmp_path):
    db, dump = filled_store
    with Holder(db, "write") as holder:
        with pytest.raises(StoreLockedError, match=rf"open for writing in another process \(PID {holder.process.pid}\)"):
            open_store(db)
        spool = tmp_path / "spool"
        spool.mkdir()
        (spool / "spool.json").write_text('{"format": "zapanalytics-ocpp-spool", "version": 1, "spool_id": "s"}')
        results = _cli([
            ["ingest", "zaptec", "--dump", str(dump), "--db", str(db)],
            ["ingest", "ocpp", "--spool", str(spool), "--db", str(db)],
            ["ingest", "submeter", str(REPO / "tests/badinput/corpus/submeter/readings_far_future.csv"), "--db", str(db)],
            ["bill", "--db", str(db), "--month", "2025-09", "--method", "flat", "--price", "2.5", "--out", str(tmp_path / "bills")],
        ])
    for result in results:
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["exit_code"] in (1, 2), result
        assert len(lines) == 1 and "Traceback" not in result["stderr"], result["stderr"]
        assert re.fullmatch(r"error: the store .* is open for writing in another process \(PID \d+\); "
                            r"DuckDB allows one writer\. .*", lines[0]), lines[0]


def test_an_ingestion_waits_for_a_notebook_that_has_the_store_open(filled_store):
    db, _ = filled_store
    with Holder(db, "read") as notebook:
        assert notebook.sessions == 40
        with pytest.raises(StoreLockedError, match=r"open for reading in another process .* e\.g\. a notebook"):
            open_store(db)
        # Readers share the file.
        con = read_only_store(db)
        assert con.execute("SELECT count(*) FROM sessions").fetchall() == [(40,)]
        con.close()
    open_store(db).close()  # free again once the notebook closed it


def test_duckdb_lets_no_reader_in_while_a_writer_holds_the_store(filled_store):
    db, _ = filled_store
    with Holder(db, "write"):
        with pytest.raises(StoreLockedError, match="open for writing in another process"):
            read_only_store(db)
    con = read_only_store(db)
    assert con.execute("SELECT count(*) FROM sessions").fetchall() == [(40,)]
    con.close()


# -- the supported live path: the collector spools, a notebook reads the spool ------------------


def _start_collector(spool: Path) -> tuple[subprocess.Popen, int]:
    env = {k: v for k, v in os.environ.items() if k != "ZAPANALYTICS_DEBUG"}
    process = subprocess.Popen(
        [sys.executable, "-m", "zapanalytics", "ocpp", "serve", "--spool", str(spool), "--port", "0", "--no-auth"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
    if match is None:
        process.kill()
        raise AssertionError(f"collector did not start: {line!r} {process.stderr.read()!r}")
    return process, int(match.group(1))


async def _charge_point(port: int, frames: int, acknowledged: list[int], pause_s: float) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/ocpp/ZPR700001", subprotocols=["ocpp1.6"]) as ws:
        await ws.send(json.dumps([2, "boot", "BootNotification",
                                  {"chargePointVendor": "Zaptec", "chargePointModel": "ZAPTEC PRO"}]))
        json.loads(await ws.recv())
        for n in range(frames):
            stamp = f"2025-03-10T{10 + n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
            sample = {"value": str(1_000_000 + 10 * n), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
            await ws.send(json.dumps([2, f"m{n}", "MeterValues",
                                      {"connectorId": 1, "meterValue": [{"timestamp": stamp, "sampledValue": [sample]}]}]))
            answer = json.loads(await ws.recv())
            assert answer[0] == 3, answer
            acknowledged.append(n)
            await asyncio.sleep(pause_s)


def test_a_notebook_reads_while_the_collector_keeps_spooling(tmp_path):
    from zapanalytics.ingest.ocpp.load import load_spool
    from zapanalytics.ingest.spool import spool_records

    spool = tmp_path / "spool"
    collector, port = _start_collector(spool)
    acknowledged: list[int] = []
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            asyncio.run(_charge_point(port, frames=240, acknowledged=acknowledged, pause_s=0.01))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    sender = threading.Thread(target=drive)
    try:
        sender.start()
        # The notebook: its own DuckDB, fed from the spool again and again while frames arrive.
        notebook = tmp_path / "notebook.duckdb"
        seen: list[tuple[int, int, int]] = []
        while sender.is_alive() or not seen:
            lines = sum(1 for _ in spool_records(spool))
            con = open_store(notebook)
            try:
                load_spool(con, spool)
                stored = con.execute("SELECT count(*) FROM meter_values").fetchall()[0][0]
            finally:
                con.close()
            seen.append((len(acknowledged), lines, stored))
            time.sleep(0.05)
        sender.join(timeout=120)
        assert not errors, errors
        # The collector holds no store: no DuckDB file among its open files.
        held = [os.readlink(f"/proc/{collector.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{collector.pid}/fd")]
        assert not any(".duckdb" in path for path in held), held
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=60)
        collector.stdout.close()
        collector.stderr.close()
    reads_while_spooling = [s for s in seen if s[0] < 240]
    assert len(reads_while_spooling) >= 2, f"the notebook read only {len(seen)} times"
    stored_counts = [s[2] for s in seen]
    assert stored_counts == sorted(stored_counts), "what the notebook saw went backwards"
    assert len({s for _, _, s in reads_while_spooling}) >= 2, "the notebook never saw new data arrive"
    # Every acknowledged frame is on disk and loads: nothing was lost to the concurrent reads.
    con = open_store(tmp_path / "notebook.duckdb")
    try:
        load_spool(con, spool)
        assert con.execute("SELECT count(*) FROM meter_values").fetchall() == [(240,)]
    finally:
        con.close()
