"""The live demo of `yuqing run --demo`: a scripted day of 青禾镇 replayed in compressed time.

At high speed on a fresh database, with the real write path, analysis and alert evaluation: the
rumor's first minutes raise one alert, and the next minutes fold into it (more posts, more groups)
instead of raising new ones.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from alerts.evaluate import evaluate
from alerts.notify import NotifyConfig
from core.db import session_scope
from core.errors import InvalidInput
from core.tables import Alert, ChatGroup, Post
from crawler.demo.replay import Replay, load_script
from nlp.debunks import DEMO_DEBUNKS, import_debunks
from nlp.pipeline import analyze


def test_the_script_tells_a_day_in_about_fifteen_minutes() -> None:
    script = load_script()
    assert 13 <= script.minutes <= 16
    chats = [e for e in script.events if e.chat]
    assert len({e.chat for e in chats}) == 4 and any(e.news for e in script.events)
    with pytest.raises(InvalidInput, match="demo-speed"):
        Replay(script, speed=0)


def _rumor_alerts(session) -> list[Alert]:
    """The alerts on the matter of the day's first message (the rumor as it started)."""
    incident = session.scalar(select(Post.incident_id).where(Post.external_id.like("demo-%-0")))
    assert incident is not None, "the first message joined no matter"
    return list(session.scalars(select(Alert).where(Alert.incident_id == incident).order_by(Alert.id)))


def test_folding_shows_in_the_first_minutes_at_high_speed(fresh_db_url: str) -> None:
    with session_scope() as s:
        import_debunks(s, DEMO_DEBUNKS)
    news: list[dict] = []
    replay = Replay(load_script(), speed=120, post_news=news.append)  # 15 demo minutes in 7.5 s

    t0 = time.monotonic()
    replay.run(until_minute=1.5)  # the rumor in 东湾村, then 柳树村
    assert time.monotonic() - t0 < 10
    with session_scope() as s:
        analyze(s)
        evaluate(s, notify_config=NotifyConfig())
        first = _rumor_alerts(s)
        assert len(first) == 1, [a.title for a in first]
        alert_id, posts_then, groups_then = first[0].id, first[0].post_count, first[0].group_count

    replay.run(until_minute=4.0)  # three more groups, then the refutation appears on the site
    with session_scope() as s:
        analyze(s)
        evaluate(s, notify_config=NotifyConfig())
        later = _rumor_alerts(s)
        assert [a.id for a in later] == [alert_id]  # folded, not a new alert
        assert later[0].post_count > posts_then and later[0].group_count > groups_then >= 1
        assert s.scalar(select(func.count()).select_from(ChatGroup)) == 4
        assert s.scalar(select(func.count()).select_from(Alert).where(Alert.title.like("%自来水%"))) <= 2
    assert [n["title"] for n in news] == ["关于网传“青禾镇自来水被污染”的情况说明"]

    replay.run()  # the rest of the day: the price concern and a quiet evening
    with session_scope() as s:
        texts = list(s.scalars(select(Post.raw_text)))
    assert sum("鸡蛋" in t for t in texts) >= 6 and any("晚安" in t for t in texts)
    assert replay.played == len(replay.script.events) and len(news) == 2
