"""The manuals' product limits, enforced: chargers per installation, the installation fuse and
the charger's rated current; and simulations of any length, down to one quiet day."""

from __future__ import annotations

from datetime import date

import pytest
from typer.testing import CliRunner

from firmware_ref.allocator import ChargerDemand, SiteLimits, allocate
from firmware_ref.products import HOME, PRO, ProductLimitError, check_product_limits
from firmware_ref.simulate import SimulationConfig, simulate


def test_home_with_four_chargers_is_refused_with_the_manuals_limit():
    with pytest.raises(ProductLimitError, match="ZAPTEC HOME: 4 chargers .* at most 3"):
        SimulationConfig(kind="home", n_chargers=4, main_fuse_a=40.0, days=1)


def test_home_on_a_63_a_fuse_is_refused():
    with pytest.raises(ProductLimitError, match="63 A fuse .* at most 40 A"):
        SimulationConfig(kind="home", n_chargers=3, main_fuse_a=63.0, days=1)


def test_charge_current_above_the_rating_is_refused():
    with pytest.raises(ProductLimitError, match="50 A; the charger is rated for at most 32 A"):
        SimulationConfig(kind="coop", n_chargers=2, main_fuse_a=32.0, charger_max_current_a=50.0)


def test_pro_limits_are_the_pro_manuals():
    check_product_limits(PRO, chargers=100, installation_fuse_a=63.0, charger_max_current_a=32.0)
    with pytest.raises(ProductLimitError, match="101 chargers"):
        check_product_limits(PRO, chargers=101, installation_fuse_a=63.0, charger_max_current_a=32.0)
    with pytest.raises(ProductLimitError, match="80 A fuse"):
        check_product_limits(PRO, chargers=10, installation_fuse_a=80.0, charger_max_current_a=32.0)
    check_product_limits(HOME, chargers=3, installation_fuse_a=40.0, charger_max_current_a=32.0)


def test_limits_can_be_lifted_for_load_studies_only_on_request():
    config = SimulationConfig(
        kind="coop", n_chargers=2, main_fuse_a=250.0, days=1, enforce_product_limits=False
    )
    assert config.fuse_a == 250.0


def test_a_demand_above_the_rating_is_allocated_no_more_than_the_rating():
    site = SiteLimits(available_current_a=(63.0, 63.0, 63.0))
    result = allocate(
        site, [ChargerDemand("a", charger_max_current_a=50.0, car_max_current_a=50.0)], now_s=0.0
    )
    allocation = result.allocations["a"]
    assert allocation.current_a == pytest.approx(32.0)
    assert max(result.line_currents_a) == pytest.approx(32.0)


@pytest.mark.parametrize("kind", ["coop", "home", "workplace"])
@pytest.mark.parametrize("chargers", [1, 2])
def test_one_day_simulates_for_every_kind(kind, chargers):
    """A span with no allocator run at all (no car came) must not break the outputs."""
    result = simulate(
        SimulationConfig(kind=kind, n_chargers=chargers, days=1, start=date(2025, 10, 1)), 2025
    )
    lines = result.line_currents
    assert lines.height > 0
    for k in (1, 2, 3):
        assert lines[f"allocated_l{k}_a"].min() >= 0.0
        assert lines[f"available_l{k}_a"].null_count() == 0
    assert result.sessions["charger_id"].dtype.is_(result.sessions["device_id"].dtype)


@pytest.mark.parametrize("kind", ["coop", "home", "workplace"])
def test_sample_cli_one_day_for_every_kind(tmp_path, kind):
    from zapanalytics.cli import app

    out = tmp_path / kind
    run = CliRunner().invoke(app, ["sample", "--days", "1", "--chargers", "2", "--kind", kind,
                                   "--out", str(out), "--json"])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert (out / "zaptec").is_dir()
    assert any((out / "zaptec" / "chargehistory").iterdir())


def test_sample_cli_refuses_a_home_with_four_chargers(tmp_path):
    from zapanalytics.cli import app

    run = CliRunner().invoke(app, ["sample", "--days", "1", "--chargers", "4", "--kind", "home",
                                   "--out", str(tmp_path / "h")])  # fmt: skip
    assert run.exit_code != 0
    assert "at most 3" in str(run.exception) + run.output
