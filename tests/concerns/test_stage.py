"""The concern stage on the database: a burst is hot in the next run, a steady topic is not,
topics continue across runs and days, and re-running a batch changes nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.tables import Post, Topic, TopicBurst
from nlp.concerns import keyword_rates, update_concerns
from tests.concerns.conftest import DAY, run_stage, synthetic_day, views


def _topic_with(session: Session, word: str) -> Topic:
    """The biggest topic whose keywords contain ``word``."""
    topics = [t for t in session.scalars(select(Topic).order_by(Topic.post_count.desc()))
              if any(w == word for w, _ in t.keywords)]
    assert topics, f"no topic has the keyword {word}"
    return topics[0]


def test_burst_at_14_is_hot_in_the_next_run_and_steady_topic_is_not(session: Session) -> None:
    first = run_stage(session, synthetic_day(until_hour=14), now=DAY + dt.timedelta(hours=14))
    assert first.posts > 14 * 30
    masks = _topic_with(session, "口罩")
    market = _topic_with(session, "青禾菜市场")
    assert masks.id != market.id
    assert not masks.is_hot and not market.is_hot  # nothing has risen yet
    assert market.post_count > 5 * masks.post_count  # the market matter is by far the bigger one

    second = run_stage(session, synthetic_day(from_hour=14, until_hour=15), now=DAY + dt.timedelta(hours=15))
    session.expire_all()
    masks = session.get(Topic, masks.id)
    market = session.get(Topic, market.id)
    assert masks.is_hot, f"mask topic not hot: burst_score={masks.burst_score}"
    assert masks.id in second.newly_hot_ids
    assert not market.is_hot, f"steady topic reported hot: burst_score={market.burst_score}"
    steady = [t for t in session.scalars(select(Topic)) if any(w == "青禾菜市场" for w, _ in t.keywords)]
    assert steady and not any(t.is_hot for t in steady)
    assert sum(t.post_count for t in steady) > 14 * 25
    assert masks.burst_score > 4 > market.burst_score
    # what the office sees about it
    assert masks.category == "物资供应"
    assert "东湾村" in masks.places
    assert masks.local_count > 0 and masks.negativity > market.negativity
    assert masks.group_count >= 2
    assert masks.hot_since is not None
    bursts = select(func.count()).select_from(TopicBurst).where(TopicBurst.topic_id == masks.id)
    assert session.scalar(bursts) == 1
    assert "口罩" in masks.label
    rep = session.get(Post, masks.representative_post_id)
    assert rep is not None and rep.topic_id == masks.id and "口罩" in rep.raw_text

    # Three quiet hours later the burst is over: the next run (no new posts) cools it down.
    update_concerns(session, [], now=DAY + dt.timedelta(hours=20))
    session.expire_all()
    assert not session.get(Topic, masks.id).is_hot


def test_posts_get_category_mood_places_and_topic(session: Session) -> None:
    run_stage(session, synthetic_day(until_hour=3), now=DAY + dt.timedelta(hours=3))
    posts = session.scalars(select(Post)).all()
    assert posts and all(p.category is not None and p.negativity is not None for p in posts)
    market = [p for p in posts if "菜市场" in p.raw_text]
    assert market and all(p.is_local and "青禾菜市场" in p.places for p in market)
    assert sum(p.category == "物价" for p in market) > 0.6 * len(market)
    assert sum(p.topic_id is not None for p in market) > 0.9 * len(market)


def test_same_matter_tomorrow_continues_the_topic(session: Session) -> None:
    day1 = [
        "石桥村的隔离什么时候解除？",
        "石桥村隔离已经十天了，什么时候能解除隔离",
        "请问石桥村隔离还要多久，村里的人都着急",
        "石桥村解除隔离有通知吗",
        "石桥村隔离期间买菜怎么办",
    ]
    day2 = [
        "石桥村隔离今天能解除吗？",
        "都第十一天了，石桥村的隔离到底什么时候解除",
        "石桥村隔离的事镇里有回复吗",
    ]
    other = ["南坪村小学明天开学吗，网课上到什么时候", "南坪村小学开学时间定了没有，孩子网课上不下去了"]

    def items(texts: list[str], day: int, tag: str) -> list[dict]:
        start = DAY + dt.timedelta(days=day, hours=9)
        return [{"source": "青禾镇论坛", "external_id": f"{tag}{i}", "text": t,
                 "published_at": start + dt.timedelta(minutes=10 * i)} for i, t in enumerate(texts)]

    run_stage(session, items(day1, 0, "a"), now=DAY + dt.timedelta(hours=12))
    topic_ids = set(session.scalars(select(Post.topic_id)))
    assert len(topic_ids) == 1 and None not in topic_ids
    (tid,) = topic_ids

    run_stage(session, items(day2, 1, "b") + items(other, 1, "c"), now=DAY + dt.timedelta(days=1, hours=12))
    day2_topics = {p.topic_id for p in session.scalars(select(Post).where(Post.external_id.like("b%")))}
    assert day2_topics == {tid}
    other_topics = {p.topic_id for p in session.scalars(select(Post).where(Post.external_id.like("c%")))}
    assert tid not in other_topics and None not in other_topics and len(other_topics) == 1
    topic = session.get(Topic, tid)
    session.refresh(topic)
    assert topic.post_count == 8
    assert topic.first_seen < DAY + dt.timedelta(hours=12) < topic.last_seen
    assert topic.category == "疫情防控措施/隔离"
    assert topic.places == ["石桥村"]
    assert len(topic.hourly_counts) == 2


def test_rerunning_a_batch_counts_nothing_twice(session: Session) -> None:
    now = DAY + dt.timedelta(hours=6)
    run_stage(session, synthetic_day(until_hour=6), now=now)

    def snapshot() -> tuple:
        topics = session.scalars(select(Topic).order_by(Topic.id)).all()
        members = dict(session.execute(select(Post.topic_id, func.count()).where(Post.topic_id.is_not(None))
                                       .group_by(Post.topic_id)).all())
        for t in topics:  # every topic's counts agree with its member posts
            assert t.post_count == members.get(t.id, 0) == sum(t.hourly_counts.values()), t.label
        keywords = sorted((h, w, n) for h, counts in keyword_rates.hourly(session, DAY, now).items()
                          for w, n in counts.items())
        assert keywords
        cats = session.execute(select(Post.id, Post.category, Post.negativity).order_by(Post.id)).all()
        return sum(members.values()), [tuple(k) for k in keywords], [tuple(c) for c in cats]

    before = snapshot()
    stats = update_concerns(session, views(session), now=now)
    assert stats.posts == session.scalar(select(func.count()).select_from(Post))
    session.expire_all()
    after = snapshot()
    assert after == before
    assert session.scalar(select(func.count()).select_from(Topic).where(Topic.post_count == 0)) == 0


def test_short_replies_join_their_parents_topic(session: Session) -> None:
    start = DAY + dt.timedelta(hours=9)
    thread = [{"source": "青禾镇论坛", "external_id": "t1", "text": "南坪村的自来水发黄了，还能喝吗？",
               "published_at": start},
              {"source": "青禾镇论坛", "external_id": "t2", "text": "南坪村自来水发黄，村里有人去问了吗",
               "published_at": start + dt.timedelta(minutes=5)}]
    replies = [{"source": "青禾镇论坛", "external_id": f"r{i}", "text": text, "parent_external_id": "t1",
                "published_at": start + dt.timedelta(minutes=10 + i)}
               for i, text in enumerate(["顶", "同问", "+1 我家也是", "转发"])]
    unrelated = [{"source": "青禾镇论坛", "external_id": "u1", "text": "同问", "published_at": start}]
    run_stage(session, thread + replies + unrelated, now=start + dt.timedelta(hours=1))
    topic_of = dict(session.execute(select(Post.external_id, Post.topic_id)).all())
    assert topic_of["t1"] is not None and topic_of["t2"] == topic_of["t1"]
    assert all(topic_of[f"r{i}"] == topic_of["t1"] for i in range(4))
    assert topic_of["u1"] is None  # a bare "同问" with nothing to answer belongs nowhere
    # a reply arriving in a later run joins the topic too
    run_stage(session, [{"source": "青禾镇论坛", "external_id": "r9", "text": "顶一下", "parent_external_id": "t2",
                         "published_at": start + dt.timedelta(hours=2)}], now=start + dt.timedelta(hours=3))
    assert session.scalar(select(Post.topic_id).where(Post.external_id == "r9")) == topic_of["t1"]


def test_a_lone_post_waits_pending_until_a_second_post_joins(session: Session) -> None:
    from nlp.concerns import pending

    start = DAY + dt.timedelta(hours=9)

    def post(ext: str, text: str, minutes: int) -> dict:
        return {"source": "青禾镇论坛", "external_id": ext, "text": text,
                "published_at": start + dt.timedelta(minutes=minutes)}

    first = run_stage(session, [post("w1", "柳树村的路灯坏了好几天，晚上走路看不见", 0)], now=start + dt.timedelta(hours=1))
    # One post is no topic yet: no row, no topic on the post, but it waits in the pending pool.
    assert first.topics_new == 0 and first.pending == 1
    assert session.scalar(select(func.count()).select_from(Topic)) == 0
    assert session.scalar(select(Post.topic_id).where(Post.external_id == "w1")) is None
    assert session.scalar(select(Post.category).where(Post.external_id == "w1")) is not None
    pool = pending.load(session, 1 << 20)
    assert len(pool) == 1 and pool.post(0).keywords

    second = run_stage(session, [post("w2", "柳树村路灯坏了，晚上看不见路，谁来修一下", 90)],
                       now=start + dt.timedelta(hours=2))
    assert second.topics_new == 1 and second.pending == 0
    (topic,) = session.scalars(select(Topic)).all()
    topic_of = dict(session.execute(select(Post.external_id, Post.topic_id)).all())
    assert topic_of == {"w1": topic.id, "w2": topic.id}  # the first post joined its topic too
    assert topic.post_count == 2 == sum(topic.hourly_counts.values()) and len(topic.hourly_counts) == 2
    assert topic.first_seen == start and "柳树村" in topic.places and "路灯" in topic.label

    # Re-analysing both posts counts nothing twice.
    update_concerns(session, views(session), now=start + dt.timedelta(hours=2))
    session.expire_all()
    (again,) = session.scalars(select(Topic)).all()
    assert again.post_count == 2 and len(pending.load(session, 1 << 20)) == 0

    # A lone post older than a day is no longer offered: it expires from the pool.
    run_stage(session, [post("w3", "南坪村的垃圾桶满了没人清理", 180)], now=start + dt.timedelta(hours=4))
    assert len(pending.load(session, 1 << 20)) == 1
    late = run_stage(session, [post("w4", "南坪村垃圾桶满了，一直没人清理", 60 * 30)], now=start + dt.timedelta(hours=31))
    assert late.topics_new == 0 and late.pending == 1
    assert session.scalar(select(Post.topic_id).where(Post.external_id == "w4")) is None


def test_an_analyzer_reused_across_runs_sees_what_others_wrote(session: Session) -> None:
    """Topic rows cached between batches are used only while nobody else has written them."""
    from sqlalchemy import update

    from core.tables import utcnow
    from nlp.concerns import ConcernAnalyzer

    analyzer = ConcernAnalyzer()
    start = DAY + dt.timedelta(hours=9)
    texts = ["石桥村停水了，自来水什么时候恢复", "石桥村自来水停水一天了，什么时候恢复", "石桥村还在停水，自来水到底什么时候恢复"]

    def batch(i: int) -> list:
        before = set(session.scalars(select(Post.id)))
        from core.ingest import ingest_posts

        ingest_posts(session, [{"source": "青禾镇论坛", "external_id": f"s{i}", "text": texts[i],
                                "published_at": start + dt.timedelta(minutes=10 * i)}])
        return [v for v in views(session) if v.id not in before]

    update_concerns(session, batch(0) + batch(1), now=start + dt.timedelta(hours=1), analyzer=analyzer)
    (topic,) = session.scalars(select(Topic)).all()
    assert topic.post_count == 2 and topic.id in analyzer.topic_cache
    # Someone else writes the row (here by hand; in production the burst refresh or retirement).
    session.execute(update(Topic).where(Topic.id == topic.id).values(post_count=Topic.post_count + 100,
                                                                      updated_at=utcnow()))
    update_concerns(session, batch(2), now=start + dt.timedelta(hours=1), analyzer=analyzer)
    session.expire_all()
    assert session.get(Topic, topic.id).post_count == 103
