"""Accuracy against sub-meters, on synthetic registers with known gain errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from audit_helpers import build_metered

from zapanalytics.audit.accuracy import (
    CURRENT_BANDS,
    accuracy_bands,
    accuracy_windows,
    audit_accuracy,
    infer_resolution_kwh,
)
from zapanalytics.audit.limits import judge, limit_pct

GAINS = {"ZPR-ok": 0.0, "ZPR-high": 0.018, "ZPR-low": -0.003}


@pytest.fixture(scope="module")
def metered():
    return build_metered(gains=GAINS)


@pytest.fixture(scope="module")
def audit(metered):
    return audit_accuracy(
        metered["meter_values"], metered["reference_readings"], metered["chargers"]
    )


def test_the_plus_1_8_percent_meter_fails_and_the_healthy_ones_pass(audit):
    verdicts = dict(audit.chargers.select("charger_id", "verdict").iter_rows())

    assert verdicts == {"ZPR-high": "fail", "ZPR-low": "pass", "ZPR-ok": "pass"}
    errors = dict(audit.chargers.select("charger_id", "error_pct").iter_rows())
    assert errors["ZPR-high"] == pytest.approx(1.8, abs=0.1)
    assert errors["ZPR-low"] == pytest.approx(-0.3, abs=0.1)
    assert errors["ZPR-ok"] == pytest.approx(0.0, abs=0.1)
    evidence = audit.chargers.filter(pl.col("charger_id") == "ZPR-high")["evidence"][0]
    assert "above_50pct_imax: +1.8" in evidence and ": fail" in evidence


def test_every_band_is_measured_and_each_band_estimate_covers_the_truth(audit):
    bands = audit.bands
    assert set(bands["band"]) == set(CURRENT_BANDS)
    for row in bands.iter_rows(named=True):
        truth = GAINS[row["charger_id"]] * 100
        assert abs(row["error_pct"] - truth) <= row["expanded_uncertainty_pct"], row
        # The band's current range matches how the test charged: 2, 10 and 30 A.
        expected_a = {"below_10pct_imax": 2.0, "10_to_50pct_imax": 10.0, "above_50pct_imax": 30.0}[
            row["band"]
        ]
        assert row["mean_current_a"] == pytest.approx(expected_a, abs=0.5)


def test_windows_satisfy_the_lab_resolution_rule(audit):
    windows = audit.windows
    assert windows.height > 100
    assert windows["charger_steps"].min() >= 100
    assert windows["reference_steps"].min() >= 100
    assert windows["charger_q_kwh"].unique().to_list() == [0.001]
    assert windows["reference_q_kwh"].unique().to_list() == [0.01]
    # Resolution, interpolation and timing together stay within the 0.2 % target.
    combined = (
        windows["u_resolution_pct"] ** 2
        + windows["u_interpolation_pct"] ** 2
        + windows["u_timing_pct"] ** 2
    ).sqrt()
    assert combined.max() <= 0.2 + 1e-9


def test_the_verdicts_against_mid_are_wider_than_against_the_claim(audit):
    high = audit.chargers.filter(pl.col("charger_id") == "ZPR-high").row(0, named=True)
    # Class B MID MPE is 2 %: +1.8 % ± ~0.6 % cannot be called either way.
    assert high["verdict_claim"] == "fail"
    assert high["verdict_en50470_3"] == "fail"
    assert high["verdict_mid"] == "inconclusive"


def test_a_reference_lag_is_corrected_not_mistaken_for_meter_error():
    data = build_metered(gains={"ZPR-lag": 0.0}, reference_lag_s=25, days=3, seed=8)

    # Each charger reading is paired with the reference interpolated to its time, so a
    # lag needs no matching tolerance.
    bands = audit_accuracy(data["meter_values"], data["reference_readings"], data["chargers"]).bands

    assert bands["error_pct"].abs().max() < 0.15


def test_a_charger_without_reference_and_too_few_windows_are_inconclusive(metered):
    chargers = pl.concat(
        [
            metered["chargers"],
            pl.DataFrame(
                {"charger_id": ["ZPR-none"], "installation_id": ["inst-1"], "max_current_a": [32.0]}
            ),
        ]
    )

    audit = audit_accuracy(
        metered["meter_values"],
        metered["reference_readings"],
        chargers,
        band_options={"min_windows": 1000},
    )

    verdicts = dict(audit.chargers.select("charger_id", "verdict").iter_rows())
    assert set(verdicts.values()) == {"inconclusive"}
    assert audit.chargers.filter(pl.col("charger_id") == "ZPR-none")["evidence"][0] == (
        "no reference meter readings for this charger"
    )


def test_a_coarser_reference_needs_longer_windows_and_adds_uncertainty(metered):
    reference = metered["reference_readings"].with_columns(
        energy_import_kwh=(pl.col("energy_import_kwh") * 10).floor() / 10
    )

    fine = accuracy_windows(
        metered["meter_values"], metered["reference_readings"], metered["chargers"]
    )
    coarse = accuracy_windows(metered["meter_values"], reference, metered["chargers"])

    assert coarse["reference_q_kwh"].unique().to_list() == [0.1]
    assert coarse["reference_energy_kwh"].min() >= 100 * 0.1 - 0.2
    assert coarse["reference_energy_kwh"].mean() > fine["reference_energy_kwh"].mean()
    assert coarse.height < fine.height


def test_a_known_reference_uncertainty_replaces_the_class_bound(metered):
    windows = accuracy_windows(
        metered["meter_values"], metered["reference_readings"], metered["chargers"]
    )

    by_class = accuracy_bands(windows, reference_class="C")
    calibrated = accuracy_bands(windows, reference_uncertainty_pct=0.05)

    assert by_class["u_reference_pct"].unique().to_list() == [pytest.approx(0.5 / np.sqrt(3))]
    assert (calibrated["expanded_uncertainty_pct"] < by_class["expanded_uncertainty_pct"]).all()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 2.0, 3.0], 1.0),
        ([1.25, 2.5, 3.75], 0.01),
        ([0.001, 1537.688, 2410.0], 0.001),
        ([10.0, 10.5, 11.0], 0.1),
        ([1.2345678], 1e-6),
        ([], 1e-6),
    ],
)
def test_register_resolution_is_inferred_from_the_decimals(values, expected):
    assert infer_resolution_kwh(np.array(values)) == pytest.approx(expected)


def test_a_register_idle_at_a_round_number_does_not_hide_its_step():
    # Days idle at exactly 1000 kWh, then charging in watt-hours.
    values = np.concatenate([np.full(8000, 1000.0), 1000.0 + np.arange(1, 500) * 0.007])
    assert infer_resolution_kwh(values) == pytest.approx(0.001)


def test_limits_and_the_guarded_decision_rule():
    assert limit_pct("claim", 0.1) == 1.0
    assert limit_pct("en50470_3", 16.0, meter_class="B") == 1.0
    assert limit_pct("en50470_3", 0.3, meter_class="B", itr_a=0.5) == 1.5
    assert limit_pct("mid", 16.0, meter_class="B") == 2.0
    assert limit_pct("mid", 16.0, meter_class="C") == 0.7
    assert judge(0.3, 0.5, 1.0) == "pass"
    assert judge(-1.8, 0.5, 1.0) == "fail"
    assert judge(0.8, 0.5, 1.0) == "inconclusive"
    with pytest.raises(ValueError):
        limit_pct("vibes", 1.0)
