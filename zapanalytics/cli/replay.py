"""``zapanalytics replay``: load-balancing conformance, fairness and what-if scenarios."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
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

_POLICIES = ("reference", "equal_share", "first_come", "priority")


@app.command()
def replay(
    db: Annotated[Path | None, typer.Option("--db", help="DuckDB store (opened read-only).")] = None,
    fuse: Annotated[
        float | None, typer.Option("--fuse", help="What-if main fuse [A].", min=1.0, max=4000.0)
    ] = None,
    chargers: Annotated[
        int | None, typer.Option("--chargers", help="What-if number of chargers.", min=1, max=5000)
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy", help="What-if policy: reference | equal_share | first_come | priority."
        ),
    ] = None,
    budget_kw: Annotated[
        float | None,
        typer.Option(
            "--budget-kw", help="What-if APM power budget for the installation, kW.", min=0.1
        ),
    ] = None,
    apm: Annotated[
        bool | None,
        typer.Option(
            "--apm/--no-apm",
            help="The household shares the main fuse (APM). Default: as the installation reports.",
        ),
    ] = None,
    available: Annotated[
        float | None,
        typer.Option(
            "--available",
            help="The installation's available current per line [A], "
            "when the store does not hold it.",
            min=0.0,
            max=4000.0,
        ),
    ] = None,
    installation: Annotated[
        str | None,
        typer.Option("--installation", help="Installation id (when the store has several)."),
    ] = None,
    peer: Annotated[
        bool,
        typer.Option(
            "--peer", help="Also run the first week of sessions through ACN-Sim (slow: minutes)."
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write replay.json, findings.csv and tables here.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the replay as one JSON object.")
    ] = False,
    dataset: DatasetOption = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = "local[*]",
    month: Annotated[
        str | None, typer.Option("--month", help="With --dataset: replay only this month, YYYY-MM.")
    ] = None,
) -> None:
    """Replay recorded load balancing: conformance findings, fairness and what-if scenarios.

    Exit code 1 when the recording has conformance findings. Example:
    zapanalytics replay --db out/zap.duckdb --fuse 80 --policy equal_share --json
    """
    from zapanalytics.replay import Scenario, load_recording, run_replay
    from zapanalytics.store import StoreLockedError, read_only_store

    if dataset is not None:
        return run_engine_command(
            "replay", dataset=dataset, engine=engine, spark_master=spark_master,
            installation=installation, month=month, as_json=as_json,
            unsupported={"--db": db, "--fuse": fuse, "--chargers": chargers, "--policy": policy,
                         "--budget-kw": budget_kw, "--apm": apm, "--available": available,
                         "--peer": peer, "--out": out},
        )  # fmt: skip
    if db is None:
        raise UserError("give --db STORE (or --dataset DIR)")
    if policy is not None and policy not in _POLICIES:
        raise UserError(f"--policy must be one of {', '.join(_POLICIES)}, not {policy!r}")
    if not db.is_file():
        raise UserError(f"no store at {db}")
    try:
        con = read_only_store(db)
    except StoreLockedError as exc:
        raise UserError(str(exc)) from None
    try:
        recording = load_recording(con, installation, apm=apm, available_current_a=available)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        con.close()
    scenarios = []
    if any(v is not None for v in (fuse, chargers, policy, budget_kw)):
        scenarios.append(
            Scenario(
                name=_scenario_name(fuse, chargers, policy, budget_kw),
                policy=policy or "reference",
                main_fuse_a=fuse,
                n_chargers=chargers,
                apm_budget_kw=budget_kw,
            )
        )
    try:
        with working("replaying the recording", quiet=as_json):
            result = run_replay(recording, scenarios, peer=peer)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    payload = result.as_dict()
    if out is not None:
        _write(out, result, payload)
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str, ensure_ascii=False) + "\n")
    else:
        _print(result, out)
    if result.findings:
        raise typer.Exit(1)


def _scenario_name(
    fuse: float | None, chargers: int | None, policy: str | None, budget_kw: float | None
) -> str:
    parts = []
    if fuse is not None:
        parts.append(f"fuse {fuse:g} A")
    if chargers is not None:
        parts.append(f"{chargers} chargers")
    if policy is not None:
        parts.append(policy)
    if budget_kw is not None:
        parts.append(f"budget {budget_kw:g} kW")
    return ", ".join(parts)


def _write(out: Path, result: Any, payload: dict) -> None:
    from zapanalytics.naming import charger_names, with_charger_names
    from zapanalytics.replay.conformance import findings_frame

    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(
        json.dumps(payload, default=str, ensure_ascii=False, indent=1) + "\n", "utf-8"
    )
    names = charger_names(result.recording.chargers)
    with_charger_names(findings_frame(result.findings), names).write_csv(out / "findings.csv")
    result.fairness.intervals.write_parquet(out / "fairness_intervals.parquet")
    result.fairness.users.write_csv(out / "fairness_users.csv")
    result.recording.line_steps.write_parquet(out / "line_load.parquet")
    result.recording.charger_steps.write_parquet(out / "charger_steps.parquet")


def _print(result: Any, out: Path | None) -> None:
    from zapanalytics.naming import charger_names

    zone = result.recording.installation.timezone
    names = charger_names(result.recording.chargers)
    if result.findings:
        table = Table(title=f"Load-balancing findings ({zone})")
        for column, justify in (("kind", "left"), ("start", "left"), ("end", "left"),
                                ("charger", "left"), ("phase", "left"), ("A", "right"),
                                ("constraint", "left")):  # fmt: skip
            # A charger's name is never cut: people find it by that name.
            table.add_column(column, justify=justify, no_wrap=column == "charger")
        for f in result.findings:
            table.add_row(
                f.kind,
                _local(f.start_utc, zone),
                _local(f.end_utc, zone),
                Text(names.get(f.charger_id, f.charger_id or "–")),
                f.phase or "–",
                "–" if f.magnitude_a is None else f"{f.magnitude_a:.2f}",
                f.constraint,
            )
        console.print(table)
    else:
        console.print("no load-balancing findings", markup=False, highlight=False)
    summary = result.fairness.summary
    console.print(
        f"fairness: Jain {_fmt(summary['mean_jain_index'])} (max-min fair "
        f"{_fmt(summary['mean_jain_index_fair'])}), largest max-min shortfall "
        f"{_fmt(summary['max_min_shortfall_a'])} A, wait p95 {_fmt(summary['p95_wait_s'])} s",
        markup=False, highlight=False,
    )  # fmt: skip
    table = Table(title="Scenarios")
    for column in ("scenario", "chargers", "fuse A", "kWh delivered", "kWh not delivered",
                   "sessions short", "peak A", "peak kW", "capacity step"):  # fmt: skip
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for s in result.scenarios:
        d = s.summary
        table.add_row(
            s.scenario.name, str(d["chargers"]), _fmt(d["main_fuse_a"]),
            f"{d['energy_delivered_kwh']:,.1f}", _kwh(d["energy_not_delivered_kwh"]),
            str(d["sessions_not_full"]), f"{d['peak_line_current_a']:.1f}",
            f"{d['peak_power_kw']:.1f}", d["worst_capacity_step"] or "–",
        )  # fmt: skip
    console.print(table)
    for p in result.peer:
        d = p.as_dict()
        text = (f"ACN-Sim {d['acn_algorithm']}: skipped ({d['skipped']})" if d["skipped"] else
                f"ACN-Sim {d['acn_algorithm']} vs {d['policy']}: {d['acn_kwh']:,.1f} vs "
                f"{d['ours_kwh']:,.1f} kWh ({100 * (d['relative_difference'] or 0):.2f} %)")  # fmt: skip
        console.print(text, markup=False, highlight=False)
    if out is not None:
        console.print(f"wrote {out / 'replay.json'}", markup=False, highlight=False)


def _kwh(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _local(value: Any, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:g}" if isinstance(value, int | float) else str(value)
