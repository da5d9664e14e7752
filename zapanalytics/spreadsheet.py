"""Spreadsheet safety shared by every CSV/XLSX writer (statements, exports)."""

from __future__ import annotations

from typing import Any

#: Characters that make a spreadsheet read a cell as a formula (with full-width look-alikes).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def guard_formula(value: Any) -> Any:
    """Neutralise a text that a spreadsheet would run as a formula by prefixing ``'``.

    Leading spaces are looked through (``" =1+1"`` is guarded too). Non-text values pass
    unchanged, so negative numbers stay numbers.
    """
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
