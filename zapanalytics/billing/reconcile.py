"""Reconciliation: what the split allocated against what the owner was invoiced.

The supplier invoice and the grid (nettleie) invoice of a month are each compared with the
lines that reconcile against them (see :data:`zapanalytics.billing.split.LINES`); an invoice
not given is not compared (a grid-only invoice never meets the supplier lines). A
flat-price split is compared with the sum of the invoices given. The difference — the residual: losses in the
cables, other common use behind the meter, meter differences, fixed fees — is shown and
then shared:

``energy``  to the users in proportion to their energy that month (default);
``equal``   equally between the users who charged that month;
``common``  kept by the common meter (the users' statements do not change).

Shares are whole øre by the largest-remainder rule, and the residual's VAT is split off at
the month's VAT rate, so after the residual line users + common equal the invoices to the øre.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import tomllib
from pathlib import Path

import polars as pl

from zapanalytics.billing.money import allocate_ore, nok_to_ore, rate_basis_points, split_gross_ore
from zapanalytics.billing.split import LINE_SCHEMA, LINES, Split, ordered_lines

SHARE_POLICIES = ("energy", "equal", "common")
_INVOICE_SCHEMA = {"month": pl.String, "supplier_ore": pl.Int64, "grid_ore": pl.Int64}


class InvoiceError(ValueError):
    """An invoice file is missing, malformed or holds an impossible amount."""


def _amount(value: object, where: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvoiceError(f"{where}: {value!r} is not an amount")
    try:
        number = (
            float(str(value).replace(" ", "").replace(",", "."))
            if isinstance(value, str)
            else float(value)
        )
    except (TypeError, ValueError):
        raise InvoiceError(f"{where}: {value!r} is not an amount in NOK") from None
    if number != number or abs(number) > 1e9:
        raise InvoiceError(f"{where}: {value!r} is not a plausible amount in NOK")
    return nok_to_ore(number)


def _month(value: object, where: str) -> str:
    text = str(value or "").strip()
    parts = text.split("-")
    if (
        len(parts) != 2
        or not all(p.isdigit() for p in parts)
        or not 1 <= int(parts[1]) <= 12
        or len(parts[0]) != 4
    ):
        raise InvoiceError(f"{where}: month must be YYYY-MM, not {text!r}")
    return f"{int(parts[0]):04d}-{int(parts[1]):02d}"


def invoices_frame(rows: list[dict]) -> pl.DataFrame:
    """Invoice totals incl. VAT: ``month, supplier_nok, grid_nok`` dicts → an øre frame."""
    records = []
    for index, row in enumerate(rows, start=1):
        where = f"invoice row {index}"
        month = _month(row.get("month"), where)
        supplier = _amount(row.get("supplier_nok"), f"{where} ({month}) supplier_nok")
        grid = _amount(row.get("grid_nok"), f"{where} ({month}) grid_nok")
        if supplier is None and grid is None:
            raise InvoiceError(f"{where} ({month}): give supplier_nok, grid_nok or both")
        records.append({"month": month, "supplier_ore": supplier, "grid_ore": grid})
    frame = pl.DataFrame(records, schema=_INVOICE_SCHEMA)
    duplicated = frame.filter(pl.col("month").is_duplicated())["month"].unique().to_list()
    if duplicated:
        raise InvoiceError(f"invoice months given twice: {', '.join(sorted(duplicated))}")
    return frame


def read_invoices(path: str | Path) -> pl.DataFrame:
    """Read invoice totals from CSV (``month,supplier_nok,grid_nok``) or TOML (``[[invoice]]``).

    Amounts are NOK including VAT, as on the invoices.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8-sig")
    except FileNotFoundError:
        raise InvoiceError(f"no such invoice file: {path}") from None
    except UnicodeDecodeError:
        raise InvoiceError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise InvoiceError(f"cannot read {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvoiceError(f"{path}: not valid TOML: {exc}") from None
        rows = data.get("invoice")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InvoiceError(
                f"{path}: expected [[invoice]] tables with month, supplier_nok, grid_nok"
            )
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "month" not in reader.fieldnames:
            raise InvoiceError(f"{path}: expected a CSV header month,supplier_nok,grid_nok")
        rows = list(reader)
    if not rows:
        raise InvoiceError(f"{path} holds no invoices")
    return invoices_frame(rows)


@dataclasses.dataclass
class Reconciliation:
    """Allocated against invoiced, per month and invoice, and the residual's sharing.

    Attributes
    ----------
    summary : polars.DataFrame
        ``month, invoice, invoiced_ore, users_ore, common_ore, residual_ore`` per month and
        invoice (``supplier``, ``grid``, ``total``), all incl. VAT.
    shares : polars.DataFrame
        The residual lines added: ``month, user_id, line, label, invoice, quantity_kwh,
        amount_ex_vat_ore, vat_ore, amount_ore`` (``user_id`` null: kept by the common meter).
    policy : str
    split : Split
        The split with the residual lines added to ``lines`` and ``common``.
    """

    summary: pl.DataFrame
    shares: pl.DataFrame
    policy: str
    split: Split


def _allocated(lines: pl.DataFrame, column: str) -> pl.DataFrame:
    return (
        lines.group_by("month", "invoice")
        .agg(pl.col("amount_ore").sum().alias(column))
        .with_columns(pl.col(column).cast(pl.Int64))
    )


def reconcile(
    split: Split,
    invoices: pl.DataFrame,
    *,
    policy: str = "energy",
    vat_rates: dict[str, float] | None = None,
) -> Reconciliation:
    """Compare ``split`` with the invoices and share each month's residual.

    Parameters
    ----------
    split : Split
        A split of one or more months.
    invoices : polars.DataFrame
        From :func:`read_invoices` / :func:`invoices_frame` (``month, supplier_ore, grid_ore``).
    policy : {"energy", "equal", "common"}
        How the residual is shared (module docstring).
    vat_rates : dict, optional
        VAT rate per month for splitting the residual (default 0.25; 0 for exempt sites).

    Returns
    -------
    Reconciliation
    """
    if policy not in SHARE_POLICIES:
        raise ValueError(f"residual policy must be one of {SHARE_POLICIES}, not {policy!r}")
    months = sorted(set(split.lines["month"].to_list()) | set(split.common["month"].to_list()))
    invoices = invoices.filter(pl.col("month").is_in(months))
    missing = sorted(set(months) - set(invoices["month"].to_list()))
    if missing:
        raise InvoiceError(f"no invoice for {', '.join(missing)}")

    users = _allocated(split.lines, "users_ore")
    common = _allocated(split.common, "common_ore")
    summary_rows = []
    share_rows = []
    for invoice in invoices.iter_rows(named=True):
        month = invoice["month"]
        parts = {"supplier": invoice["supplier_ore"], "grid": invoice["grid_ore"]}
        month_lines = split.lines.filter(pl.col("month") == month)
        kinds = set(month_lines["invoice"].to_list()) | set(
            split.common.filter(pl.col("month") == month)["invoice"].to_list()
        )
        # Each invoice given is compared with its own lines only: a grid-only invoice with
        # the grid lines, a supplier-only one with the supplier lines. A flat price cannot
        # be told apart by invoice: everything is compared with the invoices given.
        given = {name: v for name, v in parts.items() if v is not None}
        compared = given if "total" not in kinds else {"total": sum(given.values())}
        residual_total = 0
        for name, invoiced in compared.items():
            if invoiced is None:
                continue
            picked = (
                (lambda f: f)
                if name == "total"
                else (lambda f, n=name: f.filter(pl.col("invoice") == n))
            )
            mine = picked(users.filter(pl.col("month") == month))["users_ore"].sum()
            theirs = picked(common.filter(pl.col("month") == month))["common_ore"].sum()
            residual = invoiced - mine - theirs
            residual_total += residual
            summary_rows.append(
                {
                    "month": month,
                    "invoice": name,
                    "invoiced_ore": invoiced,
                    "users_ore": mine,
                    "common_ore": theirs,
                    "residual_ore": residual,
                }
            )
        share_rows.extend(
            _share(month, residual_total, month_lines, policy, (vat_rates or {}).get(month, 0.25))
        )

    summary = pl.DataFrame(
        summary_rows,
        schema={
            "month": pl.String,
            "invoice": pl.String,
            "invoiced_ore": pl.Int64,
            "users_ore": pl.Int64,
            "common_ore": pl.Int64,
            "residual_ore": pl.Int64,
        },
    )
    shares = (
        ordered_lines(pl.DataFrame(share_rows, schema=LINE_SCHEMA))
        if share_rows
        else split.common.clear()
    )
    to_users = shares.filter(pl.col("user_id").is_not_null())
    kept = shares.filter(pl.col("user_id").is_null())
    updated = dataclasses.replace(
        split,
        lines=ordered_lines(pl.concat([split.lines, to_users], how="vertical")),
        common=pl.concat([split.common, kept], how="vertical").sort("month"),
    )
    return Reconciliation(summary, shares, policy, updated)


def _share(
    month: str, residual_ore: int, month_lines: pl.DataFrame, policy: str, vat_rate: float
) -> list[dict]:
    """Residual lines for one month: one per user, or one kept by the common meter."""
    if residual_ore == 0:
        return []
    energy_lines = month_lines.filter(pl.col("line").is_in(["flat_energy", "spot"]))
    per_user = (
        energy_lines.group_by("user_id")
        .agg(pl.col("quantity_kwh").sum())
        .sort("user_id", nulls_last=True)
    )
    per_user = per_user.filter(pl.col("quantity_kwh") > 0)
    label = LINES["residual"][0]
    if policy == "common" or per_user.height == 0:
        targets = [(None, 0.0, residual_ore)]
    else:
        weights = (
            per_user["quantity_kwh"].to_list() if policy == "energy" else [1.0] * per_user.height
        )
        amounts = allocate_ore(residual_ore, weights)
        targets = list(
            zip(
                per_user["user_id"].to_list(),
                per_user["quantity_kwh"].to_list(),
                amounts,
                strict=True,
            )
        )
    gross = pl.Series([amount for _, _, amount in targets], dtype=pl.Int64)
    net_expr, vat_expr = split_gross_ore(pl.col("gross"), pl.lit(rate_basis_points(vat_rate)))
    split = pl.DataFrame({"gross": gross}).select(net_expr.alias("net"), vat_expr.alias("vat"))
    return [
        {
            "month": month,
            "user_id": user,
            "line": "residual",
            "label": label if user is not None else f"{label} (kept by the common meter)",
            "invoice": "total",
            "quantity_kwh": energy,
            "amount_ex_vat_ore": net,
            "vat_ore": vat,
            "amount_ore": amount,
        }
        for (user, energy, amount), net, vat in zip(
            targets, split["net"], split["vat"], strict=True
        )
    ]
