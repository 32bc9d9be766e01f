"""QQ NT's chat export as JSON, written by QQ Chat Exporter (QCE, github.com/shuakami/qq-chat-exporter,
the exporter the new QQ client has: its own 消息管理器 export to .txt is gone), streamed with ijson.

Layout (QCE's ``JsonExporter`` and ``SimpleMessageParser``)::

    {"metadata": {"name": "QQChatExporter V5", "version": "..."},
     "chatInfo": {"name": "东湾村村民群", "type": "group", ...},
     "statistics": {...},
     "messages": [
       {"id": "7312...", "seq": "1024", "timestamp": 1795831200000, "time": "2026-11-28T00:00:00.000Z",
        "sender": {"uid": "u_...", "uin": "10001", "name": "村民甲"},
        "type": "text",
        "content": {"text": "看看这个通知[图片]", "elements": [...],
                    "resources": [{"type": "image", "filename": "ABC.jpg", "size": 52311,
                                   "url": "https://...", "localPath": "images/ABC.jpg"}]},
        "recalled": false, "system": false}]}

``timestamp`` is milliseconds since the epoch (exact); ``seq`` is the group's own message sequence
(the same in every member's export, unlike ``id``). A picture is a resource of type ``image``:
its ``localPath`` is relative to the export (QCE downloads pictures beside the JSON), or only its
``filename`` is known; either becomes a picture reference looked up next to the export by
crawler.chats.importer. System and recalled messages and private chats are skipped.

A reply (引用回复) carries an element ``{"type": "reply", "data": {"referencedMessageId": "7312…",
"senderName": …, "content": "<the quoted text>"}}`` naming the quoted message by its ``id`` (QCE
falls back to ``replyMsgId`` / ``msgId`` in older files). Messages are known by their ``seq``, so
the parser remembers the ``id -> seq`` of the last MAX_REMEMBERED messages (a reply quotes a
recent message; a bounded map keeps memory flat on any export) and gives the reply the quoted
message's ``seq`` as ``reply_to``. QCE also writes the quote into the text (``[回复 名字: 原文]``
or ``[回复消息]`` before the reply's own words): that marker is cut, so a reply is not a
near-copy of what it quotes.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

from crawler.chats.model import ChatMessage, ParseEvent, ParseIssue, Skipped, looks_like_system_text
from crawler.chats.reader import CountingFile

_PRIVATE = {"private", "temp", "friend"}
MAX_REMEMBERED = 50_000  # id -> seq of the latest messages, for replies (~10 MB)
_NO_ID = (None, "", "0")


def is_qq_json(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return start.startswith(b"{") and (b"QQChatExporter" in head or b'"chatInfo"' in head)


def parse_qq_json(path: Path, *, counter: list[CountingFile] | None = None) -> Iterator[ParseEvent]:
    """Yield messages; ``counter`` receives the byte-counting file so callers can show progress."""
    with Path(path).open("rb") as raw:
        f = CountingFile(raw)
        if counter is not None:
            counter.append(f)
        chat: dict[str, str | None] = {"name": None, "type": None}
        number = 0
        seqs: OrderedDict[str, str] = OrderedDict()
        builder: ijson.ObjectBuilder | None = None
        try:
            for prefix, event, value in ijson.parse(f, use_float=True):
                if builder is not None:
                    builder.event(event, value)
                    if event == "end_map" and prefix == "messages.item":
                        number += 1
                        yield _message(builder.value, chat, number, seqs)
                        builder = None
                    continue
                if event == "start_map" and prefix == "messages.item":
                    builder = ijson.ObjectBuilder()
                    builder.event(event, value)
                elif prefix in ("chatInfo.name", "chatInfo.type") and event == "string":
                    chat[prefix.split(".")[1]] = str(value)
        except ijson.common.IncompleteJSONError:
            yield ParseIssue(number + 1, f"JSON 文件不完整或格式错误（第 {number} 条消息之后），其余无法读取", unit="条")
        except ijson.common.JSONError:
            yield ParseIssue(number + 1, f"JSON 格式错误（第 {number} 条消息之后）", unit="条")


def _remember(obj: dict[str, Any], seqs: OrderedDict[str, str]) -> None:
    """Keep the message's id -> seq (the newest MAX_REMEMBERED), so later replies can name it."""
    msg_id, seq = obj.get("id"), obj.get("seq")
    if msg_id in _NO_ID or seq in _NO_ID:
        return
    seqs[str(msg_id)] = str(seq)
    seqs.move_to_end(str(msg_id))
    if len(seqs) > MAX_REMEMBERED:
        seqs.popitem(last=False)


