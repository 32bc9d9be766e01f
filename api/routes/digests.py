"""The digest archive: every daily digest exactly as it was built and sent (viewer and up).

Reads the ``digests`` table directly (api and digest are siblings and do not import each other).
The detail returns the stored HTML and text byte for byte, with the chart images by Content-ID;
``/preview`` serves that same HTML with the images inlined as data: URIs, under a strict
Content-Security-Policy, so the console can show it in a sandboxed iframe.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from api.deps import MAX_ROW_ID, SessionDep, ViewerUser
from api.pagination import Page, PageDep
from api.problems import Problem
from core.tables import Digest

router = APIRouter(prefix="/digests", tags=["digests"])

DigestId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="日报 ID")]
PREVIEW_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


class DigestRecipient(BaseModel):
    email: str
    name: str | None = None


class DigestPublic(BaseModel):
    """One digest in the archive list."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    day: dt.date
    revision: int = Field(description="0 为首版；--force 重发时递增")
    subject: str
    recipients: list[DigestRecipient]
    status: str = Field(description="built 已生成 | sending 发送中 | sent 已发送 | failed 失败（自动重试）")
    attempts: int
    last_error: str | None
    sent_at: dt.datetime | None
    created_at: dt.datetime
    headline: str | None = Field(None, description="日报开头的概况段落")
    quiet: bool | None = Field(None, description="是否为“今日无异常”的简报")


class DigestFigure(BaseModel):
    content_type: str
    filename: str | None = None
    title: str | None = None
    b64: str = Field(description="图片内容（base64）")


class DigestDetail(DigestPublic):
    """A digest exactly as sent: the HTML (images referenced as cid:...), the text part, the images."""

    html: str
    text: str
    figures: dict[str, DigestFigure] = Field(description="Content-ID -> 图片")
    summary: dict[str, Any] = Field(description="生成日报所用的全部数字")


def _public(row: Digest) -> dict[str, Any]:
    summary = row.summary or {}
    return {
        "id": row.id, "day": row.day, "revision": row.revision, "subject": row.subject,
        "recipients": [r if isinstance(r, dict) else {"email": str(r)} for r in row.recipients or []],
        "status": row.status, "attempts": row.attempts, "last_error": row.last_error, "sent_at": row.sent_at,
        "created_at": row.created_at, "headline": summary.get("headline"), "quiet": summary.get("quiet"),
    }


def _get(session: SessionDep, digest_id: int) -> Digest:
    row = session.get(Digest, digest_id)
    if row is None:
        raise Problem(404, "未找到", f"日报 {digest_id} 不存在。")
    return row


@router.get("", response_model=Page[DigestPublic], summary="日报存档（按日期倒序）")
def list_digests(
    _: ViewerUser,
    session: SessionDep,
    page: PageDep,
    day_from: Annotated[dt.date | None, Query(description="起始日期（含）")] = None,
    day_to: Annotated[dt.date | None, Query(description="结束日期（含）")] = None,
    status: Annotated[str | None, Query(pattern="^(built|sending|sent|failed)$", description="状态")] = None,
) -> Page[DigestPublic]:
    conditions = []
    if day_from is not None:
        conditions.append(Digest.day >= day_from)
    if day_to is not None:
        conditions.append(Digest.day <= day_to)
    if status is not None:
        conditions.append(Digest.status == status)
    total = session.scalar(select(func.count()).select_from(Digest).where(*conditions)) or 0
    rows = session.scalars(
        select(Digest).where(*conditions).order_by(Digest.day.desc(), Digest.id.desc())
        .offset(page.offset).limit(page.page_size)
    ).all()
    return Page(items=[DigestPublic.model_validate(_public(r)) for r in rows], total=total,
                page=page.page, page_size=page.page_size)


@router.get("/{digest_id}", response_model=DigestDetail, summary="一份日报的原样内容")
def get_digest(digest_id: DigestId, _: ViewerUser, session: SessionDep) -> DigestDetail:
    row = _get(session, digest_id)
    return DigestDetail.model_validate(
        _public(row)
        | {"html": row.html, "text": row.text, "figures": row.figures or {}, "summary": row.summary or {}}
    )


@router.get("/{digest_id}/preview", response_class=HTMLResponse, summary="日报 HTML 预览（图片内嵌）")
def preview_digest(digest_id: DigestId, _: ViewerUser, session: SessionDep) -> HTMLResponse:
    row = _get(session, digest_id)
    html = row.html
    for cid, fig in (row.figures or {}).items():
        data_uri = f"data:{fig.get('content_type', 'image/png')};base64,{fig.get('b64', '')}"
        html = html.replace(f"cid:{cid}", data_uri)
    headers = {"Content-Security-Policy": PREVIEW_CSP, "X-Content-Type-Options": "nosniff"}
    return HTMLResponse(html, headers=headers)


@router.get("/{digest_id}/figures/{cid}", summary="日报中的一张图表（PNG）",
            responses={200: {"content": {"image/png": {}}}})
def get_figure(digest_id: DigestId, cid: str, _: ViewerUser, session: SessionDep) -> Response:
    row = _get(session, digest_id)
    fig = (row.figures or {}).get(cid)
    if fig is None:
        raise Problem(404, "未找到", f"日报 {digest_id} 中没有图片 {cid}。")
    try:
        data = base64.b64decode(fig.get("b64", ""), validate=True)
    except (binascii.Error, ValueError) as err:
        raise Problem(500, "服务器内部错误", f"日报 {digest_id} 的图片 {cid} 已损坏。") from err
    return Response(data, media_type=str(fig.get("content_type", "image/png")),
                    headers={"X-Content-Type-Options": "nosniff"})
