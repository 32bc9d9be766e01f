"""The automatic-reply gate: may a tip get a debunk's refutation without a person reading it?

The claim matcher's score says how likely a tip and a debunk's claim state one claim; at the
tip band's score a wrong answer is rare but not rare enough (bench/results/tips.md), and a wrong
automatic answer is worse than none: it tells a resident a true thing is a rumor. What the
wrong answers have in common is a tip that shares the claim's words and states something else
about the same place or thing: another village inside the town, another day, another amount,
another event ("停电" for "停水"), a denial ("没有伤人"), or a tip that fits two debunks
nearly as well. So on top of the score, :func:`gate` holds back a tip unless

* **places** — every place the tip names is one the claim names, or contains one (a tip about
  "青禾镇" may get the refutation of a rumor about its village 石桥村; a tip about 石桥村 never
  gets the refutation of a rumor about the whole town: the village's own outage may be real);
  a tip naming a place gets no refutation of a claim that names none;
* **amounts and counts** — in every unit both name, the tip's values are the claim's;
* **dates** — where both say which day, week, month or date, they say the same one ("本周六"
  is not "下周六", "明天" is not "周六", "12月5日" is not "12月6日");
* **predicates** — no family of ``nlp/dicts/claim_predicates.txt`` in which each names a member
  and they share none ("停水" / "停电", "爆炸" / "泄漏", "死亡" / "受伤");
* **event** — where the claim names members of some families, the tip names one of them: a tip
  about the rumor's place or thing that leaves out its event (a question about a true notice)
  is another claim, however many words it shares ("宣传免费体检" / "把病人治死了");
* **actor** — where the claim says who did it to whom ("老师把学生…"), a tip naming the one it
  was done to names the one who did it too ("两个学生打架" is not "老师把学生打进了医院");
* **denial** — the tip denies nothing the claim does not ("没有伤人", "被救上来了", "没事");
* **margin** — the claim matcher scores the tip against every other candidate debunk at least
  ``margin`` lower (two debunks that fit one tip: a person picks).

Named things ("中心小学" / "实验小学") are not checked here: the debunk matcher already refuses
another name of one kind, and the anchors' names take up to four characters before the head,
so a retelling's word order makes another "name" ("停一天水自来水厂" / "停水一天自来水厂").

Every check reads normalised text and is cheap (regexes and set operations); the margin's
scores come from the caller, which has the matcher (``nlp.debunks.DebunkMatcher.rival_score``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nlp.anchors import Anchors, default_extractor
from nlp.claim_words import canonical_key
from nlp.claims import agent_patient
from nlp.similarity import match_key

__all__ = ["PREDICATES_FILE", "GateVerdict", "gate", "load_predicate_families"]

PREDICATES_FILE = Path(__file__).resolve().parent / "dicts" / "claim_predicates.txt"

#: Reasons, in Simplified Chinese for staff (the tip list shows why a tip was held back).
REASONS = {
    "place": "地点与辟谣不一致",
    "amount": "数字或金额与辟谣不一致",
    "date": "时间与辟谣不一致",
    "predicate": "所说事件与辟谣不一致",
    "event": "未提及辟谣所说的事件",
    "actor": "所说的人与辟谣不一致",
    "denial": "表述含否定，与辟谣方向不一致",
    "margin": "与另一条辟谣难以区分",
}


@dataclass(frozen=True)
class GateVerdict:
    """Whether a tip may be answered automatically, and if not, every reason why not."""

    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.reasons

    @property
    def reasons_zh(self) -> str:
        return "；".join(REASONS[r] for r in self.reasons)


# ----------------------------------------------------------------------------- places, amounts


def _expand_up(places: frozenset[str], parents: Mapping[str, frozenset[str]]) -> set[str]:
    out = set(places)
    for p in places:
        out |= parents.get(p, frozenset())
    return out


# Place marks are two characters and a suffix (nlp.similarity.place_marks); where the two are an
# everyday word the mark names no place: "以后村里", "听说市场", "我们镇上".
_NOT_PLACE_HEADS = frozenset({
    "以后", "以前", "现在", "我们", "咱们", "你们", "他们", "这个", "那个", "整个", "每个", "隔壁", "附近", "当地",
    "老家", "听说", "据说", "全部", "所有", "周边", "其他", "别的", "外地", "本地", "说是", "还是", "就是", "都是",
})


# ... or where the suffix starts an everyday word: "村口", "村里", "镇上" ("致癌村口那个", "被镇上").
_NOT_PLACE_NEXT = frozenset("口里上")


def _places(a: Anchors, key: str) -> frozenset[str]:
    out = set()
    for p in a.places:
        at = key.find(p)
        if p[:2] in _NOT_PLACE_HEADS or (at >= 0 and key[at + len(p) : at + len(p) + 1] in _NOT_PLACE_NEXT):
            continue
        out.add(p)
    return frozenset(out)


def _areas(parents: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The places of the gazetteer that contain others (the town, the county): the office's area."""
    return frozenset().union(*parents.values()) if parents else frozenset()


