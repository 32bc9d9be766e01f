"""Picture fetch tries again after transient failures (503, a dropped connection, 429 with
Retry-After), with backoff, and not after a permanent one (404); one still failing is tried again
later (every RETRY_AFTER, for RETRY_WINDOW after it arrived). A loopback server that fails first;
the pictures come in through a OneBot push. SQLite, and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bench.image_corpus import caption_photo, jpeg
from core.tables import PostImage, utcnow
from crawler.image_fetch import RETRY_AFTER, RETRY_WINDOW, due_retries, fetch_pending
from tests.images.test_images import push

pytestmark = pytest.mark.db


class _Flaky(BaseHTTPRequestHandler):
    """Serves each path's planned answers in turn: a status, "drop" (close without answering),
    "ok" (the picture); the last one repeats. Every request's time is kept."""

    plans: ClassVar[dict[str, list[str]]] = {}
    body: ClassVar[bytes] = b""
    seen: ClassVar[dict[str, list[float]]] = {}

    def do_GET(self) -> None:
        times = self.seen.setdefault(self.path, [])
        times.append(time.monotonic())
        plan = self.plans.get(self.path, ["404"])
        step = plan[min(len(times), len(plan)) - 1]
        if step == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if step == "ok":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
            return
        status, _, retry_after = step.partition("+")
        self.send_response(int(status))
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, type[_Flaky]]]:
    handler = type("Handler", (_Flaky,), {"plans": {}, "seen": {}, "body": b""})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_transient_failures_are_retried_with_backoff_permanent_ones_are_not(
    api_client: TestClient, api_engine, bot: dict, flaky_server,
) -> None:
    base, handler = flaky_server
    handler.body = jpeg(caption_photo(random.Random(4)).image, 80)
    handler.plans.update({
        "/flaky.jpg": ["503", "drop", "ok"],  # a restarting picture cache, then a dropped connection
        "/busy.jpg": ["429+1", "ok"],  # "come back in a second"
        "/gone.jpg": ["404"],
        "/down.jpg": ["502"],  # never recovers
    })
    for n, name in enumerate(["flaky", "busy", "gone", "down"], start=1):
        push(api_client, bot, n, 880100 + n, f"{base}/{name}.jpg")
    with Session(api_engine) as s:
        report = fetch_pending(s)
        status = {ref.rsplit("/", 1)[-1]: (st, err) for ref, st, err in
                  s.execute(select(PostImage.ref, PostImage.status, PostImage.error))}
    assert report.counts == {"stored": 1, "duplicate": 1, "failed": 1, "retry": 1}  # one picture served twice
    assert status["flaky.jpg"][0] == "stored" and status["busy.jpg"][0] == "stored"
    assert status["gone.jpg"][0] == "failed" and "404" in (status["gone.jpg"][1] or "")
    assert status["down.jpg"][0] == "retry" and "3 次尝试均失败" in (status["down.jpg"][1] or "")

    seen = handler.seen
    assert len(seen["/flaky.jpg"]) == 3 and len(seen["/busy.jpg"]) == 2
    assert len(seen["/gone.jpg"]) == 1  # a permanent failure is not tried again
    assert len(seen["/down.jpg"]) == 3
    gaps = [b - a for a, b in zip(seen["/down.jpg"], seen["/down.jpg"][1:], strict=False)]
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95  # 0.5 s, then 1 s: exponential backoff
    assert seen["/busy.jpg"][1] - seen["/busy.jpg"][0] >= 0.95  # Retry-After: 1 honoured


def test_a_fetch_still_failing_is_tried_again_later_then_given_up(
    api_client: TestClient, api_engine, bot: dict, flaky_server,
) -> None:
    """The bot framework is down for longer than the quick retries: the picture is fetched once it
    is back (a later try), and one that never comes back is given up after RETRY_WINDOW."""
    base, handler = flaky_server
    handler.body = jpeg(caption_photo(random.Random(6)).image, 80)
    handler.plans.update({"/later.jpg": ["503", "503", "503", "ok"], "/never.jpg": ["503"]})
    push(api_client, bot, 1, 880201, f"{base}/later.jpg")
    push(api_client, bot, 2, 880202, f"{base}/never.jpg")

    def status() -> dict[str, str]:
        with Session(api_engine) as s:
            return {ref.rsplit("/", 1)[-1]: st for ref, st in s.execute(select(PostImage.ref, PostImage.status))}

    def time_passes(by, *, arrived_too: bool = False) -> None:
        with Session(api_engine) as s:
            values = {"fetched_at": utcnow() - by} | ({"created_at": utcnow() - by} if arrived_too else {})
            s.execute(update(PostImage).where(PostImage.status == "retry").values(**values))
            s.commit()

    with Session(api_engine) as s:
        assert fetch_pending(s).counts == {"retry": 2}
        assert fetch_pending(s).counts == {} and due_retries(s) == 0  # not yet due
    assert status() == {"later.jpg": "retry", "never.jpg": "retry"}
    time_passes(RETRY_AFTER)
    with Session(api_engine) as s:
        assert due_retries(s) == 2
        assert fetch_pending(s).counts == {"stored": 1, "retry": 1}
    assert status() == {"later.jpg": "stored", "never.jpg": "retry"}
    time_passes(RETRY_WINDOW, arrived_too=True)
    with Session(api_engine) as s:
        assert fetch_pending(s).counts == {"failed": 1}
        assert fetch_pending(s).counts == {} and due_retries(s) == 0
    assert status() == {"later.jpg": "stored", "never.jpg": "failed"}
    assert len(handler.seen["/later.jpg"]) == 4 and len(handler.seen["/never.jpg"]) == 9
