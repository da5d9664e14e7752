"""A small store with two named users (Æ Ø Å), a guest and a charge card, and a local SMTP server."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "billing"))

from billing_helpers import (  # noqa: E402
    INSTALLATION,
    build_store,
    details_frame,
    flat_prices,
    sessions_frame,
    utc,
)

from zapanalytics.billing.monthly import set_installation_settings  # noqa: E402

MARCH = (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))


def _sessions():
    rows = [
        # Kari: across midnight into 1 March (only the part in March is billed), and the DST night.
        (
            "k1",
            "kari",
            "Kari Ødegård",
            utc(2026, 2, 28, 22),
            utc(2026, 3, 1, 1),
            9.0,
            "Brikke Kari",
        ),
        (
            "k2",
            "kari",
            "Kari Ødegård",
            utc(2026, 3, 29, 0),
            utc(2026, 3, 29, 3),
            12.0,
            "Brikke Kari",
        ),
        ("a1", "aase", "Åse Ærø", utc(2026, 3, 10, 16), utc(2026, 3, 10, 18), 7.5, "Brikke Åse"),
        # A guest: no user and no card.
        ("g1", None, None, utc(2026, 3, 12, 9), utc(2026, 3, 12, 10), 3.0, None),
    ]
    return sessions_frame(
        [
            {
                "session_id": sid,
                "user_id": user,
                "user_name": name,
                "start_utc": start,
                "end_utc": end,
                "energy_kwh": energy,
            }
            for sid, user, name, start, end, energy, _ in rows
        ]
    ), {sid: token for sid, *_, token in rows}


@pytest.fixture
def march_store(tmp_path) -> Path:
    """2026-03, NO1, Elvia, spot 1.00 NOK/kWh every hour; chargers and tokens set in SQL."""
    sessions, tokens = _sessions()
    con = build_store(tmp_path / "z.duckdb", sessions, details_frame([]), flat_prices(*MARCH, 1.0))
    set_installation_settings(con, INSTALLATION, grid_company="elvia")
    con.execute(
        "INSERT INTO chargers (charger_id, device_id, installation_id, name, source, ingested_at)"
        " VALUES ('c1', 'ZPR000111', ?, 'Plass 7', 'test', now())",
        [INSTALLATION],
    )
    for sid, token in tokens.items():
        con.execute(
            "UPDATE sessions SET charger_id = 'c1', token_name = ? WHERE session_id = ?",
            [token, sid],
        )
    con.close()
    return tmp_path / "z.duckdb"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """Collects what the local SMTP server receives."""

    def __init__(self) -> None:
        self.messages: list = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    """An aiosmtpd server on 127.0.0.1 accepting login ``board`` / ``s3cret-Pa55``."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    inbox = Inbox()

    def authenticator(server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
        password = (
            auth_data.password.decode()
            if isinstance(auth_data.password, bytes)
            else auth_data.password
        )
        inbox.logins.append((login, mechanism))
        return AuthResult(success=(login, password) == ("board", "s3cret-Pa55"))

    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
