"""Rebuild what an installation did from the store, as event-based step functions.

Sources, per charger (Zaptec state observations, ``charger_states``):

=====  ===================  ==========================================================
id     name                 used as
=====  ===================  ==========================================================
507-9  CurrentPhase1..3     current on the charger's terminals L1..L3 [A]
519    SetPhases            supply lines the allocation uses (TN 1/2/3 = L1/L2/L3,
                            4 = three-phase; IT 8/6/5 = the pair starting at L1/L2/L3)
708    ChargeCurrentSet     current allocated by the load balancer [A]
710    ChargerOperationMode 1 disconnected, 2 requesting, 3 charging, 5 finished
=====  ===================  ==========================================================

``meter_values`` (OCPP) add ``current_offered_a`` (the pilot) and, for chargers without
507-509, the per-phase currents. ``reference_readings`` of kind ``han`` give the per-line
current of the whole installation at the AMS meter. The installation row gives the main
fuse, the available current (``max_current_a``) and the network type.

A value holds from its observation until the next observation of the same quantity. A
charger's terminal currents are turned into supply-line current phasors with its phase
rotation (:func:`zapanalytics.replay.wiring.charger_line_phasors`); the installation's per-line load is the sum over
chargers: plain sums on TN, phasor sums on IT (a single-phase charge on IT sits between two
lines, see :mod:`firmware_ref.grid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

import duckdb
import numpy as np
import polars as pl

from zapanalytics.replay.intervals import UTC_DTYPE, combine_steps, hold_steps, sum_over_keys
from zapanalytics.replay.wiring import (
    ACTIVE_CURRENT_A,
    allocated_terminals,
    charger_line_phasors,
    rotation_lines,
    with_inferred_rotations,
)
from zapanalytics.store import queries

#: Zaptec state ids read by the replay.
STATE_CURRENT_PHASES = (507, 508, 509)
STATE_SET_PHASES = 519
STATE_CHARGE_CURRENT_SET = 708
STATE_OPERATION_MODE = 710

#: ``ChargerOperationMode`` values.
MODE_DISCONNECTED = 1
MODE_REQUESTING = 2
MODE_CHARGING = 3
MODE_FINISHED = 5

#: Nominal line-to-neutral voltage [V] for power and energy estimates.
NOMINAL_VOLTAGE_V = 230.0

_STATE_COLUMNS = {
    507: "current_t1_a",
    508: "current_t2_a",
    509: "current_t3_a",
    519: "set_phases",
    708: "allocated_current_a",
    710: "operation_mode",
}
_TERMINALS = ("current_t1_a", "current_t2_a", "current_t3_a")
_LINES = ("l1", "l2", "l3")


@dataclass(frozen=True)
class InstallationInfo:
    """What the replay needs to know about an installation.

    Parameters
    ----------
    installation_id : str
        Identifier.
    network_type : str
        ``"TN"`` or ``"IT"`` (``"TT"`` behaves as TN); unknown is taken as TN.
    main_fuse_a : float or None
        Main fuse per line [A].
    available_current_a : float or None
        ``AvailableCurrent`` per line for the chargers [A]; defaults to the fuse.
    timezone : str
        IANA zone, for display and hourly binning.
    apm : bool
        The household shares the main fuse and the load balancer follows the HAN-measured
        household load (Zaptec Sense / APM).
    name : str, optional
        Display name.
    """

    installation_id: str
    network_type: str = "TN"
    main_fuse_a: float | None = None
    available_current_a: float | None = None
    timezone: str = "Europe/Oslo"
    apm: bool = False
    name: str | None = None

    @property
    def chargers_limit_a(self) -> float | None:
        """Static per-line limit for the chargers: available current, else the fuse [A]."""
        if self.available_current_a is not None:
            return float(self.available_current_a)
        return None if self.main_fuse_a is None else float(self.main_fuse_a)


@dataclass
class Recording:
    """An installation's recorded behaviour as step frames.

    Attributes
    ----------
    installation : InstallationInfo
        Site facts.
    chargers : polars.DataFrame
        ``charger_id, name, device_id, phase_rotation, min_current_a, max_current_a,
        circuit_id, phase_rotation_source``.
    sessions : polars.DataFrame
        Non-void sessions: ``session_id, charger_id, user_id, user_name, start_utc`` (the
        authorisation), ``end_utc`` (unplugged), ``energy_kwh``, and derived from the steps
        ``first_current_utc, full_utc, peak_current_a, peak_allocated_a,
        max_active_terminals``.
    charger_steps : polars.DataFrame
        Per charger and interval: ``operation_mode, allocated_current_a,
        offered_current_a, set_phases, current_t{1,2,3}_a`` (terminals),
        ``drawn_current_a`` (largest terminal), ``active_terminals``,
        ``current_l{1,2,3}_a`` (on supply lines), ``session_id``.
    line_steps : polars.DataFrame
        Per interval: ``chargers_l{n}_a`` (measured charger load per line, phasor
        magnitude on IT), ``allocated_l{n}_a`` (load the allocations imply),
        ``han_l{n}_a`` (AMS meter, held; null without HAN), ``household_l{n}_a``.
    han : polars.DataFrame
        Raw HAN samples ``ts_utc, current_l{1,2,3}_a`` (may be empty).
    start_utc, end_utc : datetime
        Span of the recording.
    cache : dict
        Frames derived from the recording, computed once (session demands, power).
    """

    installation: InstallationInfo
    chargers: pl.DataFrame
    sessions: pl.DataFrame
    charger_steps: pl.DataFrame
    line_steps: pl.DataFrame
    han: pl.DataFrame
    start_utc: datetime
    end_utc: datetime
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def rotations(self) -> dict[str, str]:
        """Phase rotation per charger id."""
        return dict(zip(self.chargers["charger_id"], self.chargers["phase_rotation"], strict=True))


# --------------------------------------------------------------------------------------------
# Building the recording
# --------------------------------------------------------------------------------------------


def _state_points(states: pl.DataFrame) -> pl.DataFrame:
    """Charger state observations → one row per (charger, time) with a column per quantity."""
    wanted = list(_STATE_COLUMNS)
    rows = states.filter(pl.col("state_id").is_in(wanted)).with_columns(
        pl.col("value").cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias("_v")
    )
    return rows.group_by("charger_id", "ts_utc").agg(
        [
            pl.col("_v").filter(pl.col("state_id") == sid).last().alias(name)
            for sid, name in _STATE_COLUMNS.items()
        ]
    )


def _meter_points(meter_values: pl.DataFrame | None) -> pl.DataFrame | None:
    if meter_values is None or meter_values.is_empty():
        return None
    return (
        meter_values.select(
            "charger_id",
            "ts_utc",
            pl.col("current_offered_a").cast(pl.Float64).alias("offered_current_a"),
            *[pl.col(f"current_l{k}_a").cast(pl.Float64).alias(f"meter_t{k}_a") for k in (1, 2, 3)],
        )
        .group_by("charger_id", "ts_utc")
        .agg(pl.all().drop_nulls().last())
    )


def _phasor_columns(
    frame: pl.DataFrame,
    terminal_columns: tuple[str, str, str],
    rotation_lines: np.ndarray,
    network_type: str,
    prefix: str,
) -> dict[str, np.ndarray]:
    currents = (
        frame.select([pl.col(c).fill_null(0.0) for c in terminal_columns]).to_numpy().astype(float)
    )
    phasors = charger_line_phasors(currents, rotation_lines, network_type)
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(_LINES):
        out[f"{prefix}_{name}_re"] = phasors[:, k].real
        out[f"{prefix}_{name}_im"] = phasors[:, k].imag
    return out


def build_recording(
    installation: InstallationInfo,
    chargers: pl.DataFrame,
    sessions: pl.DataFrame,
    states: pl.DataFrame,
    meter_values: pl.DataFrame | None = None,
    han: pl.DataFrame | None = None,
    *,
    start_utc: datetime | None = None,
    end_utc: datetime | None = None,
) -> Recording:
    """Build a :class:`Recording` from store-shaped frames (pure; no database).

    Parameters
    ----------
    installation : InstallationInfo
        Site facts.
    chargers : polars.DataFrame
        ``charger_id`` and optionally ``name, phase_rotation, min_current_a,
        max_current_a, circuit_id``.
    sessions : polars.DataFrame
        ``session_id, charger_id, start_utc, end_utc`` and optionally ``user_id,
        user_name, energy_kwh, is_void``.
    states : polars.DataFrame
        ``charger_states`` rows: ``charger_id, ts_utc, state_id, value`` (string).
    meter_values : polars.DataFrame, optional
        ``meter_values`` rows (``current_offered_a``, ``current_l{1,2,3}_a``).
    han : polars.DataFrame, optional
        HAN samples ``ts_utc, current_l{1,2,3}_a`` of the installation's AMS meter.
    start_utc, end_utc : datetime, optional
        Span; defaults to the data's.

    Returns
    -------
    Recording
    """
    network = (installation.network_type or "TN").upper()
    chargers = _normalise_chargers(chargers, states, meter_values)
    sessions = _normalise_sessions(sessions, chargers)
    han = _normalise_han(han)

    points = _state_points(states)
    zaptec_current_chargers = set(
        states.filter(pl.col("state_id").is_in(STATE_CURRENT_PHASES))["charger_id"].unique()
    )
    meter = _meter_points(meter_values)
    if meter is not None:
        points = pl.concat([points, meter], how="diagonal_relaxed")
    for name in ("offered_current_a", "meter_t1_a", "meter_t2_a", "meter_t3_a"):
        if name not in points.columns:
            points = points.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    # Session boundaries split the steps so every interval belongs to at most one session.
    bounds = pl.concat(
        [
            sessions.select("charger_id", pl.col("start_utc").alias("ts_utc")),
            sessions.filter(pl.col("end_utc").is_not_null()).select(
                "charger_id", pl.col("end_utc").alias("ts_utc")
            ),
        ]
    )
    points = pl.concat([points, bounds], how="diagonal_relaxed")
    value_columns = [c for c in points.columns if c not in ("charger_id", "ts_utc")]
    points = points.group_by("charger_id", "ts_utc").agg(
        [pl.col(c).drop_nulls().last() for c in value_columns]
    )

    span_start, span_end = _span(points, sessions, han, start_utc, end_utc)
    steps = hold_steps(points, by=["charger_id"], end_utc=span_end)
    steps = steps.filter(
        (pl.col("end_utc") > pl.lit(span_start, dtype=UTC_DTYPE))
        & (pl.col("start_utc") < pl.lit(span_end, dtype=UTC_DTYPE))
    )
    use_meter = ~pl.col("charger_id").is_in(list(zaptec_current_chargers))
    steps = steps.with_columns(
        [
            pl.when(use_meter)
            .then(pl.col(f"meter_t{k}_a"))
            .otherwise(pl.col(f"current_t{k}_a"))
            .fill_null(0.0)
            .alias(f"current_t{k}_a")
            for k in (1, 2, 3)
        ]
    ).drop("meter_t1_a", "meter_t2_a", "meter_t3_a")
    steps = steps.with_columns(
        pl.max_horizontal(*_TERMINALS).alias("drawn_current_a"),
        pl.sum_horizontal([(pl.col(c) > ACTIVE_CURRENT_A).cast(pl.Int8) for c in _TERMINALS])
        .cast(pl.Int8)
        .alias("active_terminals"),
        pl.coalesce("offered_current_a", "allocated_current_a").alias("offered_current_a"),
        pl.col("operation_mode").cast(pl.Int8),
        pl.col("set_phases").cast(pl.Int8),
    )
    steps = _attach_sessions(steps, sessions)
    chargers = with_inferred_rotations(chargers, steps, network)
    steps = steps.join(
        chargers.select("charger_id", "phase_rotation"), on="charger_id", how="left"
    ).with_columns(pl.col("phase_rotation").fill_null("RST"))
    wired = rotation_lines(steps["phase_rotation"])

    measured = _phasor_columns(steps, _TERMINALS, wired, network, "m")
    alloc_terminals = allocated_terminals(steps, wired, network)
    allocated = _phasor_columns(alloc_terminals, ("a_t1", "a_t2", "a_t3"), wired, network, "a")
    steps = steps.with_columns([pl.Series(k, v) for k, v in (measured | allocated).items()])
    steps = steps.with_columns(
        [
            (pl.col(f"m_{ln}_re") ** 2 + pl.col(f"m_{ln}_im") ** 2).sqrt().alias(f"current_{ln}_a")
            for ln in _LINES
        ]
    )
    phasor_cols = list(measured) + list(allocated)
    totals = sum_over_keys(
        steps, phasor_cols, by=["charger_id"], start_utc=span_start, end_utc=span_end
    )
    totals = totals.with_columns(
        [
            (pl.col(f"{p}_{ln}_re") ** 2 + pl.col(f"{p}_{ln}_im") ** 2)
            .sqrt()
            .round(6)
            .alias(f"{name}_{ln}_a")
            for p, name in (("m", "chargers"), ("a", "allocated"))
            for ln in _LINES
        ]
    ).drop(phasor_cols)
    line_steps = _with_han(totals, han, span_end)
    charger_steps = steps.drop(phasor_cols).drop("phase_rotation")
    sessions = _session_stats(sessions, charger_steps)
    return Recording(
        installation=installation,
        chargers=chargers,
        sessions=sessions,
        charger_steps=charger_steps,
        line_steps=line_steps,
        han=han,
        start_utc=span_start,
        end_utc=span_end,
    )


def _normalise_chargers(
    chargers: pl.DataFrame, states: pl.DataFrame, meter_values: pl.DataFrame | None
) -> pl.DataFrame:
    seen = [states.select("charger_id")]
    if meter_values is not None and not meter_values.is_empty():
        seen.append(meter_values.select("charger_id"))
    ids = pl.concat([chargers.select("charger_id"), *seen]).unique().sort("charger_id")
    frame = ids.join(chargers, on="charger_id", how="left")
    defaults = {
        "name": pl.lit(None, dtype=pl.String),
        "device_id": pl.lit(None, dtype=pl.String),
        "phase_rotation": pl.lit(None, dtype=pl.String),
        "min_current_a": pl.lit(6.0),
        "max_current_a": pl.lit(32.0),
        "circuit_id": pl.lit(None, dtype=pl.String),
    }
    for name, default in defaults.items():
        if name not in frame.columns:
            frame = frame.with_columns(default.alias(name))
        else:
            frame = frame.with_columns(pl.col(name).fill_null(default))
    return frame.select("charger_id", *defaults).with_columns(
        pl.col("min_current_a").cast(pl.Float64), pl.col("max_current_a").cast(pl.Float64)
    )


def _normalise_sessions(sessions: pl.DataFrame, chargers: pl.DataFrame) -> pl.DataFrame:
    frame = sessions
    if "is_void" in frame.columns:
        frame = frame.filter(~pl.col("is_void").fill_null(False))
    for name, dtype in (
        ("user_id", pl.String),
        ("user_name", pl.String),
        ("energy_kwh", pl.Float64),
    ):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=dtype).alias(name))
    frame = frame.filter(pl.col("charger_id").is_in(chargers["charger_id"].to_list()))
    return frame.select(
        "session_id", "charger_id", "user_id", "user_name", "start_utc", "end_utc", "energy_kwh"
    ).sort("charger_id", "start_utc")


def _normalise_han(han: pl.DataFrame | None) -> pl.DataFrame:
    schema = {
        "ts_utc": UTC_DTYPE,
        "current_l1_a": pl.Float64,
        "current_l2_a": pl.Float64,
        "current_l3_a": pl.Float64,
    }
    if han is None or han.is_empty():
        return pl.DataFrame(schema=schema)
    return (
        han.select([pl.col(c).cast(t) for c, t in schema.items()])
        .drop_nulls()
        .unique("ts_utc", keep="last")
        .sort("ts_utc")
    )


def _span(
    points: pl.DataFrame,
    sessions: pl.DataFrame,
    han: pl.DataFrame,
    start_utc: datetime | None,
    end_utc: datetime | None,
) -> tuple[datetime, datetime]:
    firsts = [points["ts_utc"].min(), sessions["start_utc"].min(), han["ts_utc"].min()]
    lasts = [
        points["ts_utc"].max(),
        sessions["end_utc"].max(),
        sessions["start_utc"].max(),
        han["ts_utc"].max(),
    ]
    first = start_utc or min((t for t in firsts if t is not None), default=None)
    last = end_utc or max((t for t in lasts if t is not None), default=None)
    if first is None or last is None:
        raise ValueError("the recording holds no charger states, sessions or HAN readings")
    if last <= first:
        raise ValueError("the recording spans no time")
    return first, last


def _attach_sessions(steps: pl.DataFrame, sessions: pl.DataFrame) -> pl.DataFrame:
    keyed = sessions.select(
        "charger_id",
        pl.col("start_utc").alias("_s_start"),
        "session_id",
        pl.col("end_utc").alias("_s_end"),
    ).sort("charger_id", "_s_start")
    joined = steps.sort("charger_id", "start_utc").join_asof(
        keyed,
        left_on="start_utc",
        right_on="_s_start",
        by="charger_id",
        strategy="backward",
        check_sortedness=False,
    )
    inside = pl.col("_s_end").is_null() | (pl.col("start_utc") < pl.col("_s_end"))
    return joined.with_columns(pl.when(inside).then(pl.col("session_id")).alias("session_id")).drop(
        "_s_start", "_s_end"
    )


def _session_stats(sessions: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    drawing = pl.col("drawn_current_a") > ACTIVE_CURRENT_A
    stats = (
        steps.filter(pl.col("session_id").is_not_null())
        .group_by("session_id")
        .agg(
            pl.col("start_utc").filter(drawing).min().alias("first_current_utc"),
            pl.col("start_utc")
            .filter(pl.col("operation_mode") == MODE_FINISHED)
            .min()
            .alias("full_utc"),
            pl.col("drawn_current_a").max().alias("peak_current_a"),
            pl.col("allocated_current_a").max().alias("peak_allocated_a"),
            pl.col("active_terminals").max().cast(pl.Int8).alias("max_active_terminals"),
        )
    )
    return sessions.join(stats, on="session_id", how="left")


def _with_han(totals: pl.DataFrame, han: pl.DataFrame, span_end: datetime) -> pl.DataFrame:
    han_cols = [f"han_{ln}_a" for ln in _LINES]
    if han.is_empty():
        out = totals.with_columns([pl.lit(None, dtype=pl.Float64).alias(c) for c in han_cols])
    else:
        held = hold_steps(
            han.rename({f"current_{ln}_a": f"han_{ln}_a" for ln in _LINES}), end_utc=span_end
        )
        out = combine_steps(totals, held).filter(pl.col("chargers_l1_a").is_not_null())
    return out.with_columns(
        [
            (pl.col(f"han_{ln}_a") - pl.col(f"chargers_{ln}_a"))
            .clip(lower_bound=0.0)
            .alias(f"household_{ln}_a")
            for ln in _LINES
        ]
    )


# --------------------------------------------------------------------------------------------
# Reading the store
# --------------------------------------------------------------------------------------------


def load_recording(
    con: duckdb.DuckDBPyConnection,
    installation_id: str | None = None,
    *,
    start_utc: datetime | None = None,
    end_utc: datetime | None = None,
    apm: bool | None = None,
    available_current_a: float | None = None,
) -> Recording:
    """Read an installation's recording from the store.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store (read-only is enough).
    installation_id : str, optional
        Which installation; required when the store holds more than one.
    start_utc, end_utc : datetime, optional
        Restrict the span (tz-aware).
    apm : bool, optional
        Whether the household shares the main fuse under APM; default: the installation's
        ``available_current_mode`` is non-zero (False when not reported).
    available_current_a : float, optional
        The installation's available current per line [A], when the store does not hold
        it (``installations.available_current_a``; without either, ``max_current_a``).

    Returns
    -------
    Recording
    """
    installation = _installation(con, installation_id, apm)
    if available_current_a is not None:
        installation = replace(installation, available_current_a=float(available_current_a))
    inst = installation.installation_id
    charger_ids = queries.frame(
        con,
        "SELECT charger_id FROM chargers WHERE installation_id = ? OR installation_id IS NULL",
        [inst],
    )["charger_id"].to_list()
    if not charger_ids:
        charger_ids = queries.frame(
            con,
            "SELECT DISTINCT charger_id FROM charger_states UNION "
            "SELECT DISTINCT charger_id FROM meter_values",
        )["charger_id"].to_list()
    ids = pl.DataFrame({"charger_id": pl.Series(charger_ids, dtype=pl.String)})
    # Both bounds are optional: "? IS NULL OR ..." keeps one statement for every case.
    bounds = [start_utc, start_utc, end_utc, end_utc]
    con.register("_replay_chargers", ids.to_arrow())
    try:
        chargers = queries.frame(
            con,
            "SELECT c.charger_id, c.name, c.device_id, c.phase_rotation, c.min_current_a,"
            " c.max_current_a, c.circuit_id FROM chargers c JOIN _replay_chargers USING (charger_id)",
        )
        sessions = queries.frame(
            con,
            "SELECT session_id, charger_id, user_id, user_name, start_utc, end_utc,"
            " energy_kwh, is_void FROM canonical_sessions JOIN _replay_chargers USING (charger_id)"
            " WHERE (?::TIMESTAMPTZ IS NULL OR end_utc IS NULL OR end_utc > ?)"
            " AND (?::TIMESTAMPTZ IS NULL OR start_utc < ?)",
            bounds,
        )
        states = queries.frame(
            con,
            "SELECT charger_id, ts_utc, state_id, value FROM charger_states"
            " JOIN _replay_chargers USING (charger_id)"
            " WHERE state_id IN (507, 508, 509, 519, 708, 710)"
            " AND (?::TIMESTAMPTZ IS NULL OR ts_utc >= ?) AND (?::TIMESTAMPTZ IS NULL OR ts_utc < ?)",
            bounds,
        )
        meter_values = queries.frame(
            con,
            "SELECT charger_id, ts_utc, current_offered_a, current_l1_a, current_l2_a,"
            " current_l3_a FROM meter_values JOIN _replay_chargers USING (charger_id)"
            " WHERE (current_offered_a IS NOT NULL OR current_l1_a IS NOT NULL)"
            " AND (?::TIMESTAMPTZ IS NULL OR ts_utc >= ?) AND (?::TIMESTAMPTZ IS NULL OR ts_utc < ?)",
            bounds,
        )
        han = queries.frame(
            con,
            "SELECT ts_utc, current_l1_a, current_l2_a, current_l3_a FROM reference_readings"
            " WHERE lower(kind) LIKE 'han%' AND (installation_id = ? OR installation_id IS NULL)"
            " AND current_l1_a IS NOT NULL"
            " AND (?::TIMESTAMPTZ IS NULL OR ts_utc >= ?) AND (?::TIMESTAMPTZ IS NULL OR ts_utc < ?)",
            [inst, *bounds],
        )
    finally:
        con.unregister("_replay_chargers")
    return build_recording(
        installation,
        chargers,
        sessions,
        states,
        meter_values if not meter_values.is_empty() else None,
        han if not han.is_empty() else None,
        start_utc=start_utc,
        end_utc=end_utc,
    )


def _installation(
    con: duckdb.DuckDBPyConnection, installation_id: str | None, apm: bool | None
) -> InstallationInfo:
    rows = queries.frame(con, "SELECT * FROM installations ORDER BY installation_id")
    if installation_id is not None:
        rows = rows.filter(pl.col("installation_id") == installation_id)
        if rows.is_empty():
            raise ValueError(f"no installation {installation_id!r} in the store")
    elif rows.height > 1:
        listed = ", ".join(rows["installation_id"].to_list()[:5])
        raise ValueError(f"the store holds {rows.height} installations; choose one of {listed}")
    elif rows.is_empty():
        raise ValueError("the store holds no installation")
    return installation_info(rows.row(0, named=True), apm)


def installation_info(row: dict, apm: bool | None = None) -> InstallationInfo:
    """:class:`InstallationInfo` of an ``installations`` row (pure; the dataset engines use it)."""
    network = (row["network_type"] or "TN").upper()
    # AvailableCurrent (migration 0005) when reported; MaxCurrent otherwise.
    available = row.get("available_current_a")
    if available is None:
        available = row["max_current_a"]
    mode = row.get("available_current_mode")
    return InstallationInfo(
        installation_id=row["installation_id"],
        network_type="TN" if network == "TT" else network,
        main_fuse_a=row["main_fuse_a"],
        available_current_a=available,
        timezone=row["timezone"] or "Europe/Oslo",
        apm=bool(apm) if apm is not None else bool(mode),
        name=row["name"],
    )
