"""Incidents (一件事): the matter a post belongs to, built incrementally as posts are analysed.

An incident holds a rumor's claim, its near-copies (stories) and paraphrases, the questions and
reactions it draws, and the refutations and notices about it; or one concern's complaints and
questions. This is the unit staff work on; alerts are raised per incident.

The stage ``incidents`` runs in `yuqing analyze` after ``concerns`` (it uses each post's story,
category and places) and before ``write``. It puts ``incident_id``, ``role`` and
``role_confidence`` into ``batch.post_columns`` (written by the write stage's UPDATE) and inserts
and updates ``incidents`` rows (stats: nlp.incident_stats).

How a post finds its incident (in this order; nothing is ever re-clustered):

1. Chatter (role ``other``: "收到", "哈哈", "晚安", "谁家有梯子") never starts an incident, and
   joins one only through a reply, a story, a staff link, a close content match with a matter
   just talked about in its own group ("800块？咱们村也有吗" under the subsidy scam), or by being
   the line right after a message of the matter ("我也是听人说的 对不起大家"): staff see
   the conversation whole. It then counts only in ``post_count`` and ``role_counts["other"]``:
   never in reach, hourly volume, risk or kind, so chatter can never make a matter alert-worthy.
2. Staff decisions first: a post never joins the incident of a post it ``cannot_link`` to; a
   ``must_link`` partner's incident takes it.
3. Bindings that are stronger than any wording: a reply or quote joins its parent's incident
   (posts.parent_id), a post joins its story's incident (every near-copy of a text is one
   matter), and a post matching a debunk joins the incident holding that debunk's matches.
4. Content: candidate incidents come from an inverted index on the incident's strongest
   character bigrams (IDF-weighted, our own document frequencies: a paraphrase is segmented
   differently from its claim, "水污染"/"污染", "宏达化工厂"/"化工厂", while its bigrams still meet)
   and specific anchors (800元, 中心小学), with capped posting lists, so a
   post's cost does not grow with the number of open incidents. Score = the IDF share of the
   post's bigrams that the incident has (containment: a short paraphrase or question shares
   most of what it says with a matter, not the other way round) + a bonus for
   shared specific anchors + a bonus for following the matter in the same chat group, minus a
   penalty for a matter quiet for days. Named things that conflict (东湾村 vs 柳树村, 800元 vs
   500元) forbid joining, whatever the words share. A claim its words do not place is compared
   by the claim matcher (nlp.claims) with its best few candidates (nlp.incident_paraphrase).
   Being talked about in the post's group counts more within 15 minutes and a little within
   GROUP_MEMORY (90 minutes: a group comes back to its matter), but not for a statement that
   shares a word or two only. A long statement naming a sum of money its candidate lacks needs
   much more (NEW_MONEY_PENALTY: "每户收费200元换报警器" is not the free inspection's notice).
   Hook bigrams ("真的假的", "听说", "有没有正式通知") are left out of the terms: they name no matter.
   A question naming a place ("后山真有狼啊") asks about the one matter of that place talked about
   within PLACE_ASKED in any group. A claim or question still unplaced is compared by the claim
   matcher with its two best candidates (nlp.incident_paraphrase; no new retrieval, so its cost
   does not grow with the open incidents either).
5. Quotes: a refutation or notice that quotes the rumor it answers (网传“…”不实) joins the matter
   its quote fits (QUOTE_SCORE), before its other words are weighed.
   The sender's thread: a sender's next line in the same group within SENDER_MINUTES carries their
   matter on (a forward and then its caption, "社保所通知 转给家里有老人的"; one claim split over
   two lines) while that matter is still the group's latest, unless its words fit another matter
   closely (SENDER_YIELD), it names another village or named thing, tells two matters apart, or
   is a long text of its own (`_sender_thread`; the sender is posts.author, a pseudonym in chat).
6. Conversation: a short question or reaction (few words of its own) right after a message of an
   incident in the same chat group joins that incident ("真的吗？" after the water rumor); a short
   statement within FOLLOW_MINUTES carries the matter on unless it names another place or amount
   ("我亲眼看见救护车拉走的"; a small count, "这两天", "两只羊", is no new amount); a longer one
   (a longer question or reaction too) when it shares a word with it, or up to FOLLOW_BARE_TERMS
   without (a complaint then opens its own concern).
7. Otherwise a post that states something (claim, complaint, notice, refutation; a question that
   names enough of its matter) starts an incident; a bare question or reaction never does.
8. A post that fits two open incidents well merges the younger into the older
   (nlp.incident_merge): in memory at once, in the database after the batch (its posts move, it
   becomes ``merged``; the alert evaluation folds its alert into the older one's). Conflicting
   places or amounts, a staff cannot_link inside either incident, or a post that tells the two
   apart or asks whether they are one ("不是一回事", "是一回事吗") forbid it.

Only incidents active in the last ``incident_window_days`` (setting, 7) are open; older ones go
dormant at the start of a run (a story, reply or staff link to one reopens it).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from core.tables import Incident, Post, utcnow
from core.tips import tipline_group_id
from nlp.anchors import Anchors, anchors_conflict
from nlp.asking import CLAUSE_SPLIT_RE
from nlp.bulk import constant
from nlp.claim_events import BACKGROUND_FAMILIES
from nlp.incident_debunks import link_incidents
from nlp.incident_index import (
    CONVERSATION,
    RECENT_PER_GROUP,
    IncidentIndex,
    _Open,
    _Post,
    _shared,
    event_families_of,
    families_of,
    live,
    pack_terms,
    timedelta_ok,
)
from nlp.incident_merge import APART_CUES, LINKING_ROLES, merge_linked, write_merges
from nlp.incident_paraphrase import keep_claim, load_paraphrase
from nlp.incident_pictures import PictureIncidents
from nlp.incident_stats import (
    STATING_ROLES,
    IncidentStats,
    Member,
    load_members,
    member_order,
    recompute_incidents,
    stat_values,
    stats_of,
    write_stats,
)
from nlp.incident_text import (
    HOOK_GRAMS,
    STARTER_ROLES,
    IncidentText,
    PostFacts,
    anchors_of,
    grams_of,
    quoted_part,
)
from nlp.similarity import match_key

__all__ = [
    "STAGE_NAME",
    "IncidentIndex",
    "incidents_stage",
    "incidents_text_part",
    "recompute_incidents",
]

log = logging.getLogger(__name__)

STAGE_NAME = "incidents"
JOIN_SCORE = 0.3  # content score a post needs to join an incident (see _score)
CHATTER_FOLLOW_MINUTES = 2  # chatter this soon after a matter in its group is part of its conversation
ADJACENT_MINUTES = 1  # ... or this soon, as the very next message after the matter's, sharing no word
CHATTER_MIN_TERMS = 4  # bigrams such a line needs ("收到", "好的" have fewer)
CHATTER_JOIN_SCORE = 0.6  # what a post of role "other" needs, and only in a conversation
NORM_MASS = 80.0  # IDF mass that counts as "all of it" (see _score)
ANCHOR_BONUS = 0.3  # at most, for anchors in common
THING_BONUS = 0.2  # per shared amount or named thing
PLACE_BONUS = 0.08  # per shared place (other than the office's own area)
SPOT_BONUS = 0.15  # per shared street or landmark (a village has many matters, a street few)
CONVERSATION_BONUS = 0.15  # the incident was just talked about in the post's group
MEMORY_BONUS = 0.08  # ... within the last GROUP_MEMORY (the group comes back to its matter)
GROUP_MEMORY = dt.timedelta(minutes=90)
FOLLOW_MINUTES = 5  # a short statement this soon after a matter in its group carries it on
FOLLOW_ROLES = STARTER_ROLES | {"question", "reaction"}  # roles a longer line carries a matter on with
FOLLOW_TERMS = 40  # ... and a longer one up to this many bigrams, when it shares a word with it
FOLLOW_BARE_TERMS = 24  # ... or up to this many when it shares none ("我一个跑县城的朋友说的 高速口都在设卡了")
SENDER_MINUTES = 3  # a sender's next line this soon in the same group carries their matter on (`_sender_thread`)
SENDER_YIELD = 0.6  # ... unless its words fit another matter this well
QUOTE_SCORE = 0.4  # what the quoted part of a post ("网传“…”不实") needs to join a matter by itself
QUIET_PENALTY = ((dt.timedelta(days=5), 0.2), (dt.timedelta(days=2), 0.1))
POST_TERMS = 96  # rarest character bigrams kept per post (a chat line has fewer)
PROBE_TERMS = 8  # a post's rarest bigrams that other posts have too: what it looks up
WIDE_PROBE_TERMS = 24  # ... and what a statement about to found a matter looks up before it does
WIDE_CONTENT = 0.45  # ... and the share of its words a matter found that way must hold (no anchor bonus)
MIN_SHARED = 3  # bigrams in common, unless anchors or the conversation bind too
START_TERMS = 4  # bigrams a post needs to start an incident ("收到了" starts nothing)
QUESTION_START_TERMS = 8  # a question must name its matter to start one ("中心小学真的停课两周吗")
SMALL_POST_TERMS = 14  # "真的吗？", "天哪 我刚烧了一壶水喝了": a line of its own, the conversation decides
EVENT_WINDOW = dt.timedelta(hours=12)  # a statement of the same kind of event at the same place (`_same_event_at_place`)
EVENT_ROLES = frozenset({"claim", "complaint"})
PLACE_ASKED = dt.timedelta(minutes=60)  # a question naming a place asks about its matter of the last hour
PLACE_ASKED_TERMS = 24  # ... when it is short (a longer one is placed by its own words)
SMALL_COUNT = 10  # amounts below this, other than money, are details ("两天", "两只羊"), not telling
NEW_MONEY_PENALTY = 0.45  # a long statement naming a sum its candidate lacks (see _new_money)
MONEY_ROLES = frozenset({"claim", "notice", "complaint"})  # ... of these roles (a refutation names both)
TALK_CONTENT = 0.2  # content a post that could start a matter needs before the conversation counts
_AMOUNT_RE = re.compile(r"^([\d.]+)(.*)$")
QUOTING_ROLES = frozenset({"refutation", "notice", "question", "claim"})  # posts whose quote is the matter
FLUSH_BATCHES = 8  # batches between writes of the incidents they touched (and at the end of a run)
_CHUNK = 500


# ----------------------------------------------------------------------------- placing one post


def _specific(index: IncidentIndex, a: Anchors) -> Anchors:
    """``a`` without the office's own area (named in nearly every post, it binds nothing)."""
    if not a.places or not index.home or not (a.places & index.home):
        return a
    return Anchors(a.places - index.home, a.numbers, a.amounts, a.names)


