"""Public group pages: a board's topics and replies, and a channel's JSON, crawled as group messages.

Crawls the fixture site (tests/crawler/site_server.py, ``/group/...``) with `yuqing crawl` in a
subprocess, the same run path as every other crawl test, then reads the database back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.chat_stats import hourly_counts_by_group
from core.db import make_engine
from core.tables import ChatGroup, Post, Source, SourceRun
from crawler.chats.groups import ensure_group, update_group
from crawler.config import SourcesFileError, parse_sources
from tests.chats.conftest import every_text, sqlite_file_bytes
from tests.crawler.conftest import FixtureSite, run_crawl, source, write_sources

BOARD = {
    "name": "东湾村村民交流区", "kind": "html", "interval": "10m",
    "group": {"name": "东湾村村民交流区", "platform": "forum", "tags": ["村", "东湾村"]},
    "list": {"item_links": "a.topic::attr(href)", "next_page": "a.next::attr(href)"},
    "detail": {"title": "h1.topic-title::text", "body": "div.first div.content",
               "author": "div.first a.user::text", "author_id": "div.first a.user::attr(data-uid)",
               "published": "div.first span.time::text",
               "replies": {"each": "div.floor.reply", "id": "::attr(data-pid)", "body": "div.content",
                           "author": "a.user::text", "author_id": "a.user::attr(data-uid)",
                           "published": "span.time::text", "quote": "blockquote.quote::attr(data-quote-pid)",
                           "next_page": "a.next-floors::attr(href)"}},
}
CHANNEL = {
    "name": "青禾镇便民频道", "kind": "json", "interval": "5m", "items": "result.messages",
    "group": {"name": "青禾镇便民频道", "platform": "telegram-channel", "id": "qinghe_notice"},
    "fields": {"id": "id", "author": "from.name", "author_id": "from.id", "body": "text", "published": "date",
               "parent_id": "reply_to_message_id"},
}
NICKNAMES = ["东湾村老王", "村口小卖部老板", "柳树村李姐", "热心的张师傅", "东湾村新人", "镇供水站小刘", "南坪村阿芳",
             "青禾镇便民通知", "石桥村住户甲", "南坪村网友甲"]
RAW_IDS = ["u1001", "u1002", "u1004", "u1007", "5550001", "5550002"]
RAW_NUMBERS = ["2718281828", "13812345678", "13900001111"]
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _sources(tmp_path: Path, site: FixtureSite, **board_group: Any) -> Path:
    board = source(BOARD, site.base, "/group/board-1.html")
    board["group"] = board["group"] | board_group
    return write_sources(tmp_path / "sources.yaml", board,
                         source(CHANNEL, site.base, "/group/channel?page={page}"))


def _crawl(sources: Path, *args: str) -> None:
    result = run_crawl("--sources", str(sources), *args)
    assert result.returncode == 0, result.stdout + result.stderr


def _messages(s: Session, group: ChatGroup) -> dict[str, Post]:
    return {p.external_id: p for p in s.scalars(select(Post).where(Post.group_id == group.id))}


def _group(s: Session, platform: str) -> ChatGroup:
    group = s.scalar(select(ChatGroup).where(ChatGroup.platform == platform))
    assert group is not None
    return group


def _last_run(s: Session, name: str) -> SourceRun:
    run = s.scalar(select(SourceRun).join(Source).where(Source.name == name).order_by(SourceRun.id.desc()))
    assert run is not None
    return run


def _by_floor(messages: dict[str, Post]) -> dict[str, Post]:
    """Board messages by floor id (the reply's data-pid), the opening posts by their topic title."""
    out = {}
    for ext, post in messages.items():
        out[post.title if ext.startswith("thread:") else ext.rsplit(":", 1)[1]] = post
    return out


def test_board_and_channel_become_group_messages(site: FixtureSite, fresh_db_url: str, tmp_path: Path) -> None:
    sources = _sources(tmp_path, site)
    site.reset()
    _crawl(sources)
    fetched = site.requests()
    assert {"/group/board-1.html", "/group/board-2.html", "/group/topic-7001.html",
            "/group/topic-7002.html"} <= set(fetched)  # the board's second page was followed
    assert "/group/topic-7001-2.html" in fetched  # and the second page of a topic's replies

    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        board = _group(s, "forum")
        assert (board.external_id, board.name, board.tags, board.keep_names) == (
            "name:东湾村村民交流区", "东湾村村民交流区", ["东湾村", "村"], False)
        messages = _messages(s, board)
        floors = _by_floor(messages)
        assert len(messages) == 8 and all(p.channel == "chat" for p in messages.values())
        water, market = floors["东湾村的自来水是不是被污染了？"], floors["周六的集市还开不开？"]
        assert water.published_at == dt.datetime(2026, 11, 27, 19, 5, tzinfo=SHANGHAI)
        # replies link to the floor they quote, else to their topic's opening post
        assert floors["70012"].parent_id == floors["70011"].id
        assert floors["70022"].parent_id == floors["70021"].id
        assert {floors[f].parent_id for f in ("70011", "70013", "70015")} == {water.id}
        assert floors["70021"].parent_id == market.id and water.parent_id is None
        # the quote itself is not part of the reply's text
        assert floors["70012"].raw_text == "黄水是管道维修后的铁锈，放一会儿就清了，不是污染。"
        # senders are pseudonyms, stable per user id: 东湾村老王 (u1001) opened 7001 and replied in 7002
        assert water.author == floors["70021"].author and water.author.startswith("用户")
        assert len({p.author for p in messages.values()}) == 6
        assert "QQ：27******28" in floors["70013"].raw_text and "138****5678" in floors["70013"].raw_text

        run = _last_run(s, "东湾村村民交流区")
        assert (run.items_new, run.items_dropped) == (8, 1)  # the malformed floor: skipped, counted
        assert any("第 4 条回复" in e["reason"] and e["url"].endswith("/group/topic-7001.html") for e in run.errors)

        channel = _group(s, "telegram-channel")
        assert (channel.external_id, channel.name) == ("qinghe_notice", "青禾镇便民频道")
        posts = _messages(s, channel)
        assert sorted(posts) == ["301", "302", "303", "304"]
        assert posts["302"].parent_id == posts["301"].id and posts["303"].parent_id == posts["302"].id
        assert posts["304"].parent_id == posts["301"].id and posts["301"].author == posts["303"].author
        assert "139****1111" in posts["303"].raw_text

        # the per-group hourly counts of later stages see the crawled messages (hours in UTC)
        counts = hourly_counts_by_group(s, dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
                                        dt.datetime(2026, 11, 29, tzinfo=dt.UTC))
        utc = dt.UTC
        assert counts[board.id] == {dt.datetime(2026, 11, 27, 11, tzinfo=utc): 3,
                                    dt.datetime(2026, 11, 27, 12, tzinfo=utc): 1,
                                    dt.datetime(2026, 11, 27, 13, tzinfo=utc): 1,
                                    dt.datetime(2026, 11, 28, 0, tzinfo=utc): 2,
                                    dt.datetime(2026, 11, 28, 1, tzinfo=utc): 1}
        assert counts[channel.id] == {dt.datetime(2026, 11, 26, 1, tzinfo=utc): 3,
                                      dt.datetime(2026, 11, 26, 2, tzinfo=utc): 1}

    # no nickname, user id, QQ number or phone number reaches the database in clear
    everything = every_text(engine)
    for raw in NICKNAMES + RAW_IDS + RAW_NUMBERS:
        assert raw not in everything, raw
    data = sqlite_file_bytes(engine, fresh_db_url)
    if data is not None:
        for raw in NICKNAMES + RAW_NUMBERS:
            assert raw.encode("utf-8") not in data, raw

    # Crawling again stores nothing twice: unchanged pages are skipped, and with --refresh every
    # message is read again and found unchanged (same ids).
    _crawl(sources)
    _crawl(sources, "--refresh")
    with Session(engine) as s:
        assert s.query(Post).count() == 12
        assert s.query(ChatGroup).count() == 2
        refreshed = _last_run(s, "东湾村村民交流区")
        assert (refreshed.items_new, refreshed.items_unchanged) == (0, 8)
        assert _last_run(s, "青禾镇便民频道").items_new == 0
    engine.dispose()


def test_a_new_reply_on_a_later_page_of_a_known_topic_is_found(
        site: FixtureSite, fresh_db_url: str, tmp_path: Path) -> None:
    sources = _sources(tmp_path, site)
    _crawl(sources)
    # Page one of the topic stays the same; the new floor lands on its second page.
    site.add_reply(7001, 70016, "检测结果出来了，水质合格，放水几分钟就清了。", board=True)
    try:
        site.reset()
        _crawl(sources)
        fetched = site.requests()
    finally:
        site.drop_added_replies()
    assert fetched.get("/group/topic-7001.html") == 1 and fetched.get("/group/topic-7001-2.html") == 1
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        floors = _by_floor(_messages(s, _group(s, "forum")))
        assert floors["70016"].parent_id == floors["东湾村的自来水是不是被污染了？"].id
        assert (_last_run(s, "东湾村村民交流区").items_new, len(floors)) == (1, 9)
    engine.dispose()


def test_keep_names_stores_nicknames_and_a_disabled_group_takes_nothing(
        site: FixtureSite, fresh_db_url: str, tmp_path: Path) -> None:
    sources = _sources(tmp_path, site, keep_names=True)
    _crawl(sources, "--source", "东湾村村民交流区")
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        board = _group(s, "forum")
        assert board.keep_names
        floors = _by_floor(_messages(s, board))
        assert floors["东湾村的自来水是不是被污染了？"].author == "东湾村老王"
        assert floors["70013"].author == "热心的张师傅"
        assert "138****5678" in floors["70013"].raw_text  # numbers are masked whatever keep_names says
        # an admin switches the group off (console / PATCH /api/v1/groups/{id}) and deletes a message
        update_group(s, board.id, {"enabled": False})
        s.delete(floors["70015"])
        s.commit()

    _crawl(sources, "--source", "东湾村村民交流区", "--refresh")
    with Session(engine) as s:
        board = _group(s, "forum")
        assert not board.enabled  # the file does not switch it back on
        assert len(_messages(s, board)) == 7  # nothing taken while it is off
        run = _last_run(s, "东湾村村民交流区")
        assert run.status == "partial"  # pages read; only the malformed floor is an error, as before
        assert run.items_new == 0 and run.stats["skipped_group_disabled"] == 8
    engine.dispose()


def test_ensure_group_is_idempotent_and_leaves_console_settings(session: Session) -> None:
    first = ensure_group(session, platform="forum", external_id="name:石桥村论坛", name="石桥村论坛", tags=["村"])
    again = ensure_group(session, platform="forum", external_id="name:石桥村论坛", name="石桥村论坛", tags=["村"])
    assert again.id == first.id and again.tags == ["村"] and not again.keep_names
    update_group(session, first.id, {"keep_names": True, "tags": ["村", "水务"], "enabled": False})
    kept = ensure_group(session, platform="forum", external_id="name:石桥村论坛", name="石桥村论坛", tags=["学校"])
    assert kept.keep_names and not kept.enabled and kept.tags == ["学校", "村", "水务"]
    reset = ensure_group(session, platform="forum", external_id="name:石桥村论坛", name="石桥村交流区", keep_names=False)
    assert not reset.keep_names and reset.name == "石桥村交流区"
    assert session.query(ChatGroup).filter_by(platform="forum").count() == 1


@pytest.mark.db
def test_workers_creating_one_group_at_once_both_succeed(fresh_db_url: str) -> None:
    """Two crawler workers open the same group source together: each ensures the group, neither
    fails on the unique key (the select-then-insert this replaced did, once in a while)."""
    import threading

    engine = make_engine(fresh_db_url)
    ids = [f"name:并发论坛{i}" for i in range(12)]
    start = threading.Barrier(2)
    failures: list[BaseException] = []
    seen: list[list[int]] = [[], []]

    def worker(n: int) -> None:
        try:
            for ext in ids:
                start.wait(timeout=30)
                with Session(engine) as s, s.begin():
                    seen[n].append(ensure_group(s, platform="forum", external_id=ext, name=ext[5:], tags=["村"]).id)
        except BaseException as err:  # reported below, with the worker it happened in
            failures.append(err)
            start.abort()

    threads = [threading.Thread(target=worker, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    with Session(engine) as s:
        rows = list(s.scalars(select(ChatGroup).where(ChatGroup.platform == "forum")))
    engine.dispose()
    assert failures == []
    assert seen[0] == seen[1] and len(rows) == len(ids) and all(r.tags == ["村"] for r in rows)


def _group_errors(**changes: Any) -> str:
    entry = {"name": "村民论坛", "urls": ["https://bbs.example.cn/"], "interval": "10m"} | changes
    with pytest.raises(SourcesFileError) as err:
        parse_sources({"sources": [entry]})
    return str(err.value)


def test_bad_group_blocks_are_named_in_chinese() -> None:
    detail = {"body": "div.content", "published": "span.time::text"}
    html = {"kind": "html", "detail": detail}
    assert "第 1 个信息源「村民论坛」的 group.name：缺少这个必填项" in _group_errors(**html, group={"platform": "forum"})
    assert "group.platform" in _group_errors(**html, group={"name": "群", "platform": "Forum X"})
    assert "group.kep_names：不认识这个键" in _group_errors(**html, group={"name": "群", "kep_names": True})
    assert "group.keep_names：应为 true 或 false" in _group_errors(**html, group={"name": "群", "keep_names": "也许"})
    assert "group 只能用于 html 或 json" in _group_errors(kind="feed", group={"name": "群"})
    assert "detail 必须有 published" in _group_errors(kind="html", detail={"body": "div"}, group={"name": "群"})
    replies = detail | {"replies": {"each": "div.floor", "body": "div.content"}}
    assert "detail.replies 必须有 published" in _group_errors(kind="html", detail=replies, group={"name": "群"})
    message = _group_errors(kind="json", items="list", fields={"body": "text"}, group={"name": "群"})
    assert "fields 必须有 id / published" in message


def test_group_platform_defaults_by_kind() -> None:
    parsed = parse_sources({"sources": [
        source(BOARD, "http://127.0.0.1:1", "/b") | {"group": {"name": "论坛群"}},
        source(CHANNEL, "http://127.0.0.1:1", "/c?page={page}") | {"group": {"name": "频道"}},
    ]})
    board, channel = parsed.sources
    assert board.group is not None and board.group.platform == "forum" and board.group.keep_names is False
    assert channel.group is not None and channel.group.platform == "web"
    assert board.public()["group"] == {"name": "论坛群", "platform": "forum", "tags": [], "keep_names": False}
