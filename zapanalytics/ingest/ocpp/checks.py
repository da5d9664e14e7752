"""How OCPP rows meet the store: merging with stored rows and the energy-register check.

A row offered by a spool record *merges* with the stored row of the same key: it fills
empty columns, and a non-empty value that differs from a stored one is a contradiction (the
record goes to quarantine; the store keeps what it had). The register check refuses a
reading below an earlier reading of the same charger, or above a later stored one: a
lifetime energy register never goes backwards, so either the meter was reset or swapped,
or the reading is wrong, and in both cases billing must not see it silently.

:class:`StoredMeterContext` keeps, per charger, the newest stored OCPP timestamp and the
largest stored register, so that the common case (new readings after everything stored)
needs no store lookups at all.
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import polars as pl

from zapanalytics.ingest.ocpp.records import METER_COLUMNS
from zapanalytics.schemas import EARLIEST_PLAUSIBLE_UTC, FUTURE_TOLERANCE, MAX_REGISTER_KWH

SOURCE = "ocpp"
_BOOKKEEPING = frozenset({"source", "ingested_at"})
_REL_TOL = _ABS_TOL = 1e-12


def same_value(a: Any, b: Any) -> bool:
    """Equal, both NaN, or floats equal to 12 significant digits."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(
            a, b, rel_tol=_REL_TOL, abs_tol=_ABS_TOL
        )
    return a == b


