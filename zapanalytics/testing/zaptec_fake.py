"""A local fake of the Zaptec cloud API, served over real HTTP on 127.0.0.1.

It serves a Zaptec API dump (the layout :mod:`zapanalytics.ingest.zaptec.files` reads) and
behaves like the cloud where a client can get it wrong:

* ``POST /oauth/token`` password grant; wrong credentials give 400 ``invalid_grant``.
* Bearer tokens that expire (``token_lifetime_s``, or :meth:`ZaptecFake.expire_tokens`);
  an expired or unknown token gives 401.
* ``{Pages, Data, Message}`` paging, 0-based ``PageIndex``, ``PageSize`` default 50 and
  at most 100 (more is refused with 400), query keys matched case-insensitively.
* A per-user rate limit: above ``rate_limit`` requests in any one-second window the fake
  answers 429 with ``Retry-After: 1`` (a refused request does not use up the allowance).
* ``GET /api/chargers/{id}/state`` gives string values, no ``ValueAsString`` for
  -1 Pulse, and 404 ``{"errorCode":512,"message":"Charger not found."}`` for an unknown id.
* ``/api/chargehistory`` lists completed sessions only: a session appears once the cloud
  has closed it (``EndDateTime`` ≤ the fake's :attr:`ZaptecFake.now`), so offline sessions
  arrive late, long after they started. ``EnergyDetails`` only with ``DetailLevel=1``.
  ``From``/``To`` filter on ``StartDateTime`` (inclusive) by default; Zaptec does not
  document which field they filter on, so ``history_filter_field`` can switch it.
* ``GET /api/sessions/archived``: the same sessions, camelCase, paged by an opaque
  ``cursor`` while ``hasMore`` (``PageSize`` at most 200). ``From`` and ``To`` are required
  and filter on when charging ended (``archived_filter_field`` can switch it to
  ``recognizedDateTime``); exactly one of ``InstallationId`` and ``ChargerId``.
  ``serve_archived=False`` answers 404 there, like a cloud without the endpoint;
  ``serve_chargehistory=False`` answers 410 on the retired one.
* ``POST /api/chargehistory/installationreport``: totals per user, charger or card.

Every request is logged with its arrival time (:attr:`ZaptecFake.log`), so a test can
prove a client never sent more than 10 requests in any second. Faults (5xx storms,
malformed pages, 429s) are injected with :meth:`ZaptecFake.inject`; :meth:`ZaptecFake.serve_html`
answers a path with a captive portal's page and status 200. Sessions published late (a
charger that was offline) are set up with :meth:`FakeData.take_offline` and moving
:attr:`ZaptecFake.now` on.

Example
-------
>>> with ZaptecFake.from_dump("data/sample", username="u", password="p") as fake:  # doctest: +SKIP
...     client = ZaptecClient("u", "p", base_url=fake.base_url)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from zapanalytics.ingest.zaptec.records import parse_zaptec_time
from zapanalytics.testing.zaptec_account import DEFAULT_CONSTANTS, FakeData
from zapanalytics.testing.zaptec_listings import (
    BadRequest,
    archived_answer,
    history_answer,
    json_answer,
    paged_answer,
    report_answer,
)

__all__ = [
    "CAPTIVE_PORTAL_HTML",
    "DEFAULT_CONSTANTS",
    "Fault",
    "FakeData",
    "LoggedRequest",
    "ZaptecFake",
    "max_requests_in_window",
]

#: A captive portal's login page, as a proxy answers any URL with status 200.
CAPTIVE_PORTAL_HTML = (
    "<!DOCTYPE html><html><head><title>Wi-Fi login</title></head><body>"
    '<h1>Welcome to Guest Wi-Fi</h1><form action="/login" method="post">'
    '<input name="room"><button>Connect</button></form></body></html>'
)


@dataclasses.dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the fake saw it."""

    t_s: float
    """Arrival time [s] on the monotonic clock."""
    method: str
    path: str
    query: dict[str, str]
    """Query parameters with lower-cased keys (last value wins)."""
    status: int


@dataclasses.dataclass(slots=True)
class Fault:
    """A canned answer for matching requests, used ``times`` times (None: until removed)."""

    path: str
    status: int
    body: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    method: str | None = None
    query: dict[str, str] = dataclasses.field(default_factory=dict)
    times: int | None = 1

    def matches(self, method: str, path: str, query: Mapping[str, str]) -> bool:
        if self.method is not None and self.method != method:
            return False
        if path != self.path and not path.startswith(self.path.rstrip("/") + "/"):
            return False
        return all(query.get(k.lower()) == v for k, v in self.query.items())


