"""An in-process 企业微信 group robot webhook on 127.0.0.1 for tests: it records every call.

Serves ``POST /cgi-bin/webhook/send?key=<key>`` as WeCom does: a JSON body with ``msgtype``
``text`` (content at most 2,048 bytes), ``markdown`` (4,096 bytes) or ``image`` (``base64`` of a
PNG/JPG of at most 2 MB and the ``md5`` of its raw bytes, checked). Answers
``{"errcode": 0, "errmsg": "ok"}``; a key not in ``keys`` gets errcode 93000 (invalid webhook
url); a robot past ``per_minute`` messages in the last 60 s gets 45009 (api freq out of limit);
a bad message 40008 / 40058 / 301019; ``slow`` keys are recorded as posted and answered only after
``slow_seconds`` (a client timing out does not know it went out). Every call is kept with its
arrival time (``time.monotonic()``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.alerts.receivers import JsonHandler, free_port, serve, shut

PATH = "/cgi-bin/webhook/send"


class WeComRobots:
    def __init__(self, keys: dict[str, str] | None = None, per_minute: int = 20) -> None:
        self.port = free_port()
        self.keys = dict(keys or {})  # key -> the group it posts in
        self.per_minute = per_minute
        self.calls: list[dict[str, Any]] = []
        self.slow: set[str] = set()
        self.slow_seconds = 3.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def posted(self, group: str | None = None) -> list[dict[str, Any]]:
        """The messages that were posted (to ``group``), in order: the JSON bodies."""
        with self._lock:
            return [c["json"] for c in self.calls if c["posted"] and (group is None or c["group"] == group)]

    def kinds(self, group: str) -> list[str]:
        return [m["msgtype"] for m in self.posted(group)]

    def _verdict(self, key: str, body: dict[str, Any], now: float) -> tuple[int, str]:
        if key not in self.keys:
            return 93000, "invalid webhook url, hint: [1700000000_1_abc]"
        recent = [c for c in self.calls if c["key"] == key and c["posted"] and now - c["at"] < 60]
        if len(recent) >= self.per_minute:
            return 45009, "api freq out of limit"
        kind = body.get("msgtype")
        if kind in ("text", "markdown"):
            content = (body.get(kind) or {}).get("content", "")
            limit = 2048 if kind == "text" else 4096
            if not content:
                return 44004, "empty content"
            if len(content.encode("utf-8")) > limit:
                return 40058, f"content exceed max length {limit}"
            return 0, "ok"
        if kind == "image":
            image = body.get("image") or {}
            try:
                raw = base64.b64decode(image.get("base64", ""), validate=True)
            except ValueError:
                return 40058, "invalid base64"
            if hashlib.md5(raw, usedforsecurity=False).hexdigest() != image.get("md5"):
                return 301019, "media md5 not match"
            if len(raw) > 2 * 1024 * 1024 or not (raw.startswith(b"\x89PNG") or raw.startswith(b"\xff\xd8\xff")):
                return 40058, "invalid image"
            return 0, "ok"
        return 40008, "invalid message type"

    def start(self) -> None:
        robots = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = urlsplit(self.path)
                if parts.path != PATH:
                    return self._answer(404, {"errcode": 404, "errmsg": "not found"})
                key = (parse_qs(parts.query).get("key") or [""])[0]
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._answer(200, {"errcode": 40058, "errmsg": "invalid json"})
                now = time.monotonic()
                with robots._lock:
                    code, message = robots._verdict(key, body, now)
                    robots.calls.append({"key": key, "group": robots.keys.get(key), "json": body, "at": now,
                                         "posted": code == 0, "errcode": code})
                if code == 0 and key in robots.slow:
                    time.sleep(robots.slow_seconds)
                return self._answer(200, {"errcode": code, "errmsg": message})

        self._server = serve(self.port, Handler)

    def stop(self) -> None:
        shut(self._server)
        self._server = None
