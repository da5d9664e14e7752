"""Energy the registers show between sessions that no session accounts for."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tests.sessions.helpers import charge_history, cli, is_void, rewrite_charge_history
from zapanalytics.audit.completeness import unaccounted_energy, unaccounted_energy_findings

T0 = dt.datetime(2025, 10, 1, 16, 0, tzinfo=dt.UTC)


def _sessions(rows):
    return pl.DataFrame(
        [
            {
                "session_id": sid,
                "charger_id": charger,
                "source": source,
                "start_utc": T0 + dt.timedelta(hours=start_h),
                "end_utc": T0 + dt.timedelta(hours=end_h),
                "meter_start_kwh": begin,
                "meter_stop_kwh": end,
                "is_void": False,
            }
            for sid, charger, source, start_h, end_h, begin, end in rows
        ],
        schema_overrides={"start_utc": pl.Datetime("us", "UTC"), "end_utc": pl.Datetime("us", "UTC")},
    )


def test_window_energy_is_the_register_between_sessions_across_sources():
    sessions = _sessions(
        [
            ("a", "c1", "zaptec_api", 0, 2, 100.0, 110.0),
            # The next day's charging reached only OCPP: it accounts for its energy.
            ("ocpp:c1:2", "c1", "ocpp", 24, 26, 110.0, 117.5),
            # Then 12.25 kWh no source recorded.
            ("b", "c1", "zaptec_api", 48, 50, 129.75, 130.0),
            # A register step under 10 Wh is rounding; another charger is its own chain.
            ("c", "c1", "zaptec_api", 72, 73, 130.004, 131.0),
            ("d", "c2", "zaptec_api", 1, 2, 5.0, 6.0),
        ]
    )
    windows = unaccounted_energy(sessions)
    assert windows.select("charger_id", "energy_kwh", "previous_session_id", "next_session_id").rows() == [
        ("c1", 12.25, "ocpp:c1:2", "b")
    ]
    assert windows["window_start_utc"][0] == T0 + dt.timedelta(hours=26)
    assert windows["window_end_utc"][0] == T0 + dt.timedelta(hours=48)
    findings = unaccounted_energy_findings(sessions)
    assert findings.select("kind", "severity", "magnitude", "magnitude_unit", "session_id").rows() == [
        ("unaccounted_energy", "warning", 12.25, "kWh", "b")
    ]
    assert "2025-10-02 18:00:00Z and 2025-10-03 16:00:00Z" in findings["explanation"][0]


def test_a_failed_signature_leaves_its_neighbouring_windows_unjudged():
    sessions = _sessions(
        [("a", "c1", "zaptec_api", 0, 2, 100.0, 110.0), ("b", "c1", "zaptec_api", 24, 26, 150.0, 151.0)]
    )
    signed = pl.DataFrame(
        {
            "session_id": ["b"],
            "record_source": ["session"],
            "verdict": ["invalid_signature"],
            "begin_kwh": [150.0],
            "end_kwh": [151.0],
        }
    )
    from zapanalytics.audit import signed as signed_module

    columns = signed_module.session_records(None).columns
    signed = signed.with_columns(
        pl.lit(None).cast(dtype).alias(name)
        for name, dtype in signed_module.session_records(None).schema.items()
        if name not in signed.columns
    ).select(["record_source", *columns])
    assert unaccounted_energy(sessions).height == 1
    assert unaccounted_energy(sessions, signed).is_empty()


def _removable(items, ocpp_serials):
    """A session on a charger without OCPP logs with a session before and after it."""
    for serial in sorted({i["DeviceId"] for i in items} - ocpp_serials):
        own = sorted((i for i in items if i["DeviceId"] == serial and not is_void(i)), key=lambda i: i["StartDateTime"])
        if len(own) >= 3:
            return own[1]
    raise AssertionError("the simulated site has no charger with three sessions and no OCPP log")


def test_a_removed_session_is_reported_as_unaccounted_energy(site_copy, tmp_path, monkeypatch):
    items = charge_history(site_copy)
    ocpp_serials = {p.stem for p in (site_copy / "ocpp").glob("*.jsonl")}
    removed = _removable(items, ocpp_serials)
    # And on a charger with OCPP logs, the cloud loses a session that OCPP still has.
    on_ocpp = next(i for i in items if i["DeviceId"] in ocpp_serials and not is_void(i))
    gone = {removed["Id"], on_ocpp["Id"]}
    rewrite_charge_history(site_copy, lambda page: [i for i in page if i["Id"] not in gone])

    db = tmp_path / "zap.duckdb"
    cli("ingest", "zaptec", "--db", db, "--dump", site_copy, "--json")
    cli("ingest", "ocpp", "--db", db, "--logs", site_copy / "ocpp", "--json")
    audit = cli("audit", "--db", db, "--json")
    found = [f for f in audit["findings"] if f["kind"] == "unaccounted_energy"]
    assert len(found) == 1, found
    # One missing charging is one finding: the same window as a register gap is not repeated.
    assert not [f for f in audit["findings"] if f["kind"] == "register_gap"]
    (finding,) = found
    assert finding["magnitude"] == pytest.approx(removed["Energy"], abs=0.0015)
    assert finding["magnitude_unit"] == "kWh"
    assert removed["DeviceId"] in finding["charger_name"]
    start = dt.datetime.fromisoformat(removed["StartDateTime"]).replace(tzinfo=dt.UTC)
    window_start = dt.datetime.fromisoformat(finding["ts_utc"])
    assert window_start <= start
    assert f"{removed['Energy']:,.3f} kWh registered between" in finding["explanation"]

    from zapanalytics.cli.output import console as terminal

    monkeypatch.setattr(terminal, "width", 250)  # one charger per line in the summary table
    lines = cli("audit", "--db", db).splitlines()
    row = next(line for line in lines if removed["DeviceId"] in line)
    assert "unaccounted_energy" in row
    cli("report", "--db", db, "--out", tmp_path / "report.html", "--json")
    page = (tmp_path / "report.html").read_text("utf-8")
    assert "unaccounted_energy" in page and f"{removed['Energy']:,.3f} kWh registered" in page
