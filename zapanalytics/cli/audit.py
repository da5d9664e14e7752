"""``zapanalytics audit``: signed-record verification and meter audits."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console

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
        Path | None, typer.Option("--out", help="Directory for the audit report and JSON.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit as JSON.")] = False,
) -> None:
    """Audit a whole store, or run a sub-command such as ``audit ocmf``.

    Example: zapanalytics audit --db out/zap.duckdb --out out/audit --json
    """
    if ctx.invoked_subcommand is not None:
        return
    if db is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    from zapanalytics.cli.audit_store import run_store_audit

    run_store_audit(db, out, as_json)


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
) -> None:
    """Verify OCMF signed meter records and check their transactions.

    Exit code 0 only when every record's signature is valid and every transaction
    record passes its checks; 1 otherwise; 2 for a usage error (bad key or file).

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
    all_good = True
    for number, verdict in enumerate(verdicts, start=1):
        summary = verdict.as_dict()
        transaction_ok = verdict.transaction is None or verdict.transaction.passed
        all_good = all_good and verdict.ok and transaction_ok
        if as_json:
            sys.stdout.write(json.dumps({"record": number, **summary}, ensure_ascii=False) + "\n")
        else:
            console.print(f"record {number}: {_describe(summary)}", markup=False,
                          highlight=False, soft_wrap=True)
    if not all_good:
        raise typer.Exit(1)
