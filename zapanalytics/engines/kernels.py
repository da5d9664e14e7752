"""The analyses as Arrow-in, Arrow-out kernels: one group of rows in, one result row out.

A kernel gets, for one group (an installation, a charger, or an installation and month),
the rows of each dataset table that group needs as ``pyarrow`` tables typed by the
dataset's manifest, and returns a ``pyarrow`` table of :data:`RESULT_COLUMNS` rows. The
domain work is done by the functions of :mod:`zapanalytics.replay`,
:mod:`zapanalytics.audit` and :mod:`zapanalytics.billing`, the same ones the store-backed
commands call; a kernel only selects rows and shapes the result.

Both engines (:mod:`zapanalytics.engines.local`, :mod:`zapanalytics.engines.spark`)
call the same kernels, so a kernel must give the same bytes whatever order its rows come
in and whatever string or time zone flavour of Arrow type they carry: each input is cast
to the manifest's schema and sorted on every column first, and the result is built with
plain ``string`` columns (Spark refuses ``large_string`` where its schema says string).

The result of a group is one JSON document per row (``document_json``): the same
document the CLI prints, so the two engines' ``--json`` can be compared byte for byte,
and a data platform can read it with ``from_json``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from zapanalytics.naming import charger_names, named_record

__all__ = [
    "KERNELS",
    "RESULT_SCHEMA",
    "Kernel",
    "TableInput",
    "accuracy_kernel",
    "billing_kernel",
    "canonical_json",
    "gain_kernel",
    "replay_kernel",
]

#: Every kernel's result: the group's key and its JSON document.
RESULT_SCHEMA = pa.schema(
    [
        pa.field("group_key", pa.string()),
        pa.field("document_json", pa.string()),
    ]
)


def _jsonable(value: Any) -> Any:
    """Non-finite floats become null (JSON has no NaN); times become ISO 8601 in UTC."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def canonical_json(document: Any) -> str:
    """The JSON text of a kernel document: keys in the document's order, floats as
    Python prints them (shortest text that reads back to the same double)."""
    return json.dumps(_jsonable(document), ensure_ascii=False, default=str, allow_nan=False)


