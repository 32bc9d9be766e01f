"""Publication fixtures: the bot's OneBot HTTP API on loopback (set as YUQING_ONEBOT_*), no pacing
between sends unless a test asks for it, and an alert whose matter spread in three QQ groups."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from core.db import session_scope
from core.settings import get_settings
from tests.factories import make_alert, make_group, make_incident, make_post, make_user
from tests.onebot_server import OneBotApi


@pytest.fixture
def onebot(monkeypatch: pytest.MonkeyPatch) -> Iterator[OneBotApi]:
    api = OneBotApi()
    api.start()
    monkeypatch.setenv("YUQING_ONEBOT_API_URL", api.url)
    monkeypatch.setenv("YUQING_ONEBOT_API_TOKEN", api.token)
    monkeypatch.setenv("YUQING_PUBLISH_SEND_INTERVAL_SECONDS", "0")
    get_settings.cache_clear()
    yield api
    api.stop()
    get_settings.cache_clear()


@dataclass
class Matter:
    alert_id: int
    incident_id: int
    groups: list[int]  # chat_groups ids where it spread, most posts first
    numbers: list[int]  # their QQ group numbers
    other_group: int  # a QQ group it did not reach
    wechat_group: int  # a group the bot cannot send to
    staff: int
    staff2: int
    analyst: int
    viewer: int


def seed_matter(engine: Engine, *, status: str = "confirmed_rumor") -> Matter:
    with session_scope(engine) as s:
        incident = make_incident(s, title="青禾镇明天封路？")
        groups = [make_group(s, platform="qq", external_id=str(700000 + i), name=f"东湾村{i}组群") for i in range(3)]
        for i, g in enumerate(groups):  # group 0 has the most posts
            for _ in range(3 - i):
                make_post(s, group_id=g.id, incident_id=incident.id, role="claim")
        wechat = make_group(s, platform="wechat", external_id="wx-1", name="柳树村微信群")
        make_post(s, group_id=wechat.id, incident_id=incident.id, role="claim")
        other = make_group(s, platform="qq", external_id="799999", name="石桥村群")
        alert = make_alert(s, incident_id=incident.id, status=status,
                           suggested_response="经核实，青禾镇明天没有封路安排，道路正常通行。")
        users = [make_user(s, role=r) for r in ("staff", "staff", "analyst", "viewer")]
        return Matter(alert.id, incident.id, [g.id for g in groups], [int(g.external_id) for g in groups],
                      other.id, wechat.id, *[u.id for u in users])
