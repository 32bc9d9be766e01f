"""Read side of hot concerns, shared by `yuqing topics`, the API and the digest."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import InvalidInput, NotFound
from core.tables import Post, Topic, TopicBurst
from nlp.concerns.bursts import HOUR, hour_floor, parse_hour_key

_SINCE_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.I)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str) -> dt.timedelta:
    """'24h', '90m', '3d', '1w' -> a timedelta; anything else is a clear error."""
    m = _SINCE_RE.match(value or "")
    if not m or int(m.group(1)) <= 0:
        raise InvalidInput(f"时间范围“{value}”无效：请写成数字加单位，如 90m、24h、3d、1w。")
    delta = dt.timedelta(**{_UNITS[m.group(2).lower()]: int(m.group(1))})
    if delta > dt.timedelta(days=366):
        raise InvalidInput(f"时间范围“{value}”太长：最多一年（如 52w）。")
    return delta


@dataclass
class TopicSummary:
    id: int
    label: str
    keywords: list[str]
    category: str | None
    places: list[str]
    is_local: bool
    negativity: float | None
    negativity_recent: float | None  # mean negativity in the last 6 hours with posts
    negativity_rising: bool  # recent mood clearly worse than before: "anger rising"
    post_count: int
    recent_count: int  # posts in the requested window
    group_count: int
    source_count: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    is_hot: bool
    hot_since: dt.datetime | None
    burst_score: float | None
    peak_burst_score: float | None  # highest in the requested window
    priority: float | None
    status: str
    representative_post_id: int | None
    representative_text: str | None
    hourly_counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mood_trend(t: Topic, now: dt.datetime) -> tuple[float | None, bool]:
    counts, negs = t.hourly_counts or {}, t.hourly_negativity or {}
    recent_start = hour_floor(now) - 5 * HOUR
    rc = rn = bc = bn = 0.0
    for key, n in counts.items():
        h = parse_hour_key(key)
        if h > now:
            continue
        if h >= recent_start:
            rc, rn = rc + n, rn + negs.get(key, 0.0)
        else:
            bc, bn = bc + n, bn + negs.get(key, 0.0)
    if rc == 0:
        return None, False
    recent = rn / rc
    before = bn / bc if bc else None
    rising = before is not None and rc >= 3 and recent - before >= 0.15
    return round(recent, 3), rising


def summarize(session: Session, topics: list[Topic], *, now: dt.datetime, since: dt.timedelta,
              peaks: dict[int, float] | None = None) -> list[TopicSummary]:
    reps = {t.representative_post_id for t in topics if t.representative_post_id}
    texts: dict[int, str] = {}
    if reps:
        texts = dict(session.execute(select(Post.id, Post.raw_text).where(Post.id.in_(reps))).all())
    start = now - since
    out = []
    for t in topics:
        recent = sum(n for k, n in (t.hourly_counts or {}).items()
                     if parse_hour_key(k) + HOUR > start and parse_hour_key(k) <= now)
        neg_recent, rising = _mood_trend(t, now)
        out.append(TopicSummary(
            id=t.id, label=t.label, keywords=t.keyword_words(8), category=t.category,
            places=list(t.places or []), is_local=(t.local_count or 0) > 0, negativity=t.negativity,
            negativity_recent=neg_recent, negativity_rising=rising, post_count=t.post_count,
            recent_count=recent, group_count=t.group_count, source_count=t.source_count or 0,
            first_seen=t.first_seen, last_seen=t.last_seen, is_hot=t.is_hot, hot_since=t.hot_since,
            burst_score=t.burst_score, peak_burst_score=(peaks or {}).get(t.id, t.burst_score),
            priority=t.priority, status=t.status, representative_post_id=t.representative_post_id,
            representative_text=texts.get(t.representative_post_id or 0),
            hourly_counts=dict(t.hourly_counts or {}),
        ))
    return out


def hot_topics(session: Session, *, now: dt.datetime, since: dt.timedelta = dt.timedelta(hours=24),
               offset: int = 0, limit: int = 20) -> tuple[list[TopicSummary], int]:
    """Topics hot now or hot at some evaluation within ``since``, highest priority first."""
    start = hour_floor(now - since)
    peak = func.max(TopicBurst.burst_score)
    peaks = dict(session.execute(select(TopicBurst.topic_id, peak)
                                 .where(TopicBurst.hour >= start, TopicBurst.hour <= now)
                                 .group_by(TopicBurst.topic_id)).all())
    hot_now = select(Topic.id).where(Topic.is_hot.is_(True), Topic.hot_since <= now)
    ids = set(peaks) | set(session.scalars(hot_now))
    if not ids:
        return [], 0
    topics = list(session.scalars(select(Topic).where(Topic.id.in_(ids))))
    topics.sort(key=lambda t: (not t.is_hot, -(t.priority or 0.0), -peaks.get(t.id, t.burst_score or 0.0),
                               -t.id))
    total = len(topics)
    return summarize(session, topics[offset : offset + limit], now=now, since=since, peaks=peaks), total


def topics_by_day(session: Session, day: dt.date, *, tz: str, offset: int = 0,
                  limit: int = 20) -> tuple[list[TopicSummary], int]:
    """Topics that were hot on a local calendar day, by their peak burst score that day."""
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
    end = start + dt.timedelta(days=1)
    rows = session.execute(select(TopicBurst.topic_id, func.max(TopicBurst.burst_score))
                           .where(TopicBurst.hour >= start, TopicBurst.hour < end)
                           .group_by(TopicBurst.topic_id)).all()
    peaks = {tid: score for tid, score in rows}
    order = sorted(peaks, key=lambda i: (-peaks[i], i))
    total = len(order)
    page = order[offset : offset + limit]
    topics = {t.id: t for t in session.scalars(select(Topic).where(Topic.id.in_(page)))} if page else {}
    return summarize(session, [topics[i] for i in page if i in topics], now=end, since=dt.timedelta(days=1),
                     peaks=peaks), total


def topic(session: Session, topic_id: int, *, now: dt.datetime) -> TopicSummary:
    t = session.get(Topic, topic_id)
    if t is None:
        raise NotFound(f"话题 {topic_id} 不存在：请从热点话题列表中选择。")
    return summarize(session, [t], now=now, since=dt.timedelta(hours=24))[0]
