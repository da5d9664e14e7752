"""B5: the OCPP 1.6J collector under 500 charge points on loopback.

Three processes: the central system (``zapanalytics ocpp serve``, Basic auth, fsync'd spool),
a load generator with 500 websocket connections, and this script, which checks the result.
The generator sends pre-built MeterValues frames (the Zaptec measurands) so that it is not
the bottleneck on a 2-core machine; the charge-point simulator built on the ``ocpp``
package (``zapanalytics.ingest.ocpp.sim``) is what the tests use.

Phases, each bounded in time:

* capacity: every charge point sends MeterValues on a fixed schedule, time-compressed so that
  the fleet offers a given rate; latency runs from the *scheduled* send time to the answer, so
  a server that falls behind shows it (no coordinated omission). A step *holds* when every
  message is answered, the answered rate is within 3 % of the offered one and p99 < 50 ms.
  The search doubles the rate from ``--rate`` until a step fails (at most ``--max-rate``; it
  halves instead, down to a sixteenth, when the first rate fails), then bisects between the last rate that held and the first that failed (``--search-steps``
  steps of ``--step`` s each), and confirms the best rate for ``--duration`` s, backing off
  15 % (at most twice) when the confirmation fails. The capacity reported is the rate that
  held in the confirmation: the highest sustained rate with zero loss and p99 < 50 ms that
  this generator, one process on the same two cores, can show.
* burst: every charge point sends back to back (next message as soon as the answer arrives),
  ``--repeats`` times, alternating with the comparator's fleet (both fleets stay connected).

Afterwards: every acknowledged message must be in the spool, and loading the spool must
store one meter_values row per acknowledged message (zero loss). The comparator is the
``ocpp`` package's documented central-system pattern (``@on`` handlers, schema validation,
no spool) under the same bursts, in its own process, connected to at the same time. Run:

    .venv/bin/python -m benchmarks.bench_ocpp            # 500 charge points, ~3 min
    .venv/bin/python -m benchmarks.bench_ocpp --quick    # 100 charge points, ~40 s
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIM_EPOCH_S = 1_735_689_600  # 2025-01-01T00:00:00Z
SIM_INTERVAL_S = 10.0
#: A sustained step holds when p99 latency from the scheduled send stays under this [ms] ...
P99_LIMIT_MS = 50.0
#: ... and the answered rate is at least this share of the offered rate.
KEPT_UP_SHARE = 0.97


def _timestamp(sim_seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(SIM_EPOCH_S + sim_seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meter_values_frame(unique_id: str, sequence: int, register_wh: int) -> str:
    """A Zaptec-like MeterValues CALL (register in kWh, power, offered power, 3 currents)."""
    ts = _timestamp(sequence * SIM_INTERVAL_S)
    return (
        f'[2,"{unique_id}","MeterValues",{{"connectorId":1,"transactionId":1,"meterValue":[{{'
        f'"timestamp":"{ts}","sampledValue":['
        f'{{"value":"{register_wh / 1000:.3f}","measurand":"Energy.Active.Import.Register","unit":"kWh","context":"Sample.Periodic"}},'
        f'{{"value":"7360","measurand":"Power.Active.Import","unit":"W"}},'
        f'{{"value":"11040","measurand":"Power.Offered","unit":"W"}},'
        f'{{"value":"10.67","measurand":"Current.Import","phase":"L1-N","unit":"A"}},'
        f'{{"value":"10.66","measurand":"Current.Import","phase":"L2-N","unit":"A"}},'
        f'{{"value":"10.68","measurand":"Current.Import","phase":"L3-N","unit":"A"}}]}}]}}]'
    )


# --------------------------------------------------------------------------- generator


class _ChargePointLoad:
    def __init__(self, charge_point_id: str, connection):
        self.id = charge_point_id
        self.connection = connection
        self.sequence = 0
        self.register_wh = 1_000_000 + random.randrange(1_000_000)
        self.acked: list[int] = []

    async def send_one(self) -> float:
        self.sequence += 1
        self.register_wh += 20
        unique_id = f"{self.sequence}"
        started = time.perf_counter()
        await self.connection.send(meter_values_frame(unique_id, self.sequence, self.register_wh))
        reply = await self.connection.recv()
        if not reply.startswith(f'[3,"{unique_id}"'):
            raise RuntimeError(f"{self.id}: unexpected answer {reply[:120]}")
        self.acked.append(self.sequence)
        return started


async def _generate(urls: dict[str, str], count: int, password: str, search: dict, burst: float,
                    repeats: int) -> dict:  # fmt: skip
    """Open ``count`` connections to each server; the capacity search on the first, then
    bursts on each server in turn, ``repeats`` times (the other fleet idles meanwhile)."""
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(50)

    async def open_one(url: str, i: int) -> _ChargePointLoad:
        charge_point_id = f"ZPR{i:06d}"
        token = base64.b64encode(f"{charge_point_id}:{password}".encode()).decode()
        async with gate:
            connection = await connect(
                f"{url}/{charge_point_id}", subprotocols=["ocpp1.6"], compression=None,
                additional_headers={"Authorization": f"Basic {token}"}, open_timeout=60,
                ping_interval=None,
            )
        return _ChargePointLoad(charge_point_id, connection)

    began = time.perf_counter()
    fleets = {
        name: await asyncio.gather(*(open_one(url, i) for i in range(count)))
        for name, url in urls.items()
    }
    connect_s = time.perf_counter() - began
    ours = fleets["ours"]

    async def sustained(rate: float, duration: float) -> dict:
        """Each charge point on its own fixed schedule, staggered across the interval."""
        interval = count / rate
        latencies: list[float] = []
        stop_at = time.perf_counter() + duration
        offered = 0

        async def scheduled(load: _ChargePointLoad, offset: float) -> None:
            nonlocal offered
            due = time.perf_counter() + offset
            while due < stop_at:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                offered += 1
                await load.send_one()
                latencies.append(time.perf_counter() - due)
                due += interval

        acked_before = sum(len(f.acked) for f in ours)
        started = time.perf_counter()
        await asyncio.gather(*(scheduled(f, random.uniform(0, interval)) for f in ours))
        elapsed = time.perf_counter() - started
        stats = _phase_stats(latencies, sum(len(f.acked) for f in ours) - acked_before, elapsed)
        stats.update(offered_per_s=rate, offered=offered, duration_s=duration)
        stats["held"] = bool(
            stats["acked"] == offered and stats["p99_ms"] is not None and stats["p99_ms"] < P99_LIMIT_MS
            and stats["acked"] / duration >= KEPT_UP_SHARE * rate
        )  # fmt: skip
        await asyncio.sleep(1.0)  # let the server drain before the next step
        return stats

    # Capacity: double (or halve, when the first rate fails) until the outcome flips, bisect
    # between the two, then confirm the best rate for longer.
    steps: list[dict] = []
    held, failed, rate = None, None, search["start"]
    while len(steps) < 12 and search["start"] / 16 <= rate <= search["max"]:
        steps.append(await sustained(rate, search["step"]))
        if steps[-1]["held"]:
            held = rate
            if failed is not None:
                break
            rate *= 2
        else:
            failed = rate
            if held is not None:
                break
            rate /= 2
    for _ in range(search["bisect"]):
        if held is None or failed is None or failed - held < 0.05 * held:
            break
        middle = (held + failed) / 2
        steps.append(await sustained(middle, search["step"]))
        held, failed = (middle, failed) if steps[-1]["held"] else (held, middle)
    confirmation, confirmations = None, []
    candidate = held
    for _ in range(3):
        if candidate is None:
            break
        confirmation = await sustained(candidate, search["duration"])
        confirmations.append(confirmation)
        if confirmation["held"]:
            break
        candidate *= 0.85
    capacity = {
        "capacity_per_s": candidate if confirmation is not None and confirmation["held"] else None,
        "first_failed_per_s": failed, "confirmation": confirmation, "steps": steps,
        "confirmations": confirmations, "best_step_per_s": held,
    }  # fmt: skip

    # Burst: closed loop, as fast as answers come back; servers in turn.
    async def flood(fleet: list[_ChargePointLoad]) -> dict:
        latencies: list[float] = []
        stop_at = time.perf_counter() + burst

        async def one(load: _ChargePointLoad) -> None:
            while time.perf_counter() < stop_at:
                sent = await load.send_one()
                latencies.append(time.perf_counter() - sent)

        acked_before = sum(len(f.acked) for f in fleet)
        started = time.perf_counter()
        await asyncio.gather(*(one(f) for f in fleet))
        return _phase_stats(latencies, sum(len(f.acked) for f in fleet) - acked_before,
                            time.perf_counter() - started)  # fmt: skip

    bursts: dict[str, list[dict]] = {name: [] for name in fleets}
    for _ in range(repeats):
        for name, fleet in fleets.items():
            bursts[name].append(await flood(fleet))

    await asyncio.gather(*(f.connection.close() for fleet in fleets.values() for f in fleet))
    return {
        "connect_s": connect_s,
        "capacity": capacity,
        "bursts": bursts,
        "acked": {f.id: f.acked for f in ours},
    }


def _phase_stats(latencies: list[float], acked: int, elapsed: float) -> dict:
    ordered = sorted(latencies)
    pick = (lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000) if ordered else (lambda q: None)
    return {
        "acked": acked,
        "seconds": elapsed,
        "messages_per_s": acked / elapsed if elapsed else 0.0,
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "max_ms": ordered[-1] * 1000 if ordered else None,
    }


# --------------------------------------------------------------------------- reference server


async def _reference_server(port_file: Path) -> None:
    """The ``ocpp`` package's documented central-system pattern, without a spool."""
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from websockets.asyncio.server import serve

    class Reference(ChargePoint):
        @on("MeterValues")
        def on_meter_values(self, connector_id, meter_value, transaction_id=None):
            return call_result.MeterValues()

    async def handler(connection):
        charge_point = Reference(connection.request.path.rsplit("/", 1)[-1], connection)
        try:
            await charge_point.start()
        except Exception:  # noqa: BLE001 - connection closed
            return

    import logging

    logging.getLogger("ocpp").setLevel(logging.WARNING)
    async with serve(handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"], compression=None) as server:
        port_file.write_text(str(server.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()


# --------------------------------------------------------------------------- orchestration


def _start_ours(spool: Path, credentials: Path) -> tuple[subprocess.Popen, int]:
    command = [
        sys.executable, "-c", "from zapanalytics.cli import main; main()",
        "ocpp", "serve", "--host", "127.0.0.1", "--port", "0", "--spool", str(spool),
        "--credentials", str(credentials),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if "ws://" not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
    return process, port


def _start_reference(workdir: Path) -> tuple[subprocess.Popen, int]:
    port_file = workdir / "reference.port"
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_ocpp", "--reference-server", str(port_file)], cwd=ROOT
    )
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return process, int(port_file.read_text())
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("reference server did not start")


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _run_generator(ports: dict[str, int], count: int, search: dict, burst: float, repeats: int) -> dict:
    output = Path(tempfile.mkstemp(suffix=".json")[1])
    urls = json.dumps({name: f"ws://127.0.0.1:{port}/ocpp" for name, port in ports.items()})
    command = [
        sys.executable, "-m", "benchmarks.bench_ocpp", "--generator", str(output),
        "--urls", urls, "--charge-points", str(count), "--rate", str(search["start"]),
        "--max-rate", str(search["max"]), "--step", str(search["step"]),
        "--search-steps", str(search["bisect"]), "--duration", str(search["duration"]),
        "--burst", str(burst), "--repeats", str(repeats),
    ]  # fmt: skip
    # Bounded: at most 12 doubling and the bisection steps, three confirmations, the bursts.
    budget = (12 + search["bisect"]) * (search["step"] + 1) + 3 * search["duration"] + 2 * repeats * burst
    subprocess.run(command, cwd=ROOT, check=True, timeout=budget + 300)
    result = json.loads(output.read_text())
    output.unlink()
    return result


def _verify(spool: Path, acked: dict[str, list[int]]) -> dict:
    """Every acknowledged message in the spool, and one stored row per acknowledged message."""
    from zapanalytics.ingest.ocpp.load import load_spool
    from zapanalytics.ingest.spool import spool_records
    from zapanalytics.store import open_store

    spooled: dict[str, set[int]] = {}
    for record in spool_records(spool):
        if record.get("direction") == "in" and '"MeterValues"' in record["message"]:
            spooled.setdefault(record["charge_point_id"], set()).add(int(json.loads(record["message"])[1]))
    missing = sum(len(set(seqs) - spooled.get(cp, set())) for cp, seqs in acked.items())
    with tempfile.TemporaryDirectory() as tmp:
        con = open_store(Path(tmp) / "bench.duckdb")
        started = time.perf_counter()
        report = load_spool(con, spool)
        load_s = time.perf_counter() - started
        stored = con.execute("SELECT count(*) FROM meter_values WHERE source = 'ocpp'").fetchall()[0][0]
        con.close()
    expected = sum(len(set(s)) for s in acked.values())
    return {
        "acked_missing_from_spool": missing,
        "acked": expected,
        "stored_rows": stored,
        "lost": expected - stored if stored < expected else 0,
        "load_s": load_s,
        "load_rows_per_s": report.lines_read / load_s if load_s else None,
        "quarantined": report.counts.rows_quarantined,
    }


def main(argv: list[str] | None = None) -> int:
    from benchmarks.harness import Result, argument_parser, emit

    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--charge-points", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None, help="first rate of the capacity search [msg/s]")
    parser.add_argument("--max-rate", type=float, default=None, help="highest rate the search offers [msg/s]")
    parser.add_argument("--step", type=float, default=None, help="each search step [s]")
    parser.add_argument("--search-steps", type=int, default=None, help="bisection steps after doubling")
    parser.add_argument("--duration", type=float, default=None, help="the confirmation at the capacity [s]")
    parser.add_argument("--burst", type=float, default=None, help="each burst [s]")
    parser.add_argument("--no-reference", action="store_true", help="skip the comparator")
    parser.add_argument("--generator", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--reference-server", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.reference_server is not None:
        asyncio.run(_reference_server(args.reference_server))
        return 0
    count = args.charge_points or (100 if args.quick else 500)
    search = {
        "start": args.rate or (500.0 if args.quick else 1000.0),
        "max": args.max_rate or 64_000.0,
        "step": args.step or (2.0 if args.quick else 6.0),
        "bisect": args.search_steps if args.search_steps is not None else (2 if args.quick else 4),
        "duration": args.duration or (5.0 if args.quick else 20.0),
    }
    burst = args.burst or (3.0 if args.quick else 8.0)
    repeats = max(1, args.repeats)
    if args.generator is not None:
        urls = json.loads(args.urls)
        result = asyncio.run(_generate(urls, count, "bench-password-0123", search, burst, repeats))
        args.generator.write_text(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        credentials = workdir / "credentials.json"
        credentials.write_text(json.dumps({f"ZPR{i:06d}": "bench-password-0123" for i in range(count)}))
        spool = workdir / "spool"
        server, port = _start_ours(spool, credentials)
        ports = {"ours": port}
        reference = None
        try:
            if not args.no_reference:
                reference, ports["reference"] = _start_reference(workdir)
            run = _run_generator(ports, count, search, burst, repeats)
            server_rss = _peak_rss_mb(server.pid)
            reference_rss = _peak_rss_mb(reference.pid) if reference else None
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            if reference is not None:
                reference.kill()
                reference.wait()
        check = _verify(spool, run["acked"])

    capacity, bursts = run["capacity"], run["bursts"]
    print(json.dumps({"capacity": capacity, "bursts": bursts, "connect_s": run["connect_s"],
                      "server_peak_rss_mb": server_rss, "reference_peak_rss_mb": reference_rss,
                      "verify": check}, indent=2))  # fmt: skip
    zero_loss = check["acked_missing_from_spool"] == 0 and check["lost"] == 0

    def median(name: str, key: str) -> float | None:
        values = [b[key] for b in bursts.get(name, []) if b[key] is not None]
        return statistics.median(values) if values else None

    ours_burst, ref_burst = median("ours", "messages_per_s"), median("reference", "messages_per_s")
    reference_note = (
        f"; reference p99 {median('reference', 'p99_ms'):.1f} ms, peak RSS {reference_rss:.0f} MiB"
        if ref_burst else ""
    )  # fmt: skip
    capacity_rate = capacity["capacity_per_s"]
    confirmation = capacity["confirmation"]
    searched = ", ".join(
        f"{s['offered_per_s']:,.0f} {'held' if s['held'] else 'failed'} (p99 {s['p99_ms'] or float('nan'):.0f} ms)"
        for s in capacity["steps"]
    )
    if capacity_rate:
        capacity_note = (
            f"held {capacity_rate:,.0f} msg/s offered for {search['duration']:g} s: answered "
            f"{confirmation['messages_per_s']:,.0f} msg/s, p50 {confirmation['p50_ms']:.1f} ms, p99 "
            f"{confirmation['p99_ms']:.1f} ms from the scheduled send; search ({search['step']:g} s steps): {searched}"
        )
    else:
        tried = ", ".join(
            f"{c['offered_per_s']:,.0f} (p99 {c['p99_ms'] or float('nan'):.0f} ms, answered {c['acked']:,} of {c['offered']:,})"
            for c in capacity["confirmations"]
        )
        capacity_note = (
            f"no rate held for {search['duration']:g} s (confirmations: {tried or 'none'}); the best "
            f"{search['step']:g} s step held {capacity['best_step_per_s'] or 0:,.0f} msg/s (search: {searched})"
        )
    if capacity["first_failed_per_s"]:
        capacity_note += (f"; {capacity['first_failed_per_s']:,.0f} msg/s failed; the load generator is one Python "
                          "process on the same two cores, so the bound may be the generator's")  # fmt: skip
    rows = [
        Result(
            workload=f"B5 OCPP capacity (sustained, zero loss, p99 < {P99_LIMIT_MS:g} ms), {count} charge points",
            ours="zapanalytics ocpp serve (fsync'd spool)",
            ours_value=capacity_rate or 0.0,
            unit="msg/s",
            higher_is_better=True,
            peak_rss_mb=server_rss,
            agree=zero_loss,
            target="≥ 2,000 msg/s, zero loss, p99 < 50 ms",
            met=None if args.quick else bool(capacity_rate and capacity_rate >= 2000 and zero_loss),
            notes=capacity_note + (
                f"; {check['acked']:,} acknowledged over the whole run, {check['stored_rows']:,} stored "
                f"(every acknowledged message in the spool and the store: {zero_loss})"
            ),
        ),
        Result(
            workload=f"B5 OCPP burst, {count} charge points",
            ours="zapanalytics ocpp serve (fsync'd spool)",
            ours_value=ours_burst,
            comparator="ocpp package @on central system (no spool)" if ref_burst else None,
            comparator_value=ref_burst,
            unit="msg/s",
            higher_is_better=True,
            peak_rss_mb=server_rss,
            agree=zero_loss,
            notes=(
                f"median of {repeats} bursts of {burst:g} s alternating between the servers; "
                f"p50 {median('ours', 'p50_ms'):.1f} ms, p99 {median('ours', 'p99_ms'):.1f} ms"
                f"{reference_note}; spool load {check['load_rows_per_s']:,.0f} lines/s"
            ),
        ),
    ]
    emit(rows, args.result)
    return 0 if zero_loss else 1


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") is None:
        random.seed(5)
    sys.exit(main())
