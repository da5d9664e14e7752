"""Per-user statements: the statement document, CSV, XLSX, one HTML page per user, and issuing.

The *statement document* (:func:`statement_document`) is the canonical record of a bill: a
JSON-ready dict with every user's lines in NOK (exact to the øre), the common meter's share,
the capacity step, the reconciliation, the rate tables' hash, the notes and an hourly
breakdown per user. The files are rendered from the document, so an issued statement can be
rendered again, identically, from the store.

Issuing (:func:`issue`) stores the document in ``issued_statements``; a later rate change
never touches it, and issuing again adds a version.

Every text cell in CSV/XLSX goes through :func:`guard_formula` (no formula injection from a
user name); every user string in HTML goes through :func:`html.escape`.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go
import polars as pl

from zapanalytics.billing.monthly import Bill
from zapanalytics.spreadsheet import FORMULA_PREFIXES, guard_formula  # noqa: F401 - re-exported

NO_USER = "(no user)"
COMMON = "(common meter)"


def _nok(ore: int) -> float:
    return float(Decimal(int(ore)) / 100)


def _line_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "line": row["line"],
        "label": row["label"],
        "invoice": row["invoice"],
        "quantity_kwh": round(float(row["quantity_kwh"] or 0.0), 3),
        "amount_ex_vat_nok": _nok(row["amount_ex_vat_ore"]),
        "vat_nok": _nok(row["vat_ore"]),
        "amount_nok": _nok(row["amount_ore"]),
    }


def _totals(lines: pl.DataFrame) -> dict[str, float]:
    return {
        "cost_ex_vat_nok": _nok(lines["amount_ex_vat_ore"].sum()),
        "vat_nok": _nok(lines["vat_ore"].sum()),
        "cost_nok": _nok(lines["amount_ore"].sum()),
    }


def statement_document(bill: Bill) -> dict[str, Any]:
    """The bill as one JSON-ready document (see the module docstring)."""
    lines = bill.split.lines.filter(pl.col("month") == bill.month)
    names = dict(bill.users.iter_rows())
    users = []
    user_ids = lines["user_id"].unique(maintain_order=True).to_list()
    for user_id in user_ids:
        mine = lines.filter(
            pl.col("user_id").is_null() if user_id is None else pl.col("user_id") == user_id
        )
        energy = mine.filter(pl.col("line").is_in(["flat_energy", "spot"]))["quantity_kwh"].sum()
        users.append(
            {
                "user_id": user_id,
                "user_name": names.get(user_id),
                "energy_kwh": round(float(energy), 3),
                **_totals(mine),
                "lines": [_line_dict(r) for r in mine.iter_rows(named=True)],
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
    document: dict[str, Any] = {
        "month": bill.month,
        "method": bill.method,
        "currency": "NOK",
        "installation_id": bill.installation_id,
        "installation_name": bill.installation_name,
        "users": users,
        "total_energy_kwh": round(float(sum(u["energy_kwh"] for u in users)), 3),
        "total_cost_nok": _nok(total_ore),
        "common": {
            **_totals(common),
            "lines": [_line_dict(r) for r in common.iter_rows(named=True)],
        },
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
        },
        "rates": {"sha256": bill.rates.sha256, "sources": list(bill.rates.sources)},
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


def _display_name(user: dict[str, Any]) -> str:
    if user["user_id"] is None:
        return NO_USER
    return user["user_name"] or user["user_id"]


def user_slug(user_id: str | None) -> str:
    """A file name for a user's page: safe characters only, plus a hash against collisions."""
    key = user_id if user_id is not None else ""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", key)[:40].strip("-") or "user"
    return f"{readable}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:8]}"