def _anchor_bonus(index: IncidentIndex, p: _Post, inc: _Open, n_shared: int) -> float:
    """What shared anchors add: a shared amount or named thing (800元, 中心小学) binds strongly;
    a shared street or landmark less, and only when the two do not name different kinds of event
    there (a chlorine leak at the chemical park is not the lorries on its road) and they share a
    word beyond the places' names (of their ``n_shared`` bigrams); a shared village only a little
    (one village has many matters: its water, its bridge)."""
    a, b = p.facts.anchors, inc.anchors
    if not a or not b:
        return 0.0
    things = len(a.amounts & b.amounts) + len(a.names & b.names)
    shared = (a.places & b.places) - index.home
    spots = len(shared & index.spots)
    if spots and (not n_shared or not _words_beyond_places(p, inc, n_shared) or _other_events(p, inc)):
        spots = 0
    return min(ANCHOR_BONUS, THING_BONUS * things + SPOT_BONUS * spots + PLACE_BONUS * (len(shared) - spots))


def _events_of(p: _Post) -> frozenset[str]:
    """The kinds of event ``p`` names (nlp.claim_events), without the background ones."""
    return event_families_of(p.text) - BACKGROUND_FAMILIES


def _other_events(p: _Post, inc: _Open) -> bool:
    """Whether ``p`` and ``inc`` each name kinds of event (nlp.claim_events) and none in common."""
    theirs = families_of(inc) - BACKGROUND_FAMILIES
    if not theirs:
        return False
    mine = _events_of(p)
    return bool(mine) and not (mine & theirs)


def _event_spots(index: IncidentIndex, places: frozenset[str]) -> frozenset[str]:
    """The streets and landmarks of ``places`` where something happens: not the offices that
    answer for it (a power cut on 滨江路 and one in 上坝村 both name the 供电所)."""
    return frozenset(x for x in places & index.spots if not x.endswith(SOURCE_HEADS))


def _same_events(p: _Post, inc: _Open) -> bool:
    """Whether ``p`` and ``inc`` name a kind of event (nlp.claim_events) in common."""
    mine = _events_of(p)
    return bool(mine) and bool(mine & families_of(inc))


def _shares_thing(a: Anchors, b: Anchors) -> bool:
    """Whether the two name the same amount or named thing (800元, 中心小学)."""
    return bool(a and b and ((a.amounts & b.amounts) or (a.names & b.names)))


def _conflicts(index: IncidentIndex, p: _Post, inc: _Open) -> bool:
    if not p.facts.anchors or not inc.anchors:
        return False
    mine = _beyond_sources(p)
    common = mine.places & inc.anchors.places
    specific = common - index.home
    if len(specific) >= 2 or (_event_spots(index, specific) and _same_events(p, inc)):
        # Two places in common, others around them ("化工园 … 周边西滩、港前路一带" of the leak the
        # groups placed at "化工园 … 西滩 … 东口"): one matter told with its surroundings. (The
        # common ones stay: a landmark is also a named thing, "宏锦制衣厂".)
        mine = Anchors(common, mine.numbers, mine.amounts, mine.names)
    return anchors_conflict(mine, inc.anchors, index.parents)


#: Heads of the offices a refutation cites as its source ("问了派出所老杨", "旗气象局说的").
SOURCE_HEADS = ("派出所", "局", "所", "政府", "委会", "办")
# A clause naming who said it or where it was heard: "集上卖水果的阿兰讲的", "镇卫生院的人说的".
_SOURCE_CLAUSE_RE = re.compile(r"(?:讲|说|传|转|听来|看到)的$")


def _source_places(p: _Post) -> frozenset[str]:
    """The places ``p`` names only as where the word came from: those of a clause ending "…讲的",
    "…说的", in a line that says more ("集上卖水果的阿兰讲的 厂门锁哒" answers "你听哪个讲的": 集上
    is no place of the matter). A line that only names a source ("镇卫生院的人说的") says nothing
    of any matter: only its sender's thread carries it on (`_sender_thread`)."""
    if p.source_places is None:
        p.source_places = _find_source_places(p)
    return p.source_places


def _find_source_places(p: _Post) -> frozenset[str]:
    if "的" not in p.text or not p.facts.anchors.places:
        return frozenset()
    out: set[str] = set()
    says_more = False
    for clause in CLAUSE_SPLIT_RE.split(p.text):
        if _SOURCE_CLAUSE_RE.search(clause):
            out |= anchors_of(clause).places
        elif clause:
            says_more = True
    return frozenset(out) if says_more else frozenset()


