"""The one idempotent write path for posts and chat messages.

Crawler pipelines, chat importers and the ingestion API all call :func:`ingest_posts`. It
validates a batch, masks personal numbers, pseudonymises chat senders, and upserts by a
stable key (source + external id, else canonical URL, else content hash), in a few set-based
statements per batch rather than one per row. Re-running the same batch changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session
from w3lib.url import canonicalize_url

from core.db import upsert_insert
from core.privacy import mask_personal_data, pseudonym
from core.settings import get_settings
from core.tables import ChatGroup, Post, Source, utcnow
from core.textsearch import row_tokens

log = logging.getLogger(__name__)
POSTS: Table = Post.__table__  # type: ignore[assignment]

MAX_TEXT_CHARS = 200_000
EARLIEST_PLAUSIBLE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_CHUNK = 500  # keys per IN (...) query; well under SQLite's variable limit


class GroupRef(BaseModel):
    """Which chat group a message belongs to (created on first sight)."""

    model_config = ConfigDict(extra="ignore")
    platform: str = Field(max_length=20)
    external_id: str = Field(min_length=1, max_length=200)
    name: str | None = Field(None, max_length=200)
    member_count: int | None = None


class PostItem(BaseModel):
    """One post or message as any collector hands it over."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    channel: Literal["web", "chat"] = "web"
    source: str | None = Field(None, max_length=200, description="Source name (created if unknown)")
    source_kind: str = Field("html", max_length=20)
    group: GroupRef | None = None
    external_id: str | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2048)
    parent_key: str | None = Field(None, max_length=600, description="dedup key of the thread / quoted post")
    parent_external_id: str | None = Field(None, max_length=200)
    title: str | None = Field(None, max_length=1000)
    text: str = Field("", max_length=MAX_TEXT_CHARS)
    author: str | None = Field(None, max_length=255)
    author_id: str | None = Field(None, max_length=255)
    published_at: dt.datetime | None = None
    is_forward: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)
    images: list[str] = Field(
        default_factory=list, max_length=50,
        description="Pictures of the post: http(s) URLs or files of an export (queued for core.images)",
    )

    @field_validator("external_id", "author_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


@dataclass
class Rejected:
    index: int
    key: str | None
    reason: str


@dataclass
class IngestResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)  # dedup_key -> new | updated | unchanged

    def merge(self, other: IngestResult) -> IngestResult:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected.extend(other.rejected)
        self.keys.update(other.keys)
        return self


def content_hash(text: str, title: str | None = None) -> str:
    body = " ".join(((title or "") + "\n" + text).split())
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def canonical_url(url: str) -> str:
    """Canonical form for identity: sorted query, no fragment, no utm_* tracking parameters."""
    canon = canonicalize_url(url.strip())
    if "utm_" in canon:
        base, _, query = canon.partition("?")
        kept = [p for p in query.split("&") if not p.startswith("utm_")]
        canon = base + ("?" + "&".join(kept) if kept else "")
    return canon


def _scope(item: PostItem) -> str:
    if item.group is not None:
        return f"group:{item.group.platform}:{item.group.external_id}"
    return f"source:{item.source or '-'}"


def dedup_key(item: PostItem, body_hash: str, author: str | None) -> str:
    """Stable identity of an item: source + external id, else canonical URL, else content hash.

    ``author`` is the stored (pseudonymised) name, so no raw sender id ends up in the key.
    """
    if item.external_id:
        return f"{_scope(item)}|id|{item.external_id}"
    if item.url:
        return f"url|{canonical_url(item.url)}"
    when = item.published_at.isoformat() if item.published_at else "-"
    return f"{_scope(item)}|hash|{author or '-'}|{when}|{body_hash}"


