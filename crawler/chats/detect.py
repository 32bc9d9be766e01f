"""Which export format a file is, from its name and first bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from crawler.chats.model import FORMATS, ChatFormatError, ParseEvent
from crawler.chats.qq_json import is_qq_json, parse_qq_json
from crawler.chats.qq_txt import is_qq_txt, parse_qq_txt
from crawler.chats.reader import CountingFile, LineReader
from crawler.chats.telegram_json import is_telegram_json, parse_telegram_json
from crawler.chats.wechat_csv import check_wechat_header, is_wechat_csv, parse_wechat_csv


def detect_format(path: Path) -> str:
    """``qq-txt``, ``qq-json``, ``wechat-csv`` or ``telegram-json``; a clear Chinese error otherwise."""
    with path.open("rb") as f:
        head_bytes = f.read(64 * 1024)
    if not head_bytes.strip():
        raise ChatFormatError(f"文件 {path} 是空的，没有可导入的消息。")
    if is_qq_json(head_bytes):
        return "qq-json"
    if is_telegram_json(head_bytes) or (
        path.suffix.lower() == ".json" and head_bytes.lstrip().startswith(b"{")
    ):
        return "telegram-json"
    head = LineReader(path).head(60)
    if is_qq_txt(head) and path.suffix.lower() != ".csv":
        return "qq-txt"
    if is_wechat_csv(head):
        return "wechat-csv"
    raise ChatFormatError(
        f"无法识别 {path.name} 的格式：不是 QQ 文本导出"
        "（.txt，含“消息对象:”或“2026-11-20 08:00:00 昵称(QQ号)”行）、QQ Chat Exporter 的 JSON、"
        "微信 CSV 导出（带表头的 .csv）或 Telegram 的 result.json。"
        "请确认文件，或用 --format qq-txt / qq-json / wechat-csv / telegram-json 指定格式。"
    )


def open_events(
    path: Path, fmt: str, *, file_group: str | None = None
) -> tuple[Iterator[ParseEvent], Callable[[], int]]:
    """The parser's event stream for a file, and a function telling how many bytes it has read."""
    if fmt not in FORMATS:
        raise ChatFormatError(f"未知格式 '{fmt}'：可选 auto、{'、'.join(FORMATS)}。")
    if fmt in ("telegram-json", "qq-json"):
        holder: list[CountingFile] = []
        parse = parse_qq_json if fmt == "qq-json" else parse_telegram_json
        events = parse(path, counter=holder)
        return events, lambda: holder[0].bytes_read if holder else 0
    reader = LineReader(path)
    if fmt == "qq-txt":
        return parse_qq_txt(reader), lambda: reader.bytes_read
    check_wechat_header(reader.head(1))  # an unknown layout fails here, before anything is written
    return parse_wechat_csv(reader, file_group=file_group), lambda: reader.bytes_read