def _beyond_sources(p: _Post) -> Anchors:
    """``p``'s anchors without the places it names as its source: a clause saying who said it
    (`_source_places`), and the offices a refutation cites ("我打电话问了芦门派出所" denies the van
    rumor at 北栅桥 wherever that rumor's other posts were, 芦门自来水厂)."""
    a = p.facts.anchors
    if not a.places:
        return a
    drop = _source_places(p)
    if p.role == "refutation":
        drop |= {x for x in a.places if x.endswith(SOURCE_HEADS)}
    return Anchors(a.places - drop, a.numbers, a.amounts, a.names) if drop & a.places else a


def _score(index: IncidentIndex, p: _Post, inc: _Open, shared: float, n_shared: int, talked: float) -> float:
    """How well ``p`` fits ``inc`` (joins at JOIN_SCORE); anchors that conflict are checked by
    the caller, on the candidate that would join (`_best`).

    The IDF share of the post's bigrams the incident holds (containment: a paraphrase or a
    question shares most of what it says with its matter, while the matter says much more),
    plus shared specific anchors, plus ``talked``: the bonus for the matter having just been
    talked about in the same group (`_talk_bonus`); minus a penalty for a matter quiet for days.
    Too few bigrams in common count for nothing unless an anchor or the conversation backs them.
    """
    # Containment, normalised by the smaller side (a short question inside a long claim, a short
    # claim quoted whole in a long refutation) and at most NORM_MASS (about 16 distinctive
    # bigrams in common say "the same matter" however long both texts are).
    norm = min(p.mass, inc.mass or p.mass, NORM_MASS)
    content = shared / norm if norm > 0 else 0.0
    overlap = _anchor_bonus(index, p, inc, n_shared)
    if n_shared < MIN_SHARED and not _shares_thing(p.facts.anchors, inc.anchors) and talked < CONVERSATION_BONUS:
        content = 0.0  # a shared place alone is weak: one village has many matters
    elif len(p.terms) > SMALL_POST_TERMS and talked < CONVERSATION_BONUS \
            and _words_beyond_places(p, inc, n_shared) < MIN_SHARED:
        # The bigrams of one place name ("御景华庭": 御景, 景华, 华庭) are one word in common, not
        # three: a new matter at the same compound ("御景华庭要划出实小学区了" after its lift)
        # shares nothing else. A shared named thing or amount does not exempt it, unlike the gate
        # above: name marks are often junk ("明年青禾中学"), and on the tune part exempting them
        # (or amounts alone) alerted one rumor matter fewer and grouped less precisely.
        content = 0.0
    talk = talked if n_shared else 0.0
    if talk and len(p.terms) > SMALL_POST_TERMS and p.role in STARTER_ROLES and content < TALK_CONTENT:
        # A statement of its own that shares a word or two with the matter just talked about is
        # a new matter ("建设路要拆迁了 每平米补偿8000" after the gas inspection on 建设路).
        talk = 0.0
    score = min(content, 1.0) + overlap + talk
    if p.role in MONEY_ROLES and len(p.terms) > SMALL_POST_TERMS and _new_money(p, inc):
        score -= NEW_MONEY_PENALTY
    quiet = p.when - inc.last_seen
    for after, penalty in QUIET_PENALTY:
        if quiet > after:
            score -= penalty
            break
    return score


def _words_beyond_places(p: _Post, inc: _Open, n_shared: int) -> int:
    """``n_shared`` with the shared bigrams inside the post's place names counted as one each."""
    places = p.facts.anchors.places if p.facts.anchors else frozenset()
    if not places:
        return n_shared
    terms = inc.terms
    out = n_shared
    for name in places:
        inside = [t for t in grams_of(match_key(name)) if t in terms]
        out -= max(len(inside) - 1, 0)
    return out


def _talk_bonus(p: _Post, talked: list[tuple[dt.datetime, _Open]]) -> dict[_Open, float]:
    """What having been talked about in ``p``'s group adds to each incident: CONVERSATION_BONUS
    within CONVERSATION ("right after"), MEMORY_BONUS within GROUP_MEMORY (a group comes back to
    its matter an hour later: "老杨是心脏病走的 跟禽流感没关系")."""
    out: dict[_Open, float] = {}
    for w, inc in talked:
        bonus = CONVERSATION_BONUS if p.when - w <= CONVERSATION else MEMORY_BONUS
        out[inc] = max(out.get(inc, 0.0), bonus)
    return out


def _bound(index: IncidentIndex, p: _Post, forbidden: set[_Open], lookups: _Lookups) -> tuple[_Open | None, str]:
    """The incident a staff link, reply, story or debunk binds ``p`` to (before any wording)."""
    for q in sorted(index.must.get(p.id, ())):
        inc = index.by_post.get(q) or lookups.partner.get(q)
        if inc is not None and (inc := live(inc)) not in forbidden:
            return inc, "must_link"
    if p.parent_id is not None:
        inc = index.by_post.get(p.parent_id) or lookups.parent.get(p.parent_id)
        if inc is not None and (inc := live(inc)) not in forbidden:
            return inc, "reply"
    if p.story_id is not None:
        inc = index.by_story.get(p.story_id) or lookups.story.get(p.story_id)
        if inc is not None and (inc := live(inc)) not in forbidden:
            return inc, "story"
    if p.debunk_id is not None and p.role not in ("refutation", "notice", "other"):
        inc = index.by_debunk.get(p.debunk_id)
        if inc is not None and (inc := live(inc)) not in forbidden and not _conflicts(index, p, inc):
            return inc, "debunk"
    return None, ""


def _second_look(index: IncidentIndex, p: _Post, forbidden: set[_Open],
                 ranked: list[tuple[float, int, _Open, int]]) -> _Open | None:
    """A statement that found no matter looks again through more of its bigrams before it founds
    one. The probe takes a post's rarest bigrams, and a matter's own words stop being rare as it
    spreads: "自来水千万不能直接烧了喝！自来水加氯会生成致癌物" probed 直接, 反而, 更毒 and never
    met the claim about chlorine in tap water it retells. Found by common words, the matter must
    hold much of what the post says (WIDE_CONTENT), not only share its place or a number: on the
    tune part, a lower bar put one in three of these posts into a neighbouring matter."""
    seen = {r[2] for r in ranked}
    wide = [c for c in index.candidates(p, probe_terms=p.wide) if c[0] not in seen]
    worded = [r for r in _ranked(index, p, wide, {}, forbidden) if _content(p, r[2]) >= WIDE_CONTENT]
    return _best(index, p, worded, JOIN_SCORE) if worded else None


def _can_start(p: _Post) -> bool:
    if p.role in STARTER_ROLES:
        return len(p.terms) >= START_TERMS
    if p.role == "question":
        return len(p.terms) >= QUESTION_START_TERMS
    return False


@dataclass
class _Lookups:
    """Incidents of a batch's parents, stories and staff-linked partners found in the database."""

    parent: dict[int, _Open]
    story: dict[int, _Open]
    partner: dict[int, _Open]
    pictures: PictureIncidents | None = None  # image id -> incident (nlp.incident_pictures)


def _ranked(index: IncidentIndex, p: _Post, scored: list[tuple[_Open, float, int]], talk: dict[_Open, float],
            forbidden: set[_Open]) -> list[tuple[float, int, _Open, int]]:
    """The candidates by score, best first: (score, rank, incident, bigrams in common)."""
    return sorted(((_score(index, p, inc, shared, n, talk.get(inc, 0.0)), k, inc, n)
                   for k, (inc, shared, n) in enumerate(scored) if inc not in forbidden),
                  key=lambda x: (-x[0], x[1]))


