"""Tip fixtures: an in-process OneBot HTTP API server on loopback, set as YUQING_ONEBOT_API_URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.settings import get_settings
from tests.onebot_server import OneBotApi as OneBotApiServer


@pytest.fixture(autouse=True)
def auto_replies_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Automatic refutations are off by default (see README); these tests turn them on."""
    monkeypatch.setenv("YUQING_TIP_AUTO_REPLY_CHANNELS", '["web", "qq", "wechat"]')
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def onebot_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[OneBotApiServer]:
    server = OneBotApiServer()
    server.start()
    monkeypatch.setenv("YUQING_ONEBOT_API_URL", server.url)
    monkeypatch.setenv("YUQING_ONEBOT_API_TOKEN", server.token)
    get_settings.cache_clear()
    yield server
    server.stop()
    get_settings.cache_clear()
