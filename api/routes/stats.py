"""Counts for dashboards: GET /api/v1/stats."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import func, select

from alerts.queries import alert_stats
from api.deps import SessionDep, ViewerUser
from core.tables import AlertRun, AnalysisRun, Debunk, Notification, Post, Story, Topic, utcnow

router = APIRouter(tags=["stats"])


class Stats(BaseModel):
    generated_at: dt.datetime
    alerts: dict[str, Any]
    posts: dict[str, int]
    stories_24h: int
    hot_topics: int
    debunks_active: int
    notifications: dict[str, int]
    last_analysis_at: dt.datetime | None
    last_alert_run_at: dt.datetime | None


@router.get("/stats", response_model=Stats, summary="看板计数：预警、帖子、事件、热点、通知")
def stats(_: ViewerUser, session: SessionDep) -> Stats:
    now = utcnow()
    day = now - dt.timedelta(hours=24)

    def count(*where: Any, table: Any = Post) -> int:
        return int(session.scalar(select(func.count()).select_from(table).where(*where)) or 0)

    grouped = session.execute(select(Notification.status, func.count()).group_by(Notification.status))
    by_status = {status: n for status, n in grouped}
    failing = count(Notification.status == "pending", Notification.attempts > 0, table=Notification)
    return Stats(
        generated_at=now,
        alerts=alert_stats(session),
        posts={
            "total": count(),
            "last_24h": count(Post.collected_at >= day),
            "chat_last_24h": count(Post.collected_at >= day, Post.channel == "chat"),
            "unanalyzed": count(Post.analyzed_at.is_(None)),
        },
        stories_24h=count(Story.last_seen >= day, table=Story),
        hot_topics=count(Topic.is_hot.is_(True), table=Topic),
        debunks_active=count(Debunk.active.is_(True), table=Debunk),
        notifications={
            "pending": int(by_status.get("pending", 0)),
            "sent": int(by_status.get("sent", 0)),
            "dead": int(by_status.get("dead", 0)),
            "retrying": failing,
        },
        last_analysis_at=session.scalar(select(func.max(AnalysisRun.finished_at))),
        last_alert_run_at=session.scalar(select(func.max(AlertRun.finished_at))),
    )
