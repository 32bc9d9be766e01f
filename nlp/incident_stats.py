"""What an incident (一件事) adds up to: counts, spread, kind, rumor risk and title.

One code path for both callers: the incident stage folds each new post into `IncidentStats`
(`IncidentStats.add`), and the stats of an incident it touches for the first time in a run are
built from the posts already in it (`load_stats`), so a run never double counts and
`recompute_incidents` (after staff merge, split or move posts) gives what a fresh count gives.

Column meanings (``incidents``):

* ``post_count``: posts in the incident, including the chatter of its conversations (role
  ``other``); ``role_counts`` tells them apart. Chatter counts nowhere else (reach, hourly,
  risk, kind): it never makes a matter alert-worthy.
* ``group_count`` / ``source_count``: reach. A chat message counts its group, never its source
  (a pushed message's source is the push channel, 接口推送, not a place people read); a post
  without a group (a web page) counts its source. ``spread`` holds the per-place counts,
  ``{"g:12": 3, "s:4": 1}``.
* ``role_counts``: posts per role; ``hourly_counts``: posts per UTC hour (``2026-11-28T14``).
* ``max_rumor_probability``: the highest rumor score among its claims only (a refutation that
  quotes the rumor scores high and must not count).
* ``risk`` (0..1) and ``risk_parts``: see `risk_of`. ``kind``: see `kind_of`.
* ``anchors``: the specific things its claims name (places, amounts, numbers, names).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from core.tables import DebunkMatch, Incident, ModelVersion, Post, PostScore, utcnow
from core.tips import tipline_group_id
from nlp.anchors import Anchors
from nlp.bulk import constant, executemany
from nlp.headline import headline
from nlp.incident_text import PostFacts, anchors_of, cue_flags
from nlp.stories import hour_bucket

__all__ = [
    "IncidentStats",
    "Member",
    "doubt_of",
    "kind_of",
    "load_members",
    "load_stats",
    "member_order",
    "recompute_incidents",
    "risk_of",
    "stat_values",
    "stats_of",
]

_CHUNK = 500
TOP_CLAIMS = 3  # the claim score of a matter: the mean of its best few claims, not one message
MAX_ANCHORS = 12  # per kind, kept on the incident row
MAX_PLACES = 8
# Roles whose text says what the matter is (the title and anchors come from these).
STATING_ROLES = ("claim", "complaint", "notice", "refutation", "question")
# The representative post (it titles the incident and its alert): the first role of its kind's
# order that the incident has. A rumor is what its claims say, a concern what its complaints say,
# a notice what its notices say; a question or reaction stands for a matter only when nothing
# states it, and chatter never does.
REP_ORDER: dict[str, tuple[str, ...]] = {
    "rumor": ("claim", "complaint", "notice", "refutation", "question", "reaction"),
    "unknown": ("claim", "complaint", "notice", "refutation", "question", "reaction"),
    "concern": ("complaint", "claim", "notice", "question", "refutation", "reaction"),
    "notice": ("notice", "claim", "complaint", "refutation", "question", "reaction"),
}
_REP_ROLES = frozenset(REP_ORDER["rumor"])
# Within a role, a post that says enough (this many characters) is preferred to an earlier one
# that does not: "我们单位群里都在传" or "供电所的人说的" is a claim, but not what the matter is.
SAYS_ENOUGH = 12


@dataclass(slots=True)
class Member:
    """What the stats need of one post of an incident."""

    post_id: int
    when: dt.datetime
    group_id: int | None
    source_id: int | None
    role: str
    probability: float | None
    debunk_id: int | None
    debunk_similarity: float | None
    category: str | None
    places: Sequence[str]
    is_local: bool | None
    facts: PostFacts | None
    text: str  # normalised
    # The model's own score, before the stream's rumor share is applied: how rumor-like the text
    # is. A matter's claims part reads this: the share of rumors among single chat lines (about 1%)
    # is not the share among matters stated in several groups and asked about.
    raw: float | None = None
    tip: bool = False  # a resident's tip to the office (core.tips), not a group message
    # Worked out on the first `IncidentStats.add` and kept: a member is folded in again each time
    # its incident is recounted (after a merge), and these were a fifth of a fold.
    hour: str | None = None  # hour_bucket(when)
    said: int | None = None  # what its text says, for the representative post (see `add`)

    @property
    def place_key(self) -> str | None:
        if self.group_id is not None:
            return f"g:{self.group_id}"
        return f"s:{self.source_id}" if self.source_id is not None else None


@dataclass
class IncidentStats:
    """The additive stats of one incident (rebuilt from its posts, then folded post by post)."""

    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    post_count: int = 0
    roles: Counter[str] = field(default_factory=Counter)
    hourly: Counter[str] = field(default_factory=Counter)
    spread: Counter[str] = field(default_factory=Counter)
    # Where and when its claims and questions appeared: what risk measures (reach, velocity);
    # refutations, notices and reactions are the response, never spread.
    spreading: Counter[str] = field(default_factory=Counter)
    spreading_hourly: Counter[str] = field(default_factory=Counter)
    top_claims: list[float] = field(default_factory=list)  # the best TOP_CLAIMS claim scores, best first
    top_raw: list[float] = field(default_factory=list)  # the same of the model's raw scores (Member.raw)
    hearsay: int = 0  # claims passing on hearsay
    urgent: int = 0  # claims pressing to share or act
    local: int = 0  # claims and questions about the office's own area
    tips: int = 0  # residents who asked the office about it (core.tips)
    debunk_id: int | None = None
    debunk_similarity: float | None = None
    categories: Counter[str] = field(default_factory=Counter)
    places: Counter[str] = field(default_factory=Counter)
    anchors: dict[str, Counter[str]] = field(default_factory=dict)
    # per role, the post that best says the matter: (-what it says, when, post id, text), least first
    reps: dict[str, tuple[int, dt.datetime, int, str]] = field(default_factory=dict)
    _title: tuple[int, str | None] | None = None  # (representative post id, its headline), cached

    @property
    def rep(self) -> tuple[dt.datetime, int, str] | None:
        """(when, post id, text) of the representative post (see REP_ORDER), or None."""
        order = REP_ORDER.get(kind_of(self), REP_ORDER["rumor"])
        # Of the kind's two voices (a concern's complaints, then its claims), the first that says
        # enough: a concern's "给我留一瓶" gives way to a claim saying what is short. Otherwise
        # the first role of the order, whatever it says.
        # Then the first that states rather than asks (a claim ending "…没事吧" gives way to the
        # refutation naming the matter), and only then any.
        best = next((self.reps[r] for r in order[:2] if r in self.reps and -self.reps[r][0] >= SAYS_ENOUGH),
                    None) or next((self.reps[r] for r in order if r in self.reps and r not in _ASKING_ROLES
                                   and self.reps[r][0] < 0), None) \
            or next((self.reps[r] for r in order if r in self.reps), None)
        return None if best is None else best[1:]

    def title(self) -> str | None:
        """The headline of the representative post (computed once per representative)."""
        rep = self.rep
        if rep is None:
            return None
        if self._title is None or self._title[0] != rep[1]:
            self._title = (rep[1], headline(rep[2], normalized=True) or None)
        return self._title[1]

    def add(self, m: Member) -> None:
        self.post_count += 1
        self.first_seen = m.when if self.first_seen is None else min(self.first_seen, m.when)
        self.last_seen = m.when if self.last_seen is None else max(self.last_seen, m.when)
        self.roles[m.role] += 1
        if m.tip:
            self.tips += 1
        if m.role == "other":
            return  # chatter in a conversation about the matter: counted, never weighed
        hour = m.hour
        if hour is None:
            hour = m.hour = hour_bucket(m.when)
        self.hourly[hour] += 1
        key = m.place_key
        if key is not None:
            self.spread[key] += 1
        if m.role in ("claim", "question"):
            self.spreading_hourly[hour] += 1
            if key is not None:
                self.spreading[key] += 1
        if m.role == "claim":
            if m.probability is not None:
                top = self.top_claims
                prob = float(m.probability)
                if len(top) < TOP_CLAIMS or prob > top[-1]:
                    top.append(prob)
                    top.sort(reverse=True)
                    del top[TOP_CLAIMS:]
            if m.raw is not None:
                raw = self.top_raw
                if len(raw) < TOP_CLAIMS or m.raw > raw[-1]:
                    raw.append(float(m.raw))
                    raw.sort(reverse=True)
                    del raw[TOP_CLAIMS:]
            if m.facts is not None:
                self.hearsay += m.facts.hearsay
                self.urgent += m.facts.urgent
        if m.role in ("claim", "question") and m.is_local:
            self.local += 1
        self._take_debunk(m)
        if m.role in STATING_ROLES:
            if m.category:
                self.categories[m.category] += 1
            for p in m.places or ():
                if isinstance(p, str):
                    self.places[p] += 1
            if m.facts is not None:
                self._count_anchors(m.facts.anchors)
        self._offer_rep(m)

    def _take_debunk(self, m: Member) -> None:
        """The closest debunk match of a post that spreads or asks (a refutation restates the claim
        it denies, a notice is not the rumor)."""
        if m.debunk_id is not None and m.role not in ("refutation", "notice") and (
            self.debunk_similarity is None or (m.debunk_similarity or 0.0) > self.debunk_similarity
        ):
            self.debunk_id, self.debunk_similarity = m.debunk_id, m.debunk_similarity

    def _count_anchors(self, a: Anchors) -> None:
        # A plain loop: this runs for every stating post each time an incident is recounted, and
        # Counter.update (plus a spare Counter per kind) cost a sixth of the stage.
        anchors = self.anchors
        for kind, values in (("places", a.places), ("numbers", a.numbers), ("amounts", a.amounts),
                             ("names", a.names)):
            if values:
                counts = anchors.get(kind)
                if counts is None:
                    counts = anchors[kind] = Counter()
                for v in values:
                    counts[v] += 1

    def _offer_rep(self, m: Member) -> None:
        """``m`` as its role's representative, if it says more, or as much and earlier."""
        if m.role not in _REP_ROLES or not m.text:
            return
        # A line that asks ("…我们双河的没事吧") says less than one that states, whatever its role.
        said = m.said
        if said is None:
            said = m.said = 0 if m.role != "question" and _asks(m.text) else -min(len(m.text), SAYS_ENOUGH)
        held = self.reps.get(m.role)
        if held is None or (said, m.when, m.post_id) < held[:3]:
            self.reps[m.role] = (said, m.when, m.post_id, m.text)

    def add_many(self, members: Sequence[Member]) -> None:
        """`add` of each member in turn, with the same result (counts, the counters' key order,
        ties), in fewer Python steps: a recount after a merge folds every post of a large matter
        again, and the counters are filled by Counter.update (first occurrence first, as `add`)."""
        if not members:
            return
        whens = [m.when for m in members]
        lo, hi = min(whens), max(whens)
        self.first_seen = lo if self.first_seen is None else min(self.first_seen, lo)
        self.last_seen = hi if self.last_seen is None else max(self.last_seen, hi)
        self.post_count += len(members)
        self.roles.update([m.role for m in members])
        self.tips += sum(1 for m in members if m.tip)
        said = [m for m in members if m.role != "other"]  # chatter: counted, never weighed
        hours: list[str] = []
        for m in said:
            if m.hour is None:
                m.hour = hour_bucket(m.when)
            hours.append(m.hour)
        keys = [m.place_key for m in said]
        self.hourly.update(hours)
        self.spread.update([k for k in keys if k is not None])
        spreading = [(h, k) for m, h, k in zip(said, hours, keys, strict=True) if m.role in ("claim", "question")]
        self.spreading_hourly.update([h for h, _k in spreading])
        self.spreading.update([k for _h, k in spreading if k is not None])
        claims = [m for m in said if m.role == "claim"]
        probs = [float(m.probability) for m in claims if m.probability is not None]
        if probs:
            self.top_claims[:] = sorted([*self.top_claims, *probs], reverse=True)[:TOP_CLAIMS]
        raws = [float(m.raw) for m in claims if m.raw is not None]
        if raws:
            self.top_raw[:] = sorted([*self.top_raw, *raws], reverse=True)[:TOP_CLAIMS]
        for m in claims:
            if m.facts is not None:
                self.hearsay += m.facts.hearsay
                self.urgent += m.facts.urgent
        self.local += sum(1 for m in said if m.is_local and m.role in ("claim", "question"))
        for m in said:
            self._take_debunk(m)
        stating = [m for m in said if m.role in STATING_ROLES]
        self.categories.update([m.category for m in stating if m.category])
        self.places.update([p for m in stating for p in (m.places or ()) if isinstance(p, str)])
        for m in stating:
            if m.facts is not None:
                self._count_anchors(m.facts.anchors)
        for m in said:
            self._offer_rep(m)

    # ------------------------------------------------------------------ derived

    def claim_score(self) -> float:
        """How rumor-like the matter's claims read: the mean of the best few raw model scores (the
        prior-adjusted probabilities where no raw score was kept)."""
        top = self.top_raw or self.top_claims
        return sum(top) / len(top) if top else 0.0

    def anchors_dict(self) -> dict[str, list[str]]:
        return {k: _top(c, MAX_ANCHORS) for k, c in sorted(self.anchors.items()) if c}

    def anchor_set(self) -> Anchors:
        d = self.anchors_dict()
        return Anchors.from_dict(d)


