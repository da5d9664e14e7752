"""Which groups a run has and which partitions each group reads: shared by both engines.

Both engines form their groups from the dataset's manifest with these functions, so the
local loop and the Spark job hand every kernel the same rows (in some order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from zapanalytics.dataset import NO_INSTALLATION, UNDATED, DatasetError
from zapanalytics.engines.kernels import Kernel, TableInput

__all__ = ["RunScope", "input_months", "run_scope", "shift_month"]


def shift_month(month: str, offset: int) -> str:
    """``YYYY-MM`` moved by ``offset`` months."""
    year, number = (int(part) for part in month.split("-"))
    index = year * 12 + (number - 1) + offset
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _is_month(value: str) -> bool:
    return len(value) == 7 and value[4] == "-" and value[:4].isdigit() and value[5:].isdigit()


@dataclass(frozen=True)
class RunScope:
    """The groups of one run.

    Attributes
    ----------
    installations : tuple of str
        Installations in the run (those the dataset's ``installations`` table holds).
    month : str or None
        The ``--month`` filter.
    targets : tuple of (installation, month)
        For kernels grouped by installation and month: every group.
    price_areas : dict
        Each installation's ``price_area`` (prices join on it).
    """

    installations: tuple[str, ...]
    month: str | None
    targets: tuple[tuple[str, str], ...]
    price_areas: dict[str, str | None]


def _partitions(manifest: dict[str, Any], table: str) -> list[dict]:
    entry = manifest["tables"].get(table)
    if entry is None:
        raise DatasetError(f"the dataset has no table {table!r}; run export --dataset again")
    return list(entry["partitions"].values())


def run_scope(
    manifest: dict[str, Any],
    kernel: Kernel,
    *,
    installations: Iterable[str] | None = None,
    month: str | None = None,
    price_areas: dict[str, str | None] | None = None,
) -> RunScope:
    """The installations (and, for a month kernel, the installation-months) of a run.

    A month kernel without ``month`` gets every month in which the installation has
    canonical sessions.
    """
    known = sorted(
        {p["installation"] for p in _partitions(manifest, "installations")} - {NO_INSTALLATION}
    )
    if installations is not None:
        wanted = set(installations)
        missing = sorted(wanted - set(known))
        if missing:
            raise DatasetError(f"no installation {missing[0]!r} in the dataset")
        known = [i for i in known if i in wanted]
    targets: list[tuple[str, str]] = []
    if kernel.group_by == "installation_month":
        if month is not None:
            targets = [(i, month) for i in known]
        else:
            chosen = set(known)
            targets = sorted(
                {
                    (p["installation"], p["month"])
                    for p in _partitions(manifest, "canonical_sessions")
                    if p["installation"] in chosen and _is_month(p["month"])
                }
            )
    return RunScope(tuple(known), month, tuple(targets), dict(price_areas or {}))


def input_months(source: TableInput, group_month: str | None) -> set[str] | None:
    """Partition months one input reads for a group (None: every month).

    With a month (the group's, or the ``--month`` filter), an input reads that month and
    the neighbours its ``month_offsets`` name; undated tables are always read whole.
    """
    if group_month is None:
        return None
    offsets: Sequence[int] = source.month_offsets if source.month_offsets is not None else (0,)
    return {shift_month(group_month, o) for o in offsets} | {UNDATED}
