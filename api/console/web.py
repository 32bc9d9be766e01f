"""Login, the per-request user, CSRF checks and error pages of the console (HTTP plumbing only)."""

from __future__ import annotations

import datetime as dt
import math
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import delete
from sqlalchemy.orm import Session

from api.accounts import role_rank
from api.console import queries
from api.console.session import SAFE_METHODS, tokens_match
from api.deps import SessionDep, get_current_user
from api.problems import Problem
from core.db import transaction
from core.errors import NotFound, YuqingError
from core.settings import get_settings
from core.tables import RateCounter, User, utcnow


@dataclass(frozen=True)
class Me:
    id: int
    username: str
    display_name: str | None
    role: str


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""


class ConsolePageError(Exception):
    """An error shown as a Chinese HTML page (403 / 404 / 400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class GoBack(Exception):
    """A refused console action: the browser goes back to ``path`` with the refusal shown (see `committing`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


@contextmanager
def committing(session: Any, back_to: str) -> Iterator[None]:
    """Run a console action's service calls and commit them before the redirect (so the next page
    shows the change). A missing row is the 404 page; any other refusal of a service (its Chinese
    message says what to do) rolls back and goes back to ``back_to`` with that message."""
    try:
        yield
        session.commit()
    except NotFound as err:
        session.rollback()
        raise ConsolePageError(404, str(err)) from err
    except YuqingError as err:
        session.rollback()
        raise GoBack(back_to, str(err)) from err


def console_user(request: Request, session: SessionDep) -> User:
    """The logged-in user, through the API's own dependency (one place decides who this is)."""
    try:
        user = get_current_user(request, session, None)
    except Problem as err:
        raise LoginRequired() from err
    # A plain copy for templates: error pages render after the DB session has been closed.
    request.state.console_user = Me(user.id, user.username, user.display_name, user.role)
    return user


PageUser = Annotated[User, Depends(console_user)]


def identify_for_page(request: Request) -> None:
    """Set ``request.state.console_user`` for a page rendered outside any route (the 404 page of
    an unknown path), so a logged-in user still gets the navigation; anonymous stays anonymous."""
    if getattr(request.state, "console_user", None) is not None or getattr(request.state, "user_id", None) is None:
        return
    with transaction(request.app.state.sessionmaker()) as session, suppress(LoginRequired):
        console_user(request, session)


def need_role(user: User, role: str, what: str = "此操作") -> None:
    if role_rank(user.role) < role_rank(role):
        from api.accounts import ROLE_NAMES_ZH

        raise ConsolePageError(403, f"{what}需要“{ROLE_NAMES_ZH[role]}”或更高角色，"
                                    f"您当前是“{ROLE_NAMES_ZH.get(user.role, user.role)}”。如需权限请联系管理员。")


async def check_csrf(request: Request) -> None:
    """Every unsafe console request must carry the session's CSRF token (form field or header)."""
    if request.method in SAFE_METHODS:
        return
    state = request.state
    if getattr(state, "csrf_header_ok", False):
        return
    expected = getattr(state, "csrf_token", None)
    given = None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else None
    if expected is None and getattr(state, "user_id", None) is None and request.headers.get("authorization"):
        return  # a bearer-token script: no cookie, nothing to forge
    if not tokens_match(expected, given):
        raise ConsolePageError(403, "表单已过期或来源不明（CSRF 校验失败）：请刷新页面后重试。")


def note_drift(request: Request, session: SessionDep) -> None:
    """Put the active model's drift status and whether alerts reach anyone on the request, for the
    header's warnings (logged-in pages only)."""
    if getattr(request.state, "user_id", None) is not None:
        request.state.drift = queries.drift(session)
        request.state.notify_health = queries.notify_health(session)


def safe_next(value: str | None) -> str:
    """Only local paths are valid redirect targets after login (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (("?" + request.url.query) if request.url.query else "")
    return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)


def back(path: str, *, msg: str | None = None, err: str | None = None) -> RedirectResponse:
    """Redirect after a POST (so reload does not repeat it), with a message to show."""
    path, hash_, fragment = path.partition("#")  # the message goes in the query, before any #anchor
    sep = "&" if "?" in path else "?"
    if msg:
        path += f"{sep}msg={quote(msg)}"
    elif err:
        path += f"{sep}err={quote(err)}"
    return RedirectResponse(path + hash_ + fragment, status_code=303)


def cookie_secure(request: Request) -> bool:
    return request.url.scheme == "https" or get_settings().base_url.startswith("https://")


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


# --------------------------------------------------------------------------- login throttling


class LoginThrottle:
    """Slows password guessing down, per user name and per client address, in the database.

    A name gets ``free`` failures within ``window`` seconds, then a wait that doubles up to 5
    minutes (guessing one account's password, from however many addresses). An address gets
    ``free_per_address`` failures (spraying one password across many names from one address).
    The counts live in ``rate_counters`` (keys ``login:...``, next to the tip page's and the
    publishing rate limits of core.throttle): a restart, a second worker or a spray of 10,000
    names does not reset them; rows older than the window are deleted as failures come in.
    """

    def __init__(self, free: int = 5, window: float = 900.0, free_per_address: int = 20,
                 first_wait: float = 15.0) -> None:
        self.free, self.window, self.free_per_address = free, window, free_per_address
        self.first_wait = first_wait  # seconds after the first failure past the free ones, then doubling

    @staticmethod
    def keys(address: str, username: str) -> tuple[str, str]:
        return f"login:user:{username.strip().lower()[:150]}", f"login:addr:{address[:150]}"

    def wait_seconds(self, session: Session, address: str, username: str) -> int:
        user_key, addr_key = self.keys(address, username)
        now = utcnow()
        waits = [self._wait(session.get(RateCounter, user_key), self.free, now),
                 self._wait(session.get(RateCounter, addr_key), self.free_per_address, now)]
        return max(waits)

    def _wait(self, row: RateCounter | None, free: int, now: dt.datetime) -> int:
        if row is None or (now - _aware(row.last_at)).total_seconds() > self.window or row.hits < free:
            return 0
        delay = min(300.0, self.first_wait * 2 ** min(10, row.hits - free))
        return max(0, math.ceil(delay - (now - _aware(row.last_at)).total_seconds()))

    def failed(self, session: Session, address: str, username: str) -> None:
        now = utcnow()
        stale = now - dt.timedelta(seconds=self.window)
        session.execute(delete(RateCounter).where(RateCounter.key.startswith("login:"), RateCounter.last_at < stale))
        for key in self.keys(address, username):
            row = session.get(RateCounter, key)
            if row is None:
                session.add(RateCounter(key=key, hits=1, first_at=now, last_at=now))
            else:
                row.hits += 1
                row.last_at = now
        session.flush()

    def succeeded(self, session: Session, address: str, username: str) -> None:
        # only the name's count: one right password must not reset an address that sprays names
        user_key, _ = self.keys(address, username)
        session.execute(delete(RateCounter).where(RateCounter.key == user_key))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


throttle = LoginThrottle()
