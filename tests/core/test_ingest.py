"""core.ingest: idempotent, batched upserts with clear rejections (run on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ingest import canonical_url, ingest_posts
from core.tables import ChatGroup, Post, Source

TZ = dt.timezone(dt.timedelta(hours=8))


def _batch() -> list[dict]:
    return [
        {"source": "青禾镇论坛", "external_id": "t1", "title": "菜价涨了吗", "text": "听说明天菜市场关门，是真的吗？",
         "published_at": dt.datetime(2026, 11, 27, 9, 30, tzinfo=TZ), "url": "http://bbs.qinghe.test/t/1"},
        {"source": "青禾镇论坛", "external_id": "t2", "text": "不是真的，镇政府已经辟谣了", "parent_external_id": "t1"},
        {"source": "青禾镇新闻", "url": "http://news.qinghe.test/a/9?utm_source=wx&id=9#top", "text": "镇卫生院恢复门诊"},
        {"channel": "chat", "group": {"platform": "qq", "external_id": "88001", "name": "青禾村民群"},
         "author": "李大姐", "author_id": "123456789", "text": "有事打我电话 13912345678",
         "published_at": "2026-11-27T10:00:00"},
    ]


def test_same_batch_twice_inserts_nothing_the_second_time(session: Session) -> None:
    first = ingest_posts(session, _batch())
    assert (first.new, first.updated, first.unchanged, first.rejected) == (4, 0, 0, [])
    second = ingest_posts(session, _batch())
    assert (second.new, second.updated, second.unchanged) == (0, 0, 4)
    assert session.scalar(select(func.count()).select_from(Post)) == 4
    assert session.scalar(select(func.count()).select_from(Source)) == 2
    assert session.scalar(select(func.count()).select_from(ChatGroup)) == 1


def test_changed_text_updates_and_requeues_analysis(session: Session) -> None:
    ingest_posts(session, _batch())
    post = session.scalar(select(Post).where(Post.external_id == "t1"))
    post.analyzed_at = dt.datetime.now(dt.UTC)
    session.flush()
    batch = _batch()
    batch[0]["text"] = "更新：菜市场照常营业"
    result = ingest_posts(session, batch)
    assert (result.new, result.updated, result.unchanged) == (0, 1, 3)
    session.expire_all()
    post = session.scalar(select(Post).where(Post.external_id == "t1"))
    assert post.raw_text == "更新：菜市场照常营业"
    assert post.analyzed_at is None


def test_replies_link_to_their_thread_and_times_are_utc(session: Session) -> None:
    ingest_posts(session, _batch())
    parent = session.scalar(select(Post).where(Post.external_id == "t1"))
    reply = session.scalar(select(Post).where(Post.external_id == "t2"))
    assert reply.parent_id == parent.id
    assert parent.published_at == dt.datetime(2026, 11, 27, 1, 30, tzinfo=dt.UTC)
    chat = session.scalar(select(Post).where(Post.channel == "chat"))
    # naive times are read in the configured zone (Asia/Shanghai)
    assert chat.published_at == dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def test_chat_senders_are_pseudonymised_and_phones_masked(session: Session) -> None:
    ingest_posts(session, _batch())
    chat = session.scalar(select(Post).where(Post.channel == "chat"))
    assert chat.author and chat.author.startswith("用户") and "李大姐" not in chat.author
    assert "123456789" not in (chat.author + str(chat.extra) + chat.dedup_key)
    assert "13912345678" not in chat.raw_text and "139****5678" in chat.raw_text
    again = ingest_posts(session, [dict(_batch()[3], external_id="m2", text="再说一次")])
    assert again.new == 1
    second = session.scalar(select(Post).where(Post.external_id == "m2"))
    assert second.author == chat.author  # stable pseudonym


def test_url_identity_ignores_tracking_and_fragment(session: Session) -> None:
    ingest_posts(session, _batch())
    same = {"source": "青禾镇新闻", "url": "http://news.qinghe.test/a/9?id=9", "text": "镇卫生院恢复门诊"}
    assert ingest_posts(session, [same]).unchanged == 1
    assert canonical_url("HTTP://News.qinghe.test/a/9?id=9&utm_medium=x#frag") == "http://news.qinghe.test/a/9?id=9"


def test_bad_items_are_reported_and_the_rest_lands(session: Session) -> None:
    now = dt.datetime.now(dt.UTC)
    batch = [
        {"source": "s", "external_id": "ok", "text": "正常的一条"},
        {"source": "s", "external_id": "empty", "text": "   "},
        {"source": "s", "external_id": "old", "text": "x", "published_at": "1970-01-01T00:00:00Z"},
        {"source": "s", "external_id": "future", "text": "x", "published_at": (now + dt.timedelta(days=30)).isoformat()},
        {"source": "s", "external_id": "long", "text": "长" * 200_001},
        {"source": "s", "external_id": "baddate", "text": "x", "published_at": "not a date"},
        {"channel": "chat", "external_id": "nogroup", "text": "x"},
    ]
    result = ingest_posts(session, batch)
    assert result.new == 1
    reasons = {r.index: r.reason for r in result.rejected}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6]
    assert "missing text" in reasons[1]
    assert "absurd date" in reasons[2] and "absurd date" in reasons[3]
    assert "text" in reasons[4] and "published_at" in reasons[5]
    assert "group" in reasons[6]


def test_large_batch_is_one_pass(session: Session) -> None:
    batch = [{"source": "批量", "external_id": str(i), "text": f"第{i}条消息"} for i in range(2_000)]
    assert ingest_posts(session, batch).new == 2_000
    assert ingest_posts(session, batch).unchanged == 2_000


def test_session_fixture_really_rolls_back(engine) -> None:
    """Commits inside the `session` fixture are savepoints: nothing leaks into the next test."""
    from sqlalchemy.orm import Session as PlainSession

    conn = engine.connect()
    trans = conn.begin()
    inner = PlainSession(bind=conn, join_transaction_mode="create_savepoint")
    ingest_posts(inner, [{"source": "回滚测试", "external_id": "x", "text": "不应留下"}])
    inner.commit()
    inner.close()
    trans.rollback()
    conn.close()
    with PlainSession(engine) as check:
        assert check.scalar(select(func.count()).select_from(Source).where(Source.name == "回滚测试")) == 0
