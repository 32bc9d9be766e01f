"""Bad input never gets a 500: integers past the column type, NUL and control characters in
queries (one rule on both databases), oversized bodies (413 before parsing), non-web URLs; and a
500 that does happen answers cleanly and keeps the keep-alive connection."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.console.session import SESSION_COOKIE
from core.db import session_scope
from core.settings import get_settings
from tests.console.conftest import session_cookie
from tests.console.factories import seed_scene

BIG = "99999999999999999999"


@pytest.fixture
def console(api_client: TestClient, api_engine: Engine) -> TestClient:
    with session_scope(api_engine) as s:
        seed_scene(s)
    api_client.cookies.set(SESSION_COOKIE, session_cookie(api_engine, "zhangmin"))
    return api_client


@pytest.mark.parametrize("path", [
    "/api/v1/groups/activity?group_id=9223372036854775808",
    "/api/v1/groups/activity?group_id=1&group_id=" + BIG,
    "/api/v1/alerts/" + BIG,
    "/api/v1/alerts?assignee=" + BIG,
])
def test_integers_past_64_bits_are_422_in_the_api(api_client: TestClient, make_user: Callable, path: str) -> None:
    res = api_client.get(path, headers=make_user("admin"))
    assert res.status_code == 422, res.text


@pytest.mark.parametrize("path", [f"/alerts/{BIG}", f"/digests/{BIG}", f"/?assignee={BIG}", f"/debunks/{BIG}/edit"])
def test_integers_past_64_bits_never_500_in_the_console(console: TestClient, path: str) -> None:
    res = console.get(path, headers={"Accept": "text/html"})
    assert res.status_code in (200, 404, 422), (path, res.status_code)


@pytest.mark.parametrize("path", ["/api/v1/groups?q=a%00b", "/api/v1/debunks?q=%00", "/api/v1/groups?q=%1b"])
def test_control_characters_in_queries_are_422_on_both_databases(
    api_client: TestClient, make_user: Callable, path: str
) -> None:
    res = api_client.get(path, headers=make_user("admin"))
    assert res.status_code == 422 and "控制字符" in res.json()["detail"]


def test_console_queue_with_nul_is_422(console: TestClient) -> None:
    assert console.get("/?q=%E5%B0%81%00", headers={"Accept": "text/html"}).status_code == 422


def test_oversized_bodies_are_413_before_parsing(
    api_engine: Engine, make_user: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUQING_MAX_REQUEST_MB", "0.01")  # 10 KB
    get_settings.cache_clear()
    headers = make_user("staff") | {"Content-Type": "application/json"}
    with TestClient(create_app(api_engine), raise_server_exceptions=False) as client:
        body = b'{"claim": "' + "谣".encode() * 20_000 + '", "refutation": "不实"}'.encode()
        res = client.post("/api/v1/debunks", content=body, headers=headers)
        assert res.status_code == 413 and "YUQING_MAX_REQUEST_MB" in res.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it is read
            yield b'{"claim": "'
            for _ in range(100):
                yield "谣".encode() * 100
            yield '", "refutation": "不实"}'.encode()

        assert client.post("/api/v1/debunks", content=chunks(), headers=headers).status_code == 413
        small = client.post("/api/v1/debunks", json={"claim": "东湾村封村了", "refutation": "不实"}, headers=headers)
        assert small.status_code in (200, 201), small.text
    get_settings.cache_clear()


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "ftp://x.cn/a", "//evil.cn"])
def test_debunk_urls_are_web_links_only(api_client: TestClient, make_user: Callable, url: str) -> None:
    staff = make_user("staff")
    res = api_client.post("/api/v1/debunks", json={"claim": "东湾村封村了", "refutation": "不实", "url": url},
                          headers=staff)
    assert res.status_code == 422, res.text
    ok = api_client.post("/api/v1/debunks", json={"claim": "东湾村封村了", "refutation": "不实",
                                                  "url": "https://gov.example.cn/a"}, headers=staff)
    assert ok.status_code in (200, 201)
    patched = api_client.patch(f"/api/v1/debunks/{ok.json()['id']}", json={"url": url}, headers=staff)
    assert patched.status_code == 422


def test_a_500_answers_cleanly_and_keeps_the_connection(api_engine: Engine) -> None:
    app = create_app(api_engine)

    @app.get("/__boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=10)
        conn.request("GET", "/__boom", headers={"Accept": "text/html"})
        page = conn.getresponse()
        assert page.status == 500 and "服务器内部错误" in page.read().decode()
        first_socket = conn.sock
        conn.request("GET", "/__boom", headers={"Accept": "application/json"})
        problem = conn.getresponse()
        assert problem.status == 500 and problem.getheader("content-type").startswith("application/problem+json")
        problem.read()
        conn.request("GET", "/health")
        health = conn.getresponse()
        assert health.status == 200
        health.read()
        assert conn.sock is first_socket and first_socket is not None  # the same keep-alive connection
        conn.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_nul_in_a_json_or_form_body_is_422_on_both_databases(
    api_client: TestClient, console: TestClient, make_user: Callable
) -> None:
    staff = make_user("staff")
    before = api_client.get("/api/v1/debunks", headers=staff).json()["total"]
    res = api_client.post("/api/v1/debunks", json={"claim": "东湾村\x00封村了", "refutation": "不实"}, headers=staff)
    assert res.status_code == 422 and "NUL" in res.json()["detail"]
    assert api_client.get("/api/v1/debunks", headers=staff).json()["total"] == before
    form = console.post("/debunks", data={"claim": "东湾村\x00封村了", "refutation": "不实"})
    assert form.status_code == 422
