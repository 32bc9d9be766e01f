"""The console's digest actions: preview today's digest as it would be sent, and (admin) send it now.

api and digest are siblings and do not import each other, so the digest stage's code reaches these
pages from above: the top layer (`yuqing serve` / `yuqing run`, see yuqing/digest_actions.py) hands
in an implementation with :func:`use`. It calls digest.service, the code `yuqing digest` and the
scheduler run: the preview stores nothing; sending is idempotent per day and recipient list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.console.pages import digest_srcdoc
from api.console.render import render
from api.console.web import ConsolePageError, PageUser, back, check_csrf, need_role, note_drift
from api.deps import SessionDep
from core.errors import YuqingError
from core.tables import Digest

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf), Depends(note_drift)])


@dataclass
class Preview:
    """Today's digest as it would be sent (all sections), and the recipient lists it would go to."""

    digest: Digest  # not stored
    lists: list[list[dict[str, Any]]] = field(default_factory=list)  # [{"email", "name"}, ...] per list
    config_error: str | None = None


@dataclass
class SendReport:
    sent: list[list[str]] = field(default_factory=list)  # addresses per list sent to
    skipped: int = 0  # lists that had today's digest already
    failed: list[str] = field(default_factory=list)  # why, per list (kept and retried)


class DigestActions(Protocol):
    def preview(self, session: Session) -> Preview: ...

    def send_now(self, session: Session) -> SendReport: ...


_actions: DigestActions | None = None


def use(actions: DigestActions) -> None:
    """Set the implementation (the top layer does, before serving)."""
    global _actions
    _actions = actions


def _need_actions() -> DigestActions:
    if _actions is None:
        raise ConsolePageError(503, "日报预览与发送由 yuqing serve / yuqing run 提供：请用这两个命令启动审核台。")
    return _actions


@router.get("/digests/today")
def digest_preview(request: Request, user: PageUser, session: SessionDep) -> Response:
    preview = _need_actions().preview(session)
    return render(request, "digest_preview.html", {
        "nav": "digests", "d": preview.digest, "srcdoc": digest_srcdoc(preview.digest), "lists": preview.lists,
        "config_error": preview.config_error, "can_send": user.role == "admin",
    })


@router.post("/digests/send")
def digest_send_now(user: PageUser, session: SessionDep) -> Response:
    need_role(user, "admin", "立即发送日报")
    actions = _need_actions()
    try:
        report = actions.send_now(session)
    except YuqingError as err:
        session.rollback()
        return back("/digests/today", err=str(err))
    parts = []
    if report.sent:
        parts.append(f"已发送给 {'、'.join(e for emails in report.sent for e in emails)}")
    if report.skipped:
        parts.append(f"{report.skipped} 份今天已发送过，未重复发送")
    if report.failed:
        reasons = "；".join(report.failed)
        return back("/digests", err="；".join([*parts, f"{len(report.failed)} 份发送失败（已保存，会自动重试）：{reasons}"]))
    return back("/digests", msg="；".join(parts) or "没有需要发送的日报")