def _result(rows: list[tuple[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "group_key": pa.array([key for key, _ in rows], pa.string()),
            "document_json": pa.array([canonical_json(doc) for _, doc in rows], pa.string()),
        },
        schema=RESULT_SCHEMA,
    )


def _frame(table: pa.Table | None) -> pl.DataFrame:
    """A polars frame of one input, in a canonical row order, partition columns dropped."""
    if table is None:
        return pl.DataFrame()
    frame = pl.DataFrame(
        table.drop_columns([c for c in ("installation", "month") if c in table.column_names])
    )
    if frame.is_empty():
        return frame
    # Both engines deliver the same rows in different orders; sorting on every column
    # makes each domain function see one order.
    return frame.sort(frame.columns, nulls_last=True)


@dataclass(frozen=True)
class TableInput:
    """What one kernel reads of one dataset table for one group.

    Attributes
    ----------
    table : str
        Dataset table.
    month_offsets : tuple of int or None
        For kernels grouped by month: the partition months, relative to the group's
        month, that may hold the group's rows (a session that starts in the month before
        and ends in this one). None: every month of the group's installation.
    where : tuple of (column, value) pairs
        Rows kept (equality).
    by_price_area : bool
        Rows belong to every installation of their ``price_area`` (prices).
    """

    table: str
    month_offsets: tuple[int, ...] | None = None
    where: tuple[tuple[str, str], ...] = ()
    by_price_area: bool = False


@dataclass(frozen=True)
class Kernel:
    """A kernel and how its groups are formed.

    Attributes
    ----------
    name : str
    group_by : {"installation", "charger", "installation_month"}
    inputs : tuple of TableInput
    function : callable
        ``function(inputs, key, params) -> pyarrow.Table`` of :data:`RESULT_SCHEMA`;
        ``inputs`` maps table names to Arrow tables, ``key`` names the group.
    """

    name: str
    group_by: str
    inputs: tuple[TableInput, ...]
    function: Callable[[Mapping[str, pa.Table], Mapping[str, str], Mapping[str, Any]], pa.Table]
    options: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# Replay: conformance and fairness per installation
# ------------------------------------------------------------------------------------------


def _month_window(
    month: str | None, timezone: str
) -> tuple[dt.datetime | None, dt.datetime | None]:
    if month is None:
        return None, None
    from zapanalytics.billing.energy import month_bounds

    return month_bounds(month, timezone)


def _in_span(
    frame: pl.DataFrame, column: str, start: dt.datetime | None, end: dt.datetime | None
) -> pl.DataFrame:
    if frame.is_empty() or start is None:
        return frame
    return frame.filter((pl.col(column) >= start) & (pl.col(column) < end))


def replay_kernel(
    inputs: Mapping[str, pa.Table], key: Mapping[str, str], params: Mapping[str, Any]
) -> pa.Table:
    """Conformance findings, fairness and the baseline scenario of one installation.

    Parameters
    ----------
    inputs : mapping of str to pyarrow.Table
        ``installations``, ``chargers``, ``canonical_sessions``, ``charger_states``,
        ``meter_values`` and ``reference_readings`` (kind ``han``) of the installation.
    key : mapping
        ``installation``: the installation id.
    params : mapping
        ``month`` (``YYYY-MM`` local, optional): replay only that month.

    Returns
    -------
    pyarrow.Table
        One row: the replay document (``ReplayResult.as_dict`` without the wall times,
        which differ from run to run).
    """
    from zapanalytics.audit.findings import utc_frame
    from zapanalytics.replay import build_recording, run_replay
    from zapanalytics.replay.recording import installation_info

    installations = _frame(inputs.get("installations"))
    if installations.is_empty():
        return _result([])
    site = installation_info(installations.row(0, named=True))
    start, end = _month_window(params.get("month"), site.timezone)
    chargers = utc_frame(_frame(inputs.get("chargers")))
    sessions = utc_frame(_frame(inputs.get("canonical_sessions")))
    states = utc_frame(_frame(inputs.get("charger_states")))
    meter = utc_frame(_frame(inputs.get("meter_values")))
    han = utc_frame(_frame(inputs.get("reference_readings")))
    if chargers.is_empty():
        return _result([])
    # The rows load_recording selects from the store, picked from the group's rows.
    sessions = sessions.select(
        "session_id", "charger_id", "user_id", "user_name", "start_utc", "end_utc",
        "energy_kwh", "is_void",
    )  # fmt: skip
    if start is not None:
        sessions = sessions.filter(
            (pl.col("end_utc").is_null() | (pl.col("end_utc") > start))
            & (pl.col("start_utc") < end)
        )
    states = _in_span(
        states.filter(pl.col("state_id").is_in([507, 508, 509, 519, 708, 710])),
        "ts_utc", start, end,
    ).select("charger_id", "ts_utc", "state_id", "value")  # fmt: skip
    meter = _in_span(
        meter.filter(pl.col("current_offered_a").is_not_null() | pl.col("current_l1_a").is_not_null()),
        "ts_utc", start, end,
    ).select("charger_id", "ts_utc", "current_offered_a", "current_l1_a", "current_l2_a", "current_l3_a")  # fmt: skip
    if not han.is_empty():
        han = _in_span(
            han.filter(pl.col("kind").str.to_lowercase().str.starts_with("han") & pl.col("current_l1_a").is_not_null()),
            "ts_utc", start, end,
        ).select("ts_utc", "current_l1_a", "current_l2_a", "current_l3_a")  # fmt: skip
    recording = build_recording(
        site,
        chargers.select(
            "charger_id", "name", "phase_rotation", "min_current_a", "max_current_a", "circuit_id"
        ),
        sessions,
        states,
        meter if not meter.is_empty() else None,
        han if not han.is_empty() else None,
        start_utc=start,
        end_utc=end,
    )
    document = run_replay(recording).as_dict()
    document.pop("timings_s", None)
    return _result([(site.installation_id, document)])


# ------------------------------------------------------------------------------------------
# Audit: accuracy windows and verdicts per charger; gain regression per installation
# ------------------------------------------------------------------------------------------


def accuracy_kernel(
    inputs: Mapping[str, pa.Table], key: Mapping[str, str], params: Mapping[str, Any]
) -> pa.Table:
    """Accuracy windows, bands and the verdict of one charger against its sub-meter.

    Parameters
    ----------
    inputs : mapping of str to pyarrow.Table
        ``meter_values``, ``reference_readings`` (kind ``submeter``) and ``chargers``
        rows of the charger.
    key : mapping
        ``charger``: the charger id.
    params : mapping
        Unused (the month filter acts on the rows given).

    Returns
    -------
    pyarrow.Table
        One row: ``charger_id``, ``installation_id``, ``windows`` (count), ``error_kwh``
        sums, ``bands`` and ``verdict`` as :func:`zapanalytics.audit.accuracy.accuracy_bands`
        and :func:`~zapanalytics.audit.accuracy.accuracy_verdicts` give them.
    """
    from zapanalytics.audit.accuracy import accuracy_bands, accuracy_verdicts, accuracy_windows
    from zapanalytics.audit.findings import utc_frame
    from zapanalytics.audit.regression_hours import is_single_phase_load

    charger_id = key["charger"]
    values = utc_frame(_frame(inputs.get("meter_values")))
    reference = utc_frame(_frame(inputs.get("reference_readings")))
    chargers = utc_frame(_frame(inputs.get("chargers")))
    if reference.is_empty():
        return _result([])
    chargers = (
        chargers.filter(pl.col("charger_id") == charger_id) if not chargers.is_empty() else None
    )
    if values.is_empty():
        values = pl.DataFrame(schema={"charger_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"),
                                      "source": pl.String, "energy_register_kwh": pl.Float64})  # fmt: skip
    windows = accuracy_windows(values, reference, chargers)
    single_phase = {charger_id} if is_single_phase_load(values) else set()
    bands = accuracy_bands(windows, single_phase_chargers=single_phase)
    verdicts = accuracy_verdicts(bands, chargers, with_reference=[charger_id])
    verdict = verdicts.filter(pl.col("charger_id") == charger_id)
    installation_id = (
        reference["installation_id"].drop_nulls().first()
        if "installation_id" in reference.columns
        else None
    )
    document = {
        "charger_id": charger_id,
        "charger_name": charger_names(chargers).get(charger_id, charger_id),
        "installation_id": installation_id,
        "windows": windows.height,
        "charger_energy_kwh": float(windows["charger_energy_kwh"].sum()),
        "reference_energy_kwh": float(windows["reference_energy_kwh"].sum()),
        "bands": bands.to_dicts(),
        "verdict": verdict.row(0, named=True) if verdict.height else None,
    }
    return _result([(charger_id, document)])


