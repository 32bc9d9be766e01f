"""The same picture forwarded to several groups, with different captions or none, is one matter.

Through the real interfaces: OneBot pushes with picture segments served by a loopback server, the
picture worker's fetch and OCR, `analyze`, the alert evaluation. SQLite, and PostgreSQL with
YUQING_TEST_DATABASE=postgres."""

from __future__ import annotations

import random
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts import evaluate as evaluation
from bench.image_corpus import forward, jpeg
from core.tables import Alert, AlertPost, Image, Post, PostImage
from crawler.image_fetch import fetch_pending
from nlp.images import OcrEngine, TextVerifier, read_pending
from nlp.pipeline import analyze
from tests.images.test_images import push

pytestmark = pytest.mark.db


def photo(seed: int) -> PILImage.Image:
    """A photo without any writing (a queue outside a pharmacy): only its pixels tie its copies."""
    rng = random.Random(seed)
    img = PILImage.new("RGB", (800, 600), tuple(rng.randint(90, 160) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.randint(0, 800), rng.randint(0, 500)
        d.ellipse([x, y, x + rng.randint(20, 80), y + rng.randint(40, 140)],
                  fill=tuple(rng.randint(0, 255) for _ in range(3)))
    return img.filter(ImageFilter.GaussianBlur(2))


def _fetch_and_read(session: Session, engine: OcrEngine) -> None:
    """What the picture worker does: fetch, read the new pictures, fetch the copies that waited."""
    verify = TextVerifier(engine)
    for _ in range(3):
        fetch_pending(session, verify=verify)
        read_pending(session, engine, limit=10)


def test_the_same_picture_in_three_groups_is_one_incident_and_one_alert(
    api_client: TestClient, api_engine, bot: dict, picture_server, engine_ocr: OcrEngine, rumor_model_any,
) -> None:
    base, files = picture_server
    rng = random.Random(5)
    queue = photo(1)
    files["/q1.jpg"] = jpeg(queue, 90)
    files["/q2.jpg"] = jpeg(forward(queue, "recompress+resize", rng), 50)  # forwarded: smaller, recompressed
    files["/q3.jpg"] = jpeg(forward(queue, "crop", rng), 60)  # a cropped screenshot of it
    files["/other.jpg"] = jpeg(photo(2), 90)  # another picture

    push(api_client, bot, 1, 880001, f"{base}/q1.jpg", text="城东药房门口排了几百人，听说明天要封城了，大家赶紧去囤药")
    push(api_client, bot, 2, 880002, f"{base}/q2.jpg", text="刚刚路过看到的，抢疯了，能买的赶紧买吧")
    push(api_client, bot, 3, 880003, f"{base}/q3.jpg")  # no caption at all
    push(api_client, bot, 4, 880004, f"{base}/other.jpg", text="自来水厂检修，东湾村明天停水一整天，记得提前接水")

    with Session(api_engine) as s:
        analyze(s, model=rumor_model_any, workers=0)  # the words first: the pictures are not fetched yet
        _fetch_and_read(s, engine_ocr)
        assert s.scalar(select(func.count()).select_from(Image)) == 2  # the three copies are one picture
        assert s.scalar(select(func.count()).select_from(Post).where(Post.analyzed_at.is_(None))) >= 2
        analyze(s, model=rumor_model_any, workers=0)  # again, now that the pictures are known

        incident = dict(s.execute(select(Post.external_id, Post.incident_id)).all())
        assert incident["1"] is not None
        assert incident["1"] == incident["2"] == incident["3"]
        assert incident["4"] != incident["1"]

        evaluation.evaluate(s, full=True)
        s.commit()
        evidence: dict[int, set[str]] = {}
        for alert_id, external_id in s.execute(
            select(AlertPost.alert_id, Post.external_id).join(Post, Post.id == AlertPost.post_id)
        ):
            evidence.setdefault(alert_id, set()).add(external_id)
        [alert_id] = s.scalars(select(Alert.id).where(Alert.incident_id == incident["1"]))
        assert {"1", "2", "3"} <= evidence[alert_id]  # one alert shows the picture's every group
        assert not [a for a, ids in evidence.items() if a != alert_id and ids & {"1", "2", "3"}]


def test_stickers_are_not_pictures(api_client: TestClient, api_engine, bot: dict) -> None:
    """A QQ sticker (image segment with subType 1) is sent under every matter: it is not kept,
    so it can never tie matters together; a real picture in the same message is."""
    segments = [{"type": "text", "data": {"text": "哈哈"}},
                {"type": "image", "data": {"file": "s.image", "url": "http://127.0.0.1:9/sticker.gif", "subType": 1}},
                {"type": "image", "data": {"file": "p.image", "url": "http://127.0.0.1:9/photo.jpg", "subType": 0}}]
    body = {"time": 1764036000, "post_type": "message", "message_type": "group", "message_id": 31,
            "group_id": 880031, "user_id": 1, "message": segments}
    assert api_client.post("/api/v1/ingest/onebot", json=body, headers=bot).json()["new"] == 1
    with Session(api_engine) as s:
        assert list(s.scalars(select(PostImage.ref))) == ["http://127.0.0.1:9/photo.jpg"]


def push_now(client: TestClient, headers: dict, message_id: int, group_id: int, url: str, text: str) -> None:
    """A OneBot push sent just now (the matters it founds are open to the next analysis runs)."""
    body = {"time": int(time.time()) - 600 + message_id, "post_type": "message", "message_type": "group",
            "message_id": message_id, "group_id": group_id, "user_id": 20000 + message_id,
            "message": [{"type": "text", "data": {"text": text}},
                        {"type": "image", "data": {"file": f"{message_id}.image", "url": url}}]}
    assert client.post("/api/v1/ingest/onebot", json=body, headers=headers).json()["new"] == 1


def test_a_picture_already_in_two_matters_ties_nothing(
    api_client: TestClient, api_engine, bot: dict, picture_server, rumor_model_any,
) -> None:
    """The same photo under two matters that their words keep apart (a meme, a QR code): it is
    ambiguous, and a later post showing only that photo joins neither."""
    base, files = picture_server
    files["/meme.jpg"] = jpeg(photo(7), 85)
    push_now(api_client, bot, 41, 880041, f"{base}/meme.jpg", text="自来水厂检修，东湾村明天停水一整天，记得提前接水")
    push_now(api_client, bot, 42, 880042, f"{base}/meme.jpg", text="中心小学下周起停课两周，说是有学生得了肺结核")
    with Session(api_engine) as s:
        analyze(s, model=rumor_model_any, workers=0)
        assert fetch_pending(s).counts == {"stored": 1, "duplicate": 1}
        analyze(s, model=rumor_model_any, workers=0)
        incident = dict(s.execute(select(Post.external_id, Post.incident_id)).all())
        assert None not in (incident["41"], incident["42"]) and incident["41"] != incident["42"]
    push_now(api_client, bot, 43, 880043, f"{base}/meme.jpg", text="转发")
    with Session(api_engine) as s:
        analyze(s, model=rumor_model_any, workers=0)
        assert fetch_pending(s).counts == {"duplicate": 1}
        analyze(s, model=rumor_model_any, workers=0)
        third = s.scalars(select(Post).where(Post.external_id == "43")).one()
        assert third.analyzed_at is not None and third.incident_id is None
