"""``zapanalytics audit``: signed-record verification and meter audits."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, working
from zapanalytics.engines.cli import (
    DatasetOption,
    EngineOption,
    SparkMasterOption,
    run_engine_command,
)

audit_app = typer.Typer(
    help="Audit meters: OCMF signatures, register integrity and accuracy.",
    invoke_without_command=True,
)
app.add_typer(audit_app, name="audit")


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    db: Annotated[
        Path | None, typer.Option("--db", help="DuckDB store to audit (opened read-only).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory for audit.html and audit.json."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit as JSON.")] = False,
    public_keys: Annotated[
        Path | None,
        typer.Option(
            "--public-keys",
            help="Meter public keys: a directory of <serial or charger_id>.pem files, "
            "or a JSON file mapping ids to keys.",
        ),
    ] = None,
    skip_meter_value_signatures: Annotated[
        bool,
        typer.Option(
            "--skip-meter-value-signatures",
            help="Do not verify the periodic (state 554) signed records.",
        ),
    ] = False,
    han_class: Annotated[
        str | None,
        typer.Option(
            "--han-class",
            help="MID accuracy class of the AMS/HAN meter: A, B or C (default B, said in the "
            "result); its limit widens the gain regression's interval.",
            metavar="CLASS",
        ),
    ] = None,
    han_uncertainty: Annotated[
        float | None,
        typer.Option(
            "--han-uncertainty",
            help="Standard uncertainty of the HAN meter [%] when known from a calibration; "
            "overrides --han-class.",
            min=0.0,
            max=10.0,
            metavar="PCT",
        ),
    ] = None,
    dataset: DatasetOption = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = "local[*]",
    installation: Annotated[
        str | None, typer.Option("--installation", help="With --dataset: this installation only.")
    ] = None,
    month: Annotated[
        str | None, typer.Option("--month", help="With --dataset: this month only, YYYY-MM.")
    ] = None,
) -> None:
    """Audit a whole store, or run a sub-command such as ``audit ocmf``.

    Checks register integrity and signed records, each charger's meter against its
    sub-meter, and gain errors from the HAN meter.

    Exit codes: 0 nothing failed; 1 a finding is an error, a meter fails or a gain is
    flagged; 2 usage error. Signed records no key could check are warnings that say how
    to check them (--public-keys, or the keys in the dataset).

    Example: zapanalytics audit --db out/zap.duckdb --out out/audit --json
    """
    if ctx.invoked_subcommand is not None:
        return
    if dataset is not None:
        return run_engine_command(
            "audit", dataset=dataset, engine=engine, spark_master=spark_master,
            installation=installation, month=month, as_json=as_json,
            params={"han_meter_class": han_class.upper() if han_class else None,
                    "han_uncertainty_pct": han_uncertainty},
            unsupported={"--db": db, "--out": out, "--public-keys": public_keys},
        )  # fmt: skip
    if db is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    if han_class is not None and han_class.upper() not in ("A", "B", "C"):
        raise UserError(f"--han-class must be A, B or C, not {han_class!r}")
    gain_options = {} if han_uncertainty is None else {"han_uncertainty_pct": han_uncertainty}
    _run_store_audit(
        db, out, as_json, public_keys, skip_meter_value_signatures,
        han_class.upper() if han_class else None, gain_options,
    )  # fmt: skip


def _jsonable(value: Any) -> Any:
    """Non-finite floats become null (JSON has no Infinity); times become ISO 8601."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _read_key_map(path: Path | None) -> dict[str, str] | None:
    from zapanalytics.audit.keys import KeyMapError, read_key_map

    if path is None:
        return None
    try:
        return read_key_map(path)
    except KeyMapError as exc:
        raise UserError(f"--public-keys {exc}") from None


def _run_store_audit(
    db: Path,
    out: Path | None,
    as_json: bool,
    public_keys: Path | None,
    skip_meter_value_signatures: bool,
    han_class: str | None = None,
    gain_options: dict | None = None,
) -> None:
    from zapanalytics.audit.store_audit import audit_store
    from zapanalytics.report.audit_section import write_audit_report
    from zapanalytics.store import StoreLockedError, queries, read_only_store

    if not db.is_file():
        raise UserError(f"no such store: {db}")
    keys = _read_key_map(public_keys)
    try:
        con = read_only_store(db)
    except StoreLockedError as exc:
        raise UserError(str(exc)) from None
    try:
        with working("auditing the store", quiet=as_json):
            result = audit_store(
                con,
                public_keys=keys,
                include_meter_value_signatures=not skip_meter_value_signatures,
                han_meter_class=han_class,
                gain_options=gain_options,
            )
            timezone = queries.installation_timezone(con)
    finally:
        con.close()
    payload = _jsonable(result.as_dict())
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "audit.json").write_text(
            json.dumps(payload, default=str, ensure_ascii=False, indent=1) + "\n", "utf-8"
        )
        write_audit_report(result, out / "audit.html", timezone=timezone)
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str, ensure_ascii=False) + "\n")
    else:
        _print_summary(result, out)
    if not result.passed:
        raise typer.Exit(1)


