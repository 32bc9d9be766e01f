"""Alert test fixtures: a quiet routing config and notification receivers on loopback (a real SMTP
server and a webhook server). The API on a fresh database and users by role are tests/conftest.py's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerts.notify import NotifyConfig
from tests.alerts.receivers import MailSink, WebhookReceiver, free_port


@pytest.fixture
def no_routes() -> NotifyConfig:
    return NotifyConfig()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailSink]:
    """aiosmtpd in-process on a free loopback port, set as YUQING_SMTP_HOST/PORT."""
    from aiosmtpd.controller import Controller

    from core.settings import get_settings

    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("YUQING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("YUQING_SMTP_PORT", str(port))
    monkeypatch.setenv("YUQING_SMTP_SECURITY", "none")
    get_settings.cache_clear()
    yield sink
    controller.stop()
    get_settings.cache_clear()
