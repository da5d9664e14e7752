"""The words on a statement, in Bokmål and English, and the number and date formats.

Line codes (:data:`zapanalytics.billing.split.LINES`) and fixed phrases are translated here;
user names, charger names and rate sources are data and stay as the source wrote them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

LANGUAGES = ("nb", "en")

LINE_LABELS: dict[str, dict[str, str]] = {
    "nb": {
        "flat_energy": "Energi til fastpris",
        "spot": "Spotpris (strøm)",
        "markup": "Påslag (strømleverandør)",
        "grid_energy": "Nettleie, energiledd",
        "elavgift": "Elavgift (forbruksavgift)",
        "enova": "Enova-påslag",
        "stromstotte": "Strømstøtte",
        "norgespris": "Norgespris, oppgjør",
        "capacity": "Kapasitetsledd (andel av topptimene)",
        "enova_yearly": "Enova-påslag (per målepunkt og år)",
        "rounding": "Øreavrunding (mva per linje)",
        "residual": "Avregning mot faktura",
    },
    "en": {
        "flat_energy": "Energy at the flat price",
        "spot": "Spot energy",
        "markup": "Supplier markup",
        "grid_energy": "Grid energy charge",
        "elavgift": "Electricity tax (elavgift)",
        "enova": "Enova fee",
        "stromstotte": "Strømstøtte (subsidy)",
        "norgespris": "Norgespris settlement",
        "capacity": "Capacity charge (share of the peak hours)",
        "enova_yearly": "Enova fee (per metering point and year)",
        "rounding": "Rounding residue (per-line VAT)",
        "residual": "Reconciliation residual",
    },
}

TEXT: dict[str, dict[str, str]] = {
    "nb": {
        "title": "Ladeoppgjør",
        "installation": "Anlegg",
        "period": "Periode",
        "customer": "Kundetype",
        "method": "Metode",
        "recipient": "Til",
        "line": "Linje",
        "quantity": "Mengde",
        "unit": "Enhet",
        "unit_rate": "Sats [NOK]",
        "ex_vat": "Eks. mva [NOK]",
        "vat": "Mva [NOK]",
        "amount": "Beløp [NOK]",
        "rate_from": "Sats fra",
        "rate_source": "Kilde",
        "total": "Sum",
        "sessions": "Ladeøkter",
        "start": "Start",
        "end": "Slutt",
        "charger": "Lader",
        "energy": "kWh",
        "chart": "Energi per dag [kWh]",
        "notes": "Merknader",
        "weighted": "vektet snitt",
        "unverified": "* Satsen er ikke bekreftet mot primærkilde (status {status}); kontroller før utsending.",
        "no_sessions": "Ingen ladeøkter.",
        "common": "Fellesmåler",
        "guest": "(uten bruker)",
        "issued": "Utstedt {when} UTC, versjon {version}.",
        "preview": "Ikke utstedt (forhåndsvisning).",
        "rates": "Satstabeller",
        "statements": "Ladeoppgjør",
        "user": "Bruker",
        "household": "husholdning",
        "coop": "borettslag/sameie (fellesmåler)",
        "business": "næring",
        "email_subject": "Ladeoppgjør {month} – {installation}",
        "email_body": (
            "Hei {name},\n\nVedlagt er ladeoppgjøret ditt for {month} ({installation}).\n"
            "Sum: {total} NOK inkl. mva.\n\nVennlig hilsen\nstyret\n"
        ),
    },
    "en": {
        "title": "Charging statement",
        "installation": "Installation",
        "period": "Period",
        "customer": "Customer type",
        "method": "Method",
        "recipient": "To",
        "line": "Line",
        "quantity": "Quantity",
        "unit": "Unit",
        "unit_rate": "Rate [NOK]",
        "ex_vat": "Excl. VAT [NOK]",
        "vat": "VAT [NOK]",
        "amount": "Amount [NOK]",
        "rate_from": "Rate from",
        "rate_source": "Source",
        "total": "Total",
        "sessions": "Sessions",
        "start": "Start",
        "end": "End",
        "charger": "Charger",
        "energy": "kWh",
        "chart": "Energy per day [kWh]",
        "notes": "Notes",
        "weighted": "weighted mean",
        "unverified": "* Rate not confirmed by a primary source (status {status}); check before sending.",
        "no_sessions": "No sessions.",
        "common": "Common meter",
        "guest": "(no user)",
        "issued": "Issued {when} UTC, version {version}.",
        "preview": "Not issued (preview).",
        "rates": "Rate tables",
        "statements": "Statements",
        "user": "User",
        "household": "household",
        "coop": "housing co-op (common meter)",
        "business": "business",
        "email_subject": "Charging statement {month} – {installation}",
        "email_body": (
            "Hello {name},\n\nAttached is your charging statement for {month} ({installation}).\n"
            "Total: {total} NOK incl. VAT.\n\nKind regards\nthe board\n"
        ),
    },
}


def default_language(document: dict[str, Any]) -> str:
    """Bokmål for a Norwegian site (a Norwegian price area or zone), else English."""
    site = document.get("site") or {}
    area = str(site.get("price_area") or "")
    return "nb" if area.startswith("NO") or site.get("timezone") == "Europe/Oslo" else "en"


def check_language(lang: str | None, document: dict[str, Any]) -> str:
    """``lang`` if known, the document's default when None; ValueError otherwise."""
    if lang is None:
        return default_language(document)
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    return lang


def money(value: float | None, lang: str) -> str:
    """``1234.5`` → ``1 234,50`` (nb) or ``1,234.50`` (en)."""
    if value is None:
        return ""
    text = f"{value:,.2f}"
    return text.replace(",", " ").replace(".", ",") if lang == "nb" else text


def number(value: float | None, lang: str, decimals: int = 3) -> str:
    """A quantity with ``decimals`` decimals in the language's format."""
    if value is None:
        return ""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", " ").replace(".", ",") if lang == "nb" else text


def when(iso: str | None) -> str:
    """``2026-03-29T02:30+02:00`` → ``2026-03-29 02:30`` (local time as stored)."""
    if not iso:
        return ""
    return dt.datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


def line_label(line: dict[str, Any], lang: str) -> str:
    """The translated label of a statement line (its stored label where there is none)."""
    return LINE_LABELS[lang].get(line["line"], line["label"])
