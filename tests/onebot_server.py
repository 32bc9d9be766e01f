"""An in-process OneBot v11 HTTP API server on 127.0.0.1 for tests: it records every call.

Serves ``POST /send_group_msg`` and ``POST /send_private_msg`` as go-cqhttp / NapCat do: checks
``Authorization: Bearer <token>`` (401 otherwise) and answers
``{"status": "ok", "retcode": 0, "data": {"message_id": n}}``. Targets (group or user ids) in
``refused`` answer ``{"status": "failed", "retcode": 100}`` (the bot may not write there: not
sent); ``slow`` targets are recorded as sent and answered only after ``slow_seconds`` (a client
timing out does not know it went out). Each call keeps its arrival time (``time.monotonic()``).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from tests.alerts.receivers import JsonHandler, free_port, serve, shut

ACTIONS = ("send_group_msg", "send_private_msg")


class OneBotApi:
    def __init__(self, token: str = "bot-token") -> None:
        self.port = free_port()
        self.token = token
        self.calls: list[dict[str, Any]] = []
        self.refused: set[int] = set()
        self.slow: set[int] = set()
        self.slow_seconds = 3.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sent(self, action: str) -> list[dict[str, Any]]:
        """The parameters of the messages the bot sent with ``action``, in order."""
        with self._lock:
            return [c["json"] for c in self.calls if c["action"] == action and c["sent"]]

    def sent_to(self, action: str = "send_group_msg") -> list[int]:
        """Group (or user) ids of the messages the bot sent, in order."""
        key = "group_id" if action == "send_group_msg" else "user_id"
        return [params[key] for params in self.sent(action)]

    def start(self) -> None:
        api = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                action = self.path.strip("/").split("?")[0]
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    return self._answer(401, {"status": "failed", "retcode": 1403, "msg": "token"})
                if action not in ACTIONS:
                    return self._answer(404, {"status": "failed", "retcode": 1404})
                body = json.loads(raw)
                target = body.get("group_id", body.get("user_id"))
                refused = target in api.refused
                with api._lock:
                    api.calls.append({"action": action, "json": body, "headers": dict(self.headers),
                                      "sent": not refused, "at": time.monotonic()})
                    message_id = 9000 + len(api.calls)
                if refused:
                    return self._answer(200, {"status": "failed", "retcode": 100, "msg": "不是好友或群不存在",
                                              "data": None})
                if target in api.slow:
                    time.sleep(api.slow_seconds)
                return self._answer(200, {"status": "ok", "retcode": 0, "data": {"message_id": message_id}})

        self._server = serve(self.port, Handler)

    def stop(self) -> None:
        shut(self._server)
        self._server = None
