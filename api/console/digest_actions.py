"""The console's digest actions: preview today's digest as it would be sent, and (admin) send it now.

Both call digest.service, the code `yuqing digest` and the scheduler run: the preview builds and
renders without storing anything; sending is idempotent per day and recipient list, like
`yuqing digest --send`, so a second click sends nothing twice.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.console.pages import digest_srcdoc
from api.console.render import render
from api.console.web import PageUser, back, check_csrf, need_role, note_drift
from api.deps import SessionDep
from core.errors import YuqingError
from core.settings import get_settings
from core.tables import Digest, utcnow

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf), Depends(note_drift)])


@router.get("/digests/today")
def digest_preview(request: Request, user: PageUser, session: SessionDep) -> Response:
    from digest.build import today
    from digest.config import audiences
    from digest.render import SECTIONS
    from digest.service import compose, prepare

    settings = get_settings()
    day = today(settings.timezone, utcnow())
    try:
        title, lists = audiences(settings)
    except YuqingError as err:
        title, lists = settings.digest_title, []
        config_error: str | None = str(err)
    else:
        config_error = None
    prepared = prepare(session, day, settings=settings)
    rendered, figures = compose(prepared, title=title, sections=SECTIONS, key="preview", revision=0,
                                settings=settings)
    preview = Digest(day=day, recipients_key="preview", recipients=[], subject=rendered.subject,
                     html=rendered.html, text=rendered.text, figures=figures, status="built")
    return render(request, "digest_preview.html", {
        "nav": "digests", "d": preview, "srcdoc": digest_srcdoc(preview), "lists": lists,
        "config_error": config_error, "can_send": user.role == "admin",
    })


@router.post("/digests/send")
def digest_send_now(user: PageUser, session: SessionDep) -> Response:
    from digest.service import send_day

    need_role(user, "admin", "立即发送日报")
    try:
        outcomes = send_day(session)
    except YuqingError as err:
        session.rollback()
        return back("/digests/today", err=str(err))
    sent = [o for o in outcomes if o.status == "sent"]
    failed = [o for o in outcomes if o.status == "failed"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    parts = []
    if sent:
        parts.append(f"已发送给 {'、'.join(e for o in sent for e in o.recipients)}")
    if skipped:
        parts.append(f"{len(skipped)} 份今天已发送过，未重复发送")
    if failed:
        reasons = "；".join(o.message for o in failed)
        return back("/digests", err="；".join([*parts, f"{len(failed)} 份发送失败（已保存，会自动重试）：{reasons}"]))
    return back("/digests", msg="；".join(parts) or "没有需要发送的日报")
