"""The role of each post in its matter: claim, question, reaction, refutation, notice, complaint, other.

Roles drive the incident stage: only claims spread a rumor; questions and corrections around a
claim are the strongest early rumor signal in chats (Zhao, Resnick & Mei, "Enquiring Minds",
WWW 2015); refutations and notices are the response, never evidence of spread; chatter
("恭喜…考上大学", "快递柜满了") never raises anything on its own.

Two layers:

* `role_rules` decides where a surface cue is certain (a truth question, a written denial, a
  greeting, a notice opener); the cue lists live in `nlp.cues.ROLE_CUES`.
* the shipped model (`nlp.role_model`, hashed character n-grams + role cues, numeric weights
  only) decides the rest. Without a model file the rules fall back to "a line about a matter is
  a claim, anything else is chatter", so the stage works on a fresh checkout.

`RoleClassifier` is picklable and stateless after load (worker processes receive it).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nlp.asking import asks, ends_asking
from nlp.cues import role_cues
from nlp.normalize import PLACEHOLDER_RE
from nlp.regional import plain_mandarin
from nlp.role_model import RoleModel, conversation_columns, dense_row, load_role_model

__all__ = [
    "ROLES",
    "ROLE_ZH",
    "RoleClassifier",
    "RoleContext",
    "load_role_classifier",
    "reply_context",
    "role_rules",
]

ROLES: tuple[str, ...] = ("claim", "question", "reaction", "refutation", "notice", "complaint", "other")
# What staff read (console, digest).
ROLE_ZH: dict[str, str] = {
    "claim": "传播说法",
    "question": "询问真假",
    "reaction": "情绪反应",
    "refutation": "辟谣澄清",
    "notice": "官方通知",
    "complaint": "投诉诉求",
    "other": "闲聊",
}


@dataclass(frozen=True)
class RoleContext:
    """Where a post sits: replies inherit their parent's matter, titled web posts are articles."""

    is_reply: bool = False  # replies to / quotes another message
    channel: str = "chat"  # chat | web
    has_title: bool = False  # web posts with a title (forum/news)
    # The conversation: which chat group it was posted in and when (seconds since the epoch). With
    # both, `RoleClassifier.predict` marks posts that follow a matter's message in their group
    # (`follows_matter`): there a short line with no cue of its own reacts to or asks about what
    # came before ("太好了", "那你还取"), where alone it would be chatter.
    group: int | str | None = None
    at: float | None = None
    # Set by the conversation pass (`conversation_context`); callers leave them at their defaults.
    follows_matter: bool = False
    # The role of the nearest matter message before it in the group (within FOLLOW_WINDOW_S): a
    # "+1" after a complaint complains, "那就好" after a refutation is relief.
    prev_role: str = ""
    # How many content bigrams it shares with the group's recent matter messages (within
    # SHARE_WINDOW_S, SHARE_BACK messages): a line that takes up the matter's words is about it;
    # chatter shares nothing.
    shares: int = 0
    conversation: bool = False  # the conversation pass has set the three fields above
    # The message it replies to / quotes: ``key`` names this post and ``parent`` the replied-to one
    # among the posts classified together (the pass reads the parent's role and words there). A
    # parent classified earlier (an earlier batch) is given by the caller as its stored role and
    # words. `reply_context` sets ``parent_role`` (when the parent is in the batch) and
    # ``parent_shares``: a reply to a claim asks or reacts, a reply to chatter chats.
    key: int | str | None = None
    parent: int | str | None = None
    parent_role: str = ""
    parent_words: str = ""
    parent_shares: int = 0


_DEFAULT_CONTEXT = RoleContext()

# Punctuation, spaces and placeholders: what is left is what the post says in words.
_NOT_WORDS_RE = re.compile(r"[\s!?,.:;'\"()\[\]{}<>~\-_/\\|…。、，；：“”‘’《》【】（）·]+")
# A bare enquiry: the whole post asks "is it true?" of whatever it answers.
_BARE_ENQUIRY_RE = re.compile(r"^(?:真的|真的吗|真的么|真的嘛|真的啊|真的呀|真的假的|真假|是真的吗|假的吧|真滴吗)$")
_SPREAD = frozenset({"hearsay", "spread_call"})
# Relief that also tells the group to stop or says the denial is out passes the denial on: "又是谣言
# 镇里已经辟谣了 大家别转了" refutes.
_PASSES_DENIAL_ON_RE = re.compile(r"(?:别|不要|勿|莫)(?:再)?(?:转|传|信)|已经辟谣|辟谣了(?!就好)")
_FORGED_NOTICE = frozenset({"hearsay", "hearsay_chat", "scam"})


