"""Energy as a matrix: one row per user, one column per quarter-hour of the rate calendar.

Every statement line is, per user and month, a sum over quarter-hours of energy × a rate of
that quarter-hour. With the energy ``E`` (users × quarters) and the calendar's months as a
0/1 matrix ``M`` (quarters × months), a line's amounts are ``E @ (M × rate)``: one matrix
product per line instead of a join and a group-by over every energy row. The matrix is
built with one weighted ``bincount`` over the energy rows.

The calendar is a gap-free quarter-hour grid, so a row's column is arithmetic on its
quarter index. Months are contiguous runs of columns.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

from zapanalytics.billing.energy import quarter_index

#: Above this many cells (users × quarters, 8 bytes each) the matrix is refused: bill
#: fewer months at a time (a month is ~3,000 quarters, so ~15,000 users fit).
MAX_CELLS = 50_000_000


@dataclasses.dataclass
class EnergyMatrix:
    """Energy per user and quarter-hour over a rate calendar.

    Attributes
    ----------
    users : list of str or None
        Row labels (``None``: sessions without a user).
    energy : numpy.ndarray
        ``users × quarters`` [kWh].
    months : list of str
        ``YYYY-MM`` of the calendar, in order.
    month_of_quarter : numpy.ndarray
        Month index of each calendar quarter.
    quarter_totals : numpy.ndarray
        All users' energy per quarter [kWh].
    """

    users: list[str | None]
    energy: np.ndarray
    months: list[str]
    month_of_quarter: np.ndarray
    quarter_totals: np.ndarray

    @classmethod
    def build(cls, energy: pl.DataFrame, calendar: pl.DataFrame) -> EnergyMatrix:
        """Place energy rows ``user_id, interval_start_utc, energy_kwh`` on ``calendar``.

        Repeated (user, quarter) rows add up.

        Raises
        ------
        ValueError
            A row lies outside the calendar, or the matrix would be too large.
        """
        if calendar.height == 0:
            raise ValueError("the rate calendar is empty")
        width = calendar.height
        first = calendar.select(quarter_index(pl.col("interval_start_utc")).first()).item()
        offset = energy.select(quarter_index(pl.col("interval_start_utc")) - first).to_series()
        outside = int(((offset < 0) | (offset >= width)).sum())
        if outside:
            raise ValueError(f"{outside} energy rows fall outside the rate calendar's window")
        users = energy["user_id"]
        if not isinstance(users.dtype, pl.Enum):
            names = users.cast(pl.String).drop_nulls().unique().sort()
            users = users.cast(pl.String).cast(pl.Enum(names))
        labels: list[str | None] = [*users.dtype.categories.to_list(), None]
        codes = users.to_physical().cast(pl.Int64).fill_null(len(labels) - 1).to_numpy()
        present = np.flatnonzero(np.bincount(codes, minlength=len(labels)))
        if present.size * width > MAX_CELLS:
            raise ValueError(
                f"{present.size} users × {width} quarter-hours is too large to bill at once; "
                "bill fewer months at a time"
            )
        # Keep only the users that have rows: row r of the matrix is user present[r].
        row_of = np.full(len(labels), -1, dtype=np.int64)
        row_of[present] = np.arange(present.size)
        values = energy["energy_kwh"].fill_null(0.0).to_numpy()
        cells = row_of[codes] * width + offset.to_numpy()
        matrix = np.bincount(cells, weights=values, minlength=present.size * width)
        month_names = calendar["month"].to_list()
        months = list(dict.fromkeys(month_names))
        index = {m: i for i, m in enumerate(months)}
        return cls(
            users=[labels[p] for p in present],
            energy=matrix.reshape(present.size, width),
            months=months,
            month_of_quarter=np.array([index[m] for m in month_names], dtype=np.int64),
            quarter_totals=np.bincount(offset.to_numpy(), weights=values, minlength=width),
        )

    def per_month(
        self, rate: np.ndarray | None = None, energy: np.ndarray | None = None
    ) -> np.ndarray:
        """``users × months`` sums of energy × ``rate`` (per quarter; default 1)."""
        return self.per_month_many({"x": rate}, energy)["x"]

    def per_month_many(
        self, rates: dict[str, np.ndarray | None], energy: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """``users × months`` sums of energy × each rate, reading the matrix once.

        Months are contiguous column ranges, so each month is one matrix product of its
        columns with all the rates stacked side by side.
        """
        energy = self.energy if energy is None else energy
        stacked = np.column_stack(
            [np.ones(self.month_of_quarter.size) if r is None else r for r in rates.values()]
        )
        out = np.empty((energy.shape[0], len(self.months), stacked.shape[1]))
        for month in range(len(self.months)):
            columns = self.month_slice(month)
            out[:, month, :] = energy[:, columns] @ stacked[columns]
        return {name: out[:, :, i] for i, name in enumerate(rates)}

    def month_slice(self, month: int) -> slice:
        """The calendar columns of month ``month`` (months are contiguous)."""
        first = int(np.searchsorted(self.month_of_quarter, month, side="left"))
        last = int(np.searchsorted(self.month_of_quarter, month, side="right"))
        return slice(first, last)

    def long(self, active: np.ndarray, **columns: np.ndarray) -> pl.DataFrame:
        """A frame ``month, user_id, <columns>`` of the (user, month) cells where ``active``."""
        rows, months = np.nonzero(active)
        return pl.DataFrame(
            {
                "month": [self.months[m] for m in months],
                "user_id": [self.users[r] for r in rows],
                **{name: values[rows, months] for name, values in columns.items()},
            },
            schema_overrides={"month": pl.String, "user_id": pl.String},
        )


def vector(calendar: pl.DataFrame, column: str) -> np.ndarray:
    """A calendar column as floats, nulls as NaN."""
    return calendar[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
