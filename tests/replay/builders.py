"""Small hand-built recordings for unit tests: states as (charger, minute, state, value)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from zapanalytics.replay.recording import InstallationInfo, Recording, build_recording

T0 = datetime(2025, 3, 30, 6, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def states(rows: list[tuple[str, float, int, float | str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "charger_id": [r[0] for r in rows],
            "ts_utc": pl.Series([at(r[1]) for r in rows], dtype=pl.Datetime("us", "UTC")),
            "state_id": pl.Series([r[2] for r in rows], dtype=pl.Int32),
            "value": [str(r[3]) for r in rows],
        }
    )


def drawing(charger: str, minute: float, t1: float, t2: float = 0.0, t3: float = 0.0):
    """507-509 observations at ``minute``."""
    return [(charger, minute, 507, t1), (charger, minute, 508, t2), (charger, minute, 509, t3)]


def sessions(rows: list[tuple[str, str, float, float]], energy_kwh: float = 5.0) -> pl.DataFrame:
    """(session_id, charger_id, start minute, end minute)."""
    return pl.DataFrame(
        {
            "session_id": [r[0] for r in rows],
            "charger_id": [r[1] for r in rows],
            "user_id": [f"user-{r[0]}" for r in rows],
            "start_utc": pl.Series([at(r[2]) for r in rows], dtype=pl.Datetime("us", "UTC")),
            "end_utc": pl.Series([at(r[3]) for r in rows], dtype=pl.Datetime("us", "UTC")),
            "energy_kwh": [energy_kwh] * len(rows),
        }
    )


def chargers(rotations: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame({"charger_id": list(rotations), "phase_rotation": list(rotations.values())})


def recording(
    state_rows,
    session_rows,
    rotations: dict[str, str],
    *,
    network: str = "TN",
    available_a: float = 32.0,
    fuse_a: float = 63.0,
    apm: bool = False,
    han: pl.DataFrame | None = None,
    end_minute: float = 120.0,
) -> Recording:
    return build_recording(
        InstallationInfo("inst", network, fuse_a, available_a, "Europe/Oslo", apm),
        chargers(rotations),
        sessions(session_rows),
        states(state_rows),
        None,
        han,
        start_utc=at(0),
        end_utc=at(end_minute),
    )
