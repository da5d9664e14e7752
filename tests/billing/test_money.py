"""Rounding rules of statement money: whole øre, half away from zero, VAT per line."""

from __future__ import annotations

import polars as pl
import pytest

from zapanalytics.billing.money import (
    allocate_ore,
    nok_to_ore,
    ore_expr,
    rate_basis_points,
    split_gross_ore,
    vat_ore,
    vat_ore_expr,
)


def test_half_away_from_zero_including_float_representation():
    # 1.005 is stored as 1.00499999999999989…; on paper it rounds up to 1.01.
    values = pl.Series([1.005, -1.005, 0.125, -0.125, 2.344999, 0.0])
    assert pl.select(ore_expr(pl.lit(values))).to_series().to_list() == [101, -101, 13, -13, 234, 0]
    assert [nok_to_ore(v) for v in values] == [101, -101, 13, -13, 234, 0]


def test_vat_per_line_in_integer_arithmetic():
    # 14.50 NOK × 25 % = 3.625 → 3.63; -6.30 NOK × 25 % = -1.575 → -1.58.
    assert vat_ore(1450, 2500) == 363
    assert vat_ore(-630, 2500) == -158
    frame = pl.DataFrame({"ore": [1450, -630, 10]})
    assert frame.select(vat_ore_expr(pl.col("ore"), pl.lit(2500)))["ore"].to_list() == [
        363,
        -158,
        3,
    ]


def test_gross_split_adds_back_to_the_gross():
    # 36.88 NOK incl. 25 % VAT: 3688 / 1.25 = 2950.4 → 2950 øre, VAT the remaining 738.
    frame = pl.DataFrame({"gross": [3688, 2000, -125, 0]})
    net, vat = split_gross_ore(pl.col("gross"), pl.lit(2500))
    out = frame.select(net.alias("net"), vat.alias("vat"))
    assert out["net"].to_list() == [2950, 1600, -100, 0]
    assert (out["net"] + out["vat"]).to_list() == frame["gross"].to_list()


def test_rate_in_basis_points():
    assert rate_basis_points(0.25) == 2500
    assert rate_basis_points(0.0) == 0
    with pytest.raises(ValueError, match="basis point"):
        rate_basis_points(0.123456)


def test_largest_remainder_shares_add_up_exactly():
    # 100 øre by 1:1:1 → 33.33 each; the remaining øre goes to the first (ties by order).
    assert allocate_ore(100, [1, 1, 1]) == [34, 33, 33]
    # 1000 øre by 7:2:1 = 700, 200, 100 exactly.
    assert allocate_ore(1000, [7, 2, 1]) == [700, 200, 100]
    # Negative residuals share the same way.
    assert allocate_ore(-101, [1, 1]) == [-51, -50]
    # All-zero weights share equally.
    assert allocate_ore(5, [0, 0]) == [3, 2]
    with pytest.raises(ValueError):
        allocate_ore(5, [1, -1])
