"""Each charger's gain error from the installation's HAN meter, with no sub-meter.

The installation's AMS/HAN meter measures everything: the chargers and the household.
Over each hour ``h``, with ``E_j,h`` the energy charger ``j``'s own register shows and
``g_j`` its gain error (it reads ``1 + g_j`` times the true energy),

    HAN_h = sum_j E_j,h / (1 + g_j) + household_h

so regressing the HAN hourly energy on the chargers' hourly energies plus a household
baseline gives ``beta_j = 1 / (1 + g_j)``. The baseline has a level for every local day
(weather, occupancy) and a profile over the hours of the day (local time); what is left
of the household's consumption is noise. Ordinary least squares gives ``beta``; its
covariance is cluster-robust by local day (hours of one day share their errors), and the
interval uses Student's t with one degree of freedom less than the number of days. The
gain interval is the transformed ``beta`` interval ``1 / beta - 1``, exact for the
monotone transform.

Assumptions (state them with every result)
------------------------------------------
* The HAN meter is the reference: its own gain error shifts every estimate by about
  the same amount (a HAN reading 0.5 % high makes every charger look 0.5 % low).
* All charger energy passes through the HAN meter and the import register is not netted
  against export (no solar export during the modelled hours).
* Within a day and hour-of-day profile, the household does not react to charging. Load
  balancing breaks this: when it lowers a charger because the house draws more, the two
  are correlated and the estimate is biased. Hours in which a charger's offered current
  was below its maximum while charging are therefore left out when the offered current
  is known (``exclude_limited_hours``).
* Registers are interpolated linearly to the hour boundaries; readings at least every
  15 minutes keep the error small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from scipy import stats

from zapanalytics.audit.findings import utc_frame

__all__ = [
    "HOURLY_SCHEMA",
    "GainFit",
    "GainRegression",
    "estimate_gains",
    "fit_gains",
    "hourly_energies",
    "interpolate_register",
]


#: Columns of :func:`hourly_energies` output.
HOURLY_SCHEMA = pl.Schema(
    {
        "installation_id": pl.String,
        "meter_id": pl.String,
        "hour_start_utc": pl.Datetime("us", "UTC"),
        "han_kwh": pl.Float64,
        "charger_id": pl.String,
        "charger_kwh": pl.Float64,
    }
)


def interpolate_register(
    times_s: np.ndarray, values_kwh: np.ndarray, grid_s: np.ndarray, *, max_gap_s: float
) -> np.ndarray:
    """A cumulative register at the grid times, linear between readings.

    Parameters
    ----------
    times_s : array
        Reading times [s since epoch], sorted.
    values_kwh : array
        Register readings [kWh].
    grid_s : array
        Times to read the register at [s since epoch].
    max_gap_s : float
        Readings further apart than this are not interpolated between, unless the
        register did not move (nothing happened in the gap) [s].

    Returns
    -------
    numpy.ndarray
        The register at each grid time [kWh]; NaN where unknown (outside the readings,
        across a long gap, or across a fall of the register).
    """
    result = np.full(grid_s.shape, np.nan)
    if times_s.size == 0:
        return result
    right = np.searchsorted(times_s, grid_s, side="left")
    exact = (right < times_s.size) & (times_s[np.minimum(right, times_s.size - 1)] == grid_s)
    result[exact] = values_kwh[right[exact]]
    inside = ~exact & (right > 0) & (right < times_s.size)
    left = right[inside] - 1
    upper = right[inside]
    gap = times_s[upper] - times_s[left]
    rise = values_kwh[upper] - values_kwh[left]
    ok = (rise >= 0) & ((gap <= max_gap_s) | (rise == 0))
    fraction = (grid_s[inside] - times_s[left]) / gap
    values = values_kwh[left] + fraction * rise
    values[~ok] = np.nan
    result[inside] = values
    return result


def _epoch_s(series: pl.Series) -> np.ndarray:
    return series.dt.epoch("us").to_numpy().astype(np.float64) / 1e6


def hourly_energies(
    meter_values: pl.DataFrame,
    reference_readings: pl.DataFrame,
    chargers: pl.DataFrame,
    *,
    source: str | None = None,
    max_gap_s: float = 5400.0,
    exclude_limited_hours: bool = True,
) -> pl.DataFrame:
    """Hourly HAN energy and each charger's hourly energy, per installation.

    Parameters
    ----------
    meter_values : polars.DataFrame
        The ``meter_values`` table (registers; ``current_offered_a`` and currents when
        known, to find load-balanced hours).
    reference_readings : polars.DataFrame
        The ``reference_readings`` table; rows of kind ``han`` with an
        ``energy_import_kwh`` register are used.
    chargers : polars.DataFrame
        The ``chargers`` table (``charger_id``, ``installation_id``, ``max_current_a``).
    source : str, optional
        The ``meter_values`` source; default: for each charger the register series that
        knows the most hours.
    max_gap_s : float
        See :func:`interpolate_register`.
    exclude_limited_hours : bool
        Leave out hours in which a charger delivered energy while offered less than its
        maximum current (load balancing), when the offered current is known.

    Returns
    -------
    polars.DataFrame
        Long format: ``installation_id``, ``meter_id``, ``hour_start_utc``,
        ``han_kwh``, ``charger_id``, ``charger_kwh``; one row per hour and charger,
        only for hours in which the HAN meter and every charger are known.
    """
    meter_values, reference_readings = utc_frame(meter_values), utc_frame(reference_readings)
    han = reference_readings.filter(
        (pl.col("kind") == "han")
        & pl.col("energy_import_kwh").is_not_null()
        & pl.col("installation_id").is_not_null()
    ).sort("ts_utc")
    registers = meter_values.filter(pl.col("energy_register_kwh").is_not_null())
    if source is not None:
        registers = registers.filter(pl.col("source") == source)
    registers = registers.sort("ts_utc")
    frames = []
    for (installation_id, meter_id), readings in han.group_by(
        "installation_id", "meter_id", maintain_order=True
    ):
        members = chargers.filter(pl.col("installation_id") == installation_id)["charger_id"]
        if members.is_empty():
            continue
        times = _epoch_s(readings["ts_utc"])
        grid = np.arange(np.ceil(times[0] / 3600) * 3600, times[-1] + 1, 3600.0)
        if grid.size < 2:
            continue
        han_at = interpolate_register(
            times, readings["energy_import_kwh"].to_numpy(), grid, max_gap_s=max_gap_s
        )
        columns = {"hour_start_utc": grid[:-1], "han_kwh": np.diff(han_at)}
        for charger_id in members.to_list():
            own = registers.filter(pl.col("charger_id") == charger_id)
            columns[charger_id] = _hourly_register_energy(own, grid, max_gap_s)
        wide = pl.DataFrame(columns).with_columns(
            hour_start_utc=pl.from_epoch(pl.col("hour_start_utc").cast(pl.Int64), time_unit="s")
            .dt.replace_time_zone("UTC")
            .dt.cast_time_unit("us")
        )
        known = pl.all_horizontal(
            pl.exclude("hour_start_utc").is_not_nan() & (pl.exclude("hour_start_utc") >= 0)
        )
        wide = wide.filter(known)
        if exclude_limited_hours:
            limited = _limited_hours(meter_values, chargers, members)
            wide = wide.join(limited, on="hour_start_utc", how="anti")
        frames.append(
            wide.unpivot(
                index=["hour_start_utc", "han_kwh"],
                variable_name="charger_id",
                value_name="charger_kwh",
            ).with_columns(installation_id=pl.lit(installation_id), meter_id=pl.lit(meter_id))
        )
    if not frames:
        return pl.DataFrame(schema=HOURLY_SCHEMA)
    return pl.concat(frames).select(HOURLY_SCHEMA.names()).cast(HOURLY_SCHEMA)


def _hourly_register_energy(
    registers: pl.DataFrame, grid: np.ndarray, max_gap_s: float
) -> np.ndarray:
    """A charger's energy per hour of ``grid`` from the register series (source) that
    knows the most hours; sources stamp with different clocks, so they are not mixed."""
    best = np.full(grid.size - 1, np.nan)
    best_known = -1
    for _, series in registers.group_by("source", maintain_order=True):
        series = series.unique("ts_utc", keep="first", maintain_order=True)
        at = interpolate_register(
            _epoch_s(series["ts_utc"]),
            series["energy_register_kwh"].to_numpy(),
            grid,
            max_gap_s=max_gap_s,
        )
        energy = np.diff(at)
        known = int(np.isfinite(energy).sum())
        if known > best_known:
            best, best_known = energy, known
    return best


def _limited_hours(
    meter_values: pl.DataFrame, chargers: pl.DataFrame, members: pl.Series
) -> pl.DataFrame:
    """Hours in which a charger drew current while offered less than its maximum."""
    empty = pl.DataFrame(schema={"hour_start_utc": pl.Datetime("us", "UTC")})
    if "current_offered_a" not in meter_values.columns or "max_current_a" not in chargers.columns:
        return empty
    phases = [
        c for c in ("current_l1_a", "current_l2_a", "current_l3_a") if c in meter_values.columns
    ]
    drawing = pl.max_horizontal(phases) > 0.5 if phases else pl.col("power_w") > 50
    # A reading stamps the interval that ends at it: 12:00:00 belongs to 11:00-12:00.
    return (
        meter_values.filter(pl.col("charger_id").is_in(members.implode()))
        .join(chargers.select("charger_id", "max_current_a"), on="charger_id")
        .filter(drawing & (pl.col("current_offered_a") < pl.col("max_current_a") - 0.5))
        .select(hour_start_utc=(pl.col("ts_utc") - pl.duration(microseconds=1)).dt.truncate("1h"))
        .unique()
    )


@dataclass(frozen=True)
class GainFit:
    """Result of :func:`fit_gains` for one installation.

    Attributes
    ----------
    beta, beta_se : numpy.ndarray
        Coefficients of the chargers' energies and their cluster-robust standard errors.
    gain_pct, gain_low_pct, gain_high_pct : numpy.ndarray
        Gain errors [%] and their confidence interval.
    degrees_of_freedom : int
    residual_std_kwh : float
        Standard deviation of the hourly residuals [kWh].
    r_squared : float
    observations : int
    clusters : int
    """

    beta: np.ndarray
    beta_se: np.ndarray
    gain_pct: np.ndarray
    gain_low_pct: np.ndarray
    gain_high_pct: np.ndarray
    degrees_of_freedom: int
    residual_std_kwh: float
    r_squared: float
    observations: int
    clusters: int
    confidence: float = field(default=0.95)


def fit_gains(
    han_kwh: np.ndarray,
    charger_kwh: np.ndarray,
    day: np.ndarray,
    hour_of_day: np.ndarray,
    *,
    confidence: float = 0.95,
) -> GainFit:
    """Least-squares gain errors with a day-level and hour-of-day household baseline.

    Parameters
    ----------
    han_kwh : array (n,)
        HAN energy per hour [kWh].
    charger_kwh : array (n, j)
        Each charger's own energy per hour [kWh].
    day : array (n,)
        Local-day label of each hour (clusters and day levels).
    hour_of_day : array (n,)
        Local hour of day (0-23) of each hour.
    confidence : float
        Confidence level of the intervals.

    Returns
    -------
    GainFit
    """
    y = np.asarray(han_kwh, dtype=float)
    x = np.atleast_2d(np.asarray(charger_kwh, dtype=float))
    if x.shape[0] != y.shape[0]:
        x = x.T
    n, n_chargers = x.shape
    _, day_index = np.unique(day, return_inverse=True)
    _, hour_index = np.unique(hour_of_day, return_inverse=True)
    days = int(day_index.max()) + 1
    hours = int(hour_index.max()) + 1
    # Hour-of-day effects (the first hour is the base) next to the chargers' energies.
    hour_dummies = np.zeros((n, max(hours - 1, 0)))
    rows = hour_index > 0
    hour_dummies[np.nonzero(rows)[0], hour_index[rows] - 1] = 1.0
    regressors = np.hstack([x, hour_dummies])
    # The day levels are absorbed by removing each day's mean (Frisch-Waugh-Lovell):
    # the same coefficients and residuals as one dummy per day, at a fraction of the cost.
    counts = np.bincount(day_index, minlength=days).astype(float)

    def within(values: np.ndarray) -> np.ndarray:
        if values.ndim == 1:
            return values - (np.bincount(day_index, values, days) / counts)[day_index]
        means = (
            np.stack([np.bincount(day_index, column, days) for column in values.T], axis=1)
            / counts[:, None]
        )
        return values - means[day_index]

    design = within(regressors)
    target = within(y)
    coefficients, _, rank, _ = np.linalg.lstsq(design, target, rcond=None)
    params = design.shape[1] + days
    if rank < design.shape[1] or n <= params:
        raise ValueError(
            "the chargers' energies cannot be told apart from the household baseline "
            "(too few hours, or chargers that always charge together)"
        )
    residuals = target - design @ coefficients
    bread = np.linalg.inv(design.T @ design)
    scores = np.zeros((days, design.shape[1]))
    np.add.at(scores, day_index, design * residuals[:, None])
    meat = scores.T @ scores
    correction = days / (days - 1) * (n - 1) / (n - params) if days > 1 else 1.0
    covariance = correction * bread @ meat @ bread
    beta = coefficients[:n_chargers]
    beta_se = np.sqrt(np.diag(covariance)[:n_chargers])
    dof = max(days - 1, 1)
    t = stats.t.ppf(0.5 + confidence / 2, dof)
    beta_low, beta_high = beta - t * beta_se, beta + t * beta_se
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (1 / beta - 1) * 100
        # 1/beta falls as beta rises: the upper gain bound comes from the lower beta bound.
        gain_high = np.where(beta_low > 0, (1 / beta_low - 1) * 100, np.inf)
        gain_low = np.where(beta_high > 0, (1 / beta_high - 1) * 100, -np.inf)
    total = np.sum((y - y.mean()) ** 2)  # R^2 of the full model, day levels included
    return GainFit(
        beta=beta,
        beta_se=beta_se,
        gain_pct=gain,
        gain_low_pct=gain_low,
        gain_high_pct=gain_high,
        degrees_of_freedom=dof,
        residual_std_kwh=float(np.sqrt(np.sum(residuals**2) / max(n - params, 1))),
        r_squared=float(1 - np.sum(residuals**2) / total) if total > 0 else float("nan"),
        observations=n,
        clusters=int(days),
        confidence=confidence,
    )


@dataclass(frozen=True)
class GainRegression:
    """Per-charger gain estimates and per-installation fit diagnostics."""

    chargers: pl.DataFrame
    installations: pl.DataFrame

    def as_dict(self) -> dict:
        return {
            "chargers": self.chargers.to_dicts(),
            "installations": self.installations.to_dicts(),
        }


def _classify(low: float, high: float, claim_pct: float) -> str:
    if -claim_pct <= low and high <= claim_pct:
        return "within"
    if low > claim_pct or high < -claim_pct:
        return "outside"
    return "inconclusive"


def estimate_gains(
    hourly: pl.DataFrame,
    *,
    timezones: dict[str, str] | str = "Europe/Oslo",
    confidence: float = 0.95,
    claim_pct: float = 1.0,
    min_charging_hours: int = 24,
) -> GainRegression:
    """Gain error of every charger behind a HAN meter, with confidence intervals.

    Parameters
    ----------
    hourly : polars.DataFrame
        :func:`hourly_energies` output.
    timezones : str or mapping of installation_id to IANA zone
        Zone for local days and hours of day.
    confidence : float
        Confidence level of the intervals (0.95).
    claim_pct : float
        The accuracy claim [%]; a charger is flagged when its interval lies wholly
        outside ``±claim_pct``.
    min_charging_hours : int
        Chargers with fewer hours of charging get ``insufficient_data``.

    Returns
    -------
    GainRegression
        ``chargers``: installation_id, charger_id, hours, charging_hours,
        charger_energy_kwh, gain_error_pct, ci_low_pct, ci_high_pct, confidence,
        verdict (``within``, ``outside``, ``inconclusive``, ``insufficient_data``),
        flagged. ``installations``: hours, days, r_squared, residual_std_kwh, chargers,
        baseline, and the assumptions as text.
    """
    charger_rows, installation_rows = [], []
    for (installation_id,), group in hourly.group_by("installation_id", maintain_order=True):
        zone = ZoneInfo(
            timezones
            if isinstance(timezones, str)
            else timezones.get(installation_id, "Europe/Oslo")
        )
        wide = (
            group.pivot(on="charger_id", index=["hour_start_utc", "han_kwh"], values="charger_kwh")
            .sort("hour_start_utc")
            .drop_nulls()
        )
        charger_ids = [c for c in wide.columns if c not in ("hour_start_utc", "han_kwh")]
        local = wide["hour_start_utc"].dt.convert_time_zone(zone.key)
        x = wide.select(charger_ids).to_numpy()
        charging_hours = (x > 0).sum(axis=0)
        enough = charging_hours >= min_charging_hours
        fit = None
        if enough.any():
            try:
                fit = fit_gains(
                    wide["han_kwh"].to_numpy(),
                    x[:, enough],
                    local.dt.date().cast(pl.String).to_numpy(),
                    local.dt.hour().to_numpy(),
                    confidence=confidence,
                )
            except ValueError as exc:
                installation_rows.append(
                    {"installation_id": installation_id, "hours": wide.height, "error": str(exc)}
                )
        fitted = iter(range(int(enough.sum())))
        for index, charger_id in enumerate(charger_ids):
            row = {
                "installation_id": installation_id,
                "charger_id": charger_id,
                "hours": wide.height,
                "charging_hours": int(charging_hours[index]),
                "charger_energy_kwh": float(x[:, index].sum()),
                "gain_error_pct": None,
                "ci_low_pct": None,
                "ci_high_pct": None,
                "confidence": confidence,
                "verdict": "insufficient_data",
                "flagged": False,
            }
            if enough[index]:
                position = next(fitted)
                if fit is not None:
                    low = float(fit.gain_low_pct[position])
                    high = float(fit.gain_high_pct[position])
                    verdict = _classify(low, high, claim_pct)
                    row.update(
                        gain_error_pct=float(fit.gain_pct[position]),
                        ci_low_pct=low,
                        ci_high_pct=high,
                        verdict=verdict,
                        flagged=verdict == "outside",
                    )
            charger_rows.append(row)
        if fit is not None:
            installation_rows.append(
                {
                    "installation_id": installation_id,
                    "hours": fit.observations,
                    "days": fit.clusters,
                    "r_squared": fit.r_squared,
                    "residual_std_kwh": fit.residual_std_kwh,
                    "chargers": int(enough.sum()),
                    "baseline": "a level per local day + an hour-of-day profile",
                    "error": None,
                }
            )
    charger_schema = {
        "installation_id": pl.String,
        "charger_id": pl.String,
        "hours": pl.Int64,
        "charging_hours": pl.Int64,
        "charger_energy_kwh": pl.Float64,
        "gain_error_pct": pl.Float64,
        "ci_low_pct": pl.Float64,
        "ci_high_pct": pl.Float64,
        "confidence": pl.Float64,
        "verdict": pl.String,
        "flagged": pl.Boolean,
    }
    installation_schema = {
        "installation_id": pl.String,
        "hours": pl.Int64,
        "days": pl.Int64,
        "r_squared": pl.Float64,
        "residual_std_kwh": pl.Float64,
        "chargers": pl.Int64,
        "baseline": pl.String,
        "error": pl.String,
    }
    return GainRegression(
        chargers=pl.DataFrame(charger_rows, schema=charger_schema),
        installations=pl.DataFrame(installation_rows, schema=installation_schema),
    )
