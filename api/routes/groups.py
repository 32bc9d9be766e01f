"""Chat groups: list with message counts (viewer), change name, tags and privacy (admin)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminUser, DbId, RowId, SessionDep, ViewerUser
from api.pagination import Page, PageDep
from core.chat_stats import hourly_counts
from core.tables import utcnow
from crawler.chats import groups as service

router = APIRouter(prefix="/groups", tags=["groups"])


class GroupPublic(BaseModel):
    id: int
    platform: str
    external_id: str
    name: str
    member_count: int | None
    tags: list[str]
    keep_names: bool = Field(description="为真时保存发送者昵称；默认以化名保存")
    enabled: bool = Field(description="停用的群不再接收新消息")
    created_at: dt.datetime
    message_count: int = 0
    last_message_at: dt.datetime | None = None


class GroupUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=30)]] | None, Field(max_length=20)] = (
        None
    )
    member_count: Annotated[int | None, Field(ge=0, le=10_000_000)] = None
    keep_names: bool | None = None
    enabled: bool | None = None


class HourlyCount(BaseModel):
    group_id: int
    hour: dt.datetime
    count: int


@router.get("", response_model=Page[GroupPublic], summary="群列表（含消息数）")
def list_groups(
    _: ViewerUser,
    session: SessionDep,
    page: PageDep,
    platform: Annotated[str | None, Query(max_length=20, description="qq / wechat / telegram …")] = None,
    q: Annotated[str | None, Query(max_length=100, description="群名包含")] = None,
    tag: Annotated[str | None, Query(max_length=30, description="标签，如 村民群")] = None,
    enabled: Annotated[bool | None, Query(description="只看启用 / 停用的群")] = None,
) -> Page[GroupPublic]:
    rows, total = service.list_groups(
        session, platform=platform, q=q, tag=tag, enabled=enabled, offset=page.offset, limit=page.page_size
    )
    return Page(
        items=[GroupPublic.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


@router.get("/activity", response_model=list[HourlyCount], summary="各群每小时消息数")
def activity(
    _: ViewerUser,
    session: SessionDep,
    hours: Annotated[int, Query(ge=1, le=24 * 31, description="最近多少小时")] = 24,
    group_id: Annotated[list[DbId] | None, Query(description="只看这些群", max_length=500)] = None,
) -> list[HourlyCount]:
    until = utcnow()
    rows = hourly_counts(session, until - dt.timedelta(hours=hours), until, group_ids=group_id)
    return [HourlyCount(group_id=r.group_id, hour=r.hour, count=r.count) for r in rows]


@router.get("/{group_id}", response_model=GroupPublic, summary="一个群")
def get_group(group_id: RowId, _: ViewerUser, session: SessionDep) -> GroupPublic:
    return GroupPublic.model_validate(service.group_dict(service.get_group(session, group_id)))


@router.patch(
    "/{group_id}", response_model=GroupPublic, summary="修改群：名称、标签、人数、保留昵称、启用（管理员）"
)
def update_group(group_id: RowId, body: GroupUpdate, _: AdminUser, session: SessionDep) -> GroupPublic:
    # an explicit null clears member_count; for the other fields it means "leave as is"
    changes = {
        k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k == "member_count"
    }
    group = service.update_group(session, group_id, changes)
    return GroupPublic.model_validate(service.group_dict(group))
