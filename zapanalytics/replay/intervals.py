"""Step functions as interval frames: building, combining and finding runs.

A *step frame* holds one row per interval ``[start_utc, end_utc)`` during which every value
column is constant, optionally per key (e.g. ``charger_id``). Recorded observations become
step frames by holding each value until the next observation of the same quantity
(sample-and-hold), which is how Zaptec reports state: an observation is sent when a value
changes. Nothing here loops over seconds; every operation is a sort, a join or a scan over
change points.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import polars as pl

UTC_DTYPE = pl.Datetime("us", "UTC")


def hold_steps(
    points: pl.DataFrame,
    *,
    by: Sequence[str] = (),
    ts: str = "ts_utc",
    end_utc: datetime | None = None,
    fill: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Turn change points into a step frame by holding each value until the next point.

    Parameters
    ----------
    points : polars.DataFrame
        One row per change time (per key); nulls in ``fill`` columns mean "unchanged".
    by : sequence of str
        Key columns; each key gets its own step function.
    ts : str
        Time column of the change points (UTC).
    end_utc : datetime, optional
        End of the last interval of every key; defaults to the latest change time.
    fill : sequence of str, optional
        Columns whose nulls are forward-filled within a key (default: every value column).

    Returns
    -------
    polars.DataFrame
        ``by`` columns, ``start_utc``, ``end_utc`` and the value columns, sorted by key and
        time; zero-length intervals are dropped.
    """
    keys = list(by)
    values = [c for c in points.columns if c not in (*keys, ts)]
    fill = values if fill is None else list(fill)
    if points.is_empty():
        return (
            points.rename({ts: "start_utc"})
            .with_columns(pl.lit(None, dtype=UTC_DTYPE).alias("end_utc"))
            .select(*keys, "start_utc", "end_utc", *values)
        )
    last = end_utc if end_utc is not None else points[ts].max()
    frame = points.sort([*keys, ts])
    if fill:
        filled = [pl.col(c).forward_fill() for c in fill]
        frame = frame.with_columns([f.over(keys) for f in filled] if keys else filled)
    following = pl.col(ts).shift(-1)
    frame = frame.with_columns(
        (following.over(keys) if keys else following)
        .fill_null(pl.lit(last, dtype=UTC_DTYPE))
        .alias("end_utc")
    ).rename({ts: "start_utc"})
    return frame.filter(pl.col("end_utc") > pl.col("start_utc")).select(
        *keys, "start_utc", "end_utc", *values
    )


