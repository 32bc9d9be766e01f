"""Users, roles and API tokens (service functions; the session is passed in)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from api.security import hash_password, hash_token, new_token, verify_password
from core.errors import Conflict, InvalidInput, NotFound
from core.tables import ApiToken, EndedSession, User, utcnow

#: Ordered from least to most privileged; a role may do all that the roles before it may.
ROLES = ("viewer", "staff", "analyst", "admin")
ROLE_NAMES_ZH = {"viewer": "只读", "staff": "工作人员", "analyst": "分析员", "admin": "管理员"}


def role_rank(role: str) -> int:
    return ROLES.index(role)


def create_user(session: Session, *, username: str, role: str, password: str | None = None,
                display_name: str | None = None, email: str | None = None) -> User:
    if role not in ROLES:
        raise InvalidInput(f"未知角色 '{role}'：可选 {', '.join(ROLES)}")
    if not username.strip():
        raise InvalidInput("用户名不能为空")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"用户 '{username}' 已存在")
    user = User(username=username, role=role, display_name=display_name, email=email,
                password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"用户 '{username}' 不存在：先用 `yuqing users add {username} --role staff` 创建")
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Set the password; console sessions signed before now stop working (a cookie copied by
    someone who knew the old password must not outlive it)."""
    user.password_hash = hash_password(password)
    # whole seconds: the cookie's signed timestamp has no fraction, and a login right after the
    # change must still count as after it
    user.sessions_valid_from = utcnow().replace(microsecond=0)


def end_console_session(session: Session, user_id: int, csrf: str, *, keep: dt.timedelta) -> None:
    """Record that the console session with this CSRF token has ended (idempotent), and forget
    ended sessions older than ``keep`` (their signed cookies have expired by then)."""
    now = utcnow()
    session.execute(delete(EndedSession).where(EndedSession.ended_at < now - keep))
    key = hash_token(csrf)
    if session.get(EndedSession, key) is None:
        session.add(EndedSession(token_hash=key, user_id=user_id, ended_at=now))
    session.flush()


def console_session_live(session: Session, user: User, csrf: str, signed_at: dt.datetime) -> bool:
    """Whether a validly signed console cookie still opens the console for ``user``."""
    if not user.is_active:
        return False
    if user.sessions_valid_from is not None and signed_at < user.sessions_valid_from:
        return False
    return session.get(EndedSession, hash_token(csrf)) is None


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("no such user: this hash only makes unknown names cost the same time")


def authenticate_password(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username, User.is_active.is_(True)))
    if user is None or not user.password_hash:
        # Verify anyway, so the answer takes as long as for a real user (names can't be probed).
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    user.last_login_at = utcnow()
    return user


def create_token(session: Session, user: User, name: str, *, kind: str = "user",
                 expires_at: dt.datetime | None = None) -> str:
    """Make a token for ``user`` and return it in clear (the only time it is visible)."""
    token = new_token()
    session.add(ApiToken(user_id=user.id, name=name, kind=kind, token_hash=hash_token(token),
                         prefix=token[:10], expires_at=expires_at))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> tuple[User, ApiToken] | None:
    row = session.execute(
        select(User, ApiToken).join(ApiToken.user).where(ApiToken.token_hash == hash_token(token))
    ).first()
    if row is None:
        return None
    user, tok = row
    now = utcnow()
    if tok.revoked_at is not None or not user.is_active or (tok.expires_at and tok.expires_at < now):
        return None
    # Touch at most once a minute: a write per request would serialise SQLite readers.
    if tok.last_used_at is None or now - tok.last_used_at > dt.timedelta(minutes=1):
        tok.last_used_at = now
    return user, tok


def list_users(session: Session, *, offset: int = 0, limit: int = 50) -> tuple[list[User], int]:
    total = session.scalar(select(func.count()).select_from(User)) or 0
    users = list(session.scalars(select(User).order_by(User.id).offset(offset).limit(limit)))
    return users, total


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def revoke_token(session: Session, token_id: int) -> ApiToken:
    """Revoke a token (idempotent): it stops working at once and stays listed as revoked."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"令牌 {token_id} 不存在")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token