def _reply(content: dict[str, Any], text: str, seqs: OrderedDict[str, str]) -> tuple[str | None, str]:
    """(seq of the quoted message if known, the text without QCE's quote marker)."""
    element = next((e for e in content.get("elements") or []
                    if isinstance(e, dict) and e.get("type") == "reply" and isinstance(e.get("data"), dict)), None)
    if element is None:
        return None, text
    data = element["data"]
    quoted = next((str(data[k]) for k in ("referencedMessageId", "replyMsgId", "msgId")
                   if data.get(k) not in _NO_ID), None)
    return (seqs.get(quoted) if quoted else None), _without_quote(text, str(data.get("content") or ""))


def _without_quote(text: str, quoted: str) -> str:
    """``[回复 名字: 原文]\n自己的话`` -> ``自己的话`` (the quoted text may hold brackets itself)."""
    if not text.startswith("[回复"):
        return text
    at = text.find(quoted, 3) if quoted else -1
    end = text.find("]", at + len(quoted) if at >= 0 else 0)
    return text[end + 1:].strip() if end >= 0 else text


def _message(obj: Any, chat: dict[str, str | None], number: int, seqs: OrderedDict[str, str]) -> ParseEvent:
    if not isinstance(obj, dict):
        return ParseIssue(number, "消息不是 JSON 对象", unit="条")
    _remember(obj, seqs)  # before any skip: a reply may quote any message
    if (chat["type"] or "").lower() in _PRIVATE:
        return Skipped("private", number, "私聊记录不导入")
    content: dict[str, Any] = obj["content"] if isinstance(obj.get("content"), dict) else {}
    text = str(content.get("text") or "").strip()
    if obj.get("system") or obj.get("recalled") is True or looks_like_system_text(text):
        return Skipped("system", number, text[:60])
    when = _time(obj)
    if when is None:
        return ParseIssue(number, "消息时间无法识别，整条消息跳过", unit="条")
    reply_to, text = _reply(content, text, seqs)
    pictures = [ref for ref in (_picture(r) for r in content.get("resources") or []) if ref]
    if pictures and "[图片" not in text:
        text = " ".join(p for p in ("[图片]" * len(pictures), text) if p)
    if not text:
        return Skipped("empty", number)
    sender: dict[str, Any] = obj["sender"] if isinstance(obj.get("sender"), dict) else {}
    sender_id = sender.get("uin") or sender.get("uid")
    seq = obj.get("seq")
    if reply_to is not None and reply_to == str(seq):
        reply_to = None  # a reply never quotes itself (a field naming the reply's own id)
    return ChatMessage(
        platform="qq",
        time=when,
        text=text,
        sender_name=sender.get("name") or None,
        sender_id=str(sender_id) if sender_id else None,
        group_name=chat["name"],
        message_id=str(seq) if seq not in _NO_ID else None,
        reply_to=reply_to,
        line=number,
        extra={"msg_type": str(obj.get("type") or "")},
        images=pictures,
    )


def _time(obj: dict[str, Any]) -> dt.datetime | None:
    try:
        stamp = obj.get("timestamp")
        if isinstance(stamp, (int, float)) and stamp > 0:
            return dt.datetime.fromtimestamp(stamp / (1000 if stamp > 1e11 else 1), dt.UTC)
        if obj.get("time"):
            return dt.datetime.fromisoformat(str(obj["time"]).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _picture(resource: Any) -> str | None:
    if not isinstance(resource, dict) or resource.get("type") != "image":
        return None
    return str(resource.get("localPath") or resource.get("filename") or "").strip() or None
