"""Privacy by default: stable pseudonyms for chat senders, masking of personal numbers.

Both run inside core.ingest, so no write path can skip them.

Masking reads the text as later stages will (full-width ``１３９``, circled ``①``, Chinese
numerals ``一三九`` all count as digits, as NFKC normalisation and readers make them) and across
the separators people put inside numbers (``139.8765.4323``, ``139 8765 4323``,
``4401 0619 9001 0112 34``, ``+86-139-…``), so a number that survives masking cannot turn into
plain digits in ``posts.norm_text`` or a story title later. The masked text keeps the writer's
own characters and separators: only the hidden digits become ``*``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from functools import lru_cache

# Characters people put between the digits of one number. Zero-width characters too: pasted
# text carries them, and they hide a number from a plain regex.
_SEPARATORS = " \t.-_·/,、|—–~()+'。\u200b\u200c\u200d\u2060\ufeff"
_SEP = "[" + re.escape(_SEPARATORS) + "]"
# A run of digits with at most eight separator characters between neighbours (" - " with
# zero-width characters around it), with an optional final X (the check character of an ID),
# separated like the digits are ("391276 2016 0628 275 X", or a zero-width space before it).
_RUN = re.compile(rf"[0-9](?:{_SEP}{{0,8}}[0-9])*(?:{_SEP}{{0,8}}[Xx](?![0-9A-Za-z]))?")
# Mainland mobile numbers and 18-character resident ID numbers (with a plausible birth date).
# Landlines and short hotlines (12345, 0571-...) are public and kept.
_MOBILE = re.compile(r"(?:0086|86)?1[3-9]\d{9}", re.ASCII)
_ID_CARD = re.compile(r"\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]", re.ASCII)
# A bare 5-11 digit run is too ambiguous to be called a QQ number (prices, order numbers), so
# only a number right after "QQ" / "扣扣" / "企鹅" (as people write it: "加我QQ：2718281828") is.
_QQ_MARK = re.compile(r"(?:[Qq]\s{0,4}[Qq]|扣\s{0,4}扣|企\s{0,4}鹅)\s*(?:号\s*码|号)?\s*(?:是|为)?[\s:=]*")
_ANY_DIGIT = re.compile(r"[0-9]")
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"  # read as spaces: they hide a number from a plain regex
# Spoken-style numerals: phone numbers are dictated and written as 一三九… or 幺三九….
_CHINESE_DIGITS = {"〇": "0", "零": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4",
                   "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}


def _fold_char(char: str) -> str:
    """One character as masking reads it; always exactly one character, so positions line up."""
    value = unicodedata.decimal(char, None)
    if value is not None:
        return str(value)
    if char in _INVISIBLE:
        return " "
    if char in _CHINESE_DIGITS:
        return _CHINESE_DIGITS[char]
    folded = unicodedata.normalize("NFKC", char)
    if len(folded) == 1:
        return folded
    if any(c.isdigit() for c in folded):  # ⑩, ⒈ and the like: not part of a phone number
        return "#"
    return char


@lru_cache(maxsize=1)
def _fold_table() -> dict[int, str]:
    """str.translate table of every character that folds to something else (built once, ~50 ms):
    per-character Python would cost seconds per 100k posts on the ingest path."""
    table: dict[int, str] = {}
    ranges = [range(0x80, 0xD800), range(0xE000, 0x10000), range(0x1D7CE, 0x1D800), range(0x1FBF0, 0x1FBFA)]
    for block in ranges:
        for code in block:
            char = chr(code)
            folded = _fold_char(char)
            if folded != char:
                table[code] = folded
    return table


def _fold(text: str) -> str:
    return text.translate(_fold_table())


def _digit_groups(folded: str, start: int, end: int) -> list[list[int]]:
    """Positions of the digits of a run, grouped by contiguity ("139 8765" -> two groups)."""
    groups: list[list[int]] = []
    previous = -2
    for pos in range(start, end):
        if "0" <= folded[pos] <= "9" or folded[pos] in "Xx":
            if pos != previous + 1 or not groups:
                groups.append([])
            groups[-1].append(pos)
            previous = pos
    return groups


def _best_match(digits: str) -> str | None:
    if len(digits) == 18 and _ID_CARD.fullmatch(digits):
        return "id"
    if len(digits) in (11, 13, 15) and _MOBILE.fullmatch(digits):
        return "mobile"
    return None


def _numbers_in_run(folded: str, start: int, end: int) -> list[tuple[str, list[int]]]:
    """Phone and ID numbers made of whole digit groups of one run: a number may start or end only
    where the writer's digits do (so "订单 2024 13987654323" still finds the phone)."""
    groups = _digit_groups(folded, start, end)
    found: list[tuple[str, list[int]]] = []
    i = 0
    while i < len(groups):
        best: tuple[str, list[int], int] | None = None
        positions: list[int] = []
        for j in range(i, len(groups)):
            positions = positions + groups[j]
            if len(positions) > 18:
                break
            kind = _best_match("".join(folded[p] for p in positions))
            if kind is not None and (best is None or len(positions) > len(best[1])):
                best = (kind, positions, j)
        if best is None:
            i += 1
            continue
        found.append((best[0], best[1]))
        i = best[2] + 1
    return found


def _hide(chars: list[str], positions: list[int], *, min_stars: int = 1) -> None:
    for pos in positions:
        chars[pos] = "*"
    if positions and len(positions) < min_stars:
        chars[positions[-1]] = "*" * (min_stars - len(positions) + 1)


def mask_personal_data(text: str) -> str:
    """Mask mobile, ID-card and marked QQ numbers in any script and with any separators:
    ``13812345678`` -> ``138****5678``, ``１３９.８７６５.４３２３`` -> ``１３９.****.４３２３``,
    ``QQ：2718281828`` -> ``QQ：27******28``."""
    if not text:
        return text
    folded = _fold(text)
    if _ANY_DIGIT.search(folded) is None:
        return text
    chars = list(text)
    for run in _RUN.finditer(folded):
        for kind, positions in _numbers_in_run(folded, run.start(), run.end()):
            if kind == "id":
                _hide(chars, positions[6:14])
            else:
                # the last 11 digits are the number itself (a 86 / 0086 prefix stays visible)
                _hide(chars, positions[-11:][3:7])
    for mark in _QQ_MARK.finditer(folded):
        after = _RUN.match(folded, mark.end())
        if after is None:
            continue
        groups = _digit_groups(folded, after.start(), after.end())
        positions = [p for g in groups for p in g]
        if not 5 <= len(positions) <= 11:
            positions = groups[0]
        if 5 <= len(positions) <= 11 and folded[positions[0]] != "0":
            _hide(chars, positions[2:-2], min_stars=3)
    return "".join(chars)


def digits_of(text: str) -> str:
    """Every digit of ``text`` as masking reads it, in order (for "is this number still in there"
    checks: separators and full-width forms do not hide it)."""
    return "".join(c for c in _fold(text) if "0" <= c <= "9")


def pseudonym(identity: str, secret: bytes, *, prefix: str = "用户") -> str:
    """A stable, non-reversible name for a sender: the same person always maps to the same value."""
    # hmac.digest is the one-shot C path: several times faster than hmac.new() per message.
    digest = hmac.digest(secret, identity.strip().encode("utf-8"), hashlib.sha256).hex()
    return f"{prefix}{digest[:10]}"
