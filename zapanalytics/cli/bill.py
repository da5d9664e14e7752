"""``zapanalytics bill``: split a month's charging cost per user, write and send statements."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError
from zapanalytics.cli.output import console, print_json
from zapanalytics.engines.cli import (
    DatasetOption,
    EngineOption,
    SparkMasterOption,
    run_engine_command,
)


class NothingToBill(UserError):
    """The month holds no charging: said so, exit code 1."""

    exit_code = 1


def _nok(value: float) -> str:
    return f"{value:,.2f}"


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _summary(document: dict, files: list[Path], *, shown_as_issued: bool) -> None:
    issued = document.get("issued")
    state = f"issued v{issued['version']} {issued['issued_at'][:10]}" if issued else "preview"
    table = Table(title=f"{document['month']} · {document['method']} · NOK · {state}")
    for column, justify in (
        (document.get("group_by", "user"), "left"),
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
        _say(
            f"capacity: peak {block['peak_kw']:.2f} kW → step {block['step']} "
            f"(from {block['step_from_kw']:g} kW), {block['capacity_nok']:,.2f} NOK/month excl. VAT"
        )
    reconciliation = document.get("reconciliation")
    if reconciliation:
        for row in reconciliation["invoices"]:
            _say(
                f"{row['invoice']} invoice {row['invoiced_nok']:,.2f}: users {row['users_nok']:,.2f}, "
                f"common {row['common_nok']:,.2f}, residual {row['residual_nok']:,.2f} "
                f"(shared: {reconciliation['policy']})"
            )
    for rate in document.get("rates", {}).get("unverified", []):
        _say(
            f"unverified rate ({rate['rate_status']}): {rate['line']} from {rate['rate_valid_from']}"
            f" — {rate['rate_source']}"
        )
    for note in document.get("notes", []):
        _say(f"note: {note}")
    if shown_as_issued:
        _say(
            f"note: {document['month']} ({document['method']}) was issued on {issued['issued_at'][:10]}"
            f" (version {issued['version']}) and is shown as issued; --reissue recomputes it."
        )
    for path in files[:2]:
        _say(f"wrote {path}")
    pdfs = [f for f in files if f.suffix == ".pdf"]
    if pdfs:
        _say(f"wrote {len(pdfs)} PDF statements, HTML pages and statements.csv in {pdfs[0].parent}")


def _not_applied(stored: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """The options given that an issued statement was not made with, as ``--name value``."""
    made = stored.get("parameters") or {}
    site = stored.get("site") or {}
    issued_with = {
        "--price": made.get("price_nok_per_kwh"),
        "--markup": made.get("markup_nok_per_kwh"),
        "--residual": made.get("residual"),
        "--group-by": made.get("group_by", "user"),
        "--customer": site.get("customer_type", "household"),
        "--dwellings": site.get("dwellings", 1),
        "--grid-company": site.get("grid_company"),
        "--county": site.get("county"),
        "--municipality": site.get("municipality"),
        "--price-area": site.get("price_area"),
        "--norgespris": site.get("norgespris"),
    }
    out = []
    for option, value in given.items():
        if value is None or value == ():
            continue
        if option in ("--tariff", "--invoice"):
            out.append(
                f"{option} {' '.join(str(v) for v in value) if isinstance(value, list) else value}"
            )
        elif issued_with.get(option) != value:
            out.append(f"{option} {value}")
    return out


@app.command()
def bill(
    method: Annotated[str, typer.Option("--method", help="flat | spot | full.")],
    db: Annotated[Path | None, typer.Option("--db", help="DuckDB store.")] = None,
    month: Annotated[
        str | None,
        typer.Option(
            "--month",
            help="Month to bill, YYYY-MM (installation's local time). Default: the last complete month.",
        ),
    ] = None,
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
        typer.Option("--out", help="Write PDF, HTML, CSV and XLSX statements here and issue them."),
    ] = None,
    installation: Annotated[
        str | None, typer.Option("--installation", help="Installation id.")
    ] = None,
    grid_company: Annotated[
        str | None, typer.Option("--grid-company", help="Grid tariff, e.g. elvia, tensio-ts.")
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
    customer: Annotated[
        str | None,
        typer.Option(
            "--customer",
            help="household | coop (a housing co-op's common meter) | business; stored with the installation.",
        ),
    ] = None,
    dwellings: Annotated[
        int | None,
        typer.Option(
            "--dwellings", help="Dwellings behind a co-op's common meter (strømstøtte cap)."
        ),
    ] = None,
    group_by: Annotated[
        str, typer.Option("--group-by", help="One statement per: user | charger | card (RFID tag).")
    ] = "user",
    lang: Annotated[
        str | None, typer.Option("--lang", help="nb | en (default nb for a Norwegian site).")
    ] = None,
    recipients: Annotated[
        Path | None,
        typer.Option("--recipients", help="CSV of user_id (or user_name) and email, for --send."),
    ] = None,
    send: Annotated[
        bool,
        typer.Option("--send", help="E-mail each user their PDF (SMTP from ZAPANALYTICS_SMTP_*)."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --send: write .eml files instead of sending.")
    ] = False,
    shared_js: Annotated[
        bool,
        typer.Option(
            "--shared-js/--inline-js",
            help="One plotly.min.js beside the HTML pages (default) or plotly.js in every page.",
        ),
    ] = True,
    reissue: Annotated[
        bool,
        typer.Option("--reissue", help="Recompute and issue a new version of an issued month."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the statements as one JSON object.")
    ] = False,
    dataset: DatasetOption = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = "local[*]",
) -> None:
    """Split a month's charging cost per user (flat, spot or full), write and send statements.

    An issued month is shown as issued: a later rate or data change never rewrites it
    (use --reissue for a new version); options it was not made with are named. Example:
    zapanalytics bill --db out/zap.duckdb --method full --grid-company elvia --customer coop --dwellings 40 --out out/bills --send
    """
    from zapanalytics.billing.monthly import (
        BillingError,
        NoSessionsError,
        bill_month,
        last_complete_month,
        resolve_installation,
        set_installation_settings,
    )
    from zapanalytics.billing.parties import GROUPS
    from zapanalytics.billing.rates import CUSTOMER_TYPES, RateTableError
    from zapanalytics.billing.reconcile import InvoiceError, read_invoices
    from zapanalytics.billing.split import METHODS, MissingPricesError
    from zapanalytics.billing.statements import issue, issued, public_document, statement_document
    from zapanalytics.report.statement_text import LANGUAGES
    from zapanalytics.report.statements_files import read_index, write_statements
    from zapanalytics.report.statements_mail import (
        MailError,
        SmtpSettings,
        apply_recipients,
        deliver,
        read_recipients,
    )
    from zapanalytics.store import StoreLockedError, open_store, read_only_store

    if month is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
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
    if customer is not None and customer not in CUSTOMER_TYPES:
        raise UserError(f"--customer must be one of {', '.join(CUSTOMER_TYPES)}, not {customer!r}")
    if dwellings is not None and not 1 <= dwellings <= 100_000:
        raise UserError(f"--dwellings must be between 1 and 100000, not {dwellings}")
    if dwellings is not None and customer not in (None, "coop"):
        raise UserError("--dwellings applies to a co-op's common meter (--customer coop) only")
    if group_by not in GROUPS:
        raise UserError(f"--group-by must be one of {', '.join(GROUPS)}, not {group_by!r}")
    if dataset is not None:  # a fleet: every installation (and month) unless filtered
        return run_engine_command(
            "bill", dataset=dataset, engine=engine, spark_master=spark_master,
            installation=installation, month=month, as_json=as_json,
            params={"method": method, "price_nok_per_kwh": price, "markup_nok_per_kwh": markup,
                    "tariff_files": [str(t) for t in tariff or ()], "grid_company": grid_company,
                    "group_by": group_by},
            unsupported={"--db": db, "--invoice": invoice, "--out": out, "--county": county,
                         "--municipality": municipality, "--price-area": price_area,
                         "--norgespris": norgespris, "--customer": customer,
                         "--dwellings": dwellings, "--reissue": reissue, "--send": send},
        )  # fmt: skip
    if db is None:
        raise UserError("give --db STORE (or --dataset DIR)")
    if lang is not None and lang not in LANGUAGES:
        raise UserError(f"--lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    if dry_run and not send:
        raise UserError("--dry-run goes with --send (it writes the messages instead of sending)")
    if send and out is None:
        raise UserError("--send needs --out (the PDFs it attaches are written there)")
    settings = None
    if send and not dry_run:
        try:
            settings = SmtpSettings.from_env()
        except MailError as exc:
            raise UserError(str(exc)) from None
    if not db.is_file():
        raise UserError(f"no store at {db}")
    saving = customer is not None or dwellings is not None
    try:
        con = open_store(db) if out is not None or saving else read_only_store(db)
    except StoreLockedError as exc:
        raise UserError(str(exc)) from None
    files: list[Path] = []
    delivery = None
    not_applied: list[str] = []
    try:
        chosen = resolve_installation(con, installation)
        month = month or last_complete_month(chosen.get("timezone") or "Europe/Oslo")
        stored = None if reissue else issued(con, chosen.get("installation_id"), month, method)
        if stored is not None:
            document = stored
            not_applied = _not_applied(
                stored,
                {
                    "--price": price,
                    "--markup": markup,
                    "--tariff": [str(t) for t in tariff] if tariff else None,
                    "--invoice": str(invoice) if invoice else None,
                    "--residual": residual if invoice is not None else None,
                    "--group-by": group_by if group_by != "user" else None,
                    "--customer": customer,
                    "--dwellings": dwellings,
                    "--grid-company": grid_company,
                    "--county": county,
                    "--municipality": municipality,
                    "--price-area": price_area,
                    "--norgespris": norgespris,
                },
            )
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
                customer_type=customer,
                dwellings=dwellings,
                group_by=group_by,
                invoices=invoices,
                residual=residual,
            )
            document = statement_document(result)
            if out is not None:
                document = issue(con, document)
        if saving and chosen.get("installation_id"):
            # Owner facts no source reports: kept with the installation for the next bill,
            # once they have made a bill.
            set_installation_settings(
                con,
                chosen["installation_id"],
                **({"customer_type": customer} if customer is not None else {}),
                **({"dwellings": dwellings} if dwellings is not None else {}),
            )
        if recipients is not None:
            document = apply_recipients(document, read_recipients(recipients))
        if out is not None:
            files = write_statements(
                document, out, lang=lang, plotlyjs="directory" if shared_js else True
            )
        if send:
            from zapanalytics.report.statements_files import StatementFile

            folder = next(f.parent for f in files if f.name == "statements.csv")
            pdfs = [
                StatementFile(
                    user_id=row["user_id"] or None,
                    user_name=row["user_name"],
                    user_email=row["email"] or None,
                    path=folder / row["file"],
                    total_nok=float(row["total_nok"]),
                    energy_kwh=float(row["energy_kwh"]),
                )
                for row in read_index(folder / "statements.csv")
            ]
            delivery = deliver(
                document,
                pdfs,
                settings=settings,
                dry_run_dir=folder / "outbox" if dry_run else None,
                lang=lang,
            )
    except NoSessionsError as exc:
        raise NothingToBill(str(exc)) from None
    except (BillingError, MissingPricesError, RateTableError, InvoiceError, MailError) as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:  # the split's own checks: VAT, tariff periods, window
        raise UserError(f"cannot bill {month}: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot write statements: {exc.strerror or exc}") from None
    finally:
        con.close()
    if as_json:
        payload = public_document(document)
        if not_applied:
            payload = {**payload, "not_applied": not_applied}
        if delivery is not None:
            payload = {**payload, "delivery": delivery.as_dict()}
        print_json(payload)
        return
    _summary(document, files, shown_as_issued=stored is not None)
    if not_applied:
        _say(
            f"not applied to the issued statement: {', '.join(not_applied)} (--reissue applies them)"
        )
    if delivery is not None:
        if delivery.written:
            _say(f"dry run: wrote {len(delivery.written)} messages in {delivery.written[0].parent}")
        else:
            _say(f"sent {len(delivery.sent)} statements by e-mail")
        for name in delivery.skipped:
            _say(f"not sent: no e-mail address for {name}")
