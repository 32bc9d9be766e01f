"""Canonical wording for the claim matcher: one word for the words people use for one another.

A rumor is retold in other words: "再度" / "又一次", "破产" / "倒闭", "八岁" / "8岁", "一块钱" /
"1元", "小姑娘" / "女孩". Lexical features cannot see those as shared, so before a text is
measured (:mod:`nlp.claims`) its key is rewritten to canonical words:

* Chinese numerals before a unit become digits ("二十多人" -> "20多人", "三百块" -> "300元");
* "块(钱)" after a number is "元", a colour "红色" is "红";
* the groups of ``nlp/dicts/claim_synonyms.txt`` (our own list): every word of a group becomes
  its first word; words of two or more characters are replaced in the text (longest first, a
  canonical word stays itself), words of one character only as whole words (``canonical_words``).

Opposites are never in one group, so the opposites rule of :mod:`nlp.claims` still sees them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

__all__ = ["SYNONYMS_FILE", "canonical_key", "canonical_words", "load_synonyms"]

SYNONYMS_FILE = Path(__file__).resolve().parent / "dicts" / "claim_synonyms.txt"

_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_SMALL = {"十": 10, "百": 100, "千": 1000}
# A numeral counts something when a unit follows ("八岁", "二十多人", "三百块"); "一" before a
# measure word that also makes phrases ("一个", "一次", "一家") stays a word.
_UNITS = "岁元块人户天周月年亩方斤吨米层桌级头只条辆名位家次倍多余几"
_NUMERAL_RE = re.compile(r"([零〇一二两三四五六七八九十百千万]+)(?=[" + _UNITS + r"]|立方|公里|公斤|小时|分钟|个月|个星期|个人)")
_ONE_AS_WORD = frozenset("个次家位名只条头")
_YUAN_RE = re.compile(r"(?<=\d)块钱?")
_COLOUR_RE = re.compile(r"([红蓝白黑黄绿紫灰粉])色")


def _numeral_value(text: str) -> int | None:
    """Value of a Chinese numeral below a hundred million ("二十" 20, "三百五" 350, "两万" 20000)."""
    if "万" in text:
        head, _, tail = text.partition("万")
        hi = _numeral_value(head) if head else 1
        lo = _numeral_value(tail) if tail else 0
        return None if hi is None or lo is None else hi * 10000 + lo
    total = digit = 0
    last_unit = 10
    for ch in text:
        if ch in _DIGIT:
            digit = _DIGIT[ch]
        elif ch in _SMALL:
            last_unit = _SMALL[ch]
            total += (digit or 1) * last_unit
            digit = 0
        else:
            return None
    # "三百五" is 350: a trailing digit after a unit counts in the next unit down
    return total + (digit * last_unit // 10 if total and digit and last_unit > 10 else digit)


def _digits(m: re.Match[str]) -> str:
    text = m.group(1)
    nxt = m.string[m.end() : m.end() + 1]
    if text == "一" and nxt in _ONE_AS_WORD:
        return text
    value = _numeral_value(text)
    return text if value is None else str(value)


@lru_cache(maxsize=4)
def load_synonyms(path: str = str(SYNONYMS_FILE)) -> tuple[re.Pattern[str] | None, dict[str, str], dict[str, str]]:
    """(pattern over the words of two or more characters, their canonical words, canonical
    words of the one-character words)."""
    multi: dict[str, str] = {}
    single: dict[str, str] = {}
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        canon, *variants = line.split()
        for word in (canon, *variants):
            (single if len(word) == 1 else multi).setdefault(word, canon)
    if not multi:
        return None, multi, single
    pattern = re.compile("|".join(re.escape(w) for w in sorted(multi, key=len, reverse=True)))
    return pattern, multi, single


def canonical_key(key: str) -> str:
    """A match key rewritten to canonical words (numbers as digits, synonyms as one word)."""
    if not key:
        return key
    text = _NUMERAL_RE.sub(_digits, key)
    text = _YUAN_RE.sub("元", text)
    text = _COLOUR_RE.sub(r"\1", text)
    pattern, multi, _ = load_synonyms()
    if pattern is not None:
        text = pattern.sub(lambda m: multi[m.group(0)], text)
    return text


def canonical_words(words: Sequence[str]) -> list[str]:
    """Segmented words with the one-character synonyms replaced ("娃" -> "孩子")."""
    _, _, single = load_synonyms()
    return [single.get(w, w) for w in words]
