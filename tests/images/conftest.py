"""Fixtures of the picture tests: the shipped rumor model, a session on a fresh database, a loopback
server standing in for the bot framework's picture cache, a bot token, and the OCR engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from sqlalchemy.orm import Session

from core.db import make_engine, session_scope


@pytest.fixture(scope="session")
def rumor_model_any():
    """The shipped rumor model (loaded once)."""
    from nlp.classifier import RumorModel

    return RumorModel.load()


@pytest.fixture
def db_session(fresh_db_url: str) -> Iterator[Session]:
    """A session on a database of its own (the code under test commits)."""
    engine = make_engine(fresh_db_url)
    session = Session(engine, expire_on_commit=False)
    yield session
    session.close()
    engine.dispose()


class _Pictures(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def picture_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A loopback HTTP server standing in for the bot framework's picture cache: serves ``files``."""
    files: dict[str, bytes] = {}
    handler = type("Handler", (_Pictures,), {"files": files})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def engine_ocr() -> Any:
    pytest.importorskip("rapidocr_onnxruntime")
    from nlp.images import OcrEngine

    return OcrEngine()


@pytest.fixture
def bot(api_engine) -> dict[str, str]:
    from api import accounts

    with session_scope(api_engine) as s:
        user = accounts.create_user(s, username="bot-owner", role="staff")
        token = accounts.create_token(s, user, "qq-bot", kind="bot")
    return {"Authorization": f"Bearer {token}"}
