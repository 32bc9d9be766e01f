"""Batching parsed chat messages into core.ingest: for export files and for bot pushes.

:class:`MessageSink` turns :class:`ChatMessage` objects into ingest items (group reference, a stable
message id, reply link, forward marker) and hands them to :func:`core.ingest.ingest_posts` in
batches. Nothing is kept per message beyond the current batch, so memory stays flat for any file.

Message identity: the platform's message id where the format has one; otherwise an id derived
from (group, time to the second, sender, text, occurrence of that same text by that sender within
that second) as a keyed HMAC with the instance secret. Re-importing a file, or re-running an
interrupted import, derives the same ids, so core.ingest stores nothing twice. The HMAC keeps the
raw sender id out of the stored id (a plain hash of a QQ number could be brute-forced).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ingest import ingest_posts, link_orphans
from core.lifecycle import worker_id
from core.privacy import mask_personal_data
from core.settings import get_settings
from core.tables import ChatGroup, Source, SourceRun, utcnow
from crawler.chats.detect import detect_format, open_events
from crawler.chats.model import ChatMessage, ParseIssue, Skipped
from crawler.service import close_dead_runs

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
MAX_ISSUES = 500  # kept for the report; the count goes on beyond it
SOURCE_NAMES = {
    "qq-txt": "QQ聊天记录导入",
    "qq-json": "QQ聊天记录导入",
    "wechat-csv": "微信聊天记录导入",
    "telegram-json": "Telegram聊天记录导入",
}
PLATFORMS = {"qq-txt": "qq", "qq-json": "qq", "wechat-csv": "wechat", "telegram-json": "telegram"}


@dataclass
class GroupInfo:
    ref: dict[str, Any]
    enabled: bool


@dataclass
class SinkCounts:
    messages: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line or index, reason), capped
    rejected_count: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)  # group name -> messages handed over


def name_group_id(name: str) -> str:
    """The stable external id of a group known only by its name (QQ text exports)."""
    clean = " ".join(name.split())
    return "name:" + clean if len(clean) <= 190 else "name#" + hashlib.sha256(clean.encode()).hexdigest()


def keyed_digest(secret: bytes, *parts: str) -> str:
    """A stable message id from its parts, keyed with the instance secret (no raw sender id in it)."""
    material = "\x1f".join(parts)
    return hmac.digest(secret, material.encode("utf-8"), "sha256").hex()[:24]


def clean_text(value: str | None) -> str | None:
    """Text both databases accept: no NUL (PostgreSQL refuses it), no lone surrogates (JSON "\\ud800")."""
    if not value:
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\x00", "") if "\x00" in value else value


class MessageSink:
    """Collects messages and ingests them in batches (optionally committing after each batch)."""

    def __init__(
        self,
        session: Session,
        *,
        source: str,
        source_kind: str,
        group_name: str | None = None,
        fallback_group: str | None = None,
        batch_size: int = BATCH_SIZE,
        commit_each_batch: bool = False,
        on_flush: Callable[[], None] | None = None,
    ) -> None:
        self.session = session
        self.source, self.source_kind = source, source_kind
        self.group_name = group_name  # --group: overrides the export's group name
        self.fallback_group = fallback_group  # the file name, when the export names no group
        self.batch_size = batch_size
        self.commit_each_batch = commit_each_batch
        self.on_flush = on_flush
        self.counts = SinkCounts()
        self.had_replies = False
        self._secret = get_settings().secret()
        self._batch: list[dict[str, Any]] = []
        self._lines: list[int] = []
        self._groups: dict[tuple[str, str | None, str | None], GroupInfo] = {}
        self._second: tuple[str, str] | None = None
        self._seen: Counter[tuple[str, str]] = Counter()

    # ------------------------------------------------------------------ groups

    def _group(self, msg: ChatMessage) -> GroupInfo:
        name = self.group_name or msg.group_name
        key = (msg.platform, msg.group_id, name)
        info = self._groups.get(key)
        if info is not None:
            return info
        name = name or self.fallback_group
        external_id = clean_text(msg.group_id) or self._id_for_name(msg.platform, clean_text(name) or "未命名群")
        existing = self.session.scalar(
            select(ChatGroup).where(ChatGroup.platform == msg.platform, ChatGroup.external_id == external_id)
        )
        ref = {
            "platform": msg.platform,
            "external_id": external_id,
            "name": clean_text((name or (existing.name if existing else None) or external_id)[:200]),
        }
        info = GroupInfo(ref, existing.enabled if existing is not None else True)
        self._groups[key] = info
        return info

    def _id_for_name(self, platform: str, name: str) -> str:
        """``name:<群名>``, unless exactly one group of that name already exists (e.g. from a bot push)."""
        by_name = name_group_id(name)
        rows = (
            self.session.execute(
                select(ChatGroup.external_id)
                .where(ChatGroup.platform == platform, ChatGroup.name == name)
                .limit(3)
            )
            .scalars()
            .all()
        )
        if by_name in rows or len(rows) != 1:
            return by_name
        return rows[0]

    # ------------------------------------------------------------------ ids

    def derived_id(self, msg: ChatMessage, group_external_id: str) -> str:
        stamp = msg.time.isoformat(timespec="seconds")
        who = msg.sender_id or msg.sender_name or ""
        if self._second != (group_external_id, stamp):
            self._second = (group_external_id, stamp)
            self._seen.clear()
        occurrence = self._seen[(who, msg.text)]
        self._seen[(who, msg.text)] += 1
        digest = keyed_digest(self._secret, msg.platform, group_external_id, stamp, who, msg.text, str(occurrence))
        # time first: keys of a chronological export arrive in index order (B-tree appends, not
        # random inserts), which keeps a multi-million-message import fast
        return f"t{msg.time:%Y%m%d%H%M%S}-{digest}"

    def quoted_id(self, msg: ChatMessage, group_external_id: str) -> str | None:
        """The derived id of the message ``msg`` quotes (as :meth:`derived_id` gave it, assuming it
        was the first of that text by that sender within its second, as nearly every message is)."""
        q = msg.quoted
        if q is None or not q.text or msg.message_id:  # a format with real ids names the quoted one by id
            return None
        digest = keyed_digest(self._secret, msg.platform, group_external_id, q.time.isoformat(timespec="seconds"),
                              q.sender_id, q.text, "0")
        return f"t{q.time:%Y%m%d%H%M%S}-{digest}"

    # ------------------------------------------------------------------ batching

    def add(self, msg: ChatMessage) -> None:
        group = self._group(msg)
        if not group.enabled:
            self.counts.skipped["disabled"] += 1
            return
        external_id = clean_text(msg.message_id) or self.derived_id(msg, group.ref["external_id"])
        reply_to = msg.reply_to or (self.quoted_id(msg, group.ref["external_id"]) if msg.quoted else None)
        if reply_to:
            self.had_replies = True
        self._batch.append(
            {
                "channel": "chat",
                "source": self.source,
                "source_kind": self.source_kind,
                "group": group.ref,
                "external_id": external_id[:200],
                "parent_external_id": clean_text(reply_to[:200]) if reply_to else None,
                "text": clean_text(msg.text),
                "author": clean_text(msg.sender_name[:255]) if msg.sender_name else None,
                "author_id": clean_text(msg.sender_id[:255]) if msg.sender_id else None,
                "published_at": msg.time,
                "is_forward": msg.is_forward,
                "extra": msg.extra,
                "images": msg.images,
            }
        )
        self._lines.append(msg.line)
        self.counts.messages += 1
        self.counts.groups[group.ref["name"]] += 1
        if len(self._batch) >= self.batch_size:
            self.flush()

    def skip(self, event: Skipped) -> None:
        self.counts.skipped[event.kind] += 1

    def flush(self) -> None:
        if not self._batch:
            return
        result = ingest_posts(self.session, self._batch)
        c = self.counts
        c.new += result.new
        c.updated += result.updated
        c.unchanged += result.unchanged
        c.rejected_count += len(result.rejected)
        for rej in result.rejected:
            if len(c.rejected) < MAX_ISSUES:
                c.rejected.append((self._lines[rej.index], rej.reason))
        self._batch.clear()
        self._lines.clear()
        if self.commit_each_batch:
            self.session.commit()
        if self.on_flush is not None:
            self.on_flush()

    def finish(self) -> None:
        self.flush()
        if self.had_replies:
            link_orphans(self.session)
            if self.commit_each_batch:
                self.session.commit()


# ---------------------------------------------------------------------------- files


@dataclass
class ImportReport:
    """What one file's import did; small whatever the file size."""

    path: str
    format: str
    size: int
    bytes_read: int = 0
    counts: SinkCounts = field(default_factory=SinkCounts)
    issues: list[ParseIssue] = field(default_factory=list)
    issue_count: int = 0
    seconds: float = 0.0
    completed: bool = False

    @property
    def messages_per_second(self) -> float:
        return self.counts.messages / self.seconds if self.seconds else 0.0