def combine_steps(
    left: pl.DataFrame, right: pl.DataFrame, *, by: Sequence[str] = ()
) -> pl.DataFrame:
    """Merge two step frames onto the union of their change points.

    Parameters
    ----------
    left, right : polars.DataFrame
        Step frames (``start_utc``, ``end_utc`` plus values) over the same keys ``by``;
        value columns must not clash.

    Returns
    -------
    polars.DataFrame
        One row per interval of the union of change points, where both frames' values are
        known (an interval covered by only one frame carries nulls for the other).
    """
    keys = list(by)
    starts = (
        pl.concat(
            [
                left.select(*keys, "start_utc"),
                left.select(*keys, pl.col("end_utc").alias("start_utc")),
                right.select(*keys, "start_utc"),
                right.select(*keys, pl.col("end_utc").alias("start_utc")),
            ]
        )
        .unique()
        .sort([*keys, "start_utc"])
    )
    following = pl.col("start_utc").shift(-1)
    grid = starts.with_columns(
        (following.over(keys) if keys else following).alias("end_utc")
    ).filter(pl.col("end_utc").is_not_null())

    def attach(base: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
        cols = [c for c in steps.columns if c not in (*keys, "start_utc", "end_utc")]
        right = steps.select(
            *keys, pl.col("start_utc").alias("_from"), pl.col("end_utc").alias("_until"), *cols
        )
        joined = base.join_asof(
            right,
            left_on="start_utc",
            right_on="_from",
            by=keys or None,
            strategy="backward",
            check_sortedness=False,
        )
        inside = pl.col("_until").is_not_null() & (pl.col("start_utc") < pl.col("_until"))
        return joined.with_columns([pl.when(inside).then(pl.col(c)).alias(c) for c in cols]).drop(
            "_from", "_until"
        )

    return attach(
        attach(grid.sort([*keys, "start_utc"]), left.sort([*keys, "start_utc"])),
        right.sort([*keys, "start_utc"]),
    )


def runs(
    steps: pl.DataFrame,
    flag: pl.Expr,
    *,
    by: Sequence[str] = (),
    aggregations: Sequence[pl.Expr] = (),
    min_duration_s: float = 0.0,
    merge_gap_s: float = 0.0,
) -> pl.DataFrame:
    """Find runs of contiguous intervals where ``flag`` holds.

    Runs no longer than ``min_duration_s`` are dropped first (transients inside a grace
    window); the runs left are then merged when the gap between them is at most
    ``merge_gap_s`` (one misbehaviour briefly interrupted stays one finding).

    Parameters
    ----------
    steps : polars.DataFrame
        Step frame with ``start_utc``, ``end_utc``.
    flag : polars.Expr
        Boolean expression over the step frame.
    by : sequence of str
        Keys: runs never span two keys.
    aggregations : sequence of polars.Expr
        Extra aggregations per run (e.g. ``pl.col("excess_a").max()``); after merging
        they are re-aggregated with ``max`` (for numbers) or ``first``.
    min_duration_s, merge_gap_s : float
        Thresholds [s].

    Returns
    -------
    polars.DataFrame
        ``by``, ``start_utc``, ``end_utc``, ``duration_s`` and the aggregations.
    """
    keys = list(by)
    frame = steps.sort([*keys, "start_utc"]).with_columns(flag.fill_null(False).alias("_flag"))

    def shifted(expr: pl.Expr) -> pl.Expr:
        return expr.shift(1).over(keys) if keys else expr.shift(1)

    new_run = (pl.col("_flag") != shifted(pl.col("_flag"))).fill_null(True) | (
        pl.col("start_utc") != shifted(pl.col("end_utc"))
    ).fill_null(True)
    frame = frame.with_columns(new_run.cum_sum().alias("_run")).filter(pl.col("_flag"))
    out = frame.group_by([*keys, "_run"], maintain_order=True).agg(
        pl.col("start_utc").min(), pl.col("end_utc").max(), *aggregations
    )
    out = out.with_columns(_duration_s(out)).filter(pl.col("duration_s") > min_duration_s)
    return merge_runs(out.drop("_run"), by=keys, merge_gap_s=merge_gap_s)


def merge_runs(found: pl.DataFrame, *, by: Sequence[str] = (), merge_gap_s: float) -> pl.DataFrame:
    """Merge runs of one key whose gap is at most ``merge_gap_s`` [s].

    Numeric and boolean columns other than the times take the maximum over the merged runs
    (a flag set in any run stays set), others the first value; ``duration_s`` is recomputed.
    """
    keys = list(by)
    if found.is_empty() or merge_gap_s <= 0:
        return found.sort([*keys, "start_utc"])
    out = found.sort([*keys, "start_utc"])
    previous_end = pl.col("end_utc").shift(1)
    if keys:
        previous_end = previous_end.over(keys)
    gap_s = (pl.col("start_utc") - previous_end).dt.total_microseconds() / 1e6
    out = out.with_columns((gap_s > merge_gap_s).fill_null(True).cum_sum().alias("_merged"))
    extra = [c for c in out.columns if c not in (*keys, "_merged", "start_utc", "end_utc",
                                                   "duration_s")]  # fmt: skip
    numeric = {c for c in extra if out.schema[c].is_numeric() or out.schema[c] == pl.Boolean}
    merged = out.group_by([*keys, "_merged"], maintain_order=True).agg(
        pl.col("start_utc").min(),
        pl.col("end_utc").max(),
        *[pl.col(c).max() if c in numeric else pl.col(c).first() for c in extra],
    )
    return merged.with_columns(_duration_s(merged)).drop("_merged").sort([*keys, "start_utc"])


def _duration_s(frame: pl.DataFrame) -> pl.Expr:
    return ((pl.col("end_utc") - pl.col("start_utc")).dt.total_microseconds() / 1e6).alias(
        "duration_s"
    )


def epoch_s(column: pl.Series) -> np.ndarray:
    """Seconds since the Unix epoch of a UTC datetime series, as float64."""
    return column.dt.epoch("us").to_numpy().astype(np.float64) / 1e6


def from_epoch_s(name: str, seconds: np.ndarray) -> pl.Series:
    """UTC datetime series from epoch seconds (microsecond resolution)."""
    micros = np.round(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)
    return pl.Series(name, micros, dtype=pl.Int64).cast(UTC_DTYPE)


def sum_over_keys(
    steps: pl.DataFrame,
    value_columns: Sequence[str],
    *,
    by: Sequence[str],
    start_utc: datetime,
    end_utc: datetime,
) -> pl.DataFrame:
    """Sum step functions of many keys into one step function (event sweep).

    Each key's change replaces its previous contribution, so the total moves by the
    difference; a cumulative sum over all changes in time order gives the total at every
    change point. Gaps in a key's coverage count as zero.

    Parameters
    ----------
    steps : polars.DataFrame
        Step frame per key with numeric ``value_columns`` (nulls count as zero).
    value_columns : sequence of str
        Columns to sum.
    by : sequence of str
        Key columns.
    start_utc, end_utc : datetime
        Span of the result.

    Returns
    -------
    polars.DataFrame
        ``start_utc``, ``end_utc`` and the summed columns, covering ``[start_utc, end_utc)``.
    """
    keys = list(by)
    cols = list(value_columns)
    frame = steps.sort([*keys, "start_utc"]).with_columns(
        [pl.col(c).fill_null(0.0).cast(pl.Float64) for c in cols]
    )
    # A key's contribution ends where its interval ends unless the next interval starts there.
    following = pl.col("start_utc").shift(-1).over(keys)
    ends = frame.filter(following.is_null() | (following != pl.col("end_utc"))).select(
        *keys, pl.col("end_utc").alias("start_utc"), *[pl.lit(0.0).alias(c) for c in cols]
    )
    changes = pl.concat([frame.select(*keys, "start_utc", *cols), ends]).sort(
        [*keys, "start_utc"], maintain_order=True
    )
    previous = [pl.col(c).shift(1).over(keys).fill_null(0.0) for c in cols]
    deltas = changes.with_columns(
        [(pl.col(c) - p).alias(c) for c, p in zip(cols, previous, strict=True)]
    )
    sums = (
        deltas.group_by("start_utc")
        .agg([pl.col(c).sum() for c in cols])
        .sort("start_utc")
        .with_columns([pl.col(c).cum_sum() for c in cols])
    )
    base = pl.DataFrame({"start_utc": pl.Series([start_utc], dtype=UTC_DTYPE)})
    grid = pl.concat([base, sums.select("start_utc")]).unique().sort("start_utc")
    out = grid.join_asof(sums, on="start_utc", strategy="backward").with_columns(
        [pl.col(c).fill_null(0.0) for c in cols]
    )
    out = out.filter(
        (pl.col("start_utc") >= pl.lit(start_utc, dtype=UTC_DTYPE))
        & (pl.col("start_utc") < pl.lit(end_utc, dtype=UTC_DTYPE))
    )
    out = out.with_columns(
        pl.col("start_utc").shift(-1).fill_null(pl.lit(end_utc, dtype=UTC_DTYPE)).alias("end_utc")
    )
    return out.select("start_utc", "end_utc", *cols)
