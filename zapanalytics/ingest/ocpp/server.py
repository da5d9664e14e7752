"""An OCPP 1.6J central system that spools every charge-point message before answering it.

The server speaks OCPP 1.6J over ``websockets`` (subprotocol ``ocpp1.6``, path
``/ocpp/{charge_point_id}``) and keeps no database: each frame a charge point sends is
appended to the :mod:`~zapanalytics.ingest.spool` together with the answer, fsync'd (group
commit), and only then answered. :mod:`~zapanalytics.ingest.ocpp.load` turns the spool into
store rows later. What a charge point was told is therefore always on disk.

Handled charge-point actions: BootNotification, Heartbeat, StatusNotification, Authorize
(against an optional local allow-list of id tags), StartTransaction, StopTransaction,
MeterValues, plus DataTransfer, DiagnosticsStatusNotification and FirmwareStatusNotification
so that every 1.6 charge-point action gets a valid answer. Frames and payloads that fail
get the CALLERROR :mod:`~zapanalytics.ingest.ocpp.frames` names; an action 1.6 does not
define gets ``NotImplemented`` ("not known by receiver"), a 1.6 action a central system
does not accept gets ``NotSupported``. The connection stays up in every case. The server
routes frames itself and keeps the ``ocpp`` package's ``ChargePoint`` for calls *to* the
charge point (ChangeConfiguration, SetChargingProfile).

Security (OCPP security profile 1): HTTP Basic auth with the charge point id as user name
and a per-charge-point password from a JSON file; unknown ids and wrong passwords get
HTTP 401 after a delay that doubles with each recent failure from the same address or for
the same id. Frames above ``max_frame_bytes`` close the connection (1009), connections
that send nothing for ``idle_timeout_s`` are closed, and a second connection for the same
id replaces the first.

Memory is bounded per connection and per server: a connection buffers at most
``max_queued_frames`` frames of at most ``max_frame_bytes``, reads its next frame only once
the previous one is spooled, and at most ``max_connections`` charge points are connected
(more get HTTP 503). A CALLRESULT or CALLERROR is kept only when it answers a call this
server sent and still awaits; any other one is dropped and counted
(:attr:`CentralSystem.unsolicited_dropped`), never held nor spooled, since the store has no
use for it.

Transaction ids come from :mod:`~zapanalytics.ingest.ocpp.transactions`: they never repeat
across restarts, and a StartTransaction retried with the same content gets its earlier id.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import datetime as dt
import hmac
import json
import logging
import signal
from collections.abc import Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ocpp.charge_point import camel_to_snake_case
from ocpp.messages import CallError as OcppCallError
from ocpp.messages import CallResult as OcppCallResult
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call as ocpp_call
from ocpp.v16.enums import Action
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError

from zapanalytics.ingest.ocpp.auth import (
    CHARGE_POINT_ID_PATTERN,
    LoginThrottle,
    basic_credentials,
    is_loopback,
    load_credentials,
    load_id_tags,
)
from zapanalytics.ingest.ocpp.frames import (
    FrameError,
    OcppCallErrorCode,
    PayloadValidator,
    call_error_text,
    call_result_text,
    parse_frame,
    utc_now_text,
)
from zapanalytics.ingest.ocpp.transactions import TransactionIds, recover_transactions
from zapanalytics.ingest.spool import DEFAULT_SEGMENT_BYTES, GroupCommitSpool

#: Names other modules import from here (the pieces moved to ocpp_frames and ocpp_auth).
__all__ = [
    "ADMIN_ACTIONS", "CHARGE_POINT_ACTIONS", "CentralSystem", "ChargePointConnection", "FrameError",
    "LoginThrottle", "OcppCallErrorCode", "ServerSettings", "call_error_text", "load_credentials",
    "load_id_tags", "parse_frame", "recover_transactions", "run_server", "send_admin_command",
]

LOG = logging.getLogger(__name__)

OCPP_SUBPROTOCOL = "ocpp1.6"
OCPP_PATH_PREFIX = "/ocpp/"
ADMIN_PATH = "/admin"
#: Charge-point-initiated actions this central system answers.
CHARGE_POINT_ACTIONS = frozenset({
    "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction",
    "StatusNotification", "StopTransaction",
})
#: Central-system-initiated actions the admin hook may send.
ADMIN_ACTIONS = {
    "ChangeConfiguration": ocpp_call.ChangeConfiguration,
    "SetChargingProfile": ocpp_call.SetChargingProfile,
}
_KNOWN_ACTIONS = frozenset(action.value for action in Action)


# --------------------------------------------------------------------------- configuration



@dataclasses.dataclass(slots=True)
class ServerSettings:
    """Settings of the central system.

    Attributes
    ----------
    spool_dir : Path
        Where the spool lives.
    host, port : str, int
        Listening address; port 0 picks a free one.
    credentials : dict or None
        Charge point id to password. None runs without authentication (lab use only).
    id_tags : frozenset or None
        Local allow-list for Authorize/StartTransaction; None accepts every tag.
    heartbeat_interval_s : int
        Interval handed out in BootNotification [s].
    idle_timeout_s : float
        Close a connection that sends nothing for this long [s].
    max_frame_bytes : int
        Larger frames close the connection with code 1009 [bytes].
    max_segment_bytes : int
        Spool rotation size [bytes].
    admin_token : str or None
        Enables the ``/admin`` hook (loopback peers only) when set.
    auth_free_failures, auth_base_delay_s, auth_max_delay_s, auth_window_s
        Login throttling: failures allowed without delay, first delay [s], cap [s] and the
        window failures are remembered for [s].
    fsync : bool
        Durability of the spool (keep True outside of tests of other layers).
    max_connections : int
        Charge points connected at once; more get HTTP 503 (bounds the server's memory).
    max_queued_frames : int
        Frames a connection buffers before the socket stops reading (websockets' ``max_queue``).
    """

    spool_dir: Path
    host: str = "127.0.0.1"
    port: int = 9000
    credentials: dict[str, str] | None = None
    id_tags: frozenset[str] | None = None
    heartbeat_interval_s: int = 300
    idle_timeout_s: float = 720.0
    max_frame_bytes: int = 64 * 1024
    max_segment_bytes: int = DEFAULT_SEGMENT_BYTES
    admin_token: str | None = None
    auth_free_failures: int = 3
    auth_base_delay_s: float = 0.5
    auth_max_delay_s: float = 30.0
    auth_window_s: float = 900.0
    fsync: bool = True
    max_connections: int = 1000
    max_queued_frames: int = 4


#: How long after its call's timeout an answer is still taken as solicited [s].
_ANSWER_GRACE_S = 5.0
#: Calls awaiting an answer per connection (calls are sent one at a time; timed-out ones linger).
_MAX_AWAITED_CALLS = 16


# --------------------------------------------------------------------------- connections


class ChargePointConnection(OcppChargePoint):
    """One connected charge point: routes its frames and carries calls to it.

    Inherits :meth:`ocpp.v16.ChargePoint.call` (used for ChangeConfiguration and
    SetChargingProfile); every frame sent or received passes through the spool.
    """

    def __init__(self, charge_point_id: str, connection: ServerConnection, central: CentralSystem):
        super().__init__(charge_point_id, connection, response_timeout=30)
        self.central = central
        self.connection = connection
        # Unique ids of calls sent to the charge point whose answer is awaited, with the
        # monotonic time after which an answer is no longer taken.
        self._awaited: collections.OrderedDict[str, float] = collections.OrderedDict()

    def _record(self, direction: str, message: str, reply: str | None = None) -> dict[str, Any]:
        record = {
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "charge_point_id": self.id,
            "direction": direction,
            "message": message,
        }
        if reply is not None:
            record["reply"] = reply
        return record

    async def _send(self, message: str) -> None:
        # Calls to the charge point are spooled before they leave, like answers.
        await self.central.spool.append(self._record("out", message))
        self._expect_answer(message)
        await self._connection.send(message)

    def _expect_answer(self, message: str) -> None:
        """Remember the unique id of a CALL we send, so its answer is taken."""
        with contextlib.suppress(ValueError, TypeError, IndexError):
            frame = json.loads(message)
            if frame[0] == 2:
                loop = asyncio.get_running_loop()
                self._awaited[str(frame[1])] = loop.time() + self._response_timeout + _ANSWER_GRACE_S
                while len(self._awaited) > _MAX_AWAITED_CALLS:
                    self._awaited.popitem(last=False)

    def _is_awaited(self, unique_id: str) -> bool:
        """Whether ``unique_id`` answers a call still awaited (forgetting it: one answer each)."""
        now = asyncio.get_running_loop().time()
        for stale in [uid for uid, until in self._awaited.items() if until < now]:
            del self._awaited[stale]
        return self._awaited.pop(unique_id, None) is not None

    async def run(self) -> None:
        """Receive and answer frames until the connection closes or goes idle."""
        idle = self.central.settings.idle_timeout_s
        while True:
            try:
                async with asyncio.timeout(idle):
                    frame = await self.connection.recv()
            except TimeoutError:
                LOG.info("%s: idle for %.0f s, closing", self.id, idle)
                await self.connection.close(1000, "idle timeout")
                return
            await self.handle_frame(frame)

    async def handle_frame(self, frame: str | bytes) -> None:
        """Spool one frame (with the answer to a CALL) and then send the answer."""
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "backslashreplace")
        self.central.frames_received += 1
        try:
            parsed = parse_frame(text)
        except FrameError as exc:
            reply = call_error_text(exc.unique_id, exc.code, exc.description)
            await self._answer(text, reply)
            return
        kind = parsed[0]
        if kind == 2:
            reply = self.central.answer_call(self.id, parsed[1], parsed[2], parsed[3])
            await self._answer(text, reply)
            return
        if not self._is_awaited(parsed[1]):
            # Answers nothing we asked: dropped and counted, neither held nor spooled.
            self.central.unsolicited_dropped += 1
            if self.central.unsolicited_dropped in (1, 10, 100) or self.central.unsolicited_dropped % 1000 == 0:
                LOG.warning("%s: dropped an unsolicited %s (%d dropped so far)", self.id,
                            "CALLRESULT" if kind == 3 else "CALLERROR", self.central.unsolicited_dropped)
            return
        # A CALLRESULT or CALLERROR to one of our calls: spool it, hand it to the waiting call.
        await self.central.spool.append(self._record("in", text))
        if kind == 3:
            self._response_queue.put_nowait(OcppCallResult(parsed[1], parsed[2]))
        else:
            self._response_queue.put_nowait(OcppCallError(*parsed[1:]))

    async def _answer(self, message: str, reply: str) -> None:
        await self.central.spool.append(self._record("in", message, reply))
        await self.connection.send(reply)
        self.central.frames_answered += 1


class CentralSystem:
    """The OCPP 1.6J central system: listening socket, connections, spool and answers.

    Use as an async context manager, or call :meth:`start` and :meth:`stop`.

    Parameters
    ----------
    settings : ServerSettings
        Address, spool, credentials and limits.
    """

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.spool = GroupCommitSpool(
            settings.spool_dir, max_segment_bytes=settings.max_segment_bytes, fsync=settings.fsync
        )
        self.validator = PayloadValidator()
        self.throttle = LoginThrottle(
            free_failures=settings.auth_free_failures,
            base_delay_s=settings.auth_base_delay_s,
            max_delay_s=settings.auth_max_delay_s,
            window_s=settings.auth_window_s,
        )
        self.connections: dict[str, ChargePointConnection] = {}
        self.port: int | None = None
        self.frames_received = 0
        self.frames_answered = 0
        #: CALLRESULT/CALLERROR frames that answered no call of ours (dropped, not spooled).
        self.unsolicited_dropped = 0
        self._server = None
        self.transaction_ids = TransactionIds()
        self._background: set[asyncio.Task] = set()
        self._handlers: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
            "BootNotification": self._on_boot_notification,
            "Heartbeat": self._on_heartbeat,
            "StatusNotification": self._on_empty_answer,
            "MeterValues": self._on_empty_answer,
            "DiagnosticsStatusNotification": self._on_empty_answer,
            "FirmwareStatusNotification": self._on_empty_answer,
            "Authorize": self._on_authorize,
            "StartTransaction": self._on_start_transaction,
            "StopTransaction": self._on_stop_transaction,
            "DataTransfer": self._on_data_transfer,
        }

    # ---- lifecycle

    async def start(self) -> int:
        """Open the spool, recover transaction ids and start listening; return the port."""
        await self.spool.open()
        self.validator.warm(sorted(CHARGE_POINT_ACTIONS))
        self.transaction_ids.recover(self.settings.spool_dir, dt.datetime.now(dt.UTC))
        self._server = await serve(
            self._handle_connection,
            self.settings.host,
            self.settings.port,
            subprotocols=[OCPP_SUBPROTOCOL],
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            max_size=self.settings.max_frame_bytes,
            max_queue=self.settings.max_queued_frames,
            compression=None,
            # A throttled login waits before its 401; the handshake must outlive that wait.
            open_timeout=self.settings.auth_max_delay_s + 10,
            ping_interval=60,
            ping_timeout=60,
            server_header=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        LOG.info("OCPP central system listening on %s:%s", self.settings.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Close connections (answers already sent stay spooled) and the spool."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.spool.close()

    async def __aenter__(self) -> CentralSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    # ---- handshake

    def _select_subprotocol(self, connection: ServerConnection, offered) -> str | None:
        if connection.request is not None and connection.request.path.split("?")[0] == ADMIN_PATH:
            return None
        if OCPP_SUBPROTOCOL in offered:
            return OCPP_SUBPROTOCOL
        raise NegotiationError(f"this central system speaks {OCPP_SUBPROTOCOL} only")

    async def _process_request(self, connection: ServerConnection, request):
        path = request.path.split("?", 1)[0]
        if path == ADMIN_PATH:
            return await self._check_admin(connection, request)
        if not path.startswith(OCPP_PATH_PREFIX):
            return connection.respond(HTTPStatus.NOT_FOUND, "use /ocpp/{charge_point_id}\n")
        charge_point_id = unquote(path[len(OCPP_PATH_PREFIX):])
        if not CHARGE_POINT_ID_PATTERN.match(charge_point_id):
            return connection.respond(HTTPStatus.NOT_FOUND, "not a valid charge point id\n")
        if (
            len(self.connections) >= self.settings.max_connections
            and charge_point_id not in self.connections
        ):
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        if self.settings.credentials is None:
            return None
        headers = request.headers.get_all("Authorization")
        given = basic_credentials(headers[0]) if len(headers) == 1 else None
        expected = self.settings.credentials.get(charge_point_id)
        # Compare even for unknown ids so timing tells nothing about which ids exist.
        password_ok = hmac.compare_digest(
            (given[1] if given else "").encode("utf-8", "surrogatepass"),
            (expected if expected is not None else "\x00unknown").encode("utf-8"),
        )
        if given is not None and expected is not None and given[0] == charge_point_id and password_ok:
            self.throttle.succeeded(charge_point_id)
            return None
        peer = str(connection.remote_address[0]) if connection.remote_address else "?"
        delay = self.throttle.failed(f"peer:{peer}", f"id:{charge_point_id}")
        LOG.warning("refused login for charge point %r from %s", charge_point_id, peer)
        if delay:
            await asyncio.sleep(delay)
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    async def _check_admin(self, connection: ServerConnection, request):
        token = self.settings.admin_token
        if token is None or not is_loopback(connection.remote_address):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        headers = request.headers.get_all("Authorization")
        given = basic_credentials(headers[0]) if len(headers) == 1 else None
        supplied = given[1] if given and given[0] == "admin" else ""
        if hmac.compare_digest(supplied.encode("utf-8", "surrogatepass"), token.encode("utf-8")):
            return None
        delay = self.throttle.failed("admin")
        if delay:
            await asyncio.sleep(delay)
        return connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")

    async def _handle_connection(self, connection: ServerConnection) -> None:
        path = connection.request.path.split("?", 1)[0]
        if path == ADMIN_PATH:
            await self._serve_admin(connection)
            return
        charge_point_id = unquote(path[len(OCPP_PATH_PREFIX):])
        session = ChargePointConnection(charge_point_id, connection, self)
        previous = self.connections.get(charge_point_id)
        self.connections[charge_point_id] = session
        if previous is not None:
            # A charge point that reconnects (e.g. after a network drop) replaces its old socket.
            closing = asyncio.create_task(previous.connection.close(1000, "replaced by a new connection"))
            self._background.add(closing)
            closing.add_done_callback(self._background.discard)
        try:
            await session.run()
        except ConnectionClosed:
            pass
        finally:
            if self.connections.get(charge_point_id) is session:
                del self.connections[charge_point_id]

    # ---- answers

    def answer_call(self, charge_point_id: str, unique_id: str, action: str, payload: dict) -> str:
        """Return the CALLRESULT or CALLERROR text for one CALL (no I/O)."""
        handler = self._handlers.get(action)
        if handler is None:
            if action in _KNOWN_ACTIONS:
                return call_error_text(
                    unique_id,
                    OcppCallErrorCode.NOT_SUPPORTED,
                    f"{action} is an OCPP 1.6 action a central system does not accept",
                )
            return call_error_text(
                unique_id, OcppCallErrorCode.NOT_IMPLEMENTED, f"unknown action {action[:60]!r}"
            )
        try:
            self.validator.validate(action, payload)
            return call_result_text(unique_id, handler(charge_point_id, payload))
        except FrameError as exc:
            return call_error_text(unique_id, exc.code, exc.description)
        except Exception:  # noqa: BLE001 - a bug must cost one answer, not the connection
            LOG.exception("%s: failed to answer %s", charge_point_id, action)
            return call_error_text(unique_id, OcppCallErrorCode.INTERNAL_ERROR, "internal error")

    def id_tag_status(self, id_tag: str | None) -> str:
        """``Accepted`` or ``Invalid`` by the local allow-list (no list: everyone)."""
        allowed = self.settings.id_tags
        if allowed is None or id_tag in allowed:
            return "Accepted"
        return "Invalid"

    def _on_boot_notification(self, charge_point_id: str, payload: dict) -> dict:
        return {
            "status": "Accepted",
            "currentTime": utc_now_text(),
            "interval": self.settings.heartbeat_interval_s,
        }

    def _on_heartbeat(self, charge_point_id: str, payload: dict) -> dict:
        return {"currentTime": utc_now_text()}

    def _on_empty_answer(self, charge_point_id: str, payload: dict) -> dict:
        return {}

    def _on_data_transfer(self, charge_point_id: str, payload: dict) -> dict:
        return {"status": "UnknownVendorId"}

    def _on_authorize(self, charge_point_id: str, payload: dict) -> dict:
        return {"idTagInfo": {"status": self.id_tag_status(payload["idTag"])}}

    def _on_start_transaction(self, charge_point_id: str, payload: dict) -> dict:
        return {
            "idTagInfo": {"status": self.id_tag_status(payload["idTag"])},
            "transactionId": self.transaction_ids.issue(charge_point_id, payload),
        }

    def _on_stop_transaction(self, charge_point_id: str, payload: dict) -> dict:
        # Always accepted: refusing a stop would only make the charge point retry it.
        if "idTag" in payload:
            return {"idTagInfo": {"status": self.id_tag_status(payload["idTag"])}}
        return {}

    # ---- calls to charge points

    async def send_call(self, charge_point_id: str, action: str, payload: Mapping[str, Any]) -> dict:
        """Send a central-system CALL to a connected charge point and return its answer.

        Parameters
        ----------
        charge_point_id : str
            A connected charge point.
        action : {"ChangeConfiguration", "SetChargingProfile"}
            The call to send.
        payload : mapping
            The OCPP payload in camelCase, e.g. ``{"key": "MeterValueSampleInterval", "value": "60"}``.

        Returns
        -------
        dict
            The CALLRESULT payload (camelCase), e.g. ``{"status": "Accepted"}``.

        Raises
        ------
        LookupError
            When the charge point is not connected.
        ValueError
            For an action the hook does not send or a payload that does not fit it.
        ocpp.exceptions.OCPPError
            When the charge point answers with a CALLERROR.
        """
        payload_class = ADMIN_ACTIONS.get(action)
        if payload_class is None:
            raise ValueError(f"the central system sends {', '.join(ADMIN_ACTIONS)} only, not {action!r}")
        session = self.connections.get(charge_point_id)
        if session is None:
            raise LookupError(f"charge point {charge_point_id!r} is not connected")
        try:
            request = payload_class(**camel_to_snake_case(dict(payload)))
        except TypeError as exc:
            raise ValueError(f"payload does not fit {action}: {exc}") from None
        result = await session.call(request, suppress=False)
        return {key: value for key, value in _camel_dict(result).items() if value is not None}

    async def change_configuration(self, charge_point_id: str, key: str, value: str) -> str:
        """Send ChangeConfiguration (e.g. ``MeterValueSampleInterval``); return the status."""
        answer = await self.send_call(charge_point_id, "ChangeConfiguration", {"key": key, "value": value})
        return str(answer["status"])

    async def set_charging_profile(
        self, charge_point_id: str, connector_id: int, charging_profile: Mapping[str, Any]
    ) -> str:
        """Send SetChargingProfile (``csChargingProfiles`` in camelCase); return the status."""
        answer = await self.send_call(
            charge_point_id,
            "SetChargingProfile",
            {"connectorId": connector_id, "csChargingProfiles": dict(charging_profile)},
        )
        return str(answer["status"])

    async def _serve_admin(self, connection: ServerConnection) -> None:
        """The admin hook: JSON requests ``{"charge_point_id", "action", "payload"}``."""
        async for message in connection:
            try:
                request = json.loads(message)
                answer = await self.send_call(
                    str(request["charge_point_id"]), str(request["action"]), request.get("payload", {})
                )
                reply = {"ok": True, "result": answer}
            except Exception as exc:  # noqa: BLE001 - reported to the admin client
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
            await connection.send(json.dumps(reply))


def _camel_dict(result: Any) -> dict:
    from ocpp.charge_point import snake_to_camel_case

    return snake_to_camel_case(dataclasses.asdict(result)) if dataclasses.is_dataclass(result) else {}


async def send_admin_command(
    url: str, token: str, charge_point_id: str, action: str, payload: Mapping[str, Any]
) -> dict:
    """Ask a running central system (its ``/admin`` hook) to send a call to a charge point."""
    from websockets.asyncio.client import connect

    secret = base64.b64encode(f"admin:{token}".encode()).decode("ascii")
    async with connect(url, additional_headers={"Authorization": f"Basic {secret}"}) as ws:
        await ws.send(json.dumps({"charge_point_id": charge_point_id, "action": action, "payload": payload}))
        return json.loads(await ws.recv())


def run_server(settings: ServerSettings, *, on_ready: Callable[[int], None] | None = None) -> None:
    """Run the central system until SIGINT or SIGTERM, then close it cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        async with CentralSystem(settings) as central:
            if on_ready is not None:
                on_ready(central.port or settings.port)
            await stop.wait()

    asyncio.run(main())
