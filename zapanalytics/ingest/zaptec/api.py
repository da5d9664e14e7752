"""A client for the Zaptec cloud API (``https://api.zaptec.com``) built on httpx.

What it does for every call, following Zaptec's documented rules and what the best
open clients learned the hard way:

* **Authentication**: OAuth password grant at ``POST /oauth/token``. The token is renewed
  shortly before ``expires_in`` runs out, and a 401 on any call triggers exactly one
  re-login and one retry of that call.
* **Rate limit**: never more than 10 requests in any one-second window as the server
  counts them (Zaptec allows 10 requests/s per user and answers 429 above it). A
  sliding-window limiter shared by all threads using the client enforces it.
* **Retries**: 429, 502, 503 and 504 are retried for any method, 500 for GET only, and
  transport errors for GET (and for POST only when the request never left). The wait honours
  ``Retry-After`` and otherwise backs off exponentially with jitter. When the budget is
  spent, :class:`ZaptecApiError` says which call failed, how, and after how many attempts.
* **Paging**: ``{Pages, Data}`` envelopes, 0-based ``PageIndex``, ``PageSize`` at most 100;
  ``/api/sessions/archived`` pages by cursor (:mod:`zapanalytics.ingest.zaptec.pages`).
* **Secrets**: the password and the access token never appear in logs, exception messages or
  reprs. httpx logs only the method and URL, and no URL carries a secret.

Zaptec's JSON is PascalCase (camelCase for ``/api/sessions/archived``) and its datetimes are
naive UTC; this module returns the JSON as received. :mod:`zapanalytics.ingest.zaptec.records`
maps it to store rows. Rate limit and retry rules live in :mod:`~zapanalytics.ingest.zaptec.limits`,
errors in :mod:`~zapanalytics.ingest.zaptec.errors`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from zapanalytics.ingest.zaptec.errors import (
    ZaptecApiError,
    ZaptecAuthError,
    ZaptecError,
    ZaptecNotFound,
    error_details,
    login_refusal,
)
from zapanalytics.ingest.zaptec.limits import (
    ZAPTEC_REQUESTS_PER_SECOND,
    RetryPolicy,
    SlidingWindowLimiter,
    retry_after_seconds,
)
from zapanalytics.ingest.zaptec.pages import (
    MAX_ARCHIVED_PAGE_SIZE,
    MAX_PAGE_SIZE,
    RawPage,
    format_query_time,
    parse_cursor_page,
    parse_envelope,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_ARCHIVED_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "ZAPTEC_REQUESTS_PER_SECOND",
    "Credentials",
    "RawPage",
    "RetryPolicy",
    "SlidingWindowLimiter",
    "ZaptecApiError",
    "ZaptecAuthError",
    "ZaptecClient",
    "ZaptecError",
    "ZaptecNotFound",
    "format_query_time",
    "parse_envelope",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.zaptec.com"
#: Most pages :meth:`ZaptecClient.iter_pages` reads of one listing (installations, chargers).
MAX_LISTING_PAGES = 1_000
#: Renew the token this long before Zaptec says it expires [s].
_TOKEN_RENEW_MARGIN_S = 60.0
#: Statuses retried for any method, and for GET only.
_RETRY_ANY_METHOD = frozenset({429, 502, 503, 504})
_RETRY_GET_ONLY = frozenset({500})


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """A Zaptec login. The repr never shows the password."""

    username: str
    password: str = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        return "Credentials(username=<hidden>, password=<hidden>)"

    __str__ = __repr__


class ZaptecClient:
    """A synchronous, thread-safe client for the Zaptec cloud API.

    Parameters
    ----------
    username, password : str
        The Zaptec portal login (kept only in memory, never logged or shown).
    base_url : str, default ``https://api.zaptec.com``
        Point it at a local fake in tests.
    requests_per_second : int, default 10
        Client-side limit [requests/s], enforced over any one-second window.
    retry : RetryPolicy, optional
        Retry budget and backoff.
    timeout_s : float, default 30
        Read/write/pool timeout per request [s]; connecting times out after 10 s.
    transport : httpx.BaseTransport, optional
        For tests (e.g. ``httpx.MockTransport``).

    Examples
    --------
    >>> with ZaptecClient("me@example.com", "…") as api:  # doctest: +SKIP
    ...     for item in api.installations():
    ...         print(item["Id"], item["Name"])
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        requests_per_second: int = ZAPTEC_REQUESTS_PER_SECOND,
        retry: RetryPolicy | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._credentials = Credentials(username, password)
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.limiter = SlidingWindowLimiter(requests_per_second, clock=clock, sleep=sleep)
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random()
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "zapanalytics"},
            follow_redirects=False,
        )
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_generation = 0
        self._auth_lock = threading.Lock()
        self._count_lock = threading.Lock()
        #: Requests sent (every attempt, including token grants).
        self.requests_sent = 0
        #: Token grants performed.
        self.logins = 0

    def __repr__(self) -> str:
        return f"ZaptecClient(base_url={self.base_url!r})"

    def __enter__(self) -> ZaptecClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- transport -------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one attempt through the limiter. Raises httpx.TransportError as is."""
        slot = self.limiter.acquire()
        with self._count_lock:
            self.requests_sent += 1
        try:
            return self._http.request(
                method, path, params=params, json=json_body, data=form, headers=headers
            )
        finally:
            self.limiter.release(slot)

    def _with_retries(
        self, method: str, path: str, attempt: Callable[[], httpx.Response]
    ) -> tuple[httpx.Response, int]:
        """Run ``attempt`` until it returns a non-retryable response or the budget is spent."""
        retryable = _RETRY_ANY_METHOD | (_RETRY_GET_ONLY if method == "GET" else frozenset())
        attempts = 0
        while True:
            attempts += 1
            retry_after = None
            try:
                response = attempt()
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempts > self.retry.max_retries or not (method == "GET" or never_sent):
                    raise ZaptecApiError(
                        f"Zaptec API {method} {path}: {type(exc).__name__} after "
                        f"{attempts} attempt(s); is {self.base_url} reachable?",
                        method=method,
                        path=path,
                        status=None,
                        attempts=attempts,
                    ) from None
                reason = type(exc).__name__
            else:
                if response.status_code not in retryable or attempts > self.retry.max_retries:
                    return response, attempts
                retry_after = retry_after_seconds(response)
                reason = f"HTTP {response.status_code}"
            wait = self.retry.delay(attempts - 1, retry_after, self._rng)
            log.info(
                "Zaptec API %s %s: %s, retry %d/%d in %.1f s",
                method,
                path,
                reason,
                attempts,
                self.retry.max_retries,
                wait,
            )
            self._sleep(wait)

    def _scrub(self, text: str) -> str:
        """Mask the password and token should a server ever echo them back."""
        for secret in (self._credentials.password, self._token):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    # -- authentication --------------------------------------------------------------------

    def login(self) -> None:
        """Get a fresh access token with the password grant.

        Raises
        ------
        ZaptecAuthError
            When Zaptec refuses the credentials (``invalid_grant``) or answers oddly.
        """
        with self._auth_lock:
            self._login_locked()

    def _login_locked(self) -> None:
        path = "/oauth/token"
        form = {
            "grant_type": "password",
            "username": self._credentials.username,
            "password": self._credentials.password,
        }
        response, attempts = self._with_retries(
            "POST",
            path,
            lambda: self._send(
                "POST",
                path,
                form=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
        )
        self.logins += 1
        if response.status_code in (400, 401, 403):
            raise ZaptecAuthError(self._scrub(login_refusal(response))) from None
        if response.status_code != 200:
            raise ZaptecApiError(
                f"Zaptec login failed: HTTP {response.status_code} after {attempts} attempt(s)",
                method="POST",
                path=path,
                status=response.status_code,
                attempts=attempts,
            )
        try:
            body = response.json()
            token = body["access_token"]
            expires_in = float(body.get("expires_in") or 3600)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
            raise ZaptecAuthError("Zaptec login failed: the token response is unreadable") from None
        if not isinstance(token, str) or not token:
            raise ZaptecAuthError("Zaptec login failed: the token response holds no token")
        margin = min(_TOKEN_RENEW_MARGIN_S, expires_in / 10)
        self._token = token
        self._token_expires_at = self._clock() + expires_in - margin
        self._token_generation += 1

    def _current_token(self) -> tuple[str, int]:
        with self._auth_lock:
            if self._token is None or self._clock() >= self._token_expires_at:
                self._login_locked()
            assert self._token is not None
            return self._token, self._token_generation

    def _relogin_after_401(self, failed_generation: int) -> None:
        with self._auth_lock:
            # Another thread may already have renewed the token that just failed.
            if self._token_generation == failed_generation:
                log.info("Zaptec API answered 401; logging in again")
                self._login_locked()

    # -- requests --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        auth: bool = True,
        allow: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send a call with auth, rate limit and retries; return a 2xx (or allowed) response.

        Raises
        ------
        ZaptecNotFound
            On 404.
        ZaptecAuthError
            When a call still gets 401 after one re-login.
        ZaptecApiError
            On any other non-2xx status, or when retries are exhausted.
        """
        relogged = False
        while True:
            headers: dict[str, str] = {}
            generation = -1
            if auth:
                token, generation = self._current_token()
                headers["Authorization"] = f"Bearer {token}"

            def attempt(headers: dict[str, str] = headers) -> httpx.Response:
                return self._send(method, path, params=params, json_body=json_body, headers=headers)

            response, attempts = self._with_retries(method, path, attempt)
            if response.status_code == 401 and auth and not relogged:
                self._relogin_after_401(generation)
                relogged = True
                continue
            break
        status = response.status_code
        if 200 <= status < 300 or status in allow:
            return response
        code, message = error_details(response)
        message = self._scrub(message)
        detail = f" (errorCode {code})" if code is not None else ""
        text = f"Zaptec API {method} {path}: HTTP {status}{detail}"
        if message:
            text += f": {message}"
        if attempts > 1:
            text += f" after {attempts} attempts"
        if status == 401:
            raise ZaptecAuthError(text + "; a fresh login did not help")
        error_type = ZaptecNotFound if status == 404 else ZaptecApiError
        raise error_type(
            text, method=method, path=path, status=status, error_code=code, attempts=attempts
        )

    def get_json(
        self, path: str, params: Mapping[str, Any] | None = None, *, auth: bool = True
    ) -> Any:
        """GET ``path`` and decode the JSON body (None for 204 No Content)."""
        response = self.request("GET", path, params=params, auth=auth, allow=frozenset({204}))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ZaptecApiError(
                f"Zaptec API GET {path}: the response is not JSON",
                method="GET",
                path=path,
                status=response.status_code,
            ) from None

    def get_page(
        self, path: str, params: Mapping[str, Any], page_index: int, page_size: int
    ) -> RawPage:
        """GET one page of a paged endpoint (``PageIndex`` is 0-based, ``PageSize`` ≤ 100)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        query = {k: v for k, v in params.items() if v is not None}
        query.update(PageIndex=page_index, PageSize=page_size)
        response = self.request("GET", path, params=query)
        text = response.content.decode("utf-8", "replace")
        pages, items = parse_envelope(text)
        return RawPage(
            page_index,
            text,
            items,
            pages=pages,
            content_type=response.headers.get("Content-Type", ""),
        )

    def iter_pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[RawPage]:
        """Yield every page of a paged listing, in order, until ``Pages`` is reached.

        At most :data:`MAX_LISTING_PAGES` pages; an unreadable page ends the listing with
        :class:`ZaptecApiError` after it is yielded.
        """
        for index in range(MAX_LISTING_PAGES):
            page = self.get_page(path, params or {}, index, page_size)
            yield page
            if page.pages is None:
                raise ZaptecApiError(
                    f"Zaptec API GET {path}: page {index} is not a {{Pages, Data}} envelope",
                    method="GET",
                    path=path,
                    status=200,
                )
            if index + 1 >= page.pages or not page.items:
                return
        raise ZaptecApiError(
            f"Zaptec API GET {path}: more than {MAX_LISTING_PAGES} pages; refusing to read on",
            method="GET",
            path=path,
            status=200,
        )

    def _all_items(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        items: list[Any] = []
        for page in self.iter_pages(path, params):
            items.extend(page.items or [])
        return items

    # -- endpoints -------------------------------------------------------------------------

    def constants(self) -> dict[str, Any]:
        """``GET /api/constants`` (no authentication): observation, setting and command ids."""
        body = self.get_json("/api/constants", auth=False)
        return body if isinstance(body, dict) else {}

    def installations(self, **filters: Any) -> list[dict[str, Any]]:
        """``GET /api/installation``: every installation the user can see (all pages)."""
        return self._all_items("/api/installation", filters)

    def installation(self, installation_id: str, *, detail_level: int | None = None) -> Any:
        """``GET /api/installation/{id}`` (``detail_level=1`` adds the users)."""
        params = {"DetailLevel": detail_level} if detail_level is not None else None
        return self.get_json(f"/api/installation/{installation_id}", params)

    def installation_hierarchy(self, installation_id: str) -> Any:
        """``GET /api/installation/{id}/hierarchy``: circuits and their chargers.

        Returns None when Zaptec answers 204 (since 2025-09 it does so for users without
        access to the hierarchy, instead of 403).
        """
        return self.get_json(f"/api/installation/{installation_id}/hierarchy")

    def chargers(self, installation_id: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """``GET /api/chargers``: chargers the user can see, optionally of one installation."""
        params = dict(filters)
        if installation_id is not None:
            params["InstallationId"] = installation_id
        return self._all_items("/api/chargers", params)

    def charger(self, charger_id: str) -> Any:
        """``GET /api/chargers/{id}``: one charger with its signed meter value."""
        return self.get_json(f"/api/chargers/{charger_id}")

    def charger_state(self, charger_id: str) -> list[dict[str, Any]]:
        """``GET /api/chargers/{id}/state``: the latest value of each observation.

        Values are strings and ``ValueAsString`` may be missing. An unknown charger raises
        :class:`ZaptecNotFound` (Zaptec's 404 ``errorCode`` 512).
        """
        body = self.get_json(f"/api/chargers/{charger_id}/state")
        return body if isinstance(body, list) else []

    def charge_history_page(
        self,
        page_index: int,
        *,
        installation_id: str | None = None,
        charger_id: str | None = None,
        from_utc: dt.datetime | None = None,
        to_utc: dt.datetime | None = None,
        page_size: int = MAX_PAGE_SIZE,
        detail_level: int = 1,
    ) -> RawPage:
        """One page of ``GET /api/chargehistory``, oldest first, with ``EnergyDetails``.

        Only completed sessions are listed. The page is returned as received so that a
        malformed one can be quarantined with its raw JSON.
        """
        params: dict[str, Any] = {
            "DetailLevel": detail_level,
            "SortProperty": "StartDateTime",
            "SortDescending": "false",
        }
        if installation_id is not None:
            params["InstallationId"] = installation_id
        if charger_id is not None:
            params["ChargerId"] = charger_id
        if from_utc is not None:
            params["From"] = format_query_time(from_utc)
        if to_utc is not None:
            params["To"] = format_query_time(to_utc)
        return self.get_page("/api/chargehistory", params, page_index, page_size)

    def archived_sessions_page(
        self,
        index: int,
        *,
        from_utc: dt.datetime,
        to_utc: dt.datetime,
        installation_id: str | None = None,
        charger_id: str | None = None,
        cursor: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> RawPage:
        """One page of ``GET /api/sessions/archived`` (the newer session listing).

        ``From`` and ``To`` are required and exactly one of installation and charger is
        given; ``cursor`` is the previous page's ``cursor``. ``index`` only numbers the page
        for the caller. The page is returned as received, as for :meth:`charge_history_page`.
        """
        if (installation_id is None) == (charger_id is None):
            raise ValueError("give exactly one of installation_id and charger_id")
        if not 1 <= page_size <= MAX_ARCHIVED_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_ARCHIVED_PAGE_SIZE}")
        params: dict[str, Any] = {
            "From": format_query_time(from_utc),
            "To": format_query_time(to_utc),
            "PageSize": page_size,
        }
        if installation_id is not None:
            params["InstallationId"] = installation_id
        if charger_id is not None:
            params["ChargerId"] = charger_id
        if cursor is not None:
            params["Cursor"] = cursor
        response = self.request("GET", "/api/sessions/archived", params=params)
        text = response.content.decode("utf-8", "replace")
        items, next_cursor, has_more = parse_cursor_page(text)
        return RawPage(
            index,
            text,
            items,
            next_cursor=next_cursor,
            has_more=has_more,
            content_type=response.headers.get("Content-Type", ""),
        )

    def installation_report(
        self,
        installation_id: str,
        from_utc: dt.datetime,
        to_utc: dt.datetime,
        *,
        group_by: int = 1,
        user_ids: list[str] | None = None,
        charger_ids: list[str] | None = None,
    ) -> Any:
        """``POST /api/chargehistory/installationreport`` (groupBy 0 user, 1 charger, 2 card)."""
        body = {
            "fromDate": format_query_time(from_utc),
            "endDate": format_query_time(to_utc),
            "installationId": installation_id,
            "userIds": user_ids or [],
            "chargerIds": charger_ids or [],
            "groupBy": group_by,
        }
        response = self.request("POST", "/api/chargehistory/installationreport", json_body=body)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ZaptecApiError(
                "Zaptec API POST /api/chargehistory/installationreport: the response is not JSON",
                method="POST",
                path="/api/chargehistory/installationreport",
                status=response.status_code,
            ) from None
