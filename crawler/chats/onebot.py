"""OneBot v11 events (what go-cqhttp, NapCat, LLOneBot, Lagrange … POST to an HTTP endpoint).

Only ``post_type=message`` with ``message_type=group`` becomes a stored message; heartbeats,
notices, requests and private messages are acknowledged and ignored. The message is read from
``message`` (an array of segments, or a CQ-code string) or else ``raw_message``. Segments become
plain text with placeholders ([图片], [表情], …); ``reply`` links to the quoted message, ``forward``
/ ``node`` mark a forward. ``at`` segments never put the QQ number of the mentioned member into the
text. The HMAC-SHA1 ``X-Signature`` of the body is checked by the API route.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crawler.chats.model import ChatMessage

_CQ = re.compile(r"\[CQ:([A-Za-z0-9_.\-]+)((?:,[^,\]]*)*)\]")
_PLACEHOLDERS = {
    "face": "[表情]",
    "mface": "[表情]",
    "bface": "[表情]",
    "sface": "[表情]",
    "marketface": "[表情]",
    "image": "[图片]",
    "record": "[语音]",
    "video": "[视频]",
    "file": "[文件]",
    "poke": "[戳一戳]",
    "dice": "[骰子]",
    "rps": "[猜拳]",
    "contact": "[名片]",
    "music": "[音乐]",
    "xml": "[卡片]",
    "redbag": "[红包]",
    "shake": "[窗口抖动]",
    "anonymous": "",
    "gift": "[礼物]",
}


def _unescape(value: str) -> str:
    return value.replace("&#44;", ",").replace("&#91;", "[").replace("&#93;", "]").replace("&amp;", "&")


def parse_cq(message: str) -> list[dict[str, Any]]:
    """CQ-code string → OneBot message segments."""
    segments: list[dict[str, Any]] = []
    pos = 0
    for match in _CQ.finditer(message):
        if match.start() > pos:
            segments.append({"type": "text", "data": {"text": _unescape(message[pos : match.start()])}})
        data: dict[str, str] = {}
        for param in match.group(2).split(",")[1:]:
            key, _, value = param.partition("=")
            data[key] = _unescape(value)
        segments.append({"type": match.group(1), "data": data})
        pos = match.end()
    if pos < len(message):
        segments.append({"type": "text", "data": {"text": _unescape(message[pos:])}})
    return segments


def render_segments(segments: list[dict[str, Any]]) -> tuple[str, str | None, bool]:
    """(text, id of the replied-to message, is it a forward) for a list of segments."""
    parts: list[str] = []
    reply_to: str | None = None
    forward = False
    for seg in segments:
        kind = str(seg.get("type", ""))
        data = seg.get("data") or {}
        if not isinstance(data, dict):
            data = {}
        if kind == "text":
            parts.append(str(data.get("text", "")))
        elif kind == "reply":
            reply_to = str(data["id"]) if data.get("id") not in (None, "") else reply_to
        elif kind == "at":
            qq = str(data.get("qq", ""))
            name = str(data.get("name") or "").strip()
            parts.append("@全体成员 " if qq == "all" else f"@{name} " if name else "@某成员 ")
        elif kind in ("forward", "node"):
            forward = True
            parts.append("[合并转发]")
        elif kind in ("share", "location"):
            title = str(data.get("title") or "").strip()
            parts.append(("[链接]" if kind == "share" else "[位置]") + (f" {title}" if title else ""))
        elif kind == "json":
            parts.append(_card_prompt(data.get("data")))
        elif kind == "markdown":
            parts.append(str(data.get("content", "")))
        else:
            parts.append(_PLACEHOLDERS.get(kind, f"[{kind}]"))
    return "".join(parts).strip(), reply_to, forward


def image_refs(segments: list[dict[str, Any]]) -> list[str]:
    """The fetchable address of each ``image`` segment (``url``, else a ``file`` that is a URL).

    Frameworks put a temporary download address of the picture in ``url`` (go-cqhttp, NapCat,
    LLOneBot, Lagrange); ``file`` alone is usually a cache name only the framework can resolve.
    Stickers (``subType`` 1) are left out.
    Whether the host may be fetched from is decided later (YUQING_IMAGE_HOSTS)."""
    refs: list[str] = []
    for seg in segments:
        data = seg.get("data") or {}
        if seg.get("type") != "image" or not isinstance(data, dict):
            continue
        if str(data.get("subType", data.get("sub_type", "0"))) == "1":
            continue  # a sticker (表情包): no evidence, and sent under every matter it would glue them
        for key in ("url", "file"):
            value = str(data.get(key) or "").strip()
            if value.startswith(("http://", "https://")):
                refs.append(value)
                break
    return refs


def _card_prompt(raw: Any) -> str:
    try:
        card = json.loads(raw) if isinstance(raw, str) else raw
        prompt = str(card.get("prompt", "")).strip() if isinstance(card, dict) else ""
    except (ValueError, TypeError):
        prompt = ""
    return f"[卡片] {prompt}" if prompt else "[卡片]"


class OneBotSegment(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(max_length=50)
    data: dict[str, Any] | None = None


class OneBotSender(BaseModel):
    model_config = ConfigDict(extra="allow")
    user_id: int | str | None = None
    nickname: str | None = None
    card: str | None = None
    role: str | None = None


class OneBotEvent(BaseModel):
    """A OneBot v11 event as posted by the bot framework (unknown fields are ignored)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": []})
    time: int = Field(ge=0, le=4_102_444_800, description="Unix 时间戳（秒）")
    self_id: int | str | None = Field(None, description="机器人自己的 QQ 号（不保存）")
    post_type: str = Field(max_length=30, description="message | notice | request | meta_event")
    message_type: str | None = Field(None, max_length=30, description="group | private")
    sub_type: str | None = Field(None, max_length=30)
    message_id: int | str | None = None
    group_id: int | str | None = None
    group_name: str | None = Field(None, max_length=200, description="部分框架会附带群名")
    user_id: int | str | None = Field(None, description="发送者 QQ 号：只以化名形式保存")
    message: str | list[OneBotSegment] | None = None
    raw_message: str | None = None
    sender: OneBotSender | None = None
    anonymous: dict[str, Any] | None = None

    @property
    def is_group_message(self) -> bool:
        return self.post_type == "message" and self.message_type == "group"

    def missing_fields(self) -> list[str]:
        wanted = ("group_id", "user_id", "message_id")
        missing = [name for name in wanted if getattr(self, name) in (None, "")]
        if self.message is None and self.raw_message is None:
            missing.append("message")
        return missing

    def to_message(self) -> ChatMessage:
        if isinstance(self.message, list):
            segments = [s.model_dump() for s in self.message]
        else:
            segments = parse_cq(self.message if isinstance(self.message, str) else self.raw_message or "")
        text, reply_to, forward = render_segments(segments)
        name = None
        if self.sender is not None:
            name = (self.sender.card or "").strip() or (self.sender.nickname or "").strip() or None
        sender_id = str(self.user_id)
        if self.sub_type == "anonymous" and self.anonymous:
            name = str(self.anonymous.get("name") or "匿名") or name
            sender_id = f"anonymous:{self.anonymous.get('id', '')}"
        return ChatMessage(
            platform="qq",
            time=dt.datetime.fromtimestamp(self.time, dt.UTC),
            text=text,
            sender_name=name,
            sender_id=sender_id,
            group_id=str(self.group_id),
            group_name=(self.group_name or "").strip() or f"QQ群{self.group_id}",
            message_id=str(self.message_id),
            reply_to=reply_to,
            is_forward=forward,
            extra={"via": "onebot", "sub_type": self.sub_type} if self.sub_type else {"via": "onebot"},
            images=image_refs(segments),
        )


def signature(secret: bytes, body: bytes) -> str:
    """OneBot's ``X-Signature`` value: ``sha1=`` + HMAC-SHA1 of the raw body, hex."""
    return "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    given = header.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(signature(secret, body).encode("ascii"), given)
