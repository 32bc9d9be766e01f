"""An in-process OneBot v11 HTTP API server on loopback that records every ``send_*`` call.

It answers like go-cqhttp/NapCat: HTTP 200 with ``{"status": "ok", "retcode": 0, "data":
{"message_id": n}}``; with a wrong Bearer token HTTP 401; and, for users in ``refuse_users``,
``{"status": "failed", "retcode": 100}`` (the bot may not write to them).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.alerts.receivers import free_port


class OneBotApiServer:
    def __init__(self, token: str = "bot-api-token") -> None:
        self.port = free_port()
        self.token = token
        self.calls: list[dict[str, Any]] = []
        self.refuse_users: set[int] = set()
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sent(self, action: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c["params"] for c in self.calls if c["action"] == action]

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._answer(401, {"status": "failed", "retcode": 1403})
                    return
                action = self.path.strip("/").split("?")[0]
                params = json.loads(raw)
                if action not in ("send_private_msg", "send_group_msg"):
                    self._answer(404, {"status": "failed", "retcode": 1404})
                    return
                if params.get("user_id") in server.refuse_users:
                    self._answer(200, {"status": "failed", "retcode": 100, "wording": "不是好友"})
                    return
                with server._lock:
                    server.calls.append({"action": action, "params": params})
                    message_id = len(server.calls)
                self._answer(200, {"status": "ok", "retcode": 0, "data": {"message_id": message_id}})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                out = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
