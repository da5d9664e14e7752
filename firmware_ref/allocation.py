"""Data structures of the reference allocator: site limits, demands, allocations, state.

See :mod:`firmware_ref.allocator` for what they mean and how the policies use them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: Tolerance [A] for limit comparisons.
EPS_A = 1e-9


@dataclass(frozen=True, slots=True)
class CircuitLimit:
    """A circuit (Zaptec ``Circuit``) with its own maximum current per line.

    Parameters
    ----------
    circuit_id : str
        Identifier used by :attr:`ChargerDemand.circuit_id`.
    max_current_a : float
        Maximum current on each line of the circuit [A] (breaker rating).
    parent_id : str or None
        Enclosing circuit; None means directly under the installation.
    """

    circuit_id: str
    max_current_a: float
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class PhaseSwitchConfig:
    """1↔3-phase switching settings of the installation.

    Parameters
    ----------
    enabled : bool
        Whether 3-phase capable chargers may switch to 1 phase.
    three_to_one_current_a : float
        ``ThreeToOnePhaseSwitchCurrent`` [A]: below this 3-phase current the charger goes to
        1 phase. Zaptec Pro default 15 A (Go 2 default 8 A, range 6–31 A).
    hysteresis_a : float
        Extra current [A] a 3-phase trial must reach before returning to 3 phases.
    return_to_three_phase : bool
        "Allow chargers to return to three phase".
    min_dwell_s : float
        Minimum time [s] in 1 phase before a return is tried, and between failed trials.
    pause_s : float
        Time [s] the charger delivers no current while it switches.
    max_switches_per_session : int
        "Switches allowed before locking to single phase" (default 5, max 20).
    """

    enabled: bool = True
    three_to_one_current_a: float = 15.0
    hysteresis_a: float = 2.0
    return_to_three_phase: bool = True
    min_dwell_s: float = 600.0
    pause_s: float = 10.0
    max_switches_per_session: int = 5


@dataclass(frozen=True, slots=True)
class SiteLimits:
    """Limits of an installation for one allocation.

    Parameters
    ----------
    available_current_a : tuple of float
        Current available to the chargers on supply lines L1, L2, L3 [A].
    network_type : str
        ``"TN"``, ``"IT"`` (``"TT"`` is treated as TN).
    circuits : tuple of CircuitLimit
        Circuits of the installation.
    phase_switch : PhaseSwitchConfig
        1↔3-phase switching settings.
    """

    available_current_a: tuple[float, float, float]
    network_type: str = "TN"
    circuits: tuple[CircuitLimit, ...] = ()
    phase_switch: PhaseSwitchConfig = field(default_factory=PhaseSwitchConfig)

    @classmethod
    def from_fuse(
        cls,
        main_fuse_a: float,
        household_current_a: Sequence[float] = (0.0, 0.0, 0.0),
        network_type: str = "TN",
        circuits: tuple[CircuitLimit, ...] = (),
        phase_switch: PhaseSwitchConfig | None = None,
        margin_a: float = 0.0,
    ) -> SiteLimits:
        """Limits from the main fuse minus the household load (APM), see
        :func:`available_current_from_fuse`."""
        return cls(
            available_current_a=available_current_from_fuse(
                main_fuse_a, household_current_a, margin_a
            ),
            network_type=network_type,
            circuits=circuits,
            phase_switch=phase_switch if phase_switch is not None else PhaseSwitchConfig(),
        )


@dataclass(frozen=True, slots=True)
class ChargerDemand:
    """What one charger and its car ask for at the time of an allocation.

    Parameters
    ----------
    charger_id : str
        Charger identifier.
    circuit_id : str or None
        Circuit the charger sits on; None = directly under the installation.
    active : bool
        A car is connected and wants current.
    phases : int
        Phases the car and the charger can use (1, 2 or 3).
    phase_rotation : str
        Installer's wiring of the charger's terminals (``"RST"``, ``"STR"``, ``"TRS"``, …).
    min_current_a : float
        Minimum current [A] below which the charger pauses (``minChargeCurrent``, 6 A).
    car_max_current_a : float
        Most the car draws per phase [A].
    charger_max_current_a : float
        Charger's own maximum per phase [A] (``maxChargeCurrent``, ≤ 32 A).
    priority : bool
        Prioritised session.
    arrival_s : float
        Session start [s] (any epoch, same as ``now_s``).
    dynamic_phase_selection : bool
        The charger chooses the terminal of a 1-phase charge (least-loaded line); otherwise
        terminal L1 (TN) or L1-L2 (IT).
    """

    charger_id: str
    circuit_id: str | None = None
    active: bool = True
    phases: int = 3
    phase_rotation: str = "RST"
    min_current_a: float = 6.0
    car_max_current_a: float = 32.0
    charger_max_current_a: float = 32.0
    priority: bool = False
    arrival_s: float = 0.0
    dynamic_phase_selection: bool = False

    @property
    def max_current_a(self) -> float:
        """Most the charger can use per phase [A]: min of car and charger maximum."""
        return min(self.car_max_current_a, self.charger_max_current_a)


@dataclass(slots=True)
class ChargerAllocation:
    """Allocation of one charger (treat as read-only; not frozen only because it is built for
    every charger at every call and frozen construction costs four times as much).

    Parameters
    ----------
    charger_id : str
        Charger identifier.
    current_a : float
        Per-phase current to offer [A]; 0 when paused or inactive.
    phases : int
        Phases in use (1, 2, 3); 0 when inactive.
    lines : tuple of str
        Supply lines carrying its current (or that would, when paused).
    paused : bool
        Active but given no current.
    binding_constraint : str
        What stopped it getting more (see module docstring).
    """

    charger_id: str
    current_a: float
    phases: int
    lines: tuple[str, ...]
    paused: bool
    binding_constraint: str


@dataclass(slots=True)
class SessionState:
    """Per-session memory the allocator needs for phase-switch hysteresis (read-only by
    convention, like :class:`ChargerAllocation`; the allocator never mutates its input state).

    Parameters
    ----------
    arrival_s : float
        Session start [s]; a different ``arrival_s`` in the demand starts a new session.
    phase_mode : int
        Phases the session uses now (1, 2, 3).
    switch_count : int
        1↔3-phase switches made while charging in this session.
    mode_since_s : float
        When the current phase mode began [s].
    pause_until_s : float
        End of a switching pause [s].
    next_trial_s : float
        Earliest time of the next 1→3-phase trial [s].
    single_phase_terminal : int or None
        Terminal chosen for a 1-phase charge by dynamic phase selection (sticky per session).
    last_current_a : float
        Current given at the last allocation [A].
    has_charged : bool
        The session has received current; from then on a phase switch pauses and counts.
    """

    arrival_s: float
    phase_mode: int
    switch_count: int = 0
    mode_since_s: float = 0.0
    pause_until_s: float = -math.inf
    next_trial_s: float = -math.inf
    single_phase_terminal: int | None = None
    last_current_a: float = 0.0
    has_charged: bool = False


@dataclass(frozen=True, slots=True)
class AllocatorState:
    """State carried from one allocation to the next.

    Parameters
    ----------
    time_s : float
        Time of the allocation that produced it [s].
    sessions : Mapping[str, SessionState]
        Per charger id.
    """

    time_s: float = 0.0
    sessions: Mapping[str, SessionState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """Outcome of one allocation.

    Parameters
    ----------
    allocations : dict of str to ChargerAllocation
        Per charger id, in demand order.
    line_currents_a : tuple of float
        Charger load on supply lines L1, L2, L3 [A] (magnitudes; household excluded).
    circuit_line_currents_a : dict of str to tuple of float
        Load on each circuit's lines [A].
    available_current_a : tuple of float
        The limits used [A].
    state : AllocatorState
        Input for the next call.
    policy : str
        Name of the policy that produced it.
    """

    allocations: dict[str, ChargerAllocation]
    line_currents_a: tuple[float, float, float]
    circuit_line_currents_a: dict[str, tuple[float, float, float]]
    available_current_a: tuple[float, float, float]
    state: AllocatorState
    policy: str = "reference"


def available_current_from_fuse(
    main_fuse_a: float,
    household_current_a: Sequence[float] = (0.0, 0.0, 0.0),
    margin_a: float = 0.0,
) -> tuple[float, float, float]:
    """Current left for the chargers on each line when the household shares the main fuse.

    HAN meters report per-line current magnitudes without angles, so subtracting magnitudes is
    the safe choice: a phasor sum is never larger than the sum of magnitudes.

    Parameters
    ----------
    main_fuse_a : float
        Main fuse rating [A].
    household_current_a : sequence of float
        Household (non-charger) current per line L1, L2, L3 from the HAN port [A].
    margin_a : float
        Safety margin kept free on every line [A].

    Returns
    -------
    tuple of float
        Available current per line [A], never negative.
    """
    return tuple(  # type: ignore[return-value]
        max(0.0, main_fuse_a - margin_a - float(h)) for h in household_current_a
    )
