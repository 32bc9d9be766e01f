"""JSON APIs: ``urls`` with ``{page}``, a dotted path to the item list, and a field mapping."""

from __future__ import annotations

import json
from typing import Any

import scrapy
from scrapy.http import Response

from crawler.dates import parse_published
from crawler.extract import dotted
from crawler.spiders.base import SourceSpider


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    text = str(value).strip()
    return text or None


class JsonSpider(SourceSpider):
    name = "yuqing-json"
    kind = "json"

    def initial(self) -> list[tuple[str, dict[str, Any]]]:
        start = self.source.page_start
        return [(url.replace("{page}", str(start)), {"template": url, "page": start})
                for url in self.source.urls]

    def parse(self, response: Response, **kwargs: Any) -> Any:
        try:
            data = json.loads(response.body)
        except ValueError as err:
            self.record_error(response.url, f"不是有效的 JSON：{err}", kind="page")
            return
        rows = dotted(data, self.source.items)
        if not isinstance(rows, list):
            self.record_error(response.url, f"路径 '{self.source.items}'（items）没有找到列表", kind="selector")
            return
        self.page_ok(response)
        fields = self.source.fields or {}
        fresh = 0
        for row in rows:
            ident = _text(dotted(row, fields.get("id")))
            link = _text(dotted(row, fields.get("url")))
            if link:
                link = response.urljoin(link)
            if not self.refresh and ((ident and ident in self.known.external_ids)
                                     or (not ident and link and self.is_known_url(link))):
                self.crawler.stats.inc_value("yuqing/known_skipped")
                continue
            title, body = _text(dotted(row, fields.get("title"))), _text(dotted(row, fields.get("body")))
            if not title and not body:
                self.drop(link or response.url, f"条目 {ident or '?'} 没有标题也没有正文")
                continue
            published_raw = dotted(row, fields.get("published"))
            published = parse_published(published_raw, tz=self.tz)
            if self.is_group and published is None:
                self.drop(link or response.url, f"条目 {ident or '?'} 的发送时间 '{published_raw or ''}' 缺失或无法识别")
                continue
            fresh += 1
            yield self.post(
                external_id=ident, url=link, title=title, text=body or "",
                author=_text(dotted(row, fields.get("author"))),
                author_id=_text(dotted(row, fields.get("author_id"))), published_at=published,
                parent_external_id=_text(dotted(row, fields.get("parent_id"))),
            )
        template, page = response.meta.get("template"), int(response.meta.get("page", 1))
        if not rows or (fresh == 0 and self.known.last_run_ok):
            if rows:
                self.crawler.stats.inc_value("yuqing/stopped_at_known")
            return
        if template and "{page}" in template and page + 1 < self.source.page_start + self.source.max_pages:
            nxt = template.replace("{page}", str(page + 1))
            yield scrapy.Request(nxt, callback=self.parse, errback=self.on_error,
                                 meta={"template": template, "page": page + 1})
