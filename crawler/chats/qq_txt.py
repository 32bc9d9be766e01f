"""QQ's text export (消息管理器 → 导出消息记录 → .txt).

Layout (one file may hold several conversations)::

    消息记录（此消息记录为文本格式，不支持重新导入）

    ================================================================
    消息分组:我的QQ群
    ================================================================
    消息对象:东湾村村民群
    ================================================================

    2026-11-20 08:01:02 村委会王主任(10001)
    各位村民：明天上午九点在村委会发放口罩。

    2026-11-20 08:02:13 李大姐<lidajie@example.com>
    [图片]

A message starts with ``YYYY-MM-DD H:MM:SS 昵称(QQ号)`` or ``昵称<邮箱>`` and runs until the next
such line; its content can span several lines. ``[图片]`` / ``[表情]`` placeholders stay in the
text. A picture named in the text, as QQ names its picture files (``{GUID}.jpg``, how the chat
record and its MHT export refer to them) or as exporters write it (``[图片:abc.jpg]``,
``[图片: Image/abc.png]``), becomes ``[图片]`` in the text and a picture reference of the message
(looked up next to the export by crawler.chats.importer). The system sender (``系统消息(10000)``)
and recall/join lines are skipped; conversations under a ``消息分组`` of friends (私聊) are skipped too: only group messages are imported.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

from crawler.chats.model import ChatMessage, ParseEvent, ParseIssue, Skipped, looks_like_system_text
from crawler.chats.reader import LineReader

HEADER = re.compile(
    r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2}) (\d{1,2}):(\d{2}):(\d{2}) (.*?)"
    r"(?:\((\d{4,12})\)|<([^<>\s]{1,200})>)\s*$"
)
# Starts like a header but does not end like one: a cut or garbled header line.
_HEADER_START = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2} \d{1,2}:\d{2}:\d{2} \S.*[(<][^)>]*$")
_SEPARATOR = re.compile(r"^={10,}\s*$")
_META = re.compile(r"^(消息分组|消息对象)\s*[:：]\s*(.*?)\s*$")
_PICTURE_NAMED = re.compile(r"\[图片\s*[:：]\s*([^\]\r\n]{1,300}?\.(?:jpe?g|png|gif|bmp|webp))\s*\]", re.I)
_PICTURE_GUID = re.compile(
    r"\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}\.(?:jpe?g|png|gif|bmp)", re.I)
SYSTEM_IDS = {"10000", "1000000"}
SYSTEM_NAMES = {"系统消息", "系统提示"}


def is_qq_txt(head: list[str]) -> bool:
    text = "".join(head)
    if "消息对象" in text or "消息分组" in text or "消息记录（此消息记录为文本格式" in text:
        return True
    return any(HEADER.match(line.rstrip("\r\n")) for line in head)


#: Longer messages are cut (and reported): memory stays bounded even for a file that is one huge message.
MAX_MESSAGE_CHARS = 200_000


class _Pending:
    __slots__ = ("chars", "line", "lines", "name", "sender_id", "time", "truncated")

    def __init__(self, line: int, time: dt.datetime, name: str, sender_id: str) -> None:
        self.line, self.time, self.name, self.sender_id = line, time, name, sender_id
        self.lines: list[str] = []
        self.chars = 0
        self.truncated = False

    def add(self, text: str) -> bool:
        """Append a content line; False (once) when the message has just become too long."""
        if self.truncated:
            return True
        if self.chars + len(text) + 1 > MAX_MESSAGE_CHARS:
            # Keep what fits: a first line past the limit must be truncated, not lost whole.
            room = MAX_MESSAGE_CHARS - self.chars - 1
            if room > 0:
                self.lines.append(text[:room])
                self.chars += room + 1
            self.truncated = True
            return False
        self.lines.append(text)
        self.chars += len(text) + 1
        return True


def picture_refs(text: str) -> tuple[str, list[str]]:
    """(text with each named picture as ``[图片]``, the pictures' file names in order)."""
    refs: list[str] = []

    def named(m: re.Match[str]) -> str:
        refs.append(m.group(1).strip())
        return "[图片]"

    def guid(m: re.Match[str]) -> str:
        refs.append(m.group(0))
        return "[图片]"

    if "." not in text:  # no file name: the common case costs one scan
        return text, refs
    text = _PICTURE_NAMED.sub(named, text)
    text = _PICTURE_GUID.sub(guid, text)
    return text, refs


def parse_qq_txt(reader: LineReader) -> Iterator[ParseEvent]:
    group: str | None = None
    private = False
    current: _Pending | None = None
    broken = False  # inside a record whose header could not be read: its content goes with it
    orphan_reported = False

    def finish(msg: _Pending) -> ParseEvent:
        while msg.lines and not msg.lines[-1].strip():
            msg.lines.pop()
        text, pictures = picture_refs("\n".join(msg.lines).strip())
        if private:
            return Skipped("private", msg.line, "私聊记录不导入")
        if msg.sender_id in SYSTEM_IDS or msg.name in SYSTEM_NAMES or looks_like_system_text(text):
            return Skipped("system", msg.line, text[:60])
        if not text:
            return Skipped("empty", msg.line)
        return ChatMessage(
            platform="qq",
            time=msg.time,
            text=text,
            sender_name=msg.name or None,
            sender_id=msg.sender_id,
            group_name=group,
            line=msg.line,
            images=pictures,
        )

    for line in reader:
        text = line.text.rstrip("\r\n")
        if line.bad_encoding:
            yield ParseIssue(line.number, "编码无法识别，无法解码的字节已替换为 �")
        first = text[:1]
        header = HEADER.match(text) if first.isdigit() else None
        if header:
            if current is not None:
                yield finish(current)
                current = None
            broken = False
            orphan_reported = False
            y, mo, d, h, mi, s = (int(header.group(i)) for i in range(1, 7))
            try:
                when = dt.datetime(y, mo, d, h, mi, s)
            except ValueError:
                broken = True
                yield ParseIssue(line.number, "消息时间无效，整条消息跳过")
                continue
            sender_id = header.group(8) or header.group(9) or ""
            current = _Pending(line.number, when, header.group(7).strip(), sender_id)
            continue
        meta = _META.match(text) if first == "消" else None
        if meta or (first == "=" and _SEPARATOR.match(text)):
            if current is not None:
                yield finish(current)
                current = None
            broken = False
            if meta and meta.group(1) == "消息分组":
                value = meta.group(2)
                private = "好友" in value and "群" not in value
            elif meta:
                group = meta.group(2) or None
            continue
        if first.isdigit() and _HEADER_START.match(text):
            if current is not None:
                yield finish(current)
                current = None
            broken = True
            yield ParseIssue(line.number, "消息头不完整，整条消息跳过")
            continue
        if current is not None:
            if not current.add(text):
                yield ParseIssue(line.number, f"消息超过 {MAX_MESSAGE_CHARS} 字，其后内容已截断")
        elif text.strip() and not (broken or orphan_reported or text.startswith("消息记录")):
            orphan_reported = True
            yield ParseIssue(line.number, "不属于任何消息的内容，已跳过")
    if current is not None:
        yield finish(current)
