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

The HAN meter's own error
-------------------------
The HAN meter is the reference, and its own gain error ``h`` shifts every estimate by
about the same amount (a HAN reading 0.5 % high makes every charger look 0.5 % low):
the estimate is ``(1 + g_j) / (1 + h) - 1``. Unless its uncertainty is known (a
calibration), the meter is known by its accuracy class only, so ``h`` enters as a
rectangular distribution bounded by the class's MID maximum permissible error
(:func:`zapanalytics.audit.limits.class_uncertainty_pct`), and the wider MID row for a
polyphase meter with a single-phase load where the chargers charge on one phase. Class
B is assumed when none is given (Norwegian AMS meters are class B or better), and the
result says which was used. Each side of the regression's interval is widened by the
expanded HAN term in quadrature: ``g - sqrt((g - low)^2 + (k u_han)^2)`` and
``g + sqrt((high - g)^2 + (k u_han)^2)``.

The verdict is guarded acceptance (ILAC-G8), as for the sub-meter comparison:
``pass`` when the whole widened interval lies inside ``±claim``, ``fail`` when it lies
wholly outside, ``inconclusive`` otherwise. With a class B HAN meter (MPE 2 %) the
widened interval is at least about ±2.3 % wide, so the HAN comparison can find a gross
error but cannot confirm a ±1 % claim; a sub-meter or a better-known HAN meter can.

Assumptions (state them with every result)
------------------------------------------
* The HAN meter's error is within its class (above).
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

from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from scipy import stats

from zapanalytics.audit.limits import MID_TEMPERATURE_BANDS, class_uncertainty_pct
from zapanalytics.audit.regression_hours import (
    HOURLY_SCHEMA,
    hourly_energies,
    interpolate_register,
    is_single_phase_load,
    single_phase_share,
)

__all__ = [
    "DEFAULT_HAN_CLASS",
    "HOURLY_SCHEMA",
    "GainFit",
    "GainRegression",
    "estimate_gains",
    "fit_gains",
    "hourly_energies",
    "interpolate_register",
    "is_single_phase_load",
    "single_phase_share",
]

#: The HAN meter's accuracy class when none is given.
DEFAULT_HAN_CLASS = "B"


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
    """Guarded acceptance on an interval (ILAC-G8), as the sub-meter verdicts."""
    if -claim_pct <= low and high <= claim_pct:
        return "pass"
    if low > claim_pct or high < -claim_pct:
        return "fail"
    return "inconclusive"


def _per_installation(value, installation_id: str, default):
    if isinstance(value, Mapping):
        return value.get(installation_id, default)
    return default if value is None else value


_HAN_SCHEMA = {
    "han_meter_id": pl.String,
    "han_meter_class": pl.String,
    "han_class_source": pl.String,
    "u_han_pct": pl.Float64,
    "single_phase_load": pl.Boolean,
}


def _han_meter(
    installation_id: str,
    meter_id: str | None,
    meter_class: str | Mapping[str, str] | None,
    uncertainty_pct: float | Mapping[str, float] | None,
    single_phase_load: bool | Mapping[str, bool],
) -> dict:
    """The HAN meter's class and standard uncertainty [%] as used, and why."""
    def lookup(value):
        if isinstance(value, Mapping):
            return value.get(meter_id, value.get(installation_id)) if meter_id else value.get(installation_id)
        return value

    single = bool(_per_installation(single_phase_load, installation_id, False))
    known = lookup(uncertainty_pct)
    given = lookup(meter_class)
    chosen = given or DEFAULT_HAN_CLASS
    if known is not None:
        source, u = "calibrated", float(known)
    else:
        source = "given" if given else "default"
        u = class_uncertainty_pct(
            chosen, single_phase_load=single, temperature_band=MID_TEMPERATURE_BANDS[0]
        )
    return {
        "han_meter_id": meter_id,
        "han_meter_class": chosen,
        "han_class_source": source,
        "u_han_pct": u,
        "single_phase_load": single,
    }


