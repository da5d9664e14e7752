"""Feed one corpus input to the reader of its source, in process and through the CLI.

Each source has a *runner* that places the input where its reader looks for it, calls the
reader and returns an :class:`Outcome`: the documented error it raised, or what it stored,
quarantined or reported. A runner never catches anything but the documented error types,
so any other exception reaches the test as a crash.

:func:`cli_invocation` builds the same situation for the real console script and returns the
arguments of the matching ``zapanalytics`` command.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import functools
import importlib.util
import json
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

CORPUS = Path(__file__).resolve().parent / "corpus"
BASE_DUMP = CORPUS / "zaptec" / "_base"
OCMF_PUBLIC_KEY = CORPUS / "ocmf" / "_public_key.pem"

#: Where a Zaptec dump input goes, by the start of its file name.
ZAPTEC_ROLES = {
    "page": "chargehistory/page_0000.json",
    "installation": "installation_{id}.json",
    "chargers": "chargers.json",
    "constants": "constants.json",
    "observations": "observations.jsonl",
}
#: The day a price file is loaded for, unless the manifest names another.
PRICE_DAY = dt.date(2025, 3, 10)


@dataclasses.dataclass
class Outcome:
    """What a reader did with one input.

    ``rows_in``/``stored``/``quarantined`` count the input's own source records (the base
    dump the input is placed in is subtracted); ``reasons`` are the quarantine reasons;
    ``notes`` are what the reader reported without refusing (coverage problems, unreadable
    export rows, OCMF deviations, a verdict); ``con`` is the store, for checks.
    """

    error: Exception | None = None
    rows_in: int | None = None
    stored: int | None = None
    quarantined: int | None = None
    reasons: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    con: duckdb.DuckDBPyConnection | None = None
    run_rows: list[tuple] = dataclasses.field(default_factory=list)


def load_manifest() -> list[dict[str, Any]]:
    with (CORPUS / "manifest.toml").open("rb") as handle:
        return tomllib.load(handle)["input"]


def module_ready(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _store():
    from zapanalytics.store import open_store

    return open_store(":memory:")


def _quarantine_reasons(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT reason FROM quarantine ORDER BY reason").fetchall()]


def _runs(con) -> list[tuple]:
    return con.execute(
        "SELECT source, rows_in, rows_stored, rows_quarantined, status FROM ingest_runs"
    ).fetchall()


# -- Zaptec dump -------------------------------------------------------------------------------


def zaptec_role(entry: dict[str, Any]) -> str:
    role = entry.get("role") or Path(entry["file"]).name.split("_", 1)[0]
    if role not in ZAPTEC_ROLES:
        raise KeyError(f"{entry['file']}: unknown Zaptec dump role {role!r}")
    return role


def build_zaptec_dump(entry: dict[str, Any], target: Path, *, with_input: bool = True) -> Path:
    """A dump directory: the base dump with the input in its place (or left out)."""
    shutil.copytree(BASE_DUMP, target)
    base = target / "zaptec"
    role = zaptec_role(entry)
    if role == "installation":
        for old in base.glob("installation_*.json"):
            old.unlink()
    elif role in ("chargers", "constants", "observations"):
        (base / ZAPTEC_ROLES[role]).unlink()
    if with_input:
        installation_id = "1a5e0000-0000-4000-8000-0000000000b1"
        path = base / ZAPTEC_ROLES[role].format(id=installation_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / entry["file"], path)
    return target


@functools.cache
def _base_counts(role: str) -> Any:
    """Counts of the base dump without the file an input of ``role`` replaces."""
    from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump

    with tempfile.TemporaryDirectory() as tmp:
        without = build_zaptec_dump({"file": "zaptec/x", "role": role}, Path(tmp) / "base", with_input=False)
        con = _store()
        try:
            return ingest_zaptec_dump(con, without, price_area="NO1")
        finally:
            con.close()


def run_zaptec(entry: dict[str, Any], tmp: Path) -> Outcome:
    from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
    from zapanalytics.ingest.zaptec.records import RecordError

    base = _base_counts(zaptec_role(entry))
    dump = build_zaptec_dump(entry, tmp / "dump")
    con = _store()
    outcome = Outcome(con=con)
    try:
        counts = ingest_zaptec_dump(con, dump, price_area="NO1")
    except RecordError as exc:
        outcome.error = exc
        outcome.run_rows = _runs(con)
        return outcome
    outcome.rows_in = counts.rows_in - base.rows_in
    outcome.stored = counts.rows_stored - base.rows_stored
    outcome.quarantined = counts.rows_quarantined - base.rows_quarantined
    outcome.reasons = _quarantine_reasons(con)
    outcome.run_rows = _runs(con)
    outcome.values = {"total_in": counts.rows_in, "total_stored": counts.rows_stored,
                      "total_quarantined": counts.rows_quarantined}
    return outcome


# -- spot prices -------------------------------------------------------------------------------


def price_day(entry: dict[str, Any]) -> dt.date:
    return dt.date.fromisoformat(entry["day"]) if "day" in entry else PRICE_DAY


def build_price_dir(entry: dict[str, Any], target: Path) -> Path:
    day = price_day(entry)
    source = CORPUS / entry["file"]
    if source.suffix == ".xml":
        path = target / "entsoe" / source.name
    else:
        path = target / "prices" / "NO1" / f"{day:%Y-%m-%d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    return target


def run_prices(entry: dict[str, Any], tmp: Path) -> Outcome:
    from zapanalytics.ingest.prices.spot import load_prices

    directory = build_price_dir(entry, tmp / "prices_source")
    day = price_day(entry)
    con = _store()
    result = load_prices(con, area="NO1", first_day=day, last_day=day, source=directory)
    counts = result.counts
    return Outcome(
        rows_in=counts.rows_in,
        stored=counts.rows_stored,
        quarantined=counts.rows_quarantined,
        reasons=_quarantine_reasons(con),
        notes=list(result.problems),
        con=con,
        run_rows=_runs(con),
        values=result.as_dict(),
    )


# -- portal consumption export ---------------------------------------------------------------


def run_portal(entry: dict[str, Any], tmp: Path) -> Outcome:
    from zapanalytics.ingest.portal.export import PortalReportError, read_consumption_export

    try:
        export = read_consumption_export(CORPUS / entry["file"], timezone="Europe/Oslo")
    except PortalReportError as exc:
        return Outcome(error=exc)
    problems = [p for p in export["problem"].to_list() if p is not None]
    return Outcome(
        rows_in=export.height,
        stored=export.height - len(problems),
        quarantined=len(problems),
        reasons=problems,
        values={"export": export},
    )


# -- OCPP spool --------------------------------------------------------------------------------


def build_spool(entry: dict[str, Any], target: Path) -> Path:
    """A spool directory whose one sealed segment is the input."""
    from zapanalytics.ingest.spool import META_NAME, SPOOL_FORMAT, SPOOL_VERSION, segment_name

    target.mkdir(parents=True)
    meta = {"format": SPOOL_FORMAT, "version": SPOOL_VERSION, "spool_id": "badinput-" + Path(entry["file"]).stem}
    (target / META_NAME).write_text(json.dumps(meta), encoding="utf-8")
    shutil.copyfile(CORPUS / entry["file"], target / segment_name(1, sealed=True))
    return target


def run_ocpp(entry: dict[str, Any], tmp: Path) -> Outcome:
    from zapanalytics.ingest.ocpp.load import load_spool
    from zapanalytics.ingest.spool import SpoolError

    spool = build_spool(entry, tmp / "spool")
    con = _store()
    try:
        report = load_spool(con, spool)
    except SpoolError as exc:
        return Outcome(error=exc, con=con)
    counts = report.counts
    return Outcome(
        rows_in=counts.rows_in,
        stored=counts.rows_stored,
        quarantined=counts.rows_quarantined,
        reasons=_quarantine_reasons(con),
        con=con,
        run_rows=_runs(con),
        values=report.as_dict(),
    )


# -- OCPP frames (what the central system answers) -------------------------------------------


def run_frame(entry: dict[str, Any], tmp: Path) -> Outcome:
    """The server's own path for one received frame: envelope check, then the answer."""
    from zapanalytics.ingest.ocpp.server import (
        CentralSystem,
        FrameError,
        ServerSettings,
        call_error_text,
        parse_frame,
    )

    text = (CORPUS / entry["file"]).read_bytes().decode("utf-8", "surrogateescape")
    central = CentralSystem(ServerSettings(spool_dir=tmp / "spool"))
    try:
        frame = parse_frame(text)
    except FrameError as exc:
        reply = call_error_text(exc.unique_id, exc.code, exc.description)
    else:
        reply = central.answer_call("ZPR300001", frame[1], frame[2], frame[3])
    answer = json.loads(reply)
    outcome = Outcome(values={"reply": answer})
    if answer[0] == 4:
        outcome.notes = [f"{answer[2]}: {answer[3]}"]
    return outcome


