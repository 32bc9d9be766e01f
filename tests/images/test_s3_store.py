"""Pictures in an S3-compatible object store (YUQING_IMAGE_S3_*), against a real S3-protocol server
on loopback (moto's server mode, the `dev` extra), through the same interfaces as the data dir:
a OneBot push is fetched, stored once without EXIF, read (OCR) from the bucket, served to staff as
picture and thumbnail, and purged with its thumbnails. When the store goes down nothing is lost:
references and pictures stay queued with the store's error, the API answers 503, and all of it
goes through once the store is back. SQLite, and PostgreSQL with YUQING_TEST_DATABASE=postgres."""

from __future__ import annotations

import io
import logging
import random
import socket
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bench.image_corpus import caption_photo, jpeg
from core.images import images_dir, purge_orphans, thumbnail
from core.picture_store import (
    LocalStore,
    PictureMissing,
    PictureStore,
    S3Store,
    StoreUnavailable,
    picture_store,
)
from core.settings import get_settings
from core.tables import Image, Post, PostImage
from crawler.image_fetch import fetch_pending
from nlp.images import OcrEngine, read_pending
from tests.images.test_images import _token, push, with_gps_exif

moto_server = pytest.importorskip("moto.server")
minio = pytest.importorskip("minio")

KEY, SECRET = "yuqing-test-key", "yuqing-test-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """moto's S3 server in a thread on a fixed loopback port, so it can be stopped and started again
    at the same address (its objects live in the process, so they survive the outage)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: object | None = None

    def start(self) -> None:
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]
            self._server = None


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = S3Server()
    server.start()
    yield server
    server.stop()


def _point_at(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings naming the loopback S3 server and a bucket of the test's own (created on first write)."""
    bucket = f"yuqing-{uuid.uuid4().hex[:12]}"
    for name, value in {"ENDPOINT": s3_server.endpoint, "BUCKET": bucket, "ACCESS_KEY": KEY, "SECRET_KEY": SECRET,
                        "REGION": "us-east-1", "TIMEOUT": "2"}.items():
        monkeypatch.setenv(f"YUQING_IMAGE_S3_{name}", value)
    get_settings.cache_clear()
    return bucket


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield _point_at(s3_server, monkeypatch)
    get_settings.cache_clear()


def _objects(bucket: str, endpoint: str) -> dict[str, bytes]:
    """What the bucket holds, read with a client of its own (not through the code under test)."""
    client = minio.Minio(endpoint.removeprefix("http://"), access_key=KEY, secret_key=SECRET, secure=False,
                         region="us-east-1")
    out = {}
    for obj in client.list_objects(bucket, recursive=True):
        resp = client.get_object(bucket, obj.object_name)
        out[obj.object_name] = resp.read()
        resp.close()
        resp.release_conn()
    return out


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_both_stores_keep_the_same_contract(kind: str, request: pytest.FixtureRequest, tmp_path) -> None:
    if kind == "s3":
        request.getfixturevalue("s3_env")
    store: PictureStore = picture_store() if kind == "s3" else LocalStore(tmp_path / "images")
    assert isinstance(store, S3Store if kind == "s3" else LocalStore)
    store.put("ab/abc.jpg", b"first", "image/jpeg")
    store.put("ab/abc.jpg", b"second", "image/jpeg")  # content-addressed: an existing key is not rewritten
    assert store.get("ab/abc.jpg") == b"first"
    with pytest.raises(PictureMissing):
        store.get("cd/missing.jpg")
    store.delete(["ab/abc.jpg", "cd/missing.jpg"])  # deleting what is not there is fine
    with pytest.raises(PictureMissing):
        store.get("ab/abc.jpg")
    store.check()


def test_s3_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("YUQING_IMAGE_S3_ENDPOINT", "127.0.0.1:9000")  # no scheme: http or https?
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="YUQING_IMAGE_S3_ENDPOINT"):
        get_settings()
    monkeypatch.setenv("YUQING_IMAGE_S3_ENDPOINT", "http://127.0.0.1:9")
    get_settings.cache_clear()
    with pytest.raises(StoreUnavailable, match="YUQING_IMAGE_S3_ACCESS_KEY"):  # keys come from the environment
        picture_store()
    get_settings.cache_clear()


