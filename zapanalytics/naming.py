"""One display name per charger, the same in every table, finding, chart and legend.

People know a charger by the name on its parking space and, when they call the installer,
by the serial on its label: ``Plass 03 (ZPR123456)``. Cloud UUIDs and OCPP ids are for
machines; they appear only where nothing else is known.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

__all__ = ["charger_display_name", "charger_names", "named_record", "with_charger_names"]


def charger_display_name(
    name: str | None, serial: str | None, charger_id: str | None = None
) -> str:
    """``name (serial)``; the name or the serial alone when only one is known (or both
    are the same), else the charger id, else ``"(unknown charger)"``.

    Examples
    --------
    >>> charger_display_name("Plass 03", "ZPR123456")
    'Plass 03 (ZPR123456)'
    >>> charger_display_name(None, "ZPR123456", "2bdb103a-…")
    'ZPR123456'
    """
    name = (name or "").strip() or None
    serial = (serial or "").strip() or None
    if name and serial and name != serial:
        return f"{name} ({serial})"
    return name or serial or charger_id or "(unknown charger)"


def charger_names(chargers: pl.DataFrame | None) -> dict[str, str]:
    """Display names by ``charger_id`` from a ``chargers`` table (``name``, ``device_id``)."""
    if chargers is None or chargers.is_empty() or "charger_id" not in chargers.columns:
        return {}
    names = chargers["name"].to_list() if "name" in chargers.columns else [None] * chargers.height
    serials = (
        chargers["device_id"].to_list() if "device_id" in chargers.columns else [None] * chargers.height
    )
    return {
        charger_id: charger_display_name(name, serial, charger_id)
        for charger_id, name, serial in zip(chargers["charger_id"].to_list(), names, serials, strict=True)
        if charger_id is not None
    }


def with_charger_names(
    frame: pl.DataFrame,
    names: Mapping[str, str] | pl.DataFrame | None,
    *,
    id_column: str = "charger_id",
    name_column: str = "charger_name",
) -> pl.DataFrame:
    """``frame`` with ``name_column`` right after ``id_column``: each charger's display
    name (its id where the charger is unknown; null where the id is null)."""
    if id_column not in frame.columns:
        return frame
    lookup = charger_names(names) if isinstance(names, pl.DataFrame) else dict(names or {})
    named = pl.col(id_column).replace_strict(lookup, default=pl.col(id_column), return_dtype=pl.String)
    columns = [c for c in frame.columns if c != name_column]
    position = columns.index(id_column) + 1
    order = [*columns[:position], name_column, *columns[position:]]
    return frame.with_columns(named.alias(name_column)).select(order)


def named_record(record: dict, names: Mapping[str, str], *, id_key: str = "charger_id") -> dict:
    """A copy of ``record`` with ``charger_name`` right after ``charger_id`` (JSON output)."""
    out: dict = {}
    for key, value in record.items():
        if key == "charger_name":
            continue
        out[key] = value
        if key == id_key:
            out["charger_name"] = None if value is None else names.get(value, value)
    return out
