"""Piecewise-constant timelines of the simulation, evaluated in bulk.

Between two events every charger draws a constant current, so its true energy is a
piecewise-linear function of time and its meter register the floor of another one.
:class:`ChargerTimeline` holds one charger's segments and answers "register, energy,
current, power at these times" for whole numpy arrays at once; the output builders
never loop over seconds.

The register model is the one of :class:`firmware_ref.emeter.EMeter`: measured power
``(1 + gain_error) * true_w + offset_w`` per loaded phase while current flows,
accumulated and read as whole Wh (floor). A register reset restarts the count from a
given value, as :meth:`EMeter.reset_register` does.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import polars as pl

from firmware_ref.grid import LINE_NAMES, charger_lines, line_weights, parse_phase_rotation

__all__ = ["ChargerTimeline", "LineCodes", "StepSeries", "epoch_to_datetime", "ts_series"]

_EPS_WH = 1e-9
_SQRT3 = math.sqrt(3.0)


class LineCodes:
    """Interns (phases, lines) combinations of one charger into small integer codes.

    Each code carries the unit line-current phasors, the charger-terminal mask and
    the power per ampere, so bulk post-processing needs only integer look-ups.
    """

    def __init__(self, network_type: str, line_voltage_v: tuple[float, float, float]):
        self.network_type = network_type
        self.line_voltage_v = line_voltage_v
        self._codes: dict[tuple[str, int, tuple[str, ...]], int] = {}
        self.phases: list[int] = [0]
        self.lines: list[tuple[str, ...]] = [()]
        self.weights: list[tuple[complex, complex, complex]] = [(0j, 0j, 0j)]
        self.terminals: list[tuple[bool, bool, bool]] = [(False, False, False)]
        self.watts_per_amp: list[float] = [0.0]
        self.loaded_phases: list[int] = [0]

    def code(self, rotation: str, phases: int, lines: tuple[str, ...]) -> int:
        """Code of a charger with ``rotation`` using ``phases`` on supply ``lines``."""
        if phases == 0 or not lines:
            return 0
        key = (rotation, phases, lines)
        hit = self._codes.get(key)
        if hit is not None:
            return hit
        terminal = 0
        for t in range(3):
            got = charger_lines(rotation, phases, self.network_type, t)
            if tuple(LINE_NAMES[k] for k in got) == lines:
                terminal = t
                break
        weights = line_weights(rotation, phases, self.network_type, terminal)
        used = charger_lines(rotation, phases, self.network_type, terminal)
        rotation_lines = parse_phase_rotation(rotation)
        terminals = tuple(rotation_lines[k] in used for k in range(3))
        v = self.line_voltage_v
        if self.network_type.upper() != "IT":
            watts = sum(v[k] for k in used)
        elif phases == 3:
            watts = _SQRT3 * sum(v) / 3.0
        else:
            # One line-to-line load; v[k] is the voltage between line k and line k+1.
            a, b = sorted(used)
            watts = v[0] if (a, b) == (0, 1) else v[1] if (a, b) == (1, 2) else v[2]
        code = len(self.phases)
        self._codes[key] = code
        self.phases.append(phases)
        self.lines.append(lines)
        self.weights.append(weights)
        self.terminals.append(terminals)  # type: ignore[arg-type]
        self.watts_per_amp.append(float(watts))
        self.loaded_phases.append(len(used))
        return code


def ts_series(name: str, t_s: np.ndarray) -> pl.Series:
    """Datetime("us", "UTC") series from epoch seconds, rounded to the millisecond.

    NaN times become nulls.
    """
    t = np.asarray(t_s, dtype=float)
    missing = np.isnan(t)
    ms = np.round(np.where(missing, 0.0, t) * 1000.0).astype(np.int64)
    series = pl.Series(name, ms * 1000, dtype=pl.Int64)
    if missing.any():
        series = pl.select(pl.when(pl.Series(missing)).then(None).otherwise(series)).to_series()
        series = series.alias(name)
    return series.cast(pl.Datetime("us", "UTC"))


def epoch_to_datetime(t_s: float) -> datetime:
    """Tz-aware UTC datetime of epoch seconds, rounded to the millisecond."""
    ms = int(round(t_s * 1000.0))
    return datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=(ms % 1000) * 1000)


class StepSeries:
    """A right-continuous step function: ``values[k]`` holds from ``t[k]`` on."""

    __slots__ = ("t", "values")

    def __init__(self, t: np.ndarray, values: np.ndarray) -> None:
        self.t = np.asarray(t, dtype=float)
        self.values = np.asarray(values)

    def at(self, q: np.ndarray | float) -> np.ndarray:
        """Values holding at times ``q`` (after any change at exactly ``q``)."""
        idx = np.searchsorted(self.t, q, side="right") - 1
        return self.values[np.clip(idx, 0, max(self.t.size - 1, 0))]


class ChargerTimeline:
    """Drawn current, power, true energy and meter register of one charger.

    Parameters
    ----------
    start_s, end_s : float
        Simulated span [s since epoch].
    t_s, amps, code : ndarray
        Draw-change log of the charger: time [s], per-phase current [A] and line code
        (:class:`firmware_ref.sim_engine.LineCodes`), sorted by time.
    codes : LineCodes
        Code table of the installation.
    gain_error : float
        Meter gain error [fraction].
    offset_w : float
        Meter offset per loaded phase [W].
    register_start_wh : int
        Register at ``start_s`` [Wh].
    reset_s : float, optional
        Time of a register reset [s].
    reset_wh : int
        Register value right after the reset [Wh].
    """

    def __init__(
        self,
        start_s: float,
        end_s: float,
        t_s: np.ndarray,
        amps: np.ndarray,
        code: np.ndarray,
        codes: LineCodes,
        gain_error: float = 0.0,
        offset_w: float = 0.0,
        register_start_wh: int = 0,
        reset_s: float | None = None,
        reset_wh: int = 0,
    ) -> None:
        self.start_s = start_s
        self.end_s = end_s
        self.seg_t = np.concatenate([[start_s], np.asarray(t_s, dtype=float)])
        self.seg_amps = np.concatenate([[0.0], np.asarray(amps, dtype=float)])
        self.seg_code = np.concatenate([[0], np.asarray(code, dtype=np.int64)])
        watts_per_amp = np.asarray(codes.watts_per_amp)
        loaded = np.asarray(codes.loaded_phases, dtype=float)
        self.seg_watts = self.seg_amps * watts_per_amp[self.seg_code]
        meas = (1.0 + gain_error) * self.seg_watts + offset_w * loaded[self.seg_code]
        self.seg_meas_w = np.where(self.seg_watts > 0.0, np.maximum(meas, 0.0), 0.0)
        dt_h = np.diff(np.append(self.seg_t, max(end_s, float(self.seg_t[-1])))) / 3600.0
        self.cum_true_wh = np.concatenate([[0.0], np.cumsum(self.seg_watts * dt_h)[:-1]])
        self.cum_meas_wh = np.concatenate([[0.0], np.cumsum(self.seg_meas_w * dt_h)[:-1]])
        self.codes = codes
        self.register_start_wh = int(register_start_wh)
        self.reset_s = reset_s
        self.reset_wh = int(reset_wh)
        self._meas_at_reset = (
            float(self.measured_wh(np.array([reset_s]))[0]) if reset_s is not None else 0.0
        )

    def _idx(self, q: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.seg_t, q, side="right") - 1, 0, self.seg_t.size - 1)

    def true_wh(self, q: np.ndarray) -> np.ndarray:
        """True energy delivered since ``start_s`` at times ``q`` [Wh]."""
        q = np.asarray(q, dtype=float)
        i = self._idx(q)
        return self.cum_true_wh[i] + self.seg_watts[i] * (q - self.seg_t[i]) / 3600.0

    def measured_wh(self, q: np.ndarray) -> np.ndarray:
        """Energy the meter has counted since ``start_s`` at times ``q`` [Wh] (unfloored)."""
        q = np.asarray(q, dtype=float)
        i = self._idx(q)
        return self.cum_meas_wh[i] + self.seg_meas_w[i] * (q - self.seg_t[i]) / 3600.0

    def register_wh(self, q: np.ndarray) -> np.ndarray:
        """Lifetime import register at times ``q`` [Wh], int64."""
        q = np.asarray(q, dtype=float)
        meas = self.measured_wh(q)
        reg = self.register_start_wh + np.floor(meas + _EPS_WH).astype(np.int64)
        if self.reset_s is not None:
            after = q >= self.reset_s
            reg_after = self.reset_wh + np.floor(meas - self._meas_at_reset + _EPS_WH).astype(
                np.int64
            )
            reg = np.where(after, reg_after, reg)
        return reg

    def amps_at(self, q: np.ndarray) -> np.ndarray:
        """Per-phase drawn current at times ``q`` [A]."""
        return self.seg_amps[self._idx(np.asarray(q, dtype=float))]

    def code_at(self, q: np.ndarray) -> np.ndarray:
        """Line code at times ``q``."""
        return self.seg_code[self._idx(np.asarray(q, dtype=float))]

    def power_w_at(self, q: np.ndarray) -> np.ndarray:
        """True active power at times ``q`` [W]."""
        return self.seg_watts[self._idx(np.asarray(q, dtype=float))]

    def terminal_currents_at(self, q: np.ndarray) -> np.ndarray:
        """Currents on the charger's terminals L1, L2, L3 at times ``q`` [A], shape (n, 3)."""
        i = self._idx(np.asarray(q, dtype=float))
        mask = np.asarray(self.codes.terminals, dtype=float)[self.seg_code[i]]
        return mask * self.seg_amps[i][:, None]