def words_of(norm_text: str) -> str:
    """The post's words without punctuation, spaces and placeholders (<EMO>, <URL> ...)."""
    if "<" in norm_text:
        norm_text = PLACEHOLDER_RE.sub("", norm_text)
    return _NOT_WORDS_RE.sub("", norm_text)


def role_rules(norm_text: str, context: RoleContext | None = None) -> tuple[str, float] | None:
    """(role, confidence) where a cue makes the role certain, else None (the model decides).

    The order is the order of precedence: a truth question outranks the reaction around it
    ("真的假的？我家孩子也在中心小学" asks); a denial outranks its official source; an affirmed
    denial word is a claim ("不是谣言，是真的"); a claim's own cues outrank chatter words.
    """
    norm_text = plain_mandarin(norm_text)
    return _rules(norm_text, words_of(norm_text), role_cues(norm_text), context or _DEFAULT_CONTEXT)


def _rules(norm_text: str, words: str, cues: frozenset[str], ctx: RoleContext) -> tuple[str, float] | None:
    if not words:
        return ("other", 0.95)  # an emoji, a picture, a link alone
    if _BARE_ENQUIRY_RE.match(words):
        # Alone and without a question mark, "真的吗" may be surprise at anything; as a reply, or
        # asked, it asks about a claim.
        return ("question", 0.95 if ctx.is_reply or "?" in norm_text else 0.7)
    if "truth_question" in cues:
        if "refutation" in cues and not asks(norm_text):
            return ("refutation", 0.8)  # "有人问是不是真的？经核实不实"
        return ("question", 0.9 if cues & _SPREAD else 0.95)
    if "relief" in cues and len(words) <= 30 and not _PASSES_DENIAL_ON_RE.search(norm_text):
        return ("reaction", 0.8)  # "原来是谣言", "那就好": feeling about a denial, not making one
    if "refutation" in cues:
        return ("refutation", 0.95)
    if "affirm" in cues:
        return ("claim", 0.9)
    if "chat_denial" in cues and not asks(norm_text):
        return ("refutation", 0.85)
    if "notice" in cues:
        # A notice forwarded on hearsay, with pressure to share, or asking for money or personal
        # data through a private channel is a claim (a forged notice: "【…补贴发放通知】…请添加
        # 工作人员微信"); real notices also say "请相互转告".
        if cues & _FORGED_NOTICE or _panics_unsigned(norm_text):
            return ("claim", 0.75)
        if _NAMES_RUMOR_RE.search(norm_text) and not asks(norm_text):
            # An office's word that names, in quotes, what is being passed around ("群里在传“疫苗
            # 每人280元”。跟大家说明：…免费、自愿") answers that rumor, whatever its denial words.
            return ("refutation", 0.85)
        if "matter" in cues or norm_text.startswith("【") or len(words) > 40:
            return ("notice", 0.9)
        # A routine notice about no public matter (homework, a residents' meeting, a cold day) is
        # the group's everyday business: the model weighs it.
    if "source_shrug" in cues and "matter" not in cues and len(words) <= 24 and not asks(norm_text):
        return ("other", 0.75)  # "不清楚 别的家长群里说的": where it was heard, nothing passed on
    if cues & _SPREAD:
        if "hearsay" in cues and ends_asking(norm_text):
            return ("question", 0.75)  # "听说杏林村要封路了？": asks about what was heard
        return ("claim", 0.85)
    if "scam" in cues and "matter" in cues and "骗" not in norm_text and not asks(norm_text):
        return ("claim", 0.7)  # an offer of money for a fee or a link passed on: the scam itself
    if "complaint" in cues:
        return ("complaint", 0.85)
    if "reaction" in cues and len(words) <= 24:
        if ends_asking(norm_text):
            return ("question", 0.7)  # "天哪 那我明天还能去镇上上班吗"
        return ("reaction", 0.85)
    if "chatter" in cues and "matter" not in cues:
        return ("other", 0.9)
    if "matter" in cues and asks(norm_text) and len(words) <= 30:
        return ("question", 0.7)  # "学校明天停课吗？": asks whether the matter holds
    if ends_asking(norm_text) and "chatter" not in cues and len(words) <= 30 and not _alone(ctx):
        # Asked lines in a chat are mostly about the evening's matters ("报警了没？", "小孩能打吗");
        # everyday questions hold chatter words or go to the model's "other". A line known to
        # stand alone in its group ("明天镇上有集吗") is left to the model.
        return ("question", 0.6)
    return None