def _best(index: IncidentIndex, p: _Post, ranked: list[tuple[float, int, _Open, int]], need: float) -> _Open | None:
    """The best-scoring candidate at ``need`` or above whose anchors do not conflict with ``p``'s
    (checked only on the candidates that would join: the check costs more than the score)."""
    for score, _k, inc, _n in ranked:
        if score < need:
            return None
        if not _conflicts(index, p, inc):
            return inc
    return None


def _content(p: _Post, inc: _Open) -> float:
    """The content part of `_score`: the IDF share of ``p``'s bigrams ``inc`` holds."""
    _inc, shared, _n = _shared(p, inc)
    norm = min(p.mass, inc.mass or p.mass, NORM_MASS)
    return shared / norm if norm > 0 else 0.0


def _fit(ranked: list[tuple[float, int, _Open, int]], inc: _Open) -> float:
    """``inc``'s score among ``ranked`` (0 when it is not a candidate)."""
    return next((score for score, _k, cand, _n in ranked if cand is inc), 0.0)


def _conversation(index: IncidentIndex, p: _Post, forbidden: set[_Open]) -> _Open | None:
    """A short line right after a matter in its group: a question or reaction ("真的吗？",
    "天哪") belongs to the latest matter talked about; any other short line ("这可咋整 结核会
    传染的") to the latest one it shares a bigram with. A longer statement only carries on the
    matter just before it ("我表姐在化工厂上班说的，内部消息" a few minutes after the water rumor)."""
    recent = [inc for _w, inc in index.recent_in_group(p) if inc not in forbidden and not _conflicts(index, p, inc)]
    if not recent:
        return None
    if len(p.terms) > SMALL_POST_TERMS:
        w0 = next(w for w, i in index.recent_in_group(p) if i is recent[0])
        # A longer question or reaction too ("那到底是不是真的欠费了呀 今晚要是停电…" a minute
        # after the scam text): it answers what was just said.
        if p.role in FOLLOW_ROLES and p.when - w0 <= dt.timedelta(minutes=FOLLOW_MINUTES) \
                and not _names_new_thing(index, p, recent[0]) \
                and ((len(p.terms) <= FOLLOW_BARE_TERMS and p.role != "complaint")
                     or any(t in recent[0].terms for t in p.terms)):
            # A complaint sharing no word with the matter before it opens a concern of its own
            # ("就是 我上街赶场 一脚的泥巴" after the rumor about the school gate).
            return recent[0]
        return None
    if p.role in ("question", "reaction"):
        return recent[0]
    if p.role == "other":
        # A line of the conversation itself, within a few minutes of the matter in its group,
        # saying something (not "收到", "好的") and sharing a word with it ("停课了孩子谁管"
        # after the school rumor): being next to a matter is not enough, or "今晚吃饺子还是面条"
        # after a notice would join the notice.
        last = index.group_recent.get(p.group_id or -1, [])
        if CHATTER_FOLLOW_MINUTES and last and len(p.terms) >= CHATTER_MIN_TERMS and last[-1][1] is recent[0] \
                and p.when - last[-1][0] <= dt.timedelta(minutes=CHATTER_FOLLOW_MINUTES) \
                and ((index.group_last.get(p.group_id or -1) is recent[0]
                      and p.when - last[-1][0] <= dt.timedelta(minutes=ADJACENT_MINUTES))
                     or any(t in recent[0].terms for t in p.terms)):
            # ... or the message just before it in its group is of the matter ("我也是听人说的
            # 对不起大家" right after the refutation): a reply in all but the button.
            return recent[0]
        return None
    w0 = next(w for w, i in index.recent_in_group(p) if i is recent[0])
    if p.when - w0 <= dt.timedelta(minutes=FOLLOW_MINUTES) and not _names_new_thing(index, p, recent[0]):
        # "我亲眼看见救护车拉走的", "我家也没水 饭都做不了": a short statement right after a
        # matter in its group carries it on, unless it names a place or amount the matter lacks.
        return recent[0]
    for inc in recent:
        if any(t in inc.terms for t in p.terms):
            return inc
    return None


def _sender_thread(index: IncidentIndex, p: _Post, forbidden: set[_Open]) -> _Open | None:
    """The matter ``p``'s sender was just talking about in its group: one person forwards a
    notice and then its caption ("社保所通知 转给家里有老人的"), or splits one claim over two lines
    ("说是修路欠的钱要收回来 收费站都盖好了 就在岔路口那" after his toll claim). Their next line
    within SENDER_MINUTES carries it on, while that matter is still the latest one talked about in
    the group (someone else's new matter in between draws the replies: "翻一倍？那还卖个啥"), unless
    it names another village, street or named thing (`_thread_conflicts`), tells two matters apart
    ("不是一回事"), or is a text of its own sharing little with the matter. A new
    landmark or sum is a detail the same person adds ("就在岔路口那", "一家五口两千块"), not the
    new matter it would be from someone else (`_names_new_thing`)."""
    if p.group_id is None or p.sender is None or p.role == "other":
        # Chatter keeps its own rule (the line right after a matter, `_conversation`): let through
        # here too, the tune part's chatter joined matters it is not part of.
        return None
    last = index.sender_last.get((p.group_id, p.sender))
    if last is None or not timedelta_ok(p.when - last[0], dt.timedelta(minutes=SENDER_MINUTES)):
        return None
    inc = live(last[1])
    recent = index.group_recent.get(p.group_id)
    if not recent or live(recent[-1][1]) is not inc or inc in forbidden or (inc.id is not None
                                                                           and inc.id not in index.open):
        return None
    if len(p.terms) > FOLLOW_TERMS or (len(p.terms) > FOLLOW_BARE_TERMS and not _CAPTION_RE.match(p.text)
                                       and _content(p, inc) < TALK_CONTENT):
        # A text of its own is the sender's next matter unless its words say otherwise (the
        # village secretary's insurance notice three minutes after his word on the scam text).
        return None
    if _thread_conflicts(index, p, inc) or any(c in p.text for c in APART_CUES):
        return None
    return inc


# A forwarder's caption under what they just forwarded: "转给老同事们看看，我们喝了几十年自来水…"
# says in its own words why it was passed on, sharing few of the forward's.
_CAPTION_RE = re.compile(r"^(?:转给|转发给|转发一下|转一下|转个|给大家转|转过来)")


def _thread_conflicts(index: IncidentIndex, p: _Post, inc: _Open) -> bool:
    """Whether ``p`` names another village, street or named thing than its sender's matter
    (`_sender_thread`). A landmark is where the news came from or a detail ("供电所的人说的",
    "就在岔路口那"), and a sum the sender's own arithmetic ("一家五口两千块" after "每人400元"):
    neither moves the same person to another matter."""
    a = p.facts.anchors
    if not a or not inc.anchors:
        return False
    mine = Anchors(a.places - index.landmarks, a.numbers, frozenset(), a.names)
    return anchors_conflict(mine, inc.anchors, index.parents)


