"""How a charger is wired: terminal currents to supply-line phasors, and phase rotations.

A charger has three terminals (its own L1, L2, L3); the installer's phase rotation says
which supply line each is wired to (:mod:`firmware_ref.grid`). Zaptec reports currents per
terminal (507-509) and, for the allocation, the supply lines in use (519 SetPhases), but
not the rotation itself; :func:`with_inferred_rotations` recovers it from the two.
"""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl

from firmware_ref.grid import (
    CYCLIC_ROTATIONS,
    LINE_VOLTAGE_UNIT,
    is_neutral_network,
    parse_phase_rotation,
)

#: A terminal carrying more than this is in use [A] (evcc counts a phase active from 1 A;
#: half of that keeps a 6 A soft start on a weak phase visible).
ACTIVE_CURRENT_A = 0.5

#: Step-frame columns of the currents on a charger's terminals L1, L2, L3.
TERMINAL_COLUMNS = ("current_t1_a", "current_t2_a", "current_t3_a")
_SQRT3 = math.sqrt(3.0)


def charger_line_phasors(
    terminal_currents_a: np.ndarray, rotation_lines: np.ndarray, network_type: str
) -> np.ndarray:
    """Supply-line current phasors of chargers from their terminal currents.

    Parameters
    ----------
    terminal_currents_a : numpy.ndarray
        Currents on terminals L1, L2, L3 [A], shape ``(n, 3)``.
    rotation_lines : numpy.ndarray
        Supply line (0-based) of each terminal, shape ``(n, 3)``
        (:func:`firmware_ref.grid.parse_phase_rotation` per row).
    network_type : str
        ``"TN"``, ``"TT"`` or ``"IT"``.

    Returns
    -------
    numpy.ndarray
        Complex phasors on supply lines L1, L2, L3 [A], shape ``(n, 3)``, with ``V_L1`` at
        0°. On TN every terminal's current is in phase with its own line. On IT a row with
        exactly two terminals in use is one line-to-line load (its current, the mean of
        the two readings, in phase with the voltage between the two lines); any other row
        is a star load, each line in phase with its own voltage.
    """
    currents = np.asarray(terminal_currents_a, dtype=float)
    lines = np.asarray(rotation_lines, dtype=np.int64)
    n = currents.shape[0]
    unit = np.asarray(LINE_VOLTAGE_UNIT, dtype=complex)
    out = np.zeros((n, 3), dtype=complex)
    rows = np.arange(n)[:, None]
    out[rows, lines] = currents * unit[lines]
    if is_neutral_network(network_type) or n == 0:
        return out
    active = currents > ACTIVE_CURRENT_A
    pair = active.sum(axis=1) == 2
    if not pair.any():
        return out
    idx = np.flatnonzero(pair)
    act = active[idx]
    # The two terminals in use, in terminal order.
    first = np.argmax(act, axis=1)
    second = 2 - np.argmax(act[:, ::-1], axis=1)
    amps = 0.5 * (currents[idx, first] + currents[idx, second])
    p = lines[idx, first]
    q = lines[idx, second]
    along = (unit[p] - unit[q]) / _SQRT3
    out[idx] = 0.0
    out[idx, p] = amps * along
    out[idx, q] = -amps * along
    return out