_ASKING_ROLES = frozenset({"question", "reaction"})
_ASKING_ENDS = ("?", "？", "吗", "吧", "呢", "么")


def _asks(text: str) -> bool:
    """Whether a line ends as a question does (the role model reads some asking lines as claims)."""
    return text.rstrip("。.!！~～ ").endswith(_ASKING_ENDS)


def _top(counts: Counter[str], n: int) -> list[str]:
    """The ``n`` most frequent keys, ties by the key itself: first-seen order would follow the
    iteration order of a post's anchor sets, which changes with each process's string hashing, and
    the cut at ``n`` would then differ from run to run."""
    return sorted(counts, key=lambda k: (-counts[k], k))[:n]


def kind_of(s: IncidentStats) -> str:
    """rumor | concern | notice | unknown, from the roles mix and scores.

    An official notice that spreads (its posts notices, its claims, if any, fewer or scored low,
    and no more corrections than notices) is a notice, not a rumor; complaints outnumbering claims make a
    concern; claims scored as rumors (or a debunk match, or a refutation of it) make a rumor;
    claims that score low (an ordinary statement) stay unknown.
    """
    r = s.roles
    claims, notices, complaints = r["claim"], r["notice"], r["complaint"]
    score = s.claim_score()
    # Residents correcting it more often than an office notice states it: a contested claim that
    # a notice was grouped with, not a notice that spreads (a true notice draws questions and
    # thanks, rarely "没这回事").
    contested = r["refutation"] > notices
    # Claims outnumbered by the notice they retell ("听说9号停电") are the notice spreading, however
    # rumor-like the model reads a retelling; as many claims as notices are a notice only when
    # they read low.
    retold = notices > claims or score < 0.5 or not claims
    if notices and notices >= claims and retold and s.debunk_id is None and not contested:
        return "notice"
    # A grievance nobody disputes is a concern; one whose claims the groups correct and ask
    # about ("又要交钱？" beside "疫苗每人280元，不打不准进校" and three "不收钱，没有的事") is a
    # rumor that people complain about.
    disputed = claims and r["refutation"] and doubt_of(s)[0] >= DOUBT_RUMOR
    if complaints and complaints >= claims and not disputed:
        return "concern"
    if s.debunk_id is not None or (claims and score >= 0.5) or (r["refutation"] and not notices):
        return "rumor"
    if claims and (s.hearsay or s.urgent):
        return "rumor"
    if claims and doubt_of(s)[0] >= DOUBT_RUMOR:
        # Claims the groups keep asking about or correcting ("后山真有狼啊", "后山狼的事有人知道
        #不"), however plainly they read to the model: the residents treat them as a rumor.
        return "rumor"
    return "unknown"


