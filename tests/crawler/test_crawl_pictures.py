"""A crawled page's pictures: fetched by the crawl (Scrapy's FilesPipeline), stored once and read."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.settings import get_settings
from core.tables import Image, Post, PostImage
from crawler.image_fetch import fetch_pending
from tests.crawler.conftest import NEWS, FixtureSite, run_crawl, source, write_sources


def test_a_pages_picture_is_fetched_stored_and_read(site: FixtureSite, fresh_db_url: str, tmp_path: Path) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    from nlp.images import OcrEngine, read_pending

    pics = source(NEWS, site.base, "/pics/list.html", name="图片测试站", max_pages=1,
                  detail=NEWS["detail"] | {"images": "div.article-body img::attr(src)"})
    site.reset()
    result = run_crawl("--sources", str(write_sources(tmp_path / "s.yaml", pics)), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert site.requests().get("/pics/notice-1.jpg") == 1  # fetched by the crawl, once

    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        ref = s.scalars(select(PostImage)).one()  # the data: URI is not a picture address
        assert ref.status == "pending" and ref.ref.startswith("file://")
        downloaded = Path(ref.ref.removeprefix("file://"))
        assert downloaded.is_file() and get_settings().data_dir.resolve() in downloaded.resolve().parents
        assert fetch_pending(s).counts == {"stored": 1}
        assert not downloaded.exists()  # the crawl's copy goes once the picture is stored
        assert read_pending(s, OcrEngine()).read == 1
        post = s.scalars(select(Post)).one()
        assert post.image_text and "提前放假的紧急通知" in post.image_text
        assert s.scalars(select(Image)).one().is_document
    engine.dispose()
