"""The local engine: a loop over the dataset's groups, one kernel call each, on this machine.

Each group reads only its own partitions (an installation's months), so memory holds one
group at a time whatever the size of the fleet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from zapanalytics.dataset import NO_INSTALLATION, read_manifest, read_partitions
from zapanalytics.engines.kernels import KERNELS, RESULT_SCHEMA, Kernel, TableInput
from zapanalytics.engines.plan import input_months, run_scope

__all__ = ["installation_price_areas", "run_local"]


def installation_price_areas(
    dataset: str | Path, manifest: dict[str, Any]
) -> dict[str, str | None]:
    """Each installation's ``price_area`` as the dataset holds it."""
    rows = read_partitions(dataset, "installations", manifest=manifest)
    return dict(
        zip(
            rows.column("installation").to_pylist(),
            rows.column("price_area").to_pylist(),
            strict=True,
        )
    )


def _keep(table: pa.Table, source: TableInput, price_area: str | None) -> pa.Table:
    for column, value in source.where:
        table = table.filter(pc.fill_null(pc.equal(table.column(column), value), False))
    if source.by_price_area:
        if price_area is None:
            return table.slice(0, 0)
        table = table.filter(pc.fill_null(pc.equal(table.column("price_area"), price_area), False))
    return table


def _inputs(
    dataset: Path,
    manifest: dict[str, Any],
    kernel: Kernel,
    installation: str,
    month: str | None,
    price_area: str | None,
) -> dict[str, pa.Table]:
    inputs = {}
    for source in kernel.inputs:
        owner = NO_INSTALLATION if source.by_price_area else installation
        table = read_partitions(
            dataset,
            source.table,
            installations=[owner],
            months=input_months(source, month),
            manifest=manifest,
        )
        inputs[source.table] = _keep(table, source, price_area)
    return inputs


def _by_charger(inputs: Mapping[str, pa.Table]) -> dict[str, dict[str, pa.Table]]:
    charger_ids = set()
    for table in inputs.values():
        charger_ids |= {c for c in table.column("charger_id").to_pylist() if c is not None}
    return {
        charger_id: {
            name: table.filter(
                pc.fill_null(pc.equal(table.column("charger_id"), charger_id), False)
            )
            for name, table in inputs.items()
        }
        for charger_id in sorted(charger_ids)
    }


def run_local(
    dataset: str | Path,
    kernel_name: str,
    *,
    installations: Iterable[str] | None = None,
    month: str | None = None,
    params: Mapping[str, Any] | None = None,
    on_group: Callable[[str], None] | None = None,
) -> pa.Table:
    """Run one kernel over a dataset, a group at a time.

    Parameters
    ----------
    dataset : str or Path
        A directory written by ``export --dataset``.
    kernel_name : str
        A key of :data:`zapanalytics.engines.kernels.KERNELS`.
    installations : iterable of str, optional
        Only these installations (default: all).
    month : str, optional
        ``YYYY-MM`` (local): only this month.
    params : mapping, optional
        The kernel's parameters.
    on_group : callable, optional
        Called with each group's key before it runs (progress).

    Returns
    -------
    pyarrow.Table
        :data:`~zapanalytics.engines.kernels.RESULT_SCHEMA` rows sorted by ``group_key``.
    """
    kernel = KERNELS[kernel_name]
    root = Path(dataset)
    manifest = read_manifest(root)
    areas = installation_price_areas(root, manifest)
    scope = run_scope(manifest, kernel, installations=installations, month=month, price_areas=areas)
    run_params = dict(params or {})
    if month is not None:
        run_params["month"] = month
    results = []
    if kernel.group_by == "installation_month":
        groups = [(i, m) for i, m in scope.targets]
    else:
        groups = [(i, month) for i in scope.installations]
    for installation, group_month in groups:
        inputs = _inputs(root, manifest, kernel, installation, group_month, areas.get(installation))
        if kernel.group_by == "charger":
            for charger_id, own in _by_charger(inputs).items():
                if on_group:
                    on_group(charger_id)
                results.append(kernel.function(own, {"charger": charger_id}, run_params))
            continue
        key = {"installation": installation}
        if kernel.group_by == "installation_month":
            key["month"] = group_month
        if on_group:
            on_group("/".join(key.values()))
        results.append(kernel.function(inputs, key, run_params))
    if not results:
        return RESULT_SCHEMA.empty_table()
    return pa.concat_tables(results).sort_by("group_key")
