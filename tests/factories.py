"""Small factories for test rows, written straight to the tables (no stage code involved).

Every factory takes the session first and keyword overrides; it adds the row, flushes, and
returns it. Defaults describe our fictional 青禾镇. Texts are ours (never copied from research
data). Use them from any stage's tests: ``from tests.factories import make_post, make_story``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from typing import Any

from sqlalchemy.orm import Session

from core.tables import (
    Alert,
    ChatGroup,
    Debunk,
    DebunkMatch,
    Incident,
    Post,
    PostScore,
    Source,
    Story,
    Topic,
    User,
    utcnow,
)

_seq = itertools.count(1)
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "urgent": 3}
VILLAGES = ("东湾村", "柳树村", "石桥村", "南坪村")


def _n() -> int:
    return next(_seq)


def _add(session: Session, row: Any) -> Any:
    session.add(row)
    session.flush()
    return row


def make_source(session: Session, **kw: Any) -> Source:
    n = _n()
    values: dict[str, Any] = {"name": f"青禾论坛{n}", "kind": "html", "config": {}}
    return _add(session, Source(**(values | kw)))


def make_group(session: Session, **kw: Any) -> ChatGroup:
    n = _n()
    village = VILLAGES[n % len(VILLAGES)]
    values: dict[str, Any] = {"platform": "wechat", "external_id": f"g{n}", "name": f"{village}村民群{n}"}
    return _add(session, ChatGroup(**(values | kw)))


def make_post(session: Session, text: str = "听说青禾镇明天要封路，大家快去超市抢购！", **kw: Any) -> Post:
    """A post; ``analyzed_at`` defaults to now (as if nlp had processed it)."""
    n = _n()
    now = kw.pop("now", None) or utcnow()
    values: dict[str, Any] = {
        "dedup_key": f"test:{n}:{hashlib.sha1(text.encode()).hexdigest()[:8]}",
        "channel": "chat" if kw.get("group_id") else "web",
        "raw_text": text,
        "norm_text": text,
        "content_hash": hashlib.sha256(f"{n}{text}".encode()).hexdigest(),
        "published_at": now,
        "collected_at": now,
        "updated_at": now,
        "analyzed_at": now,
        "places": [],
        "extra": {},
    }
    return _add(session, Post(**(values | kw)))


def make_story(session: Session, **kw: Any) -> Story:
    now = kw.pop("now", None) or utcnow()
    values: dict[str, Any] = {
        "title": "青禾镇要封路的传言",
        "first_seen": now - dt.timedelta(hours=2),
        "last_seen": now,
        "post_count": 0,
        "group_count": 0,
        "source_count": 0,
        "hourly_counts": {},
    }
    return _add(session, Story(**(values | kw)))


def make_score(session: Session, post: Post, probability: float = 0.9, **kw: Any) -> PostScore:
    values: dict[str, Any] = {
        "post_id": post.id,
        "rumor_probability": probability,
        "label": int(probability >= 0.5),
        "explanation": [["封路", 0.8], ["抢购", 0.5]],
    }
    return _add(session, PostScore(**(values | kw)))


def make_debunk(session: Session, **kw: Any) -> Debunk:
    n = _n()
    values: dict[str, Any] = {
        "dedup_key": hashlib.sha256(f"debunk{n}".encode()).hexdigest(),
        "claim": "青禾镇将全面封路，所有车辆禁止通行",
        "refutation": "青禾县交通运输局确认，全镇道路正常通行，没有封路安排。",
        "publisher": "青禾县融媒体中心",
        "url": "https://example.org/qinghe/piyao/1",
        "category": "交通出行",
    }
    return _add(session, Debunk(**(values | kw)))


def make_debunk_match(
    session: Session, post: Post, debunk: Debunk, similarity: float = 0.9, **kw: Any
) -> DebunkMatch:
    values: dict[str, Any] = {
        "post_id": post.id,
        "debunk_id": debunk.id,
        "similarity": similarity,
        "method": "minhash",
    }
    return _add(session, DebunkMatch(**(values | kw)))


def make_topic(session: Session, **kw: Any) -> Topic:
    now = kw.pop("now", None) or utcnow()
    values: dict[str, Any] = {
        "label": "东湾村药店口罩断货",
        "keywords": [["口罩", 5], ["药店", 3], ["断货", 2]],  # [word, count], as nlp stores them
        "category": "物资供应",
        "places": ["东湾村"],
        "negativity": 0.6,
        "first_seen": now - dt.timedelta(hours=3),
        "last_seen": now,
        "post_count": 0,
        "group_count": 0,
        "hourly_counts": {},
        "is_hot": True,
        "updated_at": now,
    }
    return _add(session, Topic(**(values | kw)))


def make_alert(session: Session, **kw: Any) -> Alert:
    now = kw.pop("now", None) or utcnow()
    severity = kw.pop("severity", "medium")
    values: dict[str, Any] = {
        "kind": "rumor",
        "title": "青禾镇要封路的传言",
        "summary": "听说青禾镇明天要封路",
        "severity": severity,
        "severity_rank": SEVERITY_RANK[severity],
        "risk_score": 40.0,
        "score_parts": {},
        "rules_fired": [],
        "status": "new",
        "created_at": now,
        "updated_at": now,
    }
    return _add(session, Alert(**(values | kw)))


def make_user(session: Session, role: str = "staff", **kw: Any) -> User:
    n = _n()
    values: dict[str, Any] = {
        "username": f"{role}_{n}",
        "role": role,
        "email": f"{role}{n}@qinghe.example.org",
    }
    return _add(session, User(**(values | kw)))


def story_with_posts(
    session: Session,
    n_posts: int,
    *,
    groups: int = 1,
    probability: float = 0.9,
    story: Story | None = None,
    now: dt.datetime | None = None,
    text: str | None = None,
    spread_minutes: int = 60,
    **post_kw: Any,
) -> tuple[Story, list[Post]]:
    """A story and ``n_posts`` posts spread over ``groups`` chat groups in the last ``spread_minutes``,
    each scored ``probability``; the story's counts and hourly counts are kept consistent."""
    now = now or utcnow()
    story = story or make_story(session, now=now)
    existing_groups = {p.group_id for p in session.query(Post).filter(Post.story_id == story.id)}
    group_rows = [make_group(session) for _ in range(groups)]
    posts = []
    for i in range(n_posts):
        at = now - dt.timedelta(minutes=spread_minutes * (n_posts - 1 - i) / max(1, n_posts - 1))
        post = make_post(
            session,
            text or f"转发：青禾镇明天要封路，东湾村的赶紧囤菜！({i})",
            story_id=story.id,
            group_id=group_rows[i % groups].id,
            published_at=at,
            now=now,
            **post_kw,
        )
        make_score(session, post, probability)
        posts.append(post)
    all_posts = session.query(Post).filter(Post.story_id == story.id).all()
    hourly: dict[str, int] = {}
    for p in all_posts:
        key = (p.published_at or p.collected_at).astimezone(dt.UTC).strftime("%Y-%m-%dT%H")
        hourly[key] = hourly.get(key, 0) + 1
    story.post_count = len(all_posts)
    story.group_count = len(existing_groups - {None} | {g.id for g in group_rows})
    story.hourly_counts = hourly
    story.last_seen = max(p.published_at for p in all_posts)
    story.max_rumor_probability = max(probability, story.max_rumor_probability or 0)
    story.representative_post_id = story.representative_post_id or all_posts[0].id
    story.updated_at = now
    session.flush()
    return story, posts


