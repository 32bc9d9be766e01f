"""The per-text part of the incident stage: each post's role, anchors and rumor cues.

Runs where the pipeline's text stage runs (its worker processes for a large backlog), so the main
process gets finished `PostFacts` and only groups. Pure: no database, no run state.

* role: :mod:`nlp.roles` when it is installed (the role classifier), else :func:`fallback_role`,
  a few cue rules good enough to keep the stage working (chatter, questions, refutations).
* anchors: :mod:`nlp.anchors` when installed, else :func:`fallback_anchors` (place marks, amounts
  with their unit, named institutions).
* cues: does the post pass on hearsay (听说, 内部消息) or press people to act or share (紧急扩散,
  赶紧去): what the incident's risk explains.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from nlp.cues import CUE_GROUPS, refutation_cues
from nlp.similarity import match_key, place_marks

__all__ = [
    "ROLES",
    "STARTER_ROLES",
    "IncidentText",
    "PostFacts",
    "fallback_anchors",
    "fallback_role",
]

ROLES = ("claim", "question", "reaction", "refutation", "notice", "complaint", "other")
# Roles whose post states a matter by itself and may found an incident (a question may too, when
# it names enough of the matter: "中心小学真的停课两周吗"; see nlp.incidents).
STARTER_ROLES = frozenset({"claim", "complaint", "notice", "refutation"})

_EMPTY: frozenset[str] = frozenset()

try:  # the claims branch's anchors (nlp.anchors); the fallback below keeps the stage working without
    from nlp.anchors import Anchors, anchor_overlap, anchors_conflict, extract_anchors
    HAVE_ANCHORS = True
except ImportError:  # pragma: no cover - exercised until nlp.anchors is merged
    HAVE_ANCHORS = False

    @dataclass(frozen=True)
    class Anchors:  # type: ignore[no-redef]
        """The specific things one text names (same shape as nlp.anchors.Anchors)."""

        places: frozenset[str] = _EMPTY
        numbers: frozenset[str] = _EMPTY
        amounts: frozenset[str] = _EMPTY
        names: frozenset[str] = _EMPTY

        def __bool__(self) -> bool:
            return bool(self.places or self.numbers or self.amounts or self.names)

        def to_dict(self) -> dict[str, list[str]]:
            return {k: sorted(v) for k in ("places", "numbers", "amounts", "names") if (v := getattr(self, k))}

        @classmethod
        def from_dict(cls, data: Mapping[str, Any] | None) -> Anchors:
            data = data or {}
            return cls(*(frozenset(str(x) for x in data.get(k) or ()) for k in ("places", "numbers", "amounts", "names")))

        def union(self, other: Anchors) -> Anchors:
            return Anchors(self.places | other.places, self.numbers | other.numbers,
                           self.amounts | other.amounts, self.names | other.names)

    _AMOUNT_RE = re.compile(r"(\d+(?:\.\d+)?)(元|块|万|人|例|天|周|岁|户|斤|吨|倍|小时|个月)")
    _NAME_RE = re.compile(r"[\u4e00-\u9fff]{2,4}?(?:小学|中学|幼儿园|医院|卫生院|药店|超市|水厂|化工厂|工厂|小区|市场|银行)")

    def extract_anchors(norm_text: str) -> Anchors:  # type: ignore[misc]
        key = match_key(norm_text)
        amounts = {f"{n}{u}" for n, u in _AMOUNT_RE.findall(norm_text)}
        return Anchors(place_marks(key), frozenset(n for n, _u in _AMOUNT_RE.findall(norm_text)),
                       frozenset(amounts), frozenset(_NAME_RE.findall(key)))

    def anchors_conflict(a: Anchors, b: Anchors, parents: Mapping[str, frozenset[str]] | None = None) -> bool:  # type: ignore[misc]
        for x, y in ((a.places, b.places), (a.names, b.names)):
            if x and y and not (x & y):
                return True
        return False

    def anchor_overlap(a: Anchors, b: Anchors) -> float:  # type: ignore[misc]
        sa = a.amounts | a.names
        sb = b.amounts | b.names
        if not sa or not sb:
            return 0.0
        return len(sa & sb) / min(len(sa), len(sb))

fallback_anchors = extract_anchors


class PostFacts(NamedTuple):
    """What the incident stage needs from one post's text (picklable: it comes back from workers)."""

    role: str
    confidence: float
    anchors: Anchors
    hearsay: bool  # passes on unverifiable hearsay (听说, 网传, 内部消息)
    urgent: bool  # presses people to share or act (紧急扩散, 赶紧去, 不转不是中国人)


# ----------------------------------------------------------------------------- fallback roles