def gain_kernel(
    inputs: Mapping[str, pa.Table], key: Mapping[str, str], params: Mapping[str, Any]
) -> pa.Table:
    """Gain errors of an installation's chargers against its HAN meter.

    Parameters
    ----------
    inputs : mapping of str to pyarrow.Table
        ``installations``, ``chargers``, ``meter_values`` and ``reference_readings``
        (kind ``han``) of the installation.
    key : mapping
        ``installation``: the installation id.
    params : mapping
        ``han_meter_class`` (A, B or C) and ``han_uncertainty_pct`` [%], optional: the
        HAN meter's accuracy (see :func:`zapanalytics.audit.regression.estimate_gains`).

    Returns
    -------
    pyarrow.Table
        One row: :meth:`zapanalytics.audit.regression.GainRegression.as_dict` of the
        installation.
    """
    from zapanalytics.audit.findings import utc_frame
    from zapanalytics.audit.regression import estimate_gains, hourly_energies
    from zapanalytics.audit.regression_hours import is_single_phase_load

    installation_id = key["installation"]
    installations = _frame(inputs.get("installations"))
    chargers = utc_frame(_frame(inputs.get("chargers")))
    values = utc_frame(_frame(inputs.get("meter_values")))
    han = utc_frame(_frame(inputs.get("reference_readings")))
    if han.is_empty() or chargers.is_empty() or values.is_empty():
        return _result([])
    zone = installations["timezone"].first() if not installations.is_empty() else None
    hourly = hourly_energies(values, han, chargers)
    phase_count = (
        installations["phase_count"].first()
        if "phase_count" in installations.columns and not installations.is_empty()
        else None
    )
    gains = estimate_gains(
        hourly,
        timezones={installation_id: zone or "Europe/Oslo"},
        han_meter_class=params.get("han_meter_class"),
        han_uncertainty_pct=params.get("han_uncertainty_pct"),
        single_phase_load={
            installation_id: is_single_phase_load(values, site_phase_count=phase_count)
        },
    )
    document = gains.as_dict()
    names = charger_names(chargers)
    document["chargers"] = [named_record(row, names) for row in document["chargers"]]
    return _result([(installation_id, document)])


