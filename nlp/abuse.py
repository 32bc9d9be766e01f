"""Insults and profanity in residents' tips (举报线索): found with a small lexicon of our own.

The tip line is public, and some messages only abuse the office or its staff. The lexicon
(``nlp/dicts/abuse_lexicon.txt``) lists insults aimed at people and the spellings that dodge
a plain match. A text is matched after :func:`squeeze`: ``nlp.normalize.normalize`` (full-width
to half-width, traditional to simplified), lower case, and everything but Chinese characters,
letters and digits removed, so "傻 逼", "傻.逼", "傻*逼" and "ＳＢ" are caught. A Latin entry
("sb", "nmsl") matches only as a whole run of letters ("usb" is not "sb").

:func:`find_insults` says which entries a text holds; :func:`has_substance` whether, without
them, the text still asks or claims something that staff must read (alerts.tips decides what
happens to the tip).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nlp.cues import role_cues
from nlp.normalize import PLACEHOLDER_RE, normalize
from nlp.roles import role_rules, words_of

__all__ = ["LEXICON_FILE", "Insults", "find_insults", "has_substance", "load_lexicon", "squeeze"]

LEXICON_FILE = Path(__file__).resolve().parent / "dicts" / "abuse_lexicon.txt"

_NOT_KEPT_RE = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff]+")


def squeeze(text: str) -> str:
    """The text as the lexicon is matched against it: normalised, lower case, placeholders
    (<EMO>, <URL>) and everything but Chinese characters, letters and digits removed."""
    return _NOT_KEPT_RE.sub("", PLACEHOLDER_RE.sub("", normalize(text)).lower())


@dataclass(frozen=True)
class Insults:
    """The lexicon compiled: one pattern over every spelling, and the entry (a line's first
    spelling) each spelling belongs to."""

    pattern: re.Pattern[str] | None
    entry_of: dict[str, str]


@lru_cache(maxsize=4)
def load_lexicon(path: str = str(LEXICON_FILE)) -> Insults:
    entry_of: dict[str, str] = {}
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spellings = [_NOT_KEPT_RE.sub("", s.lower()) for s in line.split()]
        for s in spellings:
            if s:
                entry_of.setdefault(s, spellings[0])
    if not entry_of:
        return Insults(None, entry_of)
    parts = []
    for s in sorted(entry_of, key=len, reverse=True):  # the longest spelling wins
        parts.append(rf"(?<![a-z]){re.escape(s)}(?![a-z])" if s.isascii() else re.escape(s))
    return Insults(re.compile("|".join(parts)), entry_of)


def find_insults(text: str) -> list[str]:
    """The spellings of the lexicon the text holds (as squeezed: "傻 逼" is "傻逼"), in order,
    each once: staff see what was found."""
    lexicon = load_lexicon()
    if lexicon.pattern is None or not text:
        return []
    found: list[str] = []
    for m in lexicon.pattern.finditer(squeeze(text)):
        if m.group(0) not in found:
            found.append(m.group(0))
    return found


#: Words left after the insults that still say nothing: who is addressed, particles, fillers.
_FILLER_RE = re.compile(r"你们?|他们?|她们?|这些|那些|一群|一帮|都是|全是|就是|真是|简直|什么|的|了|啊|呀|吧|呢|个|是|们|都|太|真")
#: So many characters left besides the insults and fillers, and the tip is read by staff
#: whatever its role: closing a tip unread is the costly mistake, so the bar is low.
MIN_SUBSTANCE_CHARS = 8
_SUBSTANTIVE_ROLES = frozenset({"claim", "question", "complaint", "notice", "refutation"})


def has_substance(text: str) -> bool:
    """Whether the tip, without its insults, still asks or claims something: a question, a
    claim, a complaint (the role rules of nlp.roles, or a public matter's words), or at least
    MIN_SUBSTANCE_CHARS characters of its own. "你们这些狗官" has none; "狗官！东湾村的路灯坏
    了一个月了没人修" has."""
    lexicon = load_lexicon()
    rest = PLACEHOLDER_RE.sub(" ", normalize(text)).lower()
    if lexicon.pattern is not None:
        rest = lexicon.pattern.sub(" ", rest)
    words = words_of(rest)
    # the insult may be spelt with spaces or symbols the pattern above did not see through
    plain = _FILLER_RE.sub("", lexicon.pattern.sub("", words) if lexicon.pattern is not None else words)
    if len(plain) >= MIN_SUBSTANCE_CHARS:
        return True
    if not plain:
        return False
    rule = role_rules(rest)
    if rule is not None and rule[0] in _SUBSTANTIVE_ROLES:
        return True
    return "matter" in role_cues(rest)
