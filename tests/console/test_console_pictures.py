"""Evidence pictures in the console: a thumbnail linking to the full picture and its recognised text
(识别文字), for staff with a console session; viewers and strangers get neither."""

from __future__ import annotations

import random
import re

import pytest
from sqlalchemy.orm import Session

from bench.image_corpus import jpeg, notice
from core.images import store_image
from core.tables import PostImage


def test_staff_see_thumbnails_and_recognised_text_viewers_do_not(live, client_as) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    from nlp.images import OcrEngine, read_pending

    alert_id = live.scene.alerts["road"]
    staff = client_as("zhangmin")
    page = staff.get(f"/alerts/{alert_id}")
    post_id = int(re.findall(r'id="post-(\d+)"', page.text)[0])
    with Session(live.engine) as s:
        stored = store_image(s, jpeg(notice(random.Random(3)).image, 80))
        s.add(PostImage(post_id=post_id, position=0, ref="http://127.0.0.1/x.jpg", status="stored",
                        image_id=stored.image_id))
        s.commit()
        assert read_pending(s, OcrEngine()).read == 1

    page = staff.get(f"/alerts/{alert_id}")
    thumb = f"/api/v1/images/{stored.image_id}/thumb?size=240"
    assert thumb in page.text and f'href="/api/v1/images/{stored.image_id}"' in page.text
    assert "识别文字" in page.text and "紧急通知" in page.text and "疑似公文" in page.text
    assert "img-src 'self'" in page.headers["content-security-policy"]
    got = staff.get(thumb)
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"  # the console session is enough

    viewer = client_as("chenkz")
    assert thumb not in viewer.get(f"/alerts/{alert_id}").text
    assert viewer.get(thumb).status_code == 403
    import httpx

    assert httpx.get(live.url + thumb).status_code == 401
