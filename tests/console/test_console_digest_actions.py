"""Digests in the console: the archive names each recipient list; today's digest can be previewed,
and an admin can send it now (through digest.service, idempotent per day and list)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import session_scope
from core.settings import get_settings
from core.tables import Digest
from tests.alerts.receivers import MailSink, free_port
from tests.console.conftest import csrf_of

RECIPIENTS = """title: 青禾镇舆情日报
recipients:
  - {email: shuji@qinghe.example, name: 王书记}
  - {email: zhenzhang@qinghe.example, name: 张镇长}
  - {email: banshi@qinghe.example, name: 办事员, sections: [rumors]}
"""


@pytest.fixture(autouse=True)
def digest_actions() -> None:
    """What `yuqing serve` / `yuqing run` do before serving: connect the digest stage to the console."""
    from yuqing.digest_actions import register

    register()


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MailSink]:
    from aiosmtpd.controller import Controller

    path = tmp_path / "digest.yaml"
    path.write_text(RECIPIENTS, encoding="utf-8")
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("YUQING_DIGEST_RECIPIENTS_FILE", str(path))
    monkeypatch.setenv("YUQING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("YUQING_SMTP_PORT", str(port))
    get_settings.cache_clear()
    yield sink
    controller.stop()
    get_settings.cache_clear()


def test_admin_previews_and_sends_todays_digest_once(live, client_as, configured: MailSink) -> None:
    admin = client_as("admin")
    preview = admin.get("/digests/today")
    assert preview.status_code == 200
    assert "未保存、未发送" in preview.text and "青禾镇舆情日报" in preview.text
    assert "王书记、张镇长" in preview.text and "办事员" in preview.text  # two lists, by their people
    assert 'srcdoc="' in preview.text and "立即发送" in preview.text
    with session_scope(live.engine) as s:
        before = s.scalar(select(func.count()).select_from(Digest))

    r = admin.post("/digests/send", data={"csrf_token": csrf_of(preview.text)})
    assert r.status_code == 303 and "msg=" in r.headers["location"]
    archive = admin.get(r.headers["location"])
    assert "已发送给" in archive.text and len(configured.messages) == 2
    assert re.search(r"<td class=\"small\">王书记、张镇长</td>", archive.text)
    assert re.search(r"<td class=\"small\">办事员</td>", archive.text)
    with session_scope(live.engine) as s:
        assert s.scalar(select(func.count()).select_from(Digest)) == before + 2

    again = admin.post("/digests/send", data={"csrf_token": csrf_of(preview.text)})
    assert "未重复发送" in admin.get(again.headers["location"]).text
    assert len(configured.messages) == 2


def test_staff_preview_but_cannot_send(live, client_as, configured: MailSink) -> None:
    staff = client_as("zhangmin")
    preview = staff.get("/digests/today")
    assert preview.status_code == 200 and "立即发送" not in preview.text
    r = staff.post("/digests/send", data={"csrf_token": csrf_of(staff.get("/digests").text)})
    assert r.status_code == 403 and "管理员" in r.text
    assert configured.messages == []


def test_preview_without_recipients_says_what_to_configure(live, client_as, monkeypatch) -> None:
    monkeypatch.delenv("YUQING_DIGEST_RECIPIENTS_FILE", raising=False)
    get_settings.cache_clear()
    page = client_as("admin").get("/digests/today")
    assert page.status_code == 200 and "YUQING_DIGEST_RECIPIENTS_FILE" in page.text
    assert "立即发送" not in page.text
