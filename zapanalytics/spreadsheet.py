"""Spreadsheet safety shared by every CSV/XLSX writer (statements, exports)."""

from __future__ import annotations

import unicodedata
from typing import Any

#: Characters that make a spreadsheet read a cell as a formula (with full-width and small
#: look-alikes), and the control characters a cell must not start with.
FORMULA_PREFIXES = (
    "=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠", "﹦", "﹢", "﹣", "﹫",
)
#: Unicode categories skipped as "leading space": every space separator (U+0020, U+00A0,
#: U+3000, U+2000–U+200A, …), line and paragraph separators, format characters (BOM U+FEFF,
#: zero-width space U+200B and joiners, U+2060) and control characters (tabs, CR/LF, U+0085).
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf", "Cc"})


def _leading_blank(character: str) -> bool:
    return character.isspace() or unicodedata.category(character) in _INVISIBLE_CATEGORIES


def guard_formula(value: Any) -> Any:
    """Neutralise a text that a spreadsheet would run as a formula by prefixing ``'``.

    Leading blanks of every Unicode kind are looked through (``"\\u00a0=1+1"``,
    ``"\\u3000=1+1"``, ``"\\ufeff=1+1"`` are guarded too), and a text that starts with a tab
    or line break is guarded whatever follows. Non-text values pass unchanged, so negative
    numbers stay numbers.
    """
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    position = 0
    while position < len(value) and _leading_blank(value[position]):
        position += 1
    if value[position:].startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
