"""A site that needs code: ``kind: custom`` with ``spider: tests.crawler.custom_spider.NoticeBoardSpider``.

The notice board lists notices as table rows (no detail pages); this spider reads the rows itself.
"""

from __future__ import annotations

from typing import Any

from scrapy.http import Response

from crawler.spiders import SourceSpider


class NoticeBoardSpider(SourceSpider):
    name = "test-notice-board"

    def parse(self, response: Response, **kwargs: Any) -> Any:
        self.page_ok(response)
        for row in response.css("table.threads tr"):
            link = row.css("a::attr(href)").get()
            title = row.css("a::text").get()
            if link and title:
                yield self.post(url=response.urljoin(link), title=title, text=f"{title}（回复 {row.css('td')[1].css('::text').get()}）")