# A notice opener over a call to panic ("紧急通知！自来水被污染了，千万不要喝，赶紧去买桶装水！")
# with nobody signing it is a rumor wearing a notice's hook: real notices give arrangements and
# say who issues them, they do not tell people to hoard or flee.
_PANIC_RE = re.compile(r"千万(?:不要|别|不能)|赶紧(?:去)?(?:买|囤|抢|跑|撤|转移)|快(?:去)?(?:买|囤|抢)|(?:囤|抢购)(?:起来|点|些)")
_ISSUER_RE = re.compile(r"特此|联系电话|咨询电话|(?:政府|村委会?|居委会?|社区|派出所|卫生院|供电所|水厂|学校|医院)"
                        r"(?:发布|通知|通报|公告|提醒)|(?:村|居)民委员会|人民政府")


# What is passed around, named in quotes: "群里传的“停水三天”", "网传“…”", "网民称“…”".
_NAMES_RUMOR_RE = re.compile(r"(?:网传|在传|流传|传言|传的|转的|有人说|有人称|群众称|网民称|网友称)[^“”]{0,8}“[^”]{4,}”")


def _panics_unsigned(norm_text: str) -> bool:
    return bool(_PANIC_RE.search(norm_text)) and not _ISSUER_RE.search(norm_text)


def _alone(ctx: RoleContext) -> bool:
    """The conversation is known (group and time) and the post follows no matter's message."""
    return ctx.group is not None and ctx.at is not None and not ctx.follows_matter and not ctx.is_reply


def fallback_role(cues: frozenset[str]) -> tuple[str, float]:
    """The role without a model: a line about a matter asserts it; anything else is chatter."""
    if "matter" in cues:
        return ("claim", 0.55)
    if "reaction" in cues:
        return ("reaction", 0.55)
    return ("other", 0.5)


# A chat message follows a matter when one of the last FOLLOW_BACK messages of its group, posted at
# most FOLLOW_WINDOW_S before it, is about a matter (any role but "other"). Group chats interleave
# several conversations, so one look back is too few; minutes later the thread has moved on.
FOLLOW_WINDOW_S = 600.0
FOLLOW_BACK = 3
# Words taken up from the matter: the content bigrams shared with the matter messages among the
# last SHARE_BACK messages of the group within SHARE_WINDOW_S (a reply may come a while later,
# after other lines).
SHARE_WINDOW_S = 1800.0
SHARE_BACK = 8
# Characters that carry no matter of their own: a bigram holding one is not a content bigram.
_FUNCTION_CHARS = frozenset("的了是我你他她它们在也都就还又有没不这那个吧吗呢啊呀哈嘛么哦噢喔嗯哎唉呃啦咋啥谁"
                            "说要去来到和跟会能给让把被就才很太真好一人家")




_FUNCTION_RE = re.compile("[" + re.escape("".join(sorted(_FUNCTION_CHARS))) + "]+")


def content_bigrams(words: str) -> frozenset[str]:
    """The post's content bigrams: adjacent character pairs of its words without function characters
    (single shared characters were measured too: leave-one-township-out 0.799 against 0.806)."""
    out: set[str] = set()
    for run in _FUNCTION_RE.split(words):
        if len(run) > 1:
            out.update(map(operator.add, run, run[1:]))
    return frozenset(out)


@dataclass(frozen=True)
class Conversation:
    """What the conversation pass knows of one post from the messages before it in its group."""

    follows_matter: bool = False
    prev_role: str = ""
    shares: int = 0


_NO_CONVERSATION = Conversation()


