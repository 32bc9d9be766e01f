"""Telegram Desktop's JSON export (``result.json``), streamed with ijson.

Two shapes: one chat (``{"name", "type", "id", "messages": [...]}``) or the whole account
(``{"chats": {"list": [{..., "messages": [...]}]}, "left_chats": {...}, "contacts": ...}``).
Only group-like chats are imported (groups, supergroups, channels); personal chats, bot chats
and saved messages are skipped, and the contacts / personal-information sections are never read
into memory. Messages of type ``service`` (joins, pins, invites) are system lines.

``text`` is a string or a list of strings and entity objects (``{"type": "bold", "text": ...}``);
both are joined to plain text. ``reply_to_message_id`` links a reply; ``forwarded_from`` marks a
forward (the original author's name is not kept). ``date_unixtime`` gives the exact instant.
Problems are reported by message number within the file (JSON has no useful line numbers).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

from crawler.chats.model import ChatMessage, ParseEvent, ParseIssue, Skipped
from crawler.chats.reader import CountingFile

_MESSAGE_PREFIXES = ("messages.item", "chats.list.item.messages.item", "left_chats.list.item.messages.item")
_CHAT_PREFIXES = ("", "chats.list.item", "left_chats.list.item")
_META_PREFIXES = {
    (f"{p}.{field}" if p else field): field for p in _CHAT_PREFIXES for field in ("name", "type", "id")
}
PRIVATE_TYPES = {"personal_chat", "bot_chat", "saved_messages"}
_MEDIA = {
    "voice_message": "[语音]",
    "video_file": "[视频]",
    "video_message": "[视频]",
    "audio_file": "[音频]",
    "animation": "[动图]",
    "sticker": "[表情]",
}


def is_telegram_json(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return start.startswith(b"{") and (b'"messages"' in head or b'"chats"' in head or b'"about"' in head)


def flatten_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                parts.append(str(part.get("text", "")))
        return "".join(parts)
    return str(value)


class _Chat:
    __slots__ = ("id", "name", "type")

    def __init__(self) -> None:
        self.name: str | None = None
        self.type: str | None = None
        self.id: str | None = None


def parse_telegram_json(path: Path, *, counter: list[CountingFile] | None = None) -> Iterator[ParseEvent]:
    """Yield messages; ``counter`` receives the byte-counting file so callers can show progress."""
    with Path(path).open("rb") as raw:
        f = CountingFile(raw)
        if counter is not None:
            counter.append(f)
        chat = _Chat()
        number = 0
        builder: ijson.ObjectBuilder | None = None
        item_prefix = ""
        events = ijson.parse(f, use_float=True)
        try:
            for prefix, event, value in events:
                if builder is not None:
                    builder.event(event, value)
                    if event == "end_map" and prefix == item_prefix:
                        number += 1
                        yield _message(builder.value, chat, number)
                        builder = None
                    continue
                if event == "start_map" and prefix in _MESSAGE_PREFIXES:
                    builder = ijson.ObjectBuilder()
                    builder.event(event, value)
                    item_prefix = prefix
                elif event == "start_map" and prefix in _CHAT_PREFIXES[1:]:
                    chat = _Chat()
                elif prefix in _META_PREFIXES and event in ("string", "number", "null"):
                    setattr(chat, _META_PREFIXES[prefix], None if value is None else str(value))
        except ijson.common.IncompleteJSONError:
            yield ParseIssue(
                number + 1,
                f"JSON 文件不完整或格式错误（第 {number} 条消息之后），其余无法读取",
                unit="条",
            )
        except ijson.common.JSONError:
            yield ParseIssue(
                number + 1, f"JSON 格式错误（第 {number} 条消息之后）", unit="条"
            )


def _message(obj: Any, chat: _Chat, number: int) -> ParseEvent:
    if not isinstance(obj, dict):
        return ParseIssue(number, "消息不是 JSON 对象", unit="条")
    if chat.type in PRIVATE_TYPES:
        return Skipped("private", number, "私聊记录不导入")
    if obj.get("type") == "service":
        return Skipped("system", number, str(obj.get("action", "")))
    when: dt.datetime | None = None
    unix = obj.get("date_unixtime")
    try:
        if unix not in (None, ""):
            when = dt.datetime.fromtimestamp(int(unix), dt.UTC)
        elif obj.get("date"):
            when = dt.datetime.fromisoformat(str(obj["date"]))
    except (ValueError, TypeError, OverflowError):
        when = None
    if when is None:
        return ParseIssue(number, "消息时间无法识别，整条消息跳过", unit="条")
    text = flatten_text(obj.get("text")).strip()
    media = ""
    if obj.get("photo"):
        media = "[图片]"
    elif obj.get("media_type") in _MEDIA:
        media = _MEDIA[obj["media_type"]]
        if obj.get("media_type") == "sticker" and obj.get("sticker_emoji"):
            media += str(obj["sticker_emoji"])
    elif obj.get("file"):
        media = "[文件]"
    elif isinstance(obj.get("poll"), dict):
        media = "[投票] " + str(obj["poll"].get("question", ""))
    elif obj.get("location_information"):
        media = "[位置]"
    text = " ".join(p for p in (media, text) if p)
    if not text:
        return Skipped("empty", number)
    sender_id = obj.get("from_id") or obj.get("actor_id")
    reply = obj.get("reply_to_message_id")
    return ChatMessage(
        platform="telegram",
        time=when,
        text=text,
        sender_name=obj.get("from") or None,
        sender_id=str(sender_id) if sender_id else None,
        group_id=chat.id,
        group_name=chat.name,
        message_id=str(obj["id"]) if obj.get("id") is not None else None,
        reply_to=str(reply) if reply is not None else None,
        is_forward=bool(obj.get("forwarded_from") or obj.get("forwarded_from_id")),
        line=number,
        extra={"msg_type": "message"},
    )