def places_disagree(tip: frozenset[str], claim: frozenset[str], parents: Mapping[str, frozenset[str]]) -> bool:
    """A place of the tip that is neither a place of the claim nor one containing it."""
    return bool(tip - _expand_up(claim, parents))


_AMOUNT_RE = re.compile(r"^([\d.]+)(.*)$")
_SPAN_DAYS = {"天": 1.0, "周": 7.0, "个月": 30.0, "年": 365.0}


def _amounts(a: Anchors) -> dict[str, set[float]]:
    out: dict[str, set[float]] = {}
    for amount in a.amounts:
        m = _AMOUNT_RE.match(amount)
        if not m:
            continue
        try:
            value = float(m.group(1))
        except ValueError:
            continue
        unit = m.group(2)
        if unit in _SPAN_DAYS and not (unit == "年" and value >= 1900):
            out.setdefault("span", set()).add(value * _SPAN_DAYS[unit])
        else:
            out.setdefault(unit, set()).add(value)
    return out


# A number with what it counts ("10桌", "3个月", "2个"): units the anchors do not know.
_COUNT_RE = re.compile(r"(\d+(?:\.\d+)?)(?:多|几|余)?(个月|[\u4e00-\u9fff])")
_NOT_COUNTED = frozenset("月日号点时分秒年周天")