def conversation_context(
    contexts: Sequence[RoleContext], roles: Sequence[str], words: Sequence[str] | None = None,
    wanted: Sequence[bool] | None = None,
) -> list[Conversation]:
    """For each post, from the roles (and words) of the messages before it in its chat group:
    whether it follows a matter's message (see FOLLOW_WINDOW_S), that message's role, and how many
    content bigrams it shares with the recent matter messages (see SHARE_WINDOW_S; 0 without
    ``words``). Posts without a group or a time get nothing, and so do posts not ``wanted`` (the
    classifier asks only about the posts its rules left open)."""
    by_group: dict[int | str, list[int]] = {}
    ats: list[float] = [0.0] * len(contexts)
    for i, c in enumerate(contexts):
        if c.group is not None and c.at is not None and c.channel == "chat":
            by_group.setdefault(c.group, []).append(i)
            ats[i] = c.at
    out = [_NO_CONVERSATION] * len(contexts)
    grams: dict[int, frozenset[str]] = {}
    for idx in by_group.values():
        idx.sort(key=lambda i: (ats[i], i))
        for k, i in enumerate(idx):
            if wanted is not None and not wanted[i]:
                continue
            at = ats[i]
            follows, prev_role, shared = False, "", 0
            mine: frozenset[str] | None = None
            for back, j in enumerate(reversed(idx[max(0, k - SHARE_BACK) : k])):
                gap = at - ats[j]
                if gap > SHARE_WINDOW_S:
                    break
                if roles[j] == "other":
                    continue
                if not follows and back < FOLLOW_BACK and gap <= FOLLOW_WINDOW_S:
                    follows, prev_role = True, roles[j]
                if words is not None:
                    if mine is None:
                        mine = content_bigrams(words[i])
                        if not mine:
                            break
                    theirs = grams.get(j)
                    if theirs is None:
                        theirs = grams[j] = content_bigrams(words[j])
                    shared = max(shared, len(mine & theirs))
            if follows or shared:
                out[i] = Conversation(follows, prev_role, shared)
    return out


def _metoo_alone(ctx: RoleContext, cues: frozenset[str]) -> bool:
    """A "me too" line in a chat group with no matter message before it: its standing alone is
    itself evidence (there is nothing to be like), so it gets the second look too."""
    return "metoo" in cues and ctx.group is not None and ctx.at is not None and ctx.channel == "chat"


def follows_matter_flags(contexts: Sequence[RoleContext], roles: Sequence[str]) -> list[bool]:
    """For each post, whether it follows a matter's message in its group (see FOLLOW_WINDOW_S);
    posts without a group or a time never do."""
    return [c.follows_matter for c in conversation_context(contexts, roles)]


def with_conversation(ctx: RoleContext, conv: Conversation, reply: tuple[str, int] | None = None) -> RoleContext:
    """The context with what the conversation pass found (`RoleContext.conversation` set) and, with
    ``reply``, the replied-to message's (role, shared content bigrams)."""
    # built field by field: dataclasses.replace costs more than the rest of the second look
    role, shares = reply if reply is not None else (ctx.parent_role, ctx.parent_shares)
    return RoleContext(ctx.is_reply, ctx.channel, ctx.has_title, ctx.group, ctx.at,
                       conv.follows_matter, conv.prev_role, conv.shares, True,
                       ctx.key, ctx.parent, role, ctx.parent_words, shares)


def reply_context(contexts: Sequence[RoleContext], roles: Sequence[str], words: Sequence[str],
                  wanted: Sequence[bool] | None = None) -> list[tuple[str, int] | None]:
    """For each reply whose parent is known: (the parent's role, content bigrams shared with it).
    The parent is looked up among ``contexts`` by its key (its role from ``roles``), else taken as
    the caller gave it (``parent_role`` / ``parent_words``: stored by an earlier batch); None for
    posts that reply to nothing known or are not ``wanted``."""
    at: dict[int | str, int] = {}
    for i, c in enumerate(contexts):
        if c.key is not None:
            at[c.key] = i
    out: list[tuple[str, int] | None] = [None] * len(contexts)
    for i, c in enumerate(contexts):
        if c.parent is None or (wanted is not None and not wanted[i]):
            continue
        j = at.get(c.parent)
        role, theirs = (roles[j], words[j]) if j is not None and j != i else (c.parent_role, c.parent_words)
        if not role:
            continue
        out[i] = (role, len(content_bigrams(words[i]) & content_bigrams(theirs)) if theirs else 0)
    return out


