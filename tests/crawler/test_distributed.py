"""Two crawler processes share one queue and duplicate filter on the real Redis (scrapy-redis).

Every page is fetched exactly once across both, and every item stored exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.tables import ChatGroup, Post, SourceRun
from tests.crawler.conftest import NEWS, REPO, FixtureSite, crawl_env, source, start_site, write_sources

REDIS_URL = os.environ.get("YUQING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of our own (parallel test runs never collide); every key is removed after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as err:
        if os.environ.get("YUQING_TEST_REQUIRE_REDIS"):
            raise
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {err}")
    prefix = f"yqtest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield prefix
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    assert not list(client.scan_iter(f"{prefix}:*"))
    client.close()


@pytest.fixture
def slow_site() -> Iterator[FixtureSite]:
    """Its own fixture site with slower articles, so both workers are surely up while work remains."""
    proc, base = start_site("--delay", "0.4")
    yield FixtureSite(base)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def _crawl_with_two_workers(sources: Path, redis_prefix: str) -> None:
    """`yuqing crawl --distributed` in two processes on one Redis queue; both must succeed."""
    env = crawl_env(YUQING_REDIS_URL=REDIS_URL, YUQING_REDIS_PREFIX=redis_prefix,
                    YUQING_CRAWL_MAX_IDLE_SECONDS="3")
    cmd = [sys.executable, "-m", "yuqing.cli", "crawl", "--distributed", "--sources", str(sources)]
    workers = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=150)[0] for w in workers]
    failed = [out[-4000:] for w, out in zip(workers, outputs, strict=True) if w.returncode != 0]
    assert failed == [], "\n\n".join(failed)  # the end of each failed worker's log says why


def test_two_workers_fetch_each_page_once(slow_site: FixtureSite, fresh_db_url: str, tmp_path: Path,
                                          redis_prefix: str) -> None:
    site = slow_site
    slow = source(NEWS, site.base, "/slow-news/list-1.html", name="分布式新闻", concurrency=1, max_pages=10)
    sources = write_sources(tmp_path / "s.yaml", slow)
    site.reset()
    _crawl_with_two_workers(sources, redis_prefix)

    counts = site.requests()
    articles = {p: n for p, n in counts.items() if p.startswith("/slow-news/") and "list" not in p}
    lists = {p: n for p, n in counts.items() if p.startswith("/slow-news/list-")}
    assert len(articles) == 40 and set(articles.values()) == {1}, articles
    assert len(lists) == 4 and set(lists.values()) == {1}, lists

    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        urls = list(s.scalars(select(Post.url)))
        runs = list(s.scalars(select(SourceRun)))
    engine.dispose()
    assert len(urls) == len(set(urls)) == 40
    assert len(runs) == 2 and all(r.status == "ok" and r.stats["distributed"] for r in runs)
    assert sum(r.items_new for r in runs) == 40 and sum(r.items_unchanged for r in runs) == 0
    assert all(r.pages_fetched > 0 for r in runs), [r.pages_fetched for r in runs]  # both did work
    assert sum(r.pages_fetched for r in runs) == 44


def test_two_workers_crawl_group_pages_into_the_same_messages(site: FixtureSite, fresh_db_url: str,
                                                               tmp_path: Path, redis_prefix: str) -> None:
    """Public group boards and channels through the shared queue: each page once, each message once,
    replies still linked to the floor they quote, the malformed floor counted once."""
    from tests.crawler.test_group_pages import BOARD, CHANNEL

    sources = write_sources(tmp_path / "g.yaml", source(BOARD, site.base, "/group/board-1.html"),
                            source(CHANNEL, site.base, "/group/channel?page={page}"))
    site.reset()
    _crawl_with_two_workers(sources, redis_prefix)

    group_pages = {p: n for p, n in site.requests().items() if p.startswith("/group/")}
    assert {"/group/board-1.html", "/group/board-2.html", "/group/topic-7001.html",
            "/group/topic-7001-2.html", "/group/topic-7002.html"} <= set(group_pages)
    assert set(group_pages.values()) == {1}, group_pages

    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        groups = {g.platform: g for g in s.scalars(select(ChatGroup))}
        assert set(groups) == {"forum", "telegram-channel"}
        board = {p.external_id: p for p in s.scalars(select(Post).where(Post.group_id == groups["forum"].id))}
        channel = {p.external_id: p for p in
                   s.scalars(select(Post).where(Post.group_id == groups["telegram-channel"].id))}
        runs = list(s.scalars(select(SourceRun)))
    engine.dispose()
    assert len(board) == 8 and sorted(channel) == ["301", "302", "303", "304"]
    floor = {ext.rsplit(":", 1)[1]: p for ext, p in board.items() if not ext.startswith("thread:")}
    assert floor["70012"].parent_id == floor["70011"].id and floor["70022"].parent_id == floor["70021"].id
    assert channel["302"].parent_id == channel["301"].id and channel["303"].parent_id == channel["302"].id
    assert all(r.stats["distributed"] for r in runs)
    assert sum(r.items_new for r in runs) == 12
    # the malformed floor is skipped and counted once, by whichever worker read its page
    assert sum(r.items_dropped for r in runs) == 1
    assert sorted(r.status for r in runs if r.items_dropped) == ["partial"]
    assert all(r.status == "ok" for r in runs if not r.items_dropped), [(r.status, r.errors) for r in runs]