def _rows(document: dict[str, Any]) -> Iterable[list[Any]]:
    for user in document["users"]:
        name = _display_name(user)
        for line in user["lines"]:
            yield [
                document["month"],
                document["method"],
                user["user_id"] or "",
                name,
                line["line"],
                line["label"],
                line["quantity_kwh"],
                line["amount_ex_vat_nok"],
                line["vat_nok"],
                line["amount_nok"],
            ]
        yield [
            document["month"],
            document["method"],
            user["user_id"] or "",
            name,
            "total",
            "Total",
            user["energy_kwh"],
            user["cost_ex_vat_nok"],
            user["vat_nok"],
            user["cost_nok"],
        ]
    for line in document["common"]["lines"]:
        yield [
            document["month"],
            document["method"],
            "",
            COMMON,
            line["line"],
            line["label"],
            line["quantity_kwh"],
            line["amount_ex_vat_nok"],
            line["vat_nok"],
            line["amount_nok"],
        ]


_HEADER = [
    "month",
    "method",
    "user_id",
    "user_name",
    "line",
    "label",
    "quantity_kwh",
    "amount_ex_vat_nok",
    "vat_nok",
    "amount_nok",
]


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
                _display_name(user),
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
    names = {u["user_id"] or "": _display_name(u) for u in document["users"]}
    for user_id, rows in document.get("hourly", {}).items():
        for hour, energy, cost in rows:
            put(hourly, [user_id, names.get(user_id, user_id), hour, energy, cost])
    target = Path(path)
    book.save(target)
    return target


_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#1d2433;max-width:980px}"
    "table{border-collapse:collapse;font-size:14px;margin:8px 0}"
    "th,td{padding:4px 10px;border-bottom:1px solid #e3e6ea;text-align:right}"
    "th.text,td.text{text-align:left} tr.total td{font-weight:600;border-top:2px solid #1d2433}"
    ".note{color:#5b6472;font-size:13px}"
)