def _asked_about_place(index: IncidentIndex, p: _Post, ranked: list[tuple[float, int, _Open, int]]) -> _Open | None:
    """A question or reaction naming a specific place ("后山真有狼啊", "后山狼的事有人知道不") asks
    about the one matter of that place talked about within PLACE_ASKED (in any group), when its
    candidates hold exactly one such matter and it shares a bigram with it: a village has many
    matters over a week, rarely two in one hour. A long question says what it asks about in words
    of its own, and is placed by them ("我听隔壁班家长说明年御景华庭要划出实小学区了 改去城东三小 是真的吗"
    is not about the lift that broke down at 御景华庭 that evening)."""
    places = _specific(index, p.facts.anchors).places
    if not places or len(p.terms) > PLACE_ASKED_TERMS:
        return None
    near = [inc for _s, _k, inc, n in ranked
            if n and places & inc.anchors.places and abs(p.when - inc.last_seen) <= PLACE_ASKED]
    near = list(dict.fromkeys(live(inc) for inc in near))
    if len(near) != 1 or _conflicts(index, p, near[0]):
        return None
    return near[0]


def _same_event_at_place(index: IncidentIndex, p: _Post, ranked: list[tuple[float, int, _Open, int]]) -> _Open | None:
    """A statement naming a specific place and a kind of event ("下坝的垃圾有人管没管啊") joins the
    one matter of its candidates that names the same place and the same kind of event within
    EVENT_WINDOW ("下坝那边的垃圾桶已经满出来一个多星期了"), however differently the two are worded: one
    place has many matters, rarely two of one kind in an evening."""
    places = _specific(index, p.facts.anchors).places
    if not places:
        return None
    near = [inc for _s, _k, inc, n in ranked
            if n and places & inc.anchors.places and abs(p.when - inc.last_seen) <= EVENT_WINDOW]
    if not near:
        return None  # (the kinds of event are read only when a candidate shares a place)
    families = _events_of(p)
    near = list(dict.fromkeys(live(inc) for inc in near if families & families_of(inc)))
    if len(near) != 1 or _conflicts(index, p, near[0]):
        return None
    return near[0]


def _names_new_thing(index: IncidentIndex, p: _Post, inc: _Open) -> bool:
    """Whether ``p`` names a place or a telling amount ``inc`` does not (a new matter, not its
    follow-up). A small count ("这两天", "叼走两只羊", "三吨煤") is a detail a follow-up adds, and
    the place of a line naming where the word came from ("集上卖水果的阿兰讲的 厂门锁哒" after "你听
    哪个讲的") is its source, not a new matter's place."""
    a = _specific(index, p.facts.anchors)
    new_places = a.places - inc.anchors.places
    if new_places:
        new_places -= _source_places(p)
    return bool(new_places or (_telling(a.amounts) - inc.anchors.amounts))


def _telling(amounts: frozenset[str]) -> frozenset[str]:
    """The amounts that tell matters apart: money, and quantities of ten or more."""
    out = []
    for x in amounts:
        m = _AMOUNT_RE.match(x)
        if m is None:
            continue
        if m.group(2) == "元" or float(m.group(1)) >= SMALL_COUNT:
            out.append(x)
    return frozenset(out)


def _new_money(p: _Post, inc: _Open) -> bool:
    """Whether ``p`` names a sum of money and ``inc`` names none of its sums: "每户收费200元" is
    another matter than a free inspection's notice, "补贴800元" than "补贴500元"."""
    mine = {x for x in p.facts.anchors.amounts if x.endswith("元")}
    return bool(mine) and not (mine & inc.anchors.amounts)


def place(index: IncidentIndex, p: _Post, lookups: _Lookups) -> tuple[_Open | None, str]:
    """The incident ``p`` joins or founds, and why (a word for the run's counts); None: none.
    The group's last message is remembered (`_conversation` reads it for the chatter after it)."""
    inc, why = _place(index, p, lookups)
    if p.group_id is not None:
        # Chatter placed next to a matter does not pass it on to the line after it.
        index.group_last[p.group_id] = inc if p.role != "other" else None
        if inc is not None and p.sender is not None:
            index.sender_last[(p.group_id, p.sender)] = (p.when, inc)
    return inc, why


def _place(index: IncidentIndex, p: _Post, lookups: _Lookups) -> tuple[_Open | None, str]:
    """The incident ``p`` joins or founds, and why; None: none.

    Chatter (role ``other``) joins only through a reply, a story, a staff link, or a close match
    in the conversation it is part of, and never starts an incident. A post that binds two open
    incidents of one matter merges them (`nlp.incident_merge`).
    """
    if index.paraphrase is not None:
        index.paraphrase.tick()
    forbidden = {live(inc) for q in index.cannot.get(p.id, ())
                 if (inc := index.by_post.get(q) or lookups.partner.get(q))}
    inc, why = _bound(index, p, forbidden, lookups)
    ranked: list[tuple[float, int, _Open, int]] = []
    # A near-copy (story) says what a member already says: it cannot tie two matters together.
    if inc is None or (p.role in LINKING_ROLES and why != "story"):
        if p.role == "other":
            # Chatter is only ever compared with the matters of its own conversation.
            recent = [i for _w, i in index.recent_in_group(p)]
            ranked = _ranked(index, p, [_shared(p, i) for i in recent], _talk_bonus(p, index.recent_in_group(p)),
                             forbidden)
        else:
            talked = index.recent_in_group(p, GROUP_MEMORY)
            ranked = _ranked(index, p, index.candidates(p, [i for _w, i in talked]), _talk_bonus(p, talked),
                             forbidden)
    if inc is None and p.quote is not None:
        # A refutation or notice quoting the rumor it answers (网传“盐和大米将大幅涨价”不实):
        # the quote, not the rest of the text (which may name the true story), says which
        # matter it is about.
        q = p.quote
        quoted = _best(index, q, _ranked(index, q, index.candidates(q), {}, forbidden), QUOTE_SCORE)
        if quoted is not None:
            inc, why = quoted, "quote"
    if inc is None:
        best = _best(index, p, ranked, CHATTER_JOIN_SCORE if p.role == "other" else JOIN_SCORE)
        own = _sender_thread(index, p, forbidden)
        if own is not None and best is not own and (best is None or _fit(ranked, best) < SENDER_YIELD):
            # The sender carries their matter on; only a close fit to another matter says otherwise.
            inc, why = own, "sender"
        elif best is not None:
            inc, why = best, "content"
    if inc is None and p.role in ("question", "reaction") and ranked:
        inc = _asked_about_place(index, p, ranked)
        why = "place"
    if inc is None and p.role in EVENT_ROLES and ranked:
        inc = _same_event_at_place(index, p, ranked)
        why = "event"
    if inc is None and index.paraphrase is not None and index.paraphrase.wants(p) and ranked:
        # A claim in other words ("大米要涨价了 赶紧买几袋" for "下个月盐和大米都要大涨价"): the claim
        # matcher on the candidates its words found (nlp.incident_paraphrase).
        for _prob, cand in index.paraphrase.best(p, ranked):
            if not _conflicts(index, p, cand):
                inc, why = cand, "paraphrase"
                break
    if inc is None and lookups.pictures is not None:  # its words place it nowhere: the picture it shows
        inc = lookups.pictures.incident_of(index, p.id, forbidden)
        why = "picture"  # the same picture (nlp.incident_pictures)
    if inc is None and len(p.terms) <= FOLLOW_TERMS:
        inc = _conversation(index, p, forbidden)
        why = "conversation"
    if inc is None and p.role in STARTER_ROLES and len(p.wide) > len(p.probe) and _can_start(p):
        inc = _second_look(index, p, forbidden, ranked)
        why = "wide"
    if inc is not None:
        inc = live(inc)
        if why == "quote" and ranked and all(live(r[2]) is not inc for r in ranked):
            # Placed by its quote, the post's own words never looked this incident up: their fit
            # is measured all the same, so a refutation quoting one part of a matter and naming
            # another ties the two (`merge_linked`).
            talked = index.recent_in_group(p, GROUP_MEMORY)
            ranked = sorted(ranked + _ranked(index, p, [_shared(p, inc)], _talk_bonus(p, talked), forbidden),
                            key=lambda x: (-x[0], x[1]))
        index.absorb(inc, p, copy=why == "story")
        keep_claim(inc, p)
        if ranked and p.role in LINKING_ROLES:
            merged = merge_linked(index, p, inc, ranked)
            if merged is not None:
                return merged, why
        return inc, why
    if _can_start(p):
        inc = index.found(p)
        keep_claim(inc, p)
        return inc, "new"
    return None, "chatter" if p.role == "other" else "alone"