def _aware(value: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _check(item: PostItem, now: dt.datetime) -> str | None:
    """The reason an item is unusable, or None."""
    if not item.text and not item.title:
        return "没有正文也没有标题 (missing text)"
    if item.published_at is not None:
        if item.published_at < EARLIEST_PLAUSIBLE:
            return f"发布时间不合理 (absurd date {item.published_at.isoformat()}, before 2000)"
        if item.published_at > now + dt.timedelta(days=1):
            return f"发布时间在未来 (absurd date {item.published_at.isoformat()})"
    if item.channel == "chat" and item.group is None:
        return "群消息缺少群信息 (chat message without group)"
    return None


def _validate(raw: Sequence[Mapping[str, Any] | PostItem]) -> tuple[list[tuple[int, PostItem]], list[Rejected]]:
    settings = get_settings()
    tz = ZoneInfo(settings.timezone)
    now = utcnow()
    good: list[tuple[int, PostItem]] = []
    bad: list[Rejected] = []
    for index, entry in enumerate(raw):
        try:
            item = entry if isinstance(entry, PostItem) else PostItem.model_validate(entry)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            bad.append(Rejected(index, None, f"字段 {where} 无效: {first['msg']}"))
            continue
        if item.published_at is not None:
            item.published_at = _aware(item.published_at, tz)
        reason = _check(item, now)
        if reason:
            bad.append(Rejected(index, item.external_id or item.url, reason))
            continue
        good.append((index, item))
    return good, bad


def _ensure_sources(session: Session, items: Iterable[PostItem]) -> dict[str, int]:
    wanted = {i.source: i.source_kind for i in items if i.source}
    if not wanted:
        return {}
    rows: list[dict[str, Any]] = [{"name": n, "kind": k, "config": {}, "enabled": True} for n, k in wanted.items()]
    session.execute(upsert_insert(session, Source.__table__).on_conflict_do_nothing(index_elements=["name"]), rows)
    found = session.execute(select(Source.id, Source.name).where(Source.name.in_(list(wanted))))
    return {name: sid for sid, name in found}


def _ensure_groups(session: Session, items: Iterable[PostItem]) -> dict[tuple[str, str], ChatGroup]:
    wanted: dict[tuple[str, str], GroupRef] = {}
    for i in items:
        if i.group is not None:
            wanted[(i.group.platform, i.group.external_id)] = i.group
    if not wanted:
        return {}
    masked = get_settings().mask_personal_data
    rows: list[dict[str, Any]] = [
        {"platform": p, "external_id": e, "member_count": g.member_count, "tags": [],
         "name": mask_personal_data(g.name or e) if masked else g.name or e}
        for (p, e), g in wanted.items()
    ]
    stmt = upsert_insert(session, ChatGroup.__table__).on_conflict_do_nothing(index_elements=["platform", "external_id"])
    session.execute(stmt, rows)
    out: dict[tuple[str, str], ChatGroup] = {}
    for platform in {p for p, _ in wanted}:
        ids = [e for p, e in wanted if p == platform]
        for g in session.scalars(
            select(ChatGroup).where(ChatGroup.platform == platform, ChatGroup.external_id.in_(ids))
        ):
            out[(g.platform, g.external_id)] = g
    return out


def _row(item: PostItem, body_hash: str, ids: dict[str, int],
         groups: dict[tuple[str, str], ChatGroup], secret: bytes) -> dict[str, Any]:
    settings = get_settings()
    group = groups.get((item.group.platform, item.group.external_id)) if item.group else None
    author = item.author
    if item.channel == "chat" and settings.pseudonymize_senders and not (group and group.keep_names):
        who = item.author_id or item.author
        author = pseudonym(f"{item.group.platform if item.group else '-'}:{who}", secret) if who else None
    text, title = item.text, item.title
    if settings.mask_personal_data:
        text = mask_personal_data(text)
        title = mask_personal_data(title) if title else title
        # a name kept as written (web authors, groups that keep names) can carry a number too
        author = mask_personal_data(author) if author else author
    parent_key = item.parent_key
    if parent_key is None and item.parent_external_id:
        parent_key = f"{_scope(item)}|id|{item.parent_external_id}"
    extra = dict(item.extra)
    if item.author_id and item.channel == "web":
        extra.setdefault("author_id", item.author_id)
    return {
        "dedup_key": dedup_key(item, body_hash, author),
        "channel": item.channel,
        "source_id": ids.get(item.source) if item.source else None,
        "group_id": group.id if group else None,
        "external_id": item.external_id,
        "url": item.url,
        "parent_key": parent_key,
        "title": title,
        "author": author,
        "published_at": item.published_at,
        "raw_text": text,
        "content_hash": body_hash,
        "is_forward": item.is_forward,
        "extra": extra,
    }


def ingest_posts(session: Session, items: Sequence[Mapping[str, Any] | PostItem]) -> IngestResult:
    """Upsert a batch of posts/messages; returns counts new / updated / unchanged and rejections.

    Runs in the caller's transaction (the caller commits), so a failure leaves nothing half-done.
    """
    good, rejected = _validate(items)
    result = IngestResult(rejected=rejected)
    if not good:
        return result
    secret = get_settings().secret()
    source_ids = _ensure_sources(session, (i for _, i in good))
    groups = _ensure_groups(session, (i for _, i in good))

    batch: dict[str, dict[str, Any]] = {}  # last occurrence of a key in a batch wins
    image_refs: dict[str, list[str]] = {}
    for _, item in good:
        row = _row(item, content_hash(item.text, item.title), source_ids, groups, secret)
        batch[row["dedup_key"]] = row
        if item.images:
            image_refs[row["dedup_key"]] = item.images

    existing = _existing(session, list(batch))
    fresh = [row for key, row in batch.items() if key not in existing]
    changed = [
        row for key, row in batch.items()
        if key in existing and existing[key] != (row["content_hash"], row["title"])
    ]
    for row in (*fresh, *changed):
        row["search_tokens"] = row_tokens("posts", row)  # the words core.search finds it by
    inserted = _insert_new(session, fresh)
    _update_changed(session, changed)
    _link_parents(session, [r["dedup_key"] for r in fresh + changed if r["parent_key"]])
    _queue_images(session, image_refs)

    for key in batch:
        if key in inserted:
            result.keys[key] = "new"
        elif key in existing and existing[key] != (batch[key]["content_hash"], batch[key]["title"]):
            result.keys[key] = "updated"
        else:
            result.keys[key] = "unchanged"
    result.new = sum(1 for s in result.keys.values() if s == "new")
    result.updated = sum(1 for s in result.keys.values() if s == "updated")
    result.unchanged = sum(1 for s in result.keys.values() if s == "unchanged")
    log.debug("ingest", extra={"new": result.new, "updated": result.updated, "rejected": len(rejected)})
    return result


def _queue_images(session: Session, refs: dict[str, list[str]]) -> None:
    """The pictures of the batch's posts wait in post_images for the picture worker."""
    if not refs:
        return
    from core.images import queue_refs  # Pillow/numpy only when a batch has pictures

    queue_refs(session, refs)


def _existing(session: Session, keys: list[str]) -> dict[str, tuple[str, str | None]]:
    found: dict[str, tuple[str, str | None]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        stmt = select(Post.dedup_key, Post.content_hash, Post.title).where(Post.dedup_key.in_(chunk))
        for key, chash, title in session.execute(stmt):
            found[key] = (chash, title)
    return found


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """INSERT .. ON CONFLICT DO NOTHING RETURNING: a concurrent writer's row is not ours to count."""
    if not rows:
        return set()
    now = utcnow()
    for row in rows:
        row["collected_at"] = now
        row["updated_at"] = now
    stmt = (
        upsert_insert(session, Post.__table__)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(Post.__table__.c.dedup_key)
    )
    inserted: set[str] = set()
    for start in range(0, len(rows), _CHUNK):
        res = session.execute(stmt, rows[start:start + _CHUNK])
        inserted.update(res.scalars().all())
    return inserted


_UPDATABLE = ("title", "raw_text", "content_hash", "author", "published_at", "url", "extra", "is_forward",
              "parent_key", "search_tokens")


def _update_changed(session: Session, rows: list[dict[str, Any]]) -> None:
    """Changed content is stored and queued for analysis again (analyzed_at reset)."""
    if not rows:
        return
    table = POSTS
    stmt = (
        update(table)
        .where(table.c.dedup_key == bindparam("_key"))
        .values({c: bindparam(c) for c in _UPDATABLE} | {"updated_at": bindparam("_now"), "analyzed_at": None})
    )
    now = utcnow()
    params = [{c: r[c] for c in _UPDATABLE} | {"_key": r["dedup_key"], "_now": now} for r in rows]
    session.connection().execute(stmt, params)


def _link_parents(session: Session, keys: list[str]) -> None:
    """Resolve parent_key -> parent_id for the given rows (parents may arrive in the same batch)."""
    if not keys:
        return
    table = POSTS
    parent = table.alias("parent")
    sub = select(parent.c.id).where(parent.c.dedup_key == table.c.parent_key).scalar_subquery()
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        session.execute(update(table).where(table.c.dedup_key.in_(chunk)).values(parent_id=sub))


def link_orphans(session: Session) -> int:
    """Link replies whose parent arrived in a later batch. Cheap; run after an import or crawl."""
    table = POSTS
    parent = table.alias("parent")
    sub = select(parent.c.id).where(parent.c.dedup_key == table.c.parent_key).scalar_subquery()
    res = session.execute(
        update(table)
        .where(table.c.parent_id.is_(None), table.c.parent_key.is_not(None))
        .values(parent_id=sub)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(res, "rowcount", 0) or 0)
