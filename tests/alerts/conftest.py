"""Alert test fixtures: the API on a fresh database (as in tests/api), users by role, a quiet
routing config, and notification receivers on loopback (a real SMTP server and a webhook server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from alerts.notify import NotifyConfig
from api import accounts
from api.app import create_app
from core.db import make_engine, session_scope
from tests.alerts.receivers import MailSink, WebhookReceiver, free_port


@pytest.fixture
def api_engine(fresh_db_url: str):
    eng = make_engine(fresh_db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def api_client(api_engine) -> Iterator[TestClient]:
    with TestClient(create_app(api_engine), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def make_user(api_engine) -> Callable[..., dict[str, str]]:
    """make_user("staff") -> {"Authorization": "Bearer ..."}; the user id is in headers["X-User-Id"]."""
    counter = iter(range(10_000))

    def make(role: str, email: str | None = None) -> dict[str, str]:
        with session_scope(api_engine) as s:
            user = accounts.create_user(s, username=f"{role}{next(counter)}", role=role, email=email)
            token = accounts.create_token(s, user, "test")
            uid = user.id
        return {"Authorization": f"Bearer {token}", "X-User-Id": str(uid)}

    return make


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
