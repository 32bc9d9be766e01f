"""The digest as an email (text + HTML alternatives, charts as inline CID images) and its SMTP delivery.

Structure of the message::

    multipart/alternative
      text/plain            the text part
      multipart/related
        text/html           refers to the charts as cid:...
        image/png ...       Content-Disposition: inline, Content-ID: <...>

SMTP security comes from settings: ``none``, ``starttls`` or ``ssl``, with login when
``YUQING_SMTP_USER`` is set, certificates checked against the system store or
``YUQING_SMTP_CA_FILE``.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from core.mail import smtp_login
from core.settings import Settings
from digest.errors import DigestConfigError, DigestSendError

log = logging.getLogger(__name__)

SENDER_NAME = "舆情哨兵"
SECURITY_MODES = ("none", "starttls", "ssl")


def _address(email: str, name: str | None) -> Address:
    user, _, domain = email.rpartition("@")
    return Address(display_name=name or "", username=user, domain=domain)


def build_message(
    *,
    subject: str,
    text: str,
    html: str,
    figures: Mapping[str, Mapping[str, Any]],
    recipients: Sequence[Mapping[str, Any]],
    sender: str,
    message_id: str,
    date: Any = None,
) -> EmailMessage:
    """The mail for one stored digest. ``figures`` maps Content-ID -> {content_type, b64, filename}."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = _address(sender, SENDER_NAME)
    msg["To"] = [_address(r["email"], r.get("name")) for r in recipients]
    if date is not None:
        msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    html_part = msg.get_payload()[1]  # type: ignore[index]
    assert isinstance(html_part, EmailMessage)
    for cid, fig in figures.items():
        maintype, _, subtype = str(fig.get("content_type", "image/png")).partition("/")
        html_part.add_related(
            base64.b64decode(fig["b64"]), maintype=maintype, subtype=subtype or "png",
            cid=f"<{cid}>", disposition="inline", filename=fig.get("filename") or f"{cid.split('@')[0]}.png",
        )
    return msg


def _where(settings: Settings) -> str:
    return f"{settings.smtp_host}:{settings.smtp_port}"


def deliver(msg: EmailMessage, settings: Settings) -> dict[str, Any]:
    """Send ``msg`` through the configured server. Returns refused recipients (empty when all took it).

    Raises :class:`DigestSendError` when nothing was delivered, with a message that names the
    server and what to check.
    """
    if not settings.smtp_host:
        raise DigestSendError("未配置邮件服务器：请设置 YUQING_SMTP_HOST"
                              "（以及 PORT / SECURITY / USER / PASSWORD）。日报已保存，配置后会自动重试。")
    security = settings.smtp_security.strip().lower()
    if security not in SECURITY_MODES:
        raise DigestConfigError(
            f"YUQING_SMTP_SECURITY 的值 '{settings.smtp_security}' 无效：可选 none、starttls、ssl。"
        )
    context = ssl.create_default_context(cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    try:
        smtp: smtplib.SMTP
        if security == "ssl":
            smtp = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout,
                                    context=context)
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout)
        with smtp:
            if security == "starttls":
                smtp.starttls(context=context)
            if settings.smtp_user:
                smtp_login(smtp, settings.smtp_user, password)
            refused = smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as err:
        raise DigestSendError(
            f"邮件服务器 {_where(settings)} 拒绝登录（用户 {settings.smtp_user}）：{_smtp_text(err)}。"
            "请检查 YUQING_SMTP_USER 和 YUQING_SMTP_PASSWORD。"
        ) from err
    except smtplib.SMTPRecipientsRefused as err:
        raise DigestSendError(
            f"邮件服务器 {_where(settings)} 拒收全部收件人：{', '.join(err.recipients)}。请检查收件人地址。"
        ) from err
    except smtplib.SMTPNotSupportedError as err:
        raise DigestSendError(
            f"邮件服务器 {_where(settings)} 不支持所需功能（{err}）："
            "请检查 YUQING_SMTP_SECURITY（none/starttls/ssl）。"
        ) from err
    except ssl.SSLError as err:
        raise DigestSendError(
            f"与邮件服务器 {_where(settings)} 的加密连接失败：{err}。请检查 YUQING_SMTP_SECURITY、端口"
            "和证书（私有 CA 可用 YUQING_SMTP_CA_FILE 指定）。"
        ) from err
    except (OSError, smtplib.SMTPException) as err:
        raise DigestSendError(
            f"无法通过邮件服务器 {_where(settings)} 发送日报：{_smtp_text(err)}。"
            "请检查 YUQING_SMTP_HOST / YUQING_SMTP_PORT 与服务器状态；日报已保存，会自动重试。"
        ) from err
    if refused:
        log.warning("digest: mail server refused some recipients: %s", refused)
    return {addr: _smtp_text(reply) for addr, reply in (refused or {}).items()}


def _smtp_text(err: Any) -> str:
    if isinstance(err, tuple) and len(err) == 2:
        code, text = err
        return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
    if isinstance(err, smtplib.SMTPResponseException):
        message = err.smtp_error
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        return f"{err.smtp_code} {message}"
    return str(err) or type(err).__name__