# The weights of the risk parts: they sum to 1, so risk stays in 0..1 and each part's
# contribution reads as "points of risk". The claims' own scores weigh most; what the matter does
# in the groups (questions, reach, speed) comes next; cues, a debunk match and locality refine it.
#: How many group questions one resident's tip to the office counts as in the questions part.
TIP_QUESTIONS = 2

RISK_WEIGHTS = {
    "claims": 0.35,
    "questions": 0.12,
    "reach": 0.15,
    "velocity": 0.10,
    "cues": 0.10,
    "debunk": 0.10,
    "local": 0.08,
}
#: The residents' doubt (see `doubt_of`) reaches 1 at this many enquiries and corrections beyond
#: the first: one "真的吗" is any line's fate, several are a matter being contested.
DOUBT_FULL = 4
#: Claims doubted this much (see `doubt_of`: three enquiries or corrections) make a rumor matter.
DOUBT_RUMOR = 0.4


def doubt_of(s: IncidentStats) -> tuple[float, int, int]:
    """How much the groups themselves doubt a matter's claims (0..1), with its enquiries and
    corrections: questions asking whether it is true (a resident's tip to the office counting as
    TIP_QUESTIONS of them) and refutations ("没这回事", "谣言") around it. Enquiries and corrections
    are the strongest early rumor signal in chats (Zhao, Resnick & Mei, "Enquiring Minds", WWW
    2015), and they read the same whatever the wording, where the rumor model, trained on Weibo
    posts, scores a short chat line low. The first one counts nothing, so a fragment of a matter
    (one claim and the question under it) gains nothing from it."""
    r = s.roles
    enquiries = r["question"] + TIP_QUESTIONS * s.tips
    corrections = r["refutation"]
    value = max(0.0, enquiries + corrections - 1) / DOUBT_FULL
    return min(1.0, value), enquiries, corrections


