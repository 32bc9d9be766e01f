"""Fixtures of the concern stage: a synthetic day of posts about 青禾镇, and a helper that does
what `yuqing analyze` does before our stage (normalise, segment) on posts read from the database."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from functools import lru_cache

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ingest import ingest_posts
from core.tables import Post
from nlp.concerns import ConcernStats, PostView, update_concerns
from nlp.normalize import normalize
from nlp.segment import Segmenter

CST = dt.timezone(dt.timedelta(hours=8))
DAY = dt.datetime(2026, 11, 28, tzinfo=CST)


@lru_cache(maxsize=1)
def segmenter() -> Segmenter:
    return Segmenter()


def views(session: Session, ids: Sequence[int] | None = None) -> list[PostView]:
    """Post views as the pipeline builds them (normalised text and tokens)."""
    q = select(Post).order_by(Post.id)
    if ids is not None:
        q = q.where(Post.id.in_(list(ids)))
    out = []
    for p in session.scalars(q):
        norm = normalize(p.raw_text)
        out.append(PostView(p.id, norm, segmenter().cut(norm), p.published_at, p.group_id, p.source_id,
                            p.story_id))
    return out


def run_stage(session: Session, posts: list[dict], now: dt.datetime) -> ConcernStats:
    """Ingest ``posts`` and run the concern stage on the new ones, as one analyze run would."""
    before = set(session.scalars(select(Post.id)))
    ingest_posts(session, posts)
    new = [i for i in session.scalars(select(Post.id)) if i not in before]
    return update_concerns(session, views(session, new), now=now)


# --------------------------------------------------------------------------- a synthetic day

_VILLAGES = ["东湾村", "柳树村", "石桥村", "南坪村"]
_GROUPS = [("wechat", f"qh-{i}", f"青禾{name}群")
           for i, name in enumerate(["东湾村民", "柳树村民", "石桥", "南坪", "镇上商户"])]

# The steady matter: vegetable prices at the market, asked about all day.
_STEADY = [
    "今天青禾菜市场的{veg}多少钱一斤？",
    "青禾菜市场{veg}又涨价了，{price}块一斤",
    "菜市场的{veg}价格跟昨天差不多，{price}块",
    "有人知道菜市场{veg}今天什么价吗",
    "刚从菜市场回来，{veg}{price}块一斤，价格还行",
]
_VEG = ["白菜", "萝卜", "土豆", "西红柿", "黄瓜", "青菜", "芹菜"]
# The concern that bursts at 14:00: masks sold out in 东湾村.
_BURST = [
    "东湾村药店的口罩卖完了，哪里还能买到口罩？",
    "东湾村口罩买不到了！！！怎么办",
    "东湾的药店口罩断货了，什么时候补货？",
    "我们东湾村口罩都没有了，镇上能不能发一点",
    "东湾村药店说口罩缺货，老人出门没口罩怎么办",
    "听说东湾村口罩断货，有没有地方买口罩",
]
# Background chatter: many small unrelated matters.
_NOISE = [
    "今天天气不错，{v}的路边桂花开了",
    "{v}晚上有广场舞，大家来跳",
    "谁家的小狗跑丢了，黄色的，在{v}附近",
    "{v}的快递点搬到村委会旁边了",
    "周末{v}有集市吗",
    "{v}小学门口在修路，绕行一下",
]


def _at(hour: float) -> dt.datetime:
    return DAY + dt.timedelta(hours=hour)


def synthetic_day(until_hour: int, from_hour: int = 0, seed: int = 7) -> list[dict]:
    """Posts of 2026-11-28 (China time) between ``from_hour`` and ``until_hour``.

    Steady: ~30 posts/h about vegetable prices all day. Burst: masks in 东湾村, about one post
    every three hours until 14:00, then ~40 posts in the 14:00 hour. Noise: ~8 posts/h.
    """
    rng = random.Random(seed)
    posts: list[dict] = []
    n = 0

    def add(text: str, hour: float) -> None:
        nonlocal n
        n += 1
        platform, ext, name = _GROUPS[n % len(_GROUPS)]
        posts.append({"channel": "chat", "group": {"platform": platform, "external_id": ext, "name": name},
                      "author": f"用户{n % 97}", "external_id": f"m{seed}-{n}", "text": text,
                      "published_at": _at(hour)})

    for h in range(24):
        hour_posts: list[tuple[str, float]] = []
        for _ in range(rng.randint(27, 33)):
            tpl = rng.choice(_STEADY)
            hour_posts.append((tpl.format(veg=rng.choice(_VEG), price=rng.randint(2, 9)), h + rng.random()))
        burst_n = 40 if h == 14 else (1 if h % 3 == 0 else 0)
        for _ in range(burst_n):
            hour_posts.append((rng.choice(_BURST), h + rng.random()))
        for _ in range(rng.randint(6, 10)):
            hour_posts.append((rng.choice(_NOISE).format(v=rng.choice(_VILLAGES)), h + rng.random()))
        if from_hour <= h < until_hour:
            for text, t in hour_posts:
                add(text, t)
        else:
            n += len(hour_posts)
    return posts


@pytest.fixture
def day_posts() -> Callable[..., list[dict]]:
    return synthetic_day


@pytest.fixture
def at() -> Callable[[float], dt.datetime]:
    return _at
