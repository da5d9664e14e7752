"""Columnar reading of MeterValues spool lines: the loader's fast path.

MeterValues are nearly all of a spool. Reading them one JSON object at a time costs about
90 µs per line in Python; this module reads a whole batch with polars instead and yields
exactly the rows :func:`zapanalytics.ingest.ocpp.records.meter_value_rows` would (the
tests load spools both ways and compare the stores).

Only *plain* lines take this path: a compact ``[2,"id","MeterValues",{...}]`` frame that the
server answered with a CALLRESULT, timestamps in the usual ``2025-01-31T12:00:00Z`` shapes,
numbers in plain decimal notation and units the reader knows. Any line with something
unusual is handed back to the per-record reader, which decides (and quarantines with a
reason where needed), so the two paths cannot disagree on what they both accept.
"""

from __future__ import annotations

import io

import polars as pl

_RECORD_SCHEMA = {
    "ts": pl.String, "charge_point_id": pl.String, "direction": pl.String,
    "message": pl.String, "reply": pl.String,
}
_SAMPLE = pl.Struct({
    "value": pl.String, "context": pl.String, "format": pl.String, "measurand": pl.String,
    "phase": pl.String, "location": pl.String, "unit": pl.String,
})
_PAYLOAD = pl.Struct({
    "connectorId": pl.Int64,
    "transactionId": pl.Int64,
    "meterValue": pl.List(pl.Struct({"timestamp": pl.String, "sampledValue": pl.List(_SAMPLE)})),
})
_COMPACT_CALL = r'^\[2,"[^"\\{]{1,36}","MeterValues",\{'
_CALL_RESULT = r'^\[3,"[^"\\]{1,36}",\{.*\}\]$'
_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
_NUMBER = r"^-?\d{1,15}(\.\d{1,15})?([eE][+-]?\d{1,2})?$"
#: A text field holding a number, null, array or object: polars would coerce or drop it,
#: the per-record reader refuses it, so such a line goes to the per-record reader.
_NON_TEXT_FIELD = r'"(?:value|context|format|measurand|phase|location|unit|timestamp)"\s*:\s*[^"\s]'

_PHASES = {"L1": 1, "L2": 2, "L3": 3, "L1-N": 1, "L2-N": 2, "L3-N": 3}
#: Columns whose phase values add up to a total when no total is sent (max for offered current).
_TOTAL_COLUMNS = {
    "Energy.Active.Import.Register": ("energy_register_kwh", {None: 0.001, "Wh": 0.001, "kWh": 1.0}),
    "Power.Active.Import": ("power_w", {None: 1.0, "W": 1.0, "kW": 1000.0}),
    "Power.Offered": ("power_offered_w", {None: 1.0, "W": 1.0, "kW": 1000.0}),
    "Current.Offered": ("current_offered_a", {None: 1.0, "A": 1.0}),
}
METER_COLUMNS = (
    "energy_register_kwh", "power_w", "power_offered_w", "current_offered_a",
    "current_l1_a", "current_l2_a", "current_l3_a",
    "voltage_l1_v", "voltage_l2_v", "voltage_l3_v", "temperature_c",
)


def _to_utc(text: pl.Expr) -> pl.Expr:
    normalised = text.str.replace(r"Z$", "+00:00")
    return normalised.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", strict=False
    ).dt.convert_time_zone("UTC")


def _unit_factor(table: dict) -> pl.Expr:
    unit = pl.col("unit")
    expr = pl.when(unit.is_null()).then(pl.lit(table[None]))
    for name, factor in table.items():
        if name is not None:
            expr = expr.when(unit == name).then(pl.lit(factor))
    return expr.otherwise(pl.lit(None, pl.Float64))


