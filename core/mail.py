"""SMTP helpers shared by every stage that sends mail (the alert outbox and the daily digest)."""

from __future__ import annotations

import base64
import hashlib
import smtplib


def smtp_login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """Log in to ``smtp``, also with a non-ASCII user name or password.

    smtplib encodes credentials as ASCII only (a Chinese password fails with UnicodeEncodeError
    before anything is sent), so those go as AUTH PLAIN with UTF-8, as RFC 4616 defines it.
    Raises ``SMTPNotSupportedError`` when the server offers no AUTH PLAIN for that case, and
    ``SMTPAuthenticationError`` when it refuses the credentials.
    """
    if user.isascii() and password.isascii():
        smtp.login(user, password)
        return
    smtp.ehlo_or_helo_if_needed()
    if "PLAIN" not in smtp.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPNotSupportedError("AUTH PLAIN (needed for a non-ASCII user name or password)")
    token = base64.b64encode(b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")).decode("ascii")
    code, reply = smtp.docmd("AUTH", "PLAIN " + token)
    # 503: already authenticated on this connection, which is what we wanted.
    if code not in (235, 503):
        raise smtplib.SMTPAuthenticationError(code, reply)


def stable_message_id(key: str, sender: str) -> str:
    """A Message-ID that is the same on every attempt to send one thing (a notification, a digest
    revision): when a crash between the server's "250 OK" and our record of it makes us send
    again, mail clients and servers see the same message twice and show it once.
    ``email.utils.make_msgid`` would give each attempt a new id (time and random in it)."""
    domain = sender.rpartition("@")[2] or "yuqing.local"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return f"<yuqing.{digest}@{domain}>"
