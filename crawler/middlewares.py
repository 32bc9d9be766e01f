"""Downloader middlewares: conditional requests for feeds, and the right encoding for Chinese pages."""

from __future__ import annotations

from typing import Any

from scrapy import Request
from scrapy.dupefilters import RFPDupeFilter
from scrapy.http import Response, TextResponse

from crawler.encoding import declared_encoding, detect_encoding, widen


class ConditionalRequestMiddleware:
    """Adds If-None-Match / If-Modified-Since from fetch_state to requests marked ``conditional``.

    The spider accepts 304 for those requests and then stores nothing new. ``--refresh`` skips this.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> ConditionalRequestMiddleware:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        if not request.meta.get("conditional"):
            return None
        spider = self.crawler.spider
        known = getattr(spider, "known", None)
        if known is None or getattr(spider, "refresh", False):
            return None
        etag, modified, _ = known.fetch.get(request.url, (None, None, None))
        if etag:
            request.headers.setdefault(b"If-None-Match", etag.encode("latin-1", "replace"))
        if modified:
            request.headers.setdefault(b"If-Modified-Since", modified.encode("latin-1", "replace"))
        return None


class ChineseEncodingMiddleware:
    """Decode text responses correctly: source override, else declared, else detected.

    Runs after Scrapy built the TextResponse; re-creates it with an explicit encoding only when
    needed (an override, GBK/GB2312 widened to GB18030, or nothing declared at all).
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> ChineseEncodingMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        if not isinstance(response, TextResponse) or not response.body:
            return response
        source = getattr(self.crawler.spider, "source", None)
        override = getattr(source, "encoding", None)
        if override:
            return response.replace(encoding=widen(override))
        content_type = response.headers.get(b"Content-Type")
        declared = declared_encoding(response.body, content_type.decode("latin-1") if content_type else None)
        if declared:  # (widened: GBK and GB2312 read as GB18030, whatever Scrapy's w3lib chose)
            return response if response.encoding.lower() == declared.lower() else response.replace(encoding=declared)
        if request.meta.get("feed") or request.url.endswith("/robots.txt"):
            return response  # XML declares its encoding itself; feedparser reads it
        self.crawler.stats.inc_value("yuqing/encoding_detected")
        return response.replace(encoding=detect_encoding(response.body))


class ReportingDupeFilter(RFPDupeFilter):
    """Scrapy's duplicate filter, which also reports a redirect back to a page already seen.

    A redirect loop (a -> b -> a) ends at the duplicate filter, silently; staff should hear about it.
    """

    def log(self, request: Request, spider: Any) -> None:
        super().log(request, spider)
        if request.meta.get("redirect_times") and hasattr(spider, "record_error"):
            first = (request.meta.get("redirect_urls") or [request.url])[0]
            spider.record_error(first, "重定向循环：页面跳转回到已访问过的地址", kind="fetch")
