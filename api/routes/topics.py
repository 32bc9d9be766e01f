"""Hot concerns: topics hot now, topics by day, one topic, rising keywords (viewers may read)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import RowId, SessionDep, ViewerUser
from api.pagination import Page, PageDep
from api.problems import Problem
from core.errors import YuqingError
from core.settings import get_settings
from nlp.concerns import hot_keywords
from nlp.concerns.queries import TopicSummary, hot_topics, parse_since, topic, topics_by_day

router = APIRouter(prefix="/topics", tags=["topics"])


class TopicPublic(BaseModel):
    id: int
    label: str
    keywords: list[str]
    category: str | None
    places: list[str]
    is_local: bool
    negativity: float | None
    negativity_recent: float | None
    negativity_rising: bool
    post_count: int
    recent_count: int
    group_count: int
    source_count: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    is_hot: bool
    hot_since: dt.datetime | None
    burst_score: float | None
    peak_burst_score: float | None
    priority: float | None
    status: str
    representative_post_id: int | None
    representative_text: str | None
    hourly_counts: dict[str, int]


class KeywordBurst(BaseModel):
    keyword: str
    recent: int
    expected: float
    z: float


def _public(items: list[TopicSummary]) -> list[TopicPublic]:
    return [TopicPublic.model_validate(t.as_dict()) for t in items]


def _since(value: str) -> dt.timedelta:
    try:
        return parse_since(value)
    except YuqingError as err:
        raise Problem(422, "输入无效", str(err)) from err


SinceQuery = Annotated[str, Query(max_length=10, description="时间范围，如 90m、24h、3d、1w")]


@router.get("/hot", response_model=Page[TopicPublic], summary="当前热点话题（最近一段时间内显著上升的关切）")
def list_hot(_: ViewerUser, session: SessionDep, page: PageDep,
             since: SinceQuery = "24h") -> Page[TopicPublic]:
    items, total = hot_topics(session, now=dt.datetime.now(dt.UTC), since=_since(since),
                              offset=page.offset, limit=page.page_size)
    return Page(items=_public(items), total=total, page=page.page, page_size=page.page_size)


@router.get("/by-day", response_model=Page[TopicPublic], summary="某一天（本地日期）出现过的热点话题")
def list_by_day(_: ViewerUser, session: SessionDep, page: PageDep,
                day: Annotated[dt.date, Query(description="本地日期，如 2026-11-28")]) -> Page[TopicPublic]:
    items, total = topics_by_day(session, day, tz=get_settings().timezone, offset=page.offset,
                                 limit=page.page_size)
    return Page(items=_public(items), total=total, page=page.page, page_size=page.page_size)


@router.get("/keywords/hot", response_model=list[KeywordBurst], summary="突增的关键词")
def list_hot_keywords(_: ViewerUser, session: SessionDep,
                      limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[KeywordBurst]:
    return [KeywordBurst(**k) for k in hot_keywords(session, now=dt.datetime.now(dt.UTC), limit=limit)]


@router.get("/{topic_id}", response_model=TopicPublic, summary="单个话题")
def get_topic(_: ViewerUser, session: SessionDep,
              topic_id: RowId) -> TopicPublic:
    return _public([topic(session, topic_id, now=dt.datetime.now(dt.UTC))])[0]
