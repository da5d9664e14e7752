"""Shared helpers for the OCPP tests: a server in the test's event loop and a raw client."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from websockets.asyncio.client import connect

from zapanalytics.ingest.ocpp.server import CentralSystem, ServerSettings

PASSWORDS = {"ZPR100001": "correct-horse-1", "ZPR100002": "battery-staple-2"}


def settings(spool: Path, **overrides) -> ServerSettings:
    """Server settings on an ephemeral loopback port with the test credentials."""
    values = {"spool_dir": spool, "host": "127.0.0.1", "port": 0, "credentials": dict(PASSWORDS)}
    values.update(overrides)
    return ServerSettings(**values)


def auth_header(charge_point_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{charge_point_id}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def running(spool: Path, **overrides) -> AsyncIterator[CentralSystem]:
    async with CentralSystem(settings(spool, **overrides)) as central:
        yield central


@contextlib.asynccontextmanager
async def raw_client(central: CentralSystem, charge_point_id: str = "ZPR100001", password: str | None = None):
    """A plain websocket client that speaks OCPP frames by hand."""
    secret = PASSWORDS.get(charge_point_id) if password is None else password
    headers = auth_header(charge_point_id, secret) if secret is not None else {}
    async with connect(
        f"ws://127.0.0.1:{central.port}/ocpp/{charge_point_id}",
        subprotocols=["ocpp1.6"],
        additional_headers=headers,
    ) as ws:
        yield ws


async def exchange(ws, frame: str | list) -> list:
    """Send one frame, return the decoded answer."""
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return json.loads(await ws.recv())


class SpoolBuilder:
    """Write a spool the way the server does (real answers), without sockets or fsync."""

    def __init__(self, directory: Path, **overrides):
        from zapanalytics.ingest.spool import SegmentWriter

        self.directory = directory
        self.writer = SegmentWriter(directory, fsync=False, **overrides).open()
        self.central = CentralSystem(ServerSettings(spool_dir=directory))
        self._n = 0

    def call(self, charge_point_id: str, action: str, payload: dict,
             received: str = "2025-03-01T12:00:00.000000+00:00") -> list:
        """Answer a CALL as the server would and spool the exchange; return the answer."""
        self._n += 1
        message = json.dumps([2, f"u{self._n}", action, payload])
        reply = self.central.answer_call(charge_point_id, f"u{self._n}", action, payload)
        self.raw(charge_point_id, message, reply, received)
        return json.loads(reply)

    def raw(self, charge_point_id: str, message: str, reply: str | None,
            received: str = "2025-03-01T12:00:00.000000+00:00") -> None:
        from zapanalytics.ingest.spool import encode_record

        record = {"ts": received, "charge_point_id": charge_point_id, "direction": "in", "message": message}
        if reply is not None:
            record["reply"] = reply
        self.writer.write_batch([encode_record(record)])

    def start(self, charge_point_id: str, meter_start_wh: int, ts: str, id_tag: str = "TAG-A") -> int:
        answer = self.call(charge_point_id, "StartTransaction",
                           {"connectorId": 1, "idTag": id_tag, "meterStart": meter_start_wh, "timestamp": ts})
        return answer[2]["transactionId"]

    def stop(self, charge_point_id: str, transaction_id: int, meter_stop_wh: int, ts: str, **extra) -> list:
        return self.call(charge_point_id, "StopTransaction",
                         {"transactionId": transaction_id, "meterStop": meter_stop_wh, "timestamp": ts, **extra})

    def meter(self, charge_point_id: str, ts: str, register_kwh: float | None = None, **measurands) -> list:
        sampled = []
        if register_kwh is not None:
            sampled.append({"value": f"{register_kwh:.3f}", "measurand": "Energy.Active.Import.Register",
                            "unit": "kWh"})
        names = {"power_w": ("Power.Active.Import", "W"), "offered_w": ("Power.Offered", "W")}
        for key, value in measurands.items():
            measurand, unit = names[key]
            sampled.append({"value": str(value), "measurand": measurand, "unit": unit})
        return self.call(charge_point_id, "MeterValues",
                         {"connectorId": 1, "meterValue": [{"timestamp": ts, "sampledValue": sampled}]})

    def close(self) -> None:
        self.writer.close()
