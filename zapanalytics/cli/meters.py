"""``zapanalytics ingest han`` and ``zapanalytics ingest submeter``: reference meters."""

from __future__ import annotations

from pathlib import Path

import typer

from zapanalytics.cli import ingest_app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, print_json


def _existing(paths: list[Path]) -> list[Path]:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"no such file or directory: {', '.join(missing)}")
    return paths


def _zone(name: str | None) -> str | None:
    if name is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"--timezone {name!r} is not an IANA time zone (e.g. Europe/Oslo)") from None
    return name


def _last_status(con, source: str) -> str | None:
    rows = con.execute(
        "SELECT status FROM ingest_runs WHERE source = ? ORDER BY started_at DESC LIMIT 1", [source]
    ).fetchall()
    return rows[0][0] if rows else None


def _report(counts, as_json: bool, status: str | None) -> None:
    if as_json:
        print_json({**counts.as_dict(), "status": status})
    else:
        console.print(
            f"records in {counts.rows_in}, stored {counts.rows_stored}, quarantined {counts.rows_quarantined}"
            + (" (partial: a file was quarantined whole)" if status == "partial" else "")
        )


@ingest_app.command("han")
def ingest_han_command(
    paths: list[Path] = typer.Argument(..., help="Hex dumps (.hex), captured byte streams, or directories."),
    db: Path = typer.Option(..., "--db", help="DuckDB store file (created if missing)."),
    timezone: str = typer.Option("Europe/Oslo", "--timezone", help="Zone of the meter clock."),
    meter_id: str = typer.Option(None, "--meter-id", help="Meter id for List 1 frames (they carry none)."),
    installation_id: str = typer.Option(
        None, "--installation-id", help="Installation the main meter belongs to (default: meters.json)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run counts as JSON."),
) -> None:
    """Load AMS/HAN frames (Aidon, Kaifa, Kamstrup; List 1/2/3) into reference_readings.

    Example: zapanalytics ingest han data/sample/han --db out/zap.duckdb

    Inputs are read within limits (bytes per file and per line); raise one with its
    ZAPANALYTICS_MAX_* environment variable. A file that cannot be read is quarantined whole
    and the run ends 'partial'.
    """
    from zapanalytics.ingest.meters.han import ingest_han
    from zapanalytics.store import open_store

    _existing(paths)
    zone = _zone(timezone)
    con = open_store(db)
    try:
        counts = ingest_han(con, paths, timezone=zone, meter_id=meter_id, installation_id=installation_id)
        status = _last_status(con, "han")
    except ValueError as exc:  # an unusable limit in ZAPANALYTICS_MAX_*
        raise UserError(str(exc)) from None
    finally:
        con.close()
    _report(counts, as_json, status)


@ingest_app.command("submeter")
def ingest_submeter_command(
    paths: list[Path] = typer.Argument(..., help="Sub-meter CSV files or directories of them."),
    db: Path = typer.Option(..., "--db", help="DuckDB store file (created if missing)."),
    timezone: str = typer.Option(None, "--timezone", help="Zone for timestamps written without offset."),
    meter_id: str = typer.Option(None, "--meter-id", help="Meter id (default: the file name)."),
    charger_id: str = typer.Option(None, "--charger-id", help="Charger the meter measures."),
    resolution_kwh: float = typer.Option(None, "--resolution-kwh", help="Register resolution [kWh]."),
    as_json: bool = typer.Option(False, "--json", help="Print the run counts as JSON."),
) -> None:
    """Load MID sub-meter readings (timestamp, cumulative kWh, currents) into reference_readings.

    Example: zapanalytics ingest submeter data/sample/submeter --db out/zap.duckdb

    Inputs are read within limits (bytes per file and per line, characters per field); raise
    one with its ZAPANALYTICS_MAX_* environment variable. A file that cannot be read is
    quarantined whole and the run ends 'partial'.
    """
    from zapanalytics.ingest.meters.submeter import ingest_submeter
    from zapanalytics.store import open_store

    _existing(paths)
    zone = _zone(timezone)
    if resolution_kwh is not None and not 0 < resolution_kwh <= 1:
        raise UserError("--resolution-kwh must be above 0 and at most 1")
    con = open_store(db)
    try:
        counts = ingest_submeter(
            con, paths, timezone=zone, meter_id=meter_id, charger_id=charger_id, resolution_kwh=resolution_kwh
        )
        status = _last_status(con, "submeter")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        con.close()
    _report(counts, as_json, status)
