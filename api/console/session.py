"""Console sessions: a signed, HttpOnly cookie; CSRF tokens; the middleware that reads them.

The cookie holds only ``{"u": user id, "c": csrf token}``, signed with the instance secret
(itsdangerous, with a timestamp so it expires). The middleware puts the user id on
``request.state.user_id``, which :func:`api.deps.get_current_user` already accepts, so the
console and the API share one notion of "who is this" and one set of role checks. A session
ended early (退出, or a new password) is recorded in the database and refused there
(`api.accounts.console_session_live`), so it stays ended across restarts and workers.

CSRF: every unsafe request (POST, ...) that rides on the cookie must prove it came from our
own page: either an ``X-CSRF-Token`` header (scripts on our pages) or a ``csrf_token`` form
field (plain forms, checked by the console router). API routes under ``/api/`` only accept the
cookie on unsafe methods with the header; bearer tokens are never affected. A request whose
``Origin`` names another site is refused outright. SameSite=Lax on the cookie is a second wall.
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.types import ASGIApp, Receive, Scope, Send

from core.settings import get_settings

SESSION_COOKIE = "yuqing_session"
LOGIN_COOKIE = "yuqing_login"  # double-submit token for the login form (no session yet)
SESSION_HOURS = 12  # one office day; then log in again
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Paths that are not the console: the JSON API and its documentation.
API_PREFIXES = ("/api/", "/docs", "/openapi.json", "/health")


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().secret(), salt=salt)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def dump_session(user_id: int, csrf: str) -> str:
    return _serializer("yuqing-console-session").dumps({"u": user_id, "c": csrf})


def load_session(value: str) -> dict[str, Any] | None:
    """The session payload plus ``"t"``, when it was signed (aware UTC), or None when the cookie
    is forged, malformed or expired. Whether it was ended since (退出, a new password) is the
    database's answer: `api.accounts.console_session_live`."""
    try:
        data, signed_at = _serializer("yuqing-console-session").loads(
            value, max_age=SESSION_HOURS * 3600, return_timestamp=True)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int) or not isinstance(data.get("c"), str):
        return None
    return data | {"t": signed_at}


def tokens_match(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _cookies(scope: Scope) -> dict[str, str]:
    raw = _header(scope, b"cookie")
    if not raw:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a garbled Cookie header is simply no session
        return {}
    return {k: m.value for k, m in jar.items()}


def _origin_ok(scope: Scope) -> bool:
    """False when the browser says the request comes from another site."""
    origin = _header(scope, b"origin")
    if origin is None or origin == "null":
        # Old browsers send no Origin on same-site form posts; 'null' comes from sandboxed frames
        # and privacy settings: neither proves anything, the CSRF token decides.
        return True
    given = origin.split("://", 1)[-1].rstrip("/")
    # Our own host as the browser addressed it, or the public address behind a reverse proxy
    # that does not pass the Host header on.
    public = get_settings().base_url.split("://", 1)[-1].split("/", 1)[0]
    return given in {_header(scope, b"host") or "", public}


def is_console_path(path: str) -> bool:
    return not path.startswith(API_PREFIXES)


class ConsoleSessionMiddleware:
    """Reads the session cookie into ``request.state`` (pure ASGI: no body is touched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        method = scope.get("method", "GET")
        cookies = _cookies(scope)
        state["login_cookie"] = cookies.get(LOGIN_COOKIE)
        bearer = _header(scope, b"authorization")
        data = load_session(cookies[SESSION_COOKIE]) if SESSION_COOKIE in cookies else None
        if data is not None and not bearer:
            csrf = data["c"]
            state["csrf_token"] = csrf
            state["session_signed_at"] = data["t"]
            header_ok = tokens_match(csrf, _header(scope, CSRF_HEADER))
            state["csrf_header_ok"] = header_ok
            if method in SAFE_METHODS:
                state["user_id"] = data["u"]
            elif not _origin_ok(scope):
                await _refuse(send, "跨站请求被拒绝：请从本系统的页面提交。")
                return
            elif is_console_path(scope.get("path", "")) or header_ok:
                # Console forms are checked against their csrf_token field by the console router.
                state["user_id"] = data["u"]
        await self.app(scope, receive, send)


async def _refuse(send: Send, message: str) -> None:
    body = f"<!doctype html><meta charset=utf-8><title>403</title><p>{message}</p>".encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
