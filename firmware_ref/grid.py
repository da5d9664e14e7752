"""Supply-grid physics for chargers on TN and IT networks.

Conventions
-----------
* Supply lines are indexed 0, 1, 2 and named ``L1``, ``L2``, ``L3`` (:data:`LINE_NAMES`).
* Voltage phasors follow positive sequence: ``V_L1`` at 0°, ``V_L2`` at −120°, ``V_L3`` at +120°.
* A charger has three supply terminals (its own L1, L2, L3). The installer's *phase rotation*
  says which supply line each terminal is wired to, written like OCPP's
  ``ConnectorPhaseRotation``: ``"RST"`` (R = L1, S = L2, T = L3) means terminal L1 → line L1,
  terminal L2 → line L2, terminal L3 → line L3; ``"STR"`` means terminal L1 → L2, L2 → L3,
  L3 → L1. The forms ``"L2L3L1"`` and ``"L2,L3,L1"`` are accepted too.
* Charger current [A] is the per-phase current the pilot offers (what the car draws per phase).
* Electric-vehicle chargers are treated as unity-power-factor loads (their on-board chargers
  correct power factor), so a load's current phasor is in phase with the voltage across it.

TN (and TT) networks, 230 V line-to-neutral
    A 1-phase charge runs between the charger's L1 terminal and neutral, loading one supply line.
    A 3-phase charge loads all three lines with the same current. Contributions on one line are
    all in phase, so line currents are plain sums.

IT networks, 3 × 230 V without neutral
    A 1-phase charge runs line-to-line between the charger's L1 and L2 terminals. The current
    ``I`` leaves one line and returns on the other, in phase with ``V_pq = V_p − V_q`` (±30°
    from each line's own voltage), so both lines carry ``I`` but the contributions from
    different chargers add as phasors: three equal line-to-line loads on L1-L2, L2-L3 and
    L3-L1 give ``√3·I`` on every line, not ``2·I``. A 3-phase charge is a balanced star with a
    floating star point: every line carries ``I`` in phase with its own voltage, which is why
    3-phase power on IT is only ``√3 × 230 V × I`` (12.7 kW at 32 A).
    A 2-phase car on IT is modelled like a 1-phase charge (one line-to-line load).

All contributions to one line lie within ±30° of that line's voltage, so every line-current
magnitude grows monotonically with every charger's current. The allocator relies on that.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np

NetworkType = Literal["TN", "IT", "TT"]

LINE_NAMES: tuple[str, str, str] = ("L1", "L2", "L3")

#: Rotations that shift every terminal one line further; cycling through them spreads
#: single-phase loads evenly and keeps 3-phase loads in positive sequence.
CYCLIC_ROTATIONS: tuple[str, str, str] = ("RST", "STR", "TRS")

#: Unit voltage phasors of the supply lines (positive sequence).
LINE_VOLTAGE_UNIT: tuple[complex, complex, complex] = (
    complex(1.0, 0.0),
    cmath.exp(-2j * math.pi / 3),
    cmath.exp(2j * math.pi / 3),
)

_LETTER_TO_LINE = {"R": 0, "S": 1, "T": 2}
_SQRT3 = math.sqrt(3.0)


def is_neutral_network(network_type: str) -> bool:
    """Whether the network has a neutral conductor (TN, TT) or not (IT).

    Parameters
    ----------
    network_type : str
        ``"TN"``, ``"TT"`` or ``"IT"`` (case-insensitive).

    Returns
    -------
    bool
        True for TN and TT, False for IT.
    """
    kind = network_type.upper()
    if kind in ("TN", "TT"):
        return True
    if kind == "IT":
        return False
    raise ValueError(f"unknown network type {network_type!r}; expected 'TN', 'TT' or 'IT'")


@lru_cache(maxsize=64)
def parse_phase_rotation(phase_rotation: str) -> tuple[int, int, int]:
    """Supply line (0-based) wired to each charger terminal.

    Parameters
    ----------
    phase_rotation : str
        ``"RST"``-style letters (OCPP ``ConnectorPhaseRotation``) or ``"L2L3L1"`` /
        ``"L2,L3,L1"``.

    Returns
    -------
    tuple of int
        ``(line of terminal L1, line of terminal L2, line of terminal L3)``.
    """
    text = phase_rotation.strip().upper().replace(",", "").replace(" ", "")
    if text.startswith("L"):
        parts = text.split("L")[1:]
        lines = tuple(int(p) - 1 for p in parts if p.isdigit())
    else:
        lines = tuple(_LETTER_TO_LINE.get(ch, -1) for ch in text)
    if len(lines) != 3 or sorted(lines) != [0, 1, 2]:
        raise ValueError(f"invalid phase rotation {phase_rotation!r}")
    return lines  # type: ignore[return-value]


@lru_cache(maxsize=4096)
def charger_lines(
    phase_rotation: str,
    phases: int,
    network_type: str = "TN",
    single_phase_terminal: int = 0,
) -> tuple[int, ...]:
    """Supply lines that carry a charger's current.

    Parameters
    ----------
    phase_rotation : str
        Installer's wiring, see :func:`parse_phase_rotation`.
    phases : int
        Phases in use: 1, 2 or 3.
    network_type : str
        ``"TN"``, ``"TT"`` or ``"IT"``.
    single_phase_terminal : int
        For a 1-phase charge, the charger terminal it uses on TN (0 = terminal L1, the
        default), or on IT the first terminal of the terminal pair (0 = L1-L2, 1 = L2-L3,
        2 = L3-L1). Chargers that select their phase dynamically vary it.

    Returns
    -------
    tuple of int
        Supply line indices (0-based), in terminal order.
    """
    rotation = parse_phase_rotation(phase_rotation)
    if phases not in (1, 2, 3):
        raise ValueError(f"phases must be 1, 2 or 3, got {phases}")
    t = single_phase_terminal % 3
    if phases == 3:
        return rotation
    if is_neutral_network(network_type):
        if phases == 1:
            return (rotation[t],)
        return (rotation[t], rotation[(t + 1) % 3])
    return (rotation[t], rotation[(t + 1) % 3])


@lru_cache(maxsize=4096)
def line_weights(
    phase_rotation: str,
    phases: int,
    network_type: str = "TN",
    single_phase_terminal: int = 0,
) -> tuple[complex, complex, complex]:
    """Current phasor on each supply line per ampere of charger current.

    Parameters
    ----------
    phase_rotation, phases, network_type, single_phase_terminal
        As for :func:`charger_lines`.

    Returns
    -------
    tuple of complex
        Phasor [A/A] on L1, L2, L3 (absolute frame, ``V_L1`` at 0°); zero for unused lines.
        The magnitude on each used line is 1.
    """
    lines = charger_lines(phase_rotation, phases, network_type, single_phase_terminal)
    weights = [0j, 0j, 0j]
    if phases == 3 or is_neutral_network(network_type):
        for line in lines:
            weights[line] += LINE_VOLTAGE_UNIT[line]
        return (weights[0], weights[1], weights[2])
    p, q = lines
    along = (LINE_VOLTAGE_UNIT[p] - LINE_VOLTAGE_UNIT[q]) / _SQRT3
    weights[p] += along
    weights[q] -= along
    return (weights[0], weights[1], weights[2])


def charger_line_matrix(
    phase_rotations: Sequence[str],
    phases: Sequence[int],
    network_type: str = "TN",
    single_phase_terminals: Sequence[int] | None = None,
) -> np.ndarray:
    """Stack :func:`line_weights` of many chargers into a ``(3, n_chargers)`` complex matrix.

    Parameters
    ----------
    phase_rotations : sequence of str
        Rotation of each charger.
    phases : sequence of int
        Phases in use by each charger (1, 2 or 3).
    network_type : str
        ``"TN"``, ``"TT"`` or ``"IT"``.
    single_phase_terminals : sequence of int, optional
        Terminal choice per charger (see :func:`charger_lines`); default 0 for all.

    Returns
    -------
    numpy.ndarray
        Complex matrix ``M`` with line phasors ``M @ charger_currents_a``.
    """
    n = len(phase_rotations)
    if len(phases) != n:
        raise ValueError("phase_rotations and phases must have the same length")
    terminals = single_phase_terminals if single_phase_terminals is not None else [0] * n
    matrix = np.zeros((3, n), dtype=complex)
    for k, (rotation, nph, term) in enumerate(zip(phase_rotations, phases, terminals, strict=True)):
        if nph:
            matrix[:, k] = line_weights(rotation, int(nph), network_type, int(term))
    return matrix


def line_currents_a(
    charger_currents_a: np.ndarray | Sequence[float],
    phase_rotations: Sequence[str],
    phases: Sequence[int],
    network_type: str = "TN",
    single_phase_terminals: Sequence[int] | None = None,
) -> np.ndarray:
    """Supply-line current magnitudes from per-charger currents.

    Parameters
    ----------
    charger_currents_a : array_like
        Per-phase current of each charger [A], shape ``(n_chargers,)`` or, for a time series,
        ``(n_times, n_chargers)``.
    phase_rotations, phases, network_type, single_phase_terminals
        As for :func:`charger_line_matrix`.

    Returns
    -------
    numpy.ndarray
        Line current magnitudes [A], shape ``(3,)`` or ``(n_times, 3)``.
    """
    matrix = charger_line_matrix(phase_rotations, phases, network_type, single_phase_terminals)
    currents = np.asarray(charger_currents_a, dtype=float)
    return np.abs(currents @ matrix.T)


def terminal_to_line_currents(
    terminal_currents_a: np.ndarray | Sequence[float], phase_rotation: str
) -> np.ndarray:
    """Reorder one charger's per-terminal currents (e.g. observations 507–509) onto supply lines.

    The conductor on terminal k *is* supply line ``rotation[k]``, so this is exact for one
    charger on any network; summing several chargers on IT needs phasors
    (:func:`line_currents_a`).

    Parameters
    ----------
    terminal_currents_a : array_like
        Currents on the charger's terminals L1, L2, L3 [A], shape ``(..., 3)``.
    phase_rotation : str
        Installer's wiring.

    Returns
    -------
    numpy.ndarray
        Currents on supply lines L1, L2, L3 [A], same shape.
    """
    rotation = parse_phase_rotation(phase_rotation)
    terminal = np.asarray(terminal_currents_a, dtype=float)
    out = np.zeros_like(terminal)
    for k, line in enumerate(rotation):
        out[..., line] = terminal[..., k]
    return out


def spread_phase_rotations(circuit_ids: Sequence[str | None]) -> list[str]:
    """Choose installer phase rotations so single-phase loads spread over the lines.

    Chargers are taken circuit by circuit (in order of first appearance) and given the cyclic
    rotations ``RST, STR, TRS`` with one running counter, so each circuit and the whole
    installation carry single-phase loads on L1, L2 and L3 (TN) or on the pairs L1-L2, L2-L3,
    L3-L1 (IT) as evenly as the count allows (within one charger). Cyclic rotations keep
    3-phase loads in positive sequence.

    Parameters
    ----------
    circuit_ids : sequence of str or None
        Circuit of each charger, in installation order.

    Returns
    -------
    list of str
        Rotation per charger, same order as ``circuit_ids``.
    """
    order: dict[str | None, list[int]] = {}
    for index, circuit in enumerate(circuit_ids):
        order.setdefault(circuit, []).append(index)
    rotations = [""] * len(circuit_ids)
    counter = 0
    for members in order.values():
        for index in members:
            rotations[index] = CYCLIC_ROTATIONS[counter % 3]
            counter += 1
    return rotations
