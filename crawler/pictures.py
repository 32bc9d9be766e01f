"""Pictures of crawled pages, fetched by Scrapy's own FilesPipeline.

A source's ``detail.images`` selector gives the spider ``image_urls``; this pipeline downloads
them through the crawl's downloader (so robots.txt, AutoThrottle, the per-site concurrency and
the User-Agent apply to pictures exactly as to pages), within ``YUQING_IMAGE_MAX_MB``, into
``<data_dir>/crawl-images``. The post then carries ``file://`` references that core.ingest
queues; `yuqing images work` stores each picture once (EXIF stripped, deduplicated) and deletes
the downloaded copy. A picture that fails to download is counted in the run's stats and the
post is stored without it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.pipelines.files import FilesPipeline
from scrapy.pipelines.media import MediaPipeline

from core.settings import get_settings

CRAWL_IMAGES = "crawl-images"


def crawl_images_dir() -> Path:
    return get_settings().data_dir / CRAWL_IMAGES


class PicturesPipeline(FilesPipeline):
    """FilesPipeline for ``image_urls`` -> ``images`` (file:// references for core.ingest)."""

    FILES_URLS_FIELD = "image_urls"
    FILES_RESULT_FIELD = "image_files"

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PicturesPipeline:
        store = crawler.settings.get("FILES_STORE") or str(crawl_images_dir())
        Path(store).mkdir(parents=True, exist_ok=True)
        return cls(store, crawler=crawler)

    def get_media_requests(self, item: Any, info: MediaPipeline.SpiderInfo) -> list[Request]:
        limit = int(get_settings().image_max_mb * 1024 * 1024)
        urls = item.get("image_urls") or [] if isinstance(item, dict) else []
        return [Request(u, meta={"download_maxsize": limit, "download_warnsize": 0}) for u in urls]

    def file_path(self, request: Request, response: Any = None, info: Any = None, *, item: Any = None) -> str:
        return f"{hashlib.sha1(request.url.encode('utf-8')).hexdigest()}.img"

    def item_completed(self, results: list[Any], item: Any, info: MediaPipeline.SpiderInfo) -> Any:
        if not isinstance(item, dict):
            return item
        base = Path(self.store.basedir) if hasattr(self.store, "basedir") else crawl_images_dir()
        got = [f"file://{(base / x['path']).resolve()}" for ok, x in results if ok]
        failed = sum(1 for ok, _ in results if not ok)
        if failed and self.crawler.stats is not None:
            self.crawler.stats.inc_value("yuqing/images_failed", failed)
        item.pop("image_urls", None)
        item.pop("image_files", None)
        if got:
            item["images"] = got
        return item
