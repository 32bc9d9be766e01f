"""Alert test fixtures: the API on a fresh database (as in tests/api), users by role, a quiet
routing config, and notification receivers on loopback (a real SMTP server and a webhook server)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerts.notify import NotifyConfig
from api import accounts
from api.app import create_app
from core.db import make_engine, session_scope


@pytest.fixture
def api_engine(fresh_db_url: str):
    eng = make_engine(fresh_db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def api_client(api_engine) -> Iterator[TestClient]:
    with TestClient(create_app(api_engine), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def make_user(api_engine) -> Callable[..., dict[str, str]]:
    """make_user("staff") -> {"Authorization": "Bearer ..."}; the user id is in headers["X-User-Id"]."""
    counter = iter(range(10_000))

    def make(role: str, email: str | None = None) -> dict[str, str]:
        with session_scope(api_engine) as s:
            user = accounts.create_user(
                s, username=f"{role}{next(counter)}", role=role, password="password123", email=email
            )
            token = accounts.create_token(s, user, "test")
            uid = user.id
        return {"Authorization": f"Bearer {token}", "X-User-Id": str(uid)}

    return make


@pytest.fixture
def no_routes() -> NotifyConfig:
    return NotifyConfig()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    """A real HTTP server thread on 127.0.0.1 that records every POST; can be stopped and restarted
    on the same port (to play a channel that goes down and comes back)."""

    def __init__(self, status: int = 200, body: dict[str, Any] | None = None) -> None:
        self.port = free_port()
        self.received: list[dict[str, Any]] = []
        self.status, self.body = status, body or {"errcode": 0, "errmsg": "ok"}
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(
                    {"path": self.path, "headers": dict(self.headers), "raw": raw, "json": json.loads(raw)}
                )
                out = json.dumps(receiver.body).encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


class MailSink:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailSink]:
    """aiosmtpd in-process on a free loopback port, set as YUQING_SMTP_HOST/PORT."""
    from aiosmtpd.controller import Controller

    from core.settings import get_settings

    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("YUQING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("YUQING_SMTP_PORT", str(port))
    monkeypatch.setenv("YUQING_SMTP_SECURITY", "none")
    get_settings.cache_clear()
    yield sink
    controller.stop()
    get_settings.cache_clear()
