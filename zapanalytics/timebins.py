"""Time binning rules shared by billing, reports and audits.

Interval energy rows are stamped at the interval's end; a delta stamped exactly on the hour
belongs to the hour before. Bins are built in the installation's IANA zone, so a local day
has 23 or 25 hours on DST days.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

_JUST_BEFORE = dt.timedelta(microseconds=1)


def interval_start_bin(ts_utc: pl.Expr, every: str, timezone: str) -> pl.Expr:
    """The local bin (e.g. ``"1h"``, ``"15m"``, ``"1d"``) an interval ending at ``ts_utc`` falls in.

    Parameters
    ----------
    ts_utc : polars.Expr
        Interval end times, tz-aware UTC.
    every : str
        A polars duration string.
    timezone : str
        IANA zone for the bins, e.g. ``"Europe/Oslo"``.

    Returns
    -------
    polars.Expr
        The bin start, tz-aware in ``timezone``.
    """
    return (ts_utc - _JUST_BEFORE).dt.convert_time_zone(timezone).dt.truncate(every)