def read_meter_values(lines: list[bytes]) -> tuple[pl.DataFrame, list[int]]:
    """Read the plain MeterValues lines of a batch into ``meter_values`` columns.

    Parameters
    ----------
    lines : list of bytes
        Complete spool lines (without newlines).

    Returns
    -------
    (polars.DataFrame, list of int)
        Rows with ``_record`` (index into ``lines``), ``charge_point_id``, ``ts_utc`` and the
        meter columns, ordered like the per-record reader's output; and the indices of every
        line this path did not read (other actions and anything unusual).
    """
    everything = list(range(len(lines)))
    if not lines:
        return _empty(), everything
    try:
        records = pl.read_ndjson(io.BytesIO(b"\n".join(lines) + b"\n"), schema=_RECORD_SCHEMA)
    except Exception:  # noqa: BLE001 - any oddity: the per-record reader will say what it is
        return _empty(), everything
    if records.height != len(lines):
        return _empty(), everything
    message = pl.col("message")
    plain = (
        records.with_row_index("_record")
        .filter(
            (pl.col("direction") == "in")
            & pl.col("charge_point_id").str.len_chars().gt(0)
            & pl.col("ts").str.contains(_TIMESTAMP)
            & _to_utc(pl.col("ts")).is_not_null()
            & message.str.contains(_COMPACT_CALL)
            & message.str.ends_with("}]")
            & pl.col("reply").str.contains(_CALL_RESULT)
        )
        .select(
            "_record",
            "charge_point_id",
            payload=message.str.slice(
                message.str.find("{", literal=True), message.str.len_chars() - message.str.find("{", literal=True) - 1
            ),
        )
    )
    if plain.height == 0:
        return _empty(), everything
    plain = plain.filter(~pl.col("payload").str.contains(_NON_TEXT_FIELD))
    if plain.height == 0:
        return _empty(), everything
    try:
        decoded = plain.with_columns(pl.col("payload").str.json_decode(_PAYLOAD)).filter(
            pl.col("payload").is_not_null()
        )
    except Exception:  # noqa: BLE001 - a payload polars cannot type: leave the batch to Python
        return _empty(), everything

    missing = decoded.filter(pl.col("payload").struct.field("meterValue").is_null())["_record"]
    meter_values = (
        decoded.select("_record", "charge_point_id", mv=pl.col("payload").struct.field("meterValue"))
        .explode("mv")
        .filter(pl.col("mv").is_not_null())
        .with_row_index("_mv")  # a global index keeps each record's meterValue order
        .select(
            "_record", "charge_point_id", "_mv",
            ts_text=pl.col("mv").struct.field("timestamp"),
            samples=pl.col("mv").struct.field("sampledValue"),
        )
        .with_columns(ts_utc=_to_utc(pl.col("ts_text")))
    )
    bad_time = meter_values.filter(
        pl.col("ts_text").is_null() | ~pl.col("ts_text").str.contains(_TIMESTAMP) | pl.col("ts_utc").is_null()
        | pl.col("samples").is_null()
    )["_record"]
    samples = (
        meter_values.lazy()
        .select("_record", "_mv", sv=pl.col("samples"))
        .explode("sv")
        .filter(pl.col("sv").is_not_null())
        .unnest("sv")
        .filter(pl.col("format").is_null() | (pl.col("format") != "SignedData"))
        .with_columns(
            measurand=pl.col("measurand").fill_null("Energy.Active.Import.Register"),
            phase_index=pl.col("phase").replace_strict(_PHASES, default=None, return_dtype=pl.Int8),
            electrical=pl.when(pl.col("location").is_null() | (pl.col("location") == "Outlet")).then(0)
            .when(pl.col("location") == "Inlet").then(1)
            .otherwise(None).cast(pl.Int8),
        )
        .with_columns(_sample_columns())
        .filter(pl.col("column").is_not_null())
        .collect()
    )
    unreadable = samples.filter(
        pl.col("factor").is_null() | pl.col("value").is_null() | ~pl.col("value").str.contains(_NUMBER)
    )["_record"]
    slow = set(bad_time.to_list()) | set(unreadable.to_list()) | set(missing.to_list())

    number = pl.col("value").cast(pl.Float64)
    readings = samples.lazy().filter(~pl.col("_record").is_in(sorted(slow))).with_columns(
        reading=pl.when(pl.col("column") != "temperature_c").then(number * pl.col("factor"))
        .when(pl.col("unit") == "Fahrenheit").then((number - 32.0) * 5.0 / 9.0)
        .when(pl.col("unit") == "K").then(number - 273.15)
        .otherwise(number)
    )
    wide = _wide_columns(readings.collect())
    kept = meter_values.filter(~pl.col("_record").is_in(sorted(slow))).select(
        "_record", "charge_point_id", "_mv", "ts_utc"
    )
    rows = kept.join(wide, on="_mv", how="left").sort("_mv")
    if rows.select(pl.struct("_record", "ts_utc").is_duplicated().any()).item():
        # Samples of one record that share a timestamp: the first value of a column wins.
        rows = rows.group_by("_record", "ts_utc", maintain_order=True).agg(
            pl.col("charge_point_id").first(),
            *(pl.col(c).drop_nulls().first().alias(c) for c in METER_COLUMNS),
        )
    combined = rows.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in METER_COLUMNS)).select(
        "_record", "charge_point_id", "ts_utc", *(pl.col(c).cast(pl.Float64) for c in METER_COLUMNS)
    )
    read = set(decoded["_record"].to_list()) - slow
    return combined, [i for i in everything if i not in read]