# -- OCMF ------------------------------------------------------------------------------------


def run_ocmf(entry: dict[str, Any], tmp: Path) -> Outcome:
    from zapanalytics.audit.ocmf import OcmfError, parse, verify

    data = (CORPUS / entry["file"]).read_bytes()
    try:
        record = parse(data)
    except OcmfError as exc:
        return Outcome(error=exc)
    verdict = verify(data, OCMF_PUBLIC_KEY.read_bytes())
    summary = verdict.as_dict()
    transaction = summary.get("transaction_checks") or {}
    return Outcome(
        notes=list(record.deviations),
        values={
            "verdict": summary["verdict"],
            "reason": summary["reason"],
            "transaction_passed": transaction.get("passed"),
            "transaction_failed": ", ".join(transaction.get("failed") or []),
        },
    )


# -- tariff TOML ---------------------------------------------------------------------------------


def run_tariff(entry: dict[str, Any], tmp: Path) -> Outcome:
    from zapanalytics.billing.rates import RateTableError, load_rates

    try:
        rates = load_rates([CORPUS / entry["file"]])
    except RateTableError as exc:
        return Outcome(error=exc)
    return Outcome(values={"grid_companies": list(rates.grid_companies()), "sha256": rates.sha256})


# -- AMS HAN frames and MID sub-meter CSV ------------------------------------------------------