def _hourly_figure(rows: list[list[Any]], timezone: str) -> go.Figure:
    hours = [r[0] for r in rows]
    figure = go.Figure()
    figure.add_bar(
        x=hours,
        y=[r[1] for r in rows],
        name="Energy [kWh]",
        marker_color="#2b6cb0",
        width=3_600_000,  # one hour, in the date axis' milliseconds
    )
    figure.add_scatter(
        x=hours,
        y=[r[2] for r in rows],
        name="Cost incl. VAT [NOK]",
        yaxis="y2",
        mode="markers",
        marker={"color": "#c05621", "size": 6},
    )
    figure.update_layout(
        title=f"Energy and cost per hour ({timezone})",
        yaxis={"title": "Energy [kWh]", "rangemode": "tozero"},
        yaxis2={"title": "Cost [NOK]", "overlaying": "y", "side": "right", "rangemode": "tozero"},
        height=380,
        margin={"t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _lines_table(lines: list[dict[str, Any]], total: dict[str, Any] | None) -> str:
    head = (
        "<tr><th class='text'>Line</th><th>kWh</th><th>Excl. VAT [NOK]</th>"
        "<th>VAT [NOK]</th><th>Amount [NOK]</th></tr>"
    )
    rows = [
        f"<tr><td class='text'>{html.escape(line['label'])}</td><td>{line['quantity_kwh']:,.3f}</td>"
        f"<td>{line['amount_ex_vat_nok']:,.2f}</td><td>{line['vat_nok']:,.2f}</td>"
        f"<td>{line['amount_nok']:,.2f}</td></tr>"
        for line in lines
    ]
    if total is not None:
        rows.append(
            f"<tr class='total'><td class='text'>Total</td><td>{total['energy_kwh']:,.3f}</td>"
            f"<td>{total['cost_ex_vat_nok']:,.2f}</td><td>{total['vat_nok']:,.2f}</td>"
            f"<td>{total['cost_nok']:,.2f}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def render_user_page(
    document: dict[str, Any], user: dict[str, Any], *, plotlyjs: str | bool = True
) -> str:
    """One user's statement as an HTML page (plotly.js inline by default: works offline)."""
    e = html.escape
    title = f"Charging statement {document['month']}"
    place = document.get("installation_name") or document.get("installation_id") or ""
    rows = document.get("hourly", {}).get(user["user_id"] or "", [])
    figure = (
        _hourly_figure(rows, document["site"]["timezone"]).to_html(
            include_plotlyjs=plotlyjs,
            full_html=False,
            div_id="hourly",
            config={"displaylogo": False},
        )
        if rows
        else "<p class='note'>No hourly data.</p>"
    )
    notes = "".join(f"<li>{e(n)}</li>" for n in document.get("notes", []))
    issued = document.get("issued")
    issued_text = (
        f"Issued {e(str(issued['issued_at'])[:16].replace('T', ' '))} UTC, version {e(str(issued['version']))}."
        if issued
        else "Not issued (preview)."
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{e(title)} – {e(_display_name(user))}</title><style>{_PAGE_STYLE}</style></head><body>"
        f"<h1>{e(title)}</h1>"
        f"<p><b>{e(_display_name(user))}</b> · user id {e(user['user_id'] or '–')} · {e(str(place))}</p>"
        f"<p>Method: {e(document['method'])} · currency NOK · time zone {e(document['site']['timezone'])}</p>"
        + _lines_table(user["lines"], user)
        + figure
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + f"<p class='note'>{e(document.get('rounding', ''))} Rate tables "
        f"{e(document['rates']['sha256'][:12])}. {issued_text}</p></body></html>"
    )


def render_index(document: dict[str, Any], pages: dict[str, str]) -> str:
    """An index of the users' pages with the totals and the common meter's lines."""
    e = html.escape
    rows = "".join(
        f"<tr><td class='text'><a href='{e(pages[user_slug(u['user_id'])])}'>{e(_display_name(u))}</a></td>"
        f"<td>{u['energy_kwh']:,.3f}</td><td>{u['cost_nok']:,.2f}</td></tr>"
        for u in document["users"]
    )
    common = _lines_table(document["common"]["lines"], None) if document["common"]["lines"] else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Statements {e(document['month'])}</title><style>{_PAGE_STYLE}</style></head><body>"
        f"<h1>Statements {e(document['month'])} ({e(document['method'])})</h1>"
        f"<table><tr><th class='text'>User</th><th>kWh</th><th>NOK</th></tr>{rows}"
        f"<tr class='total'><td class='text'>Total</td><td>{document['total_energy_kwh']:,.3f}</td>"
        f"<td>{document['total_cost_nok']:,.2f}</td></tr></table>"
        + (f"<h2>Common meter</h2>{common}" if common else "")
        + "</body></html>"
    )


def write_statements(
    document: dict[str, Any], out_dir: str | Path, *, plotlyjs: str | bool = True
) -> list[Path]:
    """Write CSV, XLSX and one HTML page per user (plus an index) under ``out_dir``.

    Returns the files written. ``plotlyjs=True`` embeds plotly.js in every page, so each page
    works alone and offline; ``"directory"`` writes one shared ``plotly.min.js`` instead.
    """
    out = Path(out_dir)
    stem = f"statements_{document['month']}_{document['method']}"
    pages_dir = out / stem
    pages_dir.mkdir(parents=True, exist_ok=True)
    written = [write_csv(document, out / f"{stem}.csv"), write_xlsx(document, out / f"{stem}.xlsx")]
    pages = {}
    for user in document["users"]:
        slug = user_slug(user["user_id"])
        page = pages_dir / f"{slug}.html"
        page.write_text(render_user_page(document, user, plotlyjs=plotlyjs), encoding="utf-8")
        pages[slug] = page.name
        written.append(page)
    if plotlyjs == "directory":
        import plotly.offline

        (pages_dir / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    index = pages_dir / "index.html"
    index.write_text(render_index(document, pages), encoding="utf-8")
    written.append(index)
    return written


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
