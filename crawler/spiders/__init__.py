"""Generic spiders driven by the sources file, and the class for each source kind.

``kind: custom`` loads ``spider: dotted.path.ClassName``, a subclass of :class:`SourceSpider`.
"""

from __future__ import annotations

from scrapy.utils.misc import load_object

from crawler.config import SourceConfig, SourcesFileError
from crawler.spiders.base import SourceSpider
from crawler.spiders.feed import FeedSpider
from crawler.spiders.html import HtmlSpider
from crawler.spiders.json_api import JsonSpider

SPIDERS: dict[str, type[SourceSpider]] = {"feed": FeedSpider, "html": HtmlSpider, "json": JsonSpider}

__all__ = ["SPIDERS", "FeedSpider", "HtmlSpider", "JsonSpider", "SourceSpider", "spider_class"]


def spider_class(source: SourceConfig) -> type[SourceSpider]:
    if source.kind != "custom":
        return SPIDERS[source.kind]
    try:
        cls = load_object(source.spider or "")
    except (ImportError, AttributeError, ValueError, NameError) as err:
        raise SourcesFileError(f"信息源「{source.name}」的 spider '{source.spider}' 无法导入：{err}") from err
    if not (isinstance(cls, type) and issubclass(cls, SourceSpider)):
        raise SourcesFileError(f"信息源「{source.name}」的 spider '{source.spider}' 必须是 "
                               "crawler.spiders.SourceSpider 的子类")
    return cls
