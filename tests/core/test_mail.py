"""The shared SMTP login against a real aiosmtpd server: UTF-8 credentials, refusals, no AUTH."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from core.mail import smtp_login
from tests.digest.smtp import PASSWORD, USER, Inbox, SmtpServer, authenticator, free_port, smtp_server_at


@pytest.fixture
def plain_auth_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    # Login without TLS only because this is loopback in a test; real settings use starttls/ssl.
    server = smtp_server_at(free_port(), inbox, authenticator=authenticator(inbox), auth_require_tls=False)
    server.start()
    yield server
    server.stop()


def test_non_ascii_password_logs_in(plain_auth_server: SmtpServer) -> None:
    assert not PASSWORD.isascii()  # the case smtplib cannot encode by itself
    with smtplib.SMTP(plain_auth_server.host, plain_auth_server.port, timeout=5) as smtp:
        smtp_login(smtp, USER, PASSWORD)
    assert plain_auth_server.inbox.logins == [USER]


@pytest.mark.parametrize("password", ["wrong-口令", "wrong-ascii"])
def test_refused_credentials_raise_authentication_error(plain_auth_server: SmtpServer, password: str) -> None:
    with (smtplib.SMTP(plain_auth_server.host, plain_auth_server.port, timeout=5) as smtp,
          pytest.raises(smtplib.SMTPAuthenticationError)):
        smtp_login(smtp, USER, password)
    assert plain_auth_server.inbox.logins == []


def test_server_without_auth_says_what_is_missing() -> None:
    server = smtp_server_at(free_port(), Inbox())
    server.start()
    try:
        with (smtplib.SMTP(server.host, server.port, timeout=5) as smtp,
              pytest.raises(smtplib.SMTPNotSupportedError, match="AUTH PLAIN")):
            smtp_login(smtp, USER, PASSWORD)
    finally:
        server.stop()
