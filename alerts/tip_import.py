"""Hotline exports (12345 style) as tips: a CSV with the call time, the caller reference and the
content, in any of the encodings Chinese office software writes (core.encoding sniffs UTF-8 with
or without BOM, GB18030/GBK, UTF-16).

Each row is one tip of channel ``hotline`` whose identity is (caller reference, time, content):
importing the same file again, or an overlapping later export, stores nothing twice. The caller
reference is kept only as a keyed hash and sealed (core.tips); hotline callers are answered by
the hotline itself, so these tips never get an automatic reply here, but they are matched to
the debunk library (a hint for staff) and join or start incidents like every tip.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from alerts.tips import debunk_matcher, receive_tip
from core.encoding import file_encoding
from core.settings import get_settings
from core.tips import TipError, TipIn

TIME_COLUMNS = ("time", "时间", "来电时间", "受理时间", "登记时间", "日期")
REF_COLUMNS = ("caller", "ref", "caller_ref", "来电人", "来电号码", "工单号", "工单编号", "编号", "市民编号")
TEXT_COLUMNS = ("content", "text", "内容", "来电内容", "诉求内容", "反映内容", "诉求")
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d",
                "%Y/%m/%d", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日")


class HotlineFileError(ValueError):
    """The file is not a hotline export we can read; the message says what is missing."""


@dataclass
class HotlineResult:
    rows: int = 0
    new: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    cleaned = [h.strip().lower() for h in header]
    return next((cleaned.index(n) for n in names if n in cleaned), None)


def parse_time(value: str, tz: ZoneInfo) -> dt.datetime:
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        for fmt in TIME_FORMATS:
            try:
                parsed = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise TipError(f"时间“{text[:40]}”无法识别：请用 2026-12-01 08:30 这样的格式") from None
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


def read_hotline(path: Path) -> Iterator[tuple[int, TipIn | str]]:
    """(line number, tip or the reason the row is unusable) for every data row."""
    tz = ZoneInfo(get_settings().timezone)
    with path.open(encoding=file_encoding(path), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise HotlineFileError(f"{path}：文件是空的")
        cols = [_column(header, names) for names in (TIME_COLUMNS, REF_COLUMNS, TEXT_COLUMNS)]
        if None in cols:
            raise HotlineFileError(
                f"{path}：表头需要时间、来电人（或工单号）、内容三列，例如 “时间,来电人,内容”；收到：{', '.join(header)}")
        t_col, r_col, c_col = (int(c) for c in cols if c is not None)
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(t_col, r_col, c_col):
                yield line, "列数不够"
                continue
            try:
                when = parse_time(row[t_col], tz)
            except TipError as err:
                yield line, str(err)
                continue
            ref, text = row[r_col].strip(), row[c_col].strip()
            if not text:
                yield line, "内容为空"
                continue
            digest = hashlib.sha256(f"{ref}|{when.isoformat()}|{text}".encode()).hexdigest()[:24]
            yield line, TipIn(channel="hotline", message_id=digest, text=text, address=ref or None,
                              wants_answer=False, received_at=when, reporter=ref or None)


def import_hotline(session: Session, path: Path, *, batch: int = 200,
                   progress: Callable[[int], None] | None = None) -> HotlineResult:
    """Import a hotline CSV; commits every ``batch`` rows (a re-run skips what is in)."""
    result = HotlineResult()
    matcher = debunk_matcher(session)
    for line, item in read_hotline(path):
        result.rows += 1
        if isinstance(item, str):
            result.rejected.append((line, item))
            continue
        try:
            outcome = receive_tip(session, item, matcher=matcher)
        except TipError as err:
            result.rejected.append((line, str(err)))
            continue
        if outcome.new:
            result.new += 1
        else:
            result.unchanged += 1
        if result.rows % batch == 0:
            session.commit()
            if progress:
                progress(result.rows)
    session.commit()
    if progress:
        progress(result.rows)
    return result
