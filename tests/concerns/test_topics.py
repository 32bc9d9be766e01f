"""Topic assignment on sentences we wrote: short posts on a matter join its topic, even one that
came before the matter's own words were known, and a different matter stays apart."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.tables import Post
from tests.concerns.conftest import DAY, run_stage

_BUS = [
    "没车了，老人去县城看病怎么办",  # before anyone named the matter: a topic of its own at first
    "柳树村到县城的公交车停运了，站台贴了通知",
    "去县城的公交车停运，柳树村的老人看病怎么办",
    "公交车停运到什么时候？柳树村站一直没车",
    "县城公交停运，柳树村站台的通知说要停一周",
    "公交车停运，老人看病没车",
    "停运了，没车",
]
_MASKS = [
    "镇上药店的口罩卖完了，什么时候补货",
    "东湾村药店也没有口罩了，口罩什么时候到货",
    "药店口罩",
    "口罩补货了吗",
]


def _posts(texts: list[str], prefix: str, start: dt.datetime) -> list[dict]:
    return [{"source": "青禾镇论坛", "external_id": f"{prefix}{i}", "text": text,
             "published_at": start + dt.timedelta(minutes=7 * i)} for i, text in enumerate(texts)]


def test_short_posts_join_their_matter_and_another_matter_stays_apart(session: Session) -> None:
    start = DAY + dt.timedelta(hours=9)
    posts = _posts(_BUS, "bus", start) + _posts(_MASKS, "mask", start + dt.timedelta(minutes=3))
    run_stage(session, posts, now=start + dt.timedelta(hours=1))
    topic_of = dict(session.execute(select(Post.external_id, Post.topic_id)).all())
    bus = {topic_of[f"bus{i}"] for i in range(len(_BUS))}
    masks = {topic_of[f"mask{i}"] for i in range(len(_MASKS))}
    assert len(bus) == 1 and None not in bus, f"the bus matter is split: {bus}"
    assert len(masks) == 1 and None not in masks, f"the mask matter is split: {masks}"
    assert bus.isdisjoint(masks)
