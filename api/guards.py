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
        too_large = False
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if too_large:  # whatever the app made of the cut-off body, the answer is 413
                if not started:
                    started = True
                    await self._too_large()(scope, receive, send)
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


def _server_error(scope: Scope) -> Any:
    from starlette.responses import HTMLResponse

    headers = dict(scope.get("headers") or ())
    path = str(scope.get("path", ""))
    wants_page = b"text/html" in headers.get(b"accept", b"") and not path.startswith("/api/")
    if wants_page:
        return HTMLResponse(_ERROR_PAGE, status_code=500)
    return problem_response(500, "服务器内部错误，已记录日志。请稍后重试或联系管理员。")