def make_incident(session: Session, **kw: Any) -> Incident:
    """An incident row as nlp.incidents writes it (counts are the caller's to keep consistent;
    :func:`incident_with_posts` does that)."""
    now = kw.pop("now", None) or utcnow()
    values: dict[str, Any] = {
        "kind": "rumor",
        "title": "青禾镇明天封路？",
        "first_seen": now - dt.timedelta(hours=2),
        "last_seen": now,
        "post_count": 0,
        "group_count": 0,
        "source_count": 0,
        "role_counts": {},
        "hourly_counts": {},
        "spread": {},
        "risk_parts": {},
        "places": [],
        "anchors": {},
        "status": "active",
        "created_at": now,
        "updated_at": now,
    }
    return _add(session, Incident(**(values | kw)))


#: Texts per role for incident factories (ours, about the fictional 青禾镇).
ROLE_TEXTS = {
    "claim": "听说青禾镇明天要封路，东湾村的赶紧囤菜！",
    "question": "青禾镇明天真的要封路吗？有没有人知道",
    "reaction": "天哪，那我明天怎么去上班",
    "refutation": "经核实，青禾镇明天封路的说法不实，道路正常通行，请勿转发。",
    "notice": "青禾镇人民政府通知：明天上午东湾村停水检修，请提前储水。",
    "complaint": "东湾村药店口罩断货好几天了，老人买不到，谁来管管",
    "other": "今天天气不错",
}