class RoleClassifier:
    """Rules first, the model for the rest. Picklable; holds only numbers after load."""

    def __init__(self, model: RoleModel | None = None) -> None:
        self.model = model

    def predict(
        self, norm_texts: Sequence[str], contexts: Sequence[RoleContext] | None = None
    ) -> tuple[list[str], np.ndarray]:
        """A role per text (one of ROLES) and a confidence in [0, 1] per text.

        When contexts name a chat group and a time, a second pass asks again about the posts the
        rules left open, knowing what came before them in their group (`conversation_context` on
        the first pass's roles). The model's character n-gram part is computed once; the second
        pass only changes the small dense block.
        """
        if contexts is not None and len(contexts) != len(norm_texts):
            raise ValueError(
                f"RoleClassifier.predict: {len(norm_texts)} texts but {len(contexts)} contexts; "
                "pass one RoleContext per text or none"
            )
        # regional function words in common Mandarin first: the cues and the model read those
        texts = [plain_mandarin(t) if t else "" for t in norm_texts]
        ctxs = list(contexts) if contexts is not None else [_DEFAULT_CONTEXT] * len(texts)
        roles, conf, facts, open_ = self._rule_pass(texts, ctxs)
        undecided = [i for i, o in enumerate(open_) if o]
        if self.model is None:
            for i in undecided:
                roles[i], conf[i] = fallback_role(facts[i][1])
        if not undecided:
            return roles, conf
        known = contexts is not None and any((c.group is not None and c.at is not None) or c.parent is not None
                                             for c in ctxs)
        if self.model is None:
            if known:  # only the rules can change: an asked line that follows a matter
                self._rules_again(texts, ctxs, roles, conf, facts, open_)
            return roles, conf
        sparse = self.model.sparse_logits([texts[i] for i in undecided])
        dense = self._dense(undecided, texts, ctxs, facts)
        first = self.model.predict_logits(sparse, dense)
        for j, i in enumerate(undecided):
            roles[i], conf[i] = first[0][j], float(first[1][j])
        if not known:
            return roles, conf
        ctxs = self._rules_again(texts, ctxs, roles, conf, facts, open_)
        still = [j for j, i in enumerate(undecided) if open_[i] and ctxs[i].conversation]
        if still:
            rows = [undecided[j] for j in still]
            dense2 = dense[still]  # a copy: only the conversation's columns change
            for k, i in enumerate(rows):
                conversation_columns(dense2[k], ctxs[i], len(facts[i][0]))
            again = self.model.predict_logits(sparse[still], dense2)
            for k, i in enumerate(rows):
                roles[i], conf[i] = again[0][k], float(again[1][k])
        return roles, conf

    def _rule_pass(
        self, texts: Sequence[str], ctxs: Sequence[RoleContext]
    ) -> tuple[list[str], np.ndarray, list[tuple[str, frozenset[str]]], list[bool]]:
        """The rules on each post with its context as given: roles ("" where open), confidences,
        each post's (words, cues), and which posts the rules left open."""
        n = len(texts)
        roles: list[str] = [""] * n
        conf = np.zeros(n, dtype=np.float64)
        open_ = [False] * n
        facts: list[tuple[str, frozenset[str]]] = []
        for i, t in enumerate(texts):
            words = words_of(t)
            cues = role_cues(t) if words else frozenset()
            facts.append((words, cues))
            ruled = _rules(t, words, cues, ctxs[i])
            if ruled is not None:
                roles[i], conf[i] = ruled
            else:
                open_[i] = True
        return roles, conf, facts, open_

    def _rules_again(
        self, texts: Sequence[str], ctxs: Sequence[RoleContext], roles: list[str], conf: np.ndarray,
        facts: Sequence[tuple[str, frozenset[str]]], open_: list[bool],
    ) -> list[RoleContext]:
        """The open posts' contexts with their conversation (from the first pass's roles); the rules
        asked again where the post follows a matter (`follows_matter` enters them only there:
        `_alone`). Updates ``roles``, ``conf`` and ``open_`` in place."""
        words = [f[0] for f in facts]
        convs = conversation_context(ctxs, roles, words, open_)
        replies = reply_context(ctxs, roles, words, open_)
        out = list(ctxs)
        for i, o in enumerate(open_):
            c = ctxs[i]
            if not o or c.conversation:
                continue
            if convs[i] is _NO_CONVERSATION and replies[i] is None and not _metoo_alone(c, facts[i][1]):
                continue  # nothing before it: its first look already saw all there is
            out[i] = with_conversation(c, convs[i], replies[i])
            if convs[i].follows_matter:
                ruled = _rules(texts[i], facts[i][0], facts[i][1], out[i])
                if ruled is not None:
                    roles[i], conf[i] = ruled
                    open_[i] = False
        return out

    @staticmethod
    def _dense(rows: Sequence[int], texts: Sequence[str], ctxs: Sequence[RoleContext],
               facts: Sequence[tuple[str, frozenset[str]]]) -> np.ndarray:
        return np.asarray([dense_row(facts[i][1], len(facts[i][0]), texts[i], ctxs[i]) for i in rows],
                          dtype=np.float32)

    def __repr__(self) -> str:
        return f"RoleClassifier(model={self.model!r})"


@lru_cache(maxsize=1)
def load_role_classifier() -> RoleClassifier:
    """The rules plus the shipped role model when one is present (cached)."""
    return RoleClassifier(model=load_role_model())