# ----------------------------------------------------------------------------- the stage


def incidents_text_part(ctx: Any) -> IncidentText:
    """The stage's per-text part (roles, anchors, cues, bigrams), run with the text stage."""
    part = ctx.state.get("incidents_text")
    if part is None:
        part = ctx.state["incidents_text"] = IncidentText()
    return cast(IncidentText, part)


def _index(ctx: Any) -> IncidentIndex:
    index = ctx.state.get("incidents_index")
    if index is None:
        from core.settings import get_settings

        index = ctx.state["incidents_index"] = IncidentIndex.load(
            ctx.session, now=ctx.now, window_days=get_settings().incident_window_days
        )
        index.paraphrase = _paraphrase(ctx)
    return cast(IncidentIndex, index)


def _paraphrase(ctx: Any) -> Any:
    """The run's paraphrase signal (the claim matcher itself is loaded once per process)."""
    if "incidents_paraphrase" not in ctx.state:
        ctx.state["incidents_paraphrase"] = load_paraphrase()
    return ctx.state["incidents_paraphrase"]


_HOOK_ARRAY = np.fromiter(sorted(HOOK_GRAMS), dtype=np.int64)


def _post_terms(index: IncidentIndex, facts: Sequence[PostFacts], fresh: Sequence[bool]
                ) -> tuple[list[list[int]], list[list[float]], list[list[tuple[int, float]]],
                           list[list[tuple[int, float]]]]:
    """Each post's rarest bigrams (rarest first) with their IDF, its probe: the rarest of those
    that some other post has too, and its wide probe: more of them. Posts analysed for the first
    time are counted into the frequencies first (at a cold start there is no history; a
    re-analysed post is not counted twice)."""
    index.grams.add([f.grams for f, new in zip(facts, fresh, strict=True) if new])
    lens = np.fromiter((len(f.grams) for f in facts), dtype=np.int64, count=len(facts))
    flat = np.fromiter((g for f in facts for g in f.grams), dtype=np.int64, count=int(lens.sum()))
    idf = index.grams.idf(flat)
    owner = np.repeat(np.arange(len(facts)), lens)
    # Hook bigrams ("真的假的", "听说") say nothing about which matter: left out. The rest of each
    # post by IDF, highest first, equal IDF in the post's own order (what a stable sort gives),
    # cut at POST_TERMS: one sort for the whole batch rather than one per post.
    at = np.flatnonzero(~np.isin(flat, _HOOK_ARRAY))
    at = at[np.lexsort((at, -idf[at], owner[at]))]
    starts = np.searchsorted(owner[at], np.arange(len(facts) + 1))
    at = at[np.arange(len(at)) - starts[owner[at]] < POST_TERMS]
    gram_list, idf_list = flat[at].tolist(), idf[at].tolist()
    bounds = list(itertools.pairwise(np.searchsorted(owner[at], np.arange(len(facts) + 1)).tolist()))
    terms = [gram_list[lo:hi] for lo, hi in bounds]
    idfs = [idf_list[lo:hi] for lo, hi in bounds]
    # The probe: the first PROBE_TERMS of those that some other post has too.
    # (and the first WIDE_PROBE_TERMS, for a statement's second look: `_second_look`).
    seen = at[index.grams.df[flat[at]] > 1.5]
    starts = np.searchsorted(owner[seen], np.arange(len(facts) + 1))
    seen = seen[np.arange(len(seen)) - starts[owner[seen]] < WIDE_PROBE_TERMS]
    pairs = list(zip(flat[seen].tolist(), idf[seen].tolist(), strict=True))
    wides = [pairs[lo:hi] for lo, hi in itertools.pairwise(np.searchsorted(owner[seen], np.arange(len(facts) + 1)).tolist())]
    return terms, idfs, [w[:PROBE_TERMS] for w in wides], wides


def _quote_post(index: IncidentIndex, p: _Post) -> _Post | None:
    """The part of a stating post it quotes (网传“盐和大米将大幅涨价”不实, 《关于全面禁止散煤取暖的
    紧急通知》系伪造) as a post of its own, or None (no quote, or too short to say anything)."""
    if p.role not in QUOTING_ROLES:
        return None
    quote = quoted_part(p.text)
    if not quote:
        return None
    key = match_key(quote)
    grams = list(grams_of(key))
    if len(grams) < START_TERMS:
        return None
    idf = index.grams.idf(np.asarray(grams, dtype=np.int64)).tolist()
    seen = (index.grams.df[np.asarray(grams, dtype=np.int64)] > 1.5).tolist()
    order = sorted(range(len(grams)), key=idf.__getitem__, reverse=True)
    facts = p.facts._replace(anchors=anchors_of(quote, key))
    return _Post(p.id, p.when, p.group_id, None, None, None, p.role, facts, [grams[j] for j in order],
                 [idf[j] for j in order], quote, [(grams[j], idf[j]) for j in order if seen[j]][:PROBE_TERMS])


def _lookup(session: Session, column: Any, values: Iterable[int], key: Any) -> dict[int, int]:
    """``key -> posts.incident_id`` for posts whose ``column`` is in ``values`` (one per key)."""
    out: dict[int, int] = {}
    vals = sorted(set(values))
    t = Post.__table__
    for start in range(0, len(vals), _CHUNK):
        for k, iid in session.execute(
            select(key, t.c.incident_id).where(column.in_(vals[start : start + _CHUNK]), t.c.incident_id.is_not(None))
        ):
            out.setdefault(k, iid)
    return out


def _previous(session: Session, ids: list[int]) -> tuple[dict[int, int], set[int]]:
    """Of the batch's posts analysed before: their incident (if any), and which they are."""
    t = Post.__table__
    incident: dict[int, int] = {}
    seen: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        for pid, iid in session.execute(
            select(t.c.id, t.c.incident_id).where(t.c.id.in_(ids[start : start + _CHUNK]), t.c.role.is_not(None))
        ):
            seen.add(pid)
            if iid is not None:
                incident[pid] = iid
    return incident, seen


