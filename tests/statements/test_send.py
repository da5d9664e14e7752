"""``bill --send``: one message per user with their PDF, to a local SMTP server; ``--dry-run``
writes the messages as .eml files; the password never reaches the output."""

from __future__ import annotations

import email
import email.policy

import pypdf
import pytest
from typer.testing import CliRunner

from zapanalytics.cli import app
from zapanalytics.report.statements_mail import MailError, SmtpSettings

PASSWORD = "s3cret-Pa55"


def _recipients(tmp_path):
    path = tmp_path / "recipients.csv"
    path.write_text(
        "user_id,email\nkari,kari@example.org\naase,aase@example.org\n", encoding="utf-8"
    )
    return path


def _send(db, tmp_path, *extra):
    return CliRunner().invoke(
        app,
        [
            "bill", "--db", str(db), "--month", "2026-03", "--method", "spot",
            "--out", str(tmp_path / "bills"), "--recipients", str(_recipients(tmp_path)),
            "--send", *extra,
        ],
    )  # fmt: skip


def _smtp_env(monkeypatch, port, password=PASSWORD):
    monkeypatch.setenv("ZAPANALYTICS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ZAPANALYTICS_SMTP_PORT", str(port))
    monkeypatch.setenv("ZAPANALYTICS_SMTP_USER", "board")
    monkeypatch.setenv("ZAPANALYTICS_SMTP_PASSWORD", password)
    monkeypatch.setenv("ZAPANALYTICS_SMTP_FROM", "styret@borettslaget.example")


def test_send_delivers_one_message_per_user_with_the_pdf(
    march_store, tmp_path, smtp_server, monkeypatch
):
    inbox, port = smtp_server
    _smtp_env(monkeypatch, port)
    result = _send(march_store, tmp_path)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert "sent 2 statements by e-mail" in result.output
    assert "not sent: no e-mail address for (no user)" in result.output
    assert [login for login, _mechanism in inbox.logins] == ["board"]
    assert sorted(tuple(m.rcpt_tos) for m in inbox.messages) == [
        ("aase@example.org",),
        ("kari@example.org",),
    ]
    for envelope in inbox.messages:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        attachments = list(message.iter_attachments())
        assert len(attachments) == 1 and attachments[0].get_content_type() == "application/pdf"
        name = "Kari Ødegård" if "kari" in envelope.rcpt_tos[0] else "Åse Ærø"
        assert attachments[0].get_filename() == f"2026-03 {name}.pdf"
        assert message["Subject"] == "Ladeoppgjør 2026-03 – Borettslaget Test"
        total = "22,50" if name.startswith("Kari") else "9,38"
        assert f"Sum: {total} NOK" in message.get_body(("plain",)).get_content()
        pdf_path = tmp_path / "attached.pdf"
        pdf_path.write_bytes(attachments[0].get_content())
        text = pypdf.PdfReader(pdf_path).pages[0].extract_text()
        assert name in text and f"Sum: {total} NOK" in text


def test_wrong_password_is_one_line_without_the_password(
    march_store, tmp_path, smtp_server, monkeypatch
):
    inbox, port = smtp_server
    # aiosmtpd answers a failed AUTH by going silent, not with 535: the refusal shows as the
    # client's timeout, which need not be the product's 30 s here.
    monkeypatch.setattr("zapanalytics.report.statements_mail.SMTP_TIMEOUT_S", 2.0)
    _smtp_env(monkeypatch, port, password="wrong-Pa55word")
    result = _send(march_store, tmp_path)
    assert result.exception.exit_code == 2  # a user error: one line, no traceback
    message = str(result.exception)
    assert message == "the SMTP server 127.0.0.1 refused the login of board"
    assert "wrong-Pa55word" not in result.output + message
    assert inbox.messages == []


def test_dry_run_writes_eml_files_and_connects_nowhere(march_store, tmp_path, monkeypatch):
    monkeypatch.delenv("ZAPANALYTICS_SMTP_HOST", raising=False)
    result = _send(march_store, tmp_path, "--dry-run", "--lang", "en")
    assert result.exit_code == 0, result.output
    outbox = tmp_path / "bills" / "statements_2026-03_spot" / "outbox"
    files = sorted(p.name for p in outbox.glob("*.eml"))
    assert files == ["2026-03 Kari Ødegård.eml", "2026-03 Åse Ærø.eml"]
    message = email.message_from_bytes(
        (outbox / files[0]).read_bytes(), policy=email.policy.default
    )
    assert message["To"] == "Kari Ødegård <kari@example.org>"
    assert message["Subject"] == "Charging statement 2026-03 – Borettslaget Test"
    assert [a.get_filename() for a in message.iter_attachments()] == ["2026-03 Kari Ødegård.pdf"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set ZAPANALYTICS_SMTP_HOST and ZAPANALYTICS_SMTP_FROM"),
        (
            {
                "ZAPANALYTICS_SMTP_HOST": "h",
                "ZAPANALYTICS_SMTP_FROM": "a@b",
                "ZAPANALYTICS_SMTP_PORT": "x",
            },
            "port number",
        ),
    ],
)
def test_settings_come_from_the_environment(env, message):
    with pytest.raises(MailError, match=message):
        SmtpSettings.from_env(env)


def test_settings_never_show_the_password():
    settings = SmtpSettings.from_env(
        {
            "ZAPANALYTICS_SMTP_HOST": "smtp.example.org",
            "ZAPANALYTICS_SMTP_FROM": "styret@example.org",
            "ZAPANALYTICS_SMTP_PASSWORD": PASSWORD,
            "ZAPANALYTICS_SMTP_STARTTLS": "true",
        }
    )
    assert (settings.port, settings.starttls) == (587, True)
    assert PASSWORD not in repr(settings)


def test_send_without_settings_is_refused_before_billing(march_store, tmp_path, monkeypatch):
    monkeypatch.delenv("ZAPANALYTICS_SMTP_HOST", raising=False)
    monkeypatch.delenv("ZAPANALYTICS_SMTP_FROM", raising=False)
    result = _send(march_store, tmp_path)
    assert result.exception.exit_code == 2
    assert "ZAPANALYTICS_SMTP_HOST" in str(result.exception)
    assert not (tmp_path / "bills").exists()
