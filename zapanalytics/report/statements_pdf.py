"""One PDF per user from a statement document: installation, period, lines with their rates,
the user's sessions, a small chart of energy per day, and the totals.

The PDF library is fpdf2: pure Python (with fonttools, defusedxml and Pillow, all wheels on
PyPI), so it installs from the registry alone on a fresh machine, with no system library
(WeasyPrint needs Pango, wkhtmltopdf a binary) and a fraction of ReportLab's weight. Its
built-in Helvetica covers Latin-1 (Æ Ø Å, é, ü); where a DejaVu Sans TTF is installed it is
embedded instead, so any name (Sámi ŋ, Polish ł) prints as written. Without it, characters
outside Latin-1 print as ``?``. The chart is drawn with fpdf2's own rectangles (no plotting
library, no image).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from zapanalytics.billing.statements import display_name
from zapanalytics.report.statement_text import TEXT, check_language, line_label, money, number, when
from zapanalytics.report.statements_files import StatementFile, user_stems
from zapanalytics.report.statements_html import unverified_statuses

#: Where a Unicode TTF is looked for (Debian/Ubuntu, Fedora, macOS with fonts installed).
_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/Library/Fonts"),
)
_INK = (29, 36, 51)
_MUTED = (91, 100, 114)
_BAR = (43, 108, 176)


def _unicode_font() -> tuple[Path, Path] | None:
    for folder in _FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


class _Statement(FPDF):
    def __init__(self, font: tuple[Path, Path] | None) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.set_margins(14, 14, 14)
        self.set_auto_page_break(auto=True, margin=14)
        if font is not None:
            self.add_font("Body", "", str(font[0]))
            self.add_font("Body", "B", str(font[1]))
            self.family_name, self.unicode = "Body", True
        else:
            self.family_name, self.unicode = "Helvetica", False

    def text_of(self, value: Any) -> str:
        text = "" if value is None else str(value)
        if self.unicode:
            return text
        text = text.replace("–", "-").replace("—", "-").replace("…", "...").replace("×", "x")
        return text.encode("latin-1", "replace").decode("latin-1")

    def style(self, size: float, bold: bool = False, colour: tuple[int, int, int] = _INK) -> None:
        self.set_font(self.family_name, "B" if bold else "", size)
        self.set_text_color(*colour)

    def line_of_text(self, text: str, size: float = 9, bold: bool = False, colour=_INK) -> None:
        self.style(size, bold, colour)
        self.multi_cell(0, size * 0.5, self.text_of(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _table(pdf: _Statement, head: list[str], rows: list[list[str]], widths, aligns) -> None:
    pdf.style(7.5)
    with pdf.table(
        col_widths=widths,
        text_align=aligns,
        line_height=4,
        padding=0.8,
        first_row_as_headings=True,
    ) as table:
        for values in [head, *rows]:
            row = table.row()
            for cell in values:
                row.cell(pdf.text_of(cell))


def _daily(rows: list[list[Any]]) -> list[tuple[str, float]]:
    days: dict[str, float] = defaultdict(float)
    for hour, energy, _cost in rows:
        days[str(hour)[:10]] += float(energy)
    return sorted(days.items())


def _chart(pdf: _Statement, rows: list[list[Any]], title: str) -> None:
    """Bars of energy per local day [kWh]."""
    days = _daily(rows)
    if not days:
        return
    width, height = pdf.w - pdf.l_margin - pdf.r_margin, 32.0
    if pdf.get_y() + height + 14 > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.line_of_text(title, 9, bold=True)
    top = pdf.get_y() + 1
    peak = max(energy for _, energy in days) or 1.0
    first = dt.date.fromisoformat(days[0][0])
    last = dt.date.fromisoformat(days[-1][0])
    span = max((last - first).days + 1, 1)
    slot = width / span
    pdf.set_draw_color(*_MUTED)
    pdf.line(pdf.l_margin, top + height, pdf.l_margin + width, top + height)
    pdf.set_fill_color(*_BAR)
    for day, energy in days:
        offset = (dt.date.fromisoformat(day) - first).days
        bar = height * energy / peak
        pdf.rect(
            pdf.l_margin + offset * slot + slot * 0.15,
            top + height - bar,
            slot * 0.7,
            bar,
            style="F",
        )
    pdf.style(6.5, colour=_MUTED)
    pdf.set_xy(pdf.l_margin, top - 1)
    pdf.cell(0, 3, pdf.text_of(f"{peak:.1f} kWh"))
    pdf.set_xy(pdf.l_margin, top + height + 0.5)
    pdf.cell(width / 2, 3, days[0][0])
    pdf.cell(width / 2, 3, days[-1][0], align="R")
    pdf.set_xy(pdf.l_margin, top + height + 5)


def render_pdf(document: dict[str, Any], user: dict[str, Any], *, lang: str | None = None) -> bytes:
    """One user's statement as PDF bytes."""
    lang = check_language(lang, document)
    t = TEXT[lang]
    pdf = _Statement(_unicode_font())
    name = display_name(user) if user["user_id"] is not None else t["guest"]
    installation = document.get("installation_name") or document.get("installation_id") or ""
    pdf.set_title(pdf.text_of(f"{t['title']} {document['month']} - {name}"))
    pdf.set_author(pdf.text_of(installation))
    stamp = (document.get("issued") or {}).get("issued_at")
    pdf.set_creation_date(
        dt.datetime.fromisoformat(stamp)
        if stamp
        else dt.datetime.fromisoformat(f"{document['month']}-01T00:00:00+00:00")
    )
    pdf.add_page()
    pdf.line_of_text(f"{t['title']} {document['month']}", 16, bold=True)
    pdf.ln(1)
    period = document.get("period") or {}
    site = document.get("site") or {}
    kind = site.get("customer_type") or "household"
    customer = t.get(kind, kind) + (f", {site.get('dwellings')}" if kind == "coop" else "")
    for label, value in (
        (t["recipient"], name + (f" <{user['user_email']}>" if user.get("user_email") else "")),
        (t["installation"], installation),
        (t["period"], f"{when(period.get('start'))} – {when(period.get('end'))}"),
        (t["customer"], customer),
        (t["method"], f"{document['method']} · NOK"),
    ):
        pdf.line_of_text(f"{label}: {value}", 9.5)
    pdf.ln(2)

    lines = user["lines"]
    rows = []
    for line in lines:
        rate = line.get("unit_rate_nok")
        rate_text = number(rate, lang, 4) if rate is not None else ""
        if rate_text and line.get("unit_rate_basis") == "weighted mean":
            rate_text += " ~"
        rows.append(
            [
                line_label(line, lang) + ("" if line.get("rate_verified") else " *"),
                number(line.get("quantity"), lang) if line.get("quantity") else "",
                line.get("unit") or "",
                rate_text,
                money(line["amount_ex_vat_nok"], lang),
                money(line["vat_nok"], lang),
                money(line["amount_nok"], lang),
                line.get("rate_valid_from") or "",
            ]
        )
    rows.append(
        [
            t["total"],
            number(user["energy_kwh"], lang),
            "kWh",
            "",
            money(user["cost_ex_vat_nok"], lang),
            money(user["vat_nok"], lang),
            money(user["cost_nok"], lang),
            "",
        ]
    )
    _table(
        pdf,
        [
            t["line"],
            t["quantity"],
            t["unit"],
            t["unit_rate"],
            t["ex_vat"],
            t["vat"],
            t["amount"],
            t["rate_from"],
        ],
        rows,
        (46, 17, 16, 20, 21, 18, 21, 23),
        ("LEFT", "RIGHT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "LEFT"),
    )
    pdf.ln(1)
    pdf.line_of_text(f"{t['total']}: {money(user['cost_nok'], lang)} NOK", 11, bold=True)
    pdf.ln(1)
    pdf.line_of_text(f"~ {t['weighted']}", 7, colour=_MUTED)
    for status in unverified_statuses(lines):
        pdf.line_of_text(t["unverified"].format(status=status), 7.5, colour=(160, 60, 20))
    sources = list(
        dict.fromkeys(
            f"{line_label(line, lang)}: {line['rate_source']}"
            for line in lines
            if line.get("rate_source")
        )
    )
    if sources:
        pdf.line_of_text(f"{t['rate_source']}:", 7.5, bold=True, colour=_MUTED)
        for source in sources:
            pdf.line_of_text(source, 7, colour=_MUTED)
    pdf.ln(2)

    pdf.line_of_text(t["sessions"], 11, bold=True)
    sessions = user.get("sessions") or []
    if sessions:
        _table(
            pdf,
            [t["start"], t["end"], t["charger"], t["energy"]],
            [
                [
                    when(s["start"]),
                    when(s["end"]),
                    s.get("charger_name") or "",
                    number(s["energy_kwh"], lang),
                ]
                for s in sessions
            ],
            (38, 38, 82, 24),
            ("LEFT", "LEFT", "LEFT", "RIGHT"),
        )
    else:
        pdf.line_of_text(t["no_sessions"], 9)
    pdf.ln(3)
    _chart(pdf, document.get("hourly", {}).get(user["user_id"] or "", []), t["chart"])
    notes = document.get("notes") or []
    if notes:
        pdf.ln(2)
        pdf.line_of_text(t["notes"], 9.5, bold=True)
        for note in notes:
            pdf.line_of_text(f"- {note}", 7.5, colour=_MUTED)
    issued = document.get("issued")
    pdf.ln(1)
    pdf.line_of_text(
        f"{t['rates']} {document['rates']['sha256'][:12]}. "
        + (
            t["issued"].format(
                when=str(issued["issued_at"])[:16].replace("T", " "), version=issued["version"]
            )
            if issued
            else t["preview"]
        ),
        7,
        colour=_MUTED,
    )
    return bytes(pdf.output())


def write_pdfs(
    document: dict[str, Any], folder: str | Path, *, lang: str | None = None
) -> list[StatementFile]:
    """One ``<YYYY-MM> <name>.pdf`` per user of ``document`` in ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stems = user_stems(document)
    written = []
    for user in document["users"]:
        path = out / f"{stems[user['user_id']]}.pdf"
        path.write_bytes(render_pdf(document, user, lang=lang))
        written.append(
            StatementFile(
                user_id=user["user_id"],
                user_name=display_name(user),
                user_email=user.get("user_email"),
                path=path,
                total_nok=user["cost_nok"],
                energy_kwh=user["energy_kwh"],
            )
        )
    return written
