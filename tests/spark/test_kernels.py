"""The kernels: the same result whatever the row order or string flavour of their input,
and the ``--dataset`` options' one-line errors. No Spark needed."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.dataset import read_manifest
from zapanalytics.engines.cli import spark_error_line
from zapanalytics.engines.kernels import KERNELS
from zapanalytics.engines.local import _by_charger, _inputs, installation_price_areas
from zapanalytics.engines.plan import run_scope, shift_month


def _shuffled(table: pa.Table, seed: int) -> pa.Table:
    order = list(range(table.num_rows))
    random.Random(seed).shuffle(order)
    return table.take(pa.array(order, pa.int64()))


def _large_strings(table: pa.Table) -> pa.Table:
    schema = pa.schema(
        pa.field(f.name, pa.large_string()) if f.type == pa.string() else f for f in table.schema
    )
    return table.cast(schema)


def _group_inputs(fleet, kernel_name: str, month: str | None = None):
    kernel = KERNELS[kernel_name]
    manifest = read_manifest(fleet.dataset)
    areas = installation_price_areas(fleet.dataset, manifest)
    scope = run_scope(manifest, kernel, month=month, price_areas=areas)
    installation = scope.installations[0]
    group_month = month if kernel.group_by != "installation_month" else scope.targets[0][1]
    inputs = _inputs(
        fleet.dataset, manifest, kernel, installation, group_month, areas[installation]
    )
    key = {"installation": installation}
    if kernel.group_by == "installation_month":
        key["month"] = group_month
    return kernel, inputs, key


@pytest.mark.parametrize(
    ("kernel_name", "params"),
    [("replay", {}), ("billing", {"method": "spot", "now": "2026-01-01T00:00:00+00:00"})],
)
def test_row_order_and_large_strings_do_not_change_a_result(fleet, kernel_name, params):
    kernel, inputs, key = _group_inputs(fleet, kernel_name)
    expected = kernel.function(inputs, key, params)
    assert expected.num_rows == 1
    assert "error" not in json.loads(expected.column("document_json")[0].as_py())
    for seed in (1, 2):
        mixed = {name: _large_strings(_shuffled(t, seed)) for name, t in inputs.items()}
        assert kernel.function(mixed, key, params).equals(expected)
    assert expected.schema.field("document_json").type == pa.string()  # not large_string


def test_the_accuracy_kernel_ignores_row_order(fleet):
    kernel, inputs, _ = _group_inputs(fleet, "accuracy")
    by_charger = _by_charger(inputs)
    charger_id, own = next(
        (c, t) for c, t in by_charger.items() if t["reference_readings"].num_rows
    )
    expected = kernel.function(own, {"charger": charger_id}, {})
    shuffled = {name: _shuffled(t, 7) for name, t in own.items()}
    assert kernel.function(shuffled, {"charger": charger_id}, {}).equals(expected)
    assert json.loads(expected.column("document_json")[0].as_py())["windows"] > 0


def test_a_bill_that_cannot_be_made_is_said_per_installation_month(fleet):
    kernel, inputs, key = _group_inputs(fleet, "billing")
    inputs = {**inputs, "prices": inputs["prices"].slice(0, 0)}
    document = json.loads(
        kernel.function(inputs, key, {"method": "spot"}).column("document_json")[0].as_py()
    )
    assert document["installation_id"] == key["installation"]
    assert "no spot prices" in document["error"]


def test_months_shift_across_years():
    assert shift_month("2025-01", -1) == "2024-12"
    assert shift_month("2025-12", 1) == "2026-01"
    assert shift_month("2025-10", 0) == "2025-10"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["replay", "--engine", "dask"], "--engine must be local or spark"),
        (["replay", "--fuse", "80"], "--fuse works with --db only"),
        (["bill", "--method", "spot", "--month", "2025-13"], "--month must be YYYY-MM"),
        (["audit", "--installation", "nope"], "no installation 'nope'"),
    ],
)
def test_dataset_options_fail_in_one_line(fleet, arguments, message):
    result = CliRunner().invoke(app, [*arguments, "--dataset", str(fleet.dataset)])
    assert isinstance(result.exception, UserError)  # one line, exit code 2 from the CLI
    assert message in str(result.exception)


def test_a_directory_without_a_manifest_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["replay", "--dataset", str(tmp_path), "--json"])
    assert isinstance(result.exception, UserError)
    assert "no dataset at" in str(result.exception)


def test_a_worker_failure_is_reported_by_its_python_exception():
    error = Exception(
        "An exception was thrown from the Python worker.\nTraceback (most recent call last):\n"
        '  File "kernels.py", line 1, in run_group\nValueError: month must be YYYY-MM\n'
    )
    assert spark_error_line(error) == "ValueError: month must be YYYY-MM"
    assert spark_error_line(Exception("Py4JError\nmore")) == "Py4JError"