def _part(key: str, value: float, label: str, detail: str) -> dict[str, Any]:
    value = max(0.0, min(1.0, value))
    w = RISK_WEIGHTS[key]
    return {"key": key, "label": label, "value": round(value, 3), "weight": w,
            "contribution": round(w * value, 3), "detail": detail}


def risk_of(s: IncidentStats) -> tuple[float, dict[str, Any]]:
    """The rumor risk of a matter (0..1) and its explained parts (Chinese, for the alert page).

    Only claims and the response they draw count: notices never raise it, reactions add nothing,
    chatter is never in an incident; refutations count only as the groups' doubt of its claims.
    Parts: the claims' scores (mean of the best few, not one message's maximum, or the groups'
    doubt of them, `doubt_of`, where that is higher), the questions asked about it, reach (groups
    and sources), velocity (claims and questions in the busiest hour), hearsay and urgency cues, a
    debunk match, locality.
    """
    r = s.roles
    claims, questions = r["claim"], r["question"]
    parts: list[dict[str, Any]] = []
    score = s.claim_score()
    n_top = len(s.top_raw or s.top_claims)
    detail = (f"{claims} 条传播性说法，最可疑的 {n_top} 条模型得分平均 {score:.2f}" if claims
              else "没有传播性说法（只有询问、反应、辟谣或通知）")
    # The claims read as the model reads them, or as the groups do when they doubt them more
    # (a chat line is out of the model's domain; the residents asking and correcting are not).
    doubt, enquiries, corrections = doubt_of(s) if claims else (0.0, 0, 0)
    if doubt > score:
        detail += (f"；群里 {enquiries} 次询问、{corrections} 条辟谣或澄清在质疑这些说法，"
                   f"按群众的质疑程度 {doubt:.2f} 计")
    parts.append(_part("claims", max(score, doubt), "传言本身的可疑程度", detail))
    # A resident who asks the office itself weighs as much as two questions in a group: several
    # residents asking about the same thing is news (the tipline issue).
    asked = questions + TIP_QUESTIONS * s.tips
    detail = f"{questions} 条询问（“是真的吗”之类）" if questions else "群里没有人询问"
    if s.tips:
        detail += f"；{s.tips} 条群众举报线索问到此事"
    parts.append(_part("questions", asked / 5.0, "引发的询问", detail if (questions or s.tips) else "没有人询问"))
    groups = sum(1 for k in s.spreading if k.startswith("g:"))
    sources = sum(1 for k in s.spreading if k.startswith("s:"))
    reach = groups + sources
    parts.append(_part("reach", (reach - 1) / 4.0 if claims else 0.0, "传播范围",
                       f"说法和询问出现在 {groups} 个群、{sources} 个网站或来源"))
    busiest = max(s.spreading_hourly.values()) if s.spreading_hourly else 0
    parts.append(_part("velocity", (busiest - 1) / 9.0 if claims else 0.0, "传播速度",
                       f"最集中的一小时内 {busiest} 条说法或询问"))
    cue_share = (s.hearsay + s.urgent) / (2.0 * claims) if claims else 0.0
    parts.append(_part("cues", cue_share * 2.0, "消息来源不明或催促转发",
                       f"{s.hearsay} 条说法称“听说/网传”，{s.urgent} 条催促转发或行动"))
    parts.append(_part("debunk", 1.0 if s.debunk_id is not None else 0.0, "与辟谣库相符",
                       f"与辟谣库 #{s.debunk_id} 相符（相似度 {s.debunk_similarity or 0:.2f}）"
                       if s.debunk_id is not None else "辟谣库中没有相符条目"))
    local_share = s.local / float(claims + questions) if (claims + questions) else 0.0
    parts.append(_part("local", local_share if claims else 0.0, "涉及本地",
                       f"{s.local} 条说法或询问提到本辖区地名"))
    risk = round(min(1.0, sum(p["contribution"] for p in parts)), 4)
    notes = []
    if r["refutation"]:
        notes.append(f"已有 {r['refutation']} 条辟谣或澄清" + (
            "（作为群众的质疑计入说法的可疑程度）" if doubt > score else "（不计入风险）"))
    if r["notice"]:
        notes.append(f"{r['notice']} 条官方通知（不计入风险）")
    return risk, {"parts": parts, "notes": notes}


