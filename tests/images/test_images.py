"""Pictures in chat pushes end to end: OneBot push -> fetch from a loopback server -> store once
(EXIF gone, near-duplicates folded) -> OCR -> image_text masked and analysed with the post ->
served to staff only. SQLite, and PostgreSQL with YUQING_TEST_DATABASE=postgres."""

from __future__ import annotations

import datetime as dt
import io
import random

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import accounts
from bench.image_corpus import caption_photo, forward, jpeg, notice
from core.images import VerifyLater, images_dir, purge_orphans, store_image
from core.settings import get_settings
from core.tables import DebunkMatch, Image, Post, PostImage, PostScore
from core.textsearch import query_tokens
from crawler.image_fetch import fetch_pending, host_allowed
from nlp.debunks import import_debunks
from nlp.images import OcrEngine, TextVerifier, read_pending
from nlp.pipeline import analyze

ONEBOT = "/api/v1/ingest/onebot"
PHONE = "13912345678"


def with_gps_exif(img: PILImage.Image, quality: int = 90) -> bytes:
    """A JPEG carrying EXIF with a GPS position and a camera model (what phones write)."""
    exif = PILImage.Exif()
    exif[0x0110] = "PhoneModel X"  # Model
    exif[0x8825] = {1: "N", 2: (30.0, 15.0, 12.0), 3: "E", 4: (120.0, 10.0, 5.0)}  # GPSInfo
    out = io.BytesIO()
    img.convert("RGB").save(out, format="JPEG", quality=quality, exif=exif)
    return out.getvalue()


def push(client: TestClient, bot: dict, message_id: int, group_id: int, url: str, text: str = "") -> None:
    segments = ([{"type": "text", "data": {"text": text}}] if text else []) + [
        {"type": "image", "data": {"file": f"{message_id}.image", "url": url}}]
    body = {"time": 1764036000 + message_id, "post_type": "message", "message_type": "group",
            "message_id": message_id, "group_id": group_id, "user_id": 20000 + message_id,
            "message": segments, "sender": {"nickname": "村民"}}
    res = client.post(ONEBOT, json=body, headers=bot)
    assert res.status_code == 200 and res.json()["new"] == 1, res.text


