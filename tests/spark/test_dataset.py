"""``export --dataset``: every table as incremental, Hive-partitioned Parquet with a manifest.

Read back by DuckDB here (Spark reads it in ``test_engines.py``): the contract's columns and
types, ids that look like numbers kept as text, and a second export after one more day of
history rewriting only the partitions that day touched.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.conftest import CHARGERS, INSTALLATION_ID, _session, dump_sessions, write_dump
from zapanalytics.cli import app
from zapanalytics.dataset import (
    DATASET_TABLES,
    MANIFEST_NAME,
    duckdb_relation,
    export_dataset,
    read_manifest,
    read_partitions,
)
from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
from zapanalytics.pipeline import ingest_dataset
from zapanalytics.store import open_store

NEW_DAY_SESSION = _session(
    9, CHARGERS[1], "2025-11-03T17:00:00", "2025-11-03T19:00:00",
    [("2025-11-03T17:00:00+00:00", 0.0), ("2025-11-03T18:00:00+00:00", 6.0),
     ("2025-11-03T19:00:00+00:00", 5.5)],
)  # fmt: skip


@pytest.fixture(scope="module")
def two_installations(tmp_path_factory) -> Path:
    """A store with a firmware_ref home (Oct 30 - Nov 1 2025) and the dump's co-op (DST week)."""
    from firmware_ref.dataset import DatasetSpec, generate_dataset

    root = tmp_path_factory.mktemp("two")
    generate_dataset(
        root / "home",
        DatasetSpec(days=3, n_chargers=2, seed=5, start=dt.date(2025, 10, 30), kind="home"),
    )
    con = open_store(root / "zap.duckdb")
    try:
        ingest_dataset(con, root / "home")
        ingest_zaptec_dump(con, write_dump(root / "dump"), price_area="NO1")
    finally:
        con.close()
    return root


def _store_copy(source: Path, target: Path) -> Path:
    target.write_bytes((source / "zap.duckdb").read_bytes())
    return target


def _store_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]


def test_every_table_is_written_with_a_manifest_that_counts_its_rows(two_installations, tmp_path):
    con = duckdb.connect(
        str(_store_copy(two_installations, tmp_path / "zap.duckdb")), read_only=True
    )
    try:
        summary = export_dataset(con, tmp_path / "ds")
        manifest = read_manifest(tmp_path / "ds")
        for table in DATASET_TABLES:
            partitions = manifest["tables"][table]["partitions"]
            assert sum(p["rows"] for p in partitions.values()) == _store_rows(con, table), table
            assert summary.tables[table]["written"] == len(partitions)
        sessions = manifest["tables"]["sessions"]["partitions"]
        # The dump's co-op has sessions in October only; the home in October and November.
        assert {(p["installation"], p["month"]) for p in sessions.values()} >= {
            (INSTALLATION_ID, "2025-10")
        }
        october = sessions[f"sessions/installation={INSTALLATION_ID}/month=2025-10"]
        assert october["rows"] == 4
        assert october["min_utc"] == "2025-10-24T16:02:11.500000+00:00"
        assert october["max_utc"] == "2025-10-27T06:00:00+00:00"
        assert len(october["sha256"]) == 64
        assert (
            manifest["tables"]["installations"]["partitions"][
                f"installations/installation={INSTALLATION_ID}/month=_all"
            ]["rows"]
            == 1
        )
        # Prices belong to no installation; their month is the UTC month.
        assert {p["installation"] for p in manifest["tables"]["prices"]["partitions"].values()} == {
            "_none"
        }
        assert not list((tmp_path / "ds").rglob("*.tmp"))
    finally:
        con.close()


