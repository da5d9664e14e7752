"""Integrated eMeter of a Zaptec charger: a monotonic lifetime import register.

The meter integrates per-phase active power into a lifetime import register
(OBIS 1-0:1.8.0) read with 1 Wh resolution. Power is given as constant over each
interval, so integration is exact (``energy = power x duration``); there is no
per-second loop, and an :meth:`EMeter.advance` call costs a handful of float
operations.

Time base
---------
Every time in :mod:`firmware_ref` state machines is a float: seconds since the
Unix epoch, UTC (``datetime.timestamp()`` of a tz-aware UTC datetime). Floats keep
year-long simulations of many chargers cheap; convert at the edges.

Measurement error model
-----------------------
``measured_w = (1 + gain_error) * true_w + offset_w`` for each phase that carries
current (``true_w > 0``). A phase without load registers nothing, as a real meter's
no-load (anti-creep) threshold guarantees. Negative measured power is clipped to
zero: the register counts import only and never decreases.

Public API
----------
``integrate_energy_wh(power_w, duration_s, gain_error=0.0, offset_w=0.0) -> float``
    Pure function: measured energy [Wh] of one phase over one interval.
``EMeter(register_wh=0, t_s=None, gain_error=0.0, offset_w=0.0)``
    ``advance(to_t_s, power_w_per_phase) -> int`` integrates the power that held
    *since the previous call* up to ``to_t_s`` and returns the register [Wh];
    ``register_wh`` (int, Wh), ``register_kwh`` (float, 3 decimals),
    ``energy_wh_per_phase`` (float triple), ``true_energy_wh`` (ground truth),
    ``reset_register(t_s, register_wh=0)`` (fault injection).
``register_kwh_text(register_wh) -> str``
    The register as OCMF/OCPP would print it in kWh with Wh resolution, e.g. ``"2410.009"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "EMeter",
    "integrate_energy_wh",
    "register_kwh_text",
]

SECONDS_PER_HOUR = 3600.0


def integrate_energy_wh(
    power_w: float, duration_s: float, gain_error: float = 0.0, offset_w: float = 0.0
) -> float:
    """Measured energy of one phase over an interval of constant true power.

    Parameters
    ----------
    power_w : float
        True active power on the phase [W]; values ``<= 0`` register nothing.
    duration_s : float
        Length of the interval [s]; must be ``>= 0``.
    gain_error : float, default 0.0
        Relative gain error of the meter [fraction], e.g. ``+0.018`` reads 1.8 % high.
    offset_w : float, default 0.0
        Additive offset while the phase carries load [W].

    Returns
    -------
    float
        Measured energy [Wh], never negative.
    """
    if duration_s < 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    if power_w <= 0.0:
        return 0.0
    measured_w = (1.0 + gain_error) * power_w + offset_w
    if measured_w <= 0.0:
        return 0.0
    return measured_w * duration_s / SECONDS_PER_HOUR


def register_kwh_text(register_wh: int) -> str:
    """Render a Wh register as a kWh decimal with exactly three decimals.

    Integer arithmetic keeps the text exact (no binary floating-point artefacts).

    Parameters
    ----------
    register_wh : int
        Register value [Wh], ``>= 0``.

    Returns
    -------
    str
        e.g. ``register_kwh_text(2410009) == "2410.009"``.
    """
    if register_wh < 0:
        raise ValueError(f"register_wh must be >= 0, got {register_wh}")
    return f"{register_wh // 1000}.{register_wh % 1000:03d}"


class EMeter:
    """Three-phase import meter with a monotonic lifetime register [Wh].

    Parameters
    ----------
    register_wh : int, default 0
        Register value at ``t_s`` [Wh] (a charger's meter rarely starts at zero).
    t_s : float or None
        Time of the initial reading [s since epoch, UTC]. ``None`` lets the first
        :meth:`advance` call set the clock without integrating.
    gain_error : float, default 0.0
        Relative gain error [fraction].
    offset_w : float, default 0.0
        Offset per loaded phase [W].

    Notes
    -----
    The register holds the *fractional* measured energy internally and exposes the
    floor in whole Wh, so many short intervals add up exactly as one long one.
    """

    __slots__ = (
        "_energy_wh",
        "_register_base_wh",
        "energy_wh_per_phase",
        "gain_error",
        "offset_w",
        "t_s",
        "true_energy_wh",
    )

    def __init__(
        self,
        register_wh: int = 0,
        t_s: float | None = None,
        gain_error: float = 0.0,
        offset_w: float = 0.0,
    ) -> None:
        if register_wh < 0:
            raise ValueError(f"register_wh must be >= 0, got {register_wh}")
        self._register_base_wh = int(register_wh)
        self._energy_wh = 0.0
        self.t_s = t_s
        self.gain_error = float(gain_error)
        self.offset_w = float(offset_w)
        self.energy_wh_per_phase = [0.0, 0.0, 0.0]
        self.true_energy_wh = 0.0

    def advance(self, to_t_s: float, power_w_per_phase: Sequence[float]) -> int:
        """Integrate constant power from the previous call up to ``to_t_s``.

        Parameters
        ----------
        to_t_s : float
            End of the interval [s since epoch, UTC]; must not precede the meter clock.
        power_w_per_phase : sequence of 3 floats
            True active power on L1, L2, L3 during the interval [W].

        Returns
        -------
        int
            Register after the interval [Wh].
        """
        start = self.t_s
        self.t_s = to_t_s
        if start is None:
            return self.register_wh
        duration_s = to_t_s - start
        if duration_s < 0:
            self.t_s = start
            raise ValueError(f"time went backwards: {to_t_s} < {start}")
        if duration_s == 0.0:
            return self.register_wh
        hours = duration_s / SECONDS_PER_HOUR
        gain = 1.0 + self.gain_error
        offset = self.offset_w
        per_phase = self.energy_wh_per_phase
        for phase in range(3):
            p = power_w_per_phase[phase]
            if p > 0.0:
                self.true_energy_wh += p * hours
                measured = gain * p + offset
                if measured > 0.0:
                    e = measured * hours
                    per_phase[phase] += e
                    self._energy_wh += e
        return self.register_wh

    @property
    def register_wh(self) -> int:
        """Lifetime import register [Wh], whole Wh (floor)."""
        return self._register_base_wh + math.floor(self._energy_wh + 1e-9)

    @property
    def register_kwh(self) -> float:
        """Lifetime import register [kWh] with Wh resolution (3 decimals)."""
        return self.register_wh / 1000.0

    def reset_register(self, t_s: float, register_wh: int = 0) -> None:
        """Force the register to ``register_wh`` at ``t_s`` (a register-reset fault).

        Energy already integrated up to ``t_s`` must have been added with
        :meth:`advance` first; per-phase and true-energy totals keep counting.
        """
        if self.t_s is not None and t_s < self.t_s:
            raise ValueError(f"time went backwards: {t_s} < {self.t_s}")
        self.t_s = t_s
        self._register_base_wh = int(register_wh)
        self._energy_wh = 0.0
