"""Did the chargers and the load balancer behave? Findings from a recording.

Checks (each returns :class:`Finding` rows with start, end, charger, phase, magnitude and
the constraint concerned):

``phase_overload``
    The chargers' measured load on a supply line above the installation's available
    current (or the main fuse, if lower) for longer than the grace window; on an APM site,
    the AMS meter's reading of a line above the main fuse on consecutive HAN samples
    spanning more than the grace window. Loads on IT are phasor sums.
``over_draw``
    A charger drawing more than the current it was allocated (708) or offered on the pilot,
    beyond a tolerance (10 % + 0.5 A, EVerest's soft over-current defaults) for longer than
    the grace window.
``below_minimum``
    A charger offered more than 0 but less than the 6 A minimum while charging: the pilot
    cannot signal it (IEC 61851-1), and Zaptec pauses below ``minChargeCurrent``.
``allocation_mismatch``
    Recorded allocations that differ from the reference allocator's, replayed on the
    recorded demands (:mod:`zapanalytics.replay.reference`), by more than a tolerance for
    longer than a hold time (the grace window, plus one HAN interval on APM sites, where
    the household load is only known at HAN samples).
``phase_switching``
    A session switching between one and three phases more often than allowed
    ("Switches allowed before locking to single phase", default 5).

The grace window covers a pilot change: a charger may change its PWM at most every 5 s and
a car follows within 5 s (IEC 61851-1 as cited by EVerest); 5 s more cover reporting
latency, so transients shorter than 15 s are not findings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from firmware_ref.allocator import PhaseSwitchConfig
from firmware_ref.grid import parse_phase_rotation
from zapanalytics.replay.intervals import combine_steps, epoch_s, merge_runs, runs
from zapanalytics.replay.recording import MODE_CHARGING, Recording
from zapanalytics.replay.wiring import ACTIVE_CURRENT_A

KINDS = ("phase_overload", "over_draw", "below_minimum", "allocation_mismatch", "phase_switching")
_LINE_NAMES = ("L1", "L2", "L3")


@dataclass(frozen=True)
class ConformanceConfig:
    """Thresholds of the conformance checks.

    Parameters
    ----------
    grace_s : float
        Violations lasting at most this long are transients of a pilot change [s].
    merge_gap_s : float
        Findings of one kind, charger and line closer than this are one episode [s]: a
        charger that ignores its allocation stops over-drawing while the allocation happens
        to rise above what it draws, and that is still one misbehaviour.
    draw_tolerance_a, draw_tolerance_fraction : float
        A charger over-draws when it draws more than ``limit × (1 + fraction) + a``.
    line_tolerance_a : float
        A line is overloaded above ``limit + line_tolerance_a`` [A].
    min_current_a : float
        Lowest current a pilot can offer [A] (IEC 61851-1: 6 A).
    allocation_tolerance_a : float
        Allocations differing by more than this from the reference are mismatches [A].
    allocation_hold_s : float, optional
        Shortest mismatch reported [s]; default the grace window, plus the HAN interval
        on APM sites.
    max_switches_per_session : int
        1↔3-phase switches allowed per session.
    apm_margin_a : float
        Margin the load balancer keeps free under APM [A] (for the reference replay).
    phase_switch : PhaseSwitchConfig, optional
        The installation's switching settings for the reference replay; default: enabled
        when the recording shows switching.
    dynamic_phase_selection : bool
        Chargers choose the terminal of a single-phase charge (reference replay).
    check_reference : bool
        Run the reference-allocator comparison.
    """

    grace_s: float = 15.0
    merge_gap_s: float = 600.0
    draw_tolerance_a: float = 0.5
    draw_tolerance_fraction: float = 0.10
    line_tolerance_a: float = 0.5
    min_current_a: float = 6.0
    allocation_tolerance_a: float = 0.5
    allocation_hold_s: float | None = None
    max_switches_per_session: int = 5
    apm_margin_a: float = 1.0
    phase_switch: PhaseSwitchConfig | None = None
    dynamic_phase_selection: bool = True
    check_reference: bool = True


@dataclass(frozen=True)
class Finding:
    """One conformance finding.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    start_utc, end_utc : datetime
        When it began and ended (UTC).
    charger_id : str or None
        The charger concerned (the one over its allocation, for a line overload).
    phase : str or None
        Supply line(s), e.g. ``"L2"`` or ``"L1,L2,L3"``.
    magnitude_a : float or None
        Largest excess or difference [A] (None for switch counts).
    constraint : str
        The limit concerned: ``available_current_L2``, ``main_fuse_L1``, ``allocation``,
        ``min_current``, ``max_switches_per_session``, or for a mismatch the reference
        allocator's binding constraint (``fuse_L1``, ``car_max``, ...).
    limit_a : float or None
        Value of that limit [A] when it is a current.
    details : dict
        Kind-specific facts.
    """

    kind: str
    start_utc: datetime
    end_utc: datetime
    charger_id: str | None
    phase: str | None
    magnitude_a: float | None
    constraint: str
    limit_a: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Length [s]."""
        return (self.end_utc - self.start_utc).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (times ISO-8601 UTC)."""
        out = asdict(self)
        out["start_utc"] = self.start_utc.isoformat()
        out["end_utc"] = self.end_utc.isoformat()
        out["duration_s"] = round(self.duration_s, 3)
        return out


def findings_frame(findings: list[Finding]) -> pl.DataFrame:
    """Findings as a polars frame (details left out)."""
    schema = {
        "kind": pl.String,
        "start_utc": pl.Datetime("us", "UTC"),
        "end_utc": pl.Datetime("us", "UTC"),
        "charger_id": pl.String,
        "phase": pl.String,
        "magnitude_a": pl.Float64,
        "constraint": pl.String,
        "limit_a": pl.Float64,
    }
    rows = [{k: getattr(f, k) for k in schema} for f in findings]
    return pl.DataFrame(rows, schema=schema)


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


def check_conformance(
    recording: Recording, config: ConformanceConfig | None = None, *, reference=None
) -> list[Finding]:
    """Run every check on a recording.

    Parameters
    ----------
    recording : Recording
        The recording.
    config : ConformanceConfig, optional
        Thresholds (defaults above).
    reference : AllocationReplay, optional
        A reference replay already computed (saves recomputing it).

    Returns
    -------
    list of Finding
        Sorted by start time, kind and charger.
    """
    config = config or ConformanceConfig()
    over_draws = over_draw(recording, config)
    found = [
        *phase_overload(recording, config, over_draws),
        *over_draws,
        *below_minimum(recording, config),
        *phase_switching(recording, config),
    ]
    if config.check_reference:
        found.extend(allocation_mismatch(recording, config, reference=reference))
    return sorted(found, key=lambda f: (f.start_utc, f.kind, f.charger_id or "", f.phase or ""))


def _finding_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dicts() if not frame.is_empty() else []


def over_draw(recording: Recording, config: ConformanceConfig) -> list[Finding]:
    """Chargers drawing more than allocated or offered, beyond tolerance and grace."""
    steps = recording.charger_steps
    limit = pl.min_horizontal("allocated_current_a", "offered_current_a")
    allowed = limit * (1.0 + config.draw_tolerance_fraction) + config.draw_tolerance_a
    terminal_excess = [pl.col(f"current_t{k}_a") - limit for k in (1, 2, 3)]
    frame = steps.with_columns(
        limit.alias("_limit"),
        pl.max_horizontal(terminal_excess).alias("_excess"),
        *[
            (t > allowed - limit).alias(f"_over_t{k}")
            for k, t in zip((1, 2, 3), terminal_excess, strict=True)
        ],
    )
    flag = pl.col("_limit").is_not_null() & (pl.col("drawn_current_a") > allowed)
    found = runs(
        frame,
        flag,
        by=["charger_id"],
        aggregations=[
            pl.col("_excess").max().alias("excess_a"),
            pl.col("_limit").first().alias("limit_a"),
            pl.col("_limit").min().alias("lowest_limit_a"),
            pl.col("drawn_current_a").max().alias("drawn_a"),
            pl.col("_over_t1").any().alias("t1"),
            pl.col("_over_t2").any().alias("t2"),
            pl.col("_over_t3").any().alias("t3"),
        ],
        min_duration_s=config.grace_s,
        merge_gap_s=config.merge_gap_s,
    )
    rotations = recording.rotations
    out = []
    for row in _finding_rows(found):
        lines = _terminal_lines(rotations.get(row["charger_id"], "RST"),
                                (row["t1"], row["t2"], row["t3"]))  # fmt: skip
        out.append(
            Finding(
                kind="over_draw",
                start_utc=row["start_utc"],
                end_utc=row["end_utc"],
                charger_id=row["charger_id"],
                phase=lines,
                magnitude_a=round(float(row["excess_a"]), 3),
                constraint="allocation",
                limit_a=_round(row["limit_a"]),
                details={
                    "drawn_current_a": _round(row["drawn_a"]),
                    "lowest_limit_a": _round(row["lowest_limit_a"]),
                },
            )
        )
    return out


def _terminal_lines(rotation: str, over: tuple[bool, bool, bool]) -> str | None:
    lines = parse_phase_rotation(rotation)
    names = sorted(_LINE_NAMES[lines[k]] for k in range(3) if over[k])
    return ",".join(names) or None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def phase_overload(
    recording: Recording, config: ConformanceConfig, over_draws: list[Finding] | None = None
) -> list[Finding]:
    """Supply lines above the available current or the main fuse beyond the grace window."""
    site = recording.installation
    out: list[Finding] = []
    if site.apm and site.main_fuse_a is not None:
        if recording.han.is_empty():
            out = _charger_load_overloads(recording, config, float(site.main_fuse_a), "main_fuse")
        else:
            out = _han_overloads(recording, config, float(site.main_fuse_a))
    elif not site.apm:
        candidates = []
        if site.available_current_a is not None:
            candidates.append((float(site.available_current_a), 0, "available_current"))
        if site.main_fuse_a is not None:
            candidates.append((float(site.main_fuse_a), 1, "main_fuse"))
        if candidates:
            limit_a, _, name = min(candidates)
            out = _charger_load_overloads(recording, config, limit_a, name)
    return [_blame(f, over_draws or []) for f in out]


def _charger_load_overloads(
    recording: Recording, config: ConformanceConfig, limit_a: float, name: str
) -> list[Finding]:
    out = []
    for k, line in enumerate(_LINE_NAMES, start=1):
        column = pl.col(f"chargers_l{k}_a")
        found = runs(
            recording.line_steps,
            column > limit_a + config.line_tolerance_a,
            aggregations=[(column - limit_a).max().alias("excess_a"), column.max().alias("peak_a")],
            min_duration_s=config.grace_s,
            merge_gap_s=config.merge_gap_s,
        )
        out.extend(
            _overload(row, line, f"{name}_{line}", limit_a, {"measured": "chargers"})
            for row in _finding_rows(found)
        )
    return out


def _overload(
    row: dict[str, Any], line: str, constraint: str, limit_a: float, details: dict[str, Any]
) -> Finding:
    """A phase_overload finding from a run with ``excess_a`` and ``peak_a``."""
    return Finding(
        kind="phase_overload",
        start_utc=row["start_utc"],
        end_utc=row["end_utc"],
        charger_id=None,
        phase=line,
        magnitude_a=round(float(row["excess_a"]), 3),
        constraint=constraint,
        limit_a=limit_a,
        details={"peak_current_a": _round(row["peak_a"]), **details},
    )


def _han_overloads(recording: Recording, config: ConformanceConfig, fuse_a: float) -> list[Finding]:
    """Overloads seen by the AMS meter: runs of consecutive samples above the fuse.

    A reading is an instant, so a run's known extent is from its first to its last sample;
    a single sample above the fuse proves no duration and is not a finding.
    """
    han = recording.han.sort("ts_utc")
    out = []
    for k, line in enumerate(_LINE_NAMES, start=1):
        column = pl.col(f"current_l{k}_a")
        over = han.with_columns((column > fuse_a + config.line_tolerance_a).alias("_over"))
        over = over.with_columns(
            (pl.col("_over") != pl.col("_over").shift(1)).fill_null(True).cum_sum().alias("_run")
        ).filter(pl.col("_over"))
        grouped = over.group_by("_run", maintain_order=True).agg(
            pl.col("ts_utc").min().alias("start_utc"),
            pl.col("ts_utc").max().alias("end_utc"),
            (column - fuse_a).max().alias("excess_a"),
            column.max().alias("peak_a"),
            pl.len().alias("samples"),
        )
        grouped = grouped.with_columns(
            ((pl.col("end_utc") - pl.col("start_utc")).dt.total_microseconds() / 1e6).alias("d")
        ).filter(pl.col("d") > config.grace_s)
        grouped = merge_runs(grouped.drop("_run", "d"), merge_gap_s=config.merge_gap_s)
        out.extend(
            _overload(row, line, f"main_fuse_{line}", fuse_a, {"measured": "han", "samples": int(row["samples"])})
            for row in _finding_rows(grouped)
        )
    return out


def _blame(finding: Finding, over_draws: list[Finding]) -> Finding:
    """Name the charger over its allocation on the overloaded line during the overload."""
    best = None
    best_overlap = 0.0
    for other in over_draws:
        if other.phase is None or finding.phase not in other.phase.split(","):
            continue
        overlap = (
            min(finding.end_utc, other.end_utc) - max(finding.start_utc, other.start_utc)
        ).total_seconds()
        if overlap > best_overlap:
            best, best_overlap = other, overlap
    if best is None:
        return finding
    return Finding(
        **{
            **asdict(finding),
            "charger_id": best.charger_id,
            "details": {**finding.details, "over_draw_a": best.magnitude_a},
        }  # fmt: skip
    )


def below_minimum(recording: Recording, config: ConformanceConfig) -> list[Finding]:
    """Chargers offered a current between 0 and the minimum while charging."""
    offered = pl.min_horizontal("allocated_current_a", "offered_current_a")
    charging = (pl.col("operation_mode") == MODE_CHARGING) | (
        pl.col("drawn_current_a") > ACTIVE_CURRENT_A
    )
    flag = (offered > 0.0) & (offered < config.min_current_a - 1e-6) & charging
    found = runs(
        recording.charger_steps,
        flag,
        by=["charger_id"],
        aggregations=[offered.min().alias("lowest_a")],
        min_duration_s=config.grace_s,
        merge_gap_s=config.merge_gap_s,
    )
    return [
        Finding(
            kind="below_minimum",
            start_utc=row["start_utc"],
            end_utc=row["end_utc"],
            charger_id=row["charger_id"],
            phase=None,
            magnitude_a=round(config.min_current_a - float(row["lowest_a"]), 3),
            constraint="min_current",
            limit_a=config.min_current_a,
            details={"lowest_offered_current_a": _round(row["lowest_a"])},
        )
        for row in _finding_rows(found)
    ]


def phase_switching(recording: Recording, config: ConformanceConfig) -> list[Finding]:
    """Sessions that switched between one and three phases more often than allowed."""
    drawing = recording.charger_steps.filter(
        pl.col("session_id").is_not_null() & (pl.col("drawn_current_a") > ACTIVE_CURRENT_A)
    ).sort("charger_id", "start_utc")
    if drawing.is_empty():
        return []
    three = (pl.col("active_terminals") >= 3).cast(pl.Int8)
    marked = drawing.with_columns(three.alias("_three")).with_columns(
        (pl.col("_three") != pl.col("_three").shift(1).over("session_id"))
        .fill_null(False)
        .alias("_switch")
    )
    switches = marked.filter(pl.col("_switch"))
    counted = (
        switches.group_by("session_id", "charger_id")
        .agg(
            pl.len().alias("switches"),
            pl.col("start_utc").sort().alias("times"),
        )
        .filter(pl.col("switches") > config.max_switches_per_session)
    )
    if counted.is_empty():
        return []
    ends = dict(zip(recording.sessions["session_id"], recording.sessions["end_utc"], strict=True))
    out = []
    for row in counted.iter_rows(named=True):
        times = row["times"]
        first_excess = times[config.max_switches_per_session]
        out.append(
            Finding(
                kind="phase_switching",
                start_utc=first_excess,
                end_utc=ends.get(row["session_id"]) or times[-1],
                charger_id=row["charger_id"],
                phase=None,
                magnitude_a=None,
                constraint="max_switches_per_session",
                limit_a=None,
                details={
                    "session_id": row["session_id"],
                    "switches": int(row["switches"]),
                    "allowed": config.max_switches_per_session,
                },
            )
        )
    return out


def allocation_hold_s(recording: Recording, config: ConformanceConfig) -> float:
    """Shortest allocation mismatch reported [s] (see :class:`ConformanceConfig`)."""
    if config.allocation_hold_s is not None:
        return config.allocation_hold_s
    hold = config.grace_s
    if recording.installation.apm and recording.han.height > 1:
        gaps = np.diff(epoch_s(recording.han["ts_utc"]))
        hold += float(np.median(gaps))
    return hold


def allocation_mismatch(
    recording: Recording, config: ConformanceConfig, *, reference=None
) -> list[Finding]:
    """Recorded allocations (708) against the reference allocator on the same demands."""
    from zapanalytics.replay.demands import session_demands
    from zapanalytics.replay.reference import replay_allocations

    if reference is None:
        reference = replay_allocations(
            recording,
            policy="reference",
            phase_switch=config.phase_switch,
            dynamic_phase_selection=config.dynamic_phase_selection,
            apm_margin_a=config.apm_margin_a,
        )
    # Only while a session asks for current: what a load balancer keeps for a car that is
    # full or gone allocates nothing anyone could use.
    releases = session_demands(recording).select("session_id", "release_utc")
    recorded = (
        recording.charger_steps.filter(pl.col("allocated_current_a").is_not_null())
        .join(releases, on="session_id", how="inner")
        .filter(pl.col("start_utc") < pl.col("release_utc"))
        .with_columns(pl.min_horizontal("end_utc", "release_utc").alias("end_utc"))
        .select("charger_id", "start_utc", "end_utc", "allocated_current_a")
    )
    expected = reference.allocations.select(
        "charger_id", "start_utc", "end_utc",
        pl.col("current_a").alias("reference_current_a"), "binding_constraint",
    )  # fmt: skip
    merged = combine_steps(recorded, expected, by=["charger_id"]).filter(
        pl.col("allocated_current_a").is_not_null() & pl.col("reference_current_a").is_not_null()
    )
    diff = pl.col("allocated_current_a") - pl.col("reference_current_a")
    found = runs(
        merged,
        diff.abs() > config.allocation_tolerance_a,
        by=["charger_id"],
        aggregations=[
            diff.abs().max().alias("diff_a"),
            pl.col("allocated_current_a").first().alias("recorded_a"),
            pl.col("reference_current_a").first().alias("reference_a"),
            pl.col("binding_constraint").first().alias("binding"),
        ],
        min_duration_s=allocation_hold_s(recording, config),
        merge_gap_s=config.merge_gap_s,
    )
    return [
        Finding(
            kind="allocation_mismatch",
            start_utc=row["start_utc"],
            end_utc=row["end_utc"],
            charger_id=row["charger_id"],
            phase=None,
            magnitude_a=round(float(row["diff_a"]), 3),
            constraint=row["binding"] or "unknown",
            limit_a=_round(row["reference_a"]),
            details={
                "recorded_current_a": _round(row["recorded_a"]),
                "reference_current_a": _round(row["reference_a"]),
            },
        )
        for row in _finding_rows(found)
    ]
