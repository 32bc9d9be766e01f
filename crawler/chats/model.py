"""What the chat parsers hand to the importer: messages, skipped records and parse issues.

Parsers are generators over a file; they keep no per-message state beyond the record they are
reading, so any export size streams in constant memory.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInput

#: The formats ``yuqing import-chats --format`` accepts ("auto" detects one of these).
FORMATS = ("qq-txt", "qq-json", "wechat-csv", "telegram-json")


class ChatFormatError(InvalidInput):
    """A whole file cannot be read as the given or detected format (the message says why, in Chinese)."""


@dataclass(slots=True, frozen=True)
class Quoted:
    """The message a reply quotes, known by what it was (an export that gives quoted messages no id
    both sides share: MemoTrace's rows have none). The importer derives the quoted message's id
    from it the way it derives every id: the reply is linked if that message was imported."""

    time: dt.datetime
    sender_id: str
    text: str


@dataclass(slots=True)
class ChatMessage:
    """One message as read from an export or a bot push, before pseudonymisation.

    ``sender_id`` is the raw platform id (QQ number, wxid, Telegram user id): it goes to
    core.ingest as ``author_id`` and is never stored in clear.
    """

    platform: str  # qq | wechat | telegram
    time: dt.datetime  # naive = local time of the export (read in YUQING_TIMEZONE); aware = exact
    text: str
    sender_name: str | None = None
    sender_id: str | None = None
    group_id: str | None = None  # the platform's group id when the export has one
    group_name: str | None = None
    message_id: str | None = None
    reply_to: str | None = None  # message id of the quoted / replied-to message
    quoted: Quoted | None = None  # the quoted message itself, when the export names it by no id
    is_forward: bool = False
    line: int = 0  # line number (text formats) or record number (JSON) where the message starts
    extra: dict[str, Any] = field(default_factory=dict)  # message type etc.; never personal data
    images: list[str] = field(default_factory=list)  # picture URLs or export files (core.images)


@dataclass(slots=True)
class Skipped:
    """A record read fine but deliberately not imported (system line, private chat, no content)."""

    kind: str  # system | private | empty
    line: int
    detail: str = ""


@dataclass(slots=True)
class ParseIssue:
    """A line or record that could not be read; the rest of the file still imports."""

    line: int
    reason: str
    unit: str = "行"  # 行 (line) for text formats, 条 (record) for JSON

    def describe(self) -> str:
        return f"第 {self.line} {self.unit}：{self.reason}"


ParseEvent = ChatMessage | Skipped | ParseIssue


# System lines of QQ and WeChat: recalls, joins, leaves, removals, renames. Matched on short,
# single-line messages only, so a villager *talking* about a recall is still a message.
_SYSTEM_TEXT = re.compile(
    r"(撤回了一条(成员的)?消息|加入了?(本群|群聊)|邀请.{0,60}加入了?群聊|通过扫描.{0,60}二维码加入群聊"
    r"|退出了?(本群|群聊)|移出了?(本群|群聊)|修改群名为|成为新群主|开启了群聊邀请确认|拍了拍)"
)


def looks_like_system_text(text: str) -> bool:
    return len(text) <= 120 and "\n" not in text and _SYSTEM_TEXT.search(text) is not None
