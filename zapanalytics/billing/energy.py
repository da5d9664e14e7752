"""Energy per user per quarter-hour, the input of every split method.

A session's ``energy_details`` row is a delta stamped at the *end* of its interval; the
interval starts at the session's previous detail stamp (or at the session start for the
first one). Each delta is placed on the quarter-hour grid over the interval it covers:

* a delta whose interval lies inside one quarter goes to that quarter — a delta stamped
  exactly on a boundary belongs to the quarter (and hour) before, the store's hour rule;
* a delta covering several quarters (hourly details, a gap in the details) is shared
  pro rata by time over those quarters;
* a session without details is one delta from its start to its end, so its energy is
  spread pro rata over the session.

Every offset in use is a whole number of quarter-hours from UTC, so the local
quarter-hour grid is the UTC one; hours, days and months are then binned in the
installation's zone with :func:`zapanalytics.timebins.interval_start_bin`. A session that
runs across midnight or a month boundary therefore splits at the local boundary.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl

from zapanalytics.timebins import interval_start_bin

QUARTER = dt.timedelta(minutes=15)
_QUARTER_US = 15 * 60 * 1_000_000
UTC_US = pl.Datetime("us", "UTC")

#: Columns of an energy frame (the split methods' input).
ENERGY_COLUMNS = ("user_id", "interval_start_utc", "energy_kwh")


def _session_runs(details: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """Details grouped by session in time order, with each row's run (session) number.

    Rows straight from the store (``ORDER BY session_id, ts_utc``) are used as they are;
    anything else is sorted first. Checking is linear, sorting is not. Returns the frame
    (``session_id, energy_kwh, run, t1``) and the mask of rows that start a run.
    """
    frame = details.select("session_id", "ts_utc", "energy_kwh")
    run = frame["session_id"].rle_id()
    stamps = frame["ts_utc"].dt.epoch("us")
    new_run = (run != run.shift(1)).fill_null(True)
    ordered = bool(((stamps > stamps.shift(1)).fill_null(True) | new_run).all())
    if ordered:
        heads = frame["session_id"].filter(new_run)
        ordered = heads.n_unique() == heads.len()
    if not ordered:
        frame = frame.sort("session_id", "ts_utc")
        run = frame["session_id"].rle_id()
        stamps = frame["ts_utc"].dt.epoch("us")
        new_run = (run != run.shift(1)).fill_null(True)
    return frame.select("session_id", "energy_kwh", run.alias("run"), stamps.alias("t1")), new_run


def _user_codes(sessions: pl.DataFrame) -> pl.Enum:
    users = sessions["user_id"].drop_nulls().unique().sort()
    return pl.Enum(users)


def _deltas(sessions: pl.DataFrame, details: pl.DataFrame, users: pl.Enum) -> pl.DataFrame:
    """Every delta as ``user_id, t0, t1, energy_kwh`` with ``(t0, t1]`` in epoch µs.

    Per-session facts (user, start) are looked up once per session and broadcast to its rows
    by run number, so no join or sort runs over the detail rows themselves.
    """
    billable = sessions.select(
        "session_id",
        pl.col("user_id").cast(users),
        pl.col("start_utc").dt.epoch("us").alias("start"),
        pl.coalesce("end_utc", "start_utc").dt.epoch("us").alias("end"),
        pl.col("energy_kwh").fill_null(0.0),
        pl.lit(True).alias("billable"),
    )
    runs, new_run = _session_runs(details)
    run, t1 = runs["run"], runs["t1"]
    head_rows = new_run.arg_true()
    heads = (
        runs[head_rows]
        .select("run", "session_id")
        .join(billable, on="session_id", how="left", maintain_order="left")
    )
    # A delta starts at the previous stamp; a session's first one at the session start.
    previous = t1.shift(1).scatter(head_rows, heads["start"])
    t0 = pl.select(previous.fill_null(t1).clip(upper_bound=t1)).to_series()
    # Only deltas that carry energy go on (most quarters of a long session are idle); void
    # and unknown sessions' details carry no bill.
    keep = runs["energy_kwh"] != 0
    unknown = heads["billable"].is_null()
    if unknown.any():
        keep = keep & ~unknown.gather(run)
    with_details = pl.DataFrame(
        [heads["user_id"].gather(run).alias("user_id"), t0.alias("t0"), t1, runs["energy_kwh"]]
    ).filter(keep)
    # Sessions whose details carry no energy at all are billed as if they had none.
    positive = run.filter(runs["energy_kwh"] > 0).unique()
    detailed = heads["session_id"].filter(heads["run"].is_in(positive.implode()))
    without = billable.filter(~pl.col("session_id").is_in(detailed.implode())).select(
        "user_id",
        pl.col("start").clip(upper_bound=pl.col("end")).alias("t0"),
        pl.col("end").alias("t1"),
        "energy_kwh",
    )
    return pl.concat([with_details, without], how="vertical")


def _billable(sessions: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    frame = sessions.lazy()
    if "is_void" in frame.collect_schema().names():
        frame = frame.filter(~pl.col("is_void").fill_null(False))
    return frame.select("session_id", "user_id", "start_utc", "end_utc", "energy_kwh").collect()


def spread_deltas(deltas: pl.DataFrame) -> pl.DataFrame:
    """Place deltas ``(t0, t1]`` [epoch µs] on the quarter-hour grid, pro rata by time.

    Returns ``user_id, quarter, energy_kwh`` where ``quarter`` is the quarter's index
    (start = quarter × 15 min since the epoch). A delta inside one quarter stays one row;
    only deltas spanning quarters are exploded.
    """
    first = deltas["t0"] // _QUARTER_US
    last = (deltas["t1"] - 1) // _QUARTER_US
    # A zero-length delta belongs to the quarter its stamp closes (the hour rule).
    first = pl.select(pl.min_horizontal(first, last)).to_series()
    single_mask = first == last
    single = deltas.filter(single_mask).select(
        "user_id", last.filter(single_mask).alias("quarter"), "energy_kwh"
    )
    spanning = (
        deltas.filter(~single_mask)
        .with_columns(
            first.filter(~single_mask).alias("first"), last.filter(~single_mask).alias("last")
        )
        .with_columns(pl.int_ranges("first", pl.col("last") + 1).alias("quarter"))
        .explode("quarter")
        .with_columns(
            (
                pl.min_horizontal(pl.col("t1"), (pl.col("quarter") + 1) * _QUARTER_US)
                - pl.max_horizontal(pl.col("t0"), pl.col("quarter") * _QUARTER_US)
            ).alias("overlap")
        )
        .select(
            "user_id",
            "quarter",
            (pl.col("energy_kwh") * pl.col("overlap") / (pl.col("t1") - pl.col("t0"))).alias(
                "energy_kwh"
            ),
        )
    )
    return pl.concat([single, spanning], how="vertical")


def user_interval_energy(
    sessions: pl.DataFrame | pl.LazyFrame,
    details: pl.DataFrame | pl.LazyFrame,
    *,
    start_utc: dt.datetime | None = None,
    end_utc: dt.datetime | None = None,
    combine: bool = True,
) -> pl.DataFrame:
    """Energy per user per quarter-hour.

    Parameters
    ----------
    sessions : polars.DataFrame or LazyFrame
        Rows of ``sessions``: ``session_id, user_id, start_utc, end_utc, energy_kwh`` and
        optionally ``is_void`` (void sessions carry no bill and are dropped).
    details : polars.DataFrame or LazyFrame
        Rows of ``energy_details``: ``session_id, ts_utc, energy_kwh`` [kWh deltas]; fastest
        when ordered by session and time, as the store returns them.
    start_utc, end_utc : datetime, optional
        Keep only quarters starting in ``[start_utc, end_utc)`` (tz-aware).
    combine : bool, default True
        Sum the rows of each user and quarter. The split methods are linear in energy and
        accept repeated (user, quarter) rows, so billing at scale skips this step.

    Returns
    -------
    polars.DataFrame
        ``user_id, interval_start_utc, energy_kwh`` [kWh]; ``user_id`` is an Enum of the
        sessions' users (null for sessions without a user).
    """
    billable = _billable(sessions)
    details = details.lazy().collect() if isinstance(details, pl.LazyFrame) else details
    users = _user_codes(billable)
    placed = spread_deltas(_deltas(billable, details, users))
    inside = pl.col("energy_kwh") != 0
    if start_utc is not None:
        inside = inside & (pl.col("quarter") >= _quarter_of(start_utc))
    if end_utc is not None:
        inside = inside & (pl.col("quarter") < _quarter_of(end_utc))
    placed = placed.filter(inside)
    if combine:
        placed = (
            placed.group_by("user_id", "quarter")
            .agg(pl.col("energy_kwh").sum())
            .filter(pl.col("energy_kwh") != 0)
            .sort("user_id", "quarter", nulls_last=True)
        )
    return placed.select(
        "user_id", quarter_start(pl.col("quarter")).alias("interval_start_utc"), "energy_kwh"
    )


def session_interval_energy(
    sessions: pl.DataFrame | pl.LazyFrame,
    details: pl.DataFrame | pl.LazyFrame,
    **window: dt.datetime | None,
) -> pl.DataFrame:
    """Energy per session per quarter-hour (for per-session listings).

    Same rules as :func:`user_interval_energy`, keyed by ``session_id`` instead of user:
    returns ``session_id, user_id, interval_start_utc, energy_kwh``.
    """
    billable = _billable(sessions)
    as_users = billable.with_columns(pl.col("session_id").alias("user_id"))
    per_session = user_interval_energy(as_users, details, **window)
    owners = billable.select("session_id", pl.col("user_id").alias("owner"))
    return (
        per_session.with_columns(pl.col("user_id").cast(pl.String).alias("session_id"))
        .join(owners, on="session_id", how="left")
        .select("session_id", pl.col("owner").alias("user_id"), "interval_start_utc", "energy_kwh")
        .sort("session_id", "interval_start_utc")
    )


def _quarter_of(instant: dt.datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError("window bounds must be tz-aware")
    micros = int(instant.timestamp()) * 1_000_000 + instant.microsecond
    return -(-micros // _QUARTER_US)  # first quarter starting at or after the instant


def quarter_start(quarter: pl.Expr) -> pl.Expr:
    """Quarter index (since the epoch) → its start as a UTC datetime."""
    return pl.from_epoch(quarter * _QUARTER_US, time_unit="us").dt.replace_time_zone("UTC")


def quarter_index(interval_start_utc: pl.Expr) -> pl.Expr:
    """UTC quarter start → its index since the epoch."""
    return interval_start_utc.dt.epoch("us") // _QUARTER_US


def with_local_bins(frame: pl.DataFrame | pl.LazyFrame, timezone: str) -> pl.LazyFrame:
    """Add the local ``hour_start``, ``day`` and ``month`` (``YYYY-MM``) of each quarter."""
    quarter_end = pl.col("interval_start_utc") + QUARTER
    hour = interval_start_bin(quarter_end, "1h", timezone)
    return frame.lazy().with_columns(
        hour.alias("hour_start"),
        hour.dt.date().alias("day"),
        hour.dt.strftime("%Y-%m").alias("month"),
    )


def month_bounds(month: str, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where local month ``YYYY-MM`` starts and the next one starts."""
    try:
        year, number = (int(part) for part in month.split("-"))
        first = dt.date(year, number, 1)
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, not {month!r}") from None
    following = dt.date(year + number // 12, number % 12 + 1, 1)
    zone = ZoneInfo(timezone)

    def start_of(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)

    return start_of(first), start_of(following)
