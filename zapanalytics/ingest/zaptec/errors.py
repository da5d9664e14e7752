"""Errors of the Zaptec client, and the one-line reasons it gives for a refused call.

Messages quote at most a short part of what the server said and never a secret: the client
masks its password and token in anything a server echoes (:meth:`ZaptecClient._scrub`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

#: Longest server message quoted in an error.
MAX_MESSAGE_CHARS = 300


class ZaptecError(RuntimeError):
    """Base class of every error raised by this client."""


class ZaptecAuthError(ZaptecError):
    """Zaptec refused the credentials, or refused a fresh token."""


class ZaptecApiError(ZaptecError):
    """A call failed for good: a non-retryable status, or the retry budget was spent.

    Attributes
    ----------
    method, path : str
        The call, without host or query.
    status : int or None
        The last HTTP status, or None when the last attempt failed in transport.
    error_code : int or None
        Zaptec's ``errorCode`` from the body, when given (e.g. 512 for an unknown object).
    attempts : int
        How many times the call was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None,
        error_code: int | None = None,
        attempts: int = 1,
    ):
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.error_code = error_code
        self.attempts = attempts


class ZaptecNotFound(ZaptecApiError):
    """404: the installation, charger or session does not exist or is not visible."""


def error_details(response: httpx.Response) -> tuple[int | None, str]:
    """Zaptec's ``errorCode`` and message from an error body (either casing)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip().replace("\n", " ")
        return None, text[:MAX_MESSAGE_CHARS]
    if not isinstance(body, Mapping):
        return None, str(body)[:MAX_MESSAGE_CHARS]
    lowered = {str(k).lower(): v for k, v in body.items()}
    code = lowered.get("errorcode", lowered.get("code"))
    message = lowered.get("message") or lowered.get("title") or lowered.get("details") or ""
    return (code if isinstance(code, int) else None), str(message)[:MAX_MESSAGE_CHARS]


def login_refusal(response: httpx.Response) -> str:
    """A one-line reason for a refused login, from the OAuth error body (never the form)."""
    error, description = "", ""
    try:
        body = response.json()
        if isinstance(body, Mapping):
            error = str(body.get("error") or "")
            description = str(body.get("error_description") or "")
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    reason = ": ".join(part for part in (error, description[:MAX_MESSAGE_CHARS]) if part)
    text = "Zaptec login failed: wrong user name or password"
    if reason:
        text += f" ({reason})"
    return text
