"""Anchors: the specific things a claim names (places, amounts, numbers, named things).

Two texts can share nearly every character and still state two different claims: "东湾村停水了"
and "柳树村停水了", "补贴800元" and "补贴500元". Anchors are what tells them apart, and a shared
rare anchor ("石桥村", "化工厂", "84岁") is also what binds a short rewording to its claim.

* :func:`extract_anchors` reads a normalised text (``nlp.normalize.normalize`` output) with a
  handful of precompiled regexes (about 20 µs a text): gazetteer places (the office's
  ``places.yaml``, longest name wins) plus place marks (``nlp.similarity.place_marks``: "XX村",
  "XX镇" ...), named things ending in an institution head ("中心小学", "化工厂", "阳光小区"),
  numbers in Arabic or Chinese numerals ("八百" = 800, "两周" = 2周) with their unit.
* :func:`anchors_conflict` says whether two texts name different specific things of the same
  kind (another village, another amount); a place covers the places inside it (``parents``).
* :func:`anchor_overlap` says how much of the smaller side's anchors the other shares (0..1).

The default extractor reads the office's gazetteer lazily (and again when the file changes);
:class:`AnchorExtractor` takes any gazetteer, or none.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from core.settings import get_settings
from nlp.similarity import match_key, place_marks

if TYPE_CHECKING:
    from nlp.concerns.places import Gazetteer

__all__ = [
    "AnchorExtractor",
    "Anchors",
    "anchor_overlap",
    "anchors_conflict",
    "default_extractor",
    "extract_anchors",
    "named_place_marks",
    "place_parents",
]

_EMPTY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Anchors:
    """The specific things one text names. Every member is a plain string (JSON-friendly)."""

    places: frozenset[str] = _EMPTY  # gazetteer names (canonical) + place marks ("东湾村", "青禾镇")
    numbers: frozenset[str] = _EMPTY  # every meaningful number, normalised ("800", "2", "84", "14")
    amounts: frozenset[str] = _EMPTY  # money and quantities with their unit ("800元", "2周", "84岁")
    names: frozenset[str] = _EMPTY  # named things ending in an institution head ("化工厂", "中心小学")

    def __bool__(self) -> bool:
        return bool(self.places or self.numbers or self.amounts or self.names)

    def to_dict(self) -> dict[str, list[str]]:
        """For ``Incident.anchors`` (JSON): sorted lists, empty kinds left out."""
        return {k: sorted(v) for k in ("places", "numbers", "amounts", "names") if (v := getattr(self, k))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Anchors:
        data = data or {}
        return cls(*(frozenset(str(x) for x in data.get(k) or ()) for k in ("places", "numbers", "amounts", "names")))

    def union(self, other: Anchors) -> Anchors:
        """Anchors of a group of texts (an incident's claims)."""
        return Anchors(
            self.places | other.places,
            self.numbers | other.numbers,
            self.amounts | other.amounts,
            self.names | other.names,
        )


# ----------------------------------------------------------------------------- numbers

_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_SMALL_UNIT = {"十": 10, "百": 100, "千": 1000}
_BIG_UNIT = {"万": 10_000, "亿": 100_000_000}
_CN_NUM = "零〇一二两三四五六七八九十百千万亿"

# Units that make a number an amount (money, time spans, quantities, ages, counts of people).
# Longest first so "公斤" wins over "斤", "万元" is read as 万 + 元.
_AMOUNT_UNITS = (
    "元", "块钱", "块", "毛", "角", "分钱", "美元",
    "岁", "周岁",
    "天", "周", "星期", "个月", "年", "小时", "分钟", "秒",
    "人", "名", "例", "户", "家", "所", "辆", "头", "只",
    "斤", "公斤", "千克", "克", "吨", "升", "毫升", "米", "公里", "千米", "亩", "平方米", "平米",
    "度", "倍", "层", "栋", "套", "间", "%", "‰", "成", "级", "立方", "方",
)
# Units that make a number a date or time of day: kept as numbers ("12月", "5日"), never a
# conflict: a rumor is retold with "昨天" for "12月5日" and with a neighbouring date.
_DATE_UNITS = ("月", "日", "号", "点", "时", "分")
# Quantities spoken with a unit are the same amount: "块" is "元", "周" is "星期".
_UNIT_ALIAS = {"块钱": "元", "块": "元", "星期": "周", "周岁": "岁", "千克": "公斤", "平米": "平方米", "千米": "公里"}
# "一" before these is a word, not a number ("一下", "一直", "一样").
_NOT_ONE = frozenset("个下直定起样般切些点次旦再共同边向律致齐并然时概半")

_UNITS_RE = "|".join(sorted({*_AMOUNT_UNITS, *_DATE_UNITS}, key=len, reverse=True))
# An Arabic number (with an optional 万/亿 multiplier and unit), or a Chinese numeral that
# only counts with a unit ("三天", "八百元"): bare "一" / "万一" are words.
_NUMBER_RE = re.compile(
    # a space between a number and its unit only before money ("400 元"): chat writes clauses apart
    # with spaces, and "每人400 年底前交完" is 400 of something, not 400 years
    r"(\d+(?:[.,]\d+)*)([万亿千百]?)(?:\s+(?=元|块|美元|毛|角))?(" + _UNITS_RE + r")?"
    r"|([" + _CN_NUM + r"]{1,12})(" + _UNITS_RE + r")"
    # a spoken number without a unit, when it cannot be a word: "一千", "三百", "五万"
    r"|([一二两三四五六七八九][十百千万亿][" + _CN_NUM + r"]*)"
)
_MULT = {"万": 1e4, "亿": 1e8, "千": 1e3, "百": 1e2}
_HAS_NUMBER_RE = re.compile(r"[\d" + _CN_NUM + r"]")


def _cn_value(text: str) -> int | None:
    """The value of a Chinese numeral ("八百" 800, "一万五千" 15000, "十四" 14, "二零二六" 2026)."""
    if all(ch in _DIGIT for ch in text):  # digit by digit: 二零二六
        return int("".join(str(_DIGIT[ch]) for ch in text)) if len(text) > 1 else _DIGIT[text]
    total = section = digit = 0
    for ch in text:
        if ch in _DIGIT:
            digit = _DIGIT[ch]
        elif ch in _SMALL_UNIT:
            section += (digit or 1) * _SMALL_UNIT[ch]
            digit = 0
        elif ch in _BIG_UNIT:
            total = (total + section + digit) * _BIG_UNIT[ch]
            section = digit = 0
        else:
            return None
    return total + section + digit


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _numbers(text: str) -> tuple[set[str], set[str]]:
    """(numbers, amounts) of a normalised text."""
    numbers: set[str] = set()
    amounts: set[str] = set()
    if not _HAS_NUMBER_RE.search(text):
        return numbers, amounts
    for match in _NUMBER_RE.finditer(text):
        raw, mul, unit_a, cn, unit_c, spoken = match.groups(default="")
        if _vague_span(text, match.start(), cn, unit_c):
            continue
        if spoken:
            cn, unit_c = spoken, ""
        if raw:
            try:
                value = float(raw.replace(",", "")) if raw.count(".") <= 1 else float(raw.split(".")[0])
            except ValueError:
                continue
            if mul:
                value *= _MULT[mul]
            unit = unit_a
            if mul in ("万", "亿") and not unit:
                # "每亩补偿3万": an amount whose unit was left unsaid
                amounts.add(_fmt(value))
        else:
            if cn in _BARE_MULTIPLIERS:
                continue
            unit = unit_c
            if cn == "一" and unit[0] in _NOT_ONE and unit != "个月":
                continue
            # "一户补偿", "一人一份": one as "each", not a count that tells claims apart
            if cn == "一" and unit in _COUNTERS:
                continue
            parsed = _cn_value(cn)
            if parsed is None:
                continue
            value = float(parsed)
            if not unit_c and cn[-1] in "万亿":
                amounts.add(_fmt(value))
        if value > 1e12:
            continue
        number = _fmt(value)
        if not unit:
            numbers.add(number)
        elif unit in _DATE_UNITS:
            numbers.add(number + unit)
        else:
            numbers.add(number)
            amounts.add(number + _UNIT_ALIAS.get(unit, unit))
    return numbers, amounts


def _vague_span(text: str, start: int, cn: str, unit: str) -> bool:
    """Whether a spoken span is a vague "lately" or "soon" ("这两天", "前两天", "过两天再说"), not a
    length of time: it told a refutation ("这两天就是小到中雪") apart from the claim it answers
    ("道路封闭15天")."""
    return cn in _VAGUE_COUNTS and unit in ("天", "周", "个月", "年") and start > 0 and text[start - 1] in _VAGUE_BEFORE


_VAGUE_COUNTS = frozenset({"两", "一两", "两三"})
_VAGUE_BEFORE = frozenset("这那前过头近")
_BARE_MULTIPLIERS = frozenset({"万", "亿", "千", "百", "十"})
_COUNTERS = frozenset({"户", "家", "人", "名", "只", "头", "辆", "所", "间", "套", "栋", "层"})


# ----------------------------------------------------------------------------- named things

# Heads of named things: schools, plants, hospitals, estates, companies, stations. A name is
# the head with the characters just before it, cut at a function word ("听说化工厂" -> 化工厂).
_NAME_HEADS = (
    "小学", "中学", "大学", "学校", "幼儿园", "学院", "医院", "卫生院", "诊所",
    "化工厂", "自来水厂", "水厂", "电厂", "工厂", "厂",
    "公司", "集团", "银行", "超市", "商场", "市场", "酒店", "饭店", "宾馆", "工地",
    "小区", "花园", "公寓", "大厦", "广场", "公园",
    "车站", "火车站", "汽车站", "高铁站", "机场", "码头", "水库", "大桥", "路口", "加油站",
    "派出所", "政府", "村委会", "居委会", "养老院", "敬老院", "殡仪馆", "垃圾场", "寺",
    # people by their title: "钟南山院士", "王书记"
    "院士", "教授", "专家", "书记", "镇长", "村长", "县长", "市长", "主任", "局长", "所长", "校长", "院长",
    # offices and named kinds: "社保局" is not "公安局", "狂犬疫苗" not "流感疫苗"
    "局", "疫苗", "病毒",
)
_HEADS_RE = "|".join(sorted(_NAME_HEADS, key=len, reverse=True))
# Characters that end the modifier going leftwards: particles, verbs of saying, pronouns, and
# verbs that take the place as their object ("我一刚问过学校了" names no school "一刚问过学校").
_STOP_CHARS = ("村镇乡县区市岁元块的了在是和与及跟到去从把被说讲听有这那我你他她它们个给对为让里边旁近附都也就还又要会能该本"
               "各全整该此其某吗呢吧啊呀哦嘛么啦问找送拉往至过")
_HEAD_FIND_RE = re.compile("|".join(sorted(_NAME_HEADS, key=len, reverse=True)))
_STOP_SET = frozenset(_STOP_CHARS)
# Generic words ending in a head that name nothing specific ("这家超市" names a referent only).
_GENERIC_MODIFIERS = frozenset({"", "大", "小", "新", "老", "附", "一", "那", "这"})


def _names(key: str) -> set[str]:
    """Named things of a match key: a head with up to four characters before it, cut at a stop
    character or a digit."""
    out: set[str] = set()
    for m in _HEAD_FIND_RE.finditer(key):
        start = m.start()
        lo = start
        while lo > 0 and start - lo < 4 and key[lo - 1] not in _STOP_SET and not key[lo - 1].isdigit():
            lo -= 1
        modifier = key[lo:start]
        head = m.group(0)
        # One character before the head ("镇上"'s 上, "大"厂) names no particular one.
        out.add(head if len(modifier) < 2 or modifier in _GENERIC_MODIFIERS else modifier + head)
    return out


# ----------------------------------------------------------------------------- places

# The character just before a place suffix that makes the mark a reference, not a name:
# "全村", "本镇", "隔壁村", "回到村" (place_marks takes two characters + the suffix).
# Verbs before a place suffix make it an action, not a name: "封村", "封镇", "离村", "驻村", "返乡",
# and the verbs of taking someone somewhere: "当夜送镇卫生院" names no township "夜送镇".
_REFERENCE_CHARS = frozenset("全本该此各每邻外隔到回去在进出来的了个整满同别封离驻返入留送往奔拉赶至")


def _good_mark(mark: str) -> bool:
    return mark[1] not in _REFERENCE_CHARS and mark[0] not in "的了在到去回从"


def named_place_marks(key: str) -> frozenset[str]:
    """``nlp.similarity.place_marks`` without the marks that name no place ("全村", "封镇")."""
    return frozenset(m for m in place_marks(key) if _good_mark(m))


class AnchorExtractor:
    """Extracts anchors with one gazetteer (or none). Picklable: holds only the gazetteer's
    names, and compiles its pattern lazily."""

    def __init__(self, gazetteer: Gazetteer | None = None) -> None:
        self.alias_to_name: dict[str, str] = dict(gazetteer.alias_to_name) if gazetteer else {}
        self.parents: dict[str, frozenset[str]] = place_parents(gazetteer) if gazetteer else {}
        self._pattern: re.Pattern[str] | None = None
        self._compiled = False

    def __getstate__(self) -> dict[str, Any]:
        return {"alias_to_name": self.alias_to_name, "parents": self.parents}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.alias_to_name = state["alias_to_name"]
        self.parents = state["parents"]
        self._pattern = None
        self._compiled = False

    def _gazetteer_re(self) -> re.Pattern[str] | None:
        if not self._compiled:
            from nlp.concerns._match import compile_words  # small module; the package is lazy-safe

            # Aliases of one character ("东") would fire everywhere.
            self._pattern = compile_words(w for w in self.alias_to_name if len(w) > 1)
            self._compiled = True
        return self._pattern

    def places(self, key: str) -> frozenset[str]:
        """Gazetteer places and good place marks of a match key; a mark inside a gazetteer name
        is that name ("青禾镇卫生院" is the landmark, not also a mark "青禾镇")."""
        pattern = self._gazetteer_re()
        found: set[str] = set()
        covered: list[tuple[int, int]] = []
        if pattern is not None:
            for m in pattern.finditer(key):
                found.add(self.alias_to_name[m.group(0)])
                covered.append((m.start(), m.end()))
        marks = place_marks(key)
        if not marks:
            return frozenset(found)
        for mark in marks:
            if not _good_mark(mark):
                continue
            if covered:
                start = key.find(mark)
                suffix_at = start + 2
                if any(s <= suffix_at < e for s, e in covered):
                    continue
            found.add(mark)
        return frozenset(found)

    def extract(self, norm_text: str, key: str | None = None) -> Anchors:
        """Anchors of a normalised text; ``key`` is its ``match_key`` when the caller has it."""
        if not norm_text:
            return Anchors()
        if key is None:
            key = match_key(norm_text)
        numbers, amounts = _numbers(norm_text)
        names = _names(key)
        places = self.places(key)
        # A name that is a known place is a place ("青禾镇卫生院"), not also a named thing.
        if places and names:
            names = {n for n in names if n not in places and not any(p.endswith(n) for p in places)}
        return Anchors(frozenset(places), frozenset(numbers), frozenset(amounts), frozenset(names))


def place_parents(gazetteer: Gazetteer) -> dict[str, frozenset[str]]:
    """Place (canonical name or place mark) -> the places it lies in (names and marks):
    东湾村 -> {青禾镇, 青禾县}. The ``parents`` argument of :func:`anchors_conflict`."""
    out: dict[str, frozenset[str]] = {}
    for name in gazetteer.places:
        ups = gazetteer.ancestors(name)
        above = frozenset(ups) | frozenset(m for up in ups for m in place_marks(match_key(up)))
        if not above:
            continue
        out[name] = out.get(name, _EMPTY) | above
        key = match_key(name)
        for mark in place_marks(key):
            if key.endswith(mark):  # the name's own suffix, not "东湾村委会"'s village
                out[mark] = out.get(mark, _EMPTY) | above
    return out


# ----------------------------------------------------------------------------- default extractor

_lock = threading.Lock()
_default: AnchorExtractor | None = None
_default_src: tuple[str, float] | None = None
_default_dir: object = None
_checked_at = 0.0
_RECHECK_S = 30.0


def default_extractor() -> AnchorExtractor:
    """The extractor of the office's gazetteer; the file is re-checked at most every 30 s (at
    once when the settings name another config folder), and an unreadable gazetteer means place
    marks only."""
    global _default, _default_src, _default_dir, _checked_at
    now = time.monotonic()
    config_dir = get_settings().config_dir
    if _default is not None and now - _checked_at < _RECHECK_S and config_dir == _default_dir:
        return _default
    with _lock:
        if _default is not None and now - _checked_at < _RECHECK_S and config_dir == _default_dir:
            return _default
        from nlp.concerns.config import config_path
        from nlp.concerns.errors import ConcernConfigError
        from nlp.concerns.places import PLACES_FILE, load_gazetteer

        path = config_path(PLACES_FILE)
        try:
            src = (str(path), path.stat().st_mtime)
        except OSError:
            src = (str(path), -1.0)
        if _default is None or src != _default_src:
            try:
                _default = AnchorExtractor(load_gazetteer(path))
            except ConcernConfigError:
                _default = AnchorExtractor(None)
            _default_src = src
        _default_dir, _checked_at = config_dir, now
        return _default


def extract_anchors(norm_text: str, key: str | None = None) -> Anchors:
    """Anchors of a normalised text, with the office's gazetteer (``key``: its match key, when
    the caller already has it, saves a third of the time)."""
    return default_extractor().extract(norm_text, key)


# ----------------------------------------------------------------------------- comparing

_AMOUNT_UNIT_RE = re.compile(r"^[\d.]+(.*)$")


def _expand(places: Iterable[str], parents: Mapping[str, frozenset[str]] | None) -> set[str]:
    out = set(places)
    if parents:
        for p in list(out):
            out |= parents.get(p, _EMPTY)
    return out


def _places_conflict(a: frozenset[str], b: frozenset[str], parents: Mapping[str, frozenset[str]] | None) -> bool:
    if not a or not b:
        return False
    # Each side names a place the other neither names nor lies in: 东湾村 vs 柳树村. A town
    # covers its villages (青禾镇 vs 石桥村: the village lies in the town, no conflict).
    return bool(a - _expand(b, parents)) and bool(b - _expand(a, parents))


# Time spans compare in days: "两周" is "14天", "三个月" is not "一周".
_SPAN_DAYS = {"天": 1.0, "周": 7.0, "个月": 30.0, "年": 365.0}


def _by_unit(amounts: frozenset[str]) -> dict[str, set[float]]:
    out: dict[str, set[float]] = {}
    for amount in amounts:
        m = _AMOUNT_UNIT_RE.match(amount)
        if not m:
            continue
        try:
            value = float(m.group(0)[: len(m.group(0)) - len(m.group(1))])
        except ValueError:
            continue
        unit = m.group(1)
        days = _SPAN_DAYS.get(unit)
        if days is not None and not (unit == "年" and value >= 1900):  # "2026年" is a date
            out.setdefault("span", set()).add(value * days)
        else:
            out.setdefault(unit, set()).add(value)
    return out


def _amounts_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return False
    ua, ub = _by_unit(a), _by_unit(b)
    # Same unit, and each side has a value the other lacks: 800元 vs 500元 (a retelling that
    # adds "每人800元, 共2万元" to "800元" keeps 800元 and conflicts with nothing).
    return any(ua[u] - ub[u] and ub[u] - ua[u] for u in ua.keys() & ub.keys())


# Memoised: the grouping compares a post's anchors with several incidents' (anchors_conflict),
# and the heads of the same few hundred names were looked up a hundred thousand times a run.
@lru_cache(maxsize=1 << 16)
def _head(name: str) -> str:
    for head in _HEADS_SORTED:
        if name.endswith(head):
            return head
    return name


_HEADS_SORTED = sorted(_NAME_HEADS, key=len, reverse=True)


# Heads of one kind: a 中学 and a 小学 are two schools.
_HEAD_CLASS = {h: "school" for h in ("小学", "中学", "大学", "学校", "幼儿园", "学院")} | {
    h: "hospital" for h in ("医院", "卫生院", "诊所")
} | {h: "plant" for h in ("化工厂", "自来水厂", "水厂", "电厂", "工厂", "厂")}


@lru_cache(maxsize=1 << 16)
def _kind(name: str) -> tuple[str, str]:
    """(class of the name's head, the head)."""
    head = _head(name)
    return _HEAD_CLASS.get(head, head), head


def _same_name(a: str, b: str) -> bool:
    """Whether two names of one head can be one thing: one ends the other (化工厂, 东湾化工厂), or
    they end alike in two characters before the head. A name's modifier is cut from running text
    and often drags a verb or a date along ("号打流感疫苗", "接种流感疫苗": both 流感疫苗), while
    two things of one kind differ right before it (中心小学 / 实验小学, 狂犬疫苗 / 流感疫苗)."""
    if a.endswith(b) or b.endswith(a):
        return True
    tail = len(_kind(a)[1]) + 2
    return len(a) >= tail and len(b) >= tail and a[-tail:] == b[-tail:]


def _names_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b or a == b:
        return False
    # Two specific names of one kind where neither ends the other: 中心小学 vs 实验小学, 青禾中学
    # vs 实验小学 (化工厂 vs 东湾化工厂 is one plant, said shorter). A bare head names nothing.
    heads_a: dict[str, set[str]] = {}
    for n in a:
        heads_a.setdefault(_kind(n)[0], set()).add(n)
    heads_b: dict[str, set[str]] = {}
    for n in b:
        heads_b.setdefault(_kind(n)[0], set()).add(n)
    for head in heads_a.keys() & heads_b.keys():
        sa = {n for n in heads_a[head] if len(n) - len(_kind(n)[1]) >= 2}
        sb = {n for n in heads_b[head] if len(n) - len(_kind(n)[1]) >= 2}
        if not sa or not sb:
            continue
        only_a = {n for n in sa if not any(_same_name(n, m) for m in heads_b[head])}
        only_b = {n for n in sb if not any(_same_name(n, m) for m in heads_a[head])}
        if only_a and only_b:
            return True
    return False


def anchors_conflict(a: Anchors, b: Anchors, parents: Mapping[str, frozenset[str]] | None = None) -> bool:
    """True when the two name different specific things of the same kind: another place (a
    place covers the places inside it, via ``parents``), another amount in the same unit,
    another named thing with the same head. Bare numbers and dates never conflict."""
    return (
        _places_conflict(a.places, b.places, parents)
        or _amounts_conflict(a.amounts, b.amounts)
        or _names_conflict(_named(a), _named(b))
    )


def _named(x: Anchors) -> frozenset[str]:
    """Names plus the gazetteer's landmarks that end in a name head (青禾中学, 青禾镇卫生院).

    Kept on the (immutable) object: an incident's anchors are compared with post after post."""
    named: frozenset[str] | None = x.__dict__.get("_named")
    if named is None:
        landmarks = [p for p in x.places if _head(p) != p]
        named = x.names | frozenset(landmarks) if landmarks else x.names
        object.__setattr__(x, "_named", named)  # not a field: equality, hashing and to_dict ignore it
    return named


# Weights of one shared anchor by kind: a shared place or name binds more than a shared number.
_W_PLACE, _W_NAME, _W_AMOUNT, _W_NUMBER = 1.0, 1.0, 0.8, 0.4


def _bare(x: Anchors) -> frozenset[str]:
    """Numbers that are not the value of one of the amounts (dates, counts without a unit)."""
    if not x.amounts:
        return x.numbers
    values = {m.group(1) for a in x.amounts if (m := _VALUE_RE.match(a))}
    return x.numbers - values


_VALUE_RE = re.compile(r"^([\d.]+)")


def _weight(x: Anchors, bare: frozenset[str]) -> float:
    return _W_PLACE * len(x.places) + _W_NAME * len(x.names) + _W_AMOUNT * len(x.amounts) + _W_NUMBER * len(bare)


def anchor_overlap(a: Anchors, b: Anchors) -> float:
    """How strongly shared specific anchors bind the two (0..1): the weight of what they share
    over the weight of the side with fewer anchors (a short claim inside a long retelling
    shares all of its anchors: 1.0). 0 when either side has none."""
    bare_a, bare_b = _bare(a), _bare(b)
    wa, wb = _weight(a, bare_a), _weight(b, bare_b)
    if wa <= 0 or wb <= 0:
        return 0.0
    shared = (
        _W_PLACE * len(a.places & b.places)
        + _W_NAME * len(a.names & b.names)
        + _W_AMOUNT * len(a.amounts & b.amounts)
        + _W_NUMBER * len(bare_a & bare_b)
    )
    return min(1.0, shared / min(wa, wb))
