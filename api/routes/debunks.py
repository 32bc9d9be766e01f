"""The debunk library: anyone may read it, staff add and edit entries, analysts delete them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, File, Path, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from api.deps import MAX_ROW_ID, AnalystUser, SessionDep, StaffUser, ViewerUser
from api.pagination import Page, PageDep
from api.problems import Problem
from core.tables import DebunkMatch
from nlp import debunks as service

router = APIRouter(prefix="/debunks", tags=["debunks"])

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
DebunkId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="辟谣条目编号")]


class DebunkPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    claim: str
    refutation: str
    publisher: str | None
    url: str | None
    published_at: dt.datetime | None
    category: str | None
    tags: list[str]
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class DebunkDetail(DebunkPublic):
    match_count: int


class ImportSummary(BaseModel):
    new: int
    updated: int
    unchanged: int
    rejected: list[str]


@router.get("", response_model=Page[DebunkPublic], summary="辟谣库列表（可搜索）")
def list_debunks(
    _: ViewerUser,
    session: SessionDep,
    page: PageDep,
    q: Annotated[
        str | None, Query(max_length=200, description="关键词：谣言、辟谣内容、发布机构或类别")
    ] = None,
    active: Annotated[bool | None, Query(description="只看启用（true）或停用（false）的条目")] = None,
) -> Page[DebunkPublic]:
    rows, total = service.list_debunks(session, q=q, active=active, offset=page.offset, limit=page.page_size)
    return Page(
        items=[DebunkPublic.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        page_size=page.page_size,
    )


@router.get("/{debunk_id}", response_model=DebunkDetail, summary="辟谣条目详情")
def get_debunk(debunk_id: DebunkId, _: ViewerUser, session: SessionDep) -> DebunkDetail:
    row = service.get_debunk(session, debunk_id)
    matches = session.scalar(
        select(func.count()).select_from(DebunkMatch).where(DebunkMatch.debunk_id == row.id)
    )
    return DebunkDetail.model_validate(
        {**DebunkPublic.model_validate(row).model_dump(), "match_count": matches or 0}
    )


@router.post("", response_model=DebunkPublic, status_code=201, summary="新增辟谣条目（工作人员）")
def create_debunk(body: service.DebunkIn, user: StaffUser, session: SessionDep) -> DebunkPublic:
    return DebunkPublic.model_validate(service.create_debunk(session, body, created_by=user.id))


@router.patch("/{debunk_id}", response_model=DebunkPublic, summary="修改辟谣条目（工作人员）")
def update_debunk(
    debunk_id: DebunkId, body: service.DebunkUpdate, _: StaffUser, session: SessionDep
) -> DebunkPublic:
    return DebunkPublic.model_validate(service.update_debunk(session, debunk_id, body))


@router.delete("/{debunk_id}", status_code=204, summary="删除辟谣条目（分析员）")
def delete_debunk(debunk_id: DebunkId, _: AnalystUser, session: SessionDep) -> Response:
    service.delete_debunk(session, debunk_id)
    return Response(status_code=204)


@router.post("/import", response_model=ImportSummary, summary="导入辟谣库文件 CSV / YAML（工作人员）")
async def import_debunks(
    user: StaffUser,
    session: SessionDep,
    file: Annotated[
        UploadFile,
        File(description="CSV（表头 claim,refutation,publisher,url,published_at,category,tags）或 YAML"),
    ],
) -> ImportSummary:
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise Problem(413, "内容过大", f"文件超过 {MAX_UPLOAD_BYTES // (1024 * 1024)} MB：请拆分后分批导入。")
    name = file.filename or "upload.csv"
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in {"csv", "yaml", "yml"}:
        ctype = (file.content_type or "").lower()
        suffix = "yaml" if "yaml" in ctype else "csv"
    result = service.import_debunks(session, name, data=data, fmt=suffix, created_by=user.id)
    return ImportSummary(
        new=result.new,
        updated=result.updated,
        unchanged=result.unchanged,
        rejected=[reason for _, reason in result.rejected],
    )
