"""The item pipeline: posts reach the database through core.ingest, in batches.

A batch is written every ``YUQING_BATCH_SIZE`` items, every ``YUQING_FLUSH_SECONDS`` and at close,
in one transaction together with the fetch marks of the responses the posts came from. A database
error (OperationalError, a dropped connection) is retried with backoff; if the database stays
away, the batch stays in memory and is tried again, and at close it is spilled to a JSON-lines
file under ``<data_dir>/crawl-spill/`` that the next run of the source writes first. Nothing is
dropped silently: every rejected item is counted and reported with its URL and reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from twisted.internet import task
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThread

from core.db import make_engine
from core.ingest import canonical_url, ingest_posts, link_orphans
from core.settings import get_settings
from core.spill import seal, unseal
from crawler import service
from crawler.items import FetchMark

log = logging.getLogger(__name__)
_MARK = "__fetch_mark__"


def database_url(crawler: Crawler) -> str:
    return crawler.settings.get("YUQING_DATABASE_URL") or get_settings().effective_database_url


def crawler_engine(crawler: Crawler) -> Engine:
    """An engine for this crawl. ``YUQING_DB_LOCK_TIMEOUT_MS`` bounds how long a write waits for a
    lock (SQLite busy timeout, PostgreSQL lock_timeout); the default waits 30 s / forever."""
    engine = make_engine(database_url(crawler))
    wait_ms = crawler.settings.getint("YUQING_DB_LOCK_TIMEOUT_MS", 0)
    if wait_ms:
        statement = (f"PRAGMA busy_timeout={wait_ms}" if engine.dialect.name == "sqlite"
                     else f"SET lock_timeout = {wait_ms}")

        def _bound(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(statement)
            cur.close()
            if engine.dialect.name == "postgresql":
                dbapi_conn.commit()

        event.listen(engine, "connect", _bound)
    return engine


def _is_transient(err: Exception) -> bool:
    return isinstance(err, OperationalError) or (isinstance(err, DBAPIError) and err.connection_invalidated)


class _WriteFailed(Exception):
    """Every attempt of a batch write failed on a transient database error."""

    def __init__(self, last: Exception | None) -> None:
        super().__init__(str(last))
        self.last = last


def _reactor_running() -> bool:
    from twisted.internet import reactor

    return bool(getattr(reactor, "running", False))


def _jsonable(item: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in item.items()}


class IngestPipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        s = crawler.settings
        self.batch_size = s.getint("YUQING_BATCH_SIZE", 100)
        self.flush_seconds = s.getfloat("YUQING_FLUSH_SECONDS", 2.0)
        self.attempts = s.getint("YUQING_DB_ATTEMPTS", 5)
        self.retry_seconds = s.getfloat("YUQING_DB_RETRY_SECONDS", 0.5)
        self.spill_dir = Path(s.get("YUQING_SPILL_DIR") or get_settings().data_dir / "crawl-spill")
        self.posts: list[dict[str, Any]] = []
        self.marks: list[FetchMark] = []
        self.replayed: list[Path] = []
        self.failed_since: int = 0  # items added since the last failed flush (wait a batch before retrying)
        self.engine: Engine | None = None
        self._loop: task.LoopingCall | None = None
        self._last_flush = time.monotonic()
        self._writing: Deferred[bool] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> IngestPipeline:
        return cls(crawler)

    # ------------------------------------------------------------------ scrapy hooks

    def open_spider(self) -> None:
        self.engine = crawler_engine(self.crawler)
        self._replay_spills()
        if self.posts or self.marks:
            # stored before the spider asks for anything: a page whose posts were spilled is then
            # known, and not fetched again
            self.flush()
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(self.flush_seconds, now=False)

    def process_item(self, item: Any) -> Any:
        if isinstance(item, FetchMark):
            self.marks.append(item)
        else:
            self.posts.append(dict(item))
            self.failed_since += 1
        if len(self.posts) >= self.batch_size and (self.failed_since >= self.batch_size or not self._failing):
            self._flush_soon()
        return item

    def _flush_soon(self) -> None:
        if _reactor_running():
            self.flush_in_thread()
        else:  # driven by hand (tests, tools): no thread pool to hand the write to
            self.flush()

    def close_spider(self) -> Any:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if _reactor_running() and self._writing is not None:
            # let the write in flight finish (on its thread) before the last, blocking one
            return self._writing.addBoth(lambda _: self._close())
        self._close()
        return None

    def _close(self) -> None:
        ok = self.flush()
        if not ok and (self.posts or self.marks):
            self._spill()
        if self.engine is not None:
            try:
                with Session(self.engine) as session, session.begin():
                    link_orphans(session)
            except DBAPIError as err:
                log.warning("link_orphans failed: %s", err)
            self.engine.dispose()

    # ------------------------------------------------------------------ internals

    _failing = False

    @property
    def spider(self) -> Any:
        return self.crawler.spider

    def _tick(self) -> None:
        if (self.posts or self.marks) and time.monotonic() - self._last_flush >= self.flush_seconds:
            self._flush_soon()

    def flush(self) -> bool:
        """Write what is buffered, here and now (blocking: at close, and when no reactor runs);
        True when the buffer is empty afterwards."""
        if not self.posts and not self.marks:
            return True
        posts, marks = list(self.posts), list(self.marks)
        try:
            result = self._write(posts, marks)
        except _WriteFailed as failed:
            self._failed(len(posts), failed.last)
            return False
        self._written(posts, marks, result)
        return True

    def flush_in_thread(self) -> Deferred[bool]:
        """Write what is buffered on a thread of the reactor's pool: the retries and their sleeps
        happen there, so a database outage does not stop the crawl (the reactor keeps fetching,
        the buffer keeps filling). One write at a time, in order; the Deferred fires with flush()'s
        answer."""
        if self._writing is not None:
            return self._writing
        if not self.posts and not self.marks:
            return succeed(True)
        posts, marks = list(self.posts), list(self.marks)

        def done(result: Any) -> bool:
            self._writing = None
            self._written(posts, marks, result)
            return True

        def failed(failure: Any) -> bool:
            self._writing = None
            if not failure.check(_WriteFailed):
                failure.raiseException()
            self._failed(len(posts), failure.value.last)
            return False

        self._writing = deferToThread(self._write, posts, marks).addCallbacks(done, failed)
        return self._writing

    def _write(self, posts: list[dict[str, Any]], marks: list[FetchMark]) -> Any:
        """One batch in one transaction, retried with backoff on a transient database error; runs
        on any thread (it touches no Scrapy state but the thread-safe stats)."""
        assert self.engine is not None
        name = self.spider.source.name
        last_error: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                with Session(self.engine) as session, session.begin():
                    result = ingest_posts(session, posts)
                    if marks:
                        service.record_fetches(session, marks, service.source_id(session, name))
                return result
            except DBAPIError as err:
                if not _is_transient(err):
                    raise
                last_error = err
                self.crawler.stats.inc_value("yuqing/db_retries")
                log.warning("source %r: database write failed (attempt %d/%d, %d posts kept): %s",
                            name, attempt, self.attempts, len(posts), err.orig)
                if attempt < self.attempts:
                    time.sleep(self.retry_seconds * 2 ** (attempt - 1))
        raise _WriteFailed(last_error)

    def _failed(self, count: int, last_error: Exception | None) -> None:
        self._failing = True
        self.failed_since = 0
        self._last_flush = time.monotonic()
        self.spider.record_error(None, f"数据库写入失败（已重试 {self.attempts} 次），{count} 条暂存待重试："
                                       f"{getattr(last_error, 'orig', last_error)}", kind="database")

    def _written(self, posts: list[dict[str, Any]], marks: list[FetchMark], result: Any) -> None:
        stats = self.crawler.stats
        self._failing = False
        self._last_flush = time.monotonic()
        del self.posts[:len(posts)]
        del self.marks[:len(marks)]
        stats.inc_value("yuqing/items_new", result.new)
        stats.inc_value("yuqing/items_updated", result.updated)
        stats.inc_value("yuqing/items_unchanged", result.unchanged)
        stats.inc_value("yuqing/batches")
        for rejected in result.rejected:
            item = posts[rejected.index]
            stats.inc_value("yuqing/items_dropped")
            self.spider.record_error(item.get("url") or rejected.key, f"入库被拒：{rejected.reason}", kind="item")
        for path in self.replayed:
            path.unlink(missing_ok=True)
        self.replayed.clear()

    def _spill_path(self) -> Path:
        digest = hashlib.sha1(self.spider.source.name.encode()).hexdigest()[:12]
        return self.spill_dir / f"{digest}-{int(time.time() * 1000)}.jsonl"

    def _spill(self) -> None:
        path = self._spill_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Sealed (encrypted under the instance secret): the posts are not masked yet. The fetch
        # marks go too, so the next run does not fetch again the pages whose posts are here.
        with path.open("w", encoding="utf-8") as fh:
            for post in self.posts:
                fh.write(seal(_jsonable(post)) + "\n")
            for mark in self.marks:
                fh.write(seal({_MARK: asdict(mark)}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for old in self.replayed:  # their posts are in the new file now
            old.unlink(missing_ok=True)
        self.spider.record_error(None, f"数据库不可用：{len(self.posts)} 条已暂存到 {path}，下次运行时自动补写",
                                 kind="database")
        self.crawler.stats.set_value("yuqing/spilled", len(self.posts))
        log.error("source %r: %d posts spilled to %s", self.spider.source.name, len(self.posts), path)

    def _replay_spills(self) -> None:
        digest = hashlib.sha1(self.spider.source.name.encode()).hexdigest()[:12]
        if not self.spill_dir.exists():
            return
        for path in sorted(self.spill_dir.glob(f"{digest}-*.jsonl")):
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    # plain JSON lines: a spill written before spills were sealed
                    record = json.loads(line) if line.startswith("{") else unseal(line.strip())
                    if _MARK in record:
                        self.marks.append(FetchMark(**record[_MARK]))
                    else:
                        self.posts.append(record)
                        # the spider loaded its known pages before this replay: add these
                        if record.get("url"):
                            self.spider.known.urls.add(canonical_url(record["url"]))
                        if record.get("external_id"):
                            self.spider.known.external_ids.add(str(record["external_id"]))
            self.replayed.append(path)
            self.crawler.stats.inc_value("yuqing/replayed_from_spill", 1)
            log.info("source %r: replaying spilled posts from %s", self.spider.source.name, path)
