"""Pandera schemas (polars backend) for every table of the store contract.

Every write into the store passes through :func:`zapanalytics.ingest.door.admit`, which
validates each frame against the schema named in :data:`TABLE_SCHEMAS`. A row that fails
sends its whole source record to the quarantine table with the failed checks as reason.
"""

from __future__ import annotations

import datetime as dt

import zapanalytics.pandera_guard  # noqa: F401  # before pandera: see the module

# isort: split
import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import DateTime

UTC_TIMESTAMP = DateTime(time_zone="UTC", time_unit="us")

#: Zaptec chargers were first sold in 2016; anything earlier is a clock that never synced.
EARLIEST_PLAUSIBLE_UTC = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
#: Clocks run a little ahead; a timestamp further in the future than this is rejected.
FUTURE_TOLERANCE = dt.timedelta(days=2)

PRICE_AREAS = ("NO1", "NO2", "NO3", "NO4", "NO5")
NETWORK_TYPES = ("TN", "IT")
CHARGER_MODELS = ("Home", "Pro", "Go", "Go2")
REFERENCE_KINDS = ("han", "submeter")

#: A charger's meter cannot see more than this per phase (IEC 61851 pilot tops out at 80 A).
MAX_CHARGER_CURRENT_A = 80.0
#: A building's main meter: generous ceiling that still catches unit mistakes (mA, A·10).
MAX_INSTALLATION_CURRENT_A = 4000.0
#: Voltage ceiling for 230/400 V networks with head-room; phase-to-neutral readings only.
MAX_VOLTAGE_V = 500.0
#: Longest plausible charging session energy: 22 kW for two days.
MAX_SESSION_ENERGY_KWH = 2000.0
#: Lifetime registers wrap at most at 10^7 kWh on the meters we know.
MAX_REGISTER_KWH = 1.0e7


def _plausible_time(cls, data: pa.PolarsData) -> pl.LazyFrame:
    latest = dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE
    return data.lazyframe.select(pl.col(data.key).is_between(EARLIEST_PLAUSIBLE_UTC, latest))


def _plausible_time_check(*columns: str):
    """A class-level check that ``columns`` hold times between 2015 and just after now."""
    return pa.check(*columns, name="plausible_time")(_plausible_time)


class _Contract(pa.DataFrameModel):
    class Config:
        strict = False  # the store itself rejects unknown columns
        coerce = False


class InstallationsSchema(_Contract):
    installation_id: str = pa.Field(str_length={"min_value": 1})
    name: str = pa.Field(nullable=True)
    timezone: str = pa.Field(str_length={"min_value": 1})
    network_type: str = pa.Field(nullable=True, isin=NETWORK_TYPES)
    phase_count: pl.Int32 = pa.Field(nullable=True, isin=[1, 3])
    main_fuse_a: float = pa.Field(nullable=True, gt=0, le=MAX_INSTALLATION_CURRENT_A)
    max_current_a: float = pa.Field(nullable=True, ge=0, le=MAX_INSTALLATION_CURRENT_A)
    price_area: str = pa.Field(nullable=True, isin=PRICE_AREAS)
    source: str
    ingested_at: UTC_TIMESTAMP = pa.Field()
    # 0005_replay
    available_current_a: float = pa.Field(nullable=True, ge=0, le=MAX_INSTALLATION_CURRENT_A)
    available_current_mode: pl.Int32 = pa.Field(nullable=True, ge=0)

    @pa.dataframe_check
    def timezone_is_iana(cls, data: pa.PolarsData) -> pl.LazyFrame:
        # IANA names are Area/Location; "UTC" is the one bare name we accept.
        tz = pl.col("timezone")
        return data.lazyframe.select(
            tz.str.contains(r"^[A-Za-z_]+(/[A-Za-z0-9_+\-]+)+$") | (tz == "UTC")
        )