def test_duckdb_reads_the_contract_columns_with_the_store_types(two_installations, tmp_path):
    store = _store_copy(two_installations, tmp_path / "zap.duckdb")
    con = duckdb.connect(str(store), read_only=True)
    try:
        export_dataset(con, tmp_path / "ds")
        reader = duckdb.connect()
        for table in ("sessions", "meter_values", "reference_readings", "installations", "prices"):
            relation = duckdb_relation(reader, tmp_path / "ds", table)
            expected = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            got = list(zip(relation.columns, [str(t) for t in relation.types], strict=True))
            assert got[: len(expected)] == [(n, t) for n, t in expected], table
            assert got[len(expected) :] == [("installation", "VARCHAR"), ("month", "VARCHAR")]
            columns = ", ".join(f'"{n}"' for n, _ in expected)
            from_store = con.sql(f'SELECT {columns} FROM "{table}" ORDER BY ALL').fetchall()
            from_dataset = relation.query("d", f"SELECT {columns} FROM d ORDER BY ALL").fetchall()
            assert from_dataset == from_store, table
    finally:
        con.close()


def test_an_id_that_looks_like_a_number_stays_text(tmp_path):
    con = open_store(tmp_path / "zap.duckdb")
    try:
        con.execute(
            "INSERT INTO installations (installation_id, name, timezone, source, ingested_at)"
            " VALUES ('00123', 'Tall id', 'Europe/Oslo', 'test', TIMESTAMPTZ '2025-10-01 00:00:00+00')"
        ).fetchall()
        con.execute(
            "INSERT INTO sessions (session_id, charger_id, installation_id, start_utc, end_utc,"
            " energy_kwh, source, ingested_at) VALUES ('s1', '0042', '00123',"
            " TIMESTAMPTZ '2025-10-26 00:30:00+00', TIMESTAMPTZ '2025-10-26 02:30:00+00', 7.5,"
            " 'test', TIMESTAMPTZ '2025-10-27 00:00:00+00')"
        ).fetchall()
        export_dataset(con, tmp_path / "ds")
    finally:
        con.close()
    assert (tmp_path / "ds" / "sessions" / "installation=00123" / "month=2025-10").is_dir()
    reader = duckdb.connect()
    row = (
        duckdb_relation(reader, tmp_path / "ds", "sessions")
        .query("d", "SELECT installation, installation_id, charger_id, month FROM d")
        .fetchall()
    )
    assert row == [("00123", "00123", "0042", "2025-10")]
    arrow = read_partitions(tmp_path / "ds", "sessions", installations=["00123"])
    assert arrow.column("installation").to_pylist() == ["00123"]
    assert str(arrow.schema.field("installation_id").type) == "string"


def _mtimes(root: Path) -> dict[str, int]:
    return {
        str(path.parent.relative_to(root)): path.stat().st_mtime_ns
        for path in root.rglob("data.parquet")
    }


def test_a_second_export_rewrites_only_what_one_more_day_touched(two_installations, tmp_path):
    store = _store_copy(two_installations, tmp_path / "zap.duckdb")
    dataset = tmp_path / "ds"
    runner = CliRunner()
    first = runner.invoke(app, ["export", "--db", str(store), "--dataset", str(dataset), "--json"])
    assert first.exit_code == 0, first.output
    before_manifest = read_manifest(dataset)
    before = _mtimes(dataset)

    again = runner.invoke(app, ["export", "--db", str(store), "--dataset", str(dataset), "--json"])
    assert json.loads(again.output)["partitions_written"] == 0
    assert _mtimes(dataset) == before

    # One more day of charge history for the co-op: a session on 3 November.
    con = open_store(store)
    try:
        ingest_zaptec_dump(
            con,
            write_dump(tmp_path / "next", [*dump_sessions(), NEW_DAY_SESSION]),
            price_area="NO1",
        )
    finally:
        con.close()
    result = runner.invoke(app, ["export", "--db", str(store), "--dataset", str(dataset), "--json"])
    assert result.exit_code == 0, result.output
    written = set(json.loads(result.output)["written"])
    day = f"installation={INSTALLATION_ID}/month=2025-11"
    this_month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    assert written - {f"ingest_runs/installation=_none/month={this_month}"} == {
        f"sessions/{day}",
        f"canonical_sessions/{day}",
        f"energy_details/{day}",
    }
    after = _mtimes(dataset)
    changed = {key for key in after if after[key] != before.get(key)}
    assert changed == written
    after_manifest = read_manifest(dataset)
    for table, entry in before_manifest["tables"].items():
        for key, partition in entry["partitions"].items():
            if key not in written:
                assert after_manifest["tables"][table]["partitions"][key] == partition
    assert after_manifest["tables"]["sessions"]["partitions"][f"sessions/{day}"]["rows"] == 1
    rows = pq.read_table(dataset / f"sessions/{day}/data.parquet")
    assert rows.column("session_id").to_pylist() == [NEW_DAY_SESSION["Id"]]


