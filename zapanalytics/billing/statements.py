"""Per-user statements as data: the statement document, its CSV and XLSX, and issuing.

The *statement document* (:func:`statement_document`) is the canonical record of a bill: a
JSON-ready dict with every user's lines in NOK (exact to the øre), each line auditable —
``quantity``, ``unit``, ``unit_rate_nok`` (a weighted mean where the rate varies inside the
month, labelled in ``unit_rate_basis``), ``amount_ex_vat_nok``, ``vat_nok``, ``amount_nok``,
``rate_valid_from``, ``rate_source`` and ``rate_verified`` — the user's sessions, the common
meter's share, the capacity step, the reconciliation, the rate tables' hash, the notes and an
hourly breakdown per user. Every rendering (CSV, XLSX here; HTML and PDF in
:mod:`zapanalytics.report`) is made from the document, so an issued statement renders again,
identically, from the store.

Issuing (:func:`issue`) stores the document in ``issued_statements``; a later rate change
never touches it, and issuing again adds a version.

Every text cell in CSV/XLSX goes through :func:`guard_formula` (no formula injection from a
user name).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from zapanalytics.billing.energy import month_bounds
from zapanalytics.billing.monthly import Bill
from zapanalytics.billing.provenance import LINE_UNITS, WEIGHTED_LINES, RateSource, line_rates
from zapanalytics.spreadsheet import FORMULA_PREFIXES, guard_formula  # noqa: F401 - re-exported

NO_USER = "(no user)"
COMMON = "(common meter)"


def _nok(ore: int) -> float:
    return float(Decimal(int(ore)) / 100)


def _line_dict(row: dict[str, Any], sources: dict[str, RateSource]) -> dict[str, Any]:
    code = row["line"]
    amount_ex_vat = _nok(row["amount_ex_vat_ore"])
    quantity = round(float(row["quantity_kwh"] or 0.0), 3)
    if code == "rounding":
        quantity = 0.0
    source = sources.get(code)
    weighted = code in WEIGHTED_LINES or source is None or source.value is None
    if not weighted:
        unit_rate = round(source.value, 6)  # the tabled rate, as the tables give it
    elif row["quantity_kwh"] and code != "rounding":
        unit_rate = round(float(row["amount_ex_vat_ore"]) / 100 / float(row["quantity_kwh"]), 4)
    else:
        unit_rate = None
    return {
        "line": code,
        "label": row["label"],
        "invoice": row["invoice"],
        "quantity": quantity,
        "unit": LINE_UNITS.get(code, "kWh"),
        "quantity_kwh": quantity if LINE_UNITS.get(code, "kWh") == "kWh" else 0.0,
        "unit_rate_nok": unit_rate,
        "unit_rate_basis": "weighted mean" if weighted else "rate",
        "amount_ex_vat_nok": amount_ex_vat,
        "vat_nok": _nok(row["vat_ore"]),
        "amount_nok": _nok(row["amount_ore"]),
        "rate_valid_from": source.valid_from if source else None,
        "rate_source": source.source if source else None,
        "rate_status": source.status if source else "U",
        "rate_verified": source.verified if source else False,
    }


def _totals(lines: pl.DataFrame) -> dict[str, float]:
    return {
        "cost_ex_vat_nok": _nok(lines["amount_ex_vat_ore"].sum()),
        "vat_nok": _nok(lines["vat_ore"].sum()),
        "cost_nok": _nok(lines["amount_ore"].sum()),
    }


def _local(value: dt.datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat(timespec="minutes") if value is not None else None


def _sessions(bill: Bill, user_id: str | None) -> list[dict[str, Any]]:
    if not bill.sessions.height:
        return []
    zone = ZoneInfo(bill.site.timezone)
    mine = bill.sessions.filter(
        pl.col("user_id").is_null() if user_id is None else pl.col("user_id") == user_id
    )
    return [
        {
            "session_id": r["session_id"],
            "start": _local(r["start_utc"], zone),
            "end": _local(r["end_utc"], zone),
            "charger_name": r["charger_name"],
            "energy_kwh": round(float(r["energy_kwh"]), 3),
        }
        for r in mine.iter_rows(named=True)
    ]


def statement_document(bill: Bill) -> dict[str, Any]:
    """The bill as one JSON-ready document (see the module docstring)."""
    lines = bill.split.lines.filter(pl.col("month") == bill.month)
    sources = line_rates(bill.rates, bill.site, bill.month, bill.parameters)
    people = {r["user_id"]: r for r in bill.users.iter_rows(named=True)}
    users = []
    user_ids = lines["user_id"].unique(maintain_order=True).to_list()
    for user_id in user_ids:
        mine = lines.filter(
            pl.col("user_id").is_null() if user_id is None else pl.col("user_id") == user_id
        )
        energy = mine.filter(pl.col("line").is_in(["flat_energy", "spot"]))["quantity_kwh"].sum()
        person = people.get(user_id, {})
        users.append(
            {
                "user_id": user_id,
                "user_name": person.get("user_name"),
                "user_email": person.get("user_email"),
                "energy_kwh": round(float(energy), 3),
                **_totals(mine),
                "lines": [_line_dict(r, sources) for r in mine.iter_rows(named=True)],
                "sessions": _sessions(bill, user_id),
            }
        )
    users.sort(key=lambda u: (-u["cost_nok"], u["user_id"] or ""))
    common = bill.split.common.filter(pl.col("month") == bill.month)
    total_ore = int(lines["amount_ore"].sum())
    hourly: dict[str, list] = {}
    for row in bill.hourly.iter_rows(named=True):
        hourly.setdefault(row["user_id"] or "", []).append(
            [row["hour_start"].isoformat(), round(row["energy_kwh"], 4), round(row["cost_nok"], 4)]
        )
    common_lines = [_line_dict(r, sources) for r in common.iter_rows(named=True)]
    used = {line["line"] for user in users for line in user["lines"]} | {
        line["line"] for line in common_lines
    }
    unverified = [
        {
            "line": code,
            "rate_valid_from": sources[code].valid_from,
            "rate_source": sources[code].source,
            "rate_status": sources[code].status,
        }
        for code in sorted(used)
        if code in sources and not sources[code].verified
    ]
    zone = ZoneInfo(bill.site.timezone)
    start, end = month_bounds(bill.month, bill.site.timezone)
    document: dict[str, Any] = {
        "month": bill.month,
        "method": bill.method,
        "currency": "NOK",
        "group_by": bill.group_by,
        "installation_id": bill.installation_id,
        "installation_name": bill.installation_name,
        "period": {"start": _local(start, zone), "end": _local(end, zone)},
        "users": users,
        "total_energy_kwh": round(float(sum(u["energy_kwh"] for u in users)), 3),
        "total_cost_nok": _nok(total_ore),
        "common": {**_totals(common), "lines": common_lines},
        "capacity": [
            {**r, "capacity_nok": round(r["capacity_nok"], 2), "peak_kw": round(r["peak_kw"], 3)}
            for r in bill.split.capacity.filter(pl.col("month") == bill.month).iter_rows(named=True)
        ]
        if bill.split.capacity.height
        else [],
        "peak_hours": _peak_hours(bill),
        "reconciliation": _reconciliation(bill),
        "site": {
            "timezone": bill.site.timezone,
            "price_area": bill.site.price_area,
            "county": bill.site.county,
            "municipality": bill.site.municipality,
            "grid_company": bill.site.grid_company,
            "norgespris": bill.site.norgespris,
            "customer_type": bill.site.customer_type,
            "dwellings": bill.site.dwellings,
        },
        "rates": {
            "sha256": bill.rates.sha256,
            "sources": list(bill.rates.sources),
            "unverified": unverified,
        },
        "parameters": bill.parameters,
        "notes": list(bill.notes),
        "rounding": (
            "Each line excl. VAT is rounded to whole øre (half away from zero), VAT is computed "
            "per line from it; totals are sums of lines."
        ),
        "hourly": hourly,
        "issued": None,
    }
    return document


def _peak_hours(bill: Bill) -> list[dict[str, Any]]:
    peaks = bill.split.peaks
    if not peaks.height:
        return []
    by_hour: dict[Any, dict[str, float]] = {}
    for row in bill.split.peak_energy.iter_rows(named=True):
        by_hour.setdefault(row["hour_start"], {})[row["user_id"] or ""] = round(
            row["energy_kwh"], 4
        )
    return [
        {
            "rank": r["rank"],
            "hour_start": r["hour_start"].isoformat(),
            "site_kwh": round(r["energy_kwh"], 4),
            "users_kwh": by_hour.get(r["hour_start"], {}),
        }
        for r in peaks.filter(pl.col("month") == bill.month).iter_rows(named=True)
    ]


def _reconciliation(bill: Bill) -> dict[str, Any] | None:
    if bill.reconciliation is None:
        return None
    summary = bill.reconciliation.summary.filter(pl.col("month") == bill.month)
    return {
        "policy": bill.reconciliation.policy,
        "invoices": [
            {
                "invoice": r["invoice"],
                "invoiced_nok": _nok(r["invoiced_ore"]),
                "users_nok": _nok(r["users_ore"]),
                "common_nok": _nok(r["common_ore"]),
                "residual_nok": _nok(r["residual_ore"]),
            }
            for r in summary.iter_rows(named=True)
        ],
    }


def public_document(document: dict[str, Any]) -> dict[str, Any]:
    """The document as printed by ``bill --json``: everything but the hourly breakdown."""
    return {k: v for k, v in document.items() if k != "hourly"}


# --- files ---------------------------------------------------------------------------------


def display_name(user: dict[str, Any]) -> str:
    """The name a statement shows for a user (or charger, or card); guests have none."""
    if user["user_id"] is None:
        return NO_USER
    return user["user_name"] or user["user_id"]


_LINE_FIELDS = [
    "line",
    "label",
    "quantity",
    "unit",
    "unit_rate_nok",
    "unit_rate_basis",
    "amount_ex_vat_nok",
    "vat_nok",
    "amount_nok",
    "rate_valid_from",
    "rate_source",
    "rate_verified",
]


def _line_cells(line: dict[str, Any]) -> list[Any]:
    return [line.get(field) for field in _LINE_FIELDS]


def _rows(document: dict[str, Any]) -> Iterable[list[Any]]:
    for user in document["users"]:
        name = display_name(user)
        head = [document["month"], document["method"], user["user_id"] or "", name]
        for line in user["lines"]:
            yield [*head, *_line_cells(line)]
        yield [
            *head,
            "total",
            "Total",
            user["energy_kwh"],
            "kWh",
            None,
            None,
            user["cost_ex_vat_nok"],
            user["vat_nok"],
            user["cost_nok"],
            None,
            None,
            None,
        ]
    for line in document["common"]["lines"]:
        yield [document["month"], document["method"], "", COMMON, *_line_cells(line)]


_HEADER = ["month", "method", "user_id", "user_name", *_LINE_FIELDS]


def write_csv(document: dict[str, Any], path: str | Path) -> Path:
    """All statement lines, one row per line plus a total row per user (UTF-8, guarded)."""
    target = Path(path)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_HEADER)
        for row in _rows(document):
            writer.writerow([guard_formula(v) for v in row])
    return target


def write_xlsx(document: dict[str, Any], path: str | Path) -> Path:
    """Sheets ``Summary`` (one row per user), ``Lines`` and ``Hourly``; text cells guarded."""
    from openpyxl import Workbook

    book = Workbook()
    summary = book.active
    summary.title = "Summary"

    def put(sheet, values: list[Any]) -> None:
        sheet.append([guard_formula(v) for v in values])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # never a formula, whatever the text

    put(
        summary,
        [
            "month",
            "method",
            "user_id",
            "user_name",
            "energy_kwh",
            "cost_ex_vat_nok",
            "vat_nok",
            "cost_nok",
        ],
    )
    for user in document["users"]:
        put(
            summary,
            [
                document["month"],
                document["method"],
                user["user_id"] or "",
                display_name(user),
                user["energy_kwh"],
                user["cost_ex_vat_nok"],
                user["vat_nok"],
                user["cost_nok"],
            ],
        )
    put(
        summary,
        [
            document["month"],
            document["method"],
            "",
            "Total",
            document["total_energy_kwh"],
            None,
            None,
            document["total_cost_nok"],
        ],
    )
    lines = book.create_sheet("Lines")
    put(lines, _HEADER)
    for row in _rows(document):
        put(lines, row)
    hourly = book.create_sheet("Hourly")
    put(hourly, ["user_id", "user_name", "hour_start", "energy_kwh", "cost_nok"])
    names = {u["user_id"] or "": display_name(u) for u in document["users"]}
    for user_id, rows in document.get("hourly", {}).items():
        for hour, energy, cost in rows:
            put(hourly, [user_id, names.get(user_id, user_id), hour, energy, cost])
    target = Path(path)
    book.save(target)
    return target


# --- issuing -------------------------------------------------------------------------------


def _has_issue_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'issued_statements'"
        ).fetchall()[0][0]
    )


def issued(
    con: duckdb.DuckDBPyConnection, installation_id: str | None, month: str, method: str
) -> dict[str, Any] | None:
    """The latest issued document for (installation, month, method), or None."""
    if not _has_issue_table(con):
        return None
    rows = con.execute(
        "SELECT statement_json FROM issued_statements WHERE installation_id = ? AND month = ?"
        " AND method = ? ORDER BY version DESC LIMIT 1",
        [installation_id or "", month, method],
    ).fetchall()
    return json.loads(rows[0][0]) if rows else None


def issue(
    con: duckdb.DuckDBPyConnection, document: dict[str, Any], *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Store ``document`` as the next version of its (installation, month, method).

    Returns the document with its ``issued`` block filled in (what was stored).
    """
    key = [document["installation_id"] or "", document["month"], document["method"]]
    con.execute("BEGIN TRANSACTION")
    try:
        version = con.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM issued_statements"
            " WHERE installation_id = ? AND month = ? AND method = ?",
            key,
        ).fetchall()[0][0]
        stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        stored = {
            **document,
            "issued": {
                "version": version,
                "issued_at": stamp.isoformat(),
                "rates_sha256": document["rates"]["sha256"],
            },
        }
        con.execute(
            "INSERT INTO issued_statements (installation_id, month, method, version, issued_at,"
            " rates_sha256, total_cost_nok, statement_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                *key,
                version,
                stamp,
                document["rates"]["sha256"],
                Decimal(str(document["total_cost_nok"])),
                json.dumps(stored, ensure_ascii=False),
            ],
        ).fetchall()
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return stored