class ChargersSchema(_Contract):
    charger_id: str = pa.Field(str_length={"min_value": 1})
    device_id: str = pa.Field(nullable=True)
    installation_id: str = pa.Field(nullable=True)
    circuit_id: str = pa.Field(nullable=True)
    name: str = pa.Field(nullable=True)
    model: str = pa.Field(nullable=True, isin=CHARGER_MODELS)
    firmware_version: str = pa.Field(nullable=True)
    min_current_a: float = pa.Field(nullable=True, ge=0, le=MAX_CHARGER_CURRENT_A)
    max_current_a: float = pa.Field(nullable=True, ge=0, le=MAX_CHARGER_CURRENT_A)
    phase_rotation: str = pa.Field(nullable=True)
    source: str
    ingested_at: UTC_TIMESTAMP = pa.Field()


class SessionsSchema(_Contract):
    session_id: str = pa.Field(str_length={"min_value": 1})
    charger_id: str = pa.Field(nullable=True)
    installation_id: str = pa.Field(nullable=True)
    user_id: str = pa.Field(nullable=True)
    user_name: str = pa.Field(nullable=True)
    token_name: str = pa.Field(nullable=True)
    start_utc: UTC_TIMESTAMP = pa.Field()
    end_utc: UTC_TIMESTAMP = pa.Field(nullable=True)
    energy_kwh: float = pa.Field(nullable=True, ge=0, le=MAX_SESSION_ENERGY_KWH)
    meter_start_kwh: float = pa.Field(nullable=True, ge=0, le=MAX_REGISTER_KWH)
    meter_stop_kwh: float = pa.Field(nullable=True, ge=0, le=MAX_REGISTER_KWH)
    commit_metadata: pl.Int32 = pa.Field(nullable=True, ge=0, le=255)
    is_void: bool = pa.Field(nullable=True)
    is_aborted: bool = pa.Field(nullable=True)
    is_offline: bool = pa.Field(nullable=True)
    signed_session: str = pa.Field(nullable=True)
    source: str
    ingested_at: UTC_TIMESTAMP = pa.Field()
    # 0002_zaptec
    external_id: str = pa.Field(nullable=True)
    replaced_by_session_id: str = pa.Field(nullable=True)
    cloud_end_utc: UTC_TIMESTAMP = pa.Field(nullable=True)
    firmware_version: str = pa.Field(nullable=True)
    energy_details_sum_kwh: float = pa.Field(nullable=True)
    details_mismatch: bool = pa.Field(nullable=True)

    plausible_time = _plausible_time_check("start_utc", "end_utc", "cloud_end_utc")

    @pa.dataframe_check
    def end_not_before_start(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("end_utc").is_null() | (pl.col("end_utc") >= pl.col("start_utc"))
        )

    @pa.dataframe_check
    def meter_stop_not_below_start(cls, data: pa.PolarsData) -> pl.LazyFrame:
        start, stop = pl.col("meter_start_kwh"), pl.col("meter_stop_kwh")
        return data.lazyframe.select(start.is_null() | stop.is_null() | (stop >= start))


class EnergyDetailsSchema(_Contract):
    session_id: str = pa.Field(str_length={"min_value": 1})
    ts_utc: UTC_TIMESTAMP = pa.Field()
    energy_kwh: float = pa.Field(ge=0, le=MAX_SESSION_ENERGY_KWH)

    plausible_time = _plausible_time_check("ts_utc")


def _phase_current(limit: float) -> object:
    return pa.Field(nullable=True, ge=0, le=limit)


def _voltage() -> object:
    return pa.Field(nullable=True, ge=0, le=MAX_VOLTAGE_V)


