"""The per-text part of the incident stage: each post's role, anchors and rumor cues.

Runs where the pipeline's text stage runs (its worker processes for a large backlog), so the main
process gets finished `PostFacts` and only groups. Pure: no database, no run state.

* role: :mod:`nlp.roles` (rules where a cue is certain, its small model for the rest), given
  each post's context (a reply, chat or web, titled).
* anchors: :mod:`nlp.anchors` (places, amounts, numbers, named things).
* cues: does the post pass on hearsay (听说, 内部消息) or press people to act or share (紧急扩散,
  赶紧去): what the incident's risk explains.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from nlp.anchors import Anchors, default_extractor
from nlp.cues import CUE_GROUPS, without_thanks
from nlp.regional import plain_mandarin
from nlp.roles import ROLES, RoleContext, load_role_classifier, words_of
from nlp.similarity import match_key

__all__ = [
    "HOOK_GRAMS",
    "ROLES",
    "STARTER_ROLES",
    "IncidentText",
    "PostFacts",
    "anchors_of",
    "clean_anchors",
    "cue_flags",
    "grams_of",
    "quoted_part",
]
# Roles whose post states a matter by itself and may found an incident (a question may too, when
# it names enough of the matter: "中心小学真的停课两周吗"; see nlp.incidents).
STARTER_ROLES = frozenset({"claim", "complaint", "notice", "refutation"})


class PostFacts(NamedTuple):
    """What the incident stage needs from one post's text (picklable: it comes back from workers)."""

    role: str
    confidence: float
    anchors: Anchors
    hearsay: bool  # passes on unverifiable hearsay (听说, 网传, 内部消息)
    urgent: bool  # presses people to share or act (紧急扩散, 赶紧去, 不转不是中国人)
    grams: tuple[int, ...] = ()  # distinct hashed character bigrams of its match key (see grams_of)


_URGENT = tuple(CUE_GROUPS["urgent_spread"]) + tuple(CUE_GROUPS["share_pressure"]) + ("赶紧", "快去", "赶快", "抓紧")
_HEARSAY = tuple(CUE_GROUPS["hearsay"])
_URGENT_RE = re.compile("|".join(map(re.escape, _URGENT)))
_HEARSAY_RE = re.compile("|".join(map(re.escape, _HEARSAY)))


GRAM_BITS = 19
GRAM_FEATURES = 1 << GRAM_BITS
_GRAM_MASK = (1 << 32) - 1


def grams_of(key: str) -> tuple[int, ...]:
    """Distinct character bigrams of a match key, hashed into GRAM_FEATURES buckets (stable
    across processes, unlike ``hash()``: worker processes compute them).

    Why characters, not words: a paraphrase is segmented differently from its claim ("水污染" /
    "污染", "宏达化工厂" / "化工厂", "两个星期" / "两周"), and bigrams of both still meet.
    """
    if len(key) < 2:
        return ()
    out = dict.fromkeys(
        (((ord(a) * 0x9E3779B1) ^ (ord(b) * 0x85EBCA6B)) & _GRAM_MASK) >> (32 - GRAM_BITS)
        for a, b in itertools.pairwise(key)
    )
    return tuple(out)


_QUOTE_RE = re.compile(r"“([^”]{4,80})”|\"([^\"]{4,80})\"|「([^」]{4,80})」|『([^』]{4,80})』|《([^》]{4,80})》")


def quoted_part(norm: str) -> str:
    """What a text quotes (“…”, "…", 「…」, 《…》), joined; "" when it quotes nothing. A refutation
    or notice names the rumor it answers in quotes: 网传“金塘农商银行资金链断裂、即将倒闭”不实."""
    if "“" not in norm and '"' not in norm and "「" not in norm and "『" not in norm and "《" not in norm:
        return ""
    return "，".join(next(g for g in m.groups() if g) for m in _QUOTE_RE.finditer(norm))


# What people say around any matter in a chat: asking whether it is true, where it came from,
# being scared. Their bigrams say nothing about which matter it is ("真的假的" after the bank
# rumor in one group must not join the kidnapping rumor whose questions said it too), so the
# grouping leaves them out of a post's terms.
_HOOK_PHRASES = (
    "真的假的", "是不是真的", "真的吗", "是真的吗", "有没有正式通知", "有没有官方说法", "有通知吗", "谁说的",
    "哪来的消息", "听谁说的", "听说", "据说", "有人说", "群里都在传", "都在传", "大家注意", "吓死我了", "吓死了",
    "天哪", "我的妈呀", "不会吧", "别瞎说", "别乱传", "别信谣", "不信谣不传谣", "请勿转发", "有人知道吗",
    # calling the group ("家人们！！！初二停课一周" after "家人们谁懂啊 职校那边有人跳楼了")
    "家人们", "姐妹们", "兄弟们", "宝子们", "老铁们", "朋友们", "各位", "谁懂啊",
)
HOOK_GRAMS = frozenset(g for phrase in _HOOK_PHRASES for g in grams_of(phrase))


