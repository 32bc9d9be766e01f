"""Publication times as Chinese sites write them, read in the configured time zone.

Understood: 刚刚, N秒/分钟/小时/天/周前, 半小时前, 今天/昨天/前天 HH:MM, M月D日 [HH:MM],
YYYY年M月D日 [HH:MM[:SS]], YYYY-MM-DD [HH:MM[:SS]] (also / and .), ISO 8601 with an offset,
RFC 2822 (feeds) and Unix timestamps (seconds or milliseconds). Text around the date
("发表于 ...", "来源：... 2026-11-27") is ignored. Anything else gives None, never an exception.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from zoneinfo import ZoneInfo

_REL = re.compile(r"(\d+|半|一|两|几)\s*(秒|分钟|分|小时|个小时|天|日|周|星期|个月|月)\s*前")
_DAY_WORD = re.compile(r"(今天|昨天|前天)\s*(\d{1,2})[:：](\d{2})(?:[:：](\d{2}))?")
_DAY_ONLY = re.compile(r"(今天|昨天|前天)")
_FULL = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[T\s]*(\d{1,2})[:：时](\d{1,2})(?:[:：分](\d{1,2})(?:\.\d+)?)?\s*秒?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_MONTH_DAY = re.compile(r"(?<!\d)(\d{1,2})\s*月\s*(\d{1,2})\s*日(?:\s*(\d{1,2})[:：](\d{2}))?")
_MONTH_DAY_DASH = re.compile(r"(?<![\d\-/])(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{2})(?![\d:])")
_WORD_NUM = {"半": 0.5, "一": 1, "两": 2, "几": 3}
_UNIT_SECONDS = {"秒": 1, "分钟": 60, "分": 60, "小时": 3600, "个小时": 3600, "天": 86400, "日": 86400,
                 "周": 7 * 86400, "星期": 7 * 86400, "个月": 30 * 86400, "月": 30 * 86400}
_DAY_OFFSET = {"今天": 0, "昨天": 1, "前天": 2}


def _tzinfo(value: str | None) -> dt.tzinfo | None:
    if not value:
        return None
    if value == "Z":
        return dt.UTC
    sign = 1 if value[0] == "+" else -1
    digits = value[1:].replace(":", "")
    return dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _safe(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
          tzinfo: dt.tzinfo | None = None) -> dt.datetime | None:
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=tzinfo)
    except ValueError:
        return None


def parse_published(value: object, *, now: dt.datetime | None = None, tz: str | dt.tzinfo = "Asia/Shanghai",
                    ) -> dt.datetime | None:
    """An aware datetime for a publication time as written on a page or in an API, or None."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    current = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_timestamp(float(value))
    text = " ".join(str(value).split())
    if not text:
        return None
    if re.fullmatch(r"\d{10}(\d{3})?(\.\d+)?", text):
        return _from_timestamp(float(text))
    if "刚刚" in text or "刚才" in text:
        return current.replace(microsecond=0)
    match = _REL.search(text)
    if match:
        amount = _WORD_NUM.get(match.group(1)) or float(match.group(1))
        return (current - dt.timedelta(seconds=amount * _UNIT_SECONDS[match.group(2)])).replace(microsecond=0)
    match = _DAY_WORD.search(text)
    if match:
        day = current.date() - dt.timedelta(days=_DAY_OFFSET[match.group(1)])
        return _safe(day.year, day.month, day.day, int(match.group(2)), int(match.group(3)),
                     int(match.group(4) or 0), zone)
    match = _FULL.search(text)
    if match:
        y, mo, d, h, mi, s, off = match.groups()
        return _safe(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), _tzinfo(off) or zone)
    match = _MONTH_DAY.search(text) or _MONTH_DAY_DASH.search(text)
    if match:
        mo, d, h, mi = (int(g) if g else 0 for g in match.groups())
        found = _safe(current.year, mo, d, h, mi, 0, zone)
        if found is not None and found > current + dt.timedelta(days=1):
            found = _safe(current.year - 1, mo, d, h, mi, 0, zone)  # "12月30日" read on 1 January
        return found
    match = _DAY_ONLY.search(text)
    if match:
        day = current.date() - dt.timedelta(days=_DAY_OFFSET[match.group(1)])
        return _safe(day.year, day.month, day.day, 0, 0, 0, zone)
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _from_timestamp(value: float) -> dt.datetime | None:
    if value > 1e11:  # milliseconds
        value /= 1000
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
