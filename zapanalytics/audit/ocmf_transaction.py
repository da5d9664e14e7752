"""Transaction checks on a parsed OCMF record, on top of its signature.

A valid signature proves who wrote a record, not that the record is fit for billing.
The checks here follow the duties the OCMF specification gives a check component and
what the S.A.F.E. Transparenzsoftware enforces: exactly one begin (``TX=B``) and one
end reading, one register (``RI``/``RU``) throughout, register values and times that
never go backwards, register values a meter can hold (0 to 10^7 kWh), meter status
``G`` everywhere, no error flags, no exception
readings, and an identification level that is not an error state. The weakest clock
status in the transaction (``S`` > ``R`` > ``I`` > ``U``) is reported; it decides
whether the times may be used for time-based billing, not whether the energy is sound.

A record that holds one reading -- a begin-only or end-only record of a transaction sent
as separate records (DZG, NZR and others publish them so), or a fiscal record -- cannot
carry a begin/end pair: the pairing is checked across records, not within one. Its
``one_begin_one_end`` check is reported but marked not applicable, and does not fail
the record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zapanalytics.audit.ocmf_parse import OcmfRecord, Reading

__all__ = ["END_CODES", "Check", "TransactionCheck", "check_transaction", "weakest_clock_status"]

BEGIN_CODE = "B"
END_CODES = frozenset("ELRAP")
EXCEPTION_CODE = "X"
# Strongest first; a missing status counts as unknown.
_CLOCK_ORDER = ("S", "R", "I", "U")
_IDENTIFICATION_ERRORS = frozenset(("MISMATCH", "INVALID", "OUTDATED", "UNKNOWN"))
#: A lifetime register holds at most this (10^7 kWh, the largest any meter we know
#: counts to before it wraps); a larger RV is not a reading.
MAX_REGISTER_KWH = Decimal(10_000_000)


@dataclass(frozen=True)
class Check:
    """One named transaction check: ``passed`` and a one-line ``detail``; a check that
    does not apply to the record (``applicable`` False) is reported but never fails it."""

    name: str
    passed: bool
    detail: str
    applicable: bool = True


@dataclass(frozen=True)
class TransactionCheck:
    """The transaction checks of one record.

    Attributes
    ----------
    checks : tuple of Check
    begin, end : Reading or None
        The ``TX=B`` reading and the end reading, when there is exactly one of each.
    weakest_clock_status : str
        ``S``, ``R``, ``I`` or ``U`` (a reading without status counts as ``U``).
    energy_kwh_exact : Decimal or None
        End minus begin register [kWh], exact.
    """

    checks: tuple[Check, ...]
    begin: Reading | None
    end: Reading | None
    weakest_clock_status: str
    energy_kwh_exact: Decimal | None

    @property
    def passed(self) -> bool:
        """Every applicable check passed."""
        return all(check.passed for check in self.checks if check.applicable)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if c.applicable and not c.passed)

    @property
    def not_applicable(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.applicable)

    @property
    def energy_kwh(self) -> float | None:
        """End minus begin register [kWh]; None when it does not fit a float."""
        if self.energy_kwh_exact is None:
            return None
        value = float(self.energy_kwh_exact)
        return value if math.isfinite(value) else None

    @property
    def duration_s(self) -> float | None:
        """End minus begin reading time [s]."""
        if self.begin is None or self.end is None:
            return None
        return (self.end.time_utc - self.begin.time_utc).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": list(self.failed),
            "not_applicable": list(self.not_applicable),
            "checks": {
                c.name: {"passed": c.passed, "applicable": c.applicable, "detail": c.detail}
                for c in self.checks
            },
            "begin_utc": None if self.begin is None else self.begin.time_utc.isoformat(),
            "end_utc": None if self.end is None else self.end.time_utc.isoformat(),
            "end_code": None if self.end is None else self.end.transaction_code,
            "begin_kwh": None if self.begin is None else self.begin.energy_kwh,
            "end_kwh": None if self.end is None else self.end.energy_kwh,
            "energy_kwh": self.energy_kwh,
            "duration_s": self.duration_s,
            "weakest_clock_status": self.weakest_clock_status,
        }


def weakest_clock_status(readings: tuple[Reading, ...]) -> str:
    """The weakest clock status among ``readings`` (``S`` > ``R`` > ``I`` > ``U``)."""
    ranks = [
        _CLOCK_ORDER.index(r.clock_status) if r.clock_status in _CLOCK_ORDER else 3
        for r in readings
    ]
    return _CLOCK_ORDER[max(ranks, default=3)]


def _begin_end(readings: tuple[Reading, ...]) -> tuple[Check, Reading | None, Reading | None]:
    begins = [r for r in readings if r.transaction_code == BEGIN_CODE]
    ends = [r for r in readings if r.transaction_code in END_CODES]
    begin = begins[0] if len(begins) == 1 else None
    end = ends[0] if len(ends) == 1 else None
    detail = f"{len(begins)} begin and {len(ends)} end reading(s)"
    ordered = begin is not None and end is not None and begin.index < end.index
    if begin is not None and end is not None and not ordered:
        detail += "; the end reading comes before the begin reading"
    return Check("one_begin_one_end", ordered, detail), begin, end


def _same_register(readings: tuple[Reading, ...]) -> Check:
    registers = {(r.obis, r.unit) for r in readings if r.value is not None}
    if not registers:
        return Check("same_register", False, "no reading carries a register value")
    shown = ", ".join(sorted(f"{obis} [{unit}]" for obis, unit in registers))
    return Check("same_register", len(registers) == 1, shown)


def _values_non_decreasing(readings: tuple[Reading, ...]) -> Check:
    def comparable(reading: Reading) -> Decimal:
        # Energy in kWh when the unit allows, so a Wh/kWh switch cannot hide a fall.
        energy = reading.energy_kwh_exact
        return reading.value if energy is None else energy

    last: dict[str | None, Reading] = {}
    problems = []
    for reading in readings:
        if reading.value is None:
            continue
        previous = last.get(reading.obis)
        if previous is not None and comparable(reading) < comparable(previous):
            problems.append(
                f"RV falls from {previous.value} (reading {previous.index + 1}) "
                f"to {reading.value} (reading {reading.index + 1})"
            )
        last[reading.obis] = reading
    return Check(
        "values_non_decreasing", not problems, "; ".join(problems) or "register never falls"
    )


def _values_plausible(readings: tuple[Reading, ...]) -> Check:
    bad = [
        f"reading {r.index + 1}: RV={r.value}"
        for r in readings
        if r.energy_kwh_exact is not None and not 0 <= r.energy_kwh_exact <= MAX_REGISTER_KWH
    ]
    return Check(
        "values_plausible",
        not bad,
        "; ".join(bad) + f" outside 0..{MAX_REGISTER_KWH:,} kWh"
        if bad
        else "every register within what a meter holds",
    )


def _times_non_decreasing(readings: tuple[Reading, ...]) -> Check:
    problems = [
        f"TM goes back from {a.time_text} to {b.time_text} (reading {b.index + 1})"
        for a, b in zip(readings, readings[1:], strict=False)
        if b.time_utc < a.time_utc
    ]
    return Check(
        "times_non_decreasing", not problems, "; ".join(problems) or "time never goes back"
    )


def _meter_status(readings: tuple[Reading, ...]) -> Check:
    bad = [f"reading {r.index + 1}: ST={r.status}" for r in readings if r.status != "G"]
    return Check("meter_status_ok", not bad, "; ".join(bad) or "ST=G throughout")


def _error_flags(readings: tuple[Reading, ...]) -> Check:
    bad = [f"reading {r.index + 1}: EF={r.error_flags}" for r in readings if r.error_flags]
    return Check("no_error_flags", not bad, "; ".join(bad) or "no error flags")


def _no_exception(readings: tuple[Reading, ...]) -> Check:
    bad = [f"reading {r.index + 1}" for r in readings if r.transaction_code == EXCEPTION_CODE]
    detail = (
        "exception (TX=X) at " + ", ".join(bad) + ": energy and time unusable from there"
        if bad
        else "no exception readings"
    )
    return Check("no_exception_readings", not bad, detail)


def _cable_loss(readings: tuple[Reading, ...], begin: Reading | None) -> Check | None:
    losses = [r for r in readings if r.cumulated_loss is not None]
    if not losses:
        return None
    problems = []
    if begin is not None and begin.cumulated_loss not in (None, 0):
        problems.append(f"CL at begin is {begin.cumulated_loss}, not 0")
    problems += [
        f"CL falls at reading {b.index + 1}"
        for a, b in zip(losses, losses[1:], strict=False)
        if b.cumulated_loss < a.cumulated_loss
    ]
    return Check("cable_loss_consistent", not problems, "; ".join(problems) or "CL from 0, rising")


def check_transaction(record: OcmfRecord) -> TransactionCheck:
    """Run the transaction checks on a parsed record.

    Parameters
    ----------
    record : OcmfRecord

    Returns
    -------
    TransactionCheck
    """
    readings = record.readings
    begin_end, begin, end = _begin_end(readings)
    if len(readings) == 1:
        begin_end = Check(
            begin_end.name, begin_end.passed,
            f"{begin_end.detail}: a record of one reading holds no begin/end pair "
            "(its partner is another record)",
            applicable=False,
        )  # fmt: skip
    checks = [
        begin_end,
        _same_register(readings),
        _values_non_decreasing(readings),
        _values_plausible(readings),
        _times_non_decreasing(readings),
        _meter_status(readings),
        _error_flags(readings),
        _no_exception(readings),
    ]
    level = record.identification_level
    if level is not None:
        checks.append(
            Check(
                "identification_level_ok",
                level.upper() not in _IDENTIFICATION_ERRORS,
                f"IL={level}",
            )
        )
    loss = _cable_loss(readings, begin)
    if loss is not None:
        checks.append(loss)
    energy = None
    if begin is not None and end is not None:
        begin_kwh, end_kwh = begin.energy_kwh_exact, end.energy_kwh_exact
        if begin_kwh is not None and end_kwh is not None:
            energy = end_kwh - begin_kwh
    return TransactionCheck(
        checks=tuple(checks),
        begin=begin,
        end=end,
        weakest_clock_status=weakest_clock_status(readings),
        energy_kwh_exact=energy,
    )