def test_pushed_pictures_live_in_the_bucket_and_survive_an_outage(
    api_client: TestClient, api_engine, bot: dict, picture_server, s3_env: str, s3_server: S3Server,
    engine_ocr: OcrEngine,
) -> None:

    base, files = picture_server
    first, second = caption_photo(random.Random(31)), caption_photo(random.Random(32))
    files["/a.jpg"] = with_gps_exif(first.image)
    files["/b.jpg"] = with_gps_exif(second.image)
    local_before = set(images_dir().rglob("*")) if images_dir().exists() else set()

    push(api_client, bot, 1, 880101, f"{base}/a.jpg")
    with Session(api_engine) as s:
        assert fetch_pending(s).counts == {"stored": 1}
        image = s.scalars(select(Image)).one()
        first_id, key = image.id, image.path
    stored = _objects(s3_env, s3_server.endpoint)
    assert list(stored) == [key]  # the picture is in the bucket, under its content hash ...
    assert (set(images_dir().rglob("*")) if images_dir().exists() else set()) == local_before  # ... not on disk
    with PILImage.open(io.BytesIO(stored[key])) as pic:
        assert not pic.getexif() and "exif" not in pic.info  # EXIF (GPS, camera) gone

    # The store goes down: a new picture waits in the queue with the store's error, nothing is
    # stored half-way, the picture already stored waits for its OCR, and the API says 503.
    s3_server.stop()
    push(api_client, bot, 2, 880102, f"{base}/b.jpg")
    with Session(api_engine) as s:
        report = fetch_pending(s)
        assert report.counts == {"unavailable": 1} and report.unavailable
        ref = s.scalars(select(PostImage).where(PostImage.ref == f"{base}/b.jpg")).one()
        assert ref.status == "pending" and ref.image_id is None
        assert "图片存储" in (ref.error or "") and s3_server.endpoint in (ref.error or "")
        assert s.scalar(select(func.count()).select_from(Image)) == 1
        down = read_pending(s, engine_ocr)
        assert down.read == down.failed == 0 and down.unavailable
        assert s.scalar(select(Image.ocr_status)) == "pending"
        staff = _token(s, "staff")
        s.commit()
    res = api_client.get(f"/api/v1/images/{first_id}", headers=staff)
    assert res.status_code == 503 and res.headers["retry-after"] and "图片存储" in res.json()["detail"]
    assert api_client.get(f"/api/v1/images/{first_id}/thumb", headers=staff).status_code == 503

    # Back up: both pictures go through, read from the bucket.
    s3_server.start()
    with Session(api_engine) as s:
        assert fetch_pending(s).counts == {"stored": 1}
        assert read_pending(s, engine_ocr).read == 2
        texts = dict(s.execute(select(Post.external_id, Post.image_text)).all())
    assert texts == {"1": first.text, "2": second.text}

    full = api_client.get(f"/api/v1/images/{first_id}", headers=staff)
    assert full.status_code == 200 and full.content == stored[key]
    assert full.headers["x-content-type-options"] == "nosniff"
    thumb = api_client.get(f"/api/v1/images/{first_id}/thumb?size=120", headers=staff)
    assert thumb.status_code == 200 and max(PILImage.open(io.BytesIO(thumb.content)).size) <= 120
    assert api_client.get(f"/api/v1/images/{first_id}/thumb").status_code == 401
    assert any(k.startswith("thumbs/120/") for k in _objects(s3_env, s3_server.endpoint))  # kept beside it

    # Retention: once no message refers to them, pictures and thumbnails leave the bucket.
    with Session(api_engine) as s:
        s.execute(delete(Post))
        s.commit()
        assert purge_orphans(s) == 2
        s.commit()
        assert s.scalar(select(func.count()).select_from(Image)) == 0
    assert _objects(s3_env, s3_server.endpoint) == {}


def test_a_purge_while_the_store_is_down_deletes_nothing_and_finishes_later(
    db_session: Session, s3_env: str, s3_server: S3Server
) -> None:
    from core.images import store_image

    ids = [store_image(db_session, jpeg(caption_photo(random.Random(n)).image, 80)).image_id for n in (41, 42)]
    db_session.commit()
    image = db_session.get(Image, ids[0])
    assert image is not None and thumbnail(image, 240)[:2] == b"\xff\xd8"
    assert len(_objects(s3_env, s3_server.endpoint)) == 3
    s3_server.stop()
    try:
        with pytest.raises(StoreUnavailable, match="图片存储"):
            purge_orphans(db_session)
        db_session.rollback()
        assert db_session.scalar(select(func.count()).select_from(Image)) == 2  # rows kept with their files
    finally:
        s3_server.start()
    assert purge_orphans(db_session) == 2
    db_session.commit()
    assert _objects(s3_env, s3_server.endpoint) == {}


def test_switching_to_s3_copies_the_pictures_and_status_tells_whether_the_store_answers(
    db_session: Session, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation with pictures in its data dir sets YUQING_IMAGE_S3_* and runs
    `yuqing images copy-to-store`; `yuqing images status` says where pictures are and if it answers."""
    from typer.testing import CliRunner

    from core.images import image_bytes, store_image
    from yuqing.cli import app

    stored = [store_image(db_session, jpeg(caption_photo(random.Random(n)).image, 80)) for n in (51, 52)]
    db_session.commit()
    local = {img.path: (images_dir() / img.path).read_bytes() for img in db_session.scalars(select(Image))}
    runner = CliRunner()
    refused = runner.invoke(app, ["images", "copy-to-store"])
    assert refused.exit_code == 1 and "YUQING_IMAGE_S3_ENDPOINT" in refused.output  # still the data dir

    bucket = _point_at(s3_server, monkeypatch)
    for _ in range(2):  # a second run writes nothing new and says the same
        out = runner.invoke(app, ["images", "copy-to-store"])
        assert out.exit_code == 0 and "已复制 2 张图片" in out.output, out.output
    assert _objects(bucket, s3_server.endpoint) == local
    image = db_session.get(Image, stored[0].image_id)
    assert image is not None and image_bytes(image) == local[image.path]  # now read from the bucket

    assert "可用" in runner.invoke(app, ["images", "status"]).output
    s3_server.stop()
    try:
        status = runner.invoke(app, ["images", "status"])
        assert status.exit_code == 0 and "不可用" in status.output and s3_server.endpoint in status.output
    finally:
        s3_server.start()

