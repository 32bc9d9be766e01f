"""Run a crawl of some sources in this process, and (optionally) share it through Redis.

One Twisted reactor runs once per process, so a crawl is one process: `yuqing crawl` calls
:func:`run_crawl` once, and `yuqing run` starts `yuqing crawl --source NAME` as a subprocess per
source and interval (which also keeps a misbehaving site from hurting the API server).

Resume after a kill: progress lives in the database, not in a JOBDIR. Every stored detail page is
skipped by the next run (and a list stops paging when it only shows stored items), so a crawl
killed mid-run loses nothing stored and does not fetch it again. (A JOBDIR's seen-set marks a page
when it is *scheduled*, so a hard kill between fetching and storing would lose that page for good.)

Distributed (``--distributed`` with ``YUQING_REDIS_URL``): each source's request queue and duplicate
filter live in Redis under ``<YUQING_REDIS_PREFIX>:<source>:...``. The first worker of a round
takes a short lock, clears the previous round's queue and filter and pushes the start URLs (as JSON);
every worker, on any machine, then pops requests from the one queue until it has been idle for
``YUQING_CRAWL_MAX_IDLE_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from functools import lru_cache
from typing import Any

from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings as ScrapySettings

from core.settings import Settings, get_settings
from crawler.config import SourceConfig
from crawler.extensions import RESULTS, RunSummary
from crawler.spiders import SourceSpider, spider_class

log = logging.getLogger(__name__)


def scrapy_settings(settings: Settings, *, distributed: bool = False,
                    overrides: dict[str, Any] | None = None) -> ScrapySettings:
    """Scrapy settings from crawler/settings.py plus our own settings (user agent, limits, Redis)."""
    result = ScrapySettings()
    result.setmodule("crawler.settings", priority="project")
    values: dict[str, Any] = {
        "USER_AGENT": settings.user_agent,
        "AUTOTHROTTLE_ENABLED": settings.crawl_autothrottle,
        "CONCURRENT_REQUESTS": settings.crawl_concurrency,
        "DOWNLOAD_MAXSIZE": int(settings.crawl_max_page_mb * 1024 * 1024),
        "DOWNLOAD_WARNSIZE": int(settings.crawl_max_page_mb * 1024 * 1024 * 0.5),
        "YUQING_BATCH_SIZE": settings.crawl_batch_size,
        "YUQING_DATABASE_URL": settings.effective_database_url,
        "LOG_LEVEL": os.environ.get("YUQING_SCRAPY_LOG_LEVEL", "WARNING"),
    }
    if distributed:
        if not settings.redis_url:
            from crawler.config import SourcesFileError

            raise SourcesFileError("分布式抓取需要 Redis：请设置 YUQING_REDIS_URL（如 redis://127.0.0.1:6379/0）。")
        prefix = settings.redis_prefix
        values |= {
            "YUQING_DISTRIBUTED": True,
            "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_PERSIST": True,  # other workers may still be busy when one closes
            "REDIS_URL": settings.redis_url,
            "SCHEDULER_QUEUE_KEY": f"{prefix}:%(spider)s:requests",
            "SCHEDULER_DUPEFILTER_KEY": f"{prefix}:%(spider)s:dupefilter",
            "REDIS_START_URLS_KEY": f"{prefix}:%(name)s:start_urls",
            "MAX_IDLE_TIME_BEFORE_CLOSE": settings.crawl_max_idle_seconds,
        }
    # "project" priority, so a source's own settings (spider custom_settings) can override them.
    result.setdict(values, priority="project")
    result.setdict(overrides or {}, priority="cmdline")
    return result


def per_source_settings(source: SourceConfig, *, distributed: bool = False) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "ROBOTSTXT_OBEY": source.obey_robots,
        "CONCURRENT_REQUESTS_PER_DOMAIN": source.concurrency,
        "DOWNLOAD_TIMEOUT": source.timeout,
        "DOWNLOAD_DELAY": source.download_delay,
    }
    if source.autothrottle is not None:
        custom["AUTOTHROTTLE_ENABLED"] = source.autothrottle
    if distributed:
        # The engine takes requests from the scheduler while the downloader has room (16 by
        # default), so a worker would hoard the shared queue: take only what it can fetch now.
        custom["CONCURRENT_REQUESTS"] = source.concurrency
    return custom


@lru_cache(maxsize=1)
def _distributed_mixin() -> type:
    """The mixin that feeds a source spider from Redis. Built on first use: scrapy-redis is the
    optional ``distributed`` extra (``pip install 'yuqing[distributed]'``)."""
    try:
        from scrapy_redis.spiders import RedisMixin
    except ImportError as err:  # pragma: no cover - depends on the installation
        from crawler.config import SourcesFileError

        raise SourcesFileError("分布式抓取需要 scrapy-redis：请运行 pip install 'yuqing[distributed]'。") from err

    class _Distributed(RedisMixin):
        """Mixed in front of a source spider: requests come from the shared Redis queue."""

        source: SourceConfig

        @classmethod
        def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
            spider = super().from_crawler(crawler, *args, **kwargs)
            spider.setup_redis(crawler)
            spider.seed_round(crawler.settings)
            # RedisMixin counts idle time from a class attribute set at import, and resets it only when
            # start URLs wait in Redis: count from the last response instead, so a busy worker stays.
            spider.spider_idle_start_time = int(time.time())
            crawler.signals.connect(spider._touch, signal=signals.response_received)
            crawler.signals.connect(spider._touch, signal=signals.spider_opened)
            return spider

        def _touch(self, *args: Any, **kwargs: Any) -> None:
            self.spider_idle_start_time = int(time.time())

        async def start(self) -> Any:
            # Nothing from start_urls: the idle handler of RedisMixin pulls start requests from Redis.
            return
            yield  # pragma: no cover - makes this an async generator

        def seed_round(self, settings: Any) -> bool:
            """The first worker of a round clears the last round's state and pushes the start URLs."""
            prefix = get_settings().redis_prefix
            lock = f"{prefix}:{self.name}:round-lock"
            ttl = max(30, min(self.source.interval // 2, 3600))
            if not self.server.set(lock, os.getpid(), nx=True, ex=ttl):
                return False
            names = {"spider": self.name}
            self.server.delete(settings.get("SCHEDULER_QUEUE_KEY") % names,
                               settings.get("SCHEDULER_DUPEFILTER_KEY") % names, self.redis_key)
            for url, meta in self.initial():
                self.server.rpush(self.redis_key, json.dumps({"url": url, "meta": meta}, ensure_ascii=False))
            log.info("source %r: seeded a new distributed round (%s)", self.name, self.redis_key)
            return True

        def make_request_from_data(self, data: bytes) -> Any:
            payload = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
            return self.start_request(payload["url"], payload.get("meta") or {})

    return _Distributed


def distributed_class(cls: type[SourceSpider]) -> type[SourceSpider]:
    return type(f"Distributed{cls.__name__}", (_distributed_mixin(), cls), {})


def run_crawl(sources: list[SourceConfig], *, refresh: bool = False, distributed: bool = False,
              overrides: dict[str, Any] | None = None) -> list[RunSummary]:
    """Crawl the given sources concurrently in this process; returns one summary per source.

    Can be called once per process (Twisted's reactor cannot be restarted).
    """
    settings = get_settings()
    scrapy_level = os.environ.get("YUQING_SCRAPY_LOG_LEVEL", "WARNING")
    logging.getLogger("scrapy").setLevel(scrapy_level)
    process = CrawlerProcess(scrapy_settings(settings, distributed=distributed,
                                             overrides={"LOG_INSTALL_ROOT_HANDLER": False} | (overrides or {})))
    # Scrapy's own logging set-up leaves its loggers at the root level; keep them at LOG_LEVEL.
    logging.getLogger("scrapy").setLevel(process.settings.get("LOG_LEVEL", "WARNING"))
    RESULTS.clear()
    for source in sources:
        base = spider_class(source)
        cls = distributed_class(base) if distributed else base
        custom = dict(getattr(base, "custom_settings", None) or {}) | per_source_settings(source, distributed=distributed)
        spidercls = type(cls.__name__, (cls,), {"custom_settings": custom})
        process.crawl(spidercls, source=source, refresh=refresh)
    process.start()
    return [RESULTS.get(s.name) or RunSummary(source=s.name, status="failed",
                                              errors=[{"url": None, "reason": "爬虫未能启动（见日志）"}])
            for s in sources]
