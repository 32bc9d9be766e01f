"""A top rumor spread as a picture: the digest mail shows a small thumbnail of it (an inline CID
JPEG, what phone mail apps display), the text part says [图片]. Through a real SMTP server."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.image_corpus import jpeg, notice
from core.images import store_image
from core.tables import AlertPost, PostImage
from digest.service import send_day
from tests.digest.scenario import DAY, BusyDay
from tests.digest.smtp import SmtpServer
from tests.digest.test_digest_send import NOW, _settings


def test_a_rumor_picture_arrives_as_a_small_inline_thumbnail(
        db: Session, busy_day: BusyDay, smtp_server: SmtpServer, tmp_path: Path) -> None:
    rumor = busy_day.alerts["a1"]  # 东湾村要封村？: its evidence posts carry a fake notice
    picture = store_image(db, jpeg(notice(random.Random(3)).image, 85))
    evidence = list(db.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == rumor.id)))
    for post_id in evidence:
        db.add(PostImage(post_id=post_id, position=0, ref=f"file:///export/{post_id}.jpg", status="stored",
                         image_id=picture.image_id, created_at=NOW))
    db.commit()

    (outcome,) = send_day(db, DAY, settings=_settings(tmp_path, smtp_server), now=NOW)
    assert outcome.status == "sent", outcome.message
    (msg,) = smtp_server.inbox.messages
    html = msg.get_body(preferencelist=("html",)).get_content()
    text = msg.get_body(preferencelist=("plain",)).get_content()
    related = msg.get_payload()[1]
    jpegs = [p for p in related.iter_parts() if p.get_content_type() == "image/jpeg"]
    assert len(jpegs) == 1  # the one rumor with a picture; the others have none
    (thumb,) = jpegs
    cid = thumb["Content-ID"].strip("<>")
    assert thumb.get_content_disposition() == "inline"
    with PILImage.open(io.BytesIO(thumb.get_content())) as small:
        assert max(small.size) <= 240 and small.format == "JPEG"
    assert len(thumb.get_content()) < 40_000
    # The thumbnail sits with its rumor, links to the alert in the console, and is the only data
    # the mail carries inline (no data: URI).
    block = html[html.index("东湾村要封村"):]
    assert block.index(f'src="cid:{cid}"') < block.index("南坪村")
    assert re.search(rf'<a href="[^"]*{rumor.id}[^"]*"><img src="cid:{re.escape(cid)}"', html)
    assert "data:" not in html
    lines = text.splitlines()
    assert any("东湾村要封村" in ln and ln.endswith("[图片]") for ln in lines)
    assert not any("南坪村" in ln and "[图片]" in ln for ln in lines)
