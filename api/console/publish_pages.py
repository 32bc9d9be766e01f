"""The alert page's 发布 section: draft a publication, approve it (a second person), send it to
chat groups, see each group's result, download the 辟谣 card and the tip poster.

Routes are thin: :mod:`alerts.publish` does the work; messages go out in the background right
after approval (and by `yuqing run`'s delivery job).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import Response

from alerts import publish, states
from alerts.publish_delivery import deliver_publications
from api import accounts
from api.console.render import render
from api.console.web import PageUser, back, check_csrf, committing, need_role, note_drift
from api.deps import RowId, SessionDep
from core.settings import get_settings
from core.tables import Alert, User

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf), Depends(note_drift)])


def publish_context(session: Any, alert: Alert, user: User) -> dict[str, Any]:
    """What the alert page needs for its 发布 section."""
    settings = get_settings()
    publications = publish.list_publications(session, alert.id)
    can_draft = accounts.role_rank(user.role) >= accounts.role_rank("staff") and alert.status in states.OPEN_STATES
    return {
        "publications": publications,
        "publish_defaults": publish.default_texts(session, alert) if can_draft else {},
        "publish_groups": publish.group_choices(session, alert) if can_draft else [],
        "can_draft": can_draft,
        "can_approve": accounts.role_rank(user.role) >= accounts.role_rank(settings.publish_approver_role),
        "single_approver": settings.publish_single_approver,
        "approver_role_zh": accounts.ROLE_NAMES_ZH.get(settings.publish_approver_role, settings.publish_approver_role),
        "publish_respondable": alert.status in ("confirmed_rumor", "confirmed_concern", "responded"),
        "publish_action_zh": publish.ACTION_ZH,
    }


def _back(alert_id: int, *, msg: str) -> Response:
    return back(f"/alerts/{alert_id}#publish", msg=msg)


def _send_after(request: Request, background: BackgroundTasks, publication_id: int) -> None:
    background.add_task(deliver_publications, request.app.state.engine, publication_id=publication_id)


@router.get("/publications")
def day_page(request: Request, user: PageUser, session: SessionDep, day: str = "") -> Response:
    """The day's approved publications: groups reached and the spread before/after each."""
    tz = ZoneInfo(get_settings().timezone)
    try:
        chosen = dt.date.fromisoformat(day) if day else dt.datetime.now(tz).date()
    except ValueError:
        return back("/publications", err=f"日期“{day[:20]}”无法识别：请用日期选择器选择")
    return render(request, "publications.html", {
        "day": publish.publications_of_day(session, chosen, tz), "publish_status_zh": publish.TARGET_STATUS_ZH,
    })


@router.post("/alerts/{alert_id}/publications")
def draft(alert_id: RowId, user: PageUser, session: SessionDep,
          claim: Annotated[str, Form(max_length=2000)] = "", text: Annotated[str, Form(max_length=5000)] = "",
          url: Annotated[str, Form(max_length=2048)] = "",
          group_ids: Annotated[list[str] | None, Form(max_length=publish.MAX_TARGETS)] = None) -> Response:
    need_role(user, "staff", "起草发布稿")
    chosen = [int(g) for g in group_ids or [] if g.isdigit() and 0 < int(g) <= 2**62]
    with committing(session, f"/alerts/{alert_id}#publish"):
        publication, created = publish.draft(session, alert_id, claim=claim, text=text, url=url or None,
                                             group_ids=chosen, actor=user)
    how = "单人批准已开启，您可以直接批准" if get_settings().publish_single_approver else "请另一位有批准权限的同事批准"
    return _back(alert_id, msg=f"发布稿 #{publication.id} 已提交，{how}" if created else f"发布稿 #{publication.id} 已存在，无需重复提交")


@router.post("/alerts/{alert_id}/publications/{publication_id}/approve")
def approve(alert_id: RowId, publication_id: RowId, request: Request, user: PageUser, session: SessionDep,
            background: BackgroundTasks) -> Response:
    need_role(user, "staff", "批准发布")
    with committing(session, f"/alerts/{alert_id}#publish"):
        publication = publish.approve(session, publication_id, actor=user, alert_id=alert_id)
        targets = len(publish.publication_dict(session, publication)["targets"])
    _send_after(request, background, publication_id)
    return _back(alert_id, msg=f"已批准发布稿 #{publication_id}，已记录回应"
                 + (f"，正在发到 {targets} 个群（刷新查看结果）" if targets else ""))


@router.post("/alerts/{alert_id}/publications/{publication_id}/reject")
def reject(alert_id: RowId, publication_id: RowId, user: PageUser, session: SessionDep,
           reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    need_role(user, "staff", "退回发布稿")
    with committing(session, f"/alerts/{alert_id}#publish"):
        publish.reject(session, publication_id, actor=user, reason=reason, alert_id=alert_id)
    return _back(alert_id, msg=f"发布稿 #{publication_id} 已退回，不会发出")


@router.post("/alerts/{alert_id}/publications/{publication_id}/targets/{target_id}/retry")
def retry(alert_id: RowId, publication_id: RowId, target_id: RowId, request: Request, user: PageUser,
          session: SessionDep, background: BackgroundTasks) -> Response:
    need_role(user, "staff", "重新发送")
    with committing(session, f"/alerts/{alert_id}#publish"):
        target = publish.retry_target(session, publication_id, target_id, actor=user, alert_id=alert_id)
        name = target.group_name
    _send_after(request, background, publication_id)
    return _back(alert_id, msg=f"正在重新发到“{name}”")