def incident_posts(
    session: Session,
    incident: Incident,
    roles: dict[str, int],
    *,
    groups: list[ChatGroup] | None = None,
    probability: float = 0.9,
    now: dt.datetime | None = None,
    spread_minutes: int = 60,
    texts: dict[str, str] | None = None,
) -> list[Post]:
    """Add posts by role (``{"claim": 3, "question": 1}``) to ``incident``, round-robin over
    ``groups`` (one new group when none are given), claims scored ``probability``; then recount
    the incident's stats from all of its posts (as nlp.incidents would)."""
    now = now or utcnow()
    groups = groups or [make_group(session)]
    wanted = [role for role, n in roles.items() for _ in range(n)]
    posts = []
    for i, role in enumerate(wanted):
        at = now - dt.timedelta(minutes=spread_minutes * (len(wanted) - 1 - i) / max(1, len(wanted) - 1))
        text = (texts or {}).get(role) or ROLE_TEXTS[role]
        post = make_post(
            session,
            f"{text}（{_n()}）",
            group_id=groups[i % len(groups)].id,
            published_at=at,
            now=now,
            role=role,
            role_confidence=0.9,
            incident_id=incident.id,
        )
        make_score(session, post, probability if role == "claim" else 0.1)
        posts.append(post)
    recount_incident(session, incident, now=now)
    return posts


def recount_incident(session: Session, incident: Incident, *, now: dt.datetime | None = None) -> Incident:
    """The incident's counts from its posts (a test's stand-in for nlp.incidents' stats)."""
    members = session.query(Post).filter(Post.incident_id == incident.id).order_by(Post.id).all()
    roles: dict[str, int] = {}
    hourly: dict[str, int] = {}
    spread: dict[str, int] = {}
    for p in members:
        roles[p.role or "other"] = roles.get(p.role or "other", 0) + 1
        key = (p.published_at or p.collected_at).astimezone(dt.UTC).strftime("%Y-%m-%dT%H")
        hourly[key] = hourly.get(key, 0) + 1
        place = f"g:{p.group_id}" if p.group_id else (f"s:{p.source_id}" if p.source_id else None)
        if place:
            spread[place] = spread.get(place, 0) + 1
    claims = [p for p in members if p.role == "claim"]
    probs = [
        s.rumor_probability
        for s in session.query(PostScore).filter(PostScore.post_id.in_([p.id for p in claims] or [-1]))
    ]
    incident.post_count = len(members)
    incident.role_counts = roles
    incident.hourly_counts = hourly
    incident.spread = spread
    incident.group_count = sum(1 for k in spread if k.startswith("g:"))
    incident.source_count = sum(1 for k in spread if k.startswith("s:"))
    incident.max_rumor_probability = max(probs) if probs else None
    if members:
        incident.first_seen = min(p.published_at or p.collected_at for p in members)
        incident.last_seen = max(p.published_at or p.collected_at for p in members)
    incident.representative_post_id = (claims or members or [None])[0] and (claims or members)[0].id
    incident.updated_at = now or utcnow()
    session.flush()
    return incident
