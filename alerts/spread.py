"""Spread measured around a response: posts per hour of the alert's matter before and after what
the office published (recorded by :func:`alerts.workflow.respond`, re-measured by each evaluation
until its after-window is complete).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.common import get_alert, hour_key, parse_hour
from alerts.rules import RulesConfig, load_rules
from alerts.subjects import SPREADING_ROLES, matter_kind
from core.errors import InvalidInput
from core.tables import (
    Alert,
    AlertPost,
    Incident,
    Post,
    Response,
    Story,
    Topic,
    utcnow,
)

log = logging.getLogger(__name__)

def hourly_for(session: Session, alert: Alert) -> dict[str, int]:
    """Posts per UTC hour of what the alert is about. For a matter, only the posts that carry it
    (claims of a rumor, complaints of a concern): the refutations a response brings are its
    effect, not more spread."""
    if alert.incident_id is not None:
        incident = session.get(Incident, alert.incident_id)
        if incident is not None:
            carrying = SPREADING_ROLES[matter_kind(incident)]
            counts: dict[str, int] = {}
            for published, collected in session.execute(
                select(Post.published_at, Post.collected_at).where(
                    Post.incident_id == incident.id, Post.role.in_(carrying)
                )
            ):
                key = hour_key(published or collected)
                counts[key] = counts.get(key, 0) + 1
            return counts
    source: dict[str, Any] = {}
    if alert.story_id is not None:
        story = session.get(Story, alert.story_id)
        source = story.hourly_counts if story is not None else {}
    elif alert.topic_id is not None:
        topic = session.get(Topic, alert.topic_id)
        source = topic.hourly_counts if topic is not None else {}
    hourly = {
        k[:13]: int(v) for k, v in (source or {}).items() if isinstance(v, (int, float)) and parse_hour(k)
    }
    if hourly:
        return hourly
    for published, collected in session.execute(
        select(Post.published_at, Post.collected_at)
        .join(AlertPost, AlertPost.post_id == Post.id)
        .where(AlertPost.alert_id == alert.id)
    ):
        key = hour_key(published or collected)
        hourly[key] = hourly.get(key, 0) + 1
    return hourly


def spread_around(
    hourly: dict[str, int], at: dt.datetime, hours: int, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Posts per hour in the ``hours`` before and after ``at`` (the response's hour counts as after)."""
    start = at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    before = [(hour_key(start - dt.timedelta(hours=i)), 0) for i in range(hours, 0, -1)]
    after = [(hour_key(start + dt.timedelta(hours=i)), 0) for i in range(hours)]
    before_s: list[dict[str, Any]] = [{"hour": k, "count": hourly.get(k, 0)} for k, _ in before]
    after_s: list[dict[str, Any]] = [{"hour": k, "count": hourly.get(k, 0)} for k, _ in after]
    elapsed = (now - start).total_seconds() / 3600
    observed = max(0, min(hours, int(elapsed) + (1 if elapsed > int(elapsed) else 0)))
    after_s = after_s[:observed] if observed else []
    b = sum(x["count"] for x in before_s)
    a = sum(x["count"] for x in after_s)
    before_d = {"hours": hours, "posts": b, "per_hour": round(b / hours, 2), "series": before_s}
    after_d = {
        "hours": hours,
        "observed_hours": observed,
        "posts": a,
        "per_hour": round(a / observed, 2) if observed else None,
        "series": after_s,
        "complete": observed >= hours,
    }
    if observed and b:
        after_d["change"] = round((a / observed) / (b / hours) - 1, 3)
    return before_d, after_d


def measure_spread(
    session: Session,
    response: Response,
    alert: Alert | None = None,
    *,
    now: dt.datetime | None = None,
    hours: int | None = None,
) -> None:
    alert = alert or get_alert(session, response.alert_id)
    if hours is None:
        try:
            hours = load_rules().response_hours
        except InvalidInput:
            hours = 6
    response.spread_before, response.spread_after = spread_around(
        hourly_for(session, alert), response.published_at, hours, now or utcnow()
    )


def remeasure_responses(session: Session, now: dt.datetime, cfg: RulesConfig) -> int:
    """Responses whose after-window is still open get their spread measured again."""
    since = now - dt.timedelta(hours=cfg.response_hours + 1)
    count = 0
    for response in session.scalars(select(Response).where(Response.published_at >= since)):
        if (response.spread_after or {}).get("complete"):
            continue
        measure_spread(session, response, now=now, hours=cfg.response_hours)
        count += 1
    return count

