"""Messages pushed over HTTP: OneBot v11 events and a generic JSON batch (used by api/routes/ingest.py).

Both run in the caller's transaction (the API commits once per request) and go through the
same :class:`MessageSink` as file imports, so a duplicate push is stored once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session, sessionmaker

from core.db import is_outage, transaction
from core.spill import Spill
from crawler.chats.importer import MessageSink
from crawler.chats.model import ChatMessage
from crawler.chats.onebot import OneBotEvent

ONEBOT_SOURCE = "OneBot机器人推送"
API_SOURCE = "接口推送"
MAX_BATCH = 5000
log = logging.getLogger(__name__)

Id = Annotated[str, Field(min_length=1, max_length=200)]


class PushResult(BaseModel):
    """What a push stored."""

    new: int = Field(0, description="新入库的消息数")
    updated: int = Field(0, description="内容有变化而更新的消息数")
    unchanged: int = Field(0, description="已存在、未变化的消息数（重复推送）")
    rejected: list[dict[str, Any]] = Field(default_factory=list, description="未入库的消息：序号与原因")
    skipped: dict[str, int] = Field(
        default_factory=dict, description="按原因跳过的消息数，如 disabled=群已停用"
    )
    ignored: str | None = Field(None, description="整个事件被忽略的原因（如心跳、私聊）")
    spooled: int = Field(
        0, description="数据库暂不可用时已暂存在本机、恢复后自动入库的消息数（此时状态码为 202）"
    )


def _result(sink: MessageSink) -> PushResult:
    c = sink.counts
    return PushResult(
        new=c.new,
        updated=c.updated,
        unchanged=c.unchanged,
        rejected=[{"index": line, "reason": reason} for line, reason in c.rejected],
        skipped=dict(c.skipped),
    )


def not_a_group_message(event: OneBotEvent) -> PushResult | None:
    """The answer to an event that is not a group message (nothing to store), else None."""
    if event.is_group_message:
        return None
    what = f"{event.post_type}/{event.message_type}" if event.message_type else event.post_type
    return PushResult(ignored=f"不是群消息（{what}），已忽略")


def store_onebot_event(session: Session, event: OneBotEvent) -> PushResult:
    ignored = not_a_group_message(event)
    if ignored is not None:
        return ignored
    sink = MessageSink(session, source=ONEBOT_SOURCE, source_kind="bot")
    message = event.to_message()
    if not message.text:
        return PushResult(ignored="消息没有可保存的内容")
    sink.add(message)
    sink.finish()
    return _result(sink)


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    platform: str = Field(
        pattern=r"^(qq|wechat|telegram|web|other)$", description="qq | wechat | telegram | web | other"
    )
    external_id: Id = Field(description="平台上的群号 / 群 ID")
    name: str | None = Field(None, max_length=200)


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    id: Annotated[
        str | int | None, Field(description="平台消息 ID；没有时按 (群, 时间, 发送者, 内容) 生成")
    ] = None
    group: GroupIn | None = Field(None, description="所属群；整批同一个群时可只写在外层")
    time: dt.datetime = Field(description="发送时间，ISO 8601；不带时区时按 YUQING_TIMEZONE 理解")
    sender: str | None = Field(None, max_length=255, description="发送者昵称（默认以化名保存）")
    sender_id: Annotated[str | int | None, Field(description="发送者在平台上的 ID（只以化名保存）")] = None
    text: str = Field(min_length=1, max_length=200_000)
    reply_to: Annotated[str | int | None, Field(description="被回复/引用的消息 ID")] = None
    is_forward: bool = False
    images: list[Annotated[str, Field(max_length=2048, pattern=r"^https?://")]] = Field(
        default_factory=list, max_length=20,
        description="消息里的图片地址（http/https，只从 YUQING_IMAGE_HOSTS 抓取），识别出的文字与消息一起分析",
    )


class MessageBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    group: GroupIn | None = None
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _every_message_has_a_group(self) -> MessageBatch:
        if self.group is None:
            missing = [i for i, m in enumerate(self.messages) if m.group is None]
            if missing:
                raise ValueError(f"第 {missing[0]} 条消息没有 group，且外层也没有 group")
        return self


def store_message_batch(session: Session, batch: MessageBatch) -> PushResult:
    sink = MessageSink(session, source=API_SOURCE, source_kind="api")
    for index, m in enumerate(batch.messages):
        group = m.group or batch.group
        assert group is not None  # checked by the model
        sink.add(
            ChatMessage(
                platform=group.platform,
                time=m.time,
                text=m.text,
                sender_name=m.sender,
                sender_id=str(m.sender_id) if m.sender_id is not None else None,
                group_id=group.external_id,
                group_name=group.name,
                message_id=str(m.id) if m.id is not None else None,
                reply_to=str(m.reply_to) if m.reply_to is not None else None,
                is_forward=m.is_forward,
                line=index,
                images=list(m.images),
            )
        )
    sink.finish()
    return _result(sink)


# --------------------------------------------------------------------------- the outage spill

SPILL_ONEBOT = "onebot"
SPILL_BATCH = "messages"


def spill_store(kind: str, payload: dict[str, Any]) -> Callable[[Session], PushResult]:
    """The store function for a spilled request (the same one the route would have called)."""
    if kind == SPILL_ONEBOT:
        event = OneBotEvent.model_validate(payload)
        return lambda session: store_onebot_event(session, event)
    if kind == SPILL_BATCH:
        batch = MessageBatch.model_validate(payload)
        return lambda session: store_message_batch(session, batch)
    raise ValueError(f"unknown push spill kind {kind!r}")


def spooled_count(kind: str, payload: dict[str, Any]) -> int:
    return len(payload.get("messages", ())) if kind == SPILL_BATCH else 1


@dataclass
class ReplayResult:
    replayed: int = 0  # spill entries stored and removed
    failed: int = 0  # entries that failed for a reason other than an outage (kept, retried later)
    left: int = 0  # entries still in the spill
    outage: bool = False  # stopped because the database is still away


_replaying = threading.Lock()  # one replay per process: the API's task and the scheduler share it


def replay_spill(factory: sessionmaker[Session], spill: Spill | None = None, *, limit: int = 10_000) -> ReplayResult:
    """Store what the spill holds, oldest first, one committed transaction per entry; an entry is
    removed only after its commit (a crash in between replays it again, which stores nothing twice).
    Stops at the first sign the database is still away."""
    spill = spill or Spill.default()
    result = ReplayResult()
    if not _replaying.acquire(blocking=False):
        result.left = spill.count()
        return result
    try:
        done = 0
        while done < limit:
            entries = spill.pending(100)
            if not entries:
                break
            progressed = False
            for entry in entries:
                done += 1
                try:
                    store = spill_store(entry.kind, entry.payload)
                    with transaction(factory()) as session:
                        store(session)
                except Exception as err:
                    if is_outage(err):
                        result.outage = True
                        result.left = spill.count()
                        return result
                    # A bug or an entry no version can read: keep it (nothing is dropped), go on.
                    log.exception("push spill entry %d could not be stored; kept for a later replay", entry.id)
                    spill.note_attempt(entry.id)
                    result.failed += 1
                    continue
                spill.remove(entry.id)
                result.replayed += 1
                progressed = True
            if not progressed:
                break
        result.left = spill.count()
        if result.replayed:
            log.info("push spill replayed", extra={"entries": result.replayed, "left": result.left})
        return result
    finally:
        _replaying.release()