_CHATTER_RE = re.compile(
    r"^(?:收到|好的?|好滴|嗯+|哦+|ok|OK|谢谢|谢了|多谢|感谢|\+1|1|早|早上好|晚安|哈+|呵+|在吗|在|是的|对|对的|"
    r"没事|可以|行|👍|赞|辛苦了?|知道了|明白了?|了解)[!。.~,\s]*$"
)
_QUESTION_RE = re.compile(r"\?|吗|是不是|真的假的|有没有|谁知道|怎么回事|咋回事|什么情况|啥情况|为什么|为啥|会不会|能不能|多久")
_REACTION_RE = re.compile(r"天哪|天啊|我的天|吓人|吓死|可怕|不会吧|太(?:离谱|过分|吓人)|真的假的|无语|服了|哎|唉|卧槽|我去|震惊|担心")
_NOTICE_RE = re.compile(
    r"^(?:【[^】]{0,8}(?:通知|公告|通告|提醒)】|(?:[\u4e00-\u9fff]{0,12}(?:人民政府|村委会?|居委会|办公室|派出所|卫生院|中心|学校)"
    r"(?:温馨)?(?:通知|公告|通告|提醒)[:,\s])|各位(?:村民|居民|家长|群友)[,:\s])"
)
_COMPLAINT_RE = re.compile(
    r"买不到|没人管|投诉|反映|太差|太慢|怎么还(?:没|不)|一直没|好几天了?(?:都|还)|受不了|没法|乱收费|涨价了|"
    r"排了?(?:好久|半天|几个小时)|没有(?:水|电|药)|断了?(?:好几|几)天"
)
_URGENT = tuple(CUE_GROUPS["urgent_spread"]) + tuple(CUE_GROUPS["share_pressure"]) + ("赶紧", "快去", "赶快", "抓紧")
_HEARSAY = tuple(CUE_GROUPS["hearsay"])
_URGENT_RE = re.compile("|".join(map(re.escape, _URGENT)))
_HEARSAY_RE = re.compile("|".join(map(re.escape, _HEARSAY)))


def fallback_role(norm: str, is_reply: bool = False) -> tuple[str, float]:
    """A role from cue rules (used while nlp.roles is not installed): chatter, refutation,
    notice, question, reaction, complaint, else claim."""
    key = match_key(norm)
    if len(key) < 2 or _CHATTER_RE.match(norm.strip()):
        return "other", 0.8
    if refutation_cues(norm, normalized=True):
        return "refutation", 0.7
    if _NOTICE_RE.search(norm):
        return "notice", 0.6
    short = len(key) <= 14
    if _QUESTION_RE.search(norm) and (short or norm.rstrip().endswith("?")):
        return "question", 0.6
    if short and _REACTION_RE.search(norm):
        return "reaction", 0.6
    if _COMPLAINT_RE.search(norm):
        return "complaint", 0.55
    if len(key) < 6:
        return ("reaction", 0.4) if is_reply else ("other", 0.5)
    return "claim", 0.5


class _FallbackRoles:
    def predict(self, texts: Sequence[str], contexts: Sequence[Any]) -> tuple[list[str], list[float]]:
        out = [fallback_role(t, bool(getattr(c, "is_reply", False))) for t, c in zip(texts, contexts, strict=True)]
        return [r for r, _ in out], [c for _, c in out]


def _load_roles() -> Any:
    try:
        from nlp import roles  # type: ignore[attr-defined]
    except ImportError:
        return _FallbackRoles()
    return roles.load_role_classifier()


def _role_contexts(contexts: Sequence[Any] | None, n: int) -> list[Any]:
    """nlp.roles' RoleContext of each post (the pipeline's PostContext has the same fields)."""
    if contexts is None:
        contexts = [None] * n
    try:
        from nlp.roles import RoleContext  # type: ignore[attr-defined]
    except ImportError:
        return list(contexts)
    return [RoleContext(False, "web", False) if c is None else RoleContext(c.is_reply, c.channel, c.has_title)
            for c in contexts]


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
            self._roles = _load_roles()
        return self._roles

    def __call__(self, norms: Sequence[str], contexts: Sequence[Any] | None = None) -> list[PostFacts]:
        texts = [t or "" for t in norms]
        if not texts:
            return []
        roles, confidences = self.roles().predict(texts, _role_contexts(contexts, len(texts)))
        out = []
        for text, role, conf in zip(texts, roles, confidences, strict=True):
            out.append(PostFacts(str(role), float(conf), extract_anchors(text),
                                 bool(_HEARSAY_RE.search(text)), bool(_URGENT_RE.search(text))))
        return out
