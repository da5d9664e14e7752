"""The options ``bill``, ``audit`` and ``replay`` share to run on a dataset, and their dispatch.

Each command declares :data:`DatasetOption`, :data:`EngineOption` and
:data:`SparkMasterOption` and hands over to :func:`run_engine_command` when ``--dataset``
is given. The document printed with ``--json`` is built from the kernels' results alone,
so it is the same text whichever engine ran them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from zapanalytics.cli.errors import UserError

__all__ = [
    "DatasetOption",
    "EngineOption",
    "SparkMasterOption",
    "export_dataset_command",
    "run_engine_command",
]

ENGINES = ("local", "spark")

DatasetOption = Annotated[
    Path | None,
    typer.Option(
        "--dataset",
        help="Run on a Parquet dataset written by `export --dataset` instead of a store.",
    ),
]
EngineOption = Annotated[
    str, typer.Option("--engine", help="With --dataset: local (this machine) or spark.")
]
SparkMasterOption = Annotated[
    str,
    typer.Option(
        "--spark-master", help="Spark master URL for --engine spark, e.g. spark://host:7077."
    ),
]

#: The kernels behind each command.
COMMAND_KERNELS = {"bill": ("billing",), "audit": ("accuracy", "gain"), "replay": ("replay",)}


def export_dataset_command(db: Path, dataset: Path, *, as_json: bool) -> None:
    """``export --dataset DIR``: bring the store's Parquet dataset up to date."""
    from zapanalytics.cli.output import console, print_json
    from zapanalytics.dataset import DatasetError, export_dataset
    from zapanalytics.store import StoreLockedError, read_only_store

    try:
        con = read_only_store(db)
    except StoreLockedError as exc:
        raise UserError(str(exc)) from None
    try:
        summary = export_dataset(con, dataset)
    except DatasetError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write the dataset: {exc.strerror or exc}") from None
    finally:
        con.close()
    if as_json:
        print_json(summary.as_dict())
        return
    rows = sum(t["rows"] for t in summary.tables.values())
    partitions = sum(t["partitions"] for t in summary.tables.values())
    console.print(
        f"{rows} rows in {partitions} partitions → {dataset} "
        f"({len(summary.written)} partitions rewritten)",
        markup=False,
        highlight=False,
    )


def _check(dataset: Path, engine: str, month: str | None, unsupported: dict[str, Any]) -> None:
    if engine not in ENGINES:
        raise UserError(f"--engine must be local or spark, not {engine!r}")
    if month is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise UserError(f"--month must be YYYY-MM, not {month!r}")
    given = [name for name, value in unsupported.items() if value not in (None, False, [], ())]
    if given:
        raise UserError(f"{given[0]} works with --db only, not with --dataset")
    if not (dataset / "_manifest.json").is_file():
        raise UserError(
            f"no dataset at {dataset}; write one with `export --db STORE --dataset DIR`"
        )


def _run(
    kernel: str,
    dataset: Path,
    engine: str,
    *,
    spark: Any,
    installation: str | None,
    month: str | None,
    params: dict[str, Any],
) -> list[Any]:
    installations = [installation] if installation else None
    if engine == "spark":
        from zapanalytics.engines.spark import run_spark

        result = run_spark(
            dataset, kernel, spark=spark, installations=installations, month=month, params=params
        )
    else:
        from zapanalytics.engines.local import run_local

        result = run_local(dataset, kernel, installations=installations, month=month, params=params)
    return [json.loads(text) for text in result.column("document_json").to_pylist()]