def _counts(key: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for value, unit in _COUNT_RE.findall(key):
        if unit not in _NOT_COUNTED and unit != "个月":
            out.setdefault(unit, set()).add(value)
    return out


def amounts_disagree(tip: Anchors, claim: Anchors, tip_key: str, claim_key: str) -> bool:
    """In a unit both name, a value of the tip the claim does not have ("罚款50元" vs "200元",
    "咬死了五头牛" vs "两头牛"). A tip that adds a number of another unit ("孩子才七岁") is fine."""
    ta, ca = _amounts(tip), _amounts(claim)
    if any(ta[u] - ca[u] for u in ta.keys() & ca.keys()):
        return True
    tc, cc = _counts(tip_key), _counts(claim_key)
    return any(tc[u] - cc[u] for u in tc.keys() & cc.keys())


# ----------------------------------------------------------------------------- dates

# Relative days, in one spelling each ("昨晚" is yesterday, "今早" today).
_DAYS = (
    ("前天", "前天"), ("昨天", "昨天"), ("昨日", "昨天"), ("昨晚", "昨天"), ("昨夜", "昨天"),
    ("今天", "今天"), ("今日", "今天"), ("今晚", "今天"), ("今早", "今天"), ("今夜", "今天"),
    ("明天", "明天"), ("明日", "明天"), ("明晚", "明天"), ("明早", "明天"), ("后天", "后天"),
)
_DAY_RE = re.compile("|".join(w for w, _ in _DAYS))
_DAY_OF = dict(_DAYS)
_WEEKDAY_RE = re.compile(r"(本|这|下下|下|上)?(?:个)?(?:周|星期|礼拜)([一二三四五六日天1-7])")
_WEEKDAY_NO = {"一": "1", "二": "2", "三": "3", "四": "4", "五": "5", "六": "6", "日": "7", "天": "7"}
_WEEK_RE = re.compile(r"(本|这|下下|下|上)(?:个)?(?:周|星期|礼拜)(?![一二三四五六日天1-7])")
_MONTH_RE = re.compile(r"(本|这|下下|下|上)(?:个)?月")
_YEAR_RE = re.compile(r"(今|明|去|前|后)年")
_DATE_RE = re.compile(r"(\d{1,2})月(\d{1,2})[日号]")
_WHICH = {"本": "0", "这": "0", "今": "0", "下": "+1", "明": "+1", "下下": "+2", "后": "+2", "上": "-1", "去": "-1",
          "前": "-2"}


def _when(key: str) -> dict[str, set[str]]:
    """The days, weekdays, weeks, months, years and dates a text names, by granularity."""
    out: dict[str, set[str]] = {}
    for m in _DAY_RE.finditer(key):
        out.setdefault("day", set()).add(_DAY_OF[m.group(0)])
    for m in _WEEKDAY_RE.finditer(key):
        day = _WEEKDAY_NO.get(m.group(2), m.group(2))
        out.setdefault("day", set()).add(_WHICH.get(m.group(1) or "本", "0") + "w" + day)
    for m in _WEEK_RE.finditer(key):
        out.setdefault("week", set()).add(_WHICH[m.group(1)])
    for m in _MONTH_RE.finditer(key):
        out.setdefault("month", set()).add(_WHICH[m.group(1)])
    for m in _YEAR_RE.finditer(key):
        out.setdefault("year", set()).add(_WHICH[m.group(1)])
    for m in _DATE_RE.finditer(key):
        out.setdefault("date", set()).add(f"{int(m.group(1))}-{int(m.group(2))}")
    # a weekday said with its week ("下周六") is also that week
    for d in out.get("day", set()):
        if "w" in d:
            out.setdefault("week_of_day", set()).add(d.split("w")[0])
    return out


def dates_disagree(tip_key: str, claim_key: str) -> bool:
    """Both say which day (or week, month, year, date) and share none of them. A relative day
    and a weekday ("明天" / "周六") cannot be compared without the day of writing: they
    disagree too (the gate's side: hold back)."""
    tw, cw = _when(tip_key), _when(claim_key)
    for grain in ("day", "week", "month", "year", "date"):
        a, b = tw.get(grain), cw.get(grain)
        if a and b and not a & b:
            return True
    # "下周六" against "下周起": the weekday's week against the other's week
    a, b = tw.get("week_of_day"), cw.get("week")
    if a and b and not a & b:
        return True
    a, b = tw.get("week"), cw.get("week_of_day")
    return bool(a and b and not a & b)


# ----------------------------------------------------------------------------- predicates, denial


@lru_cache(maxsize=4)
def load_predicate_families(path: str = str(PREDICATES_FILE)) -> tuple[tuple[tuple[str, ...], ...], ...]:
    """The families of the predicates file: each a tuple of members, each member its spellings."""
    families = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        members = tuple(tuple(m.split()) for m in line.split("|") if m.strip())
        if len(members) >= 2:
            families.append(members)
    return tuple(families)


def _members(text: str, family: tuple[tuple[str, ...], ...]) -> set[int]:
    return {i for i, spellings in enumerate(family) if any(s in text for s in spellings)}


def _family_members(tip_key: str, claim_key: str) -> list[tuple[set[int], set[int]]]:
    """Per family of the predicates file, (the tip's members, the claim's members)."""
    tip_text = tip_key + " " + canonical_key(tip_key)
    claim_text = claim_key + " " + canonical_key(claim_key)
    return [(_members(tip_text, f), _members(claim_text, f)) for f in load_predicate_families()]


def predicates_disagree(tip_key: str, claim_key: str) -> bool:
    """A family in which each text names a member and they share none ("停水" / "停电")."""
    return any(a and b and not a & b for a, b in _family_members(tip_key, claim_key))


# People a rumor says did something to someone. The two characters before "把" or after "被"
# are often no doer at all ("已经把钱", "说是被"), so only these count as one.
_DOERS = frozenset({
    "老师", "教师", "校长", "医生", "护士", "警察", "民警", "辅警", "城管", "干部", "村长", "书记", "镇长",
    "家长", "学生", "司机", "老板", "保安", "村民", "工人", "病人", "患者", "儿子", "女儿", "父亲", "母亲",
    "丈夫", "妻子", "老人", "孩子", "小孩", "邻居", "商贩", "摊主", "房东", "物业",
})


def actor_missing(tip_key: str, claim_key: str) -> bool:
    """The claim says who did it to whom ("老师把学生打进了医院") and the tip names the one it
    was done to but not the one who did it: another event about the same people ("两个学生打架，
    有一个被打进了医院"). A tip naming neither is judged by the rest of the gate."""
    return any(agent in _DOERS and patient in tip_key and agent not in tip_key
               for agent, patient in agent_patient(claim_key))


def event_missing(tip_key: str, claim_key: str) -> bool:
    """The claim names members of some families and the tip names none of them: the tip does
    not say what the rumor says happened. A question about a true notice names the rumor's place
    and thing but not its event ("松林卫生院门口拉横幅宣传免费体检" against "...医生把病人治死了，
    家属在门口拉横幅", "南坪水库下游明天搞防汛演练，要撤离吗" against "南坪水库要溃坝了，下游
    赶紧撤离"). One member of one family is enough: a retelling keeps the rumor's main event and
    drops the rest ("养狗的罚五百" for "要把狗都打死，养狗的人家罚款500元")."""
    tip_text = tip_key + " " + canonical_key(tip_key)
    named = [(a | _loose_members(tip_text, f, b), b)
             for f, (a, b) in zip(load_predicate_families(), _family_members(tip_key, claim_key), strict=True) if b]
    return bool(named) and not any(a & b for a, b in named)


@lru_cache(maxsize=1024)
def _split_spelling(spelling: str) -> re.Pattern[str]:
    return re.compile(re.escape(spelling[0]) + ".{0,2}" + re.escape(spelling[1]))


def _loose_members(text: str, family: tuple[tuple[str, ...], ...], wanted: set[int]) -> set[int]:
    """Members of ``wanted`` whose two-character spelling ``text`` says with up to two characters
    inside it: a verb and its object split by a count or a particle ("停一天水", "罚了款")."""
    return {i for i in wanted for sp in family[i] if len(sp) == 2 and _split_spelling(sp).search(text)}


# Asking forms that contain a denial's characters but deny nothing: "是不是", "有没有官方说法",
# "不会吧", "会不会", "是不是真的". Removed before the denial cues are looked for.
_ASKING_RE = re.compile(r"是不是|有没有|会不会|不会吧|不会是|能不能|可不可以|要不要|是真是假|真的假的|不知道")
# A denial or an all-clear: the tip says the thing did not happen or ended well.
_DENIAL_RE = re.compile(r"没有|没事|没人|并非|否认|不会|不是|未见|未发现|未造成|无人|获救|被救|救上来|平安|虚惊|已扑灭|扑灭了")


def denies(key: str) -> bool:
    return bool(_DENIAL_RE.search(_ASKING_RE.sub("", key)))


def denial_disagrees(tip_key: str, claim_key: str) -> bool:
    """The tip denies or gives the all-clear and the claim does not ("没有伤人", "被救上来了").
    Not the other way round: a long claim says "没有" in passing, and a tip retelling its
    rumor leaves that out."""
    return denies(tip_key) and not denies(claim_key)


# ----------------------------------------------------------------------------- the gate


def gate(
    tip_norm: str,
    claim_norm: str,
    *,
    rival_score: float = 0.0,
    score: float = 1.0,
    margin: float = 0.0,
    placeless_claims: bool = False,
) -> GateVerdict:
    """Every reason (:data:`REASONS`) to hold ``tip_norm`` back from the automatic answer of the
    debunk whose claim is ``claim_norm`` (both ``nlp.normalize.normalize`` output). ``score``:
    the claim matcher's score of the pair; ``rival_score``: its best score of the tip against
    any other candidate debunk; ``margin``: how far above that the pair must score.
    ``placeless_claims``: whether a tip naming a place may get a claim naming none."""
    extractor = default_extractor()
    tip_key, claim_key = match_key(tip_norm), match_key(claim_norm)
    tip, claim = extractor.extract(tip_norm, tip_key), extractor.extract(claim_norm, claim_key)
    reasons = []
    tip_places, claim_places = _places(tip, tip_key), _places(claim, claim_key)
    if claim_places or placeless_claims:
        off_place = places_disagree(tip_places, claim_places, extractor.parents)
    else:  # a claim naming no place is about the office's own area: a tip may name only that
        off_place = bool(tip_places - _areas(extractor.parents))
    if off_place:
        reasons.append("place")
    if amounts_disagree(tip, claim, tip_key, claim_key):
        reasons.append("amount")
    if dates_disagree(tip_key, claim_key):
        reasons.append("date")
    if predicates_disagree(tip_key, claim_key):
        reasons.append("predicate")
    elif event_missing(tip_key, claim_key):
        reasons.append("event")
    if actor_missing(tip_key, claim_key):
        reasons.append("actor")
    if denial_disagrees(tip_key, claim_key):
        reasons.append("denial")
    if score - rival_score < margin:
        reasons.append("margin")
    return GateVerdict(tuple(reasons))
