"""HTML sites: list pages (with pagination) lead to detail pages; a thread page may carry replies."""

from __future__ import annotations

import hashlib
from typing import Any

import scrapy
from scrapy.http import Response, TextResponse

from core.ingest import canonical_url
from crawler.dates import parse_published
from crawler.extract import all_values, first_text, select
from crawler.items import FetchMark
from crawler.spiders.base import SourceSpider, text_hash


class HtmlSpider(SourceSpider):
    name = "yuqing-html"
    kind = "html"

    def initial(self) -> list[tuple[str, dict[str, Any]]]:
        role = "list" if self.source.list_ is not None else "detail"
        return [(url, {"role": role, "page": 1}) for url in self.source.urls]

    def start_request(self, url: str, meta: dict[str, Any]) -> scrapy.Request:
        if meta.get("role") == "detail":
            return scrapy.Request(url, callback=self.parse_detail, errback=self.on_error, meta=meta,
                                  dont_filter=True)
        return super().start_request(url, meta)

    # ------------------------------------------------------------------ list pages

    def parse(self, response: Response, **kwargs: Any) -> Any:
        if not isinstance(response, TextResponse):
            self.record_error(response.url, "不是网页（无法解析为 HTML）")
            return
        lst = self.source.list_
        if lst is None:  # start URLs are detail pages
            yield from self.parse_detail(response)
            return
        self.page_ok(response)
        page = int(response.meta.get("page", 1))
        links = [response.urljoin(link) for link in all_values(response, lst.item_links)]
        if not links:
            self.record_error(response.url, f"选择器 '{lst.item_links}'（list.item_links）在第 {page} 页没有匹配到任何链接",
                              kind="selector")
        fresh = 0
        for link in dict.fromkeys(links):
            if self.is_known_url(link):
                replies = self.source.detail.replies if self.source.detail is not None else None
                if replies is not None:
                    # A stored thread may have new replies: ask again, conditionally (ETag / hash).
                    # A thread with reply pages is asked in full: new replies land on its later
                    # pages, and only page one's body says where those are.
                    self.crawler.stats.inc_value("yuqing/threads_rechecked")
                    paged = replies.next_page is not None
                    yield scrapy.Request(link, callback=self.parse_detail, errback=self.on_error, priority=5,
                                         meta={"role": "detail", "conditional": not paged,
                                               "handle_httpstatus_list": [304]})
                else:
                    self.crawler.stats.inc_value("yuqing/known_skipped")
                continue
            fresh += 1
            yield scrapy.Request(link, callback=self.parse_detail, errback=self.on_error,
                                 meta={"role": "detail"}, priority=10)
        if links and fresh == 0 and self.known.last_run_ok:
            self.crawler.stats.inc_value("yuqing/stopped_at_known")
            return  # this page holds only known items: older pages do too
        if lst.next_page and page < self.source.max_pages:
            nxt = all_values(response, lst.next_page)
            if nxt:
                yield scrapy.Request(response.urljoin(nxt[0]), callback=self.parse, errback=self.on_error,
                                     meta={"role": "list", "page": page + 1})

    # ------------------------------------------------------------------ detail pages

    def parse_detail(self, response: Response, **kwargs: Any) -> Any:
        if not isinstance(response, TextResponse):
            self.record_error(response.url, "不是网页（无法解析为 HTML）")
            return
        detail = self.source.detail
        assert detail is not None
        self.page_ok(response)
        url = (response.meta.get("redirect_urls") or [response.url])[0]
        digest = hashlib.sha256(response.body).hexdigest()
        if response.status == 304 or self._seen_before(url, digest):
            self.crawler.stats.inc_value("yuqing/not_modified")
            if response.status != 304:
                yield from self.follow_reply_pages(response, url, page=1)
            return
        if "dataloss" in response.flags:
            self.record_error(url, "内容不完整（传输中断），已按收到的部分解析", kind="page")
        title = first_text(response, detail.title)
        body = first_text(response, detail.body)
        if body is None:
            self.record_error(url, f"选择器 '{detail.body}'（detail.body）没有匹配到内容", kind="selector")
        if detail.title and title is None:
            self.record_error(url, f"选择器 '{detail.title}'（detail.title）没有匹配到内容", kind="selector")
        published_raw = first_text(response, detail.published)
        published = parse_published(published_raw, tz=self.tz)
        if body is None and title is None:
            self.drop(url, "页面没有标题也没有正文，未入库")
        elif self.is_group and published is None:
            self.drop(url, f"帖子的发送时间 '{published_raw or ''}' 缺失或无法识别（detail.published），未入库")
        else:
            yield self.post(
                url=url, external_id=thread_id(url) if self.is_group else None, title=title, text=body or "",
                author=first_text(response, detail.author), author_id=first_text(response, detail.author_id),
                published_at=published, extra={"published_raw": published_raw} if published_raw else {},
                image_urls=picture_urls(response, detail.images) or None,
            )
        if detail.replies is not None:
            yield from self.parse_replies(response, url)
            yield _fetch_mark(response, url, digest)
            yield from self.follow_reply_pages(response, url, page=1)

    def parse_reply_page(self, response: Response, **kwargs: Any) -> Any:
        """Page 2, 3, ... of a thread: only replies (the opening post is on page one)."""
        if not isinstance(response, TextResponse):
            self.record_error(response.url, "不是网页（无法解析为 HTML）")
            return
        self.page_ok(response)
        thread_url, page = response.meta["thread_url"], int(response.meta["page"])
        digest = hashlib.sha256(response.body).hexdigest()
        if self._seen_before(response.url, digest):
            self.crawler.stats.inc_value("yuqing/not_modified")
        else:
            yield from self.parse_replies(response, thread_url, first=int(response.meta["first"]))
            yield _fetch_mark(response, response.url, digest)
        yield from self.follow_reply_pages(response, thread_url, page=page)

    def follow_reply_pages(self, response: Response, thread_url: str, *, page: int) -> Any:
        """The request for the thread's next page of replies, if the config names one."""
        cfg = self.source.detail.replies  # type: ignore[union-attr]
        if cfg is None or cfg.next_page is None or page >= self.source.max_pages:
            return
        nxt = all_values(response, cfg.next_page)
        if nxt:
            first = int(response.meta.get("first", 1)) + len(select(response, cfg.each))
            yield scrapy.Request(response.urljoin(nxt[0]), callback=self.parse_reply_page, errback=self.on_error,
                                 priority=10, meta={"role": "replies", "thread_url": thread_url,
                                                    "page": page + 1, "first": first})

    def _seen_before(self, url: str, digest: str) -> bool:
        return not self.refresh and self.known.fetch.get(url, (None, None, None))[2] == digest

    def parse_replies(self, response: Response, thread_url: str, *, first: int = 1) -> Any:
        """Each reply is its own post, linked to the reply it quotes, else to the thread.

        ``first`` is the position of the page's first reply in the whole thread (later pages
        continue the count, so an error names the same floor however the thread is paged)."""
        cfg = self.source.detail.replies  # type: ignore[union-attr]
        assert cfg is not None
        # A group's messages link by id within the group; web posts by the thread's URL key.
        thread_link = ({"parent_external_id": thread_id(thread_url)} if self.is_group
                       else {"parent_key": f"url|{canonical_url(thread_url)}"})
        prefix = f"reply:{text_hash(thread_url)}:"
        for position, node in enumerate(select(response, cfg.each), start=first):
            body = first_text(node, cfg.body)
            if not body:
                self.drop(thread_url, f"第 {position} 条回复：选择器 '{cfg.body}'（replies.body）没有匹配到内容")
                continue
            author = first_text(node, cfg.author)
            published_raw = first_text(node, cfg.published)
            published = parse_published(published_raw, tz=self.tz)
            if self.is_group and published is None:
                self.drop(thread_url, f"第 {position} 条回复：发送时间 '{published_raw or ''}' 缺失或无法识别"
                                      "（replies.published）")
                continue
            ident = (first_text(node, cfg.id) if cfg.id else None) or self.derived_id(
                thread_url, author, published_raw, body)
            quoted = first_text(node, cfg.quote) if cfg.quote else None
            yield self.post(
                url=f"{thread_url}#reply-{ident}", external_id=f"{prefix}{ident}"[:200],
                text=body, author=author, author_id=first_text(node, cfg.author_id), published_at=published,
                extra={"reply_to": thread_url, "position": position},
                **({"parent_external_id": f"{prefix}{quoted}"[:200]} if quoted else thread_link),
            )


def picture_urls(response: TextResponse, selector: str | None, limit: int = 20) -> list[str]:
    """Absolute http(s) addresses of the post's pictures (data: URIs and the like are skipped)."""
    if not selector:
        return []
    urls = [response.urljoin(u) for u in all_values(response, selector)]
    return list(dict.fromkeys(u for u in urls if u.startswith(("http://", "https://"))))[:limit]


def thread_id(thread_url: str) -> str:
    """The external id of a thread's opening post in a group (its replies point at it)."""
    return f"thread:{text_hash(canonical_url(thread_url))}"


def _fetch_mark(response: Response, url: str, digest: str) -> FetchMark:
    """Written with a thread page's posts, so the next run can ask "changed since?"."""
    return FetchMark(url=url, status=response.status, etag=_header(response, b"ETag"),
                     last_modified=_header(response, b"Last-Modified"), content_hash=digest)


def _header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None
