"""``zapanalytics sample``: generate a simulated installation in every source format."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, print_json


def _parse_indices(text: str | None, n: int) -> tuple[int, ...] | None:
    if text is None:
        return None
    if text.strip().lower() == "all":
        return tuple(range(n))
    try:
        values = tuple(sorted({int(part) - 1 for part in text.split(",") if part.strip()}))
    except ValueError as exc:
        raise UserError(f"--ocpp-chargers: expected 'all' or charger numbers like '3,5': {text!r}") from exc
    if any(not 0 <= v < n for v in values):
        raise UserError(f"--ocpp-chargers: charger numbers must be within 1..{n}")
    return values


@app.command()
def sample(
    out: Path = typer.Option(..., "--out", help="Directory to write the dataset into."),
    days: int = typer.Option(31, "--days", min=1, max=3660, help="Days to simulate."),
    chargers: int = typer.Option(8, "--chargers", min=1, max=1000, help="Number of chargers."),
    seed: int = typer.Option(2025, "--seed", help="Seed; the same options give the same bytes."),
    start: str = typer.Option("2025-10-01", "--start", help="First local day (YYYY-MM-DD)."),
    kind: str = typer.Option("coop", "--kind", help="Installation kind: coop, home or workplace."),
    fuse: float = typer.Option(
        None, "--fuse", help="Main fuse of the charging installation [A] (default: coop 32, home 40, workplace 63)."
    ),
    network: str = typer.Option("TN", "--network", help="Supply network: TN or IT."),
    phase_switching: bool = typer.Option(
        False, "--phase-switching/--no-phase-switching", help="1/3-phase switching of the load balancer."
    ),
    faults: str = typer.Option("sample", "--faults", help="Fault preset: sample, none or all."),
    ocpp_chargers: str = typer.Option(
        None, "--ocpp-chargers", help="Chargers with OCPP logs: 'all' or numbers like '3,5' (default: the sub-metered ones)."
    ),
    ocpp_interval: float = typer.Option(3600.0, "--ocpp-interval", help="OCPP MeterValueSampleInterval [s]."),
    meter_value_interval: float = typer.Option(
        3600.0, "--meter-value-interval", help="Chargers' meterValueInterval: signed register records [s]."
    ),
    han_interval: float = typer.Option(1800.0, "--han-interval", help="Interval of HAN List 2 frames [s]."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Simulate an installation and write it as Zaptec API JSON, OCPP logs, HAN frames,
    sub-meter CSV, spot prices, public keys and ground truth.

    Example: zapanalytics sample --days 31 --chargers 8 --seed 2025 --out data/sample
    """
    from firmware_ref.dataset import FAULT_PRESETS, DatasetSpec, generate_dataset

    try:
        first_day = dt.date.fromisoformat(start)
    except ValueError as exc:
        raise UserError(f"--start: expected a date like 2025-10-01, got {start!r}") from exc
    if kind not in ("coop", "home", "workplace"):
        raise UserError(f"--kind: expected coop, home or workplace, got {kind!r}")
    if network not in ("TN", "IT"):
        raise UserError(f"--network: expected TN or IT, got {network!r}")
    if faults not in FAULT_PRESETS:
        raise UserError(f"--faults: expected one of {', '.join(FAULT_PRESETS)}, got {faults!r}")
    if min(fuse or 1.0, ocpp_interval, han_interval, meter_value_interval) <= 0:
        raise UserError("--fuse and the intervals must be positive")
    from firmware_ref.products import ProductLimitError

    spec = DatasetSpec(
        days=days,
        n_chargers=chargers,
        seed=seed,
        start=first_day,
        kind=kind,
        main_fuse_a=fuse,
        network=network,
        phase_switching=phase_switching,
        faults=faults,
        han_list2_interval_s=han_interval,
        ocpp_meter_value_interval_s=ocpp_interval,
        meter_value_interval_s=meter_value_interval,
        ocpp_chargers=_parse_indices(ocpp_chargers, chargers),
    )
    try:
        with console.status("simulating and writing ...", spinner="dots"):
            result, files = generate_dataset(out, spec)
    except ProductLimitError as exc:
        raise UserError(str(exc)) from None
    size = sum(f.stat().st_size for f in files)
    summary = {
        "out": str(out),
        "installation_id": result.installation["installation_id"],
        "chargers": chargers,
        "sessions": result.stats["sessions"],
        "files": len(files),
        "bytes": size,
        "faults": [fault.to_json() for fault in result.faults],
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"wrote {len(files)} files ({size / 1e6:.2f} MB) to {out}: "
        f"{chargers} chargers, {result.stats['sessions']} sessions over {days} days"
    )
    for fault in result.faults:
        item = fault.to_json()
        when = f" {item['start_utc']} .. {item['end_utc']}" if item["start_utc"] else ""
        console.print(f"  fault {item['kind']} on {item['device_id']}: {item['magnitude']} {item['unit']}{when}")