ProgressFn = Callable[[int, int], None]  # (bytes read, messages so far)


def _source(session: Session, name: str, kind: str) -> Source:
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        source = Source(name=name, kind=kind, config={}, enabled=True)
        session.add(source)
        session.flush()
    return source


def import_chat_file(
    session: Session,
    path: Path | str,
    *,
    fmt: str = "auto",
    group: str | None = None,
    batch_size: int = BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> ImportReport:
    """Stream one export file into the database, committing after every batch.

    Raises :class:`ChatFormatError` if the file as a whole cannot be read; single bad lines or
    records are reported in ``ImportReport.issues`` (with their line numbers) and the rest imports.
    If interrupted, what was committed stays and a re-run stores it as unchanged.
    """
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    stem = path.stem.removesuffix("_utf8") if path.suffix else path.name
    events, bytes_read = open_events(path, fmt, file_group=stem)
    report = ImportReport(path=str(path), format=fmt, size=path.stat().st_size)
    source = _source(session, SOURCE_NAMES[fmt], "chat_export")
    close_dead_runs(session, source.id)  # an import killed earlier: interrupted, not "running" forever
    run = SourceRun(source_id=source.id, status="running",
                    stats={"file": path.name, "format": fmt, "worker": worker_id()})
    session.add(run)
    session.commit()

    def flushed() -> None:
        if progress is not None:
            progress(bytes_read(), sink.counts.messages)

    pictures = ExportPictures(path.parent)
    sink = MessageSink(
        session,
        source=source.name,
        source_kind="chat_export",
        group_name=group,
        fallback_group=stem,
        batch_size=batch_size,
        commit_each_batch=True,
        on_flush=flushed,
    )
    report.counts = sink.counts
    started = time.perf_counter()
    try:
        for n, event in enumerate(events, start=1):
            if isinstance(event, ChatMessage):
                if event.images:
                    event.images = pictures.refs(event.images)
                sink.add(event)
            elif isinstance(event, Skipped):
                sink.skip(event)
            else:
                report.issue_count += 1
                if len(report.issues) < MAX_ISSUES:
                    report.issues.append(event)
            if progress is not None and n % 5000 == 0:
                progress(bytes_read(), sink.counts.messages)
        sink.finish()
        report.completed = True
    finally:
        report.seconds = time.perf_counter() - started
        report.bytes_read = bytes_read()
        if not report.completed:
            session.rollback()
        _close_run(session, run, report)
        session.commit()
        if progress is not None:
            progress(report.bytes_read, sink.counts.messages)
    log.info(
        "chat import %s (%s): %d messages, %d new, %d unreadable, %.1f s",
        path.name,
        fmt,
        sink.counts.messages,
        sink.counts.new,
        report.issue_count,
        report.seconds,
    )
    return report


_PICTURE_FOLDERS = ("", "image", "images", "img", "Image", "pic", "resources/images", "resources")
_PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".dat"}
MAX_INDEXED_FILES = 200_000  # pictures of one export indexed by name (md5: references)