def _counted(con, counts) -> Outcome:
    return Outcome(
        rows_in=counts.rows_in,
        stored=counts.rows_stored,
        quarantined=counts.rows_quarantined,
        reasons=_quarantine_reasons(con),
        con=con,
        run_rows=_runs(con),
        values=counts.as_dict(),
    )


def placed_copy(entry: dict[str, Any], target: Path) -> Path:
    """The input copied alone into ``target`` (readers look at whole directories too)."""
    target.mkdir(parents=True, exist_ok=True)
    path = target / Path(entry["file"]).name
    shutil.copyfile(CORPUS / entry["file"], path)
    return path


def run_han(entry: dict[str, Any], tmp: Path) -> Outcome:
    from zapanalytics.ingest.meters.han import ingest_han

    con = _store()
    counts = ingest_han(con, [placed_copy(entry, tmp / "han")], timezone="Europe/Oslo")
    return _counted(con, counts)


def run_submeter(entry: dict[str, Any], tmp: Path) -> Outcome:
    from zapanalytics.ingest.meters.submeter import ingest_submeter

    con = _store()
    counts = ingest_submeter(con, [placed_copy(entry, tmp / "submeter")], timezone="Europe/Oslo")
    return _counted(con, counts)


RUNNERS: dict[str, Callable[[dict[str, Any], Path], Outcome]] = {
    "zaptec": run_zaptec,
    "prices": run_prices,
    "portal": run_portal,
    "ocpp": run_ocpp,
    "ocpp_frames": run_frame,
    "ocmf": run_ocmf,
    "tariff": run_tariff,
    "han": run_han,
    "submeter": run_submeter,
}