def test_a_partition_whose_rows_are_gone_is_removed(two_installations, tmp_path):
    store = _store_copy(two_installations, tmp_path / "zap.duckdb")
    dataset = tmp_path / "ds"
    con = open_store(store)
    try:
        export_dataset(con, dataset)
        con.execute("DELETE FROM quarantine").fetchall()
        con.execute(
            "DELETE FROM prices WHERE start_utc >= TIMESTAMPTZ '2025-11-01 00:00:00+00'"
        ).fetchall()
        summary = export_dataset(con, dataset)
    finally:
        con.close()
    assert summary.tables["prices"]["removed"] == 1
    assert not (dataset / "prices" / "installation=_none" / "month=2025-11").exists()
    manifest = json.loads((dataset / MANIFEST_NAME).read_text())
    assert (
        "prices/installation=_none/month=2025-11" not in manifest["tables"]["prices"]["partitions"]
    )


def test_export_dataset_refuses_a_missing_store_in_one_line(tmp_path):
    result = CliRunner().invoke(
        app, ["export", "--db", str(tmp_path / "none.duckdb"), "--dataset", str(tmp_path / "ds")]
    )
    assert result.exit_code != 0
    assert "no such store" in str(result.exception) + result.output


def test_small_write_batches_give_the_same_files(two_installations, tmp_path, monkeypatch):
    import zapanalytics.dataset as dataset_module

    store = _store_copy(two_installations, tmp_path / "zap.duckdb")
    con = duckdb.connect(str(store), read_only=True)
    try:
        export_dataset(con, tmp_path / "whole")
        monkeypatch.setattr(dataset_module, "ROWS_PER_BATCH", 50)
        export_dataset(con, tmp_path / "batched")
    finally:
        con.close()
    whole, batched = read_manifest(tmp_path / "whole"), read_manifest(tmp_path / "batched")
    for table, entry in whole["tables"].items():
        for key, partition in entry["partitions"].items():
            other = batched["tables"][table]["partitions"][key]
            assert (other["rows"], other["sha256"]) == (partition["rows"], partition["sha256"])
            assert pq.read_table(tmp_path / "batched" / other["file"]).equals(
                pq.read_table(tmp_path / "whole" / partition["file"])
            )


def test_a_second_export_at_once_is_refused_and_stale_files_are_removed(tmp_path):
    import fcntl

    from zapanalytics.dataset import DatasetError

    con = open_store(tmp_path / "zap.duckdb")
    try:
        export_dataset(con, tmp_path / "ds")
        stale = tmp_path / "ds" / "prices" / "installation=_none" / "month=2025-10"
        stale.mkdir(parents=True)
        (stale / ".data.parquet.999.tmp").write_bytes(b"half a file")
        with open(tmp_path / "ds" / ".export.lock", "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            with pytest.raises(DatasetError, match="another export"):
                export_dataset(con, tmp_path / "ds")
        export_dataset(con, tmp_path / "ds")
    finally:
        con.close()
    assert not (stale / ".data.parquet.999.tmp").exists()
