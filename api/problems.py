"""Errors as RFC 9457 problem objects, in one place. No traceback ever reaches a client."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import YuqingError

log = logging.getLogger(__name__)

_TITLES = {400: "请求无效", 401: "需要登录", 403: "权限不足", 404: "未找到", 405: "方法不允许",
           409: "状态冲突", 413: "内容过大", 422: "输入无效", 429: "请求过多", 500: "服务器内部错误"}


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, *, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers, self.extra = headers, extra or {}


def problem_response(status: int, detail: Any, *, title: str | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title or _TITLES.get(status, "错误"), "status": status,
            "detail": detail} | extra
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append({"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")),
                    "type": str(err.get("type", ""))})
    return out


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, title=exc.title, headers=exc.headers, **exc.extra)

    @app.exception_handler(YuqingError)
    async def _ours(_: Request, exc: YuqingError) -> JSONResponse:
        return problem_response(exc.status_code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_errors(exc.errors())
        first = errors[0] if errors else {"loc": [], "msg": ""}
        detail = f"字段 {'.'.join(first['loc'])} 无效：{first['msg']}"
        return problem_response(422, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # A body that is not even decodable is a bad payload like any other: 422.
            return problem_response(422, "请求体无法解析：请发送 UTF-8 编码的 JSON。")
        return problem_response(exc.status_code, exc.detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "服务器内部错误，已记录日志。请稍后重试或联系管理员。")