#: The module each source's reader lives in; inputs of a source whose reader is not built
#: yet are skipped, saying so.
READER_MODULES = {
    "zaptec": "zapanalytics.ingest.zaptec.files",
    "prices": "zapanalytics.ingest.prices.spot",
    "portal": "zapanalytics.ingest.portal.export",
    "ocpp": "zapanalytics.ingest.ocpp.load",
    "ocpp_frames": "zapanalytics.ingest.ocpp.server",
    "ocmf": "zapanalytics.audit.ocmf",
    "tariff": "zapanalytics.billing.rates",
    "han": "zapanalytics.ingest.meters.han",
    "submeter": "zapanalytics.ingest.meters.submeter",
}


# -- the same inputs through the console script ---------------------------------------------


@functools.cache
def _template_store() -> Path:
    """A store file with the base installation and one good session, made once per process."""
    from zapanalytics.ingest.zaptec.files import ingest_zaptec_dump
    from zapanalytics.store import open_store

    work = Path(tempfile.mkdtemp(prefix="zapanalytics-badinput-"))
    atexit.register(shutil.rmtree, work, True)
    dump = build_zaptec_dump({"file": "zaptec/page_bom.json"}, work / "dump")
    db = work / "template.duckdb"
    con = open_store(db)
    try:
        ingest_zaptec_dump(con, dump, price_area="NO1")
    finally:
        con.close()
    return db


def prepare_cli_store(db: Path) -> Path:
    """A store holding the base installation and one good session (portal and bill need one)."""
    shutil.copyfile(_template_store(), db)
    return db


def cli_invocation(entry: dict[str, Any], tmp: Path) -> list[str] | None:
    """Arguments of the ``zapanalytics`` command that reads ``entry``'s input (None: no CLI)."""
    source = entry["source"]
    db = tmp / "cli.duckdb"
    if source == "zaptec":
        dump = build_zaptec_dump(entry, tmp / "cli_dump")
        return ["ingest", "zaptec", "--dump", str(dump), "--db", str(db), "--price-area", "NO1", "--json"]
    if source == "prices":
        directory = build_price_dir(entry, tmp / "cli_prices")
        day = price_day(entry).isoformat()
        return ["ingest", "prices", "--db", str(db), "--area", "NO1", "--from", day, "--to", day,
                "--source", str(directory), "--json"]
    if source == "portal":
        prepare_cli_store(db)
        return ["ingest", "portal", "--db", str(db), "--file", str(CORPUS / entry["file"]), "--json"]
    if source == "ocpp":
        spool = build_spool(entry, tmp / "cli_spool")
        return ["ingest", "ocpp", "--spool", str(spool), "--db", str(db), "--json"]
    if source == "ocmf":
        return ["audit", "ocmf", "--file", str(CORPUS / entry["file"]), "--public-key",
                str(OCMF_PUBLIC_KEY), "--json"]
    if source == "tariff":
        prepare_cli_store(db)
        return ["bill", "--db", str(db), "--month", "2025-03", "--method", "flat", "--price", "2.5",
                "--tariff", str(CORPUS / entry["file"]), "--json"]
    if source == "han":
        path = placed_copy(entry, tmp / "cli_han")
        return ["ingest", "han", str(path), "--db", str(db), "--timezone", "Europe/Oslo", "--json"]
    if source == "submeter":
        path = placed_copy(entry, tmp / "cli_submeter")
        return ["ingest", "submeter", str(path), "--db", str(db), "--timezone", "Europe/Oslo", "--json"]
    return None