def _print_summary(result: Any, out: Path | None) -> None:
    from rich.table import Table

    from zapanalytics.audit.evidence import HOW_TO_VERIFY

    table = Table(title="Meter audit")
    for column in ("charger", "errors", "warnings", "accuracy", "gain (HAN)", "findings"):
        # A charger's name is never cut: people find it by that name.
        table.add_column(column, no_wrap=column == "charger")
    for row in result.chargers.iter_rows(named=True):
        accuracy = row["accuracy_verdict"] or "—"
        if row["accuracy_error_pct"] is not None:
            accuracy += (
                f" ({row['accuracy_error_pct']:+.2f} ± {row['accuracy_uncertainty_pct']:.2f} %)"
            )
        gain = row["gain_verdict"] or "—"
        if row["gain_error_pct"] is not None:
            gain += f" ({row['gain_error_pct']:+.2f} %)"
        table.add_row(  # names and kinds are data, never rich markup
            Text(str(row["charger_name"] or row["charger_id"])),
            str(row["errors"]),
            str(row["warnings"]),
            Text(accuracy),
            Text(gain),
            Text(row["finding_kinds"] or ""),
        )
    console.print(table)
    unverified = [
        f for f in result.findings.iter_rows(named=True) if f["kind"] == "ocmf_not_verified"
    ]
    if unverified:
        records = sum(int(f["magnitude"] or 0) for f in unverified)
        console.print(
            f"warning: {records} signed records of {len(unverified)} chargers were not verified. "
            f"{HOW_TO_VERIFY}",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    if out is not None:
        console.print(
            f"report: {out / 'audit.html'}  json: {out / 'audit.json'}",
            markup=False,
            highlight=False,
        )


def _read_key(key: str) -> str | bytes:
    """A key option is a file path when such a file exists, else the key itself."""
    try:
        path = Path(key)
        if path.is_file():
            return path.read_bytes()
    except (OSError, ValueError):  # a long literal key is not a valid path
        pass
    return key


def _read_records(record: str | None, file: Path | None) -> list[str]:
    if (record is None) == (file is None):
        raise UserError("give exactly one of --record STR or --file FILE")
    if record is not None:
        return [record]
    if str(file) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = file.read_text("utf-8")
        except FileNotFoundError:
            raise UserError(f"no such file: {file}") from None
        except UnicodeDecodeError:
            raise UserError(f"{file} is not UTF-8 text") from None
        except OSError as exc:
            raise UserError(f"cannot read {file}: {exc.strerror}") from None
    records = [line for line in text.splitlines() if line.strip()]
    if not records:
        raise UserError(f"{file} holds no records")
    return records


def _describe(verdict_dict: dict) -> str:
    text = f"{verdict_dict['verdict']}: {verdict_dict['reason']}"
    checks = verdict_dict["transaction_checks"]
    if checks is not None:
        energy = checks["energy_kwh"]
        energy_text = "?" if energy is None else f"{energy:.3f} kWh"
        status = "passed" if checks["passed"] else "FAILED " + ", ".join(checks["failed"])
        if checks.get("not_applicable"):
            status += " (not applicable to a record of one reading: " + ", ".join(checks["not_applicable"]) + ")"
        text += (
            f"; transaction {energy_text} from {checks['begin_utc']} to {checks['end_utc']}, "
            f"clock {checks['weakest_clock_status']}, checks {status}"
        )
    return text


@audit_app.command("ocmf")
def audit_ocmf(
    public_key: Annotated[
        str,
        typer.Option(
            "--public-key", help="The meter's public key: a file, or PEM / hex / base64 DER text."
        ),
    ],
    record: Annotated[str | None, typer.Option("--record", help="One OCMF record.")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="A file with one OCMF record per line ('-' for stdin)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per record, one per line.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Also exit 3 when an applicable transaction check fails."
        ),
    ] = False,
) -> None:
    """Verify OCMF signed meter records and report their transaction checks.

    Transaction checks (one begin and one end reading, one register, values and times
    that never go back, meter status G, ...) are reported for every transaction record;
    the begin/end check is marked not applicable to a record that holds one reading (a
    begin-only or end-only record, or a fiscal one), whose partner is another record.

    Exit codes: 0 every record's signature is valid; 1 a signature is invalid, missing,
    malformed or cannot be checked (unsupported curve, key mismatch); 2 usage error (bad
    key or file); 3 with --strict, the signatures are valid but an applicable
    transaction check failed.

    Example: zapanalytics audit ocmf --file records.txt --public-key key.pem --json
    """
    from zapanalytics.audit.ocmf import PublicKeyError, load_public_key, verify_many

    records = _read_records(record, file)
    key = _read_key(public_key)
    try:
        load_public_key(key)
    except PublicKeyError as exc:
        # A bare point needs the record's curve; let verification try it with that.
        if "point" not in str(exc) and "DER" not in str(exc):
            raise UserError(f"--public-key: {exc}") from None
    try:
        verdicts = verify_many(records, key)
    except PublicKeyError as exc:
        raise UserError(f"--public-key: {exc}") from None
    signatures_ok = transactions_ok = True
    for number, verdict in enumerate(verdicts, start=1):
        summary = verdict.as_dict()
        signatures_ok = signatures_ok and verdict.ok
        transactions_ok = transactions_ok and (
            verdict.transaction is None or verdict.transaction.passed
        )
        if as_json:
            sys.stdout.write(json.dumps({"record": number, **summary}, ensure_ascii=False) + "\n")
        else:
            console.print(
                f"record {number}: {_describe(summary)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if not signatures_ok:
        raise typer.Exit(1)
    if strict and not transactions_ok:
        raise typer.Exit(3)
