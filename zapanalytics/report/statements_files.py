"""Statement files: names safe on every file system, the files of a month, the mail-merge index.

:func:`write_statements` writes, from one statement document, the CSV and XLSX of every line
(:mod:`zapanalytics.billing.statements`), one HTML page and one PDF per user named
``<YYYY-MM> <user name>``, an HTML index, and ``statements.csv``: one row per PDF with the
user, the e-mail address where the source gives one, the file and the total, for a mail merge
or for ``bill --send``.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import unicodedata
from pathlib import Path
from typing import Any

from zapanalytics.billing.statements import display_name, write_csv, write_xlsx
from zapanalytics.spreadsheet import guard_formula

#: Names Windows refuses as a file stem, whatever the extension.
_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(10)),
    *(f"LPT{i}" for i in range(10)),
}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
#: Bytes left for the name part: most file systems allow 255 bytes per name.
_MAX_NAME_BYTES = 150


def safe_stem(month: str, name: str, taken: set[str] | None = None) -> str:
    """``<YYYY-MM> <name>``, safe as a file name on Linux, macOS and Windows.

    Path separators, control and reserved characters become spaces, runs of spaces one
    space, leading and trailing dots and spaces go, letters such as Æ Ø Å stay (NFC). A
    stem already in ``taken`` (compared case-insensitively, as macOS and Windows do) gets
    `` (2)``, `` (3)``…; the chosen stem is added to ``taken``.
    """
    text = _UNSAFE.sub(" ", unicodedata.normalize("NFC", name))
    text = " ".join(text.split()).strip(" .")
    while len(text.encode("utf-8")) > _MAX_NAME_BYTES:
        text = text[:-1]
    text = text.rstrip(" .") or "user"
    if text.upper() in _RESERVED:
        text = f"_{text}"
    stem = f"{month} {text}"
    if taken is not None:
        candidate, counter = stem, 1
        while candidate.casefold() in taken:
            counter += 1
            candidate = f"{stem} ({counter})"
        taken.add(candidate.casefold())
        stem = candidate
    return stem


@dataclasses.dataclass(frozen=True)
class StatementFile:
    """One user's statement file and what a mail merge needs about it."""

    user_id: str | None
    user_name: str
    user_email: str | None
    path: Path
    total_nok: float
    energy_kwh: float


def user_stems(document: dict[str, Any]) -> dict[str | None, str]:
    """The file stem of every user of ``document`` (stable: users in document order)."""
    taken: set[str] = set()
    return {
        user["user_id"]: safe_stem(document["month"], display_name(user), taken)
        for user in document["users"]
    }


def write_index(files: list[StatementFile], path: str | Path) -> Path:
    """``statements.csv``: ``user_id, user_name, email, file, total_nok, energy_kwh`` (UTF-8,
    text cells guarded against formulas; ``file`` relative to the CSV)."""
    target = Path(path)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "user_name", "email", "file", "total_nok", "energy_kwh"])
        for item in files:
            writer.writerow(
                [
                    guard_formula(v)
                    for v in (
                        item.user_id or "",
                        item.user_name,
                        item.user_email or "",
                        item.path.name,
                        f"{item.total_nok:.2f}",
                        f"{item.energy_kwh:.3f}",
                    )
                ]
            )
    return target


def read_index(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``statements.csv``."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_statements(
    document: dict[str, Any],
    out_dir: str | Path,
    *,
    lang: str | None = None,
    plotlyjs: str | bool = True,
) -> list[Path]:
    """Write every statement file of ``document`` under ``out_dir``.

    ``out_dir`` gets ``statements_<month>_<method>.csv`` and ``.xlsx`` (every line); the
    folder ``statements_<month>_<method>/`` gets one ``<YYYY-MM> <name>.pdf`` and ``.html``
    per user, ``index.html`` and ``statements.csv``.

    Parameters
    ----------
    document : dict
        From :func:`zapanalytics.billing.statements.statement_document` (or as issued).
    out_dir : path
    lang : {"nb", "en"}, optional
        Default: Bokmål for a Norwegian site.
    plotlyjs : bool or "directory"
        ``True`` embeds plotly.js in every HTML page (works alone, offline);
        ``"directory"`` writes one shared ``plotly.min.js`` beside them.

    Returns
    -------
    list of Path
        CSV, XLSX, then the PDFs, the HTML pages, ``index.html`` and ``statements.csv``.
    """
    from zapanalytics.report.statements_html import write_html
    from zapanalytics.report.statements_pdf import write_pdfs

    out = Path(out_dir)
    stem = f"statements_{document['month']}_{document['method']}"
    folder = out / stem
    folder.mkdir(parents=True, exist_ok=True)
    written = [write_csv(document, out / f"{stem}.csv"), write_xlsx(document, out / f"{stem}.xlsx")]
    pdfs = write_pdfs(document, folder, lang=lang)
    written.extend(item.path for item in pdfs)
    written.extend(write_html(document, folder, lang=lang, plotlyjs=plotlyjs))
    written.append(write_index(pdfs, folder / "statements.csv"))
    return written