def _recent_conversations(session: Session, index: IncidentIndex, rows: Sequence[Any]) -> None:
    """The matters talked about in the batch's groups just before its posts, by posts analysed in
    earlier runs (`yuqing run` analyses every minute: "真的吗？" often arrives in the run after
    its claim). Fills ``index.group_recent`` for the groups this run has not seen yet."""
    t = Post.__table__
    groups = sorted({r.group_id for r in rows if r.group_id is not None and r.group_id not in index.group_recent})
    if not groups:
        return
    lo = min(r.when for r in rows) - GROUP_MEMORY
    hi = max(r.when for r in rows)
    batch = {r.id for r in rows}
    when = func.coalesce(t.c.published_at, t.c.collected_at)
    found: dict[int, list[tuple[dt.datetime, int]]] = {}
    senders: dict[tuple[int, str], tuple[dt.datetime, int]] = {}
    for start in range(0, len(groups), _CHUNK):
        for pid, gid, iid, at, author in session.execute(
            select(t.c.id, t.c.group_id, t.c.incident_id, when, t.c.author)
            .where(t.c.group_id.in_(groups[start : start + _CHUNK]), t.c.incident_id.is_not(None),
                   t.c.role != "other", t.c.published_at >= lo, t.c.published_at <= hi)
        ):
            if pid not in batch:
                found.setdefault(gid, []).append((at, iid))
                if author is not None and (gid, author) not in index.sender_last \
                        and ((gid, author) not in senders or senders[(gid, author)][0] < at):
                    senders[(gid, author)] = (at, iid)  # the sender's thread (`_sender_thread`)
    index.reopen(session, [iid for items in found.values() for _at, iid in items])
    for key, (at, iid) in senders.items():
        if iid in index.open:
            index.sender_last[key] = (at, index.open[iid])
    for gid, items in found.items():
        recent: list[tuple[dt.datetime, _Open]] = []
        for at, iid in sorted(items, key=lambda x: x[0]):
            inc = index.open.get(iid)
            if inc is not None:
                recent = [(w, i) for w, i in recent if i is not inc] + [(at, inc)]
        index.group_recent[gid] = recent[-RECENT_PER_GROUP:]


def _lookups(session: Session, index: IncidentIndex, rows: Sequence[Any], story_ids: Sequence[int | None]) -> _Lookups:
    t = Post.__table__
    ids = {r.id for r in rows}
    parents = [r.parent_id for r in rows if r.parent_id is not None and r.parent_id not in index.by_post
               and r.parent_id not in ids]
    stories = [s for s in story_ids if s is not None and s not in index.by_story]
    partners = [q for i in ids for q in (*index.must.get(i, ()), *index.cannot.get(i, ())) if q not in index.by_post]
    parent_iid = _lookup(session, t.c.id, parents, t.c.id)
    story_iid = _lookup(session, t.c.story_id, stories, t.c.story_id)
    partner_iid = _lookup(session, t.c.id, partners, t.c.id)
    index.reopen(session, [*parent_iid.values(), *story_iid.values(), *partner_iid.values()])
    return _Lookups(
        {k: index.open[v] for k, v in parent_iid.items() if v in index.open},
        {k: index.open[v] for k, v in story_iid.items() if v in index.open},
        {k: index.open[v] for k, v in partner_iid.items() if v in index.open},
    )


def _fake_notice(f: PostFacts, hit: Any) -> PostFacts:
    """A "notice" that states a claim of the debunk library is the rumor dressed as a notice (a
    fake 燃气公司 notice charging 200元 for an alarm, a forged 红头文件): it spreads the claim, so it
    is a claim. A refutation matching its debunk restates what it denies and stays one."""
    return f._replace(role="claim") if f.role == "notice" and hit is not None else f


def incidents_stage(ctx: Any, batch: Any) -> None:
    """nlp.pipeline stage: each post's role and incident; incidents founded and their stats.

    Give the Stage ``finish=incidents_finish`` too (nlp.pipeline's default does): the rows of
    incidents touched since the last flush are written there."""
    session: Session = ctx.session
    index = _index(ctx)
    t0 = time.perf_counter()
    rows = batch.rows
    facts: list[PostFacts] | None = batch.extra(STAGE_NAME)
    if facts is None:
        facts = incidents_text_part(ctx)(batch.norm, [r.context for r in rows])
    debunks = batch.debunks
    facts = [_fake_notice(f, hit) for f, hit in zip(facts, debunks, strict=True)]
    ids = [r.id for r in rows]
    before, seen = _previous(session, ids)
    terms, idfs, probes, wides = _post_terms(index, facts, [i not in seen for i in ids])
    story_ids = batch.story_ids or [r.story_id for r in rows]
    lookups = _lookups(session, index, rows, story_ids)
    pictures = lookups.pictures = ctx.state.setdefault("incidents_pictures", PictureIncidents())
    pictures.prepare(session, index, ids)
    _recent_conversations(session, index, rows)
    order = sorted(range(len(rows)), key=lambda i: (rows[i].when, rows[i].id))
    placed: list[_Open | None] = [None] * len(rows)
    calls, skipped = (index.paraphrase.calls, index.paraphrase.skipped) if index.paraphrase is not None else (0, 0)
    for i in order:
        r, hit = rows[i], debunks[i]
        p = _Post(r.id, r.when, r.group_id, r.parent_id, story_ids[i], hit.debunk_id if hit else None,
                  facts[i].role, facts[i], terms[i], idfs[i], batch.norm[i], probes[i],
                  wide=wides[i], sender=r.author)
        p.quote = _quote_post(index, p)
        placed[i], why = place(index, p, lookups)
        pictures.note(r.id, placed[i])
        ctx.count(f"incident_{why}")
    placed = [None if inc is None else live(inc) for inc in placed]
    if index.paraphrase is not None:
        ctx.count("incident_matcher_calls", index.paraphrase.calls - calls)
        ctx.count("incident_matcher_skipped", index.paraphrase.skipped - skipped)
    if index.merges:
        ctx.count("incidents_merged", len(index.merges))
        _move_members(_members(ctx), index)
        for iid in write_merges(session, index, ctx.now):
            if iid in index.open:
                index.open[iid].stats = None  # recounted below, with the posts it received
    ctx.timings["incidents.group"] = ctx.timings.get("incidents.group", 0.0) + time.perf_counter() - t0
    _fold_stats(ctx, batch, index, placed, facts, before, order)
    if index.grams.should_save(len(rows)):
        index.grams.save(session)
    batch.post_columns["role"] = [f.role for f in facts]
    batch.post_columns["role_confidence"] = [round(float(f.confidence), 4) for f in facts]
    batch.post_columns["incident_id"] = [inc.id if inc is not None else None for inc in placed]