def set_phases_lines(value: float | None, network_type: str) -> tuple[int, ...]:
    """Supply lines (0-based) named by a ``SetPhases`` (519) value; () when unknown.

    TN: 1/2/3 = single phase on L1/L2/L3, 4 = three phases. IT: 8/6/5 = the line pair
    starting at L1/L2/L3 (L1-L2, L2-L3, L3-L1), 4 = three phases.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    code = int(value)
    if code == 4:
        return (0, 1, 2)
    if is_neutral_network(network_type):
        return (code - 1,) if code in (1, 2, 3) else ()
    start = {8: 0, 6: 1, 5: 2}.get(code)
    return () if start is None else (start, (start + 1) % 3)


def with_inferred_rotations(
    chargers: pl.DataFrame, steps: pl.DataFrame, network_type: str
) -> pl.DataFrame:
    """Fill unknown phase rotations from what the chargers reported.

    The cloud API does not report a charger's phase rotation, but a single-phase charge
    shows it: the terminal carrying the current (507-509) and the supply line the allocation
    names (519 SetPhases) must be wired together. Installers rotate chargers cyclically
    (``RST``, ``STR``, ``TRS``) so three-phase loads stay in positive sequence, and one step
    per charge point so single-phase loads spread (DEFA, Zaptec); so:

    1. ``observed``: the cyclic rotation wiring that terminal to that line (the one seen
       longest when charges disagree);
    2. ``pattern``: for chargers never seen charging on one phase, the one-step-per-charger
       sequence in the order of their names (per circuit), when it explains every observed
       rotation (at least three);
    3. ``default``: ``RST`` otherwise (exact for three-phase charges on any cyclic rotation).

    Adds ``phase_rotation_source`` (``store``, ``observed``, ``pattern``, ``default``).
    """
    chargers = chargers.with_columns(
        pl.when(pl.col("phase_rotation").is_not_null()).then(pl.lit("store"))
        .otherwise(pl.lit(None, dtype=pl.String)).alias("phase_rotation_source")
    )  # fmt: skip
    unknown = chargers.filter(pl.col("phase_rotation").is_null())["charger_id"].to_list()
    if not unknown:
        return chargers
    neutral = is_neutral_network(network_type)
    evidence = steps.filter(
        pl.col("charger_id").is_in(unknown)
        & pl.col("set_phases").is_not_null()
        & (pl.col("active_terminals") == (1 if neutral else 2))
    )
    votes: dict[str, dict[str, float]] = {}
    for row in evidence.iter_rows(named=True):
        lines = set_phases_lines(float(row["set_phases"]), network_type)
        active = [row[c] > ACTIVE_CURRENT_A for c in TERMINAL_COLUMNS]
        if not lines or len(lines) != sum(active) or len(lines) == 3:
            continue
        terminal = active.index(True)
        if not neutral and not active[(terminal + 1) % 3]:
            terminal = 2  # the pair L3-L1 starts at terminal L3
        rotation = CYCLIC_ROTATIONS[(lines[0] - terminal) % 3]
        seconds = (row["end_utc"] - row["start_utc"]).total_seconds()
        tally = votes.setdefault(row["charger_id"], {})
        tally[rotation] = tally.get(rotation, 0.0) + seconds
    observed = {cid: max(tally, key=tally.get) for cid, tally in votes.items()}
    patterned = _rotation_pattern(chargers, observed)
    chosen = {**patterned, **observed}
    source = {cid: ("observed" if cid in observed else "pattern") for cid in chosen}
    return chargers.with_columns(
        pl.coalesce(
            pl.col("phase_rotation"),
            pl.col("charger_id").replace_strict(chosen, default=None, return_dtype=pl.String),
            pl.lit("RST"),
        ).alias("phase_rotation"),
        pl.coalesce(
            pl.col("phase_rotation_source"),
            pl.col("charger_id").replace_strict(source, default=None, return_dtype=pl.String),
            pl.lit("default"),
        ).alias("phase_rotation_source"),
    )


def _rotation_pattern(chargers: pl.DataFrame, observed: dict[str, str]) -> dict[str, str]:
    """Rotations one step apart per charger in name order, if they explain what was seen."""
    stored = dict(zip(chargers["charger_id"], chargers["phase_rotation"], strict=True))
    known = {**stored, **observed}
    known = {k: v for k, v in known.items() if v is not None}
    rows = chargers.select("charger_id", "circuit_id", "name").rows()
    ordered = [
        cid
        for cid, _, _ in sorted(rows, key=lambda r: (r[1] or "", _natural_key(r[2] or ""), r[0]))
    ]
    seen = [(i, known[c]) for i, c in enumerate(ordered) if known.get(c) in CYCLIC_ROTATIONS]
    if len(seen) < 3:
        return {}
    for offset in range(3):
        if all(CYCLIC_ROTATIONS[(i + offset) % 3] == r for i, r in seen):
            return {c: CYCLIC_ROTATIONS[(i + offset) % 3] for i, c in enumerate(ordered)
                    if c not in known}  # fmt: skip
    return {}


def _natural_key(text: str) -> tuple:
    """Sort key that orders "Plass 9" before "Plass 10"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def rotation_lines(rotations: pl.Series) -> np.ndarray:
    """Supply line (0-based) of each terminal for a series of rotations, shape ``(n, 3)``."""
    distinct = rotations.unique().to_list()
    table = {r: parse_phase_rotation(r) for r in distinct}
    codes = {r: i for i, r in enumerate(distinct)}
    lookup = np.array([table[r] for r in distinct], dtype=np.int64).reshape(-1, 3)
    index = rotations.replace_strict(codes, return_dtype=pl.Int64).to_numpy()
    return lookup[index] if len(distinct) else np.zeros((0, 3), dtype=np.int64)


def allocated_terminals(
    steps: pl.DataFrame, rotation_lines: np.ndarray, network_type: str
) -> pl.DataFrame:
    """Terminal currents the allocation (708) implies, per step row.

    The allocated current flows on the terminals in use while the car draws, else on the
    lines ``SetPhases`` (519) names, else on all three.

    Returns
    -------
    polars.DataFrame
        ``a_t1, a_t2, a_t3`` [A], one row per row of ``steps``.
    """
    drawn = steps.select(TERMINAL_COLUMNS).to_numpy().astype(float) > ACTIVE_CURRENT_A
    set_phases = steps["set_phases"].cast(pl.Float64).fill_null(-1.0).to_numpy()
    mask = np.ones(drawn.shape, dtype=bool)
    for code in np.unique(set_phases):
        lines = set_phases_lines(float(code), network_type) if code >= 0 else ()
        if lines:
            rows = set_phases == code
            mask[rows] = np.isin(rotation_lines[rows], lines)
    using = drawn.any(axis=1)
    mask[using] = drawn[using]
    amps = steps["allocated_current_a"].fill_null(0.0).to_numpy().astype(float)
    currents = mask * amps[:, None]
    return pl.DataFrame({f"a_t{k + 1}": currents[:, k] for k in range(3)})
