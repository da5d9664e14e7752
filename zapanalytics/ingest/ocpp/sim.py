"""Simulated OCPP 1.6J charge points: the ``ocpp`` package's ChargePoint over real websockets.

For tests and load tests of the central system. A charge point is driven by a list of
messages with simulated timestamps, either built from scripted transactions
(:func:`transaction_messages`) or replayed from an OCPP message log such as the ones
``firmware_ref``'s simulator writes (:func:`messages_from_log`: JSON lines
``{"ts", "charge_point_id", "direction", "message"}``). Simulated time is compressed by
``time_scale`` (simulated seconds per real second; ``math.inf`` sends as fast as answers
come back).

Delivery is at-least-once, like a real charge point's transaction queue: a message whose
answer did not arrive because the connection dropped is sent again after reconnecting.
Every answered message is recorded in :class:`SimulationResult` with its latency, which is
what tests compare the store against ("acknowledged" = the central system answered).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import json
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call, call_result
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from zapanalytics.ingest.ocpp.server import CHARGE_POINT_ACTIONS, OCPP_SUBPROTOCOL

#: Payload dataclasses of the charge-point actions, by action name.
_CALLS = {name: getattr(call, name) for name in CHARGE_POINT_ACTIONS}
#: Placeholder in scripted payloads for "the transactionId the server gave transaction N".
TRANSACTION_REF = "$transaction"


@dataclasses.dataclass(frozen=True, slots=True)
class ScriptedTransaction:
    """One charging session to play.

    Attributes
    ----------
    id_tag : str
        The RFID tag presented.
    start_utc : datetime
        Simulated start (tz-aware).
    duration_s : float
        Simulated length [s].
    power_w : float
        Constant charging power [W], split evenly over three phases at 230 V.
    connector_id : int
        Connector (Zaptec chargers have one).
    """

    id_tag: str
    start_utc: dt.datetime
    duration_s: float
    power_w: float
    connector_id: int = 1


@dataclasses.dataclass(slots=True)
class OutgoingMessage:
    """One CALL a simulated charge point will send.

    ``payload`` is camelCase as on the wire; ``{"transactionId": "$transaction", ...}``
    placeholders name the transaction by its index in ``transaction_ref``.
    """

    sim_utc: dt.datetime
    action: str
    payload: dict[str, Any]
    transaction_ref: int | None = None


@dataclasses.dataclass(slots=True)
class Acknowledged:
    """A message the central system answered."""

    charge_point_id: str
    action: str
    payload: dict[str, Any]
    answer: dict[str, Any]
    latency_s: float
    attempts: int


@dataclasses.dataclass(slots=True)
class SimulationResult:
    """What one simulated charge point sent and had answered."""

    charge_point_id: str
    acknowledged: list[Acknowledged] = dataclasses.field(default_factory=list)
    transaction_ids: dict[int, int] = dataclasses.field(default_factory=dict)
    energy_wh: dict[int, int] = dataclasses.field(default_factory=dict)
    connections: int = 0
    unsent: int = 0
    configuration: dict[str, str] = dataclasses.field(default_factory=dict)
    charging_profiles: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def latencies_s(self) -> list[float]:
        return [a.latency_s for a in self.acknowledged]


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def transaction_messages(
    transactions: Sequence[ScriptedTransaction],
    *,
    register_start_wh: int = 1_000_000,
    sample_interval_s: float = 120.0,
    offered_power_w: float = 11_000.0,
    boot: bool = True,
) -> tuple[list[OutgoingMessage], dict[int, int]]:
    """Build the messages a Zaptec-like charge point sends for scripted transactions.

    Per transaction: StatusNotification Preparing, StartTransaction, Charging, MeterValues
    every ``sample_interval_s`` (Energy.Active.Import.Register in kWh, Power.Active.Import,
    Power.Offered, Current.Import on L1-N..L3-N), StopTransaction with Transaction.Begin/End
    samples, then Finishing and Available.

    Parameters
    ----------
    transactions : sequence of ScriptedTransaction
        In time order, not overlapping.
    register_start_wh : int
        The lifetime register before the first transaction [Wh].
    sample_interval_s : float
        MeterValueSampleInterval [s].
    offered_power_w : float
        Power.Offered during transactions [W].
    boot : bool
        Begin with a BootNotification.

    Returns
    -------
    (list of OutgoingMessage, dict of int to int)
        The messages, and the ground-truth energy of each transaction (meterStop -
        meterStart) [Wh] by transaction index.
    """
    messages: list[OutgoingMessage] = []
    truth: dict[int, int] = {}
    register_wh = register_start_wh
    if boot and transactions:
        messages.append(OutgoingMessage(
            transactions[0].start_utc - dt.timedelta(seconds=5),
            "BootNotification",
            {"chargePointVendor": "Zaptec", "chargePointModel": "ZapCharger Pro",
             "firmwareVersion": "2.3.1.2"},
        ))
    for index, tx in enumerate(transactions):
        start, connector = tx.start_utc, tx.connector_id
        messages.append(_status(start, connector, "Preparing"))
        meter_start = register_wh
        messages.append(OutgoingMessage(start, "StartTransaction", {
            "connectorId": connector, "idTag": tx.id_tag, "meterStart": meter_start,
            "timestamp": _iso(start),
        }))
        messages.append(_status(start + dt.timedelta(seconds=1), connector, "Charging"))
        energy_exact = 0.0
        elapsed = sample_interval_s
        while elapsed < tx.duration_s:
            energy_exact = tx.power_w * elapsed / 3600.0
            ts = start + dt.timedelta(seconds=elapsed)
            messages.append(OutgoingMessage(ts, "MeterValues", {
                "connectorId": connector, "transactionId": TRANSACTION_REF,
                "meterValue": [_sample(ts, meter_start + round(energy_exact), tx.power_w, offered_power_w)],
            }, index))
            elapsed += sample_interval_s
        meter_stop = meter_start + round(tx.power_w * tx.duration_s / 3600.0)
        end = start + dt.timedelta(seconds=tx.duration_s)
        messages.append(OutgoingMessage(end, "StopTransaction", {
            "transactionId": TRANSACTION_REF, "idTag": tx.id_tag, "meterStop": meter_stop,
            "timestamp": _iso(end), "reason": "EVDisconnected",
            "transactionData": [
                {"timestamp": _iso(start), "sampledValue": [
                    {"value": str(meter_start), "context": "Transaction.Begin", "unit": "Wh"}]},
                {"timestamp": _iso(end), "sampledValue": [
                    {"value": str(meter_stop), "context": "Transaction.End", "unit": "Wh"}]},
            ],
        }, index))
        messages.append(_status(end + dt.timedelta(seconds=1), connector, "Finishing"))
        messages.append(_status(end + dt.timedelta(seconds=30), connector, "Available"))
        truth[index] = meter_stop - meter_start
        register_wh = meter_stop
    return messages, truth


def _status(ts: dt.datetime, connector: int, status: str) -> OutgoingMessage:
    return OutgoingMessage(ts, "StatusNotification", {
        "connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": _iso(ts),
    })


def _sample(ts: dt.datetime, register_wh: int, power_w: float, offered_w: float) -> dict[str, Any]:
    phase_a = power_w / 3.0 / 230.0
    return {"timestamp": _iso(ts), "sampledValue": [
        {"value": f"{register_wh / 1000:.3f}", "measurand": "Energy.Active.Import.Register",
         "unit": "kWh", "context": "Sample.Periodic"},
        {"value": f"{power_w:.0f}", "measurand": "Power.Active.Import", "unit": "W"},
        {"value": f"{offered_w:.0f}", "measurand": "Power.Offered", "unit": "W"},
        *({"value": f"{phase_a:.2f}", "measurand": "Current.Import", "phase": p, "unit": "A"}
          for p in ("L1-N", "L2-N", "L3-N")),
    ]}


def messages_from_log(path: str | Path, charge_point_id: str | None = None) -> list[OutgoingMessage]:
    """Read the charge point's CALLs from an OCPP message log for replay.

    Parameters
    ----------
    path : str or Path
        JSON lines ``{"ts", "charge_point_id", "direction", "message"}``; ``message`` is the
        OCPP-J frame as a JSON array or as its text. This is the log ``firmware_ref``'s
        simulator writes (``ocpp/<ChargePointId>.jsonl``) and also the shape of a spool.
    charge_point_id : str, optional
        Keep only this charge point's lines.

    Returns
    -------
    list of OutgoingMessage
        The charge-point-initiated CALLs in log order, with transaction ids replaced by
        references: the log's ids were given by another central system.
    """
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            entry = json.loads(line)
            if charge_point_id is not None and entry.get("charge_point_id") != charge_point_id:
                continue
            frame = entry["message"]
            if isinstance(frame, str):
                frame = json.loads(frame)
            entries.append((entry, frame))
    # The log's own StartTransaction answers tell which transactionId each start received.
    start_calls: dict[str, int] = {}
    original_ids: dict[int, int] = {}
    messages: list[OutgoingMessage] = []
    for entry, frame in entries:
        if frame[0] == 2 and frame[2] in CHARGE_POINT_ACTIONS:
            ts = dt.datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00"))
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=dt.UTC)
            messages.append(OutgoingMessage(ts, frame[2], dict(frame[3])))
            if frame[2] == "StartTransaction":
                start_calls[frame[1]] = len(messages) - 1
        elif frame[0] == 3 and frame[1] in start_calls and isinstance(frame[2], dict):
            original = frame[2].get("transactionId")
            if isinstance(original, int):
                original_ids[original] = start_calls[frame[1]]
    # Transaction index = order of StartTransaction; ids without a logged answer take the
    # most recent start that has none.
    start_order = {pos: n for n, pos in enumerate(p for p, m in enumerate(messages) if m.action == "StartTransaction")}
    unclaimed = [pos for pos in start_order if pos not in original_ids.values()]
    for position, message in enumerate(messages):
        original = message.payload.get("transactionId")
        if message.action not in ("MeterValues", "StopTransaction") or not isinstance(original, int):
            continue
        if original not in original_ids:
            earlier = [p for p in unclaimed if p < position]
            if not earlier:
                continue
            original_ids[original] = earlier[-1]
            unclaimed.remove(earlier[-1])
        message.payload["transactionId"] = TRANSACTION_REF
        message.transaction_ref = start_order[original_ids[original]]
    return messages


class SimulatedChargePoint(OcppChargePoint):
    """A charge point that accepts configuration and charging profiles from the central system."""

    def __init__(self, charge_point_id: str, connection, result: SimulationResult):
        super().__init__(charge_point_id, connection, response_timeout=30)
        self.result = result

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str):
        self.result.configuration[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict):
        self.result.charging_profiles.append({"connector_id": connector_id, **cs_charging_profiles})
        return call_result.SetChargingProfile(status="Accepted")


def _payload_object(action: str, payload: dict[str, Any]):
    from ocpp.charge_point import camel_to_snake_case

    top = {camel_to_snake_case({k: None}).popitem()[0]: v for k, v in payload.items()}
    return _CALLS[action](**top)


@dataclasses.dataclass(slots=True)
class SimulatorOptions:
    """How a simulated charge point connects and paces itself.

    Attributes
    ----------
    url : str
        Base URL of the central system, e.g. ``ws://127.0.0.1:9000/ocpp``.
    password : str or None
        Basic-auth password (user name = charge point id).
    time_scale : float
        Simulated seconds per real second (``math.inf``: no waiting).
    reconnect_delay_s : float
        Pause before reconnecting after a drop [s].
    give_up_after_s : float
        Stop trying to reconnect after this long without a connection [s].
    drop_after_messages : int or None
        Close the socket after this many acknowledged messages, once (reconnect tests).
    skip_schema_validation : bool
        Skip the ``ocpp`` package's own outgoing validation (load generation).
    """

    url: str
    password: str | None = None
    time_scale: float = math.inf
    reconnect_delay_s: float = 0.2
    give_up_after_s: float = 30.0
    drop_after_messages: int | None = None
    skip_schema_validation: bool = False


def _headers(charge_point_id: str, password: str | None) -> dict[str, str]:
    if password is None:
        return {}
    token = base64.b64encode(f"{charge_point_id}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


async def run_charge_point(
    charge_point_id: str,
    messages: Iterable[OutgoingMessage],
    options: SimulatorOptions,
    *,
    truth_wh: dict[int, int] | None = None,
) -> SimulationResult:
    """Connect, send ``messages`` in order with compressed timing, and record the answers.

    Returns
    -------
    SimulationResult
        Acknowledged messages, the server's transaction ids by transaction index, and the
        ground-truth energy per transaction when ``truth_wh`` is given [Wh].
    """
    messages = list(messages)
    result = SimulationResult(charge_point_id, energy_wh=dict(truth_wh or {}))
    if not messages:
        return result
    sim_zero = messages[0].sim_utc
    real_zero = time.monotonic()
    position = 0
    dropped_once = False
    down_since: float | None = None
    while position < len(messages):
        try:
            connection = await connect(
                f"{options.url.rstrip('/')}/{charge_point_id}",
                subprotocols=[OCPP_SUBPROTOCOL],
                additional_headers=_headers(charge_point_id, options.password),
                compression=None,
                open_timeout=10,
                max_size=2**20,
            )
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403, 404):
                raise
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > options.give_up_after_s:
                break
            await asyncio.sleep(options.reconnect_delay_s)
            continue
        down_since = None
        result.connections += 1
        charge_point = SimulatedChargePoint(charge_point_id, connection, result)
        listener = asyncio.create_task(charge_point.start())
        try:
            while position < len(messages):
                message = messages[position]
                if math.isfinite(options.time_scale):
                    due = real_zero + (message.sim_utc - sim_zero).total_seconds() / options.time_scale
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                payload = dict(message.payload)
                if message.transaction_ref is not None:
                    transaction_id = result.transaction_ids.get(message.transaction_ref)
                    if transaction_id is None:
                        position += 1  # its StartTransaction was never answered
                        result.unsent += 1
                        continue
                    payload["transactionId"] = transaction_id
                sent_at = time.perf_counter()
                request = asyncio.create_task(charge_point.call(
                    _payload_object(message.action, payload),
                    suppress=False,
                    skip_schema_validation=options.skip_schema_validation,
                ))
                done, _ = await asyncio.wait({request, listener}, return_when=asyncio.FIRST_COMPLETED)
                if request not in done:
                    request.cancel()
                    with contextlib.suppress(BaseException):
                        await request
                    break  # connection lost before the answer: resend after reconnecting
                answer = request.result()
                answer_dict = dataclasses.asdict(answer) if dataclasses.is_dataclass(answer) else {}
                result.acknowledged.append(Acknowledged(
                    charge_point_id, message.action, payload, answer_dict,
                    time.perf_counter() - sent_at, result.connections,
                ))
                if message.action == "StartTransaction":
                    index = sum(1 for m in messages[:position] if m.action == "StartTransaction")
                    result.transaction_ids[index] = int(answer.transaction_id)
                position += 1
                if (
                    options.drop_after_messages is not None
                    and not dropped_once
                    and len(result.acknowledged) >= options.drop_after_messages
                ):
                    dropped_once = True
                    await connection.close()
                    break
        except ConnectionClosed:
            pass
        finally:
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener
            with contextlib.suppress(Exception):
                await connection.close()
        if position < len(messages):
            await asyncio.sleep(options.reconnect_delay_s)
    result.unsent += len(messages) - position
    return result


async def run_fleet(
    scripts: dict[str, tuple[list[OutgoingMessage], dict[int, int]]],
    options: SimulatorOptions,
    *,
    passwords: dict[str, str] | None = None,
) -> dict[str, SimulationResult]:
    """Run several simulated charge points concurrently; return their results by id."""

    async def one(charge_point_id: str) -> SimulationResult:
        messages, truth = scripts[charge_point_id]
        own = dataclasses.replace(options, password=(passwords or {}).get(charge_point_id, options.password))
        return await run_charge_point(charge_point_id, messages, own, truth_wh=truth)

    results = await asyncio.gather(*(one(cp) for cp in scripts))
    return {r.charge_point_id: r for r in results}