def _fold_stats(ctx: Any, batch: Any, index: IncidentIndex, placed: list[_Open | None], facts: list[PostFacts],
                before: dict[int, int], order: list[int]) -> None:
    """Fold the batch's posts into their incidents' stats and write the incidents.

    An incident touched for the first time in the run, or one a re-analysed post left (or
    re-enters), is recounted from the database without the batch's posts; then the batch is
    folded in, so nothing is counted twice.
    """
    session: Session = ctx.session
    rows = batch.rows
    ids = [r.id for r in rows]
    left = set(before.values())
    index.reopen(session, left)
    # In the order they were placed (not a set's): new incidents get their ids in that order, and
    # ids decide which incident survives a later merge, so runs of the same posts agree.
    touched: list[_Open] = list(dict.fromkeys(inc for inc in (placed[i] for i in order) if inc is not None))
    reload = {inc.id for inc in touched if inc.stats is None and inc.id is not None}
    reload |= {i for i in left if i in index.open}
    members = _members(ctx)
    batch_ids = set(ids)
    for iid in left & members.keys():  # the batch's posts are folded in again below
        members[iid] = [m for m in members[iid] if m.post_id not in batch_ids]
    if reload:
        unknown = sorted(reload - members.keys())
        if unknown:
            members.update(load_members(session, unknown, exclude_posts=ids, model_version_id=ctx.model_version_id))
        for iid in sorted(reload):
            if iid in index.open:
                # What load_stats would count from the database, from the run's own copy of it.
                mine = sorted((m for m in members[iid] if m.post_id not in batch_ids), key=member_order)
                members[iid] = mine
                index.open[iid].stats = stats_of(mine)
    cols = batch.post_columns
    cats = cols.get("category") or [None] * len(rows)
    places = cols.get("places") or [[] for _ in rows]
    local = cols.get("is_local") or [None] * len(rows)
    proba, raw, debunks, norm = batch.proba, batch.raw_proba, batch.debunks, batch.norm
    tipline = tipline_group_id(session)
    # What the stats read of a post is kept for the run (`_members`), so no more than that: the facts of
    # stating posts without their bigrams, no text for chatter (never an incident's title), no empty lists.
    lite = [PostFacts(f.role, f.confidence, _slim(f.anchors), f.hearsay, f.urgent) if f.role in STATING_ROLES
            else None for f in facts]
    founded: dict[_Open, list[Member]] = {}
    joined: dict[_Open, list[Member]] = {}  # each incident's new members in order, folded at once below
    for i in order:
        inc = placed[i]
        if inc is None:
            continue
        r, hit = rows[i], debunks[i]
        assert inc.stats is not None  # new ones start empty, the others were loaded above
        m = Member(r.id, r.when, r.group_id, r.source_id, facts[i].role, float(proba[i]),
                   hit.debunk_id if hit else None, hit.similarity if hit else None, cats[i], places[i] or (),
                   local[i], lite[i], norm[i] if facts[i].role != "other" else "", float(raw[i]),
                   tip=tipline is not None and r.group_id == tipline)
        joined.setdefault(inc, []).append(m)
        kept = founded.setdefault(inc, []) if inc.id is None else members.get(inc.id)
        if kept is not None:
            kept.append(m)
    for inc, ms in joined.items():
        cast(IncidentStats, inc.stats).add_many(ms)
    new = [inc for inc in touched if inc.id is None]
    if new:
        _insert(session, index, new)
        members.update((inc.id, founded.get(inc, [])) for inc in new if inc.id is not None)
        # New incidents are written whole here, not by a flush: the end of the run links them too.
        ctx.state.setdefault("incidents_touched", set()).update(inc.id for inc in new if inc.id is not None)
    new_set = set(new)
    changed = {inc.id: inc for inc in touched if inc.id is not None and inc not in new_set}
    changed |= {i: index.open[i] for i in left if i in index.open and i not in changed}
    emptied = [iid for iid, inc in changed.items() if inc.stats is None or inc.stats.post_count == 0]
    if emptied:
        _write_empty(session, emptied, ctx.now)
        for iid in emptied:
            index.dirty.pop(iid, None)
            index.close(iid)
            members.pop(iid, None)
    index.dirty.update((iid, inc) for iid, inc in changed.items() if iid not in emptied)
    index.batches += 1
    if index.batches % FLUSH_BATCHES == 0:
        ctx.state.setdefault("incidents_touched", set()).update(_flush(session, index, ctx.now))
    ctx.count("incidents_new", len(new))
    ctx.count("incidents_updated", len(changed))


_NO_ANCHORS = Anchors()


def _slim(a: Anchors) -> Anchors:
    """``a`` with the shared empty set for each kind it lacks (anchors from a worker process
    arrive with four sets of their own, about a kilobyte a post kept for the run)."""
    if not a:
        return _NO_ANCHORS
    return Anchors(*(v or _NO_ANCHORS.places for v in (a.places, a.numbers, a.amounts, a.names)))


def _members(ctx: Any) -> dict[int, list[Member]]:
    """Incident id -> the `Member` of each of its posts, for the incidents founded or recounted in
    this run: what the database holds once the batch is written. An incident's stats are rebuilt
    after a merge (and when a re-analysed post leaves it); from this copy instead of reading
    every post of a large matter back (`load_members`), which cost a quarter of the stage."""
    return cast(dict[int, list[Member]], ctx.state.setdefault("incidents_members", {}))


def _move_members(members: dict[int, list[Member]], index: IncidentIndex) -> None:
    """The merges `write_merges` is about to write, in the run's copy: the merged-away incident's
    posts go where its matter lives now (an incident whose copy is incomplete loses it)."""
    for gone, _keep in index.merges:
        target = live(gone)
        moved = members.pop(gone.id, None) if gone.id is not None else None
        if target.id is None:
            continue
        if moved is not None and target.id in members:
            members[target.id].extend(moved)
        else:
            members.pop(target.id, None)


def incidents_finish(ctx: Any) -> None:
    """End of the run: write the stats of the incidents changed since the last flush."""
    index = ctx.state.get("incidents_index")
    if index is not None:
        ctx.state.setdefault("incidents_touched", set()).update(_flush(ctx.session, index, ctx.now))
    if index is not None and index.grams.unsaved:
        index.grams.save(ctx.session)
    touched = ctx.state.pop("incidents_touched", set())
    if touched:
        t0 = time.perf_counter()
        ctx.count("incidents_debunk_linked", link_incidents(
            ctx.session, incident_ids=sorted(touched), freq=index.grams if index is not None else None, now=ctx.now))
        ctx.timings["incidents.debunk_link"] = ctx.timings.get("incidents.debunk_link", 0.0) + time.perf_counter() - t0


def _flush(session: Session, index: IncidentIndex, now: dt.datetime) -> set[int]:
    """Write the stats, profile and status of the incidents changed since the last flush.

    An incident a hot rumor keeps touching is rewritten once per FLUSH_BATCHES batches and at the
    end of the run, not after every batch (its JSON columns were most of the stage's cost). A run
    that dies before its flush leaves those rows behind their posts; the next run that touches
    them recounts them from their posts (`load_stats`), and `recompute_incidents` does it on demand.
    """
    since = now - index.window
    stats: dict[int, IncidentStats] = {}
    extra: dict[int, dict[str, Any]] = {}
    for iid, inc in index.dirty.items():
        st = inc.stats
        if st is None or st.post_count == 0 or iid not in index.open:
            continue
        stats[iid] = st
        active = st.last_seen is not None and st.last_seen >= since
        extra[iid] = {"centroid": _packed(inc), "status": "active" if active else "dormant"}
    write_stats(session, stats, extra=extra, now=now)
    index.dirty.clear()
    return set(stats)


def _packed(inc: _Open) -> bytes:
    if inc.packed is None:
        inc.packed = pack_terms(inc.terms, inc.mass)
    return inc.packed


def _write_empty(session: Session, ids: list[int], now: dt.datetime) -> None:
    """Incidents left with no post (their posts were re-analysed into others): zero, dormant."""
    table = cast(Table, Incident.__table__)
    session.execute(
        update(table).where(table.c.id.in_(ids)).values(
            post_count=0, group_count=0, source_count=0, role_counts={}, hourly_counts={}, spread={},
            risk=0.0, risk_parts={"parts": [], "notes": ["事件中已没有消息"]}, max_rumor_probability=None,
            status="dormant", updated_at=now,
        )
    )


def _insert(session: Session, index: IncidentIndex, new: list[_Open]) -> None:
    """INSERT the batch's new incidents (one statement), give them their ids and open them."""
    table = cast(Table, Incident.__table__)
    conn = session.connection()
    stamp = utcnow()
    rows = []
    for inc in new:
        assert inc.stats is not None
        rows.append(stat_values(inc.stats) | {"centroid": _packed(inc), "status": "active"})
    stmt = (
        insert(table)
        .values(created_at=constant(conn, table.c.created_at, stamp),
                updated_at=constant(conn, table.c.updated_at, stamp))
        .returning(table.c.id, sort_by_parameter_order=True)
    )
    got = session.execute(stmt, rows).scalars().all()
    for inc, iid in zip(new, got, strict=True):
        inc.id = iid
        index.open[iid] = inc
