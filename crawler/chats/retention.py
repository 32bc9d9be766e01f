"""Retention: raw chat messages older than YUQING_RETENTION_DAYS are deleted.

Chosen: delete the rows rather than blank their text. A blanked row would still hold who (a
pseudonym), where (the group) and when, which is personal data we promised to drop; deleting
is the honest form of "keep it no longer than needed". What stays:

* messages that are evidence of an alert (``alert_posts``): the office must be able to show
  what it acted on;
* messages that represent a story or topic (``representative_post_id``);
* stories, topics and alerts themselves with their stored statistics (post_count, group_count,
  hourly_counts): they are aggregates kept on those rows, not recomputed from messages.

Scores and debunk matches of deleted messages go with them (ON DELETE CASCADE); labels keep
their own copy of the text. Public web posts are not touched. Deletes run in chunks, each in its
own commit, so a purge of millions of rows never holds one long transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.settings import get_settings
from core.tables import AlertPost, Post, Story, Topic, utcnow

CHUNK = 2000


@dataclass
class PurgeResult:
    cutoff: dt.datetime
    deleted: int = 0
    kept_as_evidence: int = 0


def _old_chat(cutoff: dt.datetime) -> tuple[Any, ...]:
    return (Post.channel == "chat", func.coalesce(Post.published_at, Post.collected_at) < cutoff)


def _kept() -> Any:
    evidence = select(AlertPost.post_id)
    story_reps = select(Story.representative_post_id).where(Story.representative_post_id.is_not(None))
    topic_reps = select(Topic.representative_post_id).where(Topic.representative_post_id.is_not(None))
    return Post.id.in_(evidence) | Post.id.in_(story_reps) | Post.id.in_(topic_reps)


def purge_chat_messages(
    session: Session,
    *,
    days: int | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    commit: bool = True,
) -> PurgeResult:
    """Delete chat messages older than ``days`` (default YUQING_RETENTION_DAYS) except evidence."""
    days = days if days is not None else get_settings().retention_days
    if days < 1:
        raise ValueError("保留天数至少为 1 天")
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    result = PurgeResult(cutoff=cutoff)
    result.kept_as_evidence = (
        session.scalar(select(func.count()).select_from(Post).where(*_old_chat(cutoff), _kept())) or 0
    )
    if dry_run:
        result.deleted = (
            session.scalar(select(func.count()).select_from(Post).where(*_old_chat(cutoff), ~_kept())) or 0
        )
        return result
    while True:
        ids = list(session.scalars(select(Post.id).where(*_old_chat(cutoff), ~_kept()).limit(CHUNK)))
        if not ids:
            break
        session.execute(delete(Post).where(Post.id.in_(ids)).execution_options(synchronize_session=False))
        result.deleted += len(ids)
        if commit:
            session.commit()
    return result
