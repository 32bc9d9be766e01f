"""Residents' tips for staff (举报线索): the list, the measures, and marking abuse.

Viewers and above read the list; contacts are never returned to anyone (the API has no field
for them: a contact is opened only to send an answer). Staff mark a tip as abuse (closed
without a reply), optionally blocking its reporter, and clear the automatic insult flag
(``flag``: a tip of insults alone was closed by it, and is reopened).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from alerts import tip_queries
from api.deps import MAX_ROW_ID, SessionDep, StaffUser, ViewerUser
from api.pagination import Page, PageDep

router = APIRouter(prefix="/tips", tags=["tips"])
TipId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="线索编号")]


class TipPublic(BaseModel):
    id: int
    channel: str
    channel_zh: str
    received_at: dt.datetime
    text: str
    image_count: int
    reporter: str = Field(description="举报人化名（不可还原）")
    has_contact: bool = Field(description="是否留了联系方式（联系方式本身从不返回）")
    wants_answer: bool
    status: str
    status_zh: str
    debunk_id: int | None
    debunk_score: float | None
    first_reply: str | None = Field(description="当时自动回复的内容")
    answer: str | None = Field(description="工作人员的答复")
    answered_at: dt.datetime | None
    incident_id: int | None
    post_id: int | None
    delivery: dict[str, str] = Field(description="答复送达情况：first=首次回复，answer=工作人员答复")
    needs_call_back: bool = Field(description="已有答复但无法自动送达（电话、热线）：需人工回电")
    flag: Literal["insult"] | None = Field(description="自动标记：insult=含辱骂（只有辱骂的线索直接关闭、不答复；"
                                                       "另有诉求的留待人工，从不自动答复）")
    flag_zh: str | None
    flag_terms: str | None = Field(description="命中的辱骂词")
    auto_reply_held: str | None = Field(description="与辟谣匹配但未自动答复的原因（地点、数字、时间、事件不一致等）")


class AbuseIn(BaseModel):
    block: bool = Field(False, description="同时把此举报人加入黑名单（以后的线索不进入分析、不答复）")
    reason: str | None = Field(None, max_length=500)


@router.get("", response_model=Page[TipPublic], summary="举报线索列表")
def list_tips(
    _: ViewerUser,
    session: SessionDep,
    page: PageDep,
    status: Annotated[Literal["auto_answered", "acknowledged", "answered", "abuse", "closed"] | None,
                      Query(description="状态")] = None,
    channel: Annotated[Literal["web", "qq", "wechat", "hotline"] | None, Query(description="渠道")] = None,
    incident_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="事件编号")] = None,
    alert_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="预警编号")] = None,
) -> dict[str, Any]:
    items, total = tip_queries.list_tips(session, status=status, channel=channel, incident_id=incident_id,
                                         alert_id=alert_id, offset=page.offset, limit=page.page_size)
    return {"items": items, "total": total, "page": page.page, "page_size": page.page_size}


@router.get("/stats", summary="线索统计：每天、每个事件的收到数、自动答复、人工答复、答复用时中位数")
def tip_stats(
    _: ViewerUser, session: SessionDep, days: Annotated[int, Query(ge=1, le=366, description="最近几天")] = 14,
) -> dict[str, Any]:
    return tip_queries.tip_measures(session, days=days)


@router.post("/{tip_id}/flag/clear", response_model=TipPublic,
             summary="取消辱骂标记（被自动关闭的线索重新打开，待人工核实）")
def clear_flag(tip_id: TipId, user: StaffUser, session: SessionDep) -> dict[str, Any]:
    tip_queries.clear_flag(session, tip_id, user_id=user.id)
    return tip_queries.get_tip_view(session, tip_id)


@router.post("/{tip_id}/abuse", response_model=TipPublic, summary="标记为恶意/骚扰（关闭，不答复）")
def mark_abuse(tip_id: TipId, user: StaffUser, session: SessionDep,
               body: Annotated[AbuseIn | None, Body()] = None) -> dict[str, Any]:
    body = body or AbuseIn()
    tip_queries.mark_abuse(session, tip_id, user_id=user.id, block=body.block, reason=body.reason)
    return tip_queries.get_tip_view(session, tip_id)


class ReopenIn(BaseModel):
    unblock: bool = Field(False, description="同时把此举报人移出黑名单")


@router.post("/{tip_id}/reopen", response_model=TipPublic, summary="重新打开被标记为恶意/骚扰的线索（待人工核实）")
def reopen(tip_id: TipId, user: StaffUser, session: SessionDep,
           body: Annotated[ReopenIn | None, Body()] = None) -> dict[str, Any]:
    tip_queries.reopen(session, tip_id, user_id=user.id, unblock=(body or ReopenIn()).unblock)
    return tip_queries.get_tip_view(session, tip_id)
