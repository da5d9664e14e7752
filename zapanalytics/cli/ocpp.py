"""``zapanalytics ocpp serve|send`` and ``zapanalytics ingest ocpp``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from zapanalytics.cli import app, ingest_app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, print_json

ocpp_app = typer.Typer(no_args_is_help=True, help="Collect data straight from chargers over OCPP 1.6J.")
app.add_typer(ocpp_app, name="ocpp")

ADMIN_TOKEN_ENV = "ZAPANALYTICS_OCPP_ADMIN_TOKEN"


def _read_secret_file(path: Path, what: str) -> str:
    try:
        value = path.read_text("utf-8").strip()
    except OSError as exc:
        raise UserError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if not value:
        raise UserError(f"the {what} file {path} is empty")
    return value


@ocpp_app.command("serve")
def serve(
    spool: Path = typer.Option(..., "--spool", help="Spool directory (created if missing)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(9000, "--port", help="TCP port (0 picks a free one)."),
    credentials: Path = typer.Option(
        None, "--credentials", help='JSON file {"<charge point id>": "<password>"} (Basic auth).'
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Accept any charge point without a password (lab bench only)."
    ),
    id_tags: Path = typer.Option(
        None, "--id-tags", help="JSON array of accepted id tags (default: accept every tag)."
    ),
    heartbeat_interval: int = typer.Option(300, "--heartbeat-interval", help="Heartbeat interval [s]."),
    idle_timeout: float = typer.Option(720.0, "--idle-timeout", help="Close silent connections after [s]."),
    max_frame_bytes: int = typer.Option(
        None, "--max-frame-bytes",
        help="Largest accepted frame [bytes] (default 65536, or ZAPANALYTICS_MAX_FRAME_BYTES).",
    ),
    max_connections: int = typer.Option(
        1000, "--max-connections", help="Charge points connected at once; more get HTTP 503."
    ),
    admin_token_file: Path = typer.Option(
        None, "--admin-token-file", help=f"Enable the /admin hook with this token (or ${ADMIN_TOKEN_ENV})."
    ),
) -> None:
    """Run the OCPP 1.6J central system; every message is spooled before it is answered.

    Example: zapanalytics ocpp serve --port 9000 --spool spool/ --credentials cps.json
    """
    from zapanalytics.ingest.ocpp.server import (
        ServerSettings,
        load_credentials,
        load_id_tags,
        run_server,
    )
    from zapanalytics.ingest.spool import SpoolError

    if credentials is None and not no_auth:
        raise UserError("give --credentials FILE (OCPP security profile 1), or --no-auth on a lab bench")
    if credentials is not None and no_auth:
        raise UserError("--credentials and --no-auth exclude each other")
    try:
        passwords = load_credentials(credentials) if credentials is not None else None
        tags = load_id_tags(id_tags) if id_tags is not None else None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if max_frame_bytes is None:
        from zapanalytics.ingest.limits import InputLimits

        try:
            max_frame_bytes = InputLimits.from_env().max_frame_bytes
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if max_frame_bytes < 1024 or max_connections < 1:
        raise UserError("--max-frame-bytes must be at least 1024 and --max-connections at least 1")
    token = os.environ.get(ADMIN_TOKEN_ENV)
    if admin_token_file is not None:
        token = _read_secret_file(admin_token_file, "admin token")
    settings = ServerSettings(
        spool_dir=spool,
        host=host,
        port=port,
        credentials=passwords,
        id_tags=tags,
        heartbeat_interval_s=heartbeat_interval,
        idle_timeout_s=idle_timeout,
        max_frame_bytes=max_frame_bytes,
        max_connections=max_connections,
        admin_token=token,
    )

    def ready(bound_port: int) -> None:
        auth = "Basic auth" if passwords is not None else "NO authentication"
        print(
            f"OCPP 1.6J central system on ws://{host}:{bound_port}/ocpp/<charge point id>"
            f" ({auth}; spool {spool})",
            flush=True,
        )

    try:
        run_server(settings, on_ready=ready)
    except SpoolError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@ocpp_app.command("send")
def send(
    charge_point_id: str = typer.Argument(..., help="A connected charge point."),
    action: str = typer.Argument(..., help="ChangeConfiguration or SetChargingProfile."),
    payload: str = typer.Option(
        ..., "--payload", help='OCPP payload, e.g. \'{"key": "MeterValueSampleInterval", "value": "60"}\'.'
    ),
    url: str = typer.Option("ws://127.0.0.1:9000/admin", "--url", help="The server's admin hook."),
    admin_token_file: Path = typer.Option(
        None, "--admin-token-file", help=f"File with the admin token (or ${ADMIN_TOKEN_ENV})."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
) -> None:
    """Ask a running central system to send a call to a connected charge point.

    Example: zapanalytics ocpp send ZPR100001 ChangeConfiguration --payload '{"key": "MeterValueSampleInterval", "value": "60"}'
    """
    import asyncio

    from zapanalytics.ingest.ocpp.server import ADMIN_ACTIONS, send_admin_command

    if action not in ADMIN_ACTIONS:
        raise UserError(f"ACTION must be one of {', '.join(ADMIN_ACTIONS)}")
    token = _read_secret_file(admin_token_file, "admin token") if admin_token_file else os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        raise UserError(f"give --admin-token-file FILE or set {ADMIN_TOKEN_ENV}")
    try:
        body = json.loads(payload)
    except ValueError:
        raise UserError("--payload is not valid JSON") from None
    try:
        answer = asyncio.run(send_admin_command(url, token, charge_point_id, action, body))
    except OSError as exc:
        raise UserError(f"cannot reach {url}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - websockets handshake errors, shown in one line
        raise UserError(f"the admin hook at {url} refused the request: {exc}") from None
    if as_json:
        print_json(answer)
    elif answer.get("ok"):
        console.print(f"{charge_point_id} answered {answer['result']}")
    else:
        raise UserError(f"not sent: {answer.get('error')}")


@ingest_app.command("ocpp")
def ingest_ocpp(
    spool: Path = typer.Option(None, "--spool", help="Spool directory written by `ocpp serve`."),
    db: Path = typer.Option(..., "--db", help="DuckDB store file (created if missing)."),
    logs: Path = typer.Option(
        None, "--logs", help="Instead of a spool: a directory of OCPP message logs (*.jsonl)."
    ),
    batch_mb: float = typer.Option(64.0, "--batch-mb", help="Spool megabytes per batch."),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Load new spool lines into meter_values, sessions, charger_states and chargers.

    Safe to run while the server is writing, and to repeat: loaded lines are skipped.
    With --logs, message logs (firmware_ref's ocpp/<ChargePointId>.jsonl) are read
    through a temporary spool; loading them again changes nothing in the store.

    Example: zapanalytics ingest ocpp --spool spool/ --db out/zap.duckdb
    """
    import tempfile

    from zapanalytics.ingest.ocpp.load import load_spool, spool_from_message_logs
    from zapanalytics.ingest.spool import SpoolError
    from zapanalytics.store import open_store

    if (spool is None) == (logs is None):
        raise UserError("give exactly one of --spool DIR or --logs DIR")
    if spool is not None and not spool.is_dir():
        raise UserError(f"no such spool directory: {spool}")
    if logs is not None and not sorted(logs.glob("*.jsonl")):
        raise UserError(f"no OCPP message logs (*.jsonl) in {logs}")
    if batch_mb <= 0:
        raise UserError("--batch-mb must be positive")
    con = open_store(db)
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-logs-") as scratch:
            if logs is not None:
                spool = Path(scratch) / "spool"
                try:
                    spool_from_message_logs(sorted(logs.glob("*.jsonl")), spool)
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    raise UserError(f"cannot read the message logs in {logs}: {exc}") from None
            report = load_spool(con, spool, batch_bytes=int(batch_mb * 1024 * 1024))
    except SpoolError as exc:
        raise UserError(str(exc)) from None
    finally:
        con.close()
    if as_json:
        print_json(report.as_dict())
        return
    counts = report.counts
    console.print(
        f"spool lines {report.lines_read} in {report.segments_read} segment(s): "
        f"stored {counts.rows_stored}, quarantined {counts.rows_quarantined}"
    )
    for table, rows in sorted(report.rows_offered.items()):
        console.print(f"  {table}: {rows} row(s) offered")
    if report.pending_tail_bytes:
        console.print(f"  {report.pending_tail_bytes} byte(s) of an unfinished line left for the next run")
    sys.stdout.flush()
