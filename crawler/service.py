"""Database functions of the crawler: sources, runs, fetch state, what is already stored.

Posts themselves are written only through core.ingest; this module keeps the crawler's own
bookkeeping (``sources``, ``source_runs``, ``fetch_state``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.errors import NotFound
from core.ingest import canonical_url
from core.lifecycle import owner_gone, worker_id
from core.privacy import mask_personal_data
from core.tables import FetchState, Post, Source, SourceRun, utcnow
from crawler.config import SourceConfig
from crawler.items import FetchMark

#: A run still 'running' after this long (or 3 intervals) was killed; the scheduler's timeout is the same.
STALE_RUN_SECONDS = 600


# ----------------------------------------------------------------------------- sources


def sync_sources(session: Session, sources: Iterable[SourceConfig]) -> dict[str, int]:
    """Upsert sources from the YAML file into ``sources``; returns name -> id.

    Kind, config and interval always follow the file. ``enabled`` follows the file only when the
    file's value changed since the last sync, so a switch made by an admin in the console stays
    until someone edits that source's ``enabled`` in the file (the latest change wins).
    """
    ids: dict[str, int] = {}
    for src in sources:
        config = src.public()
        # Several crawler processes may sync the same file at once: insert-if-absent, then update.
        session.execute(upsert_insert(session, Source.__table__).on_conflict_do_nothing(index_elements=["name"]),
                        [{"name": src.name, "kind": src.kind, "config": config, "interval_seconds": src.interval,
                          "enabled": src.enabled, "created_at": utcnow(), "updated_at": utcnow()}])
        row = session.scalar(select(Source).where(Source.name == src.name))
        assert row is not None
        previous = (row.config or {}).get("enabled")
        if previous is None or previous != src.enabled:
            row.enabled = src.enabled
        row.kind, row.config, row.interval_seconds = src.kind, config, src.interval
        session.flush()
        ids[src.name] = row.id
    return ids


def source_enabled(session: Session, name: str) -> bool | None:
    return session.scalar(select(Source.enabled).where(Source.name == name))


def set_enabled(session: Session, source_id: int, enabled: bool) -> Source:
    row = get_source(session, source_id)
    row.enabled = enabled
    session.flush()
    return row


@dataclass
class SourceWithRun:
    source: Source
    last_run: SourceRun | None
    post_count: int


def list_sources(session: Session, *, offset: int = 0, limit: int = 50,
                 kinds: Sequence[str] = ("feed", "html", "json", "custom")) -> tuple[list[SourceWithRun], int]:
    """Crawl sources with their latest run and stored post count, by name."""
    where = Source.kind.in_(list(kinds))
    total = session.scalar(select(func.count()).select_from(Source).where(where)) or 0
    rows = list(session.scalars(select(Source).where(where).order_by(Source.name).offset(offset).limit(limit)))
    ids = [r.id for r in rows]
    latest: dict[int, SourceRun] = {}
    counts: dict[int, int] = {}
    if ids:
        newest = (select(SourceRun.source_id, func.max(SourceRun.id).label("rid"))
                  .where(SourceRun.source_id.in_(ids)).group_by(SourceRun.source_id).subquery())
        for run in session.scalars(select(SourceRun).join(newest, SourceRun.id == newest.c.rid)):
            latest[run.source_id] = run
        for sid, n in session.execute(select(Post.source_id, func.count()).where(Post.source_id.in_(ids))
                                      .group_by(Post.source_id)):
            if sid is not None:
                counts[sid] = n
    return [SourceWithRun(r, latest.get(r.id), counts.get(r.id, 0)) for r in rows], total


# ----------------------------------------------------------------------------- runs


INTERRUPTED = {"url": None, "reason": "运行中断：进程在结束前被终止（超时或被杀死）；已入库的内容保留", "kind": "run"}


def close_dead_runs(session: Session, source_id: int, *, older_than: dt.datetime | None = None) -> int:
    """Mark this source's runs still 'running' as interrupted when their process is gone (same
    host: at once) or, for any host, when they started before ``older_than``."""
    count = 0
    now = utcnow()
    for run in session.scalars(select(SourceRun).where(SourceRun.source_id == source_id,
                                                       SourceRun.status == "running")):
        started = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=dt.UTC)
        stale = older_than is not None and started < older_than
        if stale or owner_gone((run.stats or {}).get("worker")):
            run.status = "interrupted"
            run.finished_at = now
            run.errors = [*(run.errors or []), INTERRUPTED]
            count += 1
    session.flush()
    return count


def start_run(session: Session, source: SourceConfig, *, stats: dict[str, Any] | None = None) -> int:
    """Record a new run; runs of this source still 'running' whose process has exited (killed),
    or that started long before any crawl could take (another host), are marked interrupted."""
    ids = sync_sources(session, [source])
    now = utcnow()
    cutoff = now - dt.timedelta(seconds=max(STALE_RUN_SECONDS, 3 * source.interval))
    close_dead_runs(session, ids[source.name], older_than=cutoff)
    run = SourceRun(source_id=ids[source.name], status="running", errors=[],
                    stats={"worker": worker_id()} | (stats or {}))
    session.add(run)
    session.flush()
    return run.id


def finish_run(session: Session, run_id: int, *, status: str, pages_fetched: int, items_new: int,
               items_updated: int, items_unchanged: int, items_dropped: int, errors: list[dict[str, Any]],
               stats: dict[str, Any]) -> SourceRun:
    run = session.get(SourceRun, run_id)
    if run is None:
        raise NotFound(f"运行记录 {run_id} 不存在")
    now = utcnow()
    run.finished_at = now
    run.status = status
    run.pages_fetched, run.items_new, run.items_updated = pages_fetched, items_new, items_updated
    run.items_unchanged, run.items_dropped = items_unchanged, items_dropped
    # Reasons and URLs only, and masked: a URL or a server's message can carry a phone number.
    run.errors = [{k: mask_personal_data(v) if isinstance(v, str) else v for k, v in e.items()} for e in errors]
    run.stats = (run.stats or {}) | stats
    source = session.get(Source, run.source_id)
    if source is not None:
        source.last_run_at = now
    session.flush()
    return run


# ----------------------------------------------------------------------------- incremental state


@dataclass
class Known:
    """What a source already has stored: a crawl skips these unless ``--refresh``."""

    urls: set[str] = field(default_factory=set)  # canonical URLs of stored posts
    external_ids: set[str] = field(default_factory=set)
    fetch: dict[str, tuple[str | None, str | None, str | None]] = field(default_factory=dict)
    # Stop paging at known items only after a clean last run: a killed or failed run may have left
    # older pages unread, so the next run pages through everything (stored detail pages still skipped).
    last_run_ok: bool = False

    def has_url(self, url: str) -> bool:
        return canonical_url(url) in self.urls


def load_known(session: Session, source_name: str, fetch_urls: Iterable[str] = ()) -> Known:
    known = Known()
    sid = session.scalar(select(Source.id).where(Source.name == source_name))
    if sid is not None:
        last = session.scalar(select(SourceRun.status).where(SourceRun.source_id == sid)
                              .order_by(SourceRun.id.desc()).limit(1))
        known.last_run_ok = last == "ok"
        rows = session.execute(select(FetchState.url, FetchState.etag, FetchState.last_modified,
                                      FetchState.content_hash).where(FetchState.source_id == sid))
        for url, etag, modified, chash in rows:
            known.fetch[url] = (etag, modified, chash)
        for post_url, ext in session.execute(select(Post.url, Post.external_id).where(Post.source_id == sid)):
            if post_url:
                known.urls.add(canonical_url(post_url))
            if ext:
                known.external_ids.add(ext)
    wanted = list(fetch_urls)
    if wanted:
        rows = session.execute(select(FetchState.url, FetchState.etag, FetchState.last_modified,
                                      FetchState.content_hash).where(FetchState.url.in_(wanted)))
        for url, etag, modified, chash in rows:
            known.fetch[url] = (etag, modified, chash)
    return known


def record_fetches(session: Session, marks: Sequence[FetchMark], source_id: int | None) -> None:
    """Upsert HTTP validators and content hashes per URL."""
    if not marks:
        return
    now = utcnow()
    latest: dict[str, FetchMark] = {m.url: m for m in marks}
    rows = [{"url": m.url[:2048], "source_id": source_id, "etag": m.etag, "last_modified": m.last_modified,
             "content_hash": m.content_hash, "status": m.status, "last_fetched_at": now} for m in latest.values()]
    stmt = upsert_insert(session, FetchState.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["url"],
        set_={c: stmt.excluded[c] for c in ("etag", "last_modified", "content_hash", "status",
                                             "last_fetched_at", "source_id")},
    )
    session.execute(stmt, rows)


def source_id(session: Session, name: str) -> int | None:
    return session.scalar(select(Source.id).where(Source.name == name))


def recent_runs(session: Session, source_id: int, *, limit: int = 20) -> list[SourceRun]:
    return list(session.scalars(select(SourceRun).where(SourceRun.source_id == source_id)
                                .order_by(SourceRun.id.desc()).limit(limit)))


def utc_iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def get_source(session: Session, source_id: int) -> Source:
    row = session.get(Source, source_id)
    if row is None:
        raise NotFound(f"信息源 {source_id} 不存在。")
    return row


def source_with_run(session: Session, source_id: int) -> SourceWithRun:
    src = get_source(session, source_id)
    last = session.scalar(select(SourceRun).where(SourceRun.source_id == source_id)
                          .order_by(SourceRun.id.desc()).limit(1))
    count = session.scalar(select(func.count()).select_from(Post).where(Post.source_id == source_id)) or 0
    return SourceWithRun(src, last, count)
