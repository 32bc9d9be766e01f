"""FastAPI dependencies: the DB session, the current user from a bearer token, role checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from sqlalchemy.orm import Session

from api.accounts import console_session_live, role_rank, user_for_token
from api.problems import Problem
from core.db import transaction
from core.tables import User

_bearer = HTTPBearer(auto_error=False, description="API token from `yuqing tokens create NAME`")


def get_session(request: Request) -> Iterator[Session]:
    with transaction(request.app.state.sessionmaker()) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user behind the bearer token (or the console's session cookie, when one is set)."""
    cookie_user = getattr(request.state, "user_id", None)
    if credentials is None and cookie_user is not None:
        user = session.get(User, cookie_user)
        if user is not None and console_session_live(
            session, user, request.state.csrf_token, request.state.session_signed_at
        ):
            return user
    if credentials is None:
        raise Problem(401, "需要登录", "请求缺少 API 令牌：在请求头加 'Authorization: Bearer <令牌>'。",
                      headers={"WWW-Authenticate": "Bearer"})
    found = user_for_token(session, credentials.credentials)
    if found is None:
        raise Problem(401, "令牌无效", "API 令牌无效、已过期或已吊销：请用 `yuqing tokens create` 重新生成。",
                      headers={"WWW-Authenticate": "Bearer"})
    user, token = found
    if token.kind == "bot" and not request.url.path.startswith("/api/v1/ingest"):
        raise Problem(403, "权限不足", "机器人令牌只能用于推送消息 (/api/v1/ingest)。")
    request.state.token_kind = token.kind
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(role: str) -> Callable[..., User]:
    """Dependency: the current user must have at least ``role`` (viewer < staff < analyst < admin)."""

    def check(user: CurrentUser) -> User:
        if role_rank(user.role) < role_rank(role):
            raise Problem(403, "权限不足", f"此操作需要 '{role}' 或更高角色，当前用户是 '{user.role}'。")
        return user

    return check


ViewerUser = Annotated[User, Depends(require_role("viewer"))]
StaffUser = Annotated[User, Depends(require_role("staff"))]
AnalystUser = Annotated[User, Depends(require_role("analyst"))]
AdminUser = Annotated[User, Depends(require_role("admin"))]


#: The largest row id a URL may carry: bounded so that no integer reaches the database driver as
#: an overflow (a 500) instead of a 422.
MAX_ROW_ID = 2**62


# A row id path parameter, named in the API docs. Spelled out (not built by a function) so that
# mypy sees the type; the routes' own aliases (AlertId, ...) follow the same form.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="编号")]

#: A row id anywhere else (query lists, JSON bodies): the same bound, for the same reason.
DbId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
