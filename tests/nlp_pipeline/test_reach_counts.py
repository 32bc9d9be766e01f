"""Reach counts what staff see listed: distinct groups, plus sources outside groups.

Messages pushed through the API arrive through the pseudo-source 接口推送 (kind ``api``); counting
it as one more place said "在 4 个群或来源出现" above a list of 3 groups, and raised the risk score.
"""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.evaluate import evaluate
from alerts.notify import NotifyConfig
from core.db import session_scope
from core.tables import Alert, Post, Story
from nlp.pipeline import analyze

RUMOR = "紧急通知：青禾镇明天起封城，所有超市停止营业，大家赶紧去抢购大米和食用油"


def _push(client: TestClient, bot: dict[str, str], group: str, n: int, start: int) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    messages = [{"id": f"{group}-{start + i}", "time": (now - dt.timedelta(minutes=30 - start - i)).isoformat(),
                 "sender": f"村民{i}", "text": f"{RUMOR}！转发{start + i}"} for i in range(n)]
    body = {"group": {"platform": "qq", "external_id": group, "name": f"青禾{group}群"}, "messages": messages}
    response = client.post("/api/v1/ingest/messages", json=body, headers=bot)
    assert response.status_code == 200 and response.json()["new"] == n, response.text


def test_pushed_messages_reach_their_groups_not_the_push_source(api_client: TestClient, api_engine,
                                                                bot: dict[str, str]) -> None:
    for group in ("101", "102", "103"):
        _push(api_client, bot, group, 3, 0)
    with session_scope(api_engine) as s:
        analyze(s)
        story = s.scalars(select(Story).order_by(Story.post_count.desc())).first()
        assert story is not None and story.post_count == 9
        assert (story.group_count, story.source_count) == (3, 0)  # written for a new story

    _push(api_client, bot, "101", 2, 10)  # a later batch: the counts of an existing story are recounted
    with session_scope(api_engine) as s:
        analyze(s)
        story = s.get(Story, story.id)
        assert (story.post_count, story.group_count, story.source_count) == (11, 3, 0)
        evaluate(s, notify_config=NotifyConfig(), full=True)
        # one alert per matter: the incident the story's posts are in
        incident_id = s.scalar(select(Post.incident_id).where(Post.story_id == story.id).limit(1))
        alert = s.scalars(select(Alert).where(Alert.incident_id == incident_id)).one()
        assert alert.group_count == 3
        reasons = " ".join(str(r) for r in alert.rules_fired) + str(alert.score_parts)
        assert "在 4 个群" not in reasons
