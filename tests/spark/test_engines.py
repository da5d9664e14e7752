"""The kernels on Spark ``local[2]`` give exactly what the local loop gives.

Every test here shares one Spark session (``conftest.spark``) and one three-installation
fleet with faults and the DST change (``conftest.fleet``).
"""

from __future__ import annotations

import json
import re

import duckdb
import pytest
from typer.testing import CliRunner

from zapanalytics.cli import app
from zapanalytics.dataset import export_dataset, read_manifest, spark_schema
from zapanalytics.engines.local import run_local
from zapanalytics.engines.spark import run_spark

pytestmark = pytest.mark.spark

BILLING = {"method": "spot", "now": "2026-01-01T00:00:00+00:00"}


def _documents(table) -> list[dict]:
    return [json.loads(text) for text in table.column("document_json").to_pylist()]


@pytest.mark.parametrize(
    ("kernel", "params"),
    [("replay", {}), ("accuracy", {}), ("gain", {}), ("billing", BILLING)],
)
def test_each_kernel_gives_the_same_result_on_spark_as_locally(fleet, spark, kernel, params):
    local = run_local(fleet.dataset, kernel, params=params)
    distributed = run_spark(fleet.dataset, kernel, spark=spark, params=params)
    assert local.num_rows > 0
    assert distributed.schema == local.schema
    assert distributed.to_pylist() == local.to_pylist()
    documents = _documents(local)
    if kernel == "replay":
        assert len(documents) == 3
        assert {d["installation"]["network_type"] for d in documents} == {"TN", "IT"}
        assert sum(len(d["findings"]) for d in documents) > 0  # the co-op's ignored allocation
    elif kernel == "accuracy":
        assert len(documents) >= 3
        assert sum(d["windows"] for d in documents) > 0
    elif kernel == "gain":
        assert len({d["chargers"][0]["installation_id"] for d in documents}) == 3
    else:
        assert len({d["installation_id"] for d in documents}) == 3
        assert {d["month"] for d in documents} == {"2025-10", "2025-11"}
        assert not [d for d in documents if "error" in d]
        assert all(d["total_energy_kwh"] > 0 for d in documents)


def test_filters_pick_the_same_groups_on_both_engines(fleet, spark):
    manifest = read_manifest(fleet.dataset)
    first = sorted(
        p["installation"] for p in manifest["tables"]["installations"]["partitions"].values()
    )[0]
    for kernel, params in (("replay", {}), ("billing", BILLING)):
        local = run_local(
            fleet.dataset, kernel, installations=[first], month="2025-10", params=params
        )
        distributed = run_spark(
            fleet.dataset,
            kernel,
            spark=spark,
            installations=[first],
            month="2025-10",
            params=params,
        )
        assert distributed.to_pylist() == local.to_pylist(), kernel
    replayed = _documents(
        run_local(fleet.dataset, "replay", installations=[first], month="2025-10")
    )
    assert [d["installation"]["installation_id"] for d in replayed] == [first]
    # The month's replay spans the local month: 31 days and one hour (the DST change).
    assert replayed[0]["start_utc"] == "2025-09-30T22:00:00+00:00"
    assert replayed[0]["end_utc"] == "2025-10-31T23:00:00+00:00"


@pytest.mark.parametrize(
    "command",
    [
        ["bill", "--method", "spot", "--month", "2025-10"],
        ["audit", "--month", "2025-10"],
        ["replay"],
    ],
    ids=["bill", "audit", "replay"],
)
def test_the_cli_prints_the_same_json_with_either_engine(fleet, spark, command):
    runner = CliRunner()
    outputs = {}
    for engine in ("local", "spark"):
        result = runner.invoke(
            app,
            [*command, "--dataset", str(fleet.dataset), "--engine", engine,
             "--spark-master", "local[2]", "--json"],
        )  # fmt: skip
        assert result.exit_code in (0, 1), f"{result.output}\n{result.exception}"
        outputs[engine] = result.stdout
    assert outputs["spark"] == outputs["local"]
    document = json.loads(outputs["local"])
    assert document["month"] == (None if command == ["replay"] else "2025-10")
    if command[0] == "bill":
        assert len(document["statements"]) == 3
    elif command[0] == "audit":
        assert document["accuracy"] and document["gain_regression"]
        # Chargers are named as everywhere else: "name (serial)" beside the id.
        named = [d["charger_name"] for d in document["accuracy"]] + [
            c["charger_name"] for g in document["gain_regression"] for c in g["chargers"]
        ]
        assert named and all(re.fullmatch(r".+ \(\S+\)", name) for name in named), named
    else:
        assert len(document["installations"]) == 3


def test_spark_reads_the_dataset_with_the_contract_types(fleet, spark):
    manifest = read_manifest(fleet.dataset)
    columns = manifest["tables"]["sessions"]["columns"]
    frame = spark.read.schema(spark_schema(columns)).parquet(str(fleet.dataset / "sessions"))
    types = dict(frame.dtypes)
    assert types["installation"] == "string" and types["month"] == "string"
    assert types["start_utc"] == "timestamp" and types["energy_kwh"] == "double"
    assert types["is_void"] == "boolean" and types["commit_metadata"] == "int"
    con = duckdb.connect(str(fleet.store), read_only=True)
    try:
        expected = con.execute("SELECT count(*), sum(energy_kwh) FROM sessions").fetchall()[0]
    finally:
        con.close()
    got = frame.selectExpr("count(*)", "sum(energy_kwh)").collect()[0]
    assert got[0] == expected[0]
    assert got[1] == pytest.approx(expected[1], rel=1e-12)


def test_spark_keeps_an_id_that_looks_like_a_number_as_text(spark, tmp_path):
    from zapanalytics.store import open_store

    con = open_store(tmp_path / "zap.duckdb")
    try:
        con.execute(
            "INSERT INTO installations (installation_id, name, timezone, source, ingested_at)"
            " VALUES ('00123', 'Tall id', 'Europe/Oslo', 'test', TIMESTAMPTZ '2025-10-01 00:00:00+00')"
        ).fetchall()
        export_dataset(con, tmp_path / "ds")
    finally:
        con.close()
    columns = read_manifest(tmp_path / "ds")["tables"]["installations"]["columns"]
    rows = (
        spark.read.schema(spark_schema(columns))
        .parquet(str(tmp_path / "ds" / "installations"))
        .select("installation", "installation_id")
        .collect()
    )
    assert [tuple(r) for r in rows] == [("00123", "00123")]


def test_the_spark_submit_entry_runs_the_cli_on_the_running_session(
    fleet, spark, capsys, monkeypatch
):
    import sys

    from zapanalytics.engines import submit

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the entry point sets its own

    arguments = ["audit", "--dataset", str(fleet.dataset), "--month", "2025-11", "--json"]
    with pytest.raises(SystemExit):  # the CLI exits with the audit's code
        submit.main(arguments)
    on_spark = capsys.readouterr().out
    local = CliRunner().invoke(app, [*arguments, "--engine", "local"])
    assert on_spark == local.stdout
    assert json.loads(on_spark)["month"] == "2025-11"
