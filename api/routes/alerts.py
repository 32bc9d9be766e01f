"""Alerts and the review workflow over HTTP. Thin: every action is an ``alerts.workflow`` call,
every read an ``alerts.queries`` one.

Roles: viewers read; staff work alerts (transition, assign, comment, respond, create); analysts
also read and validate the alert rules.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import common, queries, workflow
from alerts.rules import AlertsConfigError, load_rules, parse_rules, rules_path, save_rules
from api.deps import (
    MAX_ROW_ID,
    AnalystUser,
    DbId,
    SessionDep,
    StaffUser,
    ViewerUser,
    get_current_user,
    require_role,
)
from api.pagination import Page
from api.problems import Problem
from api.routes.incidents import IncidentParts
from api.security import hash_token
from core.settings import get_settings
from core.tables import Notification, NotificationAttempt

router = APIRouter(tags=["alerts"])
log = logging.getLogger(__name__)

Status = Literal[
    "new", "acknowledged", "confirmed_rumor", "confirmed_concern", "dismissed", "responded", "closed"
]
Severity = Literal["low", "medium", "high", "urgent"]
Kind = Literal["rumor", "debunk_match", "spread", "concern", "keyword", "manual", "notice"]
AlertId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="预警编号")]


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("文本里不能有 NUL（\\x00）字符")
    return value


NoNul = AfterValidator(_no_nul)
Text = Annotated[str, NoNul, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]


# ----------------------------------------------------------------------------- schemas


class AlertPublic(BaseModel):
    """One row of the alert queue."""

    id: int
    kind: str
    title: str
    severity: str
    risk_score: float
    category: str | None
    status: str
    assignee_id: int | None
    assignee: str | None
    story_id: int | None
    topic_id: int | None
    incident_id: int | None
    post_count: int
    group_count: int
    escalation_level: int
    created_at: dt.datetime
    updated_at: dt.datetime


class EvidencePost(BaseModel):
    id: int
    channel: str
    title: str | None
    text: str = Field(description="原文（未转义，显示时必须转义）")
    text_html: str = Field(description="已转义的 HTML，关键词用 <mark> 标出")
    highlights: list[list[Any]] = Field(description="[起, 止, 词]，按 text 的字符位置")
    terms: list[str]
    url: str | None
    author: str | None
    published_at: dt.datetime | None
    collected_at: dt.datetime
    group: str | None
    source: str | None
    category: str | None
    is_local: bool | None
    rumor_probability: float | None
    refutes: bool = Field(description="帖子在辟谣/澄清它引用的说法：列为证据，但不计入传播，不触发也不升级预警")
    stance: str | None = Field(description="立场标记：辟谣/澄清；传播或其他为 null")
    refutation_cues: list[str] = Field(description="判断为辟谣的依据（命中的提示词类别），如 谣言、没有…安排")


class HourCount(BaseModel):
    hour: str = Field(description="UTC 小时，如 2026-11-28T14")
    count: int


class Reached(BaseModel):
    name: str
    posts: int


class DebunkRef(BaseModel):
    id: int
    claim: str
    refutation: str
    publisher: str | None
    url: str | None
    published_at: dt.datetime | None
    similarity: float


class HistoryEvent(BaseModel):
    id: int
    at: dt.datetime
    actor_id: int | None
    actor: str | None
    action: str
    from_status: str | None
    to_status: str | None
    comment: str | None
    detail: dict[str, Any]


class ResponsePublic(BaseModel):
    id: int
    text: str
    channels: list[Any]
    url: str | None
    published_at: dt.datetime
    created_by: int | None
    created_at: dt.datetime
    spread_before: dict[str, Any] = Field(description="回应前各小时的帖数：hours, posts, per_hour, series")
    spread_after: dict[str, Any] = Field(
        description="回应后：observed_hours, posts, per_hour, change, complete"
    )


class AlertDetail(BaseModel):
    id: int
    kind: str
    title: str
    summary: str | None
    severity: str
    risk_score: float
    score_parts: dict[str, Any] = Field(description="风险分各部分：value, points, max, text（中文说明）")
    rules_fired: list[Any]
    category: str | None
    status: str
    allowed_transitions: list[str]
    assignee_id: int | None
    assignee: str | None
    story_id: int | None
    topic_id: int | None
    incident_id: int | None
    incident: IncidentParts | None = Field(
        description="这件事：按角色分组的帖子（说法、询问、反应、辟谣与通知）、各群传播、时间线"
    )
    post_count: int
    group_count: int
    escalation_level: int
    escalated_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    suggested_response: str | None = Field(
        description="回应草稿（按当前回应模板生成），工作人员修改后再发布；【】中的内容须换成实际情况才能记录发布；不会自动发布"
    )
    created_at: dt.datetime
    updated_at: dt.datetime
    posts: list[EvidencePost]
    timeline: list[HourCount]
    groups: list[Reached]
    sources: list[Reached]
    debunks: list[DebunkRef]
    history: list[HistoryEvent]
    responses: list[ResponsePublic]


class TransitionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Status = Field(description="目标状态")
    comment: Annotated[str, NoNul, StringConstraints(max_length=5000)] | None = None


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: DbId | Literal["me"] | None = Field(description='用户 ID、"me"（指派给自己）或 null（取消指派）')


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Text


class RespondBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, NoNul, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)] = (
        Field(description="发布的辟谣或答复全文")
    )
    channels: Annotated[
        list[Annotated[str, NoNul, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]],
        Field(max_length=20),
    ] = Field(default_factory=list, description="发布渠道，如 镇政府公众号、村村通广播、村民群")
    url: Annotated[str, NoNul, StringConstraints(max_length=2048, pattern=r"^https?://\S+$")] | None = None
    published_at: AwareDatetime | None = Field(None, description="发布时间（带时区）；缺省为现在")


class ManualAlertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic_id: Annotated[int | None, Field(ge=1, le=2**62)] = None
    story_id: Annotated[int | None, Field(ge=1, le=2**62)] = None
    post_id: Annotated[int | None, Field(ge=1, le=2**62)] = None
    title: (
        Annotated[str, NoNul, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] | None
    ) = None
    severity: Severity | None = None
    comment: Annotated[str, NoNul, StringConstraints(max_length=5000)] | None = None


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    other_alert_id: Annotated[int, Field(ge=1, le=MAX_ROW_ID, description="并入本预警的另一条预警")]


class CommentPublic(BaseModel):
    id: int
    at: dt.datetime
    actor_id: int | None
    comment: str


class NotificationPublic(BaseModel):
    id: int
    channel: str
    target: str
    subject: str | None
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    attempt_log: list[dict[str, Any]]


class RulesPublic(BaseModel):
    path: str
    rules: dict[str, Any]


class RulesValidation(BaseModel):
    ok: bool
    rules: int
    enabled: int
    message: str


# ----------------------------------------------------------------------------- routes


def _local(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(get_settings().timezone))


def _assignee_filter(value: str | None, user_id: int) -> tuple[int | None, bool]:
    if value is None or value == "":
        return None, False
    if value == "me":
        return user_id, False
    if value == "none":
        return None, True
    if value.isdigit() and len(value) < 19:
        return int(value), False
    raise Problem(422, "输入无效", f"assignee 只能是 me、none 或用户 ID，收到 '{value[:50]}'")


_bearer = HTTPBearer(auto_error=False, description="API token from `yuqing tokens create NAME`")
#: Bearer tokens already checked by api.deps for the alert queue, for a few seconds: the full check
#: costs more than the page. A revoked token or a disabled user is refused again within TOKEN_TTL.
TOKEN_TTL = 5.0
_token_users: dict[str, tuple[float, int]] = {}


def _cached_user_id(credentials: HTTPAuthorizationCredentials | None) -> int | None:
    if credentials is None:
        return None
    hit = _token_users.get(hash_token(credentials.credentials))
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


def _queue_user_id(
    request: Request, session: Session, credentials: HTTPAuthorizationCredentials | None
) -> int:
    key = hash_token(credentials.credentials) if credentials is not None else None
    user = require_role("viewer")(get_current_user(request, session, credentials))
    if key is not None:
        if len(_token_users) > 10_000:
            _token_users.clear()
        _token_users[key] = (time.monotonic() + TOKEN_TTL, user.id)
    return user.id


def _json_default(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


class AlertQuery(BaseModel):
    """Filters of the alert queue (query parameters)."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(1, ge=1, le=1_000_000, description="第几页，从 1 开始")
    page_size: int = Field(20, ge=1, le=200, description="每页条数")
    status: list[Status] = Field(default_factory=list, description="状态，可多选")
    severity: list[Severity] = Field(default_factory=list, description="等级，可多选")
    category: list[Annotated[str, NoNul, StringConstraints(max_length=50)]] = Field(
        default_factory=list, description="类别，可多选"
    )
    kind: list[Kind] = Field(default_factory=list, description="类型，可多选")
    assignee: Annotated[str, NoNul, StringConstraints(max_length=30)] | None = Field(
        None, description="me、none（未指派）或用户 ID"
    )
    since: dt.datetime | None = Field(None, description="创建时间不早于（无时区按本地时间）")
    until: dt.datetime | None = Field(None, description="创建时间早于")
    q: Annotated[str, NoNul, StringConstraints(max_length=200)] | None = Field(
        None, description="在标题和摘要中搜索"
    )
    story_id: int | None = Field(None, ge=1, le=2**62)
    topic_id: int | None = Field(None, ge=1, le=2**62)
    incident_id: int | None = Field(None, ge=1, le=2**62, description="只看这件事（事件）的预警")


