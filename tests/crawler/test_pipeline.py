"""The ingest pipeline under a real database fault: the posts table locked by another connection.

Nothing is dropped: a lock that clears is retried through; a lock that stays makes the pipeline
spill its batch to a file at close, and the next run of the source writes it first.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from scrapy.utils.test import get_crawler
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.db import make_engine
from core.tables import Post
from crawler.config import SourceConfig
from crawler.items import FetchMark
from crawler.pipelines import IngestPipeline
from crawler.spiders import FeedSpider

SOURCE = SourceConfig(name="锁测试源", kind="feed", urls=["http://127.0.0.1:1/rss.xml"], interval="15m")


def _pipeline(db_url: str, spill: Path, **settings: Any) -> tuple[Any, IngestPipeline]:
    crawler = get_crawler(FeedSpider, {"YUQING_DATABASE_URL": db_url, "YUQING_SPILL_DIR": str(spill),
                                       "YUQING_DB_LOCK_TIMEOUT_MS": 50, "YUQING_DB_RETRY_SECONDS": 0.05,
                                       "YUQING_FLUSH_SECONDS": 60, **settings})
    crawler.spider = FeedSpider.from_crawler(crawler, source=SOURCE)
    crawler.stats.open_spider()
    pipeline = IngestPipeline.from_crawler(crawler)
    pipeline.open_spider()
    return crawler, pipeline


def _items(n: int) -> list[dict[str, Any]]:
    return [{"source": SOURCE.name, "source_kind": "feed", "url": f"http://127.0.0.1:1/n/{i}.html",
             "title": f"石桥村停水通知第{i}号", "text": f"石桥村第{i}次停水检修。"} for i in range(n)]


def _count(db_url: str) -> int:
    engine = make_engine(db_url)
    with Session(engine) as s:
        n = s.scalar(select(func.count()).select_from(Post)) or 0
    engine.dispose()
    return n


class _Lock:
    """Another connection holding the posts table: SQLite's whole file, or PostgreSQL's table lock."""

    def __init__(self, db_url: str) -> None:
        self.sqlite = make_url(db_url).get_backend_name() == "sqlite"
        if self.sqlite:
            self.conn: Any = sqlite3.connect(make_url(db_url).database, isolation_level=None,
                                             check_same_thread=False)
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            self.engine = make_engine(db_url)
            self.conn = self.engine.connect()
            self.conn.execute(text("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE"))

    def release(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()
        if not self.sqlite:
            self.engine.dispose()


def test_a_lock_that_clears_is_retried_through(fresh_db_url: str, tmp_path: Path) -> None:
    db_url = fresh_db_url
    crawler, pipeline = _pipeline(db_url, tmp_path / "spill", YUQING_DB_ATTEMPTS=8, YUQING_BATCH_SIZE=5)
    lock = _Lock(db_url)
    threading.Timer(0.5, lock.release).start()
    for item in _items(5):  # the fifth item triggers a batch write while the file is locked
        pipeline.process_item(item)
    pipeline.process_item(FetchMark(url=SOURCE.urls[0], status=200, etag='"abc"', content_hash="h"))
    pipeline.close_spider()
    lock.close()
    assert _count(db_url) == 5
    assert crawler.stats.get_value("yuqing/db_retries") >= 1
    assert crawler.stats.get_value("yuqing/items_new") == 5
    assert crawler.spider.run_errors == []
    assert not list((tmp_path / "spill").glob("*.jsonl"))


def test_a_lock_that_stays_spills_and_the_next_run_writes_it(fresh_db_url: str, tmp_path: Path) -> None:
    db_url = fresh_db_url
    crawler, pipeline = _pipeline(db_url, tmp_path / "spill", YUQING_DB_ATTEMPTS=2, YUQING_BATCH_SIZE=3)
    lock = _Lock(db_url)
    for item in _items(7):
        pipeline.process_item(item)
    pipeline.close_spider()
    lock.release()
    lock.close()
    assert _count(db_url) == 0
    spilled = list((tmp_path / "spill").glob("*.jsonl"))
    assert len(spilled) == 1 and len(spilled[0].read_text(encoding="utf-8").splitlines()) == 7
    assert crawler.stats.get_value("yuqing/spilled") == 7
    reasons = " ".join(e["reason"] for e in crawler.spider.run_errors)
    assert "数据库写入失败" in reasons and "已暂存" in reasons

    crawler2, again = _pipeline(db_url, tmp_path / "spill")
    again.close_spider()
    assert _count(db_url) == 7
    assert crawler2.stats.get_value("yuqing/items_new") == 7
    assert not list((tmp_path / "spill").glob("*.jsonl"))


def test_rejected_items_are_counted_and_reported(fresh_db_url: str, tmp_path: Path) -> None:
    db_url = fresh_db_url
    crawler, pipeline = _pipeline(db_url, tmp_path / "spill")
    good, empty = _items(1)[0], {"source": SOURCE.name, "url": "http://127.0.0.1:1/empty", "text": ""}
    pipeline.process_item(good)
    pipeline.process_item(empty)
    pipeline.close_spider()
    assert _count(db_url) == 1
    assert crawler.stats.get_value("yuqing/items_dropped") == 1
    assert crawler.spider.run_errors[0]["url"] == "http://127.0.0.1:1/empty"


def test_a_spill_is_sealed_and_keeps_the_fetch_marks(fresh_db_url: str, tmp_path: Path) -> None:
    """The spill holds posts before masking: sealed under the instance secret. It also holds the
    pages' fetch marks, so the run that writes it does not fetch those pages again."""
    from core.tables import FetchState
    from crawler.extensions import classify

    db_url = fresh_db_url
    _, pipeline = _pipeline(db_url, tmp_path / "spill", YUQING_DB_ATTEMPTS=1, YUQING_BATCH_SIZE=100)
    lock = _Lock(db_url)
    for item in _items(3):
        item["text"] += " 联系电话13987654323"
        pipeline.process_item(item)
    pipeline.process_item(FetchMark(url=SOURCE.urls[0], status=200, etag='"abc"', content_hash="h"))
    pipeline.close_spider()
    lock.release()
    lock.close()
    [spilled] = (tmp_path / "spill").glob("*.jsonl")
    raw = spilled.read_text(encoding="utf-8")
    assert "13987654323" not in raw and "石桥村" not in raw and len(raw.splitlines()) == 4
    assert classify(pages_ok=1, errors=0, spilled=3) == "partial"  # read fine, stored later: not failed
    _, again = _pipeline(db_url, tmp_path / "spill")
    again.close_spider()
    assert _count(db_url) == 3
    engine = make_engine(db_url)
    with Session(engine) as s:
        assert s.scalar(select(FetchState.etag).where(FetchState.url == SOURCE.urls[0])) == '"abc"'
    engine.dispose()
