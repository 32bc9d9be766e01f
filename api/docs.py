"""The API documentation (/docs, /openapi.json) behind a login, unless YUQING_PUBLIC_DOCS=1.

The README promises that every route but /health needs a token; the schema names every route,
field and role of the installation, so it is not for anyone who can reach the port. A console
session (cookie) or an API token opens both; a browser without one is sent to the login page.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.deps import get_current_user
from api.problems import Problem
from core.db import transaction

DOCS_URL = "/docs"
OPENAPI_URL = "/openapi.json"
STATIC_URL = "/static-offline-docs"  # where fastapi-offline serves Swagger UI's files


def _signed_in(request: Request) -> bool:
    credentials = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        from fastapi.security import HTTPAuthorizationCredentials

        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=auth[7:].strip())
    with transaction(request.app.state.sessionmaker()) as session:
        try:
            get_current_user(request, session, credentials)
        except Problem as problem:
            if problem.status in (401, 403):
                return False
            raise
    return True


def install_private_docs(app: FastAPI) -> None:
    """/docs and /openapi.json that need a console session or an API token (any role)."""
    # FastAPI registered an open /openapi.json when the app was built: replace it.
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != OPENAPI_URL]

    @app.get(OPENAPI_URL, include_in_schema=False)
    def openapi_json(request: Request) -> Response:
        if not _signed_in(request):
            raise Problem(401, "需要登录", "接口文档需要登录：在请求头加 'Authorization: Bearer <令牌>'，或先登录审核台。",
                          headers={"WWW-Authenticate": "Bearer"})
        schema: dict[str, Any] = app.openapi()
        return JSONResponse(schema)

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> Response:
        if not _signed_in(request):
            return RedirectResponse(f"/login?next={DOCS_URL}", status_code=303)
        root = request.scope.get("root_path", "")
        page: HTMLResponse = get_swagger_ui_html(
            openapi_url=f"{root}{OPENAPI_URL}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        )
        return page