class MeterValuesSchema(_Contract):
    charger_id: str = pa.Field(str_length={"min_value": 1})
    ts_utc: UTC_TIMESTAMP = pa.Field()
    source: str
    energy_register_kwh: float = pa.Field(nullable=True, ge=0, le=MAX_REGISTER_KWH)
    power_w: float = pa.Field(nullable=True, ge=0, le=3 * MAX_CHARGER_CURRENT_A * MAX_VOLTAGE_V)
    current_l1_a: float = _phase_current(MAX_CHARGER_CURRENT_A)
    current_l2_a: float = _phase_current(MAX_CHARGER_CURRENT_A)
    current_l3_a: float = _phase_current(MAX_CHARGER_CURRENT_A)
    voltage_l1_v: float = _voltage()
    voltage_l2_v: float = _voltage()
    voltage_l3_v: float = _voltage()
    current_offered_a: float = _phase_current(MAX_CHARGER_CURRENT_A)
    temperature_c: float = pa.Field(nullable=True, ge=-60, le=150)
    # 0006_ocpp
    power_offered_w: float = pa.Field(nullable=True, ge=0, le=3 * MAX_CHARGER_CURRENT_A * MAX_VOLTAGE_V)

    plausible_time = _plausible_time_check("ts_utc")


class ChargerStatesSchema(_Contract):
    charger_id: str = pa.Field(str_length={"min_value": 1})
    ts_utc: UTC_TIMESTAMP = pa.Field()
    state_id: pl.Int32 = pa.Field()
    state_name: str = pa.Field(nullable=True)
    value: str = pa.Field(nullable=True)

    plausible_time = _plausible_time_check("ts_utc")


class ReferenceReadingsSchema(_Contract):
    meter_id: str = pa.Field(str_length={"min_value": 1})
    ts_utc: UTC_TIMESTAMP = pa.Field()
    kind: str = pa.Field(isin=REFERENCE_KINDS)
    installation_id: str = pa.Field(nullable=True)
    charger_id: str = pa.Field(nullable=True)
    energy_import_kwh: float = pa.Field(nullable=True, ge=0, le=MAX_REGISTER_KWH)
    power_w: float = pa.Field(
        nullable=True, ge=0, le=MAX_INSTALLATION_CURRENT_A * MAX_VOLTAGE_V * 3
    )
    current_l1_a: float = _phase_current(MAX_INSTALLATION_CURRENT_A)
    current_l2_a: float = _phase_current(MAX_INSTALLATION_CURRENT_A)
    current_l3_a: float = _phase_current(MAX_INSTALLATION_CURRENT_A)
    voltage_l1_v: float = _voltage()
    voltage_l2_v: float = _voltage()
    voltage_l3_v: float = _voltage()
    # 0006_ocpp
    energy_resolution_kwh: float = pa.Field(nullable=True, gt=0, le=1)

    plausible_time = _plausible_time_check("ts_utc")


class PricesSchema(_Contract):
    price_area: str = pa.Field(str_length={"min_value": 2, "max_value": 8})
    start_utc: UTC_TIMESTAMP = pa.Field()
    end_utc: UTC_TIMESTAMP = pa.Field()
    # Spot prices go negative; |price| above 100 NOK/kWh has never happened and means a unit error.
    spot_nok_per_kwh: float = pa.Field(nullable=True, ge=-100, le=100)
    spot_eur_per_kwh: float = pa.Field(nullable=True, ge=-10, le=10)
    source: str

    plausible_time = _plausible_time_check("start_utc", "end_utc")

    @pa.dataframe_check
    def interval_is_quarter_or_hour(cls, data: pa.PolarsData) -> pl.LazyFrame:
        minutes = (pl.col("end_utc") - pl.col("start_utc")).dt.total_minutes()
        return data.lazyframe.select(minutes.is_in([15, 60]))


TABLE_SCHEMAS: dict[str, type[_Contract]] = {
    "installations": InstallationsSchema,
    "chargers": ChargersSchema,
    "sessions": SessionsSchema,
    "energy_details": EnergyDetailsSchema,
    "meter_values": MeterValuesSchema,
    "charger_states": ChargerStatesSchema,
    "reference_readings": ReferenceReadingsSchema,
    "prices": PricesSchema,
}


def polars_schema(table: str) -> dict[str, pl.DataType]:
    """Return the polars dtypes the store expects for ``table``, column by column."""
    model = TABLE_SCHEMAS[table]
    return {name: column.dtype.type for name, column in model.to_schema().columns.items()}