def stat_values(s: IncidentStats) -> dict[str, Any]:
    """The ``incidents`` columns these stats determine (everything but the grouping's own)."""
    risk, parts = risk_of(s)
    places = _top(s.places, MAX_PLACES)
    return {
        "kind": kind_of(s),
        "title": s.title(),
        "representative_post_id": rep[1] if (rep := s.rep) else None,
        "first_seen": s.first_seen,
        "last_seen": s.last_seen,
        "post_count": s.post_count,
        "group_count": sum(1 for k in s.spread if k.startswith("g:")),
        "source_count": sum(1 for k in s.spread if k.startswith("s:")),
        # Counts only ever grow here (a post leaving is handled by a recount), so no zeros to drop.
        "role_counts": dict(s.roles),
        "hourly_counts": dict(s.hourly),
        "spread": dict(s.spread),
        "max_rumor_probability": s.top_claims[0] if s.top_claims else None,
        "risk": risk,
        "risk_parts": parts,
        "debunk_id": s.debunk_id,
        "debunk_similarity": s.debunk_similarity,
        "category": _top(s.categories, 1)[0] if s.categories else None,
        "places": places,
        "anchors": s.anchors_dict(),
    }


# ----------------------------------------------------------------------------- from the database


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _model_version(session: Session) -> int | None:
    return session.scalar(
        select(ModelVersion.id).where(ModelVersion.name == "rumor", ModelVersion.status == "active").limit(1)
    )


