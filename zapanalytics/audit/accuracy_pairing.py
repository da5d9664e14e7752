"""Two registers read at the same instants: interpolation with a stated uncertainty.

A charger's register and its reference meter are read at different times, often at
different rates (hourly signed records against a sub-meter read every 15 minutes). The
accuracy audit compares their energies between common instants, so one register has to
be known at the other's reading times. :func:`register_at` interpolates it linearly
between its neighbouring readings and says how far off that may be:

* **Resolution.** Each reading is rounded to the register's step ``q``; the interpolated
  value mixes two rounding errors, variance ``((1 - f)^2 + f^2) q^2 / 12`` at the
  fraction ``f`` of the way between the readings.
* **Shape.** Linear interpolation is exact while the power is constant. If the power
  ranges over ``dP`` inside the interval ``T`` that holds the instant, the energy up to
  the instant departs from the straight line by at most ``f (1 - f) T dP`` (all of the
  range before the instant, none after, or the reverse); taken as a rectangular bound.
  ``dP`` comes from the charger's power (or phase currents) held between observations
  (:class:`StepProfile`); without such observations, from the spread of the average
  powers of that interval and its two neighbours.
* **Clock.** The two meters' clocks may disagree by ``u`` seconds: the power at the
  instant times ``u``, a rectangular bound.

:class:`StepProfile` also gives each comparison interval its current (time-weighted
over the part in which the charger drew current) for the current bands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["InterpolatedRegister", "StepProfile", "epoch_s", "register_at"]

#: Readings this close to an instant count as taken at it [s].
SIMULTANEOUS_S = 0.001


def epoch_s(series: pl.Series) -> np.ndarray:
    """Datetimes as seconds since the epoch (float)."""
    return series.dt.epoch("us").to_numpy().astype(np.float64) / 1e6


def _reduce_ranges(
    ufunc: np.ufunc, values: np.ndarray, low: np.ndarray, high: np.ndarray, identity: float
) -> np.ndarray:
    """``ufunc`` over ``values[low[i]:high[i] + 1]`` for each i; ``identity`` where empty."""
    out = np.full(low.shape, identity)
    ok = (low <= high) & (low >= 0)
    if not ok.any() or values.size == 0:
        return out
    padded = np.append(values, identity)
    indices = np.empty(2 * int(ok.sum()), dtype=np.intp)
    indices[0::2] = low[ok]
    indices[1::2] = high[ok] + 1
    out[ok] = ufunc.reduceat(padded, indices)[0::2]
    return out


@dataclass(frozen=True)
class StepProfile:
    """A quantity observed at instants and held until the next observation.

    Zaptec reports states when they change, so holding each value until the next is
    exact for them; for periodic samples it is the usual approximation.

    Attributes
    ----------
    times_s : numpy.ndarray
        Observation times [s since epoch], sorted and unique.
    values : numpy.ndarray
        The values, finite.
    """

    times_s: np.ndarray
    values: np.ndarray

    @classmethod
    def from_samples(cls, times_s: np.ndarray, values: np.ndarray) -> StepProfile:
        """A profile from unsorted samples; NaN values are left out, and of samples at
        the same instant the largest is kept."""
        times_s = np.asarray(times_s, dtype=float)
        values = np.asarray(values, dtype=float)
        keep = np.isfinite(values) & np.isfinite(times_s)
        times_s, values = times_s[keep], values[keep]
        order = np.lexsort((-values, times_s))
        times_s, values = times_s[order], values[order]
        first = np.ones(times_s.size, dtype=bool)
        first[1:] = times_s[1:] != times_s[:-1]
        return cls(times_s[first], values[first])

    @property
    def empty(self) -> bool:
        return self.times_s.size == 0

    def range_over(self, start_s: np.ndarray, end_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest value held at any time in each closed ``[start, end]``.

        NaN where nothing was observed at or before ``end``.
        """
        start_s, end_s = np.asarray(start_s, float), np.asarray(end_s, float)
        first = np.searchsorted(self.times_s, start_s, side="right") - 1
        last = np.searchsorted(self.times_s, end_s, side="right") - 1
        first = np.maximum(first, 0)
        low = _reduce_ranges(np.minimum, self.values, first, last, np.inf)
        high = _reduce_ranges(np.maximum, self.values, first, last, -np.inf)
        unknown = last < 0
        low[unknown], high[unknown] = np.nan, np.nan
        return low, high

    def held_over(
        self, start_s: np.ndarray, end_s: np.ndarray, *, above: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Over each ``(start, end]``: time-weighted mean and lowest value of the part in
        which the value exceeds ``above``, and that part's length [s].

        Before the first observation the value counts as not above. Mean and lowest are
        NaN where no part exceeds ``above``.
        """
        start_s, end_s = np.asarray(start_s, float), np.asarray(end_s, float)
        if self.empty:
            nan = np.full(start_s.shape, np.nan)
            return nan, nan.copy(), np.zeros(start_s.shape)
        active = self.values > above
        durations = np.diff(self.times_s)
        weighted = np.where(active[:-1], self.values[:-1] * durations, 0.0)
        timed = np.where(active[:-1], durations, 0.0)
        cum_weighted = np.concatenate([[0.0], np.cumsum(weighted)])
        cum_timed = np.concatenate([[0.0], np.cumsum(timed)])

        def integral(at: np.ndarray, cumulative: np.ndarray, rate: np.ndarray) -> np.ndarray:
            index = np.searchsorted(self.times_s, at, side="right") - 1
            safe = np.maximum(index, 0)
            value = cumulative[safe] + rate[safe] * (at - self.times_s[safe])
            return np.where(index < 0, 0.0, value)

        rate_weighted = np.where(active, self.values, 0.0)
        rate_timed = active.astype(float)
        seconds = integral(end_s, cum_timed, rate_timed) - integral(start_s, cum_timed, rate_timed)
        weight = integral(end_s, cum_weighted, rate_weighted) - integral(
            start_s, cum_weighted, rate_weighted
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(seconds > 0, weight / seconds, np.nan)
        masked = np.where(active, self.values, np.inf)
        first = np.maximum(np.searchsorted(self.times_s, start_s, side="right") - 1, 0)
        last = np.searchsorted(self.times_s, end_s, side="left") - 1
        lowest = _reduce_ranges(np.minimum, masked, first, last, np.inf)
        lowest = np.where(np.isfinite(lowest) & (seconds > 0), lowest, np.nan)
        return mean, lowest, np.maximum(seconds, 0.0)


@dataclass(frozen=True)
class InterpolatedRegister:
    """A register read at given instants (:func:`register_at`).

    Attributes
    ----------
    value_kwh : numpy.ndarray
        The register [kWh]; NaN where it cannot be known.
    var_resolution_kwh2 : numpy.ndarray
        Variance from the readings' rounding [kWh^2].
    var_shape_kwh2 : numpy.ndarray
        Variance from the power's departure from constant between the readings
        [kWh^2]; zero at a reading.
    power_kw : numpy.ndarray
        The highest power around the instant [kW] (for the clock term).
    fraction : numpy.ndarray
        Where the instant falls between the neighbouring readings (0 at a reading).
    gap_s : numpy.ndarray
        Time between those readings [s]; 0 at a reading.
    """

    value_kwh: np.ndarray
    var_resolution_kwh2: np.ndarray
    var_shape_kwh2: np.ndarray
    power_kw: np.ndarray
    fraction: np.ndarray
    gap_s: np.ndarray


def _average_powers(times_s: np.ndarray, values_kwh: np.ndarray) -> np.ndarray:
    """Average power of each interval between consecutive readings [kW]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diff(values_kwh) / (np.diff(times_s) / 3600.0)


def register_at(
    times_s: np.ndarray,
    values_kwh: np.ndarray,
    at_s: np.ndarray,
    *,
    resolution_kwh: float,
    max_gap_s: float,
    power: StepProfile | None = None,
) -> InterpolatedRegister:
    """A cumulative register at the instants ``at_s``, with its uncertainty.

    Parameters
    ----------
    times_s : array
        Reading times [s since epoch], sorted, unique.
    values_kwh : array
        The readings [kWh].
    at_s : array
        Instants to know the register at [s since epoch].
    resolution_kwh : float
        The register's step [kWh].
    max_gap_s : float
        Readings further apart are not interpolated between, unless the register did
        not move between them [s].
    power : StepProfile, optional
        The charger's power [kW] held between observations, to bound the shape term;
        without it the neighbouring intervals' average powers are used.

    Returns
    -------
    InterpolatedRegister
        NaN values outside the readings, across a long gap with energy, and across a
        fall of the register (a reset).
    """
    times_s = np.asarray(times_s, float)
    values_kwh = np.asarray(values_kwh, float)
    at_s = np.asarray(at_s, float)
    n = times_s.size
    shape = at_s.shape
    value = np.full(shape, np.nan)
    var_resolution = np.zeros(shape)
    var_shape = np.zeros(shape)
    power_kw = np.zeros(shape)
    fraction = np.zeros(shape)
    gap = np.zeros(shape)
    if n == 0:
        return InterpolatedRegister(value, var_resolution, var_shape, power_kw, fraction, gap)
    averages = _average_powers(times_s, values_kwh)
    right = np.searchsorted(times_s, at_s, side="left")
    below = np.maximum(right - 1, 0)
    above = np.minimum(right, n - 1)
    near_above = (right < n) & (np.abs(times_s[above] - at_s) <= SIMULTANEOUS_S)
    near_below = (right > 0) & (np.abs(at_s - times_s[below]) <= SIMULTANEOUS_S)
    exact = near_above | near_below
    exact_index = np.where(near_above, above, below)
    value[exact] = values_kwh[exact_index[exact]]
    var_resolution[exact] = resolution_kwh**2 / 12

    inside = ~exact & (right > 0) & (right < n)
    k = right[inside] - 1  # interval k runs from reading k to reading k + 1
    t0, t1 = times_s[k], times_s[k + 1]
    rise = values_kwh[k + 1] - values_kwh[k]
    span = t1 - t0
    known = (rise >= 0) & ((span <= max_gap_s) | (rise == 0))
    f = (at_s[inside] - t0) / span
    inner_value = np.where(known, values_kwh[k] + f * rise, np.nan)

    if power is not None and not power.empty:
        low, high = power.range_over(t0, t1)
        spread = np.where(np.isfinite(low), high - low, np.nan)
        peak = np.where(np.isfinite(high), high, np.nan)
    else:
        spread = peak = np.full(k.shape, np.nan)
    # Without observed power: the spread of this interval's and its neighbours' averages.
    previous = averages[np.maximum(k - 1, 0)]
    following = averages[np.minimum(k + 1, averages.size - 1)]
    own = averages[k]
    neighbours = np.vstack([previous, own, following])
    fallback_spread = np.nanmax(neighbours, axis=0) - np.nanmin(neighbours, axis=0)
    fallback_peak = np.nanmax(neighbours, axis=0)
    spread = np.where(np.isfinite(spread), spread, fallback_spread)
    peak = np.where(np.isfinite(peak), np.maximum(peak, own), fallback_peak)
    # A register that did not move saw no power: the line is exact.
    spread = np.where(rise == 0, 0.0, spread)
    bound_kwh = f * (1 - f) * span / 3600.0 * spread

    value[inside] = inner_value
    var_resolution[inside] = ((1 - f) ** 2 + f**2) * resolution_kwh**2 / 12
    var_shape[inside] = bound_kwh**2 / 3
    power_kw[inside] = np.where(rise == 0, 0.0, peak)
    fraction[inside] = f
    gap[inside] = span

    if exact.any() and averages.size:
        # At a reading: the power held there, else the larger neighbouring average.
        at_exact = at_s[exact]
        if power is not None and not power.empty:
            _, held = power.range_over(at_exact, at_exact)
        else:
            held = np.full(at_exact.shape, np.nan)
        index = exact_index[exact]
        before = np.where(index > 0, averages[np.maximum(index - 1, 0)], 0.0)
        after = np.where(index < averages.size, averages[np.minimum(index, averages.size - 1)], 0.0)
        power_kw[exact] = np.where(np.isfinite(held), held, np.maximum(before, after))
    power_kw = np.nan_to_num(np.maximum(power_kw, 0.0))
    return InterpolatedRegister(value, var_resolution, var_shape, power_kw, fraction, gap)