def engine_document(
    command: str,
    dataset: Path,
    engine: str,
    *,
    spark_master: str = "local[*]",
    spark: Any = None,
    installation: str | None = None,
    month: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``--json`` document of ``command`` run on ``dataset`` with ``engine``."""
    from zapanalytics.dataset import DatasetError

    params = dict(params or {})
    if engine == "spark" and spark is None:
        from zapanalytics.engines.spark import spark_session

        spark = spark_session(
            spark_master,
            config={"spark.ui.showConsoleProgress": "false", "spark.ui.enabled": "false"},
        )
        spark.sparkContext.setLogLevel("ERROR")
    results = {}
    try:
        for kernel in COMMAND_KERNELS[command]:
            results[kernel] = _run(
                kernel, dataset, engine, spark=spark, installation=installation, month=month,
                params=params,
            )  # fmt: skip
    except DatasetError as exc:
        raise UserError(str(exc)) from None
    scope = {"installation": installation, "month": month}
    if command == "bill":
        return {**scope, "method": params.get("method"), "statements": results["billing"]}
    if command == "replay":
        findings = sum(len(doc["findings"]) for doc in results["replay"])
        return {**scope, "findings": findings, "installations": results["replay"]}
    accuracy, gains = results["accuracy"], results["gain"]
    failed = [
        d["charger_id"] for d in accuracy if (d.get("verdict") or {}).get("verdict") == "fail"
    ]
    flagged = [c["charger_id"] for g in gains for c in g["chargers"] if c["flagged"]]
    return {
        **scope,
        "passed": not failed and not flagged,
        "summary": {"accuracy_failed": failed, "gain_flagged": flagged},
        "scope": "accuracy windows and verdicts per charger (sub-meters), gain regression per "
        "installation (HAN), from meter_values and reference_readings; signed records and "
        "register integrity are audited with --db",
        "accuracy": accuracy,
        "gain_regression": gains,
    }


def _print_summary(command: str, document: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from zapanalytics.cli.output import console

    if command == "bill":
        table = Table(title=f"{document['method']} bills")
        for column in ("installation", "month", "users", "kWh", "total NOK"):
            table.add_column(column)
        for doc in document["statements"]:
            table.add_row(
                Text(str(doc.get("installation_name") or doc.get("installation_id"))),
                doc["month"],
                str(len(doc["users"])),
                f"{doc['total_energy_kwh']:,.3f}",
                f"{doc['total_cost_nok']:,.2f}",
            )
    elif command == "replay":
        table = Table(title="Replays")
        for column in ("installation", "chargers", "sessions", "findings", "Jain index"):
            table.add_column(column)
        for doc in document["installations"]:
            jain = doc["fairness"]["summary"].get("mean_jain_index")
            table.add_row(
                Text(str(doc["installation"]["name"] or doc["installation"]["installation_id"])),
                str(doc["chargers"]),
                str(doc["sessions"]),
                str(len(doc["findings"])),
                "–" if jain is None else f"{jain:.3f}",
            )
    else:
        table = Table(title="Meter audit (dataset)")
        for column in ("charger", "windows", "accuracy"):
            table.add_column(column)
        for doc in document["accuracy"]:
            verdict = doc.get("verdict") or {}
            table.add_row(
                Text(doc.get("charger_name") or doc["charger_id"]),
                str(doc["windows"]),
                Text(str(verdict.get("verdict"))),
            )
    console.print(table)


def spark_error_line(exc: BaseException) -> str:
    """The line of a Spark failure that says what went wrong: the Python exception raised
    in a worker (``ValueError: ...``) when the message carries one, else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_.]+(Error|Exception): ", line)]
    return (raised or lines or [type(exc).__name__])[-1 if raised else 0]


def run_engine_command(
    command: str,
    *,
    dataset: Path,
    engine: str,
    spark_master: str,
    installation: str | None,
    month: str | None,
    as_json: bool,
    params: dict[str, Any] | None = None,
    unsupported: dict[str, Any] | None = None,
) -> None:
    """Run ``bill``, ``audit`` or ``replay`` on a dataset and print the result.

    Exits 1 like the store-backed command: ``audit`` when a meter fails or a gain is
    flagged, ``replay`` when there are conformance findings.
    """
    _check(dataset, engine, month, unsupported or {})
    params = dict(params or {})
    missing = [f for f in params.get("tariff_files") or () if not Path(f).is_file()]
    if missing:
        raise UserError(f"--tariff: no such file: {missing[0]}")
    if command == "bill":
        # One clock for every statement, so both engines write the same notes.
        params.setdefault("now", dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat())
    try:
        document = engine_document(
            command, dataset, engine, spark_master=spark_master, installation=installation,
            month=month, params=params,
        )  # fmt: skip
    except ImportError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:  # the kernels' own checks (missing prices, bad month)
        raise UserError(f"cannot {command}: {exc}") from None
    except Exception as exc:
        if type(exc).__name__ == "SparkUnavailable":
            raise UserError(str(exc)) from None
        if type(exc).__module__.startswith(("pyspark", "py4j")):
            raise RuntimeError(f"the Spark job failed: {spark_error_line(exc)}") from exc
        raise
    if as_json:
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    else:
        _print_summary(command, document)
    if (command == "audit" and not document["passed"]) or (
        command == "replay" and document["findings"]
    ):
        raise typer.Exit(1)
