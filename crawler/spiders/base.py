"""The base of every yuqing spider: one source config in, posts and run statistics out."""

from __future__ import annotations

import hashlib
import logging
from typing import Any, ClassVar

import scrapy
from scrapy.crawler import Crawler
from scrapy.exceptions import (
    DownloadCancelledError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from sqlalchemy.orm import Session
from twisted.internet.defer import CancelledError
from twisted.internet.defer import TimeoutError as DeferTimeoutError
from twisted.internet.error import ConnectionRefusedError, DNSLookupError, TCPTimedOutError
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.python.failure import Failure

from core.ingest import canonical_url
from core.settings import get_settings
from crawler import service
from crawler.chats.groups import ensure_group
from crawler.chats.importer import clean_text, keyed_digest, name_group_id
from crawler.config import SourceConfig
from crawler.pipelines import crawler_engine
from crawler.service import Known

log = logging.getLogger(__name__)

MAX_ERRORS_KEPT = 200


class SourceSpider(scrapy.Spider):
    """Takes ``source`` (a SourceConfig or its dict) and ``refresh``; subclasses parse one kind."""

    name = "yuqing-source"
    kind: ClassVar[str] = ""

    def __init__(self, source: SourceConfig | dict[str, Any] | None = None, refresh: bool | str = False,
                 source_name: str | None = None, **kwargs: Any) -> None:
        if source is None and source_name:
            # `scrapy crawl yuqing-html -a source_name=青禾论坛` with YUQING_SOURCES_FILE set.
            from crawler.config import SourcesFileError, load_sources

            path = get_settings().sources_file
            if path is None:
                raise SourcesFileError("请设置 YUQING_SOURCES_FILE（信息源文件），再用 -a source_name=名称")
            source = load_sources(path).get(source_name)
        if source is None:
            raise ValueError("SourceSpider needs a source config (source=...) or -a source_name=NAME")
        self.source = source if isinstance(source, SourceConfig) else SourceConfig.model_validate(source)
        super().__init__(name=self.source.name, **kwargs)
        self.refresh = refresh in (True, "1", "true", "yes")
        self.known = Known()
        self.run_errors: list[dict[str, Any]] = []
        self.robots_skipped: list[str] = []
        self.tz = get_settings().timezone
        self.group_ref = group_ref(self.source)
        self.group_enabled = True  # read from the groups table when the crawl starts

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> SourceSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider._load_known(crawler)
        return spider

    def _load_known(self, crawler: Crawler) -> None:
        if self.refresh and self.group_ref is None:
            return
        engine = crawler_engine(crawler)
        try:
            with Session(engine) as session:
                if self.group_ref is not None:
                    # Before any message is stored: keep_names must hold for the very first one.
                    with session.begin():
                        self._ensure_group(session)
                if not self.refresh:
                    self.known = service.load_known(session, self.source.name, self.source.urls)
        finally:
            engine.dispose()

    def _ensure_group(self, session: Session) -> None:
        cfg, ref = self.source.group, self.group_ref
        assert cfg is not None and ref is not None
        group = ensure_group(session, platform=ref["platform"], external_id=ref["external_id"], name=ref["name"],
                             tags=cfg.tags,
                             keep_names=cfg.keep_names if "keep_names" in cfg.model_fields_set else None)
        self.group_enabled = group.enabled
        if not group.enabled:
            log.info("source %r: group %r is switched off; its messages are not stored", self.source.name,
                     ref["name"])

    # ------------------------------------------------------------------ start requests

    def initial(self) -> list[tuple[str, dict[str, Any]]]:
        """The start URLs with their meta; used directly, or pushed to Redis when distributed."""
        return [(url, {}) for url in self.source.urls]

    def start_request(self, url: str, meta: dict[str, Any]) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse, errback=self.on_error, meta=meta, dont_filter=True)

    async def start(self) -> Any:
        for url, meta in self.initial():
            yield self.start_request(url, meta)

    def parse(self, response: Response, **kwargs: Any) -> Any:  # pragma: no cover - subclasses
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for subclasses

    def post(self, **fields: Any) -> dict[str, Any] | None:
        """A post for core.ingest, tagged with this source; a message of the group for a group source.

        core.ingest pseudonymises the senders of group messages and masks personal numbers, the
        same as for chat imports. None (Scrapy ignores it) when an admin has switched the group
        off: like an import, a disabled group takes no new messages.
        """
        if not self.group_enabled:
            self.crawler.stats.inc_value("yuqing/skipped_group_disabled")
            return None
        item: dict[str, Any] = {"channel": "web", "source": self.source.name, "source_kind": self.source.kind}
        item.update({k: v for k, v in fields.items() if v is not None})
        if self.group_ref is not None:
            item |= {"channel": "chat", "group": self.group_ref}
            for key in ("title", "text", "author", "author_id"):
                if isinstance(item.get(key), str):
                    item[key] = clean_text(item[key])
        return item

    @property
    def is_group(self) -> bool:
        return self.group_ref is not None

    def derived_id(self, *parts: str | None) -> str:
        """An id for an item the site gives none; keyed for groups, so no nickname can be guessed from it."""
        if self.group_ref is None:
            return text_hash(*parts)
        return keyed_digest(get_settings().secret(), *(p or "" for p in parts))

    def is_known_url(self, url: str) -> bool:
        return not self.refresh and canonical_url(url) in self.known.urls

    def page_ok(self, response: Response) -> None:
        self.crawler.stats.inc_value("yuqing/pages_ok")

    def record_error(self, url: str | None, reason: str, *, kind: str = "page") -> None:
        """One error of this run, with URL and reason (kept in source_runs.errors)."""
        self.crawler.stats.inc_value("yuqing/errors")
        self.crawler.stats.inc_value(f"yuqing/errors/{kind}")
        if len(self.run_errors) < MAX_ERRORS_KEPT:
            self.run_errors.append({"url": url, "reason": reason, "kind": kind})
        log.warning("source %r: %s (%s)", self.source.name, reason, url or "-")

    def drop(self, url: str | None, reason: str) -> None:
        self.crawler.stats.inc_value("yuqing/items_dropped")
        self.record_error(url, reason, kind="item")

    def on_error(self, failure: Failure) -> None:
        """Errback: name what went wrong with which URL, in words staff understand."""
        request = getattr(failure, "request", None)
        url = request.url if request is not None else None
        if failure.check(IgnoreRequest) and "robots.txt" in str(failure.value):
            self.crawler.stats.inc_value("yuqing/robots_forbidden")
            if len(self.robots_skipped) < 50 and url:
                self.robots_skipped.append(url)
            return
        self.record_error(url, describe_failure(failure), kind="fetch")


