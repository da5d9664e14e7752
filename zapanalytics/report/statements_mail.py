"""E-mail each user their statement PDF over SMTP, or write the messages as ``.eml`` files.

Settings come from environment variables only (never from options, files or the store):

``ZAPANALYTICS_SMTP_HOST``      server name (required to send)
``ZAPANALYTICS_SMTP_PORT``      default 587 with STARTTLS, else 25
``ZAPANALYTICS_SMTP_USER``      login name (no login without it)
``ZAPANALYTICS_SMTP_PASSWORD``  password (never printed, logged or stored)
``ZAPANALYTICS_SMTP_FROM``      the sender address (required)
``ZAPANALYTICS_SMTP_STARTTLS``  ``1``/``true`` to upgrade the connection with STARTTLS

One connection sends every message, each with a bounded timeout; a user without an e-mail
address is skipped and named in the result.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any

from zapanalytics.report.statement_text import TEXT, check_language, money
from zapanalytics.report.statements_files import StatementFile, safe_stem

#: Seconds an SMTP connect or command may take before the send is abandoned.
SMTP_TIMEOUT_S = 30.0
#: At most this many messages go out in one run (a month of a very large co-op).
MAX_MESSAGES = 5_000


class MailError(ValueError):
    """The SMTP settings are missing or the server refused (the message names which)."""


@dataclasses.dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send; ``password`` is kept out of ``repr``."""

    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    starttls: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SmtpSettings:
        """Read the ``ZAPANALYTICS_SMTP_*`` variables (module docstring)."""
        env = os.environ if environ is None else environ
        host = env.get("ZAPANALYTICS_SMTP_HOST", "").strip()
        sender = env.get("ZAPANALYTICS_SMTP_FROM", "").strip()
        missing = [
            name
            for name, value in (
                ("ZAPANALYTICS_SMTP_HOST", host),
                ("ZAPANALYTICS_SMTP_FROM", sender),
            )
            if not value
        ]
        if missing:
            raise MailError(f"set {' and '.join(missing)} to send statements")
        starttls = env.get("ZAPANALYTICS_SMTP_STARTTLS", "").strip().lower() in ("1", "true", "yes")
        port_text = env.get("ZAPANALYTICS_SMTP_PORT", "").strip() or ("587" if starttls else "25")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise MailError(f"ZAPANALYTICS_SMTP_PORT must be a port number, not {port_text!r}")
        return cls(
            host=host,
            port=int(port_text),
            sender=sender,
            user=env.get("ZAPANALYTICS_SMTP_USER") or None,
            password=env.get("ZAPANALYTICS_SMTP_PASSWORD") or None,
            starttls=starttls,
        )


def read_recipients(path: str | Path) -> dict[str, str]:
    """E-mail addresses from a CSV with ``email`` and ``user_id`` or ``user_name`` columns:
    ``{user_id or user_name: email}``."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            fields = set(reader.fieldnames or [])
            if "email" not in fields or not fields & {"user_id", "user_name"}:
                raise MailError(
                    f"{path}: expected a CSV header with email and user_id or user_name"
                )
            out = {}
            for row in reader:
                email = (row.get("email") or "").strip()
                key = (row.get("user_id") or row.get("user_name") or "").strip()
                if email and key:
                    if "@" not in email or any(c in email for c in "\r\n,;<>"):
                        raise MailError(f"{path}: {email!r} is not one e-mail address")
                    out[key] = email
            return out
    except FileNotFoundError:
        raise MailError(f"no such recipients file: {path}") from None
    except UnicodeDecodeError:
        raise MailError(f"{path} is not UTF-8 text") from None


def apply_recipients(document: dict[str, Any], recipients: Mapping[str, str]) -> dict[str, Any]:
    """The document with each user's ``user_email`` from ``recipients`` (by id, then name)."""
    users = []
    for user in document["users"]:
        email = recipients.get(user["user_id"] or "") or recipients.get(user.get("user_name") or "")
        users.append({**user, "user_email": email or user.get("user_email")})
    return {**document, "users": users}


def compose(
    document: dict[str, Any], item: StatementFile, sender: str, *, lang: str | None = None
) -> EmailMessage:
    """The message to one user: a short text and their PDF attached."""
    lang = check_language(lang, document)
    t = TEXT[lang]
    installation = document.get("installation_name") or document.get("installation_id") or ""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((item.user_name, item.user_email or ""))
    message["Subject"] = t["email_subject"].format(
        month=document["month"], installation=installation
    )
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(
        t["email_body"].format(
            name=item.user_name,
            month=document["month"],
            installation=installation,
            total=money(item.total_nok, lang),
        )
    )
    message.add_attachment(
        item.path.read_bytes(), maintype="application", subtype="pdf", filename=item.path.name
    )
    return message


@dataclasses.dataclass
class Delivery:
    """What a send (or a dry run) did."""

    sent: list[str]
    skipped: list[str]
    written: list[Path]

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "skipped": self.skipped,
            "written": [str(p) for p in self.written],
        }


def deliver(
    document: dict[str, Any],
    files: list[StatementFile],
    *,
    settings: SmtpSettings | None = None,
    dry_run_dir: str | Path | None = None,
    sender: str | None = None,
    lang: str | None = None,
) -> Delivery:
    """Send each user with an address their PDF, or with ``dry_run_dir`` write ``.eml`` files.

    Parameters
    ----------
    document : dict
        The statement document the files were written from.
    files : list of StatementFile
        From :func:`zapanalytics.report.statements_pdf.write_pdfs`.
    settings : SmtpSettings, optional
        Needed to send (not for a dry run).
    dry_run_dir : path, optional
        Write ``<YYYY-MM> <name>.eml`` here instead of sending.
    sender : str, optional
        The From address of a dry run without settings.

    Raises
    ------
    MailError
        Missing settings, too many messages, or the server refused (never naming the password).
    """
    addressed = [item for item in files if item.user_email]
    skipped = [item.user_name for item in files if not item.user_email]
    if len(addressed) > MAX_MESSAGES:
        raise MailError(f"{len(addressed)} messages is more than the {MAX_MESSAGES} one run sends")
    from_address = (settings.sender if settings else None) or sender or "statements@localhost"
    messages = [(item, compose(document, item, from_address, lang=lang)) for item in addressed]
    if dry_run_dir is not None:
        folder = Path(dry_run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        taken: set[str] = set()
        written = []
        for item, message in messages:
            path = folder / f"{safe_stem(document['month'], item.user_name, taken)}.eml"
            path.write_bytes(message.as_bytes())
            written.append(path)
        return Delivery(sent=[], skipped=skipped, written=written)
    if settings is None:
        raise MailError("no SMTP settings to send with")
    sent = []
    stage = "connect"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_S) as server:
            if settings.starttls:
                server.starttls(context=ssl.create_default_context())
            if settings.user:
                stage = "login"
                server.login(settings.user, settings.password or "")
            stage = "send"
            for item, message in messages:
                server.send_message(message)
                sent.append(item.user_name)
    except (smtplib.SMTPException, OSError) as exc:
        if stage == "login" and isinstance(exc, smtplib.SMTPException):
            # Some servers answer a refused login by hanging up: the same for the owner.
            raise MailError(
                f"the SMTP server {settings.host} refused the login of {settings.user}"
            ) from None
        done = f" after {len(sent)} of {len(messages)} messages" if sent else ""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise MailError(
            f"sending through {settings.host}:{settings.port} failed{done}: {reason}"
        ) from None
    return Delivery(sent=sent, skipped=skipped, written=[])
