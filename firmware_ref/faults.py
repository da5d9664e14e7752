"""Faults the simulator can inject, and the ground-truth record of each.

A fault is a small frozen dataclass in :attr:`SimulationConfig.faults`; the simulator
turns every one into an :class:`InjectedFault` that says exactly what happened, to
which charger, when and by how much. Audits and replays are tested against that
record.

========================  =======================================================
fault                     effect
========================  =======================================================
:class:`MeterGainError`   the charger's eMeter reads ``gain_error`` high (e.g.
                          ``+0.018`` = +1.8 %) for the whole simulation
:class:`IgnoreAllocation` the charger keeps signalling its previous, higher
                          current for ``duration_s`` after the load balancer
                          lowered it; starts at the first lowering by at least
                          ``min_excess_a`` after ``not_before`` while a car
                          charges and stays for the whole window
:class:`TamperedOcmf`     one byte of a signed session record's payload is
                          changed after signing (the register at the end reading)
:class:`RegisterReset`    the lifetime register jumps to ``register_wh`` (a meter
                          swap or firmware fault), by default while idle
:class:`ClockDrift`       the charger clock runs ``drift_ppm`` fast and/or jumps
                          by ``offset_s``; every time the charger reports
                          (OCMF ``TM``, session start/end, state observations,
                          OCPP payload timestamps) carries the error
:class:`LostOcppMessages` every OCPP message of the charger within the window is
                          lost (neither logged nor answered)
========================  =======================================================

Charger indices are 0-based positions in the installation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ClockDrift",
    "Fault",
    "IgnoreAllocation",
    "InjectedFault",
    "LostOcppMessages",
    "MeterGainError",
    "RegisterReset",
    "TamperedOcmf",
]


def _check_aware(value: datetime | None, name: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a tz-aware datetime")


@dataclass(frozen=True)
class MeterGainError:
    """A charger meter with a gain error.

    Parameters
    ----------
    charger_index : int
        Charger position (0-based).
    gain_error : float
        Relative error [fraction]: ``+0.018`` registers 1.8 % more than delivered.
    """

    charger_index: int
    gain_error: float


@dataclass(frozen=True)
class IgnoreAllocation:
    """A charger that does not lower its pilot when the load balancer tells it to.

    Parameters
    ----------
    charger_index : int
        Charger position (0-based).
    duration_s : float
        How long it ignores the allocation [s] (20 min by default).
    not_before : datetime, optional
        Earliest start (tz-aware); default: the start of the second simulated day.
    draw_a : float, optional
        Current it signals during the fault [A]; default: the current it signalled
        just before the load balancer lowered it. Capped by the car's maximum.
    min_excess_a : float
        The fault starts only at a lowering that leaves the charger at least this much
        above its allocation on some line [A], and only when the car stays and keeps
        drawing for the whole window.
    """

    charger_index: int
    duration_s: float = 1200.0
    not_before: datetime | None = None
    draw_a: float | None = None
    min_excess_a: float = 4.0

    def __post_init__(self) -> None:
        _check_aware(self.not_before, "not_before")
        if self.duration_s <= 0:
            raise ValueError("duration_s must be positive")


@dataclass(frozen=True)
class TamperedOcmf:
    """A signed session record changed after signing.

    Parameters
    ----------
    charger_index : int
        Charger position (0-based).
    session_number : int
        Which of the charger's sessions (0-based, by start time) is tampered; counted
        from the end when negative. Sessions that delivered no energy are skipped.
    """

    charger_index: int
    session_number: int = 0


@dataclass(frozen=True)
class RegisterReset:
    """The lifetime register jumps to a new value.

    Parameters
    ----------
    charger_index : int
        Charger position (0-based).
    at : datetime, optional
        When (tz-aware). Default: the first moment after the middle of the simulation
        when no car is connected to the charger.
    register_wh : int
        Register value right after the reset [Wh].
    """

    charger_index: int
    at: datetime | None = None
    register_wh: int = 0

    def __post_init__(self) -> None:
        _check_aware(self.at, "at")


@dataclass(frozen=True)
class ClockDrift:
    """A charger clock that runs off true time.

    The reported time is ``t + offset_s + drift_ppm * 1e-6 * (t - start)`` for
    ``t >= start`` and ``t`` before.

    Parameters
    ----------
    charger_index : int
        Charger position (0-based).
    drift_ppm : float
        Rate error [ppm]; +50 ppm gains 4.3 s per day.
    offset_s : float
        Step error from ``start`` on [s].
    start : datetime, optional
        When the clock starts drifting (tz-aware); default: simulation start.
    """

    charger_index: int
    drift_ppm: float = 50.0
    offset_s: float = 0.0
    start: datetime | None = None

    def __post_init__(self) -> None:
        _check_aware(self.start, "start")


@dataclass(frozen=True)
class LostOcppMessages:
    """A window in which a charger's OCPP messages are lost.

    Parameters
    ----------
    charger_index : int
        Charger position (0-based).
    start : datetime, optional
        Window start (tz-aware); default: an hour into the charger's first session
        after the middle of the simulation, so transaction messages are lost.
    duration_s : float
        Window length [s].
    """

    charger_index: int
    start: datetime | None = None
    duration_s: float = 3600.0

    def __post_init__(self) -> None:
        _check_aware(self.start, "start")
        if self.duration_s <= 0:
            raise ValueError("duration_s must be positive")


Fault = MeterGainError | IgnoreAllocation | TamperedOcmf | RegisterReset | ClockDrift | LostOcppMessages


@dataclass(frozen=True)
class InjectedFault:
    """Ground truth of one injected fault.

    Attributes
    ----------
    kind : str
        ``meter_gain_error``, ``ignore_allocation``, ``tampered_ocmf``,
        ``register_reset``, ``clock_drift`` or ``lost_ocpp_messages``.
    charger_id, device_id : str
        The affected charger.
    start_utc, end_utc : datetime or None
        When the fault was active (None for faults that hold throughout).
    magnitude : float
        Size of the fault in ``unit``.
    unit : str
        ``fraction`` (gain), ``A`` (excess current over the allocation), ``Wh``
        (register jump), ``ppm`` (clock drift), ``messages`` (lost), ``byte`` (tamper).
    details : dict
        Kind-specific facts (session id, original and tampered text, ...).
    """

    kind: str
    charger_id: str
    device_id: str
    start_utc: datetime | None
    end_utc: datetime | None
    magnitude: float
    unit: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (times as ISO-8601 UTC with ``Z``)."""

        def iso(value: datetime | None) -> str | None:
            if value is None:
                return None
            return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")

        return {
            "kind": self.kind,
            "charger_id": self.charger_id,
            "device_id": self.device_id,
            "start_utc": iso(self.start_utc),
            "end_utc": iso(self.end_utc),
            "magnitude": self.magnitude,
            "unit": self.unit,
            "details": self.details,
        }
