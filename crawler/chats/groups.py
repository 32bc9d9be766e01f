"""Chat groups as first-class things: list with message counts, and the admin's settings."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from core.db import json_dumps, upsert_insert
from core.errors import InvalidInput, NotFound
from core.tables import ChatGroup, Post

PLATFORMS = ("qq", "wechat", "telegram", "web", "other")


def list_groups(
    session: Session,
    *,
    platform: str | None = None,
    q: str | None = None,
    tag: str | None = None,
    enabled: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    """Groups with their stored message count and last message time, most active first."""
    counts = (
        select(Post.group_id.label("gid"), func.count().label("n"), func.max(Post.published_at).label("last"))
        .where(Post.group_id.is_not(None))
        .group_by(Post.group_id)
        .subquery()
    )
    filters = []
    if platform:
        filters.append(ChatGroup.platform == platform)
    if q:
        filters.append(ChatGroup.name.contains(q, autoescape=True))
    if tag:
        # tags are a JSON list; match the JSON-encoded string so "村" does not match "村委"
        # (as stored now, and \\u-escaped as rows written before core.db.json_dumps were)
        stored = cast(ChatGroup.tags, String)
        filters.append(or_(stored.contains(json_dumps(tag), autoescape=True),
                           stored.contains(json.dumps(tag), autoescape=True)))
    if enabled is not None:
        filters.append(ChatGroup.enabled.is_(enabled))
    total = session.scalar(select(func.count()).select_from(ChatGroup).where(*filters)) or 0
    n = func.coalesce(counts.c.n, 0)
    stmt = (
        select(ChatGroup, n.label("message_count"), counts.c.last)
        .outerjoin(counts, counts.c.gid == ChatGroup.id)
        .where(*filters)
        .order_by(n.desc(), ChatGroup.id)
        .offset(offset)
        .limit(limit)
    )
    rows = []
    for group, count, last in session.execute(stmt):
        rows.append(group_dict(group) | {"message_count": int(count), "last_message_at": _aware(last)})
    return rows, total


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def group_dict(group: ChatGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "platform": group.platform,
        "external_id": group.external_id,
        "name": group.name,
        "member_count": group.member_count,
        "tags": list(group.tags or []),
        "keep_names": group.keep_names,
        "enabled": group.enabled,
        "created_at": group.created_at,
    }


def get_group(session: Session, group_id: int) -> ChatGroup:
    group = session.get(ChatGroup, group_id)
    if group is None:
        raise NotFound(f"群 {group_id} 不存在：用 GET /api/v1/groups 或 `yuqing groups list` 查看群的 ID")
    return group


def update_group(session: Session, group_id: int, changes: dict[str, Any]) -> ChatGroup:
    """Set name / tags / member_count / keep_names / enabled (only the keys given)."""
    group = get_group(session, group_id)
    allowed = {"name", "tags", "member_count", "keep_names", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(
            f"不能修改群的字段：{', '.join(sorted(unknown))}；可改 {', '.join(sorted(allowed))}"
        )
    if "name" in changes and not str(changes["name"] or "").strip():
        raise InvalidInput("群名不能为空")
    if "tags" in changes:
        changes["tags"] = sorted({str(t).strip() for t in changes["tags"] or [] if str(t).strip()})
    for key, value in changes.items():
        setattr(group, key, value)
    session.flush()
    return group


def ensure_group(
    session: Session,
    *,
    platform: str,
    external_id: str,
    name: str,
    tags: list[str] | None = None,
    keep_names: bool | None = None,
) -> ChatGroup:
    """Create the group if it is new, then apply the settings given (idempotent).

    Tags given are added to the group's tags; ``keep_names`` is changed only when given, so a
    switch made in the console stays unless the caller (the sources file) says otherwise.
    ``enabled`` is never touched here: switching a group off is the admin's decision.
    """
    # Insert-if-absent, then read: crawler workers starting together each create the group, and a
    # select-then-add raced (one worker's spider failed to open on the unique key).
    session.execute(
        upsert_insert(session, ChatGroup.__table__).on_conflict_do_nothing(index_elements=["platform", "external_id"]),
        [{"platform": platform, "external_id": external_id, "name": name, "tags": [], "keep_names": False}],
    )
    group = session.scalars(
        select(ChatGroup).where(ChatGroup.platform == platform, ChatGroup.external_id == external_id)
    ).one()
    changes: dict[str, Any] = {"name": name}
    if tags:
        changes["tags"] = list(group.tags or []) + list(tags)
    if keep_names is not None:
        changes["keep_names"] = keep_names
    return update_group(session, group.id, changes)
