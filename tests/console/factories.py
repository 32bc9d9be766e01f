"""Test data for the console: posts through core.ingest (the one write path), then the analysis
and alert rows that nlp and alerts would write, about the fictional 青禾镇.

Everything is built from the arguments: nothing here is a canned result.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ingest import ingest_posts
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    Debunk,
    DebunkMatch,
    Post,
    PostScore,
    Story,
    Topic,
    utcnow,
)

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "urgent": 3}
GROUPS = {
    "东湾村": ("wechat", "dw-001", "东湾村村民群"),
    "柳树村": ("wechat", "ls-002", "柳树村邻里互助群"),
    "石桥村": ("qq", "sq-003", "石桥村家长群"),
    "南坪村": ("wechat", "np-004", "南坪村便民群"),
    "青禾镇": ("qq", "qh-005", "青禾镇生活圈"),
}
_ids = itertools.count(1)


@dataclass
class Said:
    """One message: in which village's group, what, and how many hours ago."""

    where: str
    text: str
    hours_ago: float = 1.0
    url: str | None = None


@dataclass
class Seeded:
    alert_id: int
    post_ids: list[int] = field(default_factory=list)
    story_id: int | None = None


def add_posts(session: Session, said: list[Said], now: dt.datetime) -> list[int]:
    items: list[dict[str, Any]] = []
    for s in said:
        n = next(_ids)
        if s.where in GROUPS:
            platform, ext, name = GROUPS[s.where]
            items.append({"channel": "chat", "group": {"platform": platform, "external_id": ext, "name": name},
                          "external_id": f"m{n}", "text": s.text, "author_id": f"u{n % 7}",
                          "published_at": now - dt.timedelta(hours=s.hours_ago)})
        else:
            items.append({"channel": "web", "source": s.where, "external_id": f"w{n}", "text": s.text,
                          "url": s.url or f"https://bbs.qinghe.example/thread/{n}",
                          "published_at": now - dt.timedelta(hours=s.hours_ago)})
    result = ingest_posts(session, items)
    assert not result.rejected, result.rejected
    keys = list(result.keys)
    by_key = dict(session.execute(select(Post.dedup_key, Post.id).where(Post.dedup_key.in_(keys))).all())
    return [by_key[k] for k in keys]


def seed_alert(
    session: Session,
    *,
    title: str,
    said: list[Said],
    severity: str = "high",
    status: str = "new",
    kind: str = "rumor",
    category: str | None = "疫情防控措施/隔离",
    probability: float = 0.87,
    explanation: list[list[Any]] | None = None,
    summary: str | None = None,
    suggested_response: str | None = None,
    debunk: Debunk | None = None,
    debunk_similarity: float = 0.93,
    assignee_id: int | None = None,
    topic_id: int | None = None,
    age_hours: float = 0.5,
    now: dt.datetime | None = None,
) -> Seeded:
    now = now or utcnow()
    post_ids = add_posts(session, said, now)
    posts = list(session.scalars(select(Post).where(Post.id.in_(post_ids))))
    hours = Counter(p.published_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H") for p in posts if p.published_at)
    times = [p.published_at for p in posts if p.published_at]
    story = Story(representative_post_id=post_ids[0], title=title, first_seen=min(times), last_seen=max(times),
                  post_count=len(posts), group_count=len({p.group_id for p in posts if p.group_id}),
                  source_count=len({p.source_id for p in posts if p.group_id is None and p.source_id}),
                  hourly_counts=dict(hours), max_rumor_probability=probability,
                  debunk_id=debunk.id if debunk else None,
                  debunk_similarity=debunk_similarity if debunk else None, topic_id=topic_id)
    session.add(story)
    session.flush()
    for i, p in enumerate(posts):
        p.story_id = story.id
        p.topic_id = topic_id
        session.add(PostScore(post_id=p.id, rumor_probability=max(0.05, probability - 0.03 * i),
                              label=1 if probability >= 0.5 else 0,
                              explanation=explanation if i == 0 and explanation else []))
        if debunk is not None:
            session.add(DebunkMatch(post_id=p.id, debunk_id=debunk.id,
                                    similarity=max(0.5, debunk_similarity - 0.02 * i), method="minhash"))
    created = now - dt.timedelta(hours=age_hours)
    alert = Alert(story_id=story.id, topic_id=topic_id, kind=kind, title=title, summary=summary or said[0].text[:120],
                  severity=severity, severity_rank=SEVERITY_RANK[severity],
                  risk_score={"low": 0.3, "medium": 0.5, "high": 0.72, "urgent": 0.9}[severity],
                  score_parts={"rumor_probability": probability, "group_count": story.group_count,
                               "post_count": story.post_count}
                  | ({"debunk_similarity": debunk_similarity} if debunk else {}),
                  rules_fired=[], category=category, status=status, assignee_id=assignee_id,
                  suggested_response=suggested_response, created_at=created, updated_at=created)
    session.add(alert)
    session.flush()
    for pid in post_ids:
        session.add(AlertPost(alert_id=alert.id, post_id=pid, added_at=created))
    session.add(AlertEvent(alert_id=alert.id, at=created, action="created", to_status="new"))
    session.flush()
    return Seeded(alert_id=alert.id, post_ids=post_ids, story_id=story.id)


def add_debunk(session: Session, claim: str, refutation: str, *, publisher: str = "青禾县融媒体中心",
               url: str = "https://www.qinghe.example/piyao/1", category: str | None = None) -> Debunk:
    import hashlib

    d = Debunk(dedup_key=hashlib.sha256(claim.encode()).hexdigest(), claim=claim, refutation=refutation,
               publisher=publisher, url=url, published_at=utcnow() - dt.timedelta(days=2), category=category)
    session.add(d)
    session.flush()
    return d


def add_topic(session: Session, label: str, *, keywords: list[str], category: str, places: list[str],
              negativity: float, counts: list[int], burst: float, now: dt.datetime | None = None) -> Topic:
    now = now or utcnow()
    end = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    hourly = {(end - dt.timedelta(hours=len(counts) - 1 - i)).strftime("%Y-%m-%dT%H"): c
              for i, c in enumerate(counts) if c}
    t = Topic(label=label, keywords=keywords, category=category, places=places, negativity=negativity,
              first_seen=now - dt.timedelta(hours=len(counts)), last_seen=now - dt.timedelta(minutes=10),
              post_count=sum(counts), group_count=min(len(places) + 1, 5), hourly_counts=hourly, is_hot=True,
              burst_score=burst)
    session.add(t)
    session.flush()
    return t