def _sample_columns() -> list[pl.Expr]:
    """Per sample: target column, unit factor, kind (phase total or pick) and priority."""
    measurand, phase_index = pl.col("measurand"), pl.col("phase_index")
    electrical = pl.col("electrical").is_not_null()
    column = pl.when(False).then(pl.lit(None, pl.String))
    factor = pl.when(False).then(pl.lit(None, pl.Float64))
    for name, (target, units) in _TOTAL_COLUMNS.items():
        chosen = (measurand == name) & electrical
        column = column.when(chosen).then(pl.lit(target))
        factor = factor.when(chosen).then(_unit_factor(units))
    for name, prefix, units in (("Current.Import", "current_l{}_a", {None: 1.0, "A": 1.0}),
                                ("Voltage", "voltage_l{}_v", {None: 1.0, "V": 1.0})):
        chosen = (measurand == name) & electrical & phase_index.is_not_null()
        column = column.when(chosen).then(pl.format(prefix, phase_index))
        factor = factor.when(chosen).then(_unit_factor(units))
    temperature = measurand == "Temperature"
    column = column.when(temperature).then(pl.lit("temperature_c")).otherwise(None)
    factor = factor.when(temperature).then(
        pl.when(pl.col("unit").is_null() | pl.col("unit").is_in(["Celsius", "Fahrenheit", "K"])).then(1.0)
    ).otherwise(None)
    priority = (
        pl.when(temperature)
        .then(pl.when(pl.col("location").is_null() | (pl.col("location") == "Body")).then(0).otherwise(1))
        .otherwise(pl.col("electrical"))
        .cast(pl.Int8)
    )
    total = measurand.is_in(list(_TOTAL_COLUMNS))
    return [column.alias("column"), factor.alias("factor"), priority.alias("priority"), total.alias("total")]


def _wide_columns(readings: pl.DataFrame) -> pl.DataFrame:
    """One value per meter column and meterValue (``_mv``), mirroring ``sampled_values_row``.

    A pick is the phase-less value (any value for per-phase and temperature columns) from
    the most trusted location, the first one on ties; a total without a pick is the sum of
    the first L1, L2 and L3 values (their maximum for the offered current).
    """
    pickable = readings.filter(~pl.col("total") | pl.col("phase").is_null())
    picks = (
        pickable.sort("_mv", "column", "priority", maintain_order=True)
        .unique(subset=["_mv", "column"], keep="first", maintain_order=True)
        .select("_mv", "column", value=pl.col("reading"))
    )
    phased = readings.filter(pl.col("total") & pl.col("phase_index").is_not_null())
    long = picks
    if phased.height:
        firsts = (
            phased.unique(subset=["_mv", "column", "phase_index"], keep="first", maintain_order=True)
            .pivot(on="phase_index", index=["_mv", "column"], values="reading")
        )
        p1, p2, p3 = (
            pl.col(str(i)) if str(i) in firsts.columns else pl.lit(None, pl.Float64) for i in (1, 2, 3)
        )
        present = p1.is_not_null() | p2.is_not_null() | p3.is_not_null()
        totals = firsts.select(
            "_mv", "column",
            value=pl.when(pl.col("column") == "current_offered_a").then(pl.max_horizontal(p1, p2, p3))
            .when(present).then((p1.fill_null(0.0) + p2.fill_null(0.0)) + p3.fill_null(0.0)),
        )
        # A pick wins over the phase total of the same column.
        long = pl.concat([picks, totals.join(picks, on=["_mv", "column"], how="anti")])
    if long.height == 0:
        return pl.DataFrame(schema={"_mv": pl.UInt32, **{c: pl.Float64 for c in METER_COLUMNS}})
    wide = long.pivot(on="column", index="_mv", values="value")
    missing = [pl.lit(None, pl.Float64).alias(c) for c in METER_COLUMNS if c not in wide.columns]
    return wide.with_columns(missing) if missing else wide


def _empty() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"_record": pl.UInt32, "charge_point_id": pl.String, "ts_utc": pl.Datetime("us", "UTC"),
                **{c: pl.Float64 for c in METER_COLUMNS}}
    )
