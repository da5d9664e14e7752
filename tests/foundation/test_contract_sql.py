"""The SQL form of the store contract refuses exactly the rows pandera refuses.

For every table, frames of edge values (nulls, bounds and their neighbours, NaN, infinities,
empty text, times around 2015 and two days from now, intervals of other lengths) are judged
by both: the pandera schema (through the door's validation) and the generated SQL evaluated
by DuckDB over the same rows. The two must agree row by row.
"""

from __future__ import annotations

import datetime as dt
import math
import random

import duckdb
import polars as pl
import pytest

from zapanalytics.contract_sql import (
    UnknownCheck,
    any_failure_sql,
    contract_checks,
)
from zapanalytics.ingest.door import RECORD_COLUMN, _failed_rows
from zapanalytics.schemas import (
    EARLIEST_PLAUSIBLE_UTC,
    FUTURE_TOLERANCE,
    TABLE_SCHEMAS,
    polars_schema,
)

NOW = dt.datetime.now(dt.UTC)
_TIMES = [
    None,
    EARLIEST_PLAUSIBLE_UTC,
    EARLIEST_PLAUSIBLE_UTC - dt.timedelta(microseconds=1),
    dt.datetime(2014, 6, 1, tzinfo=dt.UTC),
    dt.datetime(2025, 3, 30, 1, 0, tzinfo=dt.UTC),
    dt.datetime(2025, 3, 30, 1, 15, tzinfo=dt.UTC),
    dt.datetime(2025, 3, 30, 2, 0, tzinfo=dt.UTC),
    dt.datetime(2025, 3, 30, 0, 59, 59, 999_999, tzinfo=dt.UTC),
    NOW + FUTURE_TOLERANCE - dt.timedelta(hours=1),
    NOW + FUTURE_TOLERANCE + dt.timedelta(hours=1),
]
_TEXTS = [None, "", "a", "NO1", "NO5", "NO6", "TN", "IT", "Home", "Pro", "han", "submeter",
          "Europe/Oslo", "UTC", "Oslo", "X" * 9, "ZZ"]  # fmt: skip
_INTS = [None, -1, 0, 1, 3, 15, 255, 256, 2**31 - 1]
_BOOLS = [None, True, False]


def _floats_for(table: str, column: str) -> list[float | None]:
    """Edge floats: each bound of the column and its neighbours, plus the odd values."""
    values: list[float | None] = [None, 0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, -1e-9]
    for check in TABLE_SCHEMAS[table].to_schema().columns[column].checks:
        for key in ("min_value", "max_value"):
            bound = (check.statistics or {}).get(key)
            if isinstance(bound, int | float) and not isinstance(bound, bool):
                values += [float(bound), math.nextafter(bound, math.inf), math.nextafter(bound, -math.inf)]
    return values


def _valid_value(table: str, column: str, dtype: pl.DataType) -> object:
    if isinstance(dtype, pl.Datetime):
        hour = 2 if column == "end_utc" else 1
        return dt.datetime(2025, 3, 30, hour, 0, tzinfo=dt.UTC)
    allowed = [
        (c.statistics or {}).get("allowed_values")
        for c in TABLE_SCHEMAS[table].to_schema().columns[column].checks
        if c.name == "isin"
    ]
    if allowed:
        return list(allowed[0])[0]
    if column == "timezone":
        return "Europe/Oslo"
    if dtype == pl.Float64:
        return 0.5
    if dtype in (pl.Int32, pl.Int64):
        return 1
    if dtype == pl.Boolean:
        return True
    return "abc"


def _edge_frame(table: str, rows: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    schema = polars_schema(table)
    data: dict[str, list] = {}
    for column, dtype in schema.items():
        if dtype == pl.Datetime("us", "UTC") or isinstance(dtype, pl.Datetime):
            pool = _TIMES
        elif dtype == pl.Float64:
            pool = _floats_for(table, column)
        elif dtype in (pl.Int32, pl.Int64):
            pool = _INTS
        elif dtype == pl.Boolean:
            pool = _BOOLS
        else:
            pool = _TEXTS
        # Mostly one valid value, so single failures are common, not only pile-ups.
        usual = _valid_value(table, column, dtype)
        data[column] = [rng.choice(pool) if rng.random() < 0.35 else usual for _ in range(rows)]
    frame = pl.DataFrame(data, schema=schema)
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(RECORD_COLUMN))


@pytest.mark.parametrize("table", sorted(TABLE_SCHEMAS))
def test_sql_checks_refuse_exactly_what_pandera_refuses(table: str) -> None:
    frame = _edge_frame(table, rows=3000, seed=len(table))
    pandera_fails = set(_failed_rows(table, frame))
    checks = contract_checks(table, alias="t")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("t", frame.to_arrow())
    sql_fails = {
        row[0]
        for row in con.execute(
            f"SELECT {RECORD_COLUMN} FROM t WHERE {any_failure_sql(checks)}"  # noqa: S608
        ).fetchall()
    }
    assert pandera_fails, "the edge frame must hold rows the contract refuses"
    assert len(pandera_fails) < frame.height, "and rows it accepts"
    assert sql_fails == pandera_fails


def test_every_check_is_named_for_its_column() -> None:
    checks = contract_checks("sessions", alias="s")
    names = {(c.column, c.name) for c in checks}
    assert ("energy_kwh", "less_than_or_equal_to") in names
    assert ("start_utc", "not_nullable") in names
    assert (None, "end_not_before_start") in names
    assert all(c.fails.startswith("coalesce((") for c in checks if c.name != "not_nullable")


def test_a_check_without_sql_is_refused_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandera.polars as pa

    class Odd(pa.DataFrameModel):
        x: float = pa.Field(str_startswith="a")

    monkeypatch.setitem(TABLE_SCHEMAS, "odd", Odd)
    with pytest.raises(UnknownCheck, match="str_startswith"):
        contract_checks("odd")
