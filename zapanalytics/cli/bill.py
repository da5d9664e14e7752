"""``zapanalytics bill``: split a month's charging cost per user and write statements."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, print_json


def _nok(value: float) -> str:
    return f"{value:,.2f}"


def _summary(document: dict, files: list[Path], *, shown_as_issued: bool) -> None:
    issued = document.get("issued")
    state = f"issued v{issued['version']} {issued['issued_at'][:10]}" if issued else "preview"
    table = Table(title=f"{document['month']} · {document['method']} · NOK · {state}")
    for column, justify in (
        ("user", "left"),
        ("kWh", "right"),
        ("excl. VAT", "right"),
        ("VAT", "right"),
        ("total", "right"),
    ):
        table.add_column(column, justify=justify)
    for user in document["users"]:
        name = user["user_name"] or user["user_id"] or "(no user)"
        table.add_row(
            Text(name),  # a name is data, never rich markup: "[/x]" must print as written
            f"{user['energy_kwh']:,.3f}",
            _nok(user["cost_ex_vat_nok"]),
            _nok(user["vat_nok"]),
            _nok(user["cost_nok"]),
        )
    table.add_section()
    table.add_row(
        "users",
        f"{document['total_energy_kwh']:,.3f}",
        _nok(sum(u["cost_ex_vat_nok"] for u in document["users"])),
        _nok(sum(u["vat_nok"] for u in document["users"])),
        _nok(document["total_cost_nok"]),
    )
    common = document["common"]
    if any(line["amount_nok"] for line in common["lines"]):
        table.add_row(
            "common meter",
            "",
            _nok(common["cost_ex_vat_nok"]),
            _nok(common["vat_nok"]),
            _nok(common["cost_nok"]),
        )
    console.print(table)
    for block in document.get("capacity", []):
        console.print(
            f"capacity: peak {block['peak_kw']:.2f} kW → step {block['step']} "
            f"(from {block['step_from_kw']:g} kW), {block['capacity_nok']:,.2f} NOK/month excl. VAT",
            markup=False,
            highlight=False,
        )
    reconciliation = document.get("reconciliation")
    if reconciliation:
        for row in reconciliation["invoices"]:
            console.print(
                f"{row['invoice']} invoice {row['invoiced_nok']:,.2f}: users {row['users_nok']:,.2f}, "
                f"common {row['common_nok']:,.2f}, residual {row['residual_nok']:,.2f} "
                f"(shared: {reconciliation['policy']})",
                markup=False,
                highlight=False,
            )
    for note in document.get("notes", []):
        console.print(f"note: {note}", markup=False, highlight=False)
    if shown_as_issued:
        console.print(
            f"note: {document['month']} ({document['method']}) was issued on {issued['issued_at'][:10]}"
            f" (version {issued['version']}) and is shown as issued; --reissue recomputes it.",
            markup=False,
            highlight=False,
        )
    for path in files[:2]:
        console.print(f"wrote {path}", markup=False, highlight=False)
    if len(files) > 2:
        pages = sum(1 for f in files[2:] if f.suffix == ".html" and f.name != "index.html")
        console.print(
            f"wrote {pages} user pages and index.html in {files[2].parent}",
            markup=False,
            highlight=False,
        )


@app.command()
def bill(
    db: Annotated[Path, typer.Option("--db", help="DuckDB store.")],
    month: Annotated[
        str, typer.Option("--month", help="Month to bill, YYYY-MM (installation's local time).")
    ],
    method: Annotated[str, typer.Option("--method", help="flat | spot | full.")],
    price: Annotated[
        float | None, typer.Option("--price", help="Flat price, NOK/kWh incl. VAT (flat).")
    ] = None,
    markup: Annotated[
        float | None,
        typer.Option("--markup", help="Supplier markup, NOK/kWh excl. VAT (spot, full)."),
    ] = None,
    tariff: Annotated[
        list[Path] | None,
        typer.Option("--tariff", help="Rate-table TOML over the shipped ones (repeatable)."),
    ] = None,
    invoice: Annotated[
        Path | None,
        typer.Option("--invoice", help="Invoice totals (CSV month,supplier_nok,grid_nok or TOML)."),
    ] = None,
    residual: Annotated[
        str,
        typer.Option("--residual", help="Share the invoice residual by: energy | equal | common."),
    ] = "energy",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write CSV, XLSX and HTML statements here and issue them."),
    ] = None,
    installation: Annotated[
        str | None, typer.Option("--installation", help="Installation id.")
    ] = None,
    grid_company: Annotated[
        str | None, typer.Option("--grid-company", help="Grid tariff, e.g. elvia.")
    ] = None,
    county: Annotated[
        str | None, typer.Option("--county", help="County of the metering point (VAT).")
    ] = None,
    municipality: Annotated[
        str | None, typer.Option("--municipality", help="Municipality (elavgift exemption).")
    ] = None,
    price_area: Annotated[str | None, typer.Option("--price-area", help="NO1..NO5.")] = None,
    norgespris: Annotated[
        bool | None,
        typer.Option("--norgespris/--no-norgespris", help="The metering point is on Norgespris."),
    ] = None,
    shared_js: Annotated[
        bool,
        typer.Option(
            "--shared-js", help="One plotly.min.js beside the HTML pages instead of one per page."
        ),
    ] = False,
    reissue: Annotated[
        bool,
        typer.Option("--reissue", help="Recompute and issue a new version of an issued month."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the statements as one JSON object.")
    ] = False,
) -> None:
    """Split a month's charging cost per user (flat, spot or full) and write statements.

    An issued month is shown as issued: a later rate or data change never rewrites it
    (use --reissue for a new version). Example:
    zapanalytics bill --db out/zap.duckdb --month 2025-10 --method full --grid-company elvia --out out/bills
    """
    from zapanalytics.billing.monthly import BillingError, bill_month, resolve_installation
    from zapanalytics.billing.rates import RateTableError
    from zapanalytics.billing.reconcile import InvoiceError, read_invoices
    from zapanalytics.billing.split import METHODS, MissingPricesError
    from zapanalytics.billing.statements import (
        issue,
        issued,
        public_document,
        statement_document,
        write_statements,
    )
    from zapanalytics.store import StoreLockedError, open_store, read_only_store

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise UserError(f"--month must be YYYY-MM, not {month!r}")
    if method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if method == "flat" and price is None:
        raise UserError("--method flat needs --price (NOK/kWh incl. VAT)")
    if price is not None and not 0 <= price <= 100:
        raise UserError(f"--price must be between 0 and 100 NOK/kWh, not {price}")
    if markup is not None and not -10 <= markup <= 10:
        raise UserError(f"--markup must be between -10 and 10 NOK/kWh, not {markup}")
    if residual not in ("energy", "equal", "common"):
        raise UserError(f"--residual must be energy, equal or common, not {residual!r}")
    if not db.is_file():
        raise UserError(f"no store at {db}")
    try:
        con = open_store(db) if out is not None else read_only_store(db)
    except StoreLockedError as exc:
        raise UserError(str(exc)) from None
    files: list[Path] = []
    try:
        stored = None
        if not reissue:
            chosen = resolve_installation(con, installation)
            stored = issued(con, chosen.get("installation_id"), month, method)
        if stored is not None:
            document = stored
        else:
            invoices = read_invoices(invoice) if invoice is not None else None
            result = bill_month(
                con,
                month,
                method,
                price_nok_per_kwh=price,
                markup_nok_per_kwh=markup,
                tariff_files=tariff or (),
                installation_id=installation,
                county=county,
                municipality=municipality,
                grid_company=grid_company,
                price_area=price_area,
                norgespris=norgespris,
                invoices=invoices,
                residual=residual,
            )
            document = statement_document(result)
            if out is not None:
                document = issue(con, document)
        if out is not None:
            files = write_statements(document, out, plotlyjs="directory" if shared_js else True)
    except (BillingError, MissingPricesError, RateTableError, InvoiceError) as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:  # the split's own checks: VAT, tariff periods, window
        raise UserError(f"cannot bill {month}: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot write statements: {exc.strerror or exc}") from None
    finally:
        con.close()
    if as_json:
        print_json(public_document(document))
    else:
        _summary(document, files, shown_as_issued=stored is not None)