def test_pushed_picture_is_read_masked_analysed_and_deduplicated(
    api_client: TestClient, api_engine, bot: dict, picture_server, engine_ocr: OcrEngine, rumor_model_any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, files = picture_server
    rng = random.Random(7)
    pic = notice(rng, phone=PHONE)
    files["/a.jpg"] = with_gps_exif(pic.image)
    files["/b.jpg"] = jpeg(forward(forward(pic.image, "resize", rng), "recompress", rng), 45)  # forwarded copy
    claim = pic.text.splitlines()[2]  # the notice's title: 关于……的紧急通知
    with Session(api_engine) as s:
        import_debunks(s, _debunk_csv(claim))
        s.commit()

    push(api_client, bot, 1, 880001, f"{base}/a.jpg", text="大家看看这个是真的吗")
    with Session(api_engine) as s:  # text first: analysed before any picture is read
        assert s.scalar(select(PostImage.status)) == "pending"
        analyze(s, model=rumor_model_any, workers=0)
        first_score = s.scalar(select(func.count()).select_from(PostScore))
        assert first_score == 1
        assert s.scalar(select(func.count()).select_from(DebunkMatch)) == 0

        report = fetch_pending(s, verify=TextVerifier(engine_ocr))
        assert report.counts == {"stored": 1}
        read = read_pending(s, engine_ocr, limit=10)
        assert read.read == 1 and read.documents == 1 and read.posts_changed == 1
        post = s.scalars(select(Post)).one()
        assert post.image_text and "紧急通知" in post.image_text
        assert PHONE not in post.image_text and "139****5678" in post.image_text  # masked like any text
        assert post.analyzed_at is None  # queued for analysis again, with the picture's words
        image = s.scalars(select(Image)).one()
        assert image.is_document and image.document["headline"] and image.document["issuer"]
        assert PHONE not in str(image.ocr_lines)
        image_id, image_file = image.id, image.path

        analyze(s, model=rumor_model_any, workers=0)
        post = s.scalars(select(Post)).one()
        assert post.analyzed_at is not None and "紧急通知" in (post.norm_text or "")
        assert s.scalar(select(func.count()).select_from(DebunkMatch)) == 1  # matched on the picture's text

    # The stored file carries no EXIF (no GPS, no camera).
    with PILImage.open(images_dir() / image_file) as stored:
        assert not stored.getexif() and "exif" not in stored.info

    # The same picture, forwarded (resized + recompressed) to another group: one image, read once.
    push(api_client, bot, 2, 880002, f"{base}/b.jpg")
    with Session(api_engine) as s:
        assert fetch_pending(s, verify=TextVerifier(engine_ocr)).counts == {"duplicate": 1}
        assert s.scalar(select(func.count()).select_from(Image)) == 1
        assert s.scalar(select(Image.copies)) == 2
        assert read_pending(s, engine_ocr).read == 0  # nothing new to read
        second = s.scalars(select(Post).where(Post.external_id == "2")).one()
        assert second.image_text and "紧急通知" in second.image_text and second.analyzed_at is None
        second_id = second.id
        # the copy, captionless, joins the first post's story ("now" just after the pushes, which are
        # dated November 2025: the story index holds the stories of the last days only)
        analyze(s, model=rumor_model_any, workers=0, now=dt.datetime.fromtimestamp(1764036000 + 3600, dt.UTC))
        first, second = (s.scalars(select(Post).where(Post.external_id == x)).one() for x in ("1", "2"))
        assert first.story_id is not None and second.story_id == first.story_id
        assert second.incident_id == first.incident_id is not None

    # Staff see the picture and where it spread; viewers and strangers do not.
    with Session(api_engine) as s:
        staff = _token(s, "staff")
        viewer = _token(s, "viewer")
        s.commit()
    assert api_client.get(f"/api/v1/images/{image_id}").status_code == 401
    assert api_client.get(f"/api/v1/images/{image_id}/thumb", headers=viewer).status_code == 403
    full = api_client.get(f"/api/v1/images/{image_id}", headers=staff)
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    assert full.headers["x-content-type-options"] == "nosniff"
    thumb = api_client.get(f"/api/v1/images/{image_id}/thumb?size=120", headers=staff)
    assert thumb.status_code == 200 and max(PILImage.open(io.BytesIO(thumb.content)).size) <= 120
    spread = api_client.get(f"/api/v1/images/{image_id}/spread", headers=staff).json()
    assert spread["posts"] == 2 and len(spread["groups"]) == 2
    listed = api_client.get(f"/api/v1/posts/{second_id}/images", headers=staff).json()
    assert listed[0]["image"]["image_text"] and PHONE not in str(listed)
    assert api_client.get("/api/v1/images/999999", headers=staff).status_code == 404
    # Search finds the posts by the words in their picture (neither post's own text holds them),
    # word by word, not only as a substring
    for q in (claim, " ".join(reversed(query_tokens(claim)[-2:]))):
        found = api_client.get("/api/v1/posts", params={"q": q}, headers=viewer).json()["items"]
        assert {p["id"] for p in found} >= {second_id}, (q, found)


def test_hosts_and_sizes_are_enforced(
    api_client: TestClient, api_engine, bot: dict, picture_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, files = picture_server
    files["/big.jpg"] = jpeg(caption_photo(random.Random(3)).image, 95)
    files["/not-a-picture.jpg"] = b"<html>login</html>"
    monkeypatch.setenv("YUQING_IMAGE_MAX_MB", str(len(files["/big.jpg"]) / 1024 / 1024 / 2))
    get_settings.cache_clear()
    push(api_client, bot, 1, 880001, f"{base}/big.jpg")
    push(api_client, bot, 2, 880001, f"{base}/not-a-picture.jpg")
    push(api_client, bot, 3, 880001, "http://192.0.2.1/elsewhere.jpg")  # not in YUQING_IMAGE_HOSTS
    push(api_client, bot, 4, 880001, f"{base}/gone.jpg")
    with Session(api_engine) as s:
        assert fetch_pending(s).counts == {"refused": 3, "failed": 1}
        errors = dict(s.execute(select(PostImage.ref, PostImage.error)).all())
        assert "YUQING_IMAGE_MAX_MB" in errors[f"{base}/big.jpg"]
        assert "YUQING_IMAGE_HOSTS" in errors["http://192.0.2.1/elsewhere.jpg"]
        assert "不是可读的图片" in errors[f"{base}/not-a-picture.jpg"]
        assert s.scalar(select(func.count()).select_from(Image)) == 0
        assert fetch_pending(s).counts == {}  # every reference ended; nothing is fetched twice
    get_settings.cache_clear()


def test_host_list() -> None:
    hosts = ["127.0.0.1", ".qpic.cn"]
    assert host_allowed("http://gchat.qpic.cn/x.jpg", hosts) and host_allowed("https://qpic.cn/x", hosts)
    assert not host_allowed("http://qpic.cn.evil.example/x", hosts)
    assert not host_allowed("file:///etc/passwd", hosts) and not host_allowed("http://10.0.0.1/", hosts)


def test_two_notices_on_one_template_stay_distinct_and_purge_removes_orphans(
    db_session: Session, engine_ocr: OcrEngine
) -> None:
    rng = random.Random(11)
    a, b = notice(rng), notice(rng)
    verify = TextVerifier(engine_ocr)
    first = store_image(db_session, with_gps_exif(a.image), verify=verify)
    db_session.commit()
    with pytest.raises(VerifyLater):  # same layout hash; its text is not read yet
        store_image(db_session, with_gps_exif(b.image), verify=verify)
    assert read_pending(db_session, engine_ocr).read == 1
    second = store_image(db_session, with_gps_exif(b.image), verify=verify)
    again = store_image(db_session, jpeg(forward(a.image, "crop", rng), 60), verify=verify)
    assert first.new and second.new and first.image_id != second.image_id
    assert not again.new and again.image_id == first.image_id and again.near_duplicate
    db_session.commit()
    paths = [images_dir() / p for p in db_session.scalars(select(Image.path))]
    assert all(p.is_file() for p in paths)
    assert purge_orphans(db_session) == 2  # no post refers to them
    db_session.commit()
    assert not any(p.exists() for p in paths)


def _token(session: Session, role: str) -> dict[str, str]:
    user = accounts.create_user(session, username=f"u-{role}", role=role)
    return {"Authorization": f"Bearer {accounts.create_token(session, user, 'test')}"}


def _debunk_csv(claim: str):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "debunks.csv"
    path.write_text(
        "claim,refutation,publisher,url,published_at,category\n"
        f"{claim},镇政府从未发布该通知，系伪造红头文件,镇政府,https://gov.example.cn/1,2026-11-20,其他\n",
        encoding="utf-8",
    )
    return path


def test_cq_code_and_batch_pushes_carry_picture_addresses(api_client: TestClient, api_engine, bot: dict) -> None:
    body = {"time": 1764036000, "post_type": "message", "message_type": "group", "message_id": 77,
            "group_id": 880009, "user_id": 1,
            "message": "看图[CQ:image,file=abc.image,url=https://gchat.qpic.cn/x?a=1&amp;b=2]"}
    assert api_client.post(ONEBOT, json=body, headers=bot).json()["new"] == 1
    batch = {"group": {"platform": "wechat", "external_id": "g1@chatroom"},
             "messages": [{"id": "m1", "time": "2026-11-22T10:00:00+08:00", "text": "[图片]",
                           "images": ["http://127.0.0.1:9/a.jpg"]}]}
    assert api_client.post("/api/v1/ingest/messages", json=batch, headers=bot).json()["new"] == 1
    bad = batch | {"messages": [batch["messages"][0] | {"images": ["file:///etc/passwd"]}]}
    assert api_client.post("/api/v1/ingest/messages", json=bad, headers=bot).status_code == 422  # no local files
    with Session(api_engine) as s:
        refs = sorted(s.scalars(select(PostImage.ref)))
    assert refs == ["http://127.0.0.1:9/a.jpg", "https://gchat.qpic.cn/x?a=1&b=2"]


def test_run_starts_the_picture_worker_when_pictures_wait(
    api_client: TestClient, api_engine, bot: dict, picture_server
) -> None:
    """`yuqing run`'s images.work job: a real `yuqing images work --once` subprocess reads what waits."""
    pytest.importorskip("rapidocr_onnxruntime")
    from yuqing.scheduler import collect_jobs

    base, files = picture_server
    pic = caption_photo(random.Random(21))
    files["/c.jpg"] = jpeg(pic.image, 80)
    job = next(j for j in collect_jobs(get_settings()) if j.id == "images.work")
    job.func()  # nothing waits: returns without starting a process
    push(api_client, bot, 5, 880001, f"{base}/c.jpg")
    job.func()
    with Session(api_engine) as s:
        assert s.scalar(select(PostImage.status)) == "stored"
        assert s.scalar(select(Post.image_text)) == pic.text



def test_the_picture_worker_runs_below_text_analysis(api_engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker lowers its own CPU priority (YUQING_IMAGE_WORKER_NICE, or --nice), so on a
    2-core office machine text analysis keeps the cores while pictures queue."""
    pytest.importorskip("rapidocr_onnxruntime")
    import os
    import subprocess
    import sys

    def niceness_of(*args: str, **env: str) -> int:
        out = subprocess.run([sys.executable, "-m", "yuqing.cli", "images", "work", "--once", *args],
                             capture_output=True, text=True, timeout=120, env=os.environ | env)
        assert out.returncode == 0, out.stdout + out.stderr
        [line] = [x for x in out.stdout.splitlines() if "优先级" in x]
        return int(line.rsplit("nice", 1)[1])

    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert niceness_of() == min(19, mine + 10)  # the default
    assert niceness_of(YUQING_IMAGE_WORKER_NICE="3") == min(19, mine + 3)
    assert niceness_of("--nice", "0") == mine


def test_blank_pictures_have_no_text_and_lines_at_the_edges_are_read(db_session: Session, engine_ocr: OcrEngine) -> None:
    from PIL import ImageDraw

    from bench.image_corpus import font

    blank = PILImage.new("RGB", (720, 960), (250, 250, 250))
    page = PILImage.new("RGB", (720, 1280), (255, 255, 255))  # mostly empty: only its inked part is searched
    lines = [((2, 2), "东湾村今晚停水", (0, 0, 0)),  # touching the top-left corner
             ((200, 640), "青禾镇人民政府", (0, 0, 0)),
             ((440, 1244), "超市都排长队了", (170, 170, 170))]  # faint grey, touching the bottom edge
    draw = ImageDraw.Draw(page)
    for xy, text, colour in lines:
        draw.text(xy, text, font=font(34), fill=colour)
    ids = [store_image(db_session, jpeg(img, 90)).image_id for img in (blank, page)]
    db_session.commit()
    assert read_pending(db_session, engine_ocr).read == 2
    empty, read = (db_session.get(Image, i) for i in ids)
    assert empty is not None and read is not None
    assert empty.ocr_status == "done" and not empty.ocr_text and empty.ocr_lines == []
    assert read.ocr_status == "done" and [ln[1] for ln in read.ocr_lines] == [text for _, text, _ in lines]
