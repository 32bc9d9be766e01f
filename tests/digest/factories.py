"""Small factories for digest tests: rows straight into the shared tables (no other stage's code).

Every helper takes the session first and keyword arguments after, flushes, and returns the row.
Times are local (青禾镇, Asia/Shanghai) unless they already carry a zone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    Debunk,
    DebunkMatch,
    Post,
    PostScore,
    Response,
    Story,
    Topic,
    User,
)

TZ = ZoneInfo("Asia/Shanghai")
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "urgent": 3}
_seq = itertools.count(1)


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """``day`` at hour:minute in 青禾镇's time, as an aware datetime."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


def make_user(session: Session, *, username: str | None = None, display_name: str | None = None,
              role: str = "staff", email: str | None = None) -> User:
    user = User(username=username or f"user{next(_seq)}", display_name=display_name, role=role, email=email)
    session.add(user)
    session.flush()
    return user


def make_story(session: Session, *, title: str, first_seen: dt.datetime, last_seen: dt.datetime | None = None,
               post_count: int = 0, group_count: int = 0, debunk: Debunk | None = None) -> Story:
    story = Story(title=title, first_seen=first_seen, last_seen=last_seen or first_seen, post_count=post_count,
                  group_count=group_count, debunk_id=debunk.id if debunk else None)
    session.add(story)
    session.flush()
    return story


def make_topic(session: Session, *, label: str, first_seen: dt.datetime, last_seen: dt.datetime | None = None,
               is_hot: bool = False, category: str | None = None, places: list[Any] | None = None,
               negativity: float | None = None, keywords: list[Any] | None = None,
               burst_score: float | None = None) -> Topic:
    topic = Topic(label=label, first_seen=first_seen, last_seen=last_seen or first_seen, is_hot=is_hot,
                  category=category, places=places or [], negativity=negativity, keywords=keywords or [],
                  burst_score=burst_score)
    session.add(topic)
    session.flush()
    return topic


def make_debunk(session: Session, *, claim: str, refutation: str, publisher: str | None = None,
                url: str | None = None) -> Debunk:
    debunk = Debunk(dedup_key=hashlib.sha256(claim.encode()).hexdigest(), claim=claim, refutation=refutation,
                    publisher=publisher, url=url)
    session.add(debunk)
    session.flush()
    return debunk


def make_post(session: Session, *, text: str, at: dt.datetime, channel: str = "web",
              category: str | None = None, story: Story | None = None, topic: Topic | None = None,
              negativity: float | None = None, rumor: bool | None = None,
              debunk: Debunk | None = None, dated: bool = True) -> Post:
    """A post (``channel='web'``) or chat message; ``rumor`` adds a score, ``debunk`` a match.

    ``dated=False`` leaves published_at empty, so the post counts at its collection time.
    """
    n = next(_seq)
    post = Post(dedup_key=f"test:{n}", channel=channel, raw_text=text,
                content_hash=hashlib.sha256(f"{n}{text}".encode()).hexdigest(),
                published_at=at if dated else None, collected_at=at, category=category,
                story_id=story.id if story else None, topic_id=topic.id if topic else None,
                negativity=negativity)
    session.add(post)
    session.flush()
    if rumor is not None:
        session.add(PostScore(post_id=post.id, rumor_probability=0.9 if rumor else 0.1, label=int(rumor)))
    if debunk is not None:
        session.add(DebunkMatch(post_id=post.id, debunk_id=debunk.id, similarity=0.9, method="minhash"))
    session.flush()
    return post


def make_alert(session: Session, *, title: str, created_at: dt.datetime, severity: str = "medium",
               status: str = "new", kind: str = "rumor", assignee: User | None = None,
               story: Story | None = None, topic: Topic | None = None, risk_score: float = 0.5,
               posts: list[Post] | None = None) -> Alert:
    alert = Alert(title=title, created_at=created_at, updated_at=created_at, severity=severity,
                  severity_rank=SEVERITY_RANK[severity], status=status, kind=kind, risk_score=risk_score,
                  assignee_id=assignee.id if assignee else None, story_id=story.id if story else None,
                  topic_id=topic.id if topic else None)
    session.add(alert)
    session.flush()
    session.add(AlertEvent(alert_id=alert.id, at=created_at, action="created", to_status=None))
    for post in posts or []:
        session.add(AlertPost(alert_id=alert.id, post_id=post.id))
    session.flush()
    return alert


def move(session: Session, alert: Alert, to_status: str, *, at: dt.datetime, actor: User | None = None) -> AlertEvent:
    """A status change in the alert's history (and on the alert)."""
    event = AlertEvent(alert_id=alert.id, at=at, action="status", from_status=alert.status, to_status=to_status,
                       actor_id=actor.id if actor else None)
    alert.status = to_status
    alert.updated_at = at
    session.add(event)
    session.flush()
    return event


def make_response(session: Session, *, alert: Alert, text: str, at: dt.datetime,
                  url: str | None = None, channels: list[str] | None = None) -> Response:
    response = Response(alert_id=alert.id, text=text, published_at=at, url=url, channels=channels or [])
    session.add(response)
    session.flush()
    return response
