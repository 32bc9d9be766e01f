"""The console's 举报线索 page: residents' tips with channel, time, what was replied, and the
measures (per day and per incident); staff mark a tip as abuse (closed without a reply), reopen
one marked by mistake, and clear the automatic insult flag.
Contacts are never shown (alerts.tip_queries has no field for them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from alerts import tip_queries
from api import accounts
from api.console.render import render
from api.console.web import PageUser, back, check_csrf, committing, need_role, note_drift
from api.deps import RowId, SessionDep
from core.tips import CHANNEL_ZH, STATUS_ZH

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf), Depends(note_drift)])
PAGE_SIZE = 50


@router.get("/tips")
def tips_page(request: Request, user: PageUser, session: SessionDep, status: str = "", channel: str = "",
              page: str = "1") -> Response:
    page_no = max(1, min(int(page), 100_000)) if page.isdigit() else 1
    rows, total = tip_queries.list_tips(
        session, status=status if status in STATUS_ZH else None, channel=channel if channel in CHANNEL_ZH else None,
        offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return render(request, "tips.html", {
        "nav": "tips", "rows": rows, "total": total, "page": page_no, "pages": max(1, -(-total // PAGE_SIZE)),
        "status": status, "channel": channel, "status_zh": STATUS_ZH, "channel_zh": CHANNEL_ZH,
        "measures": tip_queries.tip_measures(session, days=14),
        "can_act": accounts.role_rank(user.role) >= accounts.role_rank("staff"),
    })


@router.post("/tips/{tip_id}/unflag")
def tip_unflag(tip_id: RowId, user: PageUser, session: SessionDep) -> Response:
    need_role(user, "staff", "取消辱骂标记")
    with committing(session, "/tips"):
        tip = tip_queries.clear_flag(session, tip_id, user_id=user.id)
    return back("/tips", msg=f"线索 #{tip_id} 已取消辱骂标记" + ("，已重新打开待核实" if tip.status == "acknowledged" else ""))


@router.post("/tips/{tip_id}/abuse")
def tip_abuse(tip_id: RowId, user: PageUser, session: SessionDep,
              block: Annotated[str, Form(max_length=5)] = "") -> Response:
    need_role(user, "staff", "标记恶意线索")
    with committing(session, "/tips"):
        tip_queries.mark_abuse(session, tip_id, user_id=user.id, block=block == "1", reason="审核台标记")
    return back("/tips", msg=f"线索 #{tip_id} 已标记为恶意/骚扰，不再答复" + ("，举报人已加入黑名单" if block == "1" else ""))


@router.post("/tips/{tip_id}/reopen")
def tip_reopen(tip_id: RowId, user: PageUser, session: SessionDep,
               unblock: Annotated[str, Form(max_length=5)] = "") -> Response:
    need_role(user, "staff", "重新打开线索")
    with committing(session, "/tips"):
        tip_queries.reopen(session, tip_id, user_id=user.id, unblock=unblock == "1")
    return back("/tips", msg=f"线索 #{tip_id} 已重新打开，待人工核实" + ("，举报人已移出黑名单" if unblock == "1" else ""))