# ------------------------------------------------------------------------------------------
# Billing per installation and month
# ------------------------------------------------------------------------------------------


def billing_kernel(
    inputs: Mapping[str, pa.Table], key: Mapping[str, str], params: Mapping[str, Any]
) -> pa.Table:
    """The statement document of one installation and month.

    Parameters
    ----------
    inputs : mapping of str to pyarrow.Table
        ``installations``, ``canonical_sessions``, ``energy_details``, ``prices`` (of
        the installation's price area) and ``reference_readings`` (kind ``han``) around
        the month.
    key : mapping
        ``installation`` and ``month`` (``YYYY-MM``, local).
    params : mapping
        ``method``, ``price_nok_per_kwh``, ``markup_nok_per_kwh``, ``grid_company``,
        ``tariff_files``, ``group_by`` (user, charger or card), ``now`` (ISO 8601; the
        month-not-over note depends on it).

    Returns
    -------
    pyarrow.Table
        One row: the public statement document
        (:func:`zapanalytics.billing.statements.public_document`).
    """
    from zapanalytics.audit.findings import utc_frame
    from zapanalytics.billing.energy import month_bounds
    from zapanalytics.billing.monthly import BillingError, bill_frames
    from zapanalytics.billing.rates import RateTableError
    from zapanalytics.billing.statements import public_document, statement_document

    installations = _frame(inputs.get("installations"))
    if installations.is_empty():
        return _result([])
    installation = installations.row(0, named=True)
    group_key = f"{key['installation']}/{key['month']}"
    start, end = month_bounds(key["month"], installation.get("timezone") or "Europe/Oslo")
    sessions, details, prices, han = _billing_rows(
        utc_frame(_frame(inputs.get("canonical_sessions"))),
        _frame(inputs.get("chargers")),
        utc_frame(_frame(inputs.get("energy_details"))),
        utc_frame(_frame(inputs.get("prices"))),
        utc_frame(_frame(inputs.get("reference_readings"))),
        start,
        end,
    )
    now = dt.datetime.fromisoformat(params["now"]) if params.get("now") else None
    try:
        bill = bill_frames(
            installation,
            key["month"],
            params["method"],
            sessions=sessions,
            details=details,
            prices=prices,
            han=han,
            price_nok_per_kwh=params.get("price_nok_per_kwh"),
            markup_nok_per_kwh=params.get("markup_nok_per_kwh"),
            rates=_rate_tables(
                tuple(
                    (str(f), Path(f).stat().st_mtime_ns) for f in params.get("tariff_files") or ()
                )
            ),
            grid_company=params.get("grid_company"),
            group_by=params.get("group_by") or "user",
            now=now,
        )
    except (BillingError, RateTableError, ValueError) as exc:
        # One installation's missing prices must not stop a fleet's run: said per bill.
        return _result(
            [(group_key, {"installation_id": key["installation"], "month": key["month"],
                          "error": str(exc)})]
        )  # fmt: skip
    return _result([(group_key, public_document(statement_document(bill)))])