# Characters that never begin a village's or town's own name but often precede 村/镇 in a sentence:
# "咱们村", "报给镇里", "失修镇交通站", "杏林村村口" (place marks are two characters + a suffix).
_NOT_NAME_CHARS = frozenset("们我你他她咱这那哪报给修的了在是有个每各本全整该此到去回从上下里村镇乡县区市也都还就")


def clean_anchors(a: Anchors, known: frozenset[str] | Any = frozenset(), text: str | None = None) -> Anchors:
    """``a`` without place marks that are sentence fragments rather than names ("咱们村",
    "报给镇"): a fragment would make two posts about one matter "name different places".
    Places in ``known`` (the gazetteer's) always stay. Given the ``text`` they were read from (its
    normalised form), a place or named thing not written in it as one piece goes too: the match
    key runs clauses together, and "心脏病，镇卫生院" or "芦苇湾没事 村支书" would name "脏病镇" or
    "没事村"."""
    if not a.places and not (a.names and text is not None):
        return a
    def written(x: str) -> bool:
        return text is None or x in text

    kept = frozenset(p for p in a.places
                     if p in known or (not (set(p[:-1]) & _NOT_NAME_CHARS) and written(p)))
    names = frozenset(n for n in a.names if written(n)) if text is not None else a.names
    return a if kept == a.places and names == a.names else Anchors(kept, a.numbers, a.amounts, names)


def anchors_of(norm: str, key: str | None = None) -> Anchors:
    """The anchors the incident stage uses: nlp.anchors' less the fragments (`clean_anchors`)."""
    extractor = default_extractor()
    return clean_anchors(extractor.extract(norm, key), extractor.parents.keys(), norm)


def cue_flags(norm: str) -> tuple[bool, bool]:
    """(passes on hearsay, presses to share or act) of a normalised text."""
    pressing = without_thanks(norm)
    return bool(_HEARSAY_RE.search(norm)), bool(_URGENT_RE.search(pressing))


def _role_contexts(contexts: Sequence[Any] | None, n: int) -> list[RoleContext]:
    """nlp.roles' RoleContext of each post (the pipeline's PostContext has the same fields)."""
    if contexts is None:
        return [RoleContext(False, "web", False)] * n
    return [RoleContext(False, "web", False) if c is None
            else RoleContext(c.is_reply, c.channel, c.has_title, group=c.group, at=c.at,
                             key=getattr(c, "post", None), parent=getattr(c, "parent", None),
                             parent_role=getattr(c, "parent_role", "") or "",
                             parent_words=_stored_words(getattr(c, "parent_text", "")))
            for c in contexts]


def _stored_words(norm: str) -> str:
    """A stored parent's words as the role classifier reads a post's (regional words in Mandarin)."""
    return words_of(plain_mandarin(norm)) if norm else ""


class IncidentText:
    """The incident stage's text part: `PostFacts` of each normalised text.

    Picklable; the role classifier is loaded on first use in whichever process runs it.
    """

    wants_context = True  # nlp.pipeline passes each post's PostContext (is_reply, channel, has_title)

    def __init__(self) -> None:
        self._roles: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_roles": None}

    def roles(self) -> Any:
        if self._roles is None:
            self._roles = load_role_classifier()
        return self._roles

    def __call__(self, norms: Sequence[str], contexts: Sequence[Any] | None = None) -> list[PostFacts]:
        texts = [t or "" for t in norms]
        if not texts:
            return []
        roles, confidences = self.roles().predict(texts, _role_contexts(contexts, len(texts)))
        out = []
        for text, role, conf in zip(texts, roles, confidences, strict=True):
            key = match_key(text)
            # Cues feed the risk of claims only; chatter and the rest skip the two regexes.
            cues = cue_flags(text) if role == "claim" else (False, False)
            out.append(PostFacts(str(role), float(conf), anchors_of(text, key), *cues, grams_of(key)))
        return out
