"""Register and session integrity on synthetic store frames with injected faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from audit_helpers import (
    ZAPTEC_SA,
    build_fleet,
    private_key,
    sign,
    zaptec_session_payload,
)

from zapanalytics.audit.evidence import clock_findings, duplicate_findings, signature_findings
from zapanalytics.audit.findings import FINDING_SCHEMA
from zapanalytics.audit.integrity import (
    UINT32_WH_ROLLOVER_KWH,
    integrity_findings,
    register_findings,
    session_energy_findings,
    session_gap_findings,
)
from zapanalytics.audit.signed import public_keys_from_states, signed_records

HEALTHY, RESET, TAMPERED = "ZPR000001", "ZPR000002", "ZPR000003"


@pytest.fixture(scope="module")
def faulty_fleet():
    return build_fleet(reset_charger=RESET, tampered=(TAMPERED, 4))


def _audit(fleet, **kwargs):
    return integrity_findings(
        fleet["sessions"],
        fleet["energy_details"],
        fleet["meter_values"],
        fleet["charger_states"],
        **kwargs,
    )


def _kinds(findings: pl.DataFrame) -> set[tuple]:
    return set(findings.select("kind", "charger_id", "session_id").iter_rows())


def test_the_same_sessions_recorded_by_a_second_system_are_not_overlaps(faulty_fleet):
    # An OCPP central system records the same charging as the cloud, under its own ids
    # (its meterStop is the meter's, not the tampered record's).
    twins = faulty_fleet["sessions"].with_columns(
        session_id="ocpp:" + pl.col("session_id"),
        source=pl.lit("ocpp"),
        signed_session=None,
        commit_metadata=None,
        meter_stop_kwh=pl.col("meter_start_kwh") + pl.col("energy_kwh"),
    )
    sessions = pl.concat([faulty_fleet["sessions"], twins])
    both = {**faulty_fleet, "sessions": sessions}

    findings = _audit(both)

    assert not findings["kind"].is_in(["overlapping_sessions", "register_decrease"]).any()
    assert _kinds(_audit(faulty_fleet)) <= _kinds(findings)
    # Within one system an overlap is still one.
    overlapping = pl.concat([faulty_fleet["sessions"], twins.with_columns(source=pl.lit("test"))])
    assert "overlapping_sessions" in set(_audit({**faulty_fleet, "sessions": overlapping})["kind"])


def test_the_audit_finds_exactly_the_injected_reset_and_tampered_record(faulty_fleet):
    findings = _audit(faulty_fleet)
    tampered_session = faulty_fleet["truth"]["tampered_session"]

    assert findings.schema == FINDING_SCHEMA
    assert _kinds(findings) == {
        ("register_reset", RESET, None),
        ("ocmf_invalid_signature", TAMPERED, tampered_session),
        ("session_energy_mismatch", TAMPERED, tampered_session),
    }
    assert findings.filter(pl.col("charger_id") == HEALTHY).is_empty()
    reset = findings.filter(pl.col("kind") == "register_reset").row(0, named=True)
    reset_at = faulty_fleet["truth"]["reset_at"]
    assert reset_at < reset["ts_utc"] <= reset_at + timedelta(minutes=15)
    assert reset["severity"] == "warning" and "restarted" in reset["explanation"]
    mismatch = findings.filter(pl.col("kind") == "session_energy_mismatch").row(0, named=True)
    assert mismatch["magnitude"] == pytest.approx(0.9)  # the tamperer added 900 Wh
    assert mismatch["magnitude_unit"] == "kWh"


def test_a_healthy_fleet_has_no_findings():
    fleet = build_fleet(days=6, seed=2)
    assert _audit(fleet).is_empty()


def test_keys_come_from_state_981_unless_given(faulty_fleet):
    keys = public_keys_from_states(faulty_fleet["charger_states"])
    assert keys == faulty_fleet["public_keys"]

    # A wrong key given for one charger overrides the store's and fails its records.
    wrong = {HEALTHY: faulty_fleet["public_keys"][RESET]}
    findings = _audit(faulty_fleet, public_keys=wrong)
    healthy = findings.filter(pl.col("charger_id") == HEALTHY)
    assert set(healthy["kind"]) == {"ocmf_invalid_signature"}
    assert (
        healthy.height
        == faulty_fleet["sessions"].filter(pl.col("charger_id") == HEALTHY).height
        + faulty_fleet["charger_states"]
        .filter((pl.col("charger_id") == HEALTHY) & (pl.col("state_id") == 554))
        .height
    )


def test_without_keys_records_are_reported_unverified_and_tampering_still_shows(faulty_fleet):
    states = faulty_fleet["charger_states"].filter(pl.col("state_id") != 981)

    findings = integrity_findings(
        faulty_fleet["sessions"],
        faulty_fleet["energy_details"],
        faulty_fleet["meter_values"],
        states,
    )

    unverified = findings.filter(pl.col("kind") == "ocmf_not_verified")
    assert set(unverified["charger_id"]) == {HEALTHY, RESET, TAMPERED}
    # Unchecked is not passed: a warning that says how to check them.
    assert set(unverified["severity"]) == {"warning"}
    assert all("--public-keys" in text for text in unverified["explanation"])
    assert ("session_energy_mismatch", TAMPERED, faulty_fleet["truth"]["tampered_session"]) in (
        _kinds(findings)
    )


def test_a_tampered_periodic_record_is_found(faulty_fleet):
    states = faulty_fleet["charger_states"]
    target = states.filter((pl.col("state_id") == 554) & (pl.col("charger_id") == HEALTHY)).row(
        3, named=True
    )
    tampered_value = target["value"].replace('"RV":', '"RV":1', 1)
    states = states.with_columns(
        value=pl.when(
            (pl.col("charger_id") == HEALTHY)
            & (pl.col("ts_utc") == target["ts_utc"])
            & (pl.col("state_id") == 554)
        )
        .then(pl.lit(tampered_value))
        .otherwise(pl.col("value"))
    )

    signed = signed_records(faulty_fleet["sessions"], states)
    findings = signature_findings(signed)

    bad = findings.filter(pl.col("charger_id") == HEALTHY)
    assert bad.select("kind", "ts_utc").rows() == [("ocmf_invalid_signature", target["ts_utc"])]
    assert "periodic record" in bad["explanation"][0]


def _series(charger_id: str, values_kwh: list[float], *, step_min: int = 15) -> pl.DataFrame:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "charger_id": charger_id,
            "ts_utc": [start + timedelta(minutes=step_min * i) for i in range(len(values_kwh))],
            "source": "zaptec_state",
            "energy_register_kwh": values_kwh,
        }
    ).with_columns(pl.col("ts_utc").cast(pl.Datetime("us", "UTC")))


def test_register_falls_are_told_apart_rollover_reset_decrease_and_jumps_are_flagged():
    near_top = UINT32_WH_ROLLOVER_KWH - 0.5
    values = pl.concat(
        [
            _series("roll", [near_top - 1, near_top, 1.2, 2.0]),
            _series("reset", [1500.0, 1500.0, 0.0, 0.4]),
            _series("dip", [1500.0, 1500.0, 1499.5, 1501.0]),
            _series("jump", [1500.0, 1500.0, 1520.0, 1520.0]),
            _series("fine", [10.0, 12.5, 15.0, 15.0]),
        ]
    )

    findings = register_findings(values)

    assert _kinds(findings) == {
        ("register_rollover", "roll", None),
        ("register_reset", "reset", None),
        ("register_decrease", "dip", None),
        ("register_jump", "jump", None),
    }
    magnitudes = dict(findings.select("charger_id", "magnitude").iter_rows())
    assert magnitudes["dip"] == pytest.approx(0.5)
    assert magnitudes["jump"] == pytest.approx(20.0)
    rollover = findings.filter(pl.col("kind") == "register_rollover")["explanation"][0]
    assert "1.700 kWh were delivered across the wrap" in rollover
    severities = dict(findings.select("kind", "severity").iter_rows())
    assert severities == {
        "register_rollover": "info",
        "register_reset": "warning",
        "register_decrease": "error",
        "register_jump": "error",
    }


def test_a_missing_session_shows_as_a_register_gap():
    fleet = build_fleet(days=8, skipped_session=(HEALTHY, 4), seed=4)
    sessions = fleet["sessions"]
    skipped_energy = (
        sessions.filter(pl.col("session_id") == f"{HEALTHY}-s005")["meter_start_kwh"][0]
        - sessions.filter(pl.col("session_id") == f"{HEALTHY}-s003")["meter_stop_kwh"][0]
    )

    findings = session_gap_findings(sessions, signed_records(sessions, fleet["charger_states"]))

    assert findings.select("kind", "charger_id", "session_id").rows() == [
        ("register_gap", HEALTHY, f"{HEALTHY}-s005")
    ]
    assert findings["magnitude"][0] == pytest.approx(skipped_energy)
    assert skipped_energy > 4  # the skipped session delivered at least 4 kWh


def test_session_energy_figures_are_compared_within_rounding():
    fleet = build_fleet(days=4, chargers=("ZPR000009",), seed=9)
    sessions = fleet["sessions"]
    first, second = sessions["session_id"][0], sessions["session_id"][1]
    details = fleet["energy_details"].with_columns(
        # Half a Wh of rounding on every delta is normal; 50 Wh missing is not.
        energy_kwh=pl.when((pl.col("session_id") == first) & (pl.col("energy_kwh") > 0))
        .then(pl.col("energy_kwh") + 0.0005)
        .when((pl.col("session_id") == second) & (pl.col("energy_kwh") > 0))
        .then(pl.col("energy_kwh") - 0.05 / 4)
        .otherwise(pl.col("energy_kwh"))
    )

    findings = session_energy_findings(sessions, details)

    assert findings["session_id"].to_list() == [second]
    assert "sum of EnergyDetails" in findings["explanation"][0]


def test_duplicated_and_misattributed_records_and_overlapping_sessions():
    fleet = build_fleet(days=5, chargers=("ZPR000007",), seed=7)
    sessions = fleet["sessions"]
    ids = sessions["session_id"].to_list()
    copied = sessions["signed_session"][1]
    sessions = sessions.with_columns(
        signed_session=pl.when(pl.col("session_id") == ids[3])
        .then(pl.lit(copied))
        .otherwise(pl.col("signed_session")),
        start_utc=pl.when(pl.col("session_id") == ids[2])
        .then(pl.col("start_utc").shift(1) + timedelta(minutes=10))
        .otherwise(pl.col("start_utc")),
    )
    sessions = sessions.with_columns(
        end_utc=pl.when(pl.col("session_id") == ids[1])
        .then(pl.col("start_utc").shift(-1) + timedelta(hours=1))
        .otherwise(pl.col("end_utc"))
    )

    findings = duplicate_findings(sessions, signed_records(sessions, fleet["charger_states"]))

    assert _kinds(findings) == {
        ("duplicate_signed_record", "ZPR000007", ids[3]),
        ("ocmf_session_mismatch", "ZPR000007", ids[3]),
        ("overlapping_sessions", "ZPR000007", ids[2]),
    }


def test_a_drifting_clock_is_found_with_its_rate():
    fleet = build_fleet(days=10, clock_drift_ppm={HEALTHY: 200.0}, seed=12)

    signed = signed_records(fleet["sessions"], fleet["charger_states"])
    findings = clock_findings(fleet["sessions"], signed, tolerance_s=60)

    assert findings["charger_id"].to_list() == [HEALTHY]
    row = findings.row(0, named=True)
    # 200 ppm over the ten days: about 173 s by the last record.
    assert 150 < row["magnitude"] < 180
    assert "+200.0 ppm" in row["explanation"]


def test_sessions_marked_signed_without_a_record_and_failing_transactions():
    key = private_key("secp384r1", index=100)
    start = datetime(2025, 5, 1, 18, tzinfo=UTC)
    payload = zaptec_session_payload(
        "s-bad",
        "ZPR000001",
        [(start, 1_000_000, "B", 0.0), (start + timedelta(hours=2), 999_000, "E", 0.0)],
    )
    sessions = pl.DataFrame(
        {
            "session_id": ["s-missing", "s-bad", "s-void"],
            "charger_id": "ZPR000001",
            "start_utc": [start - timedelta(days=2), start, start - timedelta(days=1)],
            "end_utc": [
                start - timedelta(days=2) + timedelta(hours=1),
                start + timedelta(hours=2),
                start - timedelta(days=1) + timedelta(hours=1),
            ],
            "energy_kwh": [5.0, -1.0, 0.0],
            "meter_start_kwh": [None, 1000.0, None],
            "meter_stop_kwh": [None, 999.0, None],
            "commit_metadata": [1 | 16, 1 | 16, 1 | 16 | 32],
            "is_void": [False, False, True],
            "signed_session": [None, sign(payload, key, sa=ZAPTEC_SA), None],
        }
    ).with_columns(pl.col("start_utc", "end_utc").cast(pl.Datetime("us", "UTC")))
    keys = {"ZPR000001": key.public_key()}

    findings = signature_findings(signed_records(sessions, None, keys), sessions)

    assert _kinds(findings) == {
        ("ocmf_missing", "ZPR000001", "s-missing"),
        ("ocmf_transaction_failed", "ZPR000001", "s-bad"),
    }
    failed = findings.filter(pl.col("kind") == "ocmf_transaction_failed")["explanation"][0]
    assert "values_non_decreasing" in failed