@functools.lru_cache(maxsize=8)
def _rate_tables(tariff_files: tuple[tuple[str, int], ...]):
    """The rate tables, read once per worker process (a fleet bills thousands of months);
    ``tariff_files`` pairs each file with its modification time, so an edit is read."""
    from zapanalytics.billing.rates import load_rates

    return load_rates([path for path, _ in tariff_files])


def _billing_rows(
    sessions: pl.DataFrame,
    chargers: pl.DataFrame,
    details: pl.DataFrame,
    prices: pl.DataFrame,
    han: pl.DataFrame,
    start: dt.datetime,
    end: dt.datetime,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None, pl.DataFrame | None]:
    """The rows :func:`zapanalytics.billing.monthly.bill_month` selects from the store for
    ``[start, end)``, picked from a group's rows."""
    columns = ["session_id", "user_id", "user_name", "user_email", "charger_id", "token_name",
               "start_utc", "end_utc", "energy_kwh", "is_void"]  # fmt: skip
    if sessions.is_empty():
        return sessions, details, None, None
    if "user_email" not in sessions.columns:
        sessions = sessions.with_columns(pl.lit(None, pl.String).alias("user_email"))
    sessions = sessions.filter(
        (pl.col("start_utc") < end)
        & (pl.coalesce("end_utc", "start_utc") >= start - dt.timedelta(days=1))
    ).select(columns)
    if not chargers.is_empty():
        names = chargers.select(
            "charger_id", charger_name="name", charger_serial="device_id"
        ).unique("charger_id", keep="first")
        sessions = sessions.join(names, on="charger_id", how="left")
    details = (
        details.join(sessions.select("session_id"), on="session_id", how="semi")
        .select("session_id", "ts_utc", "energy_kwh")
        .sort("session_id", "ts_utc")
        if not details.is_empty()
        else details
    )
    if not prices.is_empty():
        prices = (
            prices.filter(
                (pl.col("end_utc") > start)
                & (pl.col("start_utc") < end)
                & pl.col("spot_nok_per_kwh").is_not_null()
            )
            .select("start_utc", "end_utc", "spot_nok_per_kwh")
            .sort("start_utc")
        )
    if not han.is_empty():
        hour = dt.timedelta(hours=1)
        han = (
            han.filter(
                pl.col("energy_import_kwh").is_not_null()
                & pl.col("ts_utc").is_between(start - hour, end + hour)
            )
            .select("ts_utc", "energy_import_kwh")
            .sort("ts_utc")
        )
    return (
        sessions,
        details,
        prices if not prices.is_empty() else None,
        han if not han.is_empty() else None,
    )


#: The kernels by name, with the rows each group reads.
KERNELS: dict[str, Kernel] = {
    "replay": Kernel(
        "replay",
        "installation",
        (
            TableInput("installations"),
            TableInput("chargers"),
            TableInput("canonical_sessions", month_offsets=(-1, 0)),
            TableInput("charger_states"),
            TableInput("meter_values"),
            TableInput("reference_readings", where=(("kind", "han"),)),
        ),
        replay_kernel,
    ),
    "accuracy": Kernel(
        "accuracy",
        "charger",
        (
            TableInput("meter_values"),
            TableInput("reference_readings", where=(("kind", "submeter"),)),
            TableInput("chargers"),
        ),
        accuracy_kernel,
    ),
    "gain": Kernel(
        "gain",
        "installation",
        (
            TableInput("installations"),
            TableInput("chargers"),
            TableInput("meter_values"),
            TableInput("reference_readings", where=(("kind", "han"),)),
        ),
        gain_kernel,
    ),
    "billing": Kernel(
        "billing",
        "installation_month",
        (
            TableInput("installations"),
            TableInput("chargers"),
            TableInput("canonical_sessions", month_offsets=(-1, 0)),
            TableInput("energy_details", month_offsets=(-1, 0, 1)),
            TableInput("prices", month_offsets=(-1, 0, 1), by_price_area=True),
            TableInput("reference_readings", month_offsets=(-1, 0, 1), where=(("kind", "han"),)),
        ),
        billing_kernel,
    ),
}
