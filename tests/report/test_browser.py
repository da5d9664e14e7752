"""The demo report in a real browser: Debian's Chromium, headless, driven by Playwright.

Asserts no console errors, every plotly figure rendered (an SVG inside each figure's div),
and no request left the machine. Saves a full-page screenshot to ``out/report_screenshot.png``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed and `make browser` could not install it (apt-get failed)")


def open_report(report: Path, screenshot: Path, timeout_ms: int = 60_000) -> dict:
    """Load ``report`` headless; return console errors, outside requests and figure counts."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    console_errors: list[str] = []
    outside: list[str] = []
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))

            def guard(route):
                scheme = urlparse(route.request.url).scheme
                if scheme in ("file", "data", "blob", "about"):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", guard)
            page.goto(report.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.plotly-graph-div')]"
                ".every(d => d.querySelector('svg.main-svg'))",
                timeout=timeout_ms,
            )
            figures = page.eval_on_selector_all(".plotly-graph-div", "divs => divs.length")
            rendered = page.eval_on_selector_all(
                ".plotly-graph-div", "divs => divs.filter(d => d.querySelector('svg.main-svg')).length"
            )
            sections = page.eval_on_selector_all("main > section", "s => s.map(x => x.id)")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {
        "console_errors": console_errors,
        "outside_requests": outside,
        "figures": figures,
        "rendered": rendered,
        "sections": sections,
    }


def test_demo_report_renders_offline_in_chromium(demo_out):
    screenshot = REPO / "out" / "report_screenshot.png"
    result = open_report(demo_out / "report.html", screenshot)
    assert result["console_errors"] == []
    assert result["outside_requests"] == []
    assert result["figures"] >= 3
    assert result["rendered"] == result["figures"]
    assert {"overview", "billing", "audit", "replay", "usage"} <= set(result["sections"])
    assert screenshot.stat().st_size > 10_000
