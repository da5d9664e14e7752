"""The store contract's checks as SQL, generated from the pandera schemas.

Bulk loaders stage rows in DuckDB and must not store what :mod:`zapanalytics.schemas` would
refuse. Instead of a second hand-written copy of the rules, :func:`contract_checks` reads
each pandera model (column nullability, the built-in checks with their statistics, and the
named custom checks) and writes one SQL condition per check that is TRUE where a row fails.
A check whose name this module does not know raises :class:`UnknownCheck` when the SQL is
generated, so a rule added to a schema cannot be skipped silently by the SQL side; the tests
evaluate both sides on the same frames, row by row.

A row failing here is not quarantined on this verdict alone: the bulk loaders hand its
source record to the per-record path, whose door validates it with pandera and writes the
reason. The SQL only has to find every such row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from zapanalytics.schemas import EARLIEST_PLAUSIBLE_UTC, FUTURE_TOLERANCE, TABLE_SCHEMAS


class UnknownCheck(NotImplementedError):
    """A pandera check with no SQL translation here: add one before the schema can be bulk-loaded."""


@dataclasses.dataclass(frozen=True, slots=True)
class SqlCheck:
    """One contract check of a table as SQL.

    Attributes
    ----------
    column : str or None
        The column checked; None for a table-level check.
    name : str
        The pandera check's name (``not_nullable`` for a non-nullable column).
    fails : str
        A SQL condition, TRUE exactly where a row fails (never NULL).
    """

    column: str | None
    name: str
    fails: str


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: object) -> str:
    """A Python scalar as a SQL literal (numbers, text, booleans, aware datetimes)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no place in a contract check")
        return f"TIMESTAMPTZ '{value.astimezone(dt.UTC).isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _bounded(column: str, statistics: Mapping, *, inclusive: bool, lower: bool) -> str:
    value = statistics["min_value" if lower else "max_value"]
    if lower:
        return f"{column} {'<' if inclusive else '<='} {sql_literal(value)}"
    return f"{column} {'>' if inclusive else '>='} {sql_literal(value)}"


def _str_length(column: str, statistics: Mapping) -> str:
    parts = []
    if statistics.get("exact_value") is not None:
        parts.append(f"length({column}) <> {int(statistics['exact_value'])}")
    if statistics.get("min_value") is not None:
        parts.append(f"length({column}) < {int(statistics['min_value'])}")
    if statistics.get("max_value") is not None:
        parts.append(f"length({column}) > {int(statistics['max_value'])}")
    return " OR ".join(parts) or "FALSE"


def _in_range(column: str, statistics: Mapping) -> str:
    low = "<" if statistics.get("include_min", True) else "<="
    high = ">" if statistics.get("include_max", True) else ">="
    return (
        f"{column} {low} {sql_literal(statistics['min_value'])}"
        f" OR {column} {high} {sql_literal(statistics['max_value'])}"
    )


def _isin(column: str, statistics: Mapping) -> str:
    values = ", ".join(sql_literal(v) for v in statistics["allowed_values"])
    return f"{column} NOT IN ({values})"


def _notin(column: str, statistics: Mapping) -> str:
    values = ", ".join(sql_literal(v) for v in statistics["forbidden_values"])
    return f"{column} IN ({values})"


def _plausible_time(column: str, now: dt.datetime) -> str:
    latest = now + FUTURE_TOLERANCE
    return (
        f"{column} < {sql_literal(EARLIEST_PLAUSIBLE_UTC)} OR {column} > {sql_literal(latest)}"
    )


#: pandera's built-in column checks → SQL (condition TRUE where the non-null value fails).
_BUILT_IN: dict[str, Callable[[str, Mapping], str]] = {
    "greater_than_or_equal_to": lambda c, s: _bounded(c, s, inclusive=True, lower=True),
    "greater_than": lambda c, s: _bounded(c, s, inclusive=False, lower=True),
    "less_than_or_equal_to": lambda c, s: _bounded(c, s, inclusive=True, lower=False),
    "less_than": lambda c, s: _bounded(c, s, inclusive=False, lower=False),
    "in_range": _in_range,
    "isin": _isin,
    "notin": _notin,
    "str_length": _str_length,
    "equal_to": lambda c, s: f"{c} <> {sql_literal(s['value'])}",
    "not_equal_to": lambda c, s: f"{c} = {sql_literal(s['value'])}",
}

#: The schemas' own table-level checks (:mod:`zapanalytics.schemas`), written again in SQL.
#: Each mirrors the polars expression of the check of the same name; the tests hold them equal.
_TABLE_LEVEL: dict[str, Callable[[Callable[[str], str]], str]] = {
    "end_not_before_start": lambda col: f"{col('end_utc')} < {col('start_utc')}",
    "meter_stop_not_below_start": lambda col: f"{col('meter_stop_kwh')} < {col('meter_start_kwh')}",
    # polars' total_minutes truncates toward zero, as trunc does.
    "interval_is_quarter_or_hour": lambda col: (
        f"trunc((epoch_us({col('end_utc')}) - epoch_us({col('start_utc')})) / 60000000.0)"
        " NOT IN (15, 60)"
    ),
    "timezone_is_iana": lambda col: (
        f"NOT (regexp_matches({col('timezone')}, '^[A-Za-z_]+(/[A-Za-z0-9_+\\-]+)+$')"
        f" OR {col('timezone')} = 'UTC')"
    ),
}


def _never_null(condition: str) -> str:
    return f"coalesce(({condition}), FALSE)"


def contract_checks(
    table: str, *, alias: str | None = None, now: dt.datetime | None = None
) -> tuple[SqlCheck, ...]:
    """Every check of ``table``'s pandera schema as a SQL condition TRUE where a row fails.

    Parameters
    ----------
    table : str
        A table of :data:`zapanalytics.schemas.TABLE_SCHEMAS`.
    alias : str, optional
        Qualify the columns with this relation name.
    now : datetime, optional
        The instant ``plausible_time`` measures the future from (aware); now by default.

    Raises
    ------
    UnknownCheck
        For a check this module cannot write in SQL.
    """
    now = now or dt.datetime.now(dt.UTC)
    schema = TABLE_SCHEMAS[table].to_schema()
    prefix = f"{quote_identifier(alias)}." if alias else ""

    def col(name: str) -> str:
        return prefix + quote_identifier(name)

    checks: list[SqlCheck] = []
    for name, column in schema.columns.items():
        ref = col(name)
        if not column.nullable:
            checks.append(SqlCheck(name, "not_nullable", f"{ref} IS NULL"))
        for check in column.checks:
            statistics = check.statistics or {}
            if check.name == "plausible_time":
                condition = _plausible_time(ref, now)
            elif check.name in _BUILT_IN:
                condition = _BUILT_IN[check.name](ref, statistics)
            else:
                raise UnknownCheck(f"{table}.{name}: no SQL for the check {check.name!r}")
            checks.append(SqlCheck(name, check.name, _never_null(condition)))
    for check in schema.checks:
        if check.name not in _TABLE_LEVEL:
            raise UnknownCheck(f"{table}: no SQL for the table check {check.name!r}")
        checks.append(SqlCheck(None, check.name, _never_null(_TABLE_LEVEL[check.name](col))))
    return tuple(checks)


def any_failure_sql(checks: Sequence[SqlCheck]) -> str:
    """A SQL condition TRUE where a row fails any of ``checks``."""
    return " OR ".join(f"({c.fails})" for c in checks) or "FALSE"