_LIST_PARAMS = frozenset(n for n, f in AlertQuery.model_fields.items() if "list" in str(f.annotation))


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI query parameters of a model (documented as if declared one by one)."""
    params = []
    for name, prop in model.model_json_schema()["properties"].items():
        schema = dict(prop)
        description = schema.pop("description", "")
        schema.pop("title", None)
        if "anyOf" in schema:  # "X or null": in a query string, simply absent
            schema.update(next(b for b in schema.pop("anyOf") if b.get("type") != "null"))
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
            "description": description,
        }
        if schema.get("type") == "array":
            param |= {"style": "form", "explode": True}
        params.append(param)
    return params


def _parse_query(request: Request) -> AlertQuery:
    # Parsed here rather than by FastAPI: 14 declared parameters cost more than the whole query.
    qp = request.query_params
    data: dict[str, Any] = {}
    for name in AlertQuery.model_fields:
        if name in _LIST_PARAMS:
            values = qp.getlist(name)
            if values:
                data[name] = values
        elif name in qp:
            data[name] = qp[name]
    try:
        return AlertQuery.model_validate(data)
    except ValidationError as err:
        raise RequestValidationError(
            [{"loc": ("query", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in err.errors()]
        ) from err


@router.get(
    "/alerts",
    response_model=Page[AlertPublic],
    summary="预警列表（按等级、再按最近更新排序）",
    openapi_extra={"parameters": _query_parameters(AlertQuery)},
)
async def list_alerts(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    # The queue is polled by every open console, so this route is written for speed: parameters
    # validated in one model, a cached token check (api.deps on a miss), plain SQL on a connection,
    # no threadpool hop for the index-only queries.
    query = _parse_query(request)
    page, page_size, q = query.page, query.page_size, query.q

    def work() -> bytes:
        user_id = _cached_user_id(credentials)
        if user_id is None:  # a full check through api.deps, in its own short session
            with request.app.state.sessionmaker() as session, session.begin():
                user_id = _queue_user_id(request, session, credentials)
        assignee_id, unassigned = _assignee_filter(query.assignee, user_id)
        filters = queries.AlertFilters(
            status=query.status,
            severity=query.severity,
            category=query.category,
            kind=query.kind,
            assignee_id=assignee_id,
            unassigned=unassigned,
            since=_local(query.since),
            until=_local(query.until),
            q=q.strip() if q and q.strip() else None,
            story_id=query.story_id,
            topic_id=query.topic_id,
            incident_id=query.incident_id,
        )
        with request.app.state.engine.connect() as conn:
            items, total = queries.list_alerts(conn, filters, offset=(page - 1) * page_size, limit=page_size)
        body = {"items": items, "total": total, "page": page, "page_size": page_size}
        return json.dumps(body, ensure_ascii=False, default=_json_default).encode("utf-8")

    # Index-only queries take well under a millisecond: run them right here. A text search scans
    # and may take longer, so it goes to a worker thread and does not hold up other requests.
    body = await run_in_threadpool(work) if q else work()
    return Response(body, media_type="application/json")


@router.post(
    "/alerts", response_model=AlertDetail, status_code=201, summary="人工创建预警（从话题、事件或帖子）"
)
def create_alert(body: ManualAlertBody, user: StaffUser, session: SessionDep) -> dict[str, Any]:
    alert = workflow.create_manual(
        session,
        actor=user,
        topic_id=body.topic_id,
        story_id=body.story_id,
        post_id=body.post_id,
        title=body.title,
        severity=body.severity,
        comment=body.comment,
    )
    return queries.alert_detail(session, alert.id)


@router.get("/alerts/{alert_id}", response_model=AlertDetail, summary="预警详情与证据")
def get_alert(
    alert_id: AlertId,
    _: ViewerUser,
    session: SessionDep,
    posts_limit: Annotated[int, Query(ge=1, le=500, description="最多返回多少条证据帖子")] = 50,
) -> dict[str, Any]:
    return queries.alert_detail(session, alert_id, posts_limit=posts_limit)


@router.post(
    "/alerts/{alert_id}/transition", response_model=AlertDetail, summary="改变状态（无效的状态变化返回 409）"
)
def transition(
    alert_id: AlertId, body: TransitionBody, user: StaffUser, session: SessionDep
) -> dict[str, Any]:
    workflow.transition(session, alert_id, body.to, actor=user, comment=body.comment)
    return queries.alert_detail(session, alert_id)


@router.post(
    "/alerts/{alert_id}/merge",
    response_model=AlertDetail,
    summary="合并预警：另一条预警是同一件事（其帖子并入本预警的事件，另一条预警关闭并入本预警）",
)
def merge(alert_id: AlertId, body: MergeBody, user: StaffUser, session: SessionDep) -> dict[str, Any]:
    workflow.merge_alerts(session, alert_id, body.other_alert_id, actor=user)
    return queries.alert_detail(session, alert_id)


@router.post("/alerts/{alert_id}/assign", response_model=AlertDetail, summary="指派处理人")
def assign(alert_id: AlertId, body: AssignBody, user: StaffUser, session: SessionDep) -> dict[str, Any]:
    target = user.id if body.assignee == "me" else body.assignee
    if isinstance(target, int) and not 1 <= target <= 2**62:
        raise Problem(404, "未找到", f"用户 #{target} 不存在")
    workflow.assign(session, alert_id, target, actor=user)
    return queries.alert_detail(session, alert_id)


@router.post("/alerts/{alert_id}/comments", response_model=CommentPublic, status_code=201, summary="添加备注")
def comment(alert_id: AlertId, body: CommentBody, user: StaffUser, session: SessionDep) -> CommentPublic:
    event = workflow.add_comment(session, alert_id, body.text, actor=user)
    return CommentPublic(id=event.id, at=event.at, actor_id=event.actor_id, comment=event.comment or "")


@router.post(
    "/alerts/{alert_id}/responses",
    response_model=ResponsePublic,
    status_code=201,
    summary="记录已发布的回应（并计算回应前后的传播）",
)
def respond(alert_id: AlertId, body: RespondBody, user: StaffUser, session: SessionDep) -> dict[str, Any]:
    r = workflow.respond(
        session,
        alert_id,
        text=body.text,
        channels=body.channels,
        url=body.url,
        published_at=body.published_at,
        actor=user,
    )
    return queries.response_dict(r)


@router.get(
    "/alerts/{alert_id}/notifications",
    response_model=list[NotificationPublic],
    summary="这条预警的通知及每次发送尝试",
)
def alert_notifications(alert_id: AlertId, _: ViewerUser, session: SessionDep) -> list[dict[str, Any]]:
    common.get_alert(session, alert_id)
    rows = list(
        session.scalars(
            select(Notification).where(Notification.alert_id == alert_id).order_by(Notification.id)
        )
    )
    attempts: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for a in session.scalars(
            select(NotificationAttempt)
            .where(NotificationAttempt.notification_id.in_([n.id for n in rows]))
            .order_by(NotificationAttempt.id)
        ):
            attempts.setdefault(a.notification_id, []).append(
                {
                    "at": a.at,
                    "ok": a.ok,
                    "status_code": a.status_code,
                    "error": a.error,
                    "duration_ms": a.duration_ms,
                }
            )
    return [
        {
            "id": n.id,
            "channel": n.channel,
            "target": _mask_target(n.channel, n.target),
            "subject": n.subject,
            "status": n.status,
            "attempts": n.attempts,
            "next_attempt_at": n.next_attempt_at,
            "last_error": n.last_error,
            "created_at": n.created_at,
            "sent_at": n.sent_at,
            "attempt_log": attempts.get(n.id, []),
        }
        for n in rows
    ]


def _mask_target(channel: str, target: str) -> str:
    # Robot URLs carry their access token: show the host only.
    if channel == "email":
        return target
    return target.split("?", 1)[0].rsplit("/", 1)[0] + "/…" if "://" in target else "…"


@router.get("/alert-rules", response_model=RulesPublic, summary="当前的预警规则（分析员）")
def get_rules(_: AnalystUser) -> RulesPublic:
    return RulesPublic(path=str(rules_path()), rules=load_rules().model_dump(mode="json"))


@router.post(
    "/alert-rules/validate", response_model=RulesValidation, summary="检查规则 YAML 的写法（分析员）"
)
def validate_rules(
    _: AnalystUser,
    text: Annotated[
        str, Body(media_type="text/plain", max_length=200_000, description="规则文件的 YAML 全文")
    ],
) -> RulesValidation:
    try:
        cfg = parse_rules(text, origin="提交的规则")
    except AlertsConfigError as err:
        return RulesValidation(ok=False, rules=0, enabled=0, message=str(err))
    enabled = sum(1 for r in cfg.rules if r.enabled)
    return RulesValidation(
        ok=True,
        rules=len(cfg.rules),
        enabled=enabled,
        message=f"规则有效：共 {len(cfg.rules)} 条，启用 {enabled} 条",
    )


@router.put(
    "/alert-rules", response_model=RulesValidation, summary="保存新的预警规则（分析员；先检查，无效则不保存）"
)
def put_rules(
    user: AnalystUser,
    text: Annotated[
        str, Body(media_type="text/plain", max_length=200_000, description="规则文件的 YAML 全文")
    ],
) -> RulesValidation:
    try:
        path, cfg = save_rules(text)
    except AlertsConfigError as err:
        raise Problem(422, "规则无效", f"{err}。规则没有保存。") from err
    enabled = sum(1 for r in cfg.rules if r.enabled)
    log.info("alert rules saved to %s by %s (%s rules)", path, user.username, len(cfg.rules))
    return RulesValidation(
        ok=True,
        rules=len(cfg.rules),
        enabled=enabled,
        message=f"规则已保存到 {path}：共 {len(cfg.rules)} 条，启用 {enabled} 条，立即生效",
    )
