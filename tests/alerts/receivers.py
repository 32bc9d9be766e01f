"""Notification receivers on loopback for tests: a webhook HTTP server thread and an SMTP sink."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON (the loopback test servers' common part)."""

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        out = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, *args: Any) -> None:
        pass


def serve(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """``handler`` served on 127.0.0.1:``port`` from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def shut(server: ThreadingHTTPServer | None) -> None:
    """Stop a server from `serve` (None: nothing to stop)."""
    if server is not None:
        server.shutdown()
        server.server_close()


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


class MailSink:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"
