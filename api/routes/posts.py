"""Search posts and messages (viewers and up)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy import func, or_, select

from api.deps import MAX_ROW_ID, SessionDep, ViewerUser
from api.pagination import Page, PageDep, fetch_page
from core import search
from core.errors import NotFound
from core.tables import AlertPost, ChatGroup, Debunk, DebunkMatch, Label, Post, PostScore, Source
from nlp.cues import term_label

router = APIRouter(tags=["posts"])
PostId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="帖子编号")]
BigInt = Annotated[int | None, Query(ge=1, le=2**62)]


class PostPublic(BaseModel):
    id: int
    channel: str
    title: str | None
    text: str
    url: str | None
    author: str | None
    published_at: dt.datetime | None
    collected_at: dt.datetime
    source_id: int | None
    source: str | None
    group_id: int | None
    group: str | None
    story_id: int | None
    topic_id: int | None
    category: str | None
    negativity: float | None
    is_local: bool | None
    places: list[Any]
    rumor_probability: float | None
    role: str | None = None
    incident_id: int | None = None


class PostDetail(PostPublic):
    explanation: list[Any]
    debunk_matches: list[dict[str, Any]]
    alert_ids: list[int]


def _labelled(explanation: list[Any]) -> list[Any]:
    """[term, weight] pairs with each term as staff read it: a cue's Chinese label, not "cue:short"."""
    out = []
    for item in explanation:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            out.append([term_label(item[0]), item[1]])
        else:
            out.append(item)
    return out


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.UTC)


def _base() -> Any:
    best = (
        select(PostScore.post_id, func.max(PostScore.rumor_probability).label("p"))
        .group_by(PostScore.post_id)
        .subquery()
    )
    q = (
        select(
            Post.id,
            Post.channel,
            Post.title,
            Post.raw_text.label("text"),
            Post.url,
            Post.author,
            Post.published_at,
            Post.collected_at,
            Post.source_id,
            Source.name.label("source"),
            Post.group_id,
            ChatGroup.name.label("group"),
            Post.story_id,
            Post.topic_id,
            Post.category,
            Post.negativity,
            Post.is_local,
            Post.places,
            best.c.p.label("rumor_probability"),
            Post.role,
            Post.incident_id,
        )
        .outerjoin(Source, Source.id == Post.source_id)
        .outerjoin(ChatGroup, ChatGroup.id == Post.group_id)
        .outerjoin(best, best.c.post_id == Post.id)
    )
    return q, best


@router.get("/posts", response_model=Page[PostPublic], summary="搜索帖子和群消息（最新的在前）")
def search_posts(
    _: ViewerUser,
    session: SessionDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=200, description="在标题和正文中搜索")] = None,
    channel: Annotated[Literal["web", "chat"] | None, Query()] = None,
    source_id: BigInt = None,
    group_id: BigInt = None,
    story_id: BigInt = None,
    topic_id: BigInt = None,
    category: Annotated[str | None, Query(max_length=50)] = None,
    is_local: Annotated[bool | None, Query()] = None,
    min_probability: Annotated[float | None, Query(ge=0, le=1, description="谣言概率不低于")] = None,
    max_probability: Annotated[float | None, Query(ge=0, le=1, description="谣言概率不高于")] = None,
    role: Annotated[Literal["claim", "question", "reaction", "refutation", "notice", "complaint", "other"] | None,
                    Query(description="帖子的作用（传播说法、询问真假、反应、辟谣澄清、官方通知、投诉诉求、闲聊）")] = None,
    labelled: Annotated[bool | None, Query(description="true：只看已标注的文本；false：只看未标注的")] = None,
    incident_id: BigInt = None,
    since: Annotated[dt.datetime | None, Query(description="发布时间不早于")] = None,
    until: Annotated[dt.datetime | None, Query(description="发布时间早于")] = None,
) -> dict[str, Any]:
    query, best = _base()
    conds: list[Any] = []
    q = q.replace("\x00", "") if q else q
    if q and q.strip():
        pattern = _like(q.strip())
        found = [column.ilike(pattern, escape="\\") for column in (Post.raw_text, Post.title, Post.image_text)]
        words = search.matches("posts", Post.id, q.strip(), session.get_bind().dialect.name)
        conds.append(or_(*found, *([words] if words is not None else [])))  # or every word, apart
    category = category.replace("\x00", "") if category else category
    for column, value in (
        (Post.channel, channel),
        (Post.source_id, source_id),
        (Post.group_id, group_id),
        (Post.story_id, story_id),
        (Post.topic_id, topic_id),
        (Post.category, category),
        (Post.is_local, is_local),
        (Post.role, role),
        (Post.incident_id, incident_id),
    ):
        if value is not None:
            conds.append(column == value)
    if min_probability is not None:
        conds.append(best.c.p >= min_probability)
    if max_probability is not None:
        conds.append(best.c.p <= max_probability)
    if labelled is not None:
        # a label is a verdict on a post (or, imported, on its text, linked to the post with that text)
        has_label = select(Label.id).where(Label.post_id == Post.id).exists()
        conds.append(has_label if labelled else ~has_label)
    if since is not None:
        conds.append(Post.published_at >= _aware(since))
    if until is not None:
        conds.append(Post.published_at < _aware(until))
    count_q = select(func.count()).select_from(Post).where(*conds)
    if min_probability is not None or max_probability is not None:
        count_q = count_q.outerjoin(best, best.c.post_id == Post.id)
    return fetch_page(session, query.where(*conds).order_by(Post.published_at.desc(), Post.id.desc()),
                      count_q, page)


@router.get(
    "/posts/{post_id}", response_model=PostDetail, summary="帖子详情：得分、解释、匹配的辟谣、所在预警"
)
def get_post(post_id: PostId, _: ViewerUser, session: SessionDep) -> dict[str, Any]:
    query, _best = _base()
    row = session.execute(query.where(Post.id == post_id)).first()
    if row is None:
        raise NotFound(f"帖子 #{post_id} 不存在")
    explanation = (
        session.scalar(
            select(PostScore.explanation)
            .where(PostScore.post_id == post_id)
            .order_by(PostScore.scored_at.desc())
            .limit(1)
        )
        or []
    )
    matches = session.execute(
        select(Debunk.id, Debunk.claim, Debunk.url, DebunkMatch.similarity, DebunkMatch.method)
        .join(DebunkMatch, DebunkMatch.debunk_id == Debunk.id)
        .where(DebunkMatch.post_id == post_id)
        .order_by(DebunkMatch.similarity.desc())
    ).all()
    alert_ids = list(session.scalars(select(AlertPost.alert_id).where(AlertPost.post_id == post_id)))
    return row._asdict() | {
        "explanation": _labelled(explanation),
        "debunk_matches": [m._asdict() for m in matches],
        "alert_ids": sorted(alert_ids),
    }
