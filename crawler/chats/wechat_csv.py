"""WeChat exports as CSV, mapped by header names.

Accepted layouts (the header row decides; names are matched case-insensitively):

* **MemoTrace / WeChatMsg (留痕)**: ``localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,
  StrContent,StrTime,Remark,NickName,Sender`` (one file per chat, named ``<群名>_utf8.csv``;
  the group is known by that name, and messages get content-derived ids, because ``localId`` and
  ``TalkerId`` are row numbers of one phone's database).
  ``Type`` is WeChat's numeric type (1 text, 3 image, 34 voice, 43 video, 47 sticker, 49 app
  message with sub-types 57 quote-reply and 19 merged forward, 10000/10002 system and recall).
  A quote-reply's XML names the quoted message by its server id (``<refermsg><svrid>``), which
  MemoTrace's rows do not carry; it also gives the quoted message's time, sender and content
  (``<createtime>``, ``<chatusr>``, ``<content>``), from which the importer derives that message's
  id as it did when importing it (crawler.chats.model.Quoted), so the reply is linked all the same.
* **PyWxDump (and the WeClone/WeFlow exports that reuse it)**: ``id,MsgSvrID,type_name,
  is_sender,talker,room_name,msg|content,src,CreateTime``; ``room_name`` is the group id
  (``…@chatroom``), ``talker`` the sender's wxid, ``MsgSvrID`` the server's message id (``id``
  is an export row number, not used), ``type_name`` a Chinese type (文本, 图片, 引用回复,
  合并转发的聊天记录, 系统通知, …).
* **Simple tables** (e.g. typed by hand or saved from a spreadsheet): ``time,sender,content`` or
  ``时间,发送者,内容``, with optional ``id``/``消息ID``, ``sender_id``/``发送者ID``, ``group``/``群名``,
  ``group_id``/``群ID``, ``type``/``类型``, ``reply_to``/``回复``, ``is_forward``/``转发``.

A file needs a time column, a content column and a sender column (name or id); any other
layout gets a Chinese error naming the columns it needs.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import re
from collections.abc import Iterator

from crawler.chats.model import (
    ChatFormatError,
    ChatMessage,
    ParseEvent,
    ParseIssue,
    Quoted,
    Skipped,
    looks_like_system_text,
)
from crawler.chats.reader import LineReader

# Each role, with the header names that fill it, in order of preference.
COLUMNS: dict[str, tuple[str, ...]] = {
    "time": (
        "createtime",
        "strtime",
        "time",
        "datetime",
        "date",
        "timestamp",
        "时间",
        "发送时间",
        "消息时间",
        "日期",
    ),
    "content": ("strcontent", "msg", "content", "text", "message", "内容", "消息内容", "消息"),
    "sender_id": (
        "sender",
        "talker",
        "sender_id",
        "senderid",
        "wxid",
        "user_id",
        "发送者id",
        "发送人id",
        "微信号",
    ),
    "sender_name": (
        "remark",
        "nickname",
        "sender_name",
        "name",
        "from",
        "发送者",
        "发送人",
        "昵称",
        "群昵称",
    ),
    "message_id": ("msgsvrid", "msg_id", "msgid", "message_id", "id", "消息id"),
    "type": ("type", "type_name", "msg_type", "类型", "消息类型"),
    "subtype": ("subtype",),
    "group_id": ("room_name", "group_id", "chatroom", "群id", "群号"),
    "group_name": ("group", "group_name", "群名", "群聊", "群名称"),
    "reply_to": ("reply_to", "quote_id", "回复", "引用"),
    "is_forward": ("is_forward", "forwarded", "转发"),
    "src": ("src", "图片路径", "文件路径"),
}
_XML_MD5 = re.compile(r"<img\b[^>]*?\smd5\s*=\s*[\"']([0-9a-fA-F]{32})[\"']")
_PICTURE_FILE = re.compile(r"\.(?:jpe?g|png|gif|webp|bmp|dat)$", re.I)
# "sender" is an id column in MemoTrace/PyWxDump but a name in simple tables: decided per layout.
_TYPE_PLACEHOLDERS = {
    "3": "[图片]",
    "34": "[语音]",
    "43": "[视频]",
    "47": "[表情]",
    "48": "[位置]",
    "42": "[名片]",
    "50": "[通话]",
}
_TYPE_NAME_PLACEHOLDERS = {
    "图片": "[图片]",
    "语音": "[语音]",
    "视频": "[视频]",
    "动画表情": "[表情]",
    "表情": "[表情]",
    "位置": "[位置]",
    "名片": "[名片]",
    "文件": "[文件]",
}
_XML_TITLE = re.compile(r"<title>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</title>", re.S)
_XML_SVRID = re.compile(r"<refermsg>.*?<svrid>(\d+)</svrid>", re.S)
_XML_REFER = re.compile(r"<refermsg>(.*?)</refermsg>", re.S)
_TRUE = {"1", "true", "yes", "是", "y"}


class _Layout:
    def __init__(self, header: list[str]) -> None:
        names = [h.strip().lstrip("\ufeff").lower() for h in header]
        self.width = len(names)
        self.col: dict[str, list[int]] = {}
        taken: set[int] = set()
        memotrace = "strcontent" in names or "talkerid" in names
        self.kind = "memotrace" if memotrace else "pywxdump" if "type_name" in names else "simple"
        roles = dict(COLUMNS)
        # Only ids that mean the same on every phone identify a message or group: WeChat's server
        # id (MsgSvrID) and chat-room id do; MemoTrace's localId/TalkerId and PyWxDump's id are row
        # numbers of one phone's database or one export, and two staff phones exporting the same
        # group would collide. Without a global id, the importer derives one from the content.
        if self.kind != "simple":
            roles["message_id"] = ("msgsvrid",)
        if self.kind == "simple":
            # a bare "sender" column in a simple table is the sender's display name
            roles["sender_id"] = tuple(n for n in roles["sender_id"] if n != "sender")
            roles["sender_name"] = ("sender", *roles["sender_name"])
        for role, aliases in roles.items():
            found = [names.index(a) for a in aliases if a in names and names.index(a) not in taken]
            if found:
                # several columns may fill a role (Remark, then NickName): the first non-empty wins
                self.col[role] = found
                taken.update(found)
        # MemoTrace has CreateTime (epoch seconds, exact) and StrTime (local text): the first wins
        missing = [role for role in ("time", "content") if role not in self.col]
        if "sender_id" not in self.col and "sender_name" not in self.col:
            missing.append("sender")
        if missing:
            raise ChatFormatError(
                "无法识别的微信 CSV 表头：" + ", ".join(h.strip() for h in header) + "。"
                "至少需要：时间列（CreateTime / StrTime / time / 时间）、"
                "内容列（StrContent / msg / content / 内容）"
                "和发送者列（Sender / NickName / talker / sender / 发送者）。"
                "支持 MemoTrace(留痕)、PyWxDump 的导出，或表头为 time,sender,content 的简单表格。"
            )

    def get(self, row: list[str], role: str) -> str:
        for index in self.col.get(role, ()):
            if index < len(row) and row[index].strip():
                return row[index].strip()
        return ""

    @property
    def needed_width(self) -> int:
        return 1 + max(self.col[role][0] for role in ("time", "content"))


def parse_time(value: str) -> dt.datetime | None:
    """Epoch seconds/milliseconds (exact, UTC) or a local ``YYYY-MM-DD HH:MM[:SS]`` (naive)."""
    value = value.strip()
    if value.isdigit() and len(value) in (10, 13):
        seconds = int(value) / (1000 if len(value) == 13 else 1)
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    for fmt in (
        "%Y-%m-%d %H:%M:%S",
        "%Y/%m/%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y年%m月%d日 %H:%M:%S",
    ):
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def check_wechat_header(head: list[str]) -> None:
    """Raise :class:`ChatFormatError` (naming the needed columns) unless the header row is usable."""
    if not head:
        raise ChatFormatError("CSV 文件是空的：第一行应是表头，如 time,sender,content。")
    try:
        header = next(csv.reader([head[0]]))
    except (csv.Error, StopIteration) as err:
        raise ChatFormatError(f"CSV 表头无法读取：{err}") from err
    _Layout(header)


def is_wechat_csv(head: list[str]) -> bool:
    if not head:
        return False
    try:
        header = next(csv.reader([head[0]]))
    except csv.Error:
        return False
    if len(header) < 3:
        return False
    try:
        _Layout(header)
    except ChatFormatError:
        # looks like a CSV (several comma-separated names) but with unknown columns: still CSV,
        # so the user gets the clear "needs these columns" error instead of "unknown format"
        return head[0].count(",") >= 2 and not head[0].lstrip().startswith(("{", "["))
    return True


def parse_wechat_csv(reader: LineReader, *, file_group: str | None = None) -> Iterator[ParseEvent]:
    bad_lines: list[int] = []

    def lines() -> Iterator[str]:
        for line in reader:
            if line.bad_encoding:
                bad_lines.append(line.number)
            yield line.text

    rows = csv.reader(lines())
    try:
        header = next(rows)
    except StopIteration:
        return
    except csv.Error as err:
        raise ChatFormatError(f"CSV 表头无法读取：{err}") from err
    layout = _Layout(header)
    start = rows.line_num + 1
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as err:
            yield ParseIssue(start, f"CSV 格式错误：{err}")
            start = rows.line_num + 1
            continue
        line_no, start = start, rows.line_num + 1
        while bad_lines:
            yield ParseIssue(bad_lines.pop(0), "编码无法识别，无法解码的字节已替换为 �")
        if not any(cell.strip() for cell in row):
            continue
        yield _row_event(layout, row, line_no, file_group)


def _row_event(layout: _Layout, row: list[str], line_no: int, file_group: str | None) -> ParseEvent:
    if len(row) < layout.needed_width:
        return ParseIssue(line_no, f"列数不足（{len(row)} 列，表头有 {layout.width} 列）")
    when = parse_time(layout.get(row, "time"))
    if when is None:
        return ParseIssue(line_no, f"时间无法识别（{len(layout.get(row, 'time'))} 个字符），整条消息跳过")
    mtype = layout.get(row, "type")
    subtype = layout.get(row, "subtype")
    text = layout.get(row, "content")
    picture = _picture_path(mtype, text, layout.get(row, "src"))
    reply_to = layout.get(row, "reply_to") or None
    quoted: Quoted | None = None
    is_forward = layout.get(row, "is_forward").lower() in _TRUE
    system = False
    if layout.kind == "memotrace" or mtype.isdigit():
        system = mtype in ("10000", "10002")
        if mtype in _TYPE_PLACEHOLDERS and (not text or text.startswith("<")):
            text = _TYPE_PLACEHOLDERS[mtype]
        elif mtype == "49":
            is_forward = is_forward or subtype == "19"
            if text.lstrip().startswith("<"):
                refer = _XML_SVRID.search(text)
                reply_to = reply_to or (refer.group(1) if refer else None)
                if layout.kind == "memotrace":  # rows without server ids: the quote by what it was
                    quoted, reply_to = _quoted(text), None
                title = _XML_TITLE.search(text)
                text = title.group(1).strip() if title else ""
            text = text or ("[合并转发的聊天记录]" if subtype == "19" else "[链接或文件]")
    elif mtype:
        system = "系统" in mtype or "撤回" in mtype
        is_forward = is_forward or "转发" in mtype
        for name, placeholder in _TYPE_NAME_PLACEHOLDERS.items():
            if name in mtype and (not text or text.startswith(("<", "FileStorage", "C:\\"))):
                text = placeholder
                break
    if system or looks_like_system_text(text):
        return Skipped("system", line_no, text[:60])
    if not text:
        return Skipped("empty", line_no)
    group_id = layout.get(row, "group_id") or None
    return ChatMessage(
        platform="wechat",
        time=when,
        text=text,
        sender_name=layout.get(row, "sender_name") or None,
        sender_id=layout.get(row, "sender_id") or None,
        group_id=group_id,
        group_name=layout.get(row, "group_name") or file_group,
        message_id=layout.get(row, "message_id") or None,
        reply_to=reply_to,
        quoted=quoted,
        is_forward=is_forward,
        line=line_no,
        extra={"msg_type": mtype} if mtype else {},
        images=[picture] if picture else [],
    )


def _xml_field(xml: str, name: str) -> str:
    found = re.search(rf"<{name}>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</{name}>", xml, re.S)
    return html.unescape(found.group(1)).strip() if found else ""


def _quoted(xml: str) -> Quoted | None:
    """The quoted message of a quote-reply, as this parser gave it when it read that message's row:
    its time (epoch seconds), its sender's wxid and its text (a placeholder such as [图片] for
    a picture, the title of a link or of an earlier quote)."""
    refer = _XML_REFER.search(xml)
    if refer is None:
        return None
    body = refer.group(1)
    when, sender = parse_time(_xml_field(body, "createtime")), _xml_field(body, "chatusr")
    mtype, content = _xml_field(body, "type"), _xml_field(body, "content")
    if mtype in _TYPE_PLACEHOLDERS:
        content = _TYPE_PLACEHOLDERS[mtype]
    elif mtype == "49":
        title = _XML_TITLE.search(content)
        content = title.group(1).strip() if title else ""
    elif mtype not in ("", "1"):
        return None
    if when is None or not sender or not content:
        return None
    return Quoted(when, sender, content)


def _picture_path(mtype: str, content: str, src: str) -> str | None:
    """The file of an image message as the export names it (resolved later against the export's
    folder): a path in ``src`` or the content, or for MemoTrace, whose CSV keeps WeChat's XML of
    the picture (``<msg><img md5="…" …/></msg>``), ``md5:<hash>``: its image folder names the
    picture files by that hash."""
    if mtype != "3" and "图片" not in mtype:
        return None
    for value in (src, content):
        if value and _PICTURE_FILE.search(value.strip()):
            return value.strip()
    md5 = _XML_MD5.search(content) if content.lstrip().startswith("<") else None
    return f"md5:{md5.group(1).lower()}" if md5 else None
