"""The measure of a publication: the matter's posts per hour before and after it, per incident
(the alert's publications) and per day (the API's day view and the daily digest)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from alerts import publish
from alerts.publish_delivery import deliver_publications
from core.db import session_scope
from core.tables import Response, User, utcnow
from tests.factories import make_post
from tests.onebot_server import OneBotApi
from tests.publish.conftest import seed_matter


def test_spread_before_and_after_per_publication_and_per_day(api_engine: Engine, onebot: OneBotApi) -> None:
    m = seed_matter(api_engine)
    now = utcnow() - dt.timedelta(minutes=5)
    with session_scope(api_engine) as s:  # 12 claims in the 6 hours before, 2 in the hour after
        for h in range(1, 7):
            for _ in range(2):
                make_post(s, group_id=m.groups[0], incident_id=m.incident_id, role="claim",
                          now=now - dt.timedelta(hours=h))
        staff, analyst = s.get(User, m.staff), s.get(User, m.analyst)
        assert staff and analyst
        p, _ = publish.draft(s, m.alert_id, claim="封路", text="没有封路安排", group_ids=[m.groups[0]], actor=staff,
                             now=now)
        publish.approve(s, p.id, actor=analyst, now=now + dt.timedelta(minutes=1))
        pid = p.id
    deliver_publications(api_engine)
    tz = ZoneInfo("Asia/Shanghai")
    with session_scope(api_engine) as s:
        item = publish.publication_dict(s, publish.get_publication(s, pid))
        assert item["spread_before"]["posts"] == 12 and item["spread_before"]["per_hour"] == 2.0
        day = publish.publications_of_day(s, (now + dt.timedelta(minutes=1)).astimezone(tz).date(), tz)
        assert day["publications"] == 1 and day["groups_sent"] == 1
        assert day["items"][0]["spread_before"]["posts"] == 12
        other = publish.publications_of_day(s, (now - dt.timedelta(days=2)).astimezone(tz).date(), tz)
        assert other["publications"] == 0


def test_the_digest_counts_the_day_s_publications(api_engine: Engine, onebot: OneBotApi) -> None:
    from digest.build import build_summary, response_effect
    from digest.render import render

    m = seed_matter(api_engine)
    with session_scope(api_engine) as s:
        staff, analyst = s.get(User, m.staff), s.get(User, m.analyst)
        assert staff and analyst
        p, _ = publish.draft(s, m.alert_id, claim="封路", text="没有封路安排", actor=staff)
        publish.approve(s, p.id, actor=analyst)
        pid = p.id
    deliver_publications(api_engine)
    with session_scope(api_engine) as s:
        today = utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date()
        summary = build_summary(s, today)
        assert summary["publications"] == {"count": 1, "groups_sent": 3}
        response = s.get(Response, publish.get_publication(s, pid).response_id)
        assert response is not None and response_effect(response) is not None
        rendered = render(summary, title="青禾镇舆情日报")
        assert "批准发布到群：1 份，3 个群" in rendered.text and "批准发布到群" in rendered.html