class ExportPictures:
    """The pictures of one export: each reference of a message -> a ``file://`` reference.

    PyWxDump writes the phone's path (``FileStorage\\Image\\2026-11\\a.dat``); exports copy the
    files beside the CSV keeping that path, or flat into an ``image``/``img`` folder; QQ names a
    picture ``{GUID}.jpg``. MemoTrace's CSV names none: its row keeps WeChat's XML of the picture,
    whose ``md5`` is the md5 of the picture file (``md5:<hash>``), while the picture it copies into
    ``image/`` is named after WeChat's own ``.dat`` file (MemoTrace ``app/util/image.py``:
    ``image/<dat name>.jpg``), which is not always that md5: a file named by the md5 is taken
    first, else the file whose content has that md5 (WeChat's XOR'd ``.dat`` decoded first).
    Looked up under the export's folder only (never outside it). A picture that is not there
    is still referenced, at the place it would be: the picture worker records it ``missing``
    (the message keeps [图片]; copy the files in and they are read on the next import's fetch)."""

    def __init__(self, folder: Path) -> None:
        self.base = folder.resolve()
        self._files: list[Path] | None = None
        self._by_stem: dict[str, Path] | None = None
        self._by_md5: dict[str, Path] | None = None

    def refs(self, refs: list[str]) -> list[str]:
        return [f"file://{self._find(ref)}" for ref in refs if ref.strip()]

    def _find(self, ref: str) -> Path:
        if ref.startswith("md5:"):
            digest = ref[4:].lower()
            return self._stems().get(digest) or self._contents().get(digest) or self.base / digest
        rel = ref.replace("\\", "/").lstrip("/")
        if not rel or ".." in rel.split("/") or ":" in rel.split("/")[0]:
            rel = rel.split("/")[-1]  # an absolute Windows path: look for its file name only
        name = rel.split("/")[-1]
        candidates = [self.base / rel] + [self.base / sub / name for sub in _PICTURE_FOLDERS]
        found = next((c for c in candidates if c.is_file() and self.base in c.resolve().parents), None)
        return found.resolve() if found is not None else self.base / name

    def _pictures(self) -> list[Path]:
        """The picture files under the picture folders (at most MAX_INDEXED_FILES)."""
        if self._files is None:
            self._files = []
            for sub in _PICTURE_FOLDERS[1:]:
                folder = self.base / sub
                if not folder.is_dir():
                    continue
                for path in folder.rglob("*"):
                    if len(self._files) >= MAX_INDEXED_FILES:
                        break
                    if path.suffix.lower() in _PICTURE_SUFFIXES and path.is_file() \
                            and self.base in path.resolve().parents:
                        self._files.append(path.resolve())
        return self._files

    def _stems(self) -> dict[str, Path]:
        """File name (without suffix, lower case) -> picture file."""
        if self._by_stem is None:
            self._by_stem = {}
            for path in self._pictures():
                self._by_stem.setdefault(path.stem.lower(), path)
        return self._by_stem

    def _contents(self) -> dict[str, Path]:
        """md5 of the picture (a ``.dat`` decoded) -> picture file; read once, on the first miss by name."""
        if self._by_md5 is None:
            from crawler.image_fetch import decode_wechat_dat

            limit = int(get_settings().image_max_mb * 1024 * 1024)
            self._by_md5 = {}
            for path in self._pictures():
                try:
                    if path.stat().st_size > limit:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                if path.suffix.lower() == ".dat":
                    data = decode_wechat_dat(data)
                self._by_md5.setdefault(hashlib.md5(data, usedforsecurity=False).hexdigest(), path)
        return self._by_md5


def _close_run(session: Session, run: SourceRun, report: ImportReport) -> None:
    c = report.counts
    run = session.merge(run)
    run.finished_at = utcnow()
    run.status = (
        "failed" if not report.completed else "partial" if report.issue_count or c.rejected_count else "ok"
    )
    run.items_new, run.items_updated, run.items_unchanged = c.new, c.updated, c.unchanged
    run.items_dropped = c.rejected_count + report.issue_count
    # A position and a reason, never the line's content (a phone number, a sender's QQ number):
    # the parsers say why without quoting, and masking here is the belt to those braces.
    errors = [{"line": i.line, "reason": mask_personal_data(i.reason)} for i in report.issues[:100]]
    errors += [{"line": line, "reason": mask_personal_data(reason)} for line, reason in c.rejected[:100]]
    if not report.completed:
        errors.append({"line": None, "reason": "导入中断；重新运行同一命令即可，已入库的消息不会重复"})
    run.errors = errors
    run.stats = dict(run.stats or {}) | {
        "messages": c.messages,
        "skipped": dict(c.skipped),
        "bytes": report.bytes_read,
        "seconds": round(report.seconds, 3),
        "groups": len(c.groups),
    }
