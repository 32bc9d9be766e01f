"""Incidents (matters, 一件事) over HTTP: list and read (viewers), and staff's corrections of the
grouping (split a post out, move a post). Merging two alerts is ``POST /alerts/{id}/merge``.

Thin: reads are ``alerts.matters`` calls, edits ``alerts.workflow`` calls (which change nlp's data
through ``nlp.incident_edits`` and keep the alerts in step). Errors: 404 unknown incident or post,
409 a post not in that incident or a merged incident, 422 bad input.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from alerts import matters, workflow
from api.deps import MAX_ROW_ID, RowId, SessionDep, StaffUser, ViewerUser
from api.pagination import Page, PageDep

router = APIRouter(prefix="/incidents", tags=["incidents"])

IncidentKind = Literal["rumor", "concern", "notice", "unknown"]
IncidentStatus = Literal["active", "dormant", "merged"]


class IncidentPublic(BaseModel):
    """One matter as the list shows it."""

    id: int
    kind: str = Field(description="rumor（疑似谣言）| concern（群众关切）| notice（官方通知）| unknown")
    kind_zh: str
    title: str | None = Field(description="标题（一句话说清这件事）")
    status: str = Field(description="active | dormant | merged")
    merged_into_id: int | None
    representative_post_id: int | None
    first_seen: dt.datetime
    last_seen: dt.datetime
    post_count: int
    spreading_count: int = Field(description="传播它的帖子数（谣言的说法、关切的诉求和询问）")
    group_count: int
    source_count: int
    role_counts: dict[str, int]
    max_rumor_probability: float | None
    risk: float | None
    debunk_id: int | None
    debunk_similarity: float | None
    category: str | None
    places: list[str]
    updated_at: dt.datetime
    alert_id: int | None = Field(description="跟踪这件事的最新预警")


class IncidentPost(BaseModel):
    id: int
    role: str
    role_zh: str
    role_confidence: float | None
    title: str | None
    text: str = Field(description="原文（未转义，显示时必须转义）")
    url: str | None
    author: str | None
    at: dt.datetime
    group: str | None
    source: str | None
    rumor_probability: float | None


class RoleSection(BaseModel):
    key: str = Field(description="claims | complaints | questions | reactions | responses | other")
    label: str
    count: int
    posts: list[IncidentPost]


class SpreadPlace(BaseModel):
    kind: str = Field(description="group（群）| source（网站或来源）")
    id: int
    name: str
    posts: int
    claims: int
    first_at: dt.datetime
    last_at: dt.datetime


class HourCount(BaseModel):
    hour: str
    count: int


class IncidentParts(IncidentPublic):
    """A matter by role: what goes round, what people ask and feel, and the answer."""

    roles: list[RoleSection]
    spread: list[SpreadPlace] = Field(description="每个群或来源：帖子数、首次和最后出现时间")
    timeline: list[HourCount]


class IncidentDetail(IncidentParts):
    matter_kind: str
    risk_parts: dict[str, Any] = Field(description="风险各部分及中文说明（分析阶段给出）")
    anchors: dict[str, Any]
    created_at: dt.datetime


class SplitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new_incident: bool = Field(True, description="true：拆出的帖子自成一件事；false：不属于任何事件")


class MoveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_incident_id: Annotated[int, Field(ge=1, le=MAX_ROW_ID, description="移入哪个事件")]


class EditPublic(BaseModel):
    changed: bool = Field(description="false：同样的操作已经做过（幂等）")
    incident: IncidentDetail
    other_incident: IncidentPublic | None = Field(description="拆出形成的新事件，或移入的目标事件")


@router.get("", response_model=Page[IncidentPublic], summary="事件（一件事）列表，最近活跃的在前")
def list_incidents(
    _: ViewerUser,
    session: SessionDep,
    page: PageDep,
    kind: Annotated[list[IncidentKind] | None, Query(description="按类型筛选")] = None,
    status: Annotated[list[IncidentStatus] | None, Query(description="按状态筛选（默认不含已合并的）")] = None,
    q: Annotated[str | None, Query(max_length=100, description="标题包含")] = None,
) -> dict[str, Any]:
    items, total = matters.list_incidents(
        session, kind=kind, status=status, q=(q or "").strip() or None, offset=page.offset, limit=page.page_size
    )
    return {"items": items, "total": total, "page": page.page, "page_size": page.page_size}


@router.get("/{incident_id}", response_model=IncidentDetail, summary="一件事：按角色分组的帖子、各群传播、时间线")
def get_incident(incident_id: RowId, _: ViewerUser, session: SessionDep) -> dict[str, Any]:
    return matters.incident_detail(session, incident_id)


@router.post(
    "/{incident_id}/posts/{post_id}/split",
    response_model=EditPublic,
    summary="把一条帖子从这件事中拆出（自成一件事，或不属于任何事件）",
)
def split_post(
    incident_id: RowId, post_id: RowId, user: StaffUser, session: SessionDep, body: SplitBody | None = None
) -> dict[str, Any]:
    result = workflow.split_incident_post(
        session, incident_id, post_id, new_incident=(body or SplitBody()).new_incident, actor=user
    )
    other = matters.incident_detail(session, result.new_incident_id) if result.new_incident_id else None
    return {"changed": result.changed, "incident": matters.incident_detail(session, incident_id), "other_incident": other}


@router.post("/{incident_id}/posts/{post_id}/move", response_model=EditPublic, summary="把一条帖子移到另一件事")
def move_post(incident_id: RowId, post_id: RowId, body: MoveBody, user: StaffUser, session: SessionDep) -> dict[str, Any]:
    result = workflow.move_incident_post(session, incident_id, post_id, body.to_incident_id, actor=user)
    return {
        "changed": result.changed,
        "incident": matters.incident_detail(session, incident_id),
        "other_incident": matters.incident_detail(session, body.to_incident_id),
    }
