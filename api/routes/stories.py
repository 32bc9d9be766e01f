"""Stories (near-duplicate posts across groups and sites) for readers of the alerts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from alerts.common import hour_key, parse_hour
from api.deps import MAX_ROW_ID, SessionDep, ViewerUser
from api.pagination import Page, PageDep, fetch_page
from core.errors import NotFound
from core.tables import Alert, ChatGroup, Debunk, Post, Source, Story

router = APIRouter(tags=["stories"])
StoryId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="事件编号")]


class StoryPublic(BaseModel):
    id: int
    title: str | None
    representative_post_id: int | None
    first_seen: dt.datetime
    last_seen: dt.datetime
    post_count: int
    group_count: int
    source_count: int
    max_rumor_probability: float | None
    debunk_id: int | None
    debunk_similarity: float | None
    topic_id: int | None


class StoryPost(BaseModel):
    id: int
    channel: str
    title: str | None
    text: str
    url: str | None
    published_at: dt.datetime | None
    group: str | None
    source: str | None


class StoryDetail(StoryPublic):
    timeline: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    posts: list[StoryPost]
    debunk: dict[str, Any] | None
    alert_ids: list[int]


_COLUMNS = (
    Story.id,
    Story.title,
    Story.representative_post_id,
    Story.first_seen,
    Story.last_seen,
    Story.post_count,
    Story.group_count,
    Story.source_count,
    Story.max_rumor_probability,
    Story.debunk_id,
    Story.debunk_similarity,
    Story.topic_id,
)


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@router.get("/stories", response_model=Page[StoryPublic], summary="事件列表（最近出现的在前）")
def list_stories(
    _: ViewerUser,
    session: SessionDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=200, description="在标题中搜索")] = None,
    since: Annotated[dt.datetime | None, Query(description="最近出现时间不早于（UTC 或带时区）")] = None,
    min_posts: Annotated[int | None, Query(ge=0, le=10**9)] = None,
    min_groups: Annotated[int | None, Query(ge=0, le=10**9)] = None,
    has_debunk: Annotated[bool | None, Query(description="只看与已辟谣信息匹配的")] = None,
) -> dict[str, Any]:
    conds: list[Any] = []
    q = q.replace("\x00", "") if q else q
    if q and q.strip():
        conds.append(Story.title.ilike(_like(q.strip()), escape="\\"))
    if since is not None:
        conds.append(Story.last_seen >= (since if since.tzinfo else since.replace(tzinfo=dt.UTC)))
    if min_posts is not None:
        conds.append(Story.post_count >= min_posts)
    if min_groups is not None:
        conds.append(Story.group_count + Story.source_count >= min_groups)
    if has_debunk is not None:
        conds.append(Story.debunk_id.is_not(None) if has_debunk else Story.debunk_id.is_(None))
    return fetch_page(session, select(*_COLUMNS).where(*conds).order_by(Story.last_seen.desc(), Story.id.desc()),
                      select(func.count()).select_from(Story).where(*conds), page)


@router.get("/stories/{story_id}", response_model=StoryDetail, summary="事件详情：每小时传播、覆盖的群、帖子")
def get_story(
    story_id: StoryId,
    _: ViewerUser,
    session: SessionDep,
    posts_limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    row = session.execute(select(*_COLUMNS).where(Story.id == story_id)).first()
    if row is None:
        raise NotFound(f"事件 #{story_id} 不存在")
    story = session.get(Story, story_id)
    assert story is not None
    hourly = {
        k[:13]: int(v)
        for k, v in (story.hourly_counts or {}).items()
        if isinstance(v, (int, float)) and parse_hour(k)
    }
    if not hourly:
        for published, collected in session.execute(
            select(Post.published_at, Post.collected_at).where(Post.story_id == story_id)
        ):
            key = hour_key(published or collected)
            hourly[key] = hourly.get(key, 0) + 1
    groups = session.execute(
        select(ChatGroup.id, ChatGroup.name, func.count())
        .join(Post, Post.group_id == ChatGroup.id)
        .where(Post.story_id == story_id)
        .group_by(ChatGroup.id, ChatGroup.name)
        .order_by(func.count().desc())
    ).all()
    posts = session.execute(
        select(
            Post.id,
            Post.channel,
            Post.title,
            Post.raw_text.label("text"),
            Post.url,
            Post.published_at,
            ChatGroup.name.label("group"),
            Source.name.label("source"),
        )
        .outerjoin(ChatGroup, ChatGroup.id == Post.group_id)
        .outerjoin(Source, Source.id == Post.source_id)
        .where(Post.story_id == story_id)
        .order_by(Post.published_at.desc(), Post.id.desc())
        .limit(posts_limit)
    ).all()
    debunk = session.get(Debunk, story.debunk_id) if story.debunk_id else None
    alert_ids = list(session.scalars(select(Alert.id).where(Alert.story_id == story_id).order_by(Alert.id)))
    return row._asdict() | {
        "timeline": [{"hour": k, "count": hourly[k]} for k in sorted(hourly)],
        "groups": [{"id": gid, "name": name, "posts": c} for gid, name, c in groups],
        "posts": [p._asdict() for p in posts],
        "debunk": None
        if debunk is None
        else {
            "id": debunk.id,
            "claim": debunk.claim,
            "refutation": debunk.refutation,
            "url": debunk.url,
            "publisher": debunk.publisher,
        },
        "alert_ids": alert_ids,
    }
