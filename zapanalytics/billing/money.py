"""Money on statements: whole øre, rounded once per statement line, so totals add up.

The rounding rules, in the order they apply:

1. Interval amounts (energy × price) are summed exactly as floats per user, month and line.
2. Each line's amount excl. VAT is rounded to whole øre, half away from zero.
3. Each line's VAT is computed from that rounded amount in integer arithmetic
   (``ore × rate``) and rounded to whole øre, half away from zero.
4. A line's total is amount + VAT. A user's totals and the bill's totals are sums of those
   integers, so every total equals the sum of the lines printed above it, to the øre.

A flat price is quoted including VAT, so there the total is rounded first and split into
amount and VAT (rule :func:`split_gross_ore`).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import polars as pl

#: Absorbs float summation error (far below one øre) before rounding half away from zero,
#: so that e.g. 1.005 NOK, stored as 1.00499999…, rounds to 1.01 NOK like on paper.
_NUDGE_ORE = 1e-7
#: VAT rates are handled in basis points (25 % = 2500) to keep VAT in integer arithmetic.
BASIS_POINTS = 10_000


def ore_expr(nok: pl.Expr) -> pl.Expr:
    """NOK amounts (float) to whole øre (Int64), rounded half away from zero."""
    scaled = nok * 100.0
    magnitude = (scaled.abs() + 0.5 + _NUDGE_ORE).floor()
    return (pl.when(scaled < 0).then(-magnitude).otherwise(magnitude)).cast(pl.Int64)


def nok_to_ore(nok: float) -> int:
    """One NOK amount to whole øre, half away from zero (same rule as :func:`ore_expr`)."""
    scaled = nok * 100.0
    magnitude = int(abs(scaled) + 0.5 + _NUDGE_ORE)
    return -magnitude if scaled < 0 else magnitude


def rate_basis_points(rate: float) -> int:
    """A rate such as 0.25 as whole basis points (2500); refuses finer rates."""
    points = Decimal(repr(rate)) * BASIS_POINTS
    if points != points.to_integral_value():
        raise ValueError(f"rate {rate} is finer than a basis point")
    return int(points)


def _div_half_away(numerator: pl.Expr, denominator: int) -> pl.Expr:
    """Integer division rounded half away from zero (denominator > 0)."""
    magnitude = (numerator.abs() * 2 + denominator) // (2 * denominator)
    return pl.when(numerator < 0).then(-magnitude).otherwise(magnitude)


def vat_ore_expr(amount_ore: pl.Expr, vat_basis_points: pl.Expr) -> pl.Expr:
    """VAT in øre on an amount in øre, at a rate in basis points, half away from zero."""
    return _div_half_away(amount_ore * vat_basis_points, BASIS_POINTS).cast(pl.Int64)


def vat_ore(amount_ore: int, vat_basis_points: int) -> int:
    """Scalar twin of :func:`vat_ore_expr`."""
    numerator = amount_ore * vat_basis_points
    magnitude = (abs(numerator) * 2 + BASIS_POINTS) // (2 * BASIS_POINTS)
    return -magnitude if numerator < 0 else magnitude


def split_gross_ore(gross_ore: pl.Expr, vat_basis_points: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Split an amount including VAT into (amount excl. VAT, VAT), both in øre.

    The amount excl. VAT is ``gross / (1 + rate)`` rounded half away from zero; VAT is the
    remainder, so the two always add back to the gross amount.
    """
    denominator = pl.lit(BASIS_POINTS) + vat_basis_points
    numerator = gross_ore * BASIS_POINTS
    magnitude = (numerator.abs() * 2 + denominator) // (2 * denominator)
    net = pl.when(numerator < 0).then(-magnitude).otherwise(magnitude).cast(pl.Int64)
    return net, (gross_ore - net).cast(pl.Int64)


def ore_to_nok(ore: int) -> float:
    """Whole øre to NOK for display and JSON (exact to two decimals)."""
    return float(Decimal(ore) / 100)


def format_nok(ore: int) -> str:
    """``12345`` øre → ``"123.45"``."""
    return str((Decimal(ore) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def allocate_ore(total_ore: int, weights: list[float]) -> list[int]:
    """Share ``total_ore`` by ``weights`` in whole øre that add up exactly (largest remainder).

    Parameters
    ----------
    total_ore : int
        Amount to share [øre]; may be negative.
    weights : list of float
        Non-negative weights; all zero shares equally.

    Returns
    -------
    list of int
        One share per weight [øre], summing to ``total_ore``.
    """
    if not weights:
        return []
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    total_weight = sum(weights)
    if total_weight <= 0:
        weights = [1.0] * len(weights)
        total_weight = float(len(weights))
    sign = -1 if total_ore < 0 else 1
    magnitude = abs(total_ore)
    exact = [Decimal(magnitude) * Decimal(repr(w)) / Decimal(repr(total_weight)) for w in weights]
    shares = [int(x) for x in exact]  # floor for non-negative values
    remainder = magnitude - sum(shares)
    # The largest fractional parts get one more øre; ties go to the earlier entry.
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for index in order[:remainder]:
        shares[index] += 1
    return [sign * s for s in shares]
