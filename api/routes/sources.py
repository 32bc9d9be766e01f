"""Crawl sources: list with their last run (viewer and up), enable/disable (admin), run history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminUser, SessionDep, ViewerUser
from api.pagination import Page, PageDep
from crawler import service

router = APIRouter(tags=["sources"])


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str = Field(description="running | ok | partial | failed")
    pages_fetched: int
    items_new: int
    items_updated: int
    items_unchanged: int
    items_dropped: int
    error_count: int
    errors: list[dict[str, Any]] = Field(default_factory=list, description="最多前 20 条：url 与原因")


class SourcePublic(BaseModel):
    id: int
    name: str
    kind: str
    enabled: bool
    interval_seconds: int | None
    urls: list[str]
    last_run_at: dt.datetime | None
    post_count: int
    last_run: RunPublic | None


class SourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


def _run(run: Any) -> RunPublic | None:
    if run is None:
        return None
    errors = list(run.errors or [])
    return RunPublic(id=run.id, started_at=run.started_at, finished_at=run.finished_at, status=run.status,
                     pages_fetched=run.pages_fetched, items_new=run.items_new, items_updated=run.items_updated,
                     items_unchanged=run.items_unchanged, items_dropped=run.items_dropped,
                     error_count=int((run.stats or {}).get("errors_total", len(errors))), errors=errors[:20])


def _public(row: service.SourceWithRun) -> SourcePublic:
    src = row.source
    return SourcePublic(id=src.id, name=src.name, kind=src.kind, enabled=src.enabled,
                        interval_seconds=src.interval_seconds, urls=list((src.config or {}).get("urls", [])),
                        last_run_at=src.last_run_at, post_count=row.post_count, last_run=_run(row.last_run))


@router.get("/sources", response_model=Page[SourcePublic], summary="信息源列表（含最近一次抓取统计）")
def list_sources(_: ViewerUser, session: SessionDep, page: PageDep) -> Page[SourcePublic]:
    rows, total = service.list_sources(session, offset=page.offset, limit=page.page_size)
    return Page(items=[_public(r) for r in rows], total=total, page=page.page, page_size=page.page_size)


@router.get("/sources/{source_id}/runs", response_model=list[RunPublic], summary="某信息源最近的抓取记录")
def source_runs(source_id: int, _: ViewerUser, session: SessionDep) -> list[RunPublic]:
    service.get_source(session, source_id)
    return [r for r in (_run(run) for run in service.recent_runs(session, source_id)) if r is not None]


@router.patch("/sources/{source_id}", response_model=SourcePublic, summary="启用或停用信息源（管理员）")
def update_source(source_id: int, body: SourceUpdate, _: AdminUser, session: SessionDep) -> SourcePublic:
    service.set_enabled(session, source_id, body.enabled)
    return _public(service.source_with_run(session, source_id))
