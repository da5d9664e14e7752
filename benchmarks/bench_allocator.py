"""Time the reference allocator at 3, 20 and 100 chargers (µs per call and per charger).

Each call carries the state of the previous one and sees a changed event (household load,
a car arriving or leaving), as the simulator drives it. The reference policy runs at every
size on both grids (TN, IT); the simpler policies (``equal_share``, ``first_come``) at 100
chargers, for scale. Medians of ``--repeats`` alternating runs. The replay and the simulator
call the allocator once per event, so this cost bounds both.

Run: ``.venv/bin/python -m benchmarks.bench_allocator [--quick] [--repeats N]``
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from benchmarks.harness import Result, alternate, argument_parser, emit
from firmware_ref.allocator import (
    POLICIES,
    ChargerDemand,
    CircuitLimit,
    SiteLimits,
    choose_phase_rotations,
)


def scenario(n_chargers: int, network: str, seed: int = 1):
    rng = random.Random(seed)
    if n_chargers <= 3:
        fuse, circuits = 40.0, ()
        circuit_of = [None] * n_chargers
    else:
        fuse = 63.0
        n_circuits = max(1, n_chargers // 10)
        circuits = tuple(CircuitLimit(f"circuit-{k}", 40.0) for k in range(n_circuits))
        circuit_of = [f"circuit-{k % n_circuits}" for k in range(n_chargers)]
    demands = choose_phase_rotations(
        [
            ChargerDemand(
                f"charger-{i:03d}",
                circuit_id=circuit_of[i],
                active=rng.random() < 0.6,
                phases=rng.choice([1, 3, 3]),
                car_max_current_a=rng.choice([16.0, 32.0]),
                arrival_s=float(i),
                priority=rng.random() < 0.05,
            )
            for i in range(n_chargers)
        ]
    )
    return fuse, circuits, demands, rng


def run(n_chargers: int, network: str, policy: str, calls: int) -> tuple[float, int]:
    fuse, circuits, demands, rng = scenario(n_chargers, network)
    allocate = POLICIES[policy]
    sites = [
        SiteLimits.from_fuse(
            fuse, [rng.uniform(0, 10) for _ in range(3)], network_type=network, circuits=circuits
        )
        for _ in range(64)
    ]
    state = None
    now = 0.0
    active_total = 0
    start = time.perf_counter()
    for call in range(calls):
        now += 60.0
        k = rng.randrange(n_chargers)
        d = demands[k]
        demands[k] = ChargerDemand(
            d.charger_id, d.circuit_id, not d.active, d.phases, d.phase_rotation,
            d.min_current_a, d.car_max_current_a, d.charger_max_current_a, d.priority,
            now if not d.active else d.arrival_s,
        )  # fmt: skip
        result = allocate(sites[call % 64], demands, state, now)
        state = result.state
        active_total += sum(1 for x in demands if x.active)
    elapsed = time.perf_counter() - start
    return elapsed / calls * 1e6, active_total // calls


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 0.5
    cases = {
        (policy, network, n_chargers): max(50, int(calls * scale))
        for policy in ("reference", "equal_share", "first_come")
        for network in ("TN", "IT")
        for n_chargers, calls in ((3, 20000), (20, 5000), (100, 1500))
        if policy == "reference" or n_chargers == 100
    }
    per_call_runs: dict[tuple, list[float]] = {case: [] for case in cases}

    def measure(case: tuple, calls: int) -> int:
        # The scenario is built inside run(); only its calls are timed there.
        per_call, active = run(case[2], case[1], case[0], calls)
        per_call_runs[case].append(per_call)
        return active

    timings = alternate(
        {case: (lambda c=case, n=calls: measure(c, n)) for case, calls in cases.items()},
        repeats=args.repeats,
    )
    print(f"{'policy':<12} {'grid':<4} {'chargers':>8} {'active':>6} {'us/call':>9} {'us/charger':>10}")
    per_call = {case: statistics.median(runs) for case, runs in per_call_runs.items()}
    for (policy, network, n_chargers), timing in timings.items():
        value = per_call[(policy, network, n_chargers)]
        print(f"{policy:<12} {network:<4} {n_chargers:>8} {timing.value:>6} {value:>9.1f} "
              f"{value / n_chargers:>10.2f}")  # fmt: skip
    rows = []
    for policy, n_chargers in dict.fromkeys((p, n) for p, _, n in cases):
        tn, it = per_call[(policy, "TN", n_chargers)], per_call[(policy, "IT", n_chargers)]
        rows.append(
            Result(
                workload=f"allocator {policy}, {n_chargers} chargers",
                ours=f"firmware_ref.allocator {policy} (TN grid)",
                ours_value=tn,
                unit="µs/call",
                peak_rss_mb=max(timings[(policy, g, n_chargers)].peak_rss_mb for g in ("TN", "IT")),
                notes=f"{tn / n_chargers:.2f} µs per charger; IT grid {it:.1f} µs/call; on average "
                f"{timings[(policy, 'TN', n_chargers)].value} of {n_chargers} charging; "
                f"{cases[(policy, 'TN', n_chargers)]:,} calls a run, median of {args.repeats}",
            )
        )
    emit(rows, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