def _same_expr(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Vectorised :func:`same_value` for float columns."""
    tolerance = pl.max_horizontal(_REL_TOL * pl.max_horizontal(a.abs(), b.abs()), pl.lit(_ABS_TOL))
    return (a == b) | (a.is_nan() & b.is_nan()) | ((a - b).abs() <= tolerance)


def merge_row(stored: Mapping[str, Any] | None, partial: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Fill ``partial`` from ``stored`` and list the columns where the two disagree.

    Returns
    -------
    (dict, list of str)
        The merged row, and the names of columns holding different non-null values.
    """
    if stored is None:
        return dict(partial), []
    merged = {k: v for k, v in stored.items() if k not in _BOOKKEEPING}
    conflicts = []
    for column, value in partial.items():
        if value is None:
            continue
        held = merged.get(column)
        if held is not None and not same_value(held, value):
            conflicts.append(column)
        merged[column] = value
    return merged, conflicts


def contradiction_reason(table: str, key_text: str, pairs: Iterable[tuple[str, Any, Any]]) -> str:
    """Quarantine reason for a row that contradicts the stored one."""
    shown = ", ".join(f"{column} stored {held!r} vs {offered!r}" for column, held, offered in pairs)
    return f"{table} row {key_text} contradicts the stored row: {shown}"


def meter_key_text(charger_id: str, ts: dt.datetime) -> str:
    return f"{charger_id} at {ts.isoformat()}"


def plausible_register(ts: dt.datetime, value: Any, latest: dt.datetime) -> bool:
    """Whether a reading takes part in the register check (the door refuses the others)."""
    return (
        isinstance(value, float)
        and math.isfinite(value)
        and 0 <= value <= MAX_REGISTER_KWH
        and EARLIEST_PLAUSIBLE_UTC <= ts <= latest
    )


def latest_plausible() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE


def register_rejections(
    candidates: list[tuple[int, str, dt.datetime, float]],
    stored: Mapping[str, list[tuple[dt.datetime, float]]],
    *,
    column: str = "meter_values.energy_register_kwh",
    owner: str = "charger",
) -> dict[int, str]:
    """Find records whose energy register goes backwards (exact, per reading).

    Parameters
    ----------
    candidates : list of (record, charger_id, ts_utc, energy_register_kwh)
        Readings offered by the batch (plausible ones only).
    stored : mapping of charger_id to sorted (ts_utc, energy_register_kwh)
        Stored readings around the batch's time span.
    column, owner : str
        How the reason names the register and what it belongs to (a charger, a meter).

    Returns
    -------
    dict of int to str
        Record index to quarantine reason. A reading must be at least every earlier reading
        (stored or accepted in the batch) and at most every later stored reading; a record
        that fails is left out and the batch is checked again without it.
    """
    excluded: dict[int, str] = {}
    by_charger: dict[str, list[tuple[dt.datetime, float, int]]] = collections.defaultdict(list)
    for record, charger_id, ts, value in candidates:
        by_charger[charger_id].append((ts, value, record))
    while True:
        found: dict[int, str] = {}
        for charger_id, readings in by_charger.items():
            history = stored.get(charger_id, [])
            times = [t for t, _ in history]
            prefix_max, running = [], -math.inf
            for _, v in history:
                running = max(running, v)
                prefix_max.append(running)
            suffix_min, running = [0.0] * len(history), math.inf
            for i in range(len(history) - 1, -1, -1):
                running = min(running, history[i][1])
                suffix_min[i] = running
            accepted_max, accepted_at = -math.inf, None
            for ts, value, record in sorted(readings, key=lambda r: (r[0], r[2])):
                if record in excluded:
                    continue
                before = bisect.bisect_left(times, ts)
                after = bisect.bisect_right(times, ts)
                earlier, earlier_at = accepted_max, accepted_at
                if before > 0 and prefix_max[before - 1] > earlier:
                    earlier = prefix_max[before - 1]
                    earlier_at = max((t for t, v in history[:before] if v == earlier), default=None)
                if value < earlier:
                    found.setdefault(record, (
                        f"{column} decreased: {value:g} kWh at "
                        f"{ts.isoformat()} is below {earlier:g} kWh at "
                        f"{earlier_at.isoformat() if earlier_at else '?'} ({owner} {charger_id})"
                    ))
                    continue
                if after < len(history) and value > suffix_min[after]:
                    later_at = next(t for t, v in history[after:] if v == suffix_min[after])
                    found.setdefault(record, (
                        f"{column} decreased: {value:g} kWh at "
                        f"{ts.isoformat()} is above the later reading {suffix_min[after]:g} kWh at "
                        f"{later_at.isoformat()} ({owner} {charger_id})"
                    ))
                    continue
                if value >= accepted_max:
                    accepted_max, accepted_at = value, ts
        new = {r: reason for r, reason in found.items() if r not in excluded}
        if not new:
            return excluded
        excluded.update(new)


def chargers_with_register_violations(candidates: pl.DataFrame, stored: pl.DataFrame) -> set[str]:
    """Chargers where some reading is below an earlier one or above a later stored one.

    A vectorised screen: chargers it names are re-checked exactly by
    :func:`register_rejections`; for the others every reading is accepted.

    Parameters
    ----------
    candidates : polars.DataFrame
        ``charger_id``, ``ts_utc``, ``value``: plausible readings offered.
    stored : polars.DataFrame
        ``charger_id``, ``ts_utc``, ``value``: stored readings that matter.
    """
    if candidates.height == 0:
        return set()
    both = pl.concat([
        stored.select("charger_id", "ts_utc", "value", stored_value=pl.col("value")),
        candidates.select("charger_id", "ts_utc", "value", stored_value=pl.lit(None, pl.Float64)),
    ])
    instants = (
        both.group_by("charger_id", "ts_utc")
        .agg(top=pl.col("value").max(), stored_low=pl.col("stored_value").min())
        .sort("charger_id", "ts_utc")
        .with_columns(
            before=pl.col("top").cum_max().shift(1).over("charger_id"),
            after=pl.col("stored_low").fill_null(math.inf).reverse().cum_min().reverse()
            .shift(-1).over("charger_id"),
        )
    )
    flagged = candidates.join(instants, on=["charger_id", "ts_utc"]).filter(
        (pl.col("value") < pl.col("before")) | (pl.col("value") > pl.col("after"))
    )
    return set(flagged["charger_id"].unique().to_list())


class StoredMeterContext:
    """What the store holds of each charger's OCPP meter values, cached across batches.

    ``newest[charger]`` is an upper bound of the stored timestamps, ``top_register[charger]``
    the largest stored register with its time. Rows after ``newest`` cannot meet a stored
    row, so they need no lookup; others are looked up by key, bounded in time so that
    DuckDB skips row groups.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self.newest: dict[str, dt.datetime] = {}
        self.top_register: dict[str, tuple[dt.datetime, float]] = {}
        rows = con.execute(
            "WITH t AS (SELECT charger_id, max(ts_utc) AS newest, max(energy_register_kwh) AS top"
            " FROM meter_values WHERE source = ? GROUP BY charger_id)"
            " SELECT t.charger_id, t.newest, t.top, (SELECT max(m.ts_utc) FROM meter_values m"
            "  WHERE m.charger_id = t.charger_id AND m.source = ? AND m.energy_register_kwh = t.top)"
            " FROM t",
            [SOURCE, SOURCE],
        ).fetchall()
        for charger_id, newest, top, top_at in rows:
            self.newest[charger_id] = newest
            if top is not None:
                self.top_register[charger_id] = (top_at, top)

    def needs_lookup(self, charger_id: str, earliest: dt.datetime) -> bool:
        newest = self.newest.get(charger_id)
        return newest is not None and earliest <= newest

    def stored_rows(self, keys: pl.DataFrame) -> pl.DataFrame:
        """Stored OCPP rows for ``keys`` (``charger_id``, ``ts_utc``) of chargers that need it."""
        if keys.height == 0:
            return _empty_stored()
        bounds = keys.group_by("charger_id").agg(lo=pl.col("ts_utc").min())
        wanted = [
            c for c, lo in bounds.iter_rows() if self.needs_lookup(c, lo)
        ]
        keys = keys.filter(pl.col("charger_id").is_in(wanted)).unique()
        if keys.height == 0:
            return _empty_stored()
        lo, hi = keys["ts_utc"].min(), keys["ts_utc"].max()
        self.con.register("_ocpp_keys", keys.select("charger_id", "ts_utc").to_arrow())
        try:
            frame = self.con.sql(
                "SELECT m.* FROM meter_values m JOIN _ocpp_keys k"
                " ON m.charger_id = k.charger_id AND m.ts_utc = k.ts_utc"
                " WHERE m.source = ? AND m.ts_utc BETWEEN ? AND ?",
                params=[SOURCE, lo, hi],
            ).pl()
        finally:
            self.con.unregister("_ocpp_keys")
        return frame.select("charger_id", "ts_utc", *METER_COLUMNS)

    def stored_registers(self, candidates: pl.DataFrame) -> pl.DataFrame:
        """Stored readings that bear on ``candidates`` (``charger_id``, ``ts_utc``).

        For a charger whose readings all come after its newest stored row, that is its top
        stored register; otherwise the stored readings in the batch's span plus the nearest
        one on each side.
        """
        if candidates.height == 0:
            return _empty_registers()
        spans = candidates.group_by("charger_id").agg(lo=pl.col("ts_utc").min(), hi=pl.col("ts_utc").max())
        simple, windows = [], []
        for charger_id, lo, hi in spans.iter_rows():
            if self.needs_lookup(charger_id, lo):
                windows.append((charger_id, lo, hi))
            elif charger_id in self.top_register:
                ts, value = self.top_register[charger_id]
                simple.append((charger_id, ts, value))
        frames = [pl.DataFrame(simple, schema=_REGISTER_SCHEMA, orient="row")]
        if windows:
            frames.append(self._window_registers(windows))
        return pl.concat(frames)

    def _window_registers(self, windows: list[tuple[str, dt.datetime, dt.datetime]]) -> pl.DataFrame:
        frame = pl.DataFrame(windows, schema={
            "charger_id": pl.String, "lo": pl.Datetime("us", "UTC"), "hi": pl.Datetime("us", "UTC"),
        }, orient="row")
        sql = """
            WITH m AS (
                SELECT m.charger_id, m.ts_utc, m.energy_register_kwh AS value, w.lo, w.hi
                FROM meter_values m JOIN _ocpp_windows w USING (charger_id)
                WHERE m.source = ? AND m.energy_register_kwh IS NOT NULL
            )
            SELECT charger_id, ts_utc, value FROM m WHERE ts_utc BETWEEN lo AND hi
            UNION ALL
            SELECT charger_id, max(ts_utc), arg_max(value, ts_utc) FROM m WHERE ts_utc < lo GROUP BY charger_id
            UNION ALL
            SELECT charger_id, min(ts_utc), arg_min(value, ts_utc) FROM m WHERE ts_utc > hi GROUP BY charger_id
        """
        self.con.register("_ocpp_windows", frame.to_arrow())
        try:
            rows = self.con.execute(sql, [SOURCE]).fetchall()
        finally:
            self.con.unregister("_ocpp_windows")
        return pl.DataFrame(rows, schema=_REGISTER_SCHEMA, orient="row")

    def remember(self, accepted: pl.DataFrame) -> None:
        """Note rows that are now stored (``charger_id``, ``ts_utc``, ``energy_register_kwh``)."""
        if accepted.height == 0:
            return
        latest = latest_plausible()
        register = pl.col("energy_register_kwh")
        recent = accepted.filter(pl.col("ts_utc") <= latest)
        newest = recent.group_by("charger_id").agg(newest=pl.col("ts_utc").max())
        readings = recent.filter(register.is_not_null() & register.is_finite())
        tops = (
            readings.filter(register == register.max().over("charger_id"))
            .group_by("charger_id")
            .agg(top=register.first(), top_at=pl.col("ts_utc").max())
        )
        for charger_id, ts in newest.iter_rows():
            if charger_id not in self.newest or ts > self.newest[charger_id]:
                self.newest[charger_id] = ts
        for charger_id, top, top_at in tops.iter_rows():
            held = self.top_register.get(charger_id)
            if held is None or top > held[1] or (top == held[1] and top_at > held[0]):
                self.top_register[charger_id] = (top_at, top)


_REGISTER_SCHEMA = {"charger_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"), "value": pl.Float64}


def _empty_registers() -> pl.DataFrame:
    return pl.DataFrame(schema=_REGISTER_SCHEMA)


def _empty_stored() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "charger_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"), **{c: pl.Float64 for c in METER_COLUMNS},
    })


def merge_meter_frame(offered: pl.DataFrame, stored: pl.DataFrame) -> tuple[pl.DataFrame, dict[int, str]]:
    """Merge offered meter rows with stored ones, column by column.

    Parameters
    ----------
    offered : polars.DataFrame
        ``_record``, ``charger_id``, ``ts_utc`` and the meter columns.
    stored : polars.DataFrame
        Stored rows with the same columns (without ``_record``).

    Returns
    -------
    (polars.DataFrame, dict of int to str)
        The merged rows (stored values fill the offered nulls), and the records whose first
        contradicting row earns them quarantine, with the reason.
    """
    if stored.height == 0:
        return offered, {}
    joined = offered.join(
        stored.rename({c: f"{c}__stored" for c in METER_COLUMNS}), on=["charger_id", "ts_utc"], how="left",
        maintain_order="left",
    )
    clashes = [
        (pl.col(c).is_not_null() & pl.col(f"{c}__stored").is_not_null()
         & ~_same_expr(pl.col(c), pl.col(f"{c}__stored"))).alias(f"{c}__clash")
        for c in METER_COLUMNS
    ]
    joined = joined.with_columns(clashes)
    clash_any = pl.any_horizontal(pl.col(f"{c}__clash") for c in METER_COLUMNS)
    rejections: dict[int, str] = {}
    for row in joined.filter(clash_any).iter_rows(named=True):
        record = row["_record"]
        if record in rejections:
            continue
        pairs = [(c, row[f"{c}__stored"], row[c]) for c in METER_COLUMNS if row[f"{c}__clash"]]
        rejections[record] = contradiction_reason(
            "meter_values", meter_key_text(row["charger_id"], row["ts_utc"]), pairs
        )
    merged = joined.select(
        "_record", "charger_id", "ts_utc",
        *(pl.coalesce(c, f"{c}__stored").alias(c) for c in METER_COLUMNS),
    )
    return merged, rejections