def max_requests_in_window(times_s: Iterable[float], window_s: float = 1.0) -> int:
    """The most requests that fall in any half-open window ``[t, t + window_s)``."""
    stamps = sorted(times_s)
    best = 0
    first = 0
    for last, stamp in enumerate(stamps):
        while stamp - stamps[first] >= window_s:
            first += 1
        best = max(best, last - first + 1)
    return best


class ZaptecFake:
    """A running fake of the Zaptec API (see the module docstring).

    Parameters
    ----------
    data : FakeData
        The account's content.
    username, password : str
        The only credentials the token endpoint accepts.
    rate_limit : int or None, default 10
        Requests admitted in any one-second window before 429; None disables the limit.
    token_lifetime_s : float, default 3600
        ``expires_in`` of granted tokens [s].
    now : datetime, optional
        The cloud's clock for which sessions and observations are visible; None shows all.
    history_filter_field : {"StartDateTime", "EndDateTime"}
        The session field ``From``/``To`` of chargehistory filter on.
    archived_filter_field : {"endDateTime", "recognizedDateTime"}
        The session field ``From``/``To`` of sessions/archived filter on.
    serve_archived, serve_chargehistory : bool
        Whether the cloud has each session listing (404 / 410 when not).
    issue_token : callable, optional
        Makes access tokens (default: random hex).
    """

    def __init__(
        self,
        data: FakeData,
        *,
        username: str = "user@example.com",
        password: str = "password",
        rate_limit: int | None = 10,
        token_lifetime_s: float = 3600.0,
        now: dt.datetime | None = None,
        history_filter_field: str = "StartDateTime",
        archived_filter_field: str = "endDateTime",
        serve_archived: bool = True,
        serve_chargehistory: bool = True,
        issue_token: Callable[[], str] | None = None,
    ):
        if history_filter_field not in ("StartDateTime", "EndDateTime"):
            raise ValueError("history_filter_field must be StartDateTime or EndDateTime")
        if archived_filter_field not in ("endDateTime", "recognizedDateTime"):
            raise ValueError("archived_filter_field must be endDateTime or recognizedDateTime")
        self.archived_filter_field = archived_filter_field
        self.serve_archived = serve_archived
        self.serve_chargehistory = serve_chargehistory
        self.data = data
        self.username = username
        self.password = password
        self.rate_limit = rate_limit
        self.token_lifetime_s = token_lifetime_s
        self.now = now
        self.history_filter_field = history_filter_field
        self.issue_token = issue_token or (lambda: uuid.uuid4().hex + uuid.uuid4().hex)
        self.log: list[LoggedRequest] = []
        self.tokens_granted = 0
        self._tokens: dict[str, float] = {}
        self._admitted: list[float] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_dump(cls, root: str | Path, **kwargs: Any) -> ZaptecFake:
        """A fake serving the dump directory ``root``."""
        return cls(FakeData.from_dump(root), **kwargs)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ZaptecFake:
        """Serve on an ephemeral port of 127.0.0.1 in a daemon thread."""
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="zaptec-fake", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ZaptecFake:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not running; call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- controls for tests ----------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Make every granted token expire now (the next call with it gets 401)."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    def inject(self, path: str, status: int, **kwargs: Any) -> Fault:
        """Answer matching requests with ``status`` (see :class:`Fault` for the options)."""
        fault = Fault(path=path, status=status, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def serve_html(self, path: str, **kwargs: Any) -> Fault:
        """Answer ``path`` with :data:`CAPTIVE_PORTAL_HTML` and status 200 (until removed)."""
        kwargs.setdefault("times", None)
        kwargs.setdefault("headers", {"Content-Type": "text/html; charset=utf-8"})
        return self.inject(path, 200, body=CAPTIVE_PORTAL_HTML, **kwargs)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests(self, path_prefix: str = "", method: str | None = None) -> list[LoggedRequest]:
        """Logged requests whose path starts with ``path_prefix``."""
        with self._lock:
            return [
                r
                for r in self.log
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    def max_requests_per_second(self) -> int:
        """The most requests the fake received in any one-second window."""
        with self._lock:
            return max_requests_in_window(r.t_s for r in self.log)

    # -- request handling (called from server threads) -------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts of the request log (served at ``GET /_fake/stats``, outside the API)."""
        with self._lock:
            statuses: dict[str, int] = defaultdict(int)
            for r in self.log:
                statuses[str(r.status)] += 1
            return {
                "requests": len(self.log),
                "statuses": dict(statuses),
                "max_requests_per_second": max_requests_in_window(r.t_s for r in self.log),
                "tokens_granted": self.tokens_granted,
            }

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], str]:
        if path == "/_fake/stats":
            return json_answer(200, self.stats())
        arrived = time.monotonic()
        status, extra, text = self._dispatch(method, path, query, headers, body, arrived)
        with self._lock:
            self.log.append(LoggedRequest(arrived, method, path, query, status))
        return status, extra, text

    def _rate_limited(self, arrived: float) -> bool:
        if self.rate_limit is None:
            return False
        with self._lock:
            cutoff = arrived - 1.0
            self._admitted = [t for t in self._admitted if t > cutoff]
            if len(self._admitted) >= self.rate_limit:
                return True
            self._admitted.append(arrived)
            return False

    def _take_fault(self, method: str, path: str, query: Mapping[str, str]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, query):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _authorised(self, headers: Mapping[str, str], arrived: float) -> bool:
        value = headers.get("authorization", "")
        if not value.lower().startswith("bearer "):
            return False
        with self._lock:
            expires = self._tokens.get(value[7:].strip())
        return expires is not None and arrived < expires

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
        arrived: float,
    ) -> tuple[int, dict[str, str], str]:
        if self._rate_limited(arrived):
            return 429, {"Retry-After": "1"}, ""
        fault = self._take_fault(method, path, query)
        if fault is not None:
            return fault.status, dict(fault.headers), fault.body or ""
        if method == "POST" and path == "/oauth/token":
            return self._token(body)
        if method == "GET" and path == "/api/constants":
            return json_answer(200, self.data.constants)
        if not path.startswith("/api/"):
            return json_answer(404, {"errorCode": 512, "message": "Not found."})
        if not self._authorised(headers, arrived):
            return 401, {"WWW-Authenticate": "Bearer"}, ""
        parts = [p for p in path.split("/") if p][1:]
        try:
            return self._route(method, parts, query, body)
        except BadRequest as exc:
            return json_answer(400, {"errorCode": 500, "message": str(exc)})

    def _token(self, body: bytes) -> tuple[int, dict[str, str], str]:
        form = {k.lower(): v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "password":
            return json_answer(400, {"error": "unsupported_grant_type"})
        if form.get("username") != self.username or form.get("password") != self.password:
            return json_answer(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "The user name or password is incorrect.",
                },
            )
        token = self.issue_token()
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime_s
            self.tokens_granted += 1
        return json_answer(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(self.token_lifetime_s),
                "scope": "read write offline_access",
            },
        )

    def _route(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], str]:
        data = self.data
        lowered = [p.lower() for p in parts]
        if method == "GET" and lowered == ["installation"]:
            summaries = [
                {k: i.get(k) for k in ("Id", "Name", "Active", "InstallationType", "NetworkType")}
                for i in data.installations.values()
            ]
            return paged_answer(summaries, query)
        if method == "GET" and len(parts) >= 2 and lowered[0] == "installation":
            installation = data.installations.get(parts[1])
            if installation is None:
                return json_answer(404, {"errorCode": 540, "message": "Installation not found."})
            if len(parts) == 2:
                return json_answer(200, installation)
            if lowered[2:] == ["hierarchy"]:
                return json_answer(200, self._hierarchy(installation))
        if method == "GET" and lowered == ["chargers"]:
            wanted = query.get("installationid")
            items = [
                c for c in data.chargers if wanted is None or c.get("InstallationId") == wanted
            ]
            return paged_answer(items, query)
        if method == "GET" and len(parts) >= 2 and lowered[0] == "chargers":
            charger = next((c for c in data.chargers if str(c.get("Id")) == parts[1]), None)
            if charger is None:
                return json_answer(404, {"errorCode": 512, "message": "Charger not found."})
            if len(parts) == 2:
                return json_answer(200, {**charger, "HasSessions": True})
            if lowered[2:] == ["state"]:
                return json_answer(200, self._state(parts[1]))
        if method == "GET" and lowered == ["chargehistory"]:
            if not self.serve_chargehistory:
                return json_answer(410, {"errorCode": 500, "message": "This endpoint is retired."})
            return self._history(query)
        if method == "GET" and lowered == ["sessions", "archived"]:
            if not self.serve_archived:
                return json_answer(404, {"errorCode": 512, "message": "Not found."})
            return self._archived(query)
        if method == "POST" and lowered == ["chargehistory", "installationreport"]:
            return self._report(body)
        return json_answer(404, {"errorCode": 512, "message": "Not found."})

    def _hierarchy(self, installation: Mapping[str, Any]) -> dict[str, Any]:
        circuits: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for charger in self.data.chargers:
            if charger.get("InstallationId") in (installation["Id"], None) and charger.get(
                "CircuitId"
            ):
                circuits[str(charger["CircuitId"])].append(
                    {
                        "Id": charger["Id"],
                        "Name": charger.get("Name"),
                        "DeviceId": charger.get("DeviceId"),
                        "DeviceType": charger.get("DeviceType", 1),
                        "Active": charger.get("Active", True),
                    }
                )
        return {
            "Id": installation["Id"],
            "Name": installation.get("Name"),
            "NetworkType": installation.get("NetworkType"),
            "Circuits": [
                {
                    "Id": circuit_id,
                    "Name": f"Circuit {n}",
                    "MaxCurrent": installation.get("MaxCurrent"),
                    "IsActive": True,
                    "InstallationId": installation["Id"],
                    "Chargers": chargers,
                }
                for n, (circuit_id, chargers) in enumerate(sorted(circuits.items()), start=1)
            ],
        }

    def _visible(self, stamp: dt.datetime | None) -> bool:
        return self.now is None or (stamp is not None and stamp <= self.now)

    def _state(self, charger_id: str) -> list[dict[str, Any]]:
        latest: dict[int, dict[str, Any]] = {}
        for observation in self.data.observations.get(charger_id, []):
            stamp = parse_zaptec_time(observation["Timestamp"], "Timestamp")
            if self._visible(stamp):
                latest[observation["StateId"]] = observation
        out = []
        for state_id in sorted(latest):
            item = {"ChargerId": charger_id, **latest[state_id]}
            if state_id == -1:
                item.pop("ValueAsString", None)
            elif item.get("ValueAsString") is not None:
                item["ValueAsString"] = str(item["ValueAsString"])
            out.append(item)
        return out

    def _history(self, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
        return history_answer(
            self.data, query, visible=self._visible, filter_field=self.history_filter_field
        )

    def _archived(self, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
        return archived_answer(
            self.data, query, visible=self._visible, filter_field=self.archived_filter_field
        )

    def _report(self, body: bytes) -> tuple[int, dict[str, str], str]:
        return report_answer(self.data, body, visible=self._visible)


class _Handler(BaseHTTPRequestHandler):
    fake: ZaptecFake
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm and delayed ACKs the
    # second one would wait ~40 ms on every response.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Silence the default stderr access log; the fake keeps its own."""

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k.lower(): v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, extra, text = self.fake.handle(method, url.path, query, headers, body)
        except Exception as exc:  # noqa: BLE001 - a fake must answer, like a real server would
            status, extra, text = 500, {}, json.dumps({"errorCode": 500, "message": str(exc)})
        payload = text.encode("utf-8")
        self.send_response(status, HTTPStatus(status).phrase if status in _PHRASES else None)
        if payload and not any(name.lower() == "content-type" for name in extra):
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self._serve("POST")


_PHRASES = {s.value for s in HTTPStatus}


def main(argv: list[str] | None = None) -> int:
    """Serve a dump until interrupted: ``python -m zapanalytics.testing.zaptec_fake DIR``.

    Prints the base URL on the first line of stdout, e.g. for
    ``ZAPTEC_BASE_URL=<url> zapanalytics ingest zaptec --db out/zap.duckdb``.
    """
    import argparse

    parser = argparse.ArgumentParser(description="Serve a Zaptec API dump on 127.0.0.1.")
    parser.add_argument("dump", type=Path, help="dump directory (holding zaptec/)")
    parser.add_argument("--username", default="user@example.com")
    parser.add_argument("--password", default="password")
    parser.add_argument("--rate-limit", type=int, default=10, help="requests/s; 0 disables")
    args = parser.parse_args(argv)
    fake = ZaptecFake.from_dump(
        args.dump,
        username=args.username,
        password=args.password,
        rate_limit=args.rate_limit or None,
    )
    with fake:
        print(fake.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