def describe_failure(failure: Failure) -> str:
    if failure.check(HttpError):
        status = failure.value.response.status  # type: ignore[union-attr]
        return f"HTTP {status}" + ("（服务器错误，已重试）" if status >= 500 else "（页面不存在或无权访问）")
    if failure.check(TwistedTimeoutError, TCPTimedOutError, DeferTimeoutError, DownloadTimeoutError):
        return "超时：网站响应太慢（已重试）"
    if failure.check(DNSLookupError):
        return "域名解析失败：请检查网址"
    if failure.check(ConnectionRefusedError):
        return "连接被拒绝：网站可能已关闭"
    if failure.check(CancelledError, DownloadCancelledError) or "maxsize" in str(failure.value).lower():
        return f"页面太大，已放弃下载（上限 {get_settings().crawl_max_page_mb:g} MB）"
    text = str(failure.value)
    if failure.check(ResponseDataLossError):
        return "内容不完整：连接在传输中断开（已重试）"
    if failure.check(IgnoreRequest) and "redirect" in text.lower():
        return "重定向次数过多（可能是重定向循环）"
    kind = failure.type.__name__ if failure.type is not None else "Error"
    return f"{kind}: {text}"[:500]


def group_ref(source: SourceConfig) -> dict[str, str] | None:
    """The core.ingest group reference of a group source (None for other sources)."""
    cfg = source.group
    if cfg is None:
        return None
    assert cfg.platform is not None  # set from the kind when the config is validated
    return {"platform": cfg.platform, "external_id": cfg.id or name_group_id(cfg.name), "name": cfg.name}


def text_hash(*parts: str | None) -> str:
    return hashlib.sha1("|".join(p or "" for p in parts).encode("utf-8")).hexdigest()[:24]
