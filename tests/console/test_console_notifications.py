"""Notification health in the console: a header warning when no alert route can deliver, and the
通知 page listing every route with what stops it and its last delivery (from the outbox tables).

The shipped routing mails staff by role; without addresses (or a mail server) every alert only
logged a warning, and nothing in the console said that nobody was told.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from alerts import notify
from core.db import session_scope
from core.settings import get_settings
from core.tables import Alert, Notification, User
from tests.alerts.receivers import MailSink, free_port


@pytest.fixture
def mail_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailSink]:
    from aiosmtpd.controller import Controller

    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("YUQING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("YUQING_SMTP_PORT", str(port))
    get_settings.cache_clear()
    yield sink
    controller.stop()
    get_settings.cache_clear()


def _route_row(html: str, name: str) -> str:
    m = re.search(rf"<td><strong>{name}</strong></td>(.*?)</tr>", html, re.S)
    assert m, f"route {name} not listed"
    return m.group(1)


def test_nobody_notified_is_said_in_every_header_and_explained(live, client_as, monkeypatch) -> None:
    monkeypatch.delenv("YUQING_SMTP_HOST", raising=False)
    get_settings.cache_clear()
    c = client_as("zhangmin")
    page = c.get("/notifications")  # computes afresh (the header's answer is cached for a minute)
    assert page.status_code == 200
    assert "没有能送达的预警通知路由" in page.text
    row = _route_row(page.text, "值班人员邮件")
    assert "不能送达" in row and "工作人员、分析员、管理员" in row and "没有填写邮箱" in row
    assert "从未" in row
    for path in ("/", "/sources", "/digests"):
        assert 'href="/notifications" title="没有能送达的预警通知路由' in c.get(path).text, path


def test_a_route_that_delivers_clears_the_warning_and_shows_its_last_delivery(live, client_as,
                                                                              mail_server: MailSink) -> None:
    with session_scope(live.engine) as s:
        s.get(User, live.scene.users["zhangmin"]).email = "zhangmin@qinghe.example"
        alert = s.get(Alert, live.scene.alerts["road"])
        created = notify.enqueue(s, alert, "created", config=notify.load_notify_config())
        assert [n.target for n in created] == ["zhangmin@qinghe.example"]
    stats = notify.deliver_due(live.engine)
    assert stats.sent == 1 and len(mail_server.messages) == 1
    with session_scope(live.engine) as s:
        assert s.scalar(select(Notification.status)) == "sent"

    c = client_as("zhangmin")
    page = c.get("/notifications")
    assert "1 条预警通知路由可以送达" in page.text
    row = _route_row(page.text, "值班人员邮件")
    assert "可以送达" in row and "zhangmin@qinghe.example" in row and "刚刚" in row
    assert re.search(r'<td class="num">1</td>', row)
    assert "预警无人接收" not in c.get("/").text