def load_stats(
    session: Session,
    incident_ids: Sequence[int],
    *,
    exclude_posts: Iterable[int] = (),
    model_version_id: int | None = None,
) -> dict[int, IncidentStats]:
    """The stats of these incidents from the posts in them (as analysed and written), leaving out
    ``exclude_posts`` (posts the caller is about to fold in again). Scores are the active model's
    (or ``model_version_id``'s); roles are the stored ones; anchors and cues are re-read from each
    stating post's normalised text."""
    members = load_members(session, incident_ids, exclude_posts=exclude_posts, model_version_id=model_version_id)
    return {iid: stats_of(ms) for iid, ms in members.items()}


def stats_of(members: Iterable[Member]) -> IncidentStats:
    """The stats of an incident's members, folded in the order given (`load_members`' order:
    by time, then post id)."""
    stats = IncidentStats()
    stats.add_many(list(members))
    return stats


def member_order(m: Member) -> tuple[dt.datetime, int]:
    """The order an incident's posts are folded in when its stats are rebuilt."""
    return m.when, m.post_id


def load_members(
    session: Session,
    incident_ids: Sequence[int],
    *,
    exclude_posts: Iterable[int] = (),
    model_version_id: int | None = None,
) -> dict[int, list[Member]]:
    """The `Member` of each post of these incidents (as analysed and written), by time then post
    id, leaving out ``exclude_posts`` (see `load_stats`)."""
    ids = sorted({i for i in incident_ids if i is not None and i > 0})
    out: dict[int, list[Member]] = {i: [] for i in ids}
    if not ids:
        return out
    skip = set(exclude_posts)
    if model_version_id is None:
        model_version_id = _model_version(session)
    t = Post.__table__
    members: list[tuple[int, Any]] = []
    for chunk in _chunks(ids):
        rows = session.execute(
            select(t.c.id, t.c.incident_id, t.c.group_id, t.c.source_id, t.c.published_at, t.c.collected_at,
                   t.c.role, t.c.category, t.c.places, t.c.is_local, t.c.norm_text)
            .where(t.c.incident_id.in_(chunk))
        ).all()
        members.extend((r.incident_id, r) for r in rows if r.id not in skip)
    post_ids = [r.id for _, r in members]
    probs: dict[int, float] = {}
    raws: dict[int, float] = {}
    matches: dict[int, tuple[int, float]] = {}
    for chunk in _chunks(post_ids):
        q = select(PostScore.post_id, PostScore.rumor_probability, PostScore.raw_probability).where(
            PostScore.post_id.in_(chunk))
        q = q.where(PostScore.model_version_id == model_version_id) if model_version_id is not None else q
        for pid, p, raw in session.execute(q):
            probs[pid] = float(p)
            if raw is not None:
                raws[pid] = float(raw)
        for pid, did, sim in session.execute(
            select(DebunkMatch.post_id, DebunkMatch.debunk_id, DebunkMatch.similarity).where(DebunkMatch.post_id.in_(chunk))
        ):
            if pid not in matches or sim > matches[pid][1]:
                matches[pid] = (did, float(sim))
    tipline = tipline_group_id(session)
    stating = [r for _, r in members if (r.role or "") in STATING_ROLES]
    read = dict(zip((r.id for r in stating), _facts_without_roles([r.norm_text or "" for r in stating]),
                    strict=True))
    for incident_id, r in sorted(members, key=lambda m: (m[1].published_at or m[1].collected_at, m[1].id)):
        hit = matches.get(r.id)
        out[incident_id].append(Member(
            r.id, r.published_at or r.collected_at, r.group_id, r.source_id, r.role or "other",
            probs.get(r.id), hit[0] if hit else None, hit[1] if hit else None, r.category, r.places or [],
            r.is_local, read.get(r.id), r.norm_text or "", raws.get(r.id),
            tip=tipline is not None and r.group_id == tipline,
        ))
    return out


