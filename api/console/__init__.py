"""The review console: server-rendered pages in Simplified Chinese at ``/`` (the API stays at /api/v1).

:func:`install` adds everything to the app in one call: the session middleware, the static
files (served by us: offices are often offline), the pages and their error pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from api.console.render import STATIC, render
from api.console.session import ConsoleSessionMiddleware
from api.console.web import ConsolePageError, GoBack, LoginRequired, back, identify_for_page, login_redirect

__all__ = ["install"]

_TITLES = {400: "请求无效", 403: "权限不足", 404: "页面不存在", 409: "操作冲突", 422: "输入有误"}


class _Static(StaticFiles):
    """Static assets are versioned by a query string, so browsers may keep them for a day."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "public, max-age=86400")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def install(app: FastAPI) -> None:
    from api.console.digest_actions import router as digest_router
    from api.console.notifications import router as notifications_router
    from api.console.pages import auth_router, router
    from api.console.publish_pages import router as publish_router
    from api.console.response_templates import router as templates_router
    from api.console.retraining import router as retraining_router
    from api.console.tips import router as tips_router

    app.add_middleware(ConsoleSessionMiddleware)
    app.mount("/static", _Static(directory=str(STATIC)), name="console-static")
    app.include_router(auth_router)
    app.include_router(digest_router)  # before /digests/{digest_id}
    app.include_router(router)
    app.include_router(retraining_router)
    app.include_router(notifications_router)
    app.include_router(tips_router)
    app.include_router(publish_router)
    app.include_router(templates_router)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> RedirectResponse:
        return login_redirect(request)

    @app.exception_handler(GoBack)
    async def _go_back(_request: Request, exc: GoBack) -> RedirectResponse:
        return back(exc.path, err=exc.message)

    @app.exception_handler(ConsolePageError)
    async def _page_error(request: Request, exc: ConsolePageError) -> Response:
        return render(request, "error.html", {"status": exc.status, "title": _TITLES.get(exc.status, "出错了"),
                                              "message": exc.message}, status=exc.status)

    # The problem+json handler api.problems registered (a coroutine function) stays the fallback.
    api_http_handler = cast(Callable[[Request, Exception], Awaitable[Response]] | None,
                            app.exception_handlers.get(StarletteHTTPException))

    @app.exception_handler(StarletteHTTPException)
    async def _unknown_page(request: Request, exc: StarletteHTTPException) -> Response:
        # A browser that follows a stale link gets a console page, not JSON; API clients and
        # everything under /api keep the problem+json answer.
        if exc.status_code == 404 and _wants_page(request):
            identify_for_page(request)
            return render(request, "error.html", {"status": 404, "title": _TITLES[404],
                                                  "message": "没有这个页面。请从上方导航进入，或返回预警列表。"},
                          status=404)
        assert api_http_handler is not None
        return await api_http_handler(request, exc)


def _wants_page(request: Request) -> bool:
    path = request.url.path
    return (not path.startswith(("/api/", "/static/", "/docs", "/openapi")) and request.method == "GET"
            and "text/html" in request.headers.get("accept", ""))
