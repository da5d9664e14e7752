"""The B1 benchmark's OCPP spool: MeterValues lines as ``zapanalytics ocpp serve`` spools them.

500 charge points every 120 s with the Zaptec measurands (register [kWh], power and offered
power [W], three phase currents [A]), written with the spool's own writer in chunks, with the
``meter_values`` rows they must give written to Parquet beside them (the agreement check and
the Parquet limit read it).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from zapanalytics.ingest.spool import SegmentWriter, list_segments

CHARGE_POINTS = 500
INTERVAL_S = 120
EPOCH_S = 1_735_689_600  # 2025-01-01T00:00:00Z
METER_COLUMNS = (
    "charger_id", "ts_utc", "source", "energy_register_kwh", "power_w", "current_l1_a",
    "current_l2_a", "current_l3_a", "voltage_l1_v", "voltage_l2_v", "voltage_l3_v",
    "current_offered_a", "temperature_c", "power_offered_w",
)  # fmt: skip


def _concat(template: str, *values: pl.Expr) -> pl.Expr:
    """``template`` with each ``<>`` replaced by the next expression (as text)."""
    pieces = template.split("<>")
    assert len(pieces) == len(values) + 1
    parts: list[pl.Expr] = []
    for piece, value in zip(pieces, values, strict=False):
        parts += [pl.lit(piece), value.cast(pl.String)]
    return pl.concat_str([*parts, pl.lit(pieces[-1])])


# One spool record: the frame as the charge point sent it (escaped inside "message") and the
# central system's CALLRESULT. Measurands as Zaptec sends them (firmware_ref's OCPP logs).
_SPOOL_LINE = (
    '{"ts":"<>","charge_point_id":"<>","direction":"in","message":"[2,\\"<>\\",\\"MeterValues\\",'
    '{\\"connectorId\\":1,\\"transactionId\\":<>,\\"meterValue\\":[{\\"timestamp\\":\\"<>\\",'
    '\\"sampledValue\\":['
    '{\\"value\\":\\"<>\\",\\"measurand\\":\\"Energy.Active.Import.Register\\",\\"unit\\":\\"kWh\\"},'
    '{\\"value\\":\\"<>\\",\\"measurand\\":\\"Power.Active.Import\\",\\"unit\\":\\"W\\"},'
    '{\\"value\\":\\"<>\\",\\"measurand\\":\\"Power.Offered\\",\\"unit\\":\\"W\\"},'
    '{\\"value\\":\\"<>\\",\\"measurand\\":\\"Current.Import\\",\\"phase\\":\\"L1-N\\",\\"unit\\":\\"A\\"},'
    '{\\"value\\":\\"<>\\",\\"measurand\\":\\"Current.Import\\",\\"phase\\":\\"L2-N\\",\\"unit\\":\\"A\\"},'
    '{\\"value\\":\\"<>\\",\\"measurand\\":\\"Current.Import\\",\\"phase\\":\\"L3-N\\",\\"unit\\":\\"A\\"}'
    ']}]}]","reply":"[3,\\"<>\\",{}]"}'
)


def ocpp_chunk(first: int, count: int) -> tuple[pl.Series, pl.DataFrame]:
    """Spool lines ``first … first + count - 1`` and the ``meter_values`` rows they hold.

    Line ``i`` is reading ``i // 500`` of charge point ``i % 500``: every 120 s, charging
    for an hour (≈ 7.4 kW on three phases), then idle for half an hour.
    """
    index = pl.int_range(first, first + count, eager=True, dtype=pl.Int64).alias("i")
    cp = pl.col("i") % CHARGE_POINTS
    k = pl.col("i") // CHARGE_POINTS
    cycle, in_cycle = k // 90, k % 90
    charging = in_cycle < 60
    steps_charged = cycle * 60 + pl.min_horizontal(in_cycle, pl.lit(60))
    amps = pl.when(charging).then(10.6 + (k % 7) * 0.01).otherwise(0.0).round(2)
    frame = pl.DataFrame(index).with_columns(
        charge_point_id=pl.lit("ZPR") + cp.cast(pl.String).str.zfill(6),
        seconds=EPOCH_S + k * INTERVAL_S + cp % INTERVAL_S,
        register_text=(1000.0 + cp * 37.5 + steps_charged * 0.245).round(3).cast(pl.String),
        power_text=(amps * 3 * 230.0).round(1).cast(pl.String),
        offered_text=pl.lit("11040.0"),
        l1_text=amps.cast(pl.String),
        l2_text=(amps - pl.when(charging).then(0.01).otherwise(0.0)).round(2).cast(pl.String),
        l3_text=(amps + pl.when(charging).then(0.01).otherwise(0.0)).round(2).cast(pl.String),
        uid=k.cast(pl.String),
        transaction=(cycle + 1),
    )
    stamp = pl.from_epoch("seconds", time_unit="s")
    frame = frame.with_columns(
        sent=stamp.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        received=(stamp.dt.cast_time_unit("us") + pl.duration(milliseconds=350)).dt.strftime(
            "%Y-%m-%dT%H:%M:%S%.6f+00:00"
        ),
    )
    lines = frame.select(
        line=_concat(
            _SPOOL_LINE,
            pl.col("received"), pl.col("charge_point_id"), pl.col("uid"), pl.col("transaction"),
            pl.col("sent"), pl.col("register_text"), pl.col("power_text"), pl.col("offered_text"),
            pl.col("l1_text"), pl.col("l2_text"), pl.col("l3_text"), pl.col("uid"),
        )  # fmt: skip
    )["line"]
    expected = frame.select(
        charger_id="charge_point_id",
        ts_utc=pl.from_epoch("seconds", time_unit="s").dt.cast_time_unit("us").dt.replace_time_zone("UTC"),
        source=pl.lit("ocpp"),
        energy_register_kwh=pl.col("register_text").cast(pl.Float64),
        power_w=pl.col("power_text").cast(pl.Float64),
        current_l1_a=pl.col("l1_text").cast(pl.Float64),
        current_l2_a=pl.col("l2_text").cast(pl.Float64),
        current_l3_a=pl.col("l3_text").cast(pl.Float64),
        power_offered_w=pl.col("offered_text").cast(pl.Float64),
    )  # fmt: skip
    absent = [pl.lit(None, pl.Float64).alias(c) for c in METER_COLUMNS if c not in expected.columns]
    return lines, expected.with_columns(absent).select(METER_COLUMNS)


def write_ocpp_spool(spool_dir: Path, rows: int, expected_parquet: Path) -> int:
    """Write ``rows`` MeterValues lines to a new spool and their rows to Parquet; bytes."""
    expected = []
    with SegmentWriter(spool_dir) as writer:
        for first in range(0, rows, 100_000):
            lines, rows_chunk = ocpp_chunk(first, min(100_000, rows - first))
            writer.write_batch([(line + "\n").encode("ascii") for line in lines])
            expected.append(rows_chunk)
    pl.concat(expected).write_parquet(expected_parquet)
    return sum(s.path.stat().st_size for s in list_segments(spool_dir))


