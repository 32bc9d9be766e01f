"""RSS and Atom feeds, with ETag / Last-Modified and a content hash so unchanged feeds cost nothing."""

from __future__ import annotations

import hashlib
from typing import Any

import feedparser
import scrapy
from parsel import Selector
from scrapy.http import Response, TextResponse

from crawler.dates import parse_published
from crawler.extract import visible_text
from crawler.items import FetchMark
from crawler.spiders.base import SourceSpider


def _html_to_text(value: str | None) -> str:
    if not value:
        return ""
    if "<" not in value:
        return value.strip()
    return visible_text(Selector(text=f"<div>{value}</div>").css("div")[0])


class FeedSpider(SourceSpider):
    name = "yuqing-feed"
    kind = "feed"

    def initial(self) -> list[tuple[str, dict[str, Any]]]:
        return [(url, {"feed": True, "conditional": True, "page": 1}) for url in self.source.urls]

    def start_request(self, url: str, meta: dict[str, Any]) -> scrapy.Request:
        meta = {**meta, "handle_httpstatus_list": [304]}
        return scrapy.Request(url, callback=self.parse, errback=self.on_error, meta=meta, dont_filter=True)

    def parse(self, response: Response, **kwargs: Any) -> Any:
        url = response.request.url if response.request is not None else response.url
        if response.status == 304:
            self.page_ok(response)
            self.crawler.stats.inc_value("yuqing/not_modified")
            return
        digest = hashlib.sha256(response.body).hexdigest()
        known = self.known.fetch.get(url)
        if not self.refresh and known and known[2] == digest:
            self.page_ok(response)
            self.crawler.stats.inc_value("yuqing/not_modified")
            return
        headers = {k.decode("latin-1").lower(): v[0].decode("latin-1") for k, v in response.headers.items() if v}
        # feedparser reads the XML's own encoding; an `encoding:` override in the source wins.
        data: bytes | str = response.text if self.source.encoding and isinstance(response, TextResponse) \
            else response.body
        parsed = feedparser.parse(data, response_headers=headers)
        if not parsed.entries and (parsed.bozo or not parsed.get("version")):
            reason = getattr(parsed, "bozo_exception", None)
            self.record_error(url, f"不是有效的 RSS/Atom 订阅：{reason or '没有条目'}", kind="page")
            return
        self.page_ok(response)
        fresh = 0
        for entry in parsed.entries:
            link = entry.get("link")
            ident = entry.get("id") or link
            if (link and self.is_known_url(link)) or (not self.refresh and ident in self.known.external_ids):
                self.crawler.stats.inc_value("yuqing/known_skipped")
                continue
            content = entry.get("content")
            body = _html_to_text(content[0].get("value") if content else entry.get("summary"))
            title = _html_to_text(entry.get("title")) or None
            if not body and not title:
                self.drop(link or url, "订阅条目没有标题也没有正文")
                continue
            fresh += 1
            published_raw = entry.get("published") or entry.get("updated")
            yield self.post(
                external_id=str(ident)[:200] if ident else None, url=link, title=title, text=body,
                author=entry.get("author"), published_at=parse_published(published_raw, tz=self.tz),
            )
        yield FetchMark(url=url, status=response.status, etag=_header(response, b"ETag"),
                        last_modified=_header(response, b"Last-Modified"), content_hash=digest)
        page = int(response.meta.get("page", 1))
        next_links = [lk.get("href") for lk in parsed.feed.get("links", []) if lk.get("rel") == "next"]
        if (fresh or not self.known.last_run_ok) and next_links and next_links[0] and page < self.source.max_pages:
            yield self.start_request(response.urljoin(next_links[0]),
                                     {"feed": True, "conditional": True, "page": page + 1})


def _header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None
