"""Records every crawl of a source in ``source_runs``: pages, items new/updated/dropped, errors.

Status: ``ok`` (no errors), ``partial`` (errors, but pages were read), ``failed`` (not one page of
the source could be read, or its posts could not be written), ``interrupted`` (stopped on purpose
before the end: Ctrl+C or SIGTERM, which Scrapy turns into a graceful close with reason "shutdown").
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from crawler import service
from crawler.pipelines import crawler_engine

log = logging.getLogger(__name__)

#: The error recorded for a crawl stopped on purpose (what was stored stays; the next run goes on).
INTERRUPTED_REASON = "已中断：抓取在结束前被停止（Ctrl+C 或停止服务），已入库的内容保留，下次运行继续。"


@dataclass
class RunSummary:
    """What one source's crawl did; printed by `yuqing crawl` and stored in source_runs."""

    source: str
    status: str = "running"
    run_id: int | None = None
    pages_fetched: int = 0
    items_new: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    items_dropped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


#: Summaries of the crawls of this process, by source name (one reactor run per process).
RESULTS: dict[str, RunSummary] = {}


def classify(pages_ok: int, errors: int, spilled: int, *, distributed: bool = False) -> str:
    if distributed and pages_ok == 0 and not errors:
        return "ok"  # the other workers took all the work
    if pages_ok == 0:
        return "failed"
    # posts spilled during a database outage are safe on disk and written by the next run:
    # the source was read, so the run is partial, not failed
    return "partial" if errors or spilled else "ok"


class RunRecorder:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.run_id: int | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunRecorder:
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        worker = f"{socket.gethostname()}:{os.getpid()}"
        engine = crawler_engine(self.crawler)
        try:
            with Session(engine) as session, session.begin():
                self.run_id = service.start_run(session, spider.source, stats={
                    "worker": worker, "refresh": spider.refresh,
                    "distributed": bool(self.crawler.settings.getbool("YUQING_DISTRIBUTED"))})
        except DBAPIError as err:
            log.error("source %r: could not record the run start: %s", spider.source.name, err)
        finally:
            engine.dispose()

    def spider_closed(self, spider: Any, reason: str) -> None:
        stats = self.crawler.stats
        get = stats.get_value
        pages_ok = int(get("yuqing/pages_ok", 0))
        status = classify(pages_ok, len(spider.run_errors), int(get("yuqing/spilled", 0)),
                          distributed=self.crawler.settings.getbool("YUQING_DISTRIBUTED"))
        errors = list(spider.run_errors)
        if reason == "shutdown":  # a signal asked Scrapy to stop: the run is cut short, not broken
            status = "interrupted"
            errors.append({"url": None, "reason": INTERRUPTED_REASON, "kind": "run"})
        summary = RunSummary(
            source=spider.source.name,
            run_id=self.run_id,
            status=status,
            pages_fetched=int(get("response_received_count", 0)) - int(get("robotstxt/response_count", 0)),
            items_new=int(get("yuqing/items_new", 0)),
            items_updated=int(get("yuqing/items_updated", 0)),
            items_unchanged=int(get("yuqing/items_unchanged", 0)),
            items_dropped=int(get("yuqing/items_dropped", 0)),
            errors=errors,
        )
        summary.stats = {
            "finish_reason": reason,
            "pages_ok": pages_ok,
            "requests": int(get("downloader/request_count", 0)),
            "known_skipped": int(get("yuqing/known_skipped", 0)),
            "not_modified": int(get("yuqing/not_modified", 0)),
            "stopped_at_known": int(get("yuqing/stopped_at_known", 0)),
            "robots_forbidden": int(get("yuqing/robots_forbidden", 0)),
            "robots_forbidden_urls": spider.robots_skipped,
            "retries": int(get("retry/count", 0)),
            "db_retries": int(get("yuqing/db_retries", 0)),
            "encoding_detected": int(get("yuqing/encoding_detected", 0)),
            "errors_total": int(get("yuqing/errors", 0)),
            "spilled": int(get("yuqing/spilled", 0)),
            "skipped_group_disabled": int(get("yuqing/skipped_group_disabled", 0)),
        }
        RESULTS[spider.source.name] = summary
        if self.run_id is None:
            return
        engine = crawler_engine(self.crawler)
        try:
            with Session(engine) as session, session.begin():
                service.finish_run(
                    session, self.run_id, status=summary.status, pages_fetched=summary.pages_fetched,
                    items_new=summary.items_new, items_updated=summary.items_updated,
                    items_unchanged=summary.items_unchanged, items_dropped=summary.items_dropped,
                    errors=summary.errors, stats=summary.stats)
        except DBAPIError as err:
            log.error("source %r: could not record the run result: %s", spider.source.name, err)
        finally:
            engine.dispose()
