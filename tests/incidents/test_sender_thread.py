"""One person carries their matter on over several lines: a group evening pushed by a bot through
the real push route (senders pseudonymised on the way in), then the real analysis on a fresh
database (SQLite, or PostgreSQL with YUQING_TEST_DATABASE=postgres). The messages are ours."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core.db import session_scope
from core.tables import Post, utcnow
from nlp.pipeline import AnalysisResult, analyze

BATCH = "/api/v1/ingest/messages"
GROUP = {"platform": "wechat", "external_id": "20261201-dw@chatroom", "name": "东湾村村民群"}
# (minutes after the start, sender, text)
WATER = (0, "老马", "听说东湾村明天开始停水三天 水厂的管子坏了 赶紧接水")
REACTION = (1, "王婶", "三天？那饭咋做")
SOURCE = (2, "老马", "镇卫生院的人说的")  # names a landmark the matter lacks: only its sender ties it
ELSEWHERE = (4, "老马", "柳树村那边也要停电了 变压器烧了")  # the same man, another village's matter


def _push(client: TestClient, bot: dict[str, str], start: dt.datetime, lines: list[tuple[int, str, str]],
          first_id: int = 1) -> None:
    messages = [{"id": f"m{n}", "time": (start + dt.timedelta(minutes=minute)).isoformat(), "sender": who,
                 "sender_id": f"wxid_{who}", "text": text}
                for n, (minute, who, text) in enumerate(lines, start=first_id)]
    response = client.post(BATCH, json={"group": GROUP, "messages": messages}, headers=bot)
    assert response.status_code == 200 and not response.json()["rejected"], response.text


def _analyze(engine: Engine, model: Any, now: dt.datetime) -> AnalysisResult:
    session = Session(engine, expire_on_commit=False)
    try:
        return analyze(session, model=model, workers=0, now=now)
    finally:
        session.close()


def _post(engine: Engine, text: str) -> tuple[int | None, str | None, str | None]:
    """(incident, role, stored sender) of the post with ``text``."""
    with session_scope(engine) as s:
        row = s.execute(select(Post.incident_id, Post.role, Post.author).where(Post.raw_text == text)).one()
        return row.incident_id, row.role, row.author


def test_a_sender_carries_their_matter_on_and_moves_to_another_village_apart(
    api_client: TestClient, api_engine: Engine, bot: dict[str, str], rumor_model: Any
) -> None:
    start = utcnow() - dt.timedelta(hours=2)
    _push(api_client, bot, start, [WATER, REACTION, SOURCE, ELSEWHERE])
    result = _analyze(api_engine, rumor_model, start + dt.timedelta(minutes=30))

    water, _role, sender = _post(api_engine, WATER[2])
    source, role, source_sender = _post(api_engine, SOURCE[2])
    assert water is not None and sender is not None and sender != WATER[1]  # stored as a pseudonym
    assert role != "other" and source_sender == sender, "precondition: a line of its own, by the same sender"
    assert _post(api_engine, REACTION[2])[0] == water
    assert source == water  # "镇卫生院的人说的": where his news came from, not a matter of the 卫生院
    assert result.counts.get("incident_sender") == 1
    elsewhere = _post(api_engine, ELSEWHERE[2])[0]
    assert elsewhere is not None and elsewhere != water  # another village: his next matter


def test_a_senders_next_line_in_the_next_run_carries_their_matter_on(
    api_client: TestClient, api_engine: Engine, bot: dict[str, str], rumor_model: Any
) -> None:
    # `yuqing run` analyses every minute: the line after a claim often arrives in the next run.
    start = utcnow() - dt.timedelta(hours=2)
    _push(api_client, bot, start, [WATER, REACTION])
    _analyze(api_engine, rumor_model, start + dt.timedelta(minutes=1, seconds=30))
    _push(api_client, bot, start, [SOURCE], first_id=3)
    _analyze(api_engine, rumor_model, start + dt.timedelta(minutes=3))

    water = _post(api_engine, WATER[2])[0]
    assert water is not None and _post(api_engine, SOURCE[2])[0] == water


def test_someone_elses_line_does_not_ride_a_senders_thread(
    api_client: TestClient, api_engine: Engine, bot: dict[str, str], rumor_model: Any
) -> None:
    start = utcnow() - dt.timedelta(hours=2)
    _push(api_client, bot, start, [WATER, REACTION, (2, "李叔", SOURCE[2])])
    _analyze(api_engine, rumor_model, start + dt.timedelta(minutes=30))

    water = _post(api_engine, WATER[2])[0]
    assert water is not None and _post(api_engine, SOURCE[2])[0] != water


def test_a_forwarders_caption_in_their_own_words_carries_the_forward_on(
    api_client: TestClient, api_engine: Engine, bot: dict[str, str], rumor_model: Any
) -> None:
    """One man forwards a health article, then says in his own words why he passes it on: few of
    the article's words, but his caption is about his forward."""
    # Earlier the group talked about its tap water: the words the two lines share are common here.
    earlier = [(0, "刘姐", "今天自来水有点黄 放一会就好了"), (1, "小周", "自来水公司的人来抄表了 家里有人吗"),
               (2, "老杨", "我家自来水管冻裂了 找谁修"), (3, "刘姐", "自来水费是不是涨了"),
               (4, "小周", "楼下自来水阀门谁关的")]
    article = (90, "文师傅", "【重要健康提醒 转发就是积德】自来水厂为了消毒，往水里加大量的氯！氯和水里的有机物一反应，"
                           "生成三氯甲烷，是一级致癌物，烧开了也去不掉，家里一定要装净水器")
    caption = (91, "文师傅", "转给老同事们看看，我们喝了几十年自来水，难怪厂里那么多人得了癌[流泪]")
    start = utcnow() - dt.timedelta(hours=3)
    _push(api_client, bot, start, [*earlier, article, caption])
    result = _analyze(api_engine, rumor_model, start + dt.timedelta(minutes=120))

    forwarded, _role, _who = _post(api_engine, article[2])
    said, role, _who = _post(api_engine, caption[2])
    assert forwarded is not None and role != "other", "precondition: the caption is a line of its own"
    assert said == forwarded
    assert result.counts.get("incident_sender") == 1  # his thread placed it, not the line after a matter
