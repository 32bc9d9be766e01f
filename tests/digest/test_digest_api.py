"""The digest archive API: what the console shows is exactly what was sent."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api import accounts
from api.app import create_app
from core.settings import Settings
from digest.service import send_day
from tests.digest.factories import local
from tests.digest.scenario import DAY, BusyDay
from tests.digest.smtp import SmtpServer


@pytest.fixture
def client(db: Session) -> Iterator[TestClient]:
    with TestClient(create_app(db.get_bind()), raise_server_exceptions=False) as c:
        yield c


def _token(db: Session, role: str) -> dict[str, str]:
    user = accounts.create_user(db, username=f"{role}-reader", role=role)
    token = accounts.create_token(db, user, "test")
    db.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def sent(db: Session, busy_day: BusyDay, smtp_server: SmtpServer, tmp_path: Path) -> SmtpServer:
    """Two days sent for real: the busy day, and a quiet day a month before it."""
    path = tmp_path / "digest.yaml"
    path.write_text(yaml.safe_dump({"recipients": ["shuji@qinghe.example"]}), encoding="utf-8")
    settings = Settings(digest_recipients_file=path, smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    assert send_day(db, DAY, settings=settings, now=local(DAY, 18))[0].status == "sent"
    quiet = DAY - dt.timedelta(days=30)
    assert send_day(db, quiet, settings=settings, now=local(quiet, 18))[0].status == "sent"
    return smtp_server


def test_viewer_reads_the_archive_exactly_as_sent(db: Session, sent: SmtpServer, client: TestClient) -> None:
    viewer = _token(db, "viewer")
    page = client.get("/api/v1/digests", headers=viewer)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 2 and [i["day"] for i in body["items"]] == ["2026-11-20", "2026-10-21"]
    busy, quiet = body["items"]
    assert quiet["quiet"] is True and busy["quiet"] is False and busy["status"] == "sent"
    assert busy["recipients"] == [{"email": "shuji@qinghe.example", "name": None}]
    assert "预警 4 条" in busy["subject"]

    detail = client.get(f"/api/v1/digests/{busy['id']}", headers=viewer).json()
    msg = sent.inbox.messages[0]
    wire_html = msg.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
    wire_text = msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert detail["html"].rstrip() == wire_html.rstrip() and detail["text"].rstrip() == wire_text.rstrip()
    images = {p["Content-ID"].strip("<>"): p.get_content() for p in msg.walk() if p.get_content_maintype() == "image"}
    assert {cid: base64.b64decode(f["b64"]) for cid, f in detail["figures"].items()} == images
    assert detail["summary"]["alerts"]["total"] == 4

    preview = client.get(f"/api/v1/digests/{busy['id']}/preview", headers=viewer)
    assert preview.status_code == 200 and preview.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in preview.headers["content-security-policy"]
    assert "cid:" not in preview.text and preview.text.count('src="data:image/png;base64,') == 2
    cid = next(iter(detail["figures"]))
    png = client.get(f"/api/v1/digests/{busy['id']}/figures/{cid}", headers=viewer)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content == images[cid]


def test_filters_and_pages(db: Session, sent: SmtpServer, client: TestClient) -> None:
    viewer = _token(db, "viewer")
    one = client.get("/api/v1/digests", params={"page_size": 1, "page": 2}, headers=viewer).json()
    assert one["total"] == 2 and [i["day"] for i in one["items"]] == ["2026-10-21"]
    ranged = client.get("/api/v1/digests", params={"day_from": "2026-11-01"}, headers=viewer).json()
    assert [i["day"] for i in ranged["items"]] == ["2026-11-20"]
    failed = client.get("/api/v1/digests", params={"status": "failed"}, headers=viewer).json()
    assert failed["total"] == 0


def test_errors(db: Session, sent: SmtpServer, client: TestClient) -> None:
    viewer = _token(db, "viewer")
    assert client.get("/api/v1/digests").status_code == 401
    assert client.get("/api/v1/digests/999999", headers=viewer).status_code == 404
    assert client.get("/api/v1/digests/1/figures/nope@yuqing", headers=viewer).status_code == 404
    for bad in ("/api/v1/digests/abc", "/api/v1/digests/0", f"/api/v1/digests/{2**70}",
                "/api/v1/digests?status=weird", "/api/v1/digests?day_from=yesterday"):
        r = client.get(bad, headers=viewer)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_preview_keeps_untrusted_text_inert(db: Session, sent: SmtpServer, client: TestClient) -> None:
    viewer = _token(db, "viewer")
    busy = client.get("/api/v1/digests", params={"day_to": "2026-11-20"}, headers=viewer).json()["items"][0]
    html = client.get(f"/api/v1/digests/{busy['id']}/preview", headers=viewer).text
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert not re.search(r"<script\b", html, re.IGNORECASE)
