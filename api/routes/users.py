"""The current user, and user administration (admin)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api import accounts
from api.deps import AdminUser, CurrentUser, RowId, SessionDep
from api.pagination import Page, PageDep

router = APIRouter(tags=["users"])


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str | None
    email: str | None
    role: str
    is_active: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None


class UserCreate(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\w.\-@]+$")]
    role: Annotated[str, Field(pattern="^(viewer|staff|analyst|admin)$")]
    password: Annotated[str | None, Field(min_length=8, max_length=200)] = None
    display_name: Annotated[str | None, Field(max_length=200)] = None
    email: Annotated[str | None, Field(max_length=320)] = None


class TokenCreated(BaseModel):
    token: str = Field(description="只显示这一次，请妥善保存")
    name: str


class TokenCreate(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]


@router.get("/me", response_model=UserPublic, summary="当前用户")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.get("/users", response_model=Page[UserPublic], summary="用户列表（管理员）")
def list_users(_: AdminUser, session: SessionDep, page: PageDep) -> Page[UserPublic]:
    users, total = accounts.list_users(session, offset=page.offset, limit=page.page_size)
    return Page(items=[UserPublic.model_validate(u) for u in users], total=total,
                page=page.page, page_size=page.page_size)


@router.post("/users", response_model=UserPublic, status_code=201, summary="新建用户（管理员）")
def create_user(body: UserCreate, _: AdminUser, session: SessionDep) -> UserPublic:
    user = accounts.create_user(session, username=body.username, role=body.role, password=body.password,
                                display_name=body.display_name, email=body.email)
    return UserPublic.model_validate(user)


@router.post("/users/{username}/tokens", response_model=TokenCreated, status_code=201,
             summary="为用户生成 API 令牌（管理员）")
def create_token(username: str, body: TokenCreate, _: AdminUser, session: SessionDep) -> TokenCreated:
    user = accounts.get_user(session, username)
    return TokenCreated(token=accounts.create_token(session, user, body.name), name=body.name)


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: str
    prefix: str = Field(description="令牌开头几个字符，便于辨认")
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


@router.get("/users/{username}/tokens", response_model=Page[TokenPublic], summary="用户的 API 令牌（管理员）")
def list_tokens(username: str, _: AdminUser, session: SessionDep, page: PageDep) -> Page[TokenPublic]:
    tokens = accounts.list_tokens(session, accounts.get_user(session, username))
    chunk = tokens[page.offset:page.offset + page.page_size]
    return Page(items=[TokenPublic.model_validate(t) for t in chunk], total=len(tokens),
                page=page.page, page_size=page.page_size)


@router.delete("/tokens/{token_id}", response_model=TokenPublic, summary="吊销 API 令牌（管理员）")
def revoke_token(token_id: RowId, _: AdminUser, session: SessionDep) -> TokenPublic:
    return TokenPublic.model_validate(accounts.revoke_token(session, token_id))
