"""Helpers for the one-session-per-charging tests: datasets, CLI runs, portal exports."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
from typer.testing import CliRunner

from zapanalytics.cli import app

OSLO = ZoneInfo("Europe/Oslo")
#: The simulated month and the site's first day (see ``make_dataset``).
MONTH = "2025-10"


def cli(*args: str) -> dict | str:
    """Run the console script in-process; the parsed JSON when ``--json`` is given."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"{args}: {result.output}"
    return json.loads(result.stdout) if "--json" in args else result.stdout


def make_dataset(out: Path, *, days: int = 10, chargers: int = 3) -> Path:
    """``zapanalytics sample``: a simulated site in the real source formats."""
    cli("sample", "--out", out, "--days", days, "--chargers", chargers, "--seed", 2025, "--json")
    return out


def charge_history(root: Path) -> list[dict]:
    """Every charge-history item of a dataset's ``zaptec/`` dump, page by page."""
    items = []
    for page in sorted((root / "zaptec" / "chargehistory").glob("*.json")):
        items.extend(json.loads(page.read_text("utf-8"))["Data"])
    return items


def rewrite_charge_history(root: Path, change) -> None:
    """Apply ``change(items) -> items`` to every charge-history page of a dataset."""
    for page in sorted((root / "zaptec" / "chargehistory").glob("*.json")):
        document = json.loads(page.read_text("utf-8"))
        document["Data"] = change(document["Data"])
        page.write_text(json.dumps(document), "utf-8")


def cloud_utc(text: str) -> dt.datetime:
    """A charge-history time (naive UTC, one to three fraction digits) as aware UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def is_void(item: dict) -> bool:
    return bool(item["CommitMetadata"] & 32)


def write_portal_xlsx(items: list[dict], path: Path, *, installation: str | None = None) -> Path:
    """The portal's consumption export as Excel saves it: Norwegian headers, naive local
    date-time cells, one row per (non-void) session."""
    book = openpyxl.Workbook()
    sheet = book.active
    header = ["Ladestasjon", "Serienummer", "Bruker", "E-post", "Starttid", "Sluttid", "Energi (kWh)"]
    if installation is not None:
        header.insert(0, "Installasjon")
    sheet.append(header)
    for item in items:
        if is_void(item):
            continue
        end = item.get("CommitEndDateTime") or item["EndDateTime"]
        row = [
            item["DeviceName"],
            item["DeviceId"],
            item["UserFullName"],
            item["UserEmail"],
            cloud_utc(item["StartDateTime"]).astimezone(OSLO).replace(tzinfo=None),
            cloud_utc(end).astimezone(OSLO).replace(tzinfo=None),
            item["Energy"],
        ]
        if installation is not None:
            row.insert(0, installation)
        sheet.append(row)
    book.save(path)
    return path


def write_portal_csv(items: list[dict], path: Path) -> Path:
    """The same export as a Norwegian CSV: ``;`` separated, decimal commas, local times."""
    lines = ["Ladestasjon;Serienummer;Bruker;Starttid;Sluttid;Energi (kWh)"]
    for item in items:
        if is_void(item):
            continue
        end = item.get("CommitEndDateTime") or item["EndDateTime"]
        start_local = cloud_utc(item["StartDateTime"]).astimezone(OSLO)
        end_local = cloud_utc(end).astimezone(OSLO)
        energy = f"{item['Energy']:.3f}".replace(".", ",")
        lines.append(
            f"{item['DeviceName']};{item['DeviceId']};{item['UserFullName']};"
            f"{start_local:%d.%m.%Y %H:%M:%S};{end_local:%d.%m.%Y %H:%M:%S};{energy}"
        )
    path.write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path
