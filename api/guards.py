"""Request guards that sit around the whole app: a body size limit, control characters in the
query string, and the last catch of an unexpected error.

Pure ASGI middleware (not BaseHTTPMiddleware): they see the raw request before FastAPI parses it,
and they answer errors themselves, so a crash never reaches the server as an exception (uvicorn
resets a keep-alive connection when the app raises after a response has started, and Starlette's
ServerErrorMiddleware re-raises after its 500 page).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from sqlalchemy.exc import DataError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

log = logging.getLogger(__name__)

# C0 controls except tab, newline and carriage return, and DEL: no query parameter needs them,
# PostgreSQL refuses NUL in text and SQLite would store it. One rule for both databases: 422.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ERROR_PAGE = (
    "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>服务器内部错误</title>"
    "<body style=\"font-family:sans-serif;margin:3em\"><h1>服务器内部错误</h1>"
    "<p>已记录日志。请返回<a href=\"/\">预警列表</a>重试，或联系管理员。</p></body></html>"
)


class _TooLarge(Exception):
    pass


class _HasNul(Exception):
    pass


# NUL in a JSON string (\u0000) or a form field (%00): PostgreSQL refuses it, SQLite would store
# it. Refused with 422 on both, except for pushes, whose importer strips it (chat text carries it).
_NUL_IN_BODY = {b"application/json": b"\\u0000", b"application/x-www-form-urlencoded": b"%00"}
_NUL_ALLOWED = ("/api/v1/ingest/",)


class RequestGuard:
    """413 for a body over ``max_bytes`` (by Content-Length before reading, else while reading),
    422 for control characters in the query string, and a clean 500 for anything unexpected."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        early = self._refuse_early(scope)
        if early is not None:
            await early(scope, receive, send)
            return
        started = False
        too_large = has_nul = False
        seen = 0
        content_type = dict(scope.get("headers") or ()).get(b"content-type", b"").split(b";")[0].strip().lower()
        nul_marker = None if str(scope.get("path", "")).startswith(_NUL_ALLOWED) else _NUL_IN_BODY.get(content_type)
        tail = b""

        async def counted_receive() -> Message:
            nonlocal seen, too_large, has_nul, tail
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge
                if nul_marker is not None:
                    window = tail + chunk  # a marker split across two chunks is still seen
                    if nul_marker in window:
                        has_nul = True
                        raise _HasNul
                    tail = window[-5:]
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if too_large or has_nul:  # whatever the app made of the cut-off body, we answer
                if not started:
                    started = True
                    await (self._too_large() if too_large else _nul_refused())(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception as err:
            if too_large or isinstance(err, _TooLarge):
                if not started:
                    await self._too_large()(scope, receive, send)
                return
            if has_nul or isinstance(err, _HasNul):
                if not started:
                    await _nul_refused()(scope, receive, send)
                return
            if isinstance(err, OverflowError | DataError):
                # a value the database cannot hold (an integer past 64 bits, a NUL on PostgreSQL)
                # that no validator caught: the input's fault, so 422, never 500
                log.warning("input rejected by the database on %s %s: %s", scope.get("method"),
                            scope.get("path"), type(err).__name__)
                if not started:
                    await problem_response(422, "输入超出允许范围（数字过大或含有非法字符）。")(scope, receive, send)
                return
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _server_error(scope)(scope, receive, send)

    def _refuse_early(self, scope: Scope) -> Any:
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return self._too_large()
        query = scope.get("query_string") or b""
        if query and _CONTROL.search(unquote_to_bytes(query)):
            return problem_response(422, "查询参数含有控制字符（如 NUL）：请去掉后重试。")
        return None

    def _too_large(self) -> Any:
        mb = self.max_bytes / 1024 / 1024
        return problem_response(413, f"请求体超过 {mb:g} MB 上限（YUQING_MAX_REQUEST_MB）：请分批发送。",
                                headers={"Connection": "close"})


def _nul_refused() -> Any:
    return problem_response(422, "请求内容含有 NUL 字符（\\u0000）：请去掉后重试。")


def _server_error(scope: Scope) -> Any:
    from starlette.responses import HTMLResponse

    headers = dict(scope.get("headers") or ())
    path = str(scope.get("path", ""))
    wants_page = b"text/html" in headers.get(b"accept", b"") and not path.startswith("/api/")
    if wants_page:
        return HTMLResponse(_ERROR_PAGE, status_code=500)
    return problem_response(500, "服务器内部错误，已记录日志。请稍后重试或联系管理员。")
