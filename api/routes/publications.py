"""Publishing approved responses over HTTP: drafts, approval by a second person, the group
messages and their per-group results, the 辟谣 card, the tip poster, the day's measure.

Roles: viewers read (and download the card and poster); staff draft, reject and retry a group;
approving needs ``YUQING_PUBLISH_APPROVER_ROLE`` (analyst by default) and, unless the office set
``YUQING_PUBLISH_SINGLE_APPROVER``, someone other than the drafter. Thin: every action is an
``alerts.publish`` call; sending is ``alerts.publish_delivery``, started right after approval and
again by `yuqing run`'s delivery job.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from alerts import cards, publish
from alerts.common import get_alert
from alerts.publish_delivery import deliver_publications
from api.deps import MAX_ROW_ID, DbId, SessionDep, StaffUser, ViewerUser
from core.settings import get_settings

router = APIRouter(tags=["publications"])
log = logging.getLogger(__name__)

AlertId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="预警编号")]
PublicationId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="发布稿编号")]
TargetId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="发送对象（群）编号")]


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("文本里不能有 NUL（\\x00）字符")
    return value


NoNul = AfterValidator(_no_nul)


class PublicationDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claim: Annotated[str, NoNul, StringConstraints(strip_whitespace=True, min_length=1, max_length=publish.MAX_CLAIM)] = (
        Field(description="网传说法（卡片上写“网传”）")
    )
    text: Annotated[str, NoNul, StringConstraints(strip_whitespace=True, min_length=1, max_length=publish.MAX_TEXT)] = (
        Field(description="官方辟谣或答复：发到群里的文字，也是卡片正文")
    )
    url: Annotated[str, NoNul, StringConstraints(max_length=2048, pattern=r"^https?://\S+$")] | None = Field(
        None, description="辟谣全文链接（卡片上的二维码）"
    )
    group_ids: Annotated[list[DbId], Field(max_length=publish.MAX_TARGETS)] | None = Field(
        None, description="发到哪些群（chat_groups 编号）；缺省为这件事传播过的 QQ 群，[] 为不发群"
    )


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, NoNul, StringConstraints(strip_whitespace=True, max_length=1000)] | None = None


class TargetPublic(BaseModel):
    id: int
    group_id: int | None
    group_name: str
    platform: str
    status: str = Field(description="waiting 待批准 | pending 待发送 | sending | sent | failed（将重试）| "
                                    "unknown（结果未知，请核实）| dead | cancelled")
    status_zh: str
    attempts: int
    sent_at: dt.datetime | None
    message_id: str | None
    last_error: str | None


class PublicationPublic(BaseModel):
    id: int
    alert_id: int
    status: str = Field(description="draft 待批准 | approved 已批准 | rejected 已退回")
    status_zh: str
    claim: str
    text: str
    url: str | None
    publisher: str
    created_by: int | None
    created_by_name: str | None
    created_at: dt.datetime
    decided_by: int | None
    decided_by_name: str | None
    decided_at: dt.datetime | None
    reject_reason: str | None
    response_id: int | None = Field(description="批准时记录的回应")
    spread_before: dict[str, Any] = Field(description="发布前各小时的帖数：hours, posts, per_hour")
    spread_after: dict[str, Any] = Field(description="发布后：observed_hours, posts, per_hour, change, complete")
    target_counts: dict[str, int]
    targets: list[TargetPublic]


class GroupChoice(BaseModel):
    id: int
    name: str
    platform: str
    spread: bool = Field(description="这件事在这个群传播过")
    sendable: bool = Field(description="机器人能发到这个群（QQ 群）")
    default: bool = Field(description="默认勾选")


class PublicationForm(BaseModel):
    claim: str
    text: str
    url: str
    publisher: str
    groups: list[GroupChoice]
    approver_role: str
    single_approver: bool


class DayItem(PublicationPublic):
    alert_title: str | None
    incident_id: int | None
    change: float | None = Field(description="发布后每小时帖数相对发布前的变化（-0.6 即减少 60%）")


class DayMeasure(BaseModel):
    day: str
    publications: int
    groups_sent: int
    groups_not_sent: int
    median_change: float | None
    items: list[DayItem]


def _send_now(request: Request, publication_id: int) -> None:
    """Right after approval, in the background: the delivery job would get there within a minute."""
    try:
        deliver_publications(request.app.state.engine, publication_id=publication_id)
    except Exception:  # the scheduled delivery job sends whatever this leaves
        log.exception("sending publication #%s right after approval failed", publication_id)


@router.get("/alerts/{alert_id}/publications", response_model=list[PublicationPublic], summary="这条预警的发布稿")
def list_publications(alert_id: AlertId, _: ViewerUser, session: SessionDep) -> list[dict[str, Any]]:
    return publish.list_publications(session, alert_id)


@router.get("/alerts/{alert_id}/publication-form", response_model=PublicationForm,
            summary="起草发布稿的默认内容和可选的群（默认勾选这件事传播过的 QQ 群）")
def publication_form(alert_id: AlertId, _: ViewerUser, session: SessionDep) -> dict[str, Any]:
    alert = get_alert(session, alert_id)
    settings = get_settings()
    return publish.default_texts(session, alert) | {
        "publisher": settings.office_public_name, "groups": publish.group_choices(session, alert),
        "approver_role": settings.publish_approver_role, "single_approver": settings.publish_single_approver,
    }


@router.post("/alerts/{alert_id}/publications", response_model=PublicationPublic, status_code=201,
             summary="起草发布稿（同样的内容再提交一次返回原稿，200）")
def create_publication(alert_id: AlertId, body: PublicationDraft, user: StaffUser, session: SessionDep,
                       response: Response) -> dict[str, Any]:
    publication, created = publish.draft(session, alert_id, claim=body.claim, text=body.text, url=body.url,
                                         group_ids=body.group_ids, actor=user)
    if not created:
        response.status_code = 200
    return publish.publication_dict(session, publication)


@router.get("/alerts/{alert_id}/publications/{publication_id}", response_model=PublicationPublic,
            summary="一份发布稿及各群发送结果")
def get_publication(alert_id: AlertId, publication_id: PublicationId, _: ViewerUser,
                    session: SessionDep) -> dict[str, Any]:
    return publish.publication_dict(session, publish.get_publication(session, publication_id, alert_id=alert_id))


@router.post("/alerts/{alert_id}/publications/{publication_id}/approve", response_model=PublicationPublic,
             summary="批准发布（另一位有批准权限的人）：记录回应并发到所选的群")
def approve_publication(alert_id: AlertId, publication_id: PublicationId, user: StaffUser, session: SessionDep,
                        request: Request, background: BackgroundTasks) -> dict[str, Any]:
    publication = publish.approve(session, publication_id, actor=user, alert_id=alert_id)
    session.commit()  # before the messages go out: the sender reads the approval in its own session
    background.add_task(_send_now, request, publication.id)
    return publish.publication_dict(session, publication)


@router.post("/alerts/{alert_id}/publications/{publication_id}/reject", response_model=PublicationPublic,
             summary="退回发布稿（不会发出）")
def reject_publication(alert_id: AlertId, publication_id: PublicationId, body: RejectBody, user: StaffUser,
                       session: SessionDep) -> dict[str, Any]:
    publication = publish.reject(session, publication_id, actor=user, reason=body.reason, alert_id=alert_id)
    return publish.publication_dict(session, publication)


@router.post("/alerts/{alert_id}/publications/{publication_id}/targets/{target_id}/retry",
             response_model=PublicationPublic, summary="核实群里没收到后，重新发到这个群")
def retry_target(alert_id: AlertId, publication_id: PublicationId, target_id: TargetId, user: StaffUser,
                 session: SessionDep, request: Request, background: BackgroundTasks) -> dict[str, Any]:
    publish.retry_target(session, publication_id, target_id, actor=user, alert_id=alert_id)
    session.commit()
    background.add_task(_send_now, request, publication_id)
    return publish.publication_dict(session, publish.get_publication(session, publication_id))


@router.get("/alerts/{alert_id}/publications/{publication_id}/card.png", summary="辟谣卡片（1080 像素宽的 PNG）",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def publication_card(alert_id: AlertId, publication_id: PublicationId, _: ViewerUser, session: SessionDep) -> Response:
    publication = publish.get_publication(session, publication_id, alert_id=alert_id)
    alert = get_alert(session, alert_id)
    return Response(publish.card_png(publication, alert), media_type="image/png", headers={
        "Content-Disposition": f'inline; filename="piyao-{alert_id}-{publication_id}.png"',
        "Cache-Control": "private, max-age=60"})


@router.get("/publications/poster.{fmt}", summary="举报二维码海报（A4，PNG 或 PDF），张贴用",
            response_class=Response, responses={200: {"content": {"image/png": {}, "application/pdf": {}}}})
def tip_poster(fmt: Annotated[str, Path(pattern=r"^(png|pdf)$", description="png 或 pdf")], _: ViewerUser) -> Response:
    settings = get_settings()
    img = cards.tip_poster(tip_url=settings.base_url.rstrip("/") + "/tip", office=settings.office_public_name,
                           day=dt.datetime.now(ZoneInfo(settings.timezone)).date())
    body, media = (cards.png_bytes(img, dpi=cards.POSTER_DPI), "image/png") if fmt == "png" else \
        (cards.pdf_bytes(img), "application/pdf")
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="jubao-poster.{fmt}"', "Cache-Control": "private, max-age=300"})


@router.get("/publications", response_model=DayMeasure,
            summary="某天批准的发布：各群发送结果，以及这件事发布前后每小时的传播量")
def day_publications(_: ViewerUser, session: SessionDep,
                     day: Annotated[dt.date | None, Query(description="本地日期，如 2026-12-06；缺省为今天")] = None
                     ) -> dict[str, Any]:
    tz = ZoneInfo(get_settings().timezone)
    return publish.publications_of_day(session, day or dt.datetime.now(tz).date(), tz)
