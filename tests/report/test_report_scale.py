"""A report for a year of 100 chargers stays under 10 MB and opens in Chromium."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.report.test_browser import REPO, open_report

MAX_REPORT_BYTES = 10 * 1024 * 1024


@pytest.mark.slow
def test_year_of_100_chargers_report_is_small_and_opens(tmp_path):
    from firmware_ref.dataset import DatasetSpec, generate_dataset
    from zapanalytics.pipeline import run_demo

    spec = DatasetSpec(days=365, n_chargers=100, start=dt.date(2025, 1, 1), main_fuse_a=63.0, faults="none")
    began = time.perf_counter()
    generate_dataset(tmp_path / "year", spec)
    generated = time.perf_counter()
    result = run_demo(tmp_path / "out", tmp_path / "year")
    built = time.perf_counter()
    size = result.report.path.stat().st_size
    opened = open_report(result.report.path, REPO / "out" / "report_year_screenshot.png", timeout_ms=120_000)
    shown = time.perf_counter()
    print(
        f"year x 100 chargers: generate {generated - began:.1f} s, ingest+report {built - generated:.1f} s,"
        f" browser {shown - built:.1f} s, report {size / 1e6:.2f} MB, figures {opened['figures']}"
    )
    assert size < MAX_REPORT_BYTES
    assert opened["console_errors"] == [] and opened["outside_requests"] == []
    assert opened["rendered"] == opened["figures"] >= 6