def _facts_without_roles(texts: list[str]) -> list[PostFacts]:
    """Anchors and cues of texts whose role is already known (no role model needed)."""
    return [PostFacts("", 0.0, anchors_of(t), *cue_flags(t)) for t in texts]


def write_stats(session: Session, stats: dict[int, IncidentStats], *, now: dt.datetime | None = None,
                extra: dict[int, dict[str, Any]] | None = None) -> None:
    """UPDATE the stat columns of existing incidents (one executemany); ``extra``: more columns
    per incident (the grouping's own: status, centroid)."""
    if not stats:
        return
    table = cast(Table, Incident.__table__)
    conn = session.connection()
    params = []
    for incident_id, s in stats.items():
        if s.post_count == 0:
            continue  # emptied: see recompute_incidents
        row = stat_values(s) | (extra or {}).get(incident_id, {})
        row["_id"] = incident_id
        params.append(row)
    if not params:
        return
    keys = sorted(k for k in params[0] if k != "_id")
    if any(len(p) != len(keys) + 1 for p in params):
        raise ValueError("write_stats: give `extra` columns for every incident or for none")
    stmt = (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values({k: bindparam(k) for k in keys} | {"updated_at": constant(conn, table.c.updated_at, now or utcnow())})
    )
    executemany(conn, stmt, params)


def recompute_incidents(session: Session, incident_ids: Sequence[int], *, now: dt.datetime | None = None) -> int:
    """Recount the stats of these incidents from their posts (after staff merged, split or moved
    posts); an incident left with no posts becomes ``merged`` if it was merged away, else
    ``dormant`` with zero counts. Returns how many incidents were rewritten. Does not commit."""
    ids = sorted({i for i in incident_ids if i})
    if not ids:
        return 0
    stats = load_stats(session, ids)
    write_stats(session, stats, now=now)
    empty = [i for i, s in stats.items() if s.post_count == 0]
    if empty:
        table = cast(Table, Incident.__table__)
        session.execute(
            update(table).where(table.c.id.in_(empty)).values(
                post_count=0, group_count=0, source_count=0, role_counts={}, hourly_counts={}, spread={},
                risk=0.0, risk_parts={"parts": [], "notes": ["事件中已没有消息"]}, max_rumor_probability=None,
                status=func.coalesce(func.nullif(table.c.status, "active"), "dormant"),
                updated_at=now or utcnow(),
            )
        )
    return len(ids)