def estimate_gains(
    hourly: pl.DataFrame,
    *,
    timezones: dict[str, str] | str = "Europe/Oslo",
    confidence: float = 0.95,
    claim_pct: float = 1.0,
    min_charging_hours: int = 24,
    han_meter_class: str | Mapping[str, str] | None = None,
    han_uncertainty_pct: float | Mapping[str, float] | None = None,
    single_phase_load: bool | Mapping[str, bool] = False,
    coverage_factor: float = 2.0,
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
    han_meter_class : str or mapping of installation_id or meter_id to class, optional
        The HAN meter's MID accuracy class (``"A"``, ``"B"``, ``"C"``); default
        :data:`DEFAULT_HAN_CLASS`, said so in ``han_class_source``.
    han_uncertainty_pct : float or mapping, optional
        The HAN meter's standard uncertainty [%] when known (a calibration); overrides
        the class.
    single_phase_load : bool or mapping of installation_id to bool
        The chargers load the (polyphase) HAN meter on one phase: MID's wider row.
    coverage_factor : float
        k for the HAN meter's term (2: about 95 %).

    Returns
    -------
    GainRegression
        ``chargers``: installation_id, charger_id, hours, charging_hours,
        charger_energy_kwh, gain_error_pct, ci_low_pct and ci_high_pct (the interval
        with the HAN meter's uncertainty), regression_ci_low_pct and
        regression_ci_high_pct (the regression's alone), confidence, han_meter_id,
        han_meter_class, han_class_source (``given``, ``default`` or ``calibrated``),
        u_han_pct, single_phase_load, limit_pct, verdict (``pass``, ``fail``,
        ``inconclusive``, ``insufficient_data``), flagged. ``installations``: hours,
        days, r_squared, residual_std_kwh, chargers, baseline, the HAN meter's id,
        class and standard uncertainty, and an error text when the fit failed.
    """
    charger_rows, installation_rows = [], []
    for (installation_id,), group in hourly.group_by("installation_id", maintain_order=True):
        zone = ZoneInfo(
            timezones
            if isinstance(timezones, str)
            else timezones.get(installation_id, "Europe/Oslo")
        )
        meter_id = group["meter_id"].drop_nulls().first() if "meter_id" in group.columns else None
        han = _han_meter(
            installation_id, meter_id, han_meter_class, han_uncertainty_pct, single_phase_load
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
                    {"installation_id": installation_id, "hours": wide.height, "error": str(exc),
                     **han}
                )  # fmt: skip
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
                "regression_ci_low_pct": None,
                "regression_ci_high_pct": None,
                "confidence": confidence,
                **han,
                "limit_pct": claim_pct,
                "verdict": "insufficient_data",
                "flagged": False,
            }
            if enough[index]:
                position = next(fitted)
                if fit is not None:
                    gain = float(fit.gain_pct[position])
                    low = float(fit.gain_low_pct[position])
                    high = float(fit.gain_high_pct[position])
                    spread = coverage_factor * han["u_han_pct"]
                    wide_low = gain - float(np.hypot(gain - low, spread))
                    wide_high = gain + float(np.hypot(high - gain, spread))
                    verdict = _classify(wide_low, wide_high, claim_pct)
                    row.update(
                        gain_error_pct=gain,
                        ci_low_pct=wide_low,
                        ci_high_pct=wide_high,
                        regression_ci_low_pct=low,
                        regression_ci_high_pct=high,
                        verdict=verdict,
                        flagged=verdict == "fail",
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
                    **han,
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
        "regression_ci_low_pct": pl.Float64,
        "regression_ci_high_pct": pl.Float64,
        "confidence": pl.Float64,
        **_HAN_SCHEMA,
        "limit_pct": pl.Float64,
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
        **_HAN_SCHEMA,
    }
    return GainRegression(
        chargers=pl.DataFrame(charger_rows, schema=charger_schema),
        installations=pl.DataFrame(installation_rows, schema=installation_schema),
    )
