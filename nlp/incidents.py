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
   joins one only through a reply, a story, a staff link, or a close content match with a matter
   just talked about in its own group ("800块？咱们村也有吗" under the subsidy scam): staff see
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
   500元) forbid joining, whatever the words share. A paraphrase matcher (nlp.claims) can plug in
   (`IncidentIndex.paraphrase`), its similarity competing with the content score.
5. Conversation: a short question or reaction (few words of its own) right after a message of an
   incident in the same chat group joins that incident ("真的吗？" after the water rumor).
6. Otherwise a post that states something (claim, complaint, notice, refutation; a question that
   names enough of its matter) starts an incident; a bare question or reaction never does.

Only incidents active in the last ``incident_window_days`` (setting, 7) are open; older ones go
dormant at the start of a run (a story, reply or staff link to one reopens it).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from core.tables import ConcernState, Incident, IncidentConstraint, Post, utcnow
from nlp.anchors import Anchors, anchors_conflict, default_extractor
from nlp.bulk import constant
from nlp.incident_stats import (
    IncidentStats,
    Member,
    load_stats,
    recompute_incidents,
    stat_values,
    write_stats,
)
from nlp.incident_text import GRAM_FEATURES, STARTER_ROLES, IncidentText, PostFacts

__all__ = [
    "STAGE_NAME",
    "IncidentIndex",
    "incidents_stage",
    "incidents_text_part",
    "recompute_incidents",
]

log = logging.getLogger(__name__)

STAGE_NAME = "incidents"
DEFAULT_WINDOW_DAYS = 7
JOIN_SCORE = 0.5  # content score a post needs to join an incident (see _score)
CHATTER_JOIN_SCORE = 0.6  # what a post of role "other" needs, and only in a conversation
NORM_MASS = 80.0  # IDF mass that counts as "all of it" (see _score)
ANCHOR_BONUS = 0.3  # at most, for anchors in common
THING_BONUS = 0.2  # per shared amount or named thing
PLACE_BONUS = 0.08  # per shared place (other than the office's own area)
CONVERSATION_BONUS = 0.15  # the incident was just talked about in the post's group
CONVERSATION = dt.timedelta(minutes=15)  # "right after" in a chat group
QUIET_PENALTY = ((dt.timedelta(days=5), 0.2), (dt.timedelta(days=2), 0.1))
POST_TERMS = 96  # rarest character bigrams kept per post (a chat line has fewer)
SCORED_CANDIDATES = 6  # candidates scored in full (the best by the probe terms)
PROFILE_TERMS = 160  # bigrams kept per incident (by accumulated IDF weight)
INDEXED_TERMS = 48  # of which the strongest are in the inverted index
POSTING_CAP = 48  # incidents kept per bigram in the index (the most recent ones)
MIN_SHARED = 3  # bigrams in common, unless anchors or the conversation bind too
START_TERMS = 4  # bigrams a post needs to start an incident ("收到了" starts nothing)
QUESTION_START_TERMS = 8  # a question must name its matter to start one ("中心小学真的停课两周吗")
SMALL_POST_TERMS = 14  # "真的吗？", "天哪 我刚烧了一壶水喝了": a line of its own, the conversation decides
RECENT_PER_GROUP = 3  # incidents remembered per chat group for the conversation
GRAM_STATE = "incident_gram_df"  # concern_state row of the bigram document frequencies
_CHUNK = 500


# ----------------------------------------------------------------------------- document frequencies


class GramFreq:
    """Document frequencies of hashed character bigrams, kept across runs in ``concern_state``.

    Our own rather than the concern stage's word frequencies: grouping compares bigrams (see
    nlp.incident_text.grams_of). Stored raw (2 MB of float32): compressing a dense table cost a
    third of a second per batch.
    """

    def __init__(self, df: np.ndarray | None = None, n_docs: float = 0.0) -> None:
        self.df = df if df is not None else np.zeros(GRAM_FEATURES, dtype=np.float32)
        self.n_docs = float(n_docs)
        self.unsaved = 0

    def add(self, docs: Sequence[Sequence[int]]) -> None:
        flat = np.fromiter((g for d in docs for g in d), dtype=np.int64)
        if flat.size:
            self.df += np.bincount(flat, minlength=GRAM_FEATURES).astype(np.float32)
        self.n_docs += len(docs)
        self.unsaved += len(docs)

    def idf(self, idx: np.ndarray) -> np.ndarray:
        return np.log((1.0 + self.n_docs) / (1.0 + self.df[idx])) + 1.0

    @classmethod
    def load(cls, session: Session) -> GramFreq:
        row = session.get(ConcernState, GRAM_STATE)
        if row is None or len(row.value) != 4 * GRAM_FEATURES:
            return cls()
        return cls(np.frombuffer(row.value, dtype=np.float32).copy(), float((row.meta or {}).get("n_docs", 0)))

    def save(self, session: Session) -> None:
        row = session.get(ConcernState, GRAM_STATE)
        meta = {"n_docs": self.n_docs, "features": GRAM_FEATURES}
        if row is None:
            session.add(ConcernState(name=GRAM_STATE, value=self.df.tobytes(), meta=meta))
        else:
            row.value, row.meta = self.df.tobytes(), meta
        self.unsaved = 0

    def should_save(self, batch_len: int) -> bool:
        """Every batch of a small run; in a large backlog once it grew by 5% (the last batch of a
        run is a short one, so it is always saved)."""
        return self.unsaved > 0 and (batch_len < 2000 or self.unsaved >= max(2000.0, 0.05 * self.n_docs))


# ----------------------------------------------------------------------------- open incidents


class _Open:
    """An open incident as the grouping sees it (its id is filled in once the row exists)."""

    __slots__ = ("anchors", "debunk_id", "first_seen", "id", "last_seen", "mass", "stats", "terms")

    def __init__(self, incident_id: int | None, first_seen: dt.datetime, last_seen: dt.datetime,
                 terms: dict[int, float], anchors: Anchors, debunk_id: int | None = None) -> None:
        self.id = incident_id
        self.first_seen, self.last_seen = first_seen, last_seen
        self.terms = terms  # hashed bigram -> accumulated IDF weight
        self.mass = 0.0  # IDF mass of its bigrams (each counted once), for reverse containment
        self.anchors = anchors
        self.debunk_id = debunk_id
        self.stats: IncidentStats | None = None  # loaded when first touched in the run


def pack_terms(terms: dict[int, float]) -> bytes:
    """An incident's bigrams for ``incidents.centroid``: a count, int32 ids, float32 weights."""
    keys = np.fromiter(terms.keys(), dtype=np.int32, count=len(terms))
    vals = np.fromiter(terms.values(), dtype=np.float32, count=len(terms))
    return len(terms).to_bytes(4, "little") + keys.tobytes() + vals.tobytes()


def unpack_terms(blob: bytes | None) -> dict[int, float]:
    if not blob or len(blob) < 4:
        return {}
    n = int.from_bytes(blob[:4], "little")
    keys = np.frombuffer(blob[4 : 4 + 4 * n], dtype=np.int32)
    vals = np.frombuffer(blob[4 + 4 * n : 4 + 8 * n], dtype=np.float32)
    return dict(zip(keys.tolist(), vals.tolist(), strict=True))


@dataclass
class _Post:
    """One post of a batch as the grouping sees it (terms: its rarest bigrams, rarest first)."""

    id: int
    when: dt.datetime
    group_id: int | None
    parent_id: int | None
    story_id: int | None
    debunk_id: int | None
    role: str
    facts: PostFacts
    terms: list[int]
    idf: list[float]
    text: str = ""

    @property
    def mass(self) -> float:
        return sum(self.idf)


class IncidentIndex:
    """The open incidents of a run, with the inverted indexes that find a post's candidates."""

    def __init__(self, window_days: int = DEFAULT_WINDOW_DAYS) -> None:
        self.window = dt.timedelta(days=window_days)
        self.open: dict[int, _Open] = {}
        self.postings: dict[int, list[_Open]] = {}  # bigram -> incidents, oldest first
        self.anchor_postings: dict[str, list[_Open]] = {}
        self.by_story: dict[int, _Open] = {}
        self.by_debunk: dict[int, _Open] = {}
        self.by_post: dict[int, _Open] = {}  # posts placed in this run
        self.group_recent: dict[int, list[tuple[dt.datetime, _Open]]] = {}  # newest last
        self.cannot: dict[int, set[int]] = {}
        self.must: dict[int, set[int]] = {}
        self.parents: dict[str, frozenset[str]] = {}  # place -> the places it lies in (gazetteer)
        self.home: frozenset[str] = frozenset()  # the office's own area: named by nearly every post
        # Slot for a paraphrase matcher (nlp.claims): (post text, incident) -> similarity 0..1.
        self.paraphrase: Callable[[str, _Open], float] | None = None
        self.grams = GramFreq()

    def __len__(self) -> int:
        return len(self.open)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, session: Session, *, now: dt.datetime, window_days: int = DEFAULT_WINDOW_DAYS) -> IncidentIndex:
        """Incidents active within the window (older active ones are marked dormant first), the
        staff constraints, the bigram frequencies and the gazetteer's place hierarchy."""
        index = cls(window_days)
        since = now - index.window
        table = cast(Table, Incident.__table__)
        session.execute(
            update(table).where(table.c.status == "active", table.c.last_seen < since).values(status="dormant")
        )
        index.grams = GramFreq.load(session)
        rows = session.execute(
            select(table.c.id, table.c.first_seen, table.c.last_seen, table.c.centroid, table.c.anchors,
                   table.c.debunk_id)
            .where(table.c.status == "active", table.c.last_seen >= since)
            .order_by(table.c.last_seen)
        )
        for row in rows:
            index._add_open(row)
        for kind, a, b in session.execute(
            select(IncidentConstraint.kind, IncidentConstraint.post_id, IncidentConstraint.other_post_id)
        ):
            links = index.must if kind == "must_link" else index.cannot
            links.setdefault(a, set()).add(b)
            links.setdefault(b, set()).add(a)
        index.parents = default_extractor().parents
        index.home = _home_places()
        log.debug("incident index loaded", extra={"open": len(index.open), "window_days": window_days})
        return index

    def _add_open(self, row: Any) -> _Open:
        inc = _Open(row.id, row.first_seen, row.last_seen, unpack_terms(row.centroid),
                    Anchors.from_dict(row.anchors), row.debunk_id)
        self.open[row.id] = inc
        if inc.terms:
            inc.mass = float(self.grams.idf(np.fromiter(inc.terms, dtype=np.int64, count=len(inc.terms))).sum())
        self._index_terms(inc, list(inc.terms))
        self._index_anchors(inc, inc.anchors)
        if row.debunk_id is not None:
            self.by_debunk.setdefault(row.debunk_id, inc)
        return inc

    def close(self, incident_id: int) -> None:
        """Stop offering an incident (emptied); stale index entries fail their membership check."""
        inc = self.open.pop(incident_id, None)
        if inc is not None:
            inc.terms, inc.anchors = {}, Anchors()

    def reopen(self, session: Session, ids: Iterable[int]) -> None:
        """Load incidents a story, reply or staff link points to that are not open (dormant)."""
        want = sorted({i for i in ids if i is not None and i not in self.open})
        table = cast(Table, Incident.__table__)
        for start in range(0, len(want), _CHUNK):
            for row in session.execute(
                select(table.c.id, table.c.first_seen, table.c.last_seen, table.c.centroid, table.c.anchors,
                       table.c.debunk_id)
                .where(table.c.id.in_(want[start : start + _CHUNK]), table.c.status != "merged")
            ):
                self._add_open(row)

    # ------------------------------------------------------------------ the inverted indexes

    def _index_terms(self, inc: _Open, new_terms: Sequence[int]) -> None:
        """Put ``inc`` under its strongest bigrams (among ``new_terms``, the ones it just gained)."""
        if len(inc.terms) > INDEXED_TERMS:
            # The strongest by weight, where a bigram no other post has yet (df 1: the batch is
            # counted in before grouping) weighs half: indexed alone it finds nothing, while a
            # founder's shared bigrams ("面包车", "小学门口") are what its paraphrases will probe.
            df, w = self.grams.df, inc.terms
            strongest = set(sorted(w, key=lambda t: w[t] if df[t] > 1.5 else 0.5 * w[t], reverse=True)[:INDEXED_TERMS])
            new_terms = [t for t in new_terms if t in strongest]
        for t in new_terms:
            _post(self.postings.setdefault(t, []), inc)

    def _index_anchors(self, inc: _Open, anchors: Anchors) -> None:
        for a in (*anchors.amounts, *anchors.names):
            _post(self.anchor_postings.setdefault(a, []), inc)

    def candidates(self, p: _Post) -> list[tuple[_Open, float, int]]:
        """The incidents ``p`` may join, found through its bigrams, its specific anchors and its
        group's conversation; the best SCORED_CANDIDATES with the IDF mass and the number of
        ``p``'s bigrams they share. Posting lists are capped, so this costs the same with 1,000
        or 100,000 open incidents."""
        probe: dict[_Open, float] = {}
        for t, w in zip(p.terms, p.idf, strict=True):
            for inc in self.postings.get(t, ()):
                if t in inc.terms:
                    probe[inc] = probe.get(inc, 0.0) + w
        for a in (*p.facts.anchors.amounts, *p.facts.anchors.names):
            for inc in self.anchor_postings.get(a, ()):
                probe.setdefault(inc, 0.0)
        for _when, inc in self.group_recent.get(p.group_id, ()) if p.group_id is not None else ():
            probe.setdefault(inc, 0.0)
        best = sorted(probe, key=probe.__getitem__, reverse=True)[:SCORED_CANDIDATES]
        out = []
        for inc in best:
            terms = inc.terms
            shared = [w for t, w in zip(p.terms, p.idf, strict=True) if t in terms]
            out.append((inc, sum(shared), len(shared)))
        return out

    def recent_in_group(self, p: _Post) -> list[tuple[dt.datetime, _Open]]:
        """Incidents talked about in ``p``'s group within CONVERSATION before it, newest first."""
        if p.group_id is None:
            return []
        return [(w, inc) for w, inc in reversed(self.group_recent.get(p.group_id, ()))
                if timedelta_ok(p.when - w) and (inc.id is None or inc.id in self.open)]

    # ------------------------------------------------------------------ growing an incident

    def absorb(self, inc: _Open, p: _Post) -> None:
        """``p`` joined ``inc``: its bigrams and anchors (if it states something), time, conversation."""
        if p.role in STATING_ROLES and p.terms:
            terms = inc.terms
            gained = []
            for t, w in zip(p.terms, p.idf, strict=True):
                old = terms.get(t)
                if old is None:
                    gained.append(t)
                    inc.mass += w
                    terms[t] = w
                else:
                    terms[t] = old + w
            if len(terms) > PROFILE_TERMS * 4 // 3:
                keep = sorted(terms, key=terms.__getitem__, reverse=True)[:PROFILE_TERMS]
                inc.mass *= sum(min(terms[t], 1.0) for t in keep) / sum(min(w, 1.0) for w in terms.values())
                inc.terms = {t: terms[t] for t in keep}
            self._index_terms(inc, gained)
            if p.facts.anchors:
                inc.anchors = inc.anchors.union(p.facts.anchors)
                self._index_anchors(inc, p.facts.anchors)
        inc.last_seen = max(inc.last_seen, p.when)
        inc.first_seen = min(inc.first_seen, p.when)
        if p.group_id is not None and p.role != "other":
            recent = [(w, i) for w, i in self.group_recent.get(p.group_id, ()) if i is not inc]
            recent.append((p.when, inc))
            self.group_recent[p.group_id] = recent[-RECENT_PER_GROUP:]
        if p.story_id is not None:
            self.by_story.setdefault(p.story_id, inc)
        if p.debunk_id is not None and p.role not in ("refutation", "notice"):
            self.by_debunk.setdefault(p.debunk_id, inc)
        self.by_post[p.id] = inc

    def found(self, p: _Post) -> _Open:
        inc = _Open(None, p.when, p.when, {}, Anchors())
        inc.stats = IncidentStats()
        self.absorb(inc, p)
        return inc


STATING_ROLES = frozenset({"claim", "complaint", "notice", "refutation", "question"})


def timedelta_ok(gap: dt.timedelta) -> bool:
    """A gap short enough to be the same conversation (a little negative too: two importers'
    clocks disagree by seconds)."""
    return -CONVERSATION <= gap <= CONVERSATION


def _post(lst: list[_Open], inc: _Open) -> None:
    """Append ``inc`` to a posting list once; a list past POSTING_CAP keeps its newest half."""
    if inc in lst[-4:]:
        return
    lst.append(inc)
    if len(lst) > POSTING_CAP:
        del lst[: len(lst) - POSTING_CAP // 2]


def _home_places() -> frozenset[str]:
    """The office's own area and its place marks (from the gazetteer), or nothing."""
    from nlp.concerns.errors import ConcernConfigError
    from nlp.concerns.places import load_gazetteer
    from nlp.similarity import match_key, place_marks

    try:
        home = load_gazetteer().home()
    except ConcernConfigError:
        return frozenset()
    return frozenset(home) | frozenset(m for h in home for m in place_marks(match_key(h)))


# ----------------------------------------------------------------------------- placing one post


def _specific(index: IncidentIndex, a: Anchors) -> Anchors:
    """``a`` without the office's own area (named in nearly every post, it binds nothing)."""
    if not a.places or not index.home or not (a.places & index.home):
        return a
    return Anchors(a.places - index.home, a.numbers, a.amounts, a.names)


def _anchor_bonus(index: IncidentIndex, a: Anchors, b: Anchors) -> float:
    """What shared anchors add: a shared amount or named thing (800元, 中心小学) binds strongly;
    a shared place only a little (one village has many matters: its water, its bridge)."""
    if not a or not b:
        return 0.0
    things = len(a.amounts & b.amounts) + len(a.names & b.names)
    places = len((a.places & b.places) - index.home)
    return min(ANCHOR_BONUS, THING_BONUS * things + PLACE_BONUS * places)


def _conflicts(index: IncidentIndex, p: _Post, inc: _Open) -> bool:
    return bool(p.facts.anchors) and bool(inc.anchors) and anchors_conflict(p.facts.anchors, inc.anchors, index.parents)


def _score(index: IncidentIndex, p: _Post, inc: _Open, shared: float, n_shared: int, talked: bool) -> float:
    """How well ``p`` fits ``inc`` (joins at JOIN_SCORE); -1 when it must not join.

    The IDF share of the post's bigrams the incident holds (containment: a paraphrase or a
    question shares most of what it says with its matter, while the matter says much more),
    plus shared specific anchors, plus having just been talked about in the same group; minus a
    penalty for a matter quiet for days. Too few bigrams in common count for nothing unless an
    anchor or the conversation backs them.
    """
    if _conflicts(index, p, inc):
        return -1.0
    # Containment, normalised by the smaller side (a short question inside a long claim, a short
    # claim quoted whole in a long refutation) and at most NORM_MASS (about 16 distinctive
    # bigrams in common say "the same matter" however long both texts are).
    norm = min(p.mass, inc.mass or p.mass, NORM_MASS)
    content = shared / norm if norm > 0 else 0.0
    overlap = _anchor_bonus(index, p.facts.anchors, inc.anchors)
    if n_shared < MIN_SHARED and overlap == 0.0 and not talked:
        content = 0.0
    score = min(content, 1.0) + overlap + (CONVERSATION_BONUS if talked else 0.0)
    quiet = p.when - inc.last_seen
    for after, penalty in QUIET_PENALTY:
        if quiet > after:
            score -= penalty
            break
    if index.paraphrase is not None and score < JOIN_SCORE:
        score = max(score, index.paraphrase(p.text, inc))
    return score


def _bound(index: IncidentIndex, p: _Post, forbidden: set[_Open], lookups: _Lookups) -> tuple[_Open | None, str]:
    """The incident a staff link, reply, story or debunk binds ``p`` to (before any wording)."""
    for q in sorted(index.must.get(p.id, ())):
        inc = index.by_post.get(q) or lookups.partner.get(q)
        if inc is not None and inc not in forbidden:
            return inc, "must_link"
    if p.parent_id is not None:
        inc = index.by_post.get(p.parent_id) or lookups.parent.get(p.parent_id)
        if inc is not None and inc not in forbidden:
            return inc, "reply"
    if p.story_id is not None:
        inc = index.by_story.get(p.story_id) or lookups.story.get(p.story_id)
        if inc is not None and inc not in forbidden:
            return inc, "story"
    if p.debunk_id is not None and p.role not in ("refutation", "notice", "other"):
        inc = index.by_debunk.get(p.debunk_id)
        if inc is not None and inc not in forbidden and not _conflicts(index, p, inc):
            return inc, "debunk"
    return None, ""


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


def _conversation(index: IncidentIndex, p: _Post, forbidden: set[_Open]) -> _Open | None:
    """A short line right after a matter in its group: a question or reaction ("真的吗？",
    "天哪") belongs to the latest matter talked about; any other short line ("这可咋整 结核会
    传染的") to the latest one it shares a bigram with."""
    recent = [inc for _w, inc in index.recent_in_group(p) if inc not in forbidden and not _conflicts(index, p, inc)]
    if not recent:
        return None
    if p.role in ("question", "reaction"):
        return recent[0]
    if p.role == "other":
        return None
    for inc in recent:
        if any(t in inc.terms for t in p.terms):
            return inc
    return None


def place(index: IncidentIndex, p: _Post, lookups: _Lookups) -> tuple[_Open | None, str]:
    """The incident ``p`` joins or founds, and why (a word for the run's counts); None: none.

    Chatter (role ``other``) joins only through a reply, a story, a staff link, or a close match
    in the conversation it is part of, and never starts an incident.
    """
    forbidden = {inc for q in index.cannot.get(p.id, ()) if (inc := index.by_post.get(q) or lookups.partner.get(q))}
    inc, why = _bound(index, p, forbidden, lookups)
    if inc is None:
        recent = {i for _w, i in index.recent_in_group(p)}
        need = CHATTER_JOIN_SCORE if p.role == "other" else JOIN_SCORE
        best, best_score = None, need
        for cand, shared, n_shared in index.candidates(p):
            talked = cand in recent
            if cand in forbidden or (p.role == "other" and not talked):
                continue
            s = _score(index, p, cand, shared, n_shared, talked)
            if s > best_score or (s == best_score and best is None):
                best, best_score = cand, s
        if best is not None:
            inc, why = best, "content"
    if inc is None and len(p.terms) <= SMALL_POST_TERMS:
        inc = _conversation(index, p, forbidden)
        why = "conversation"
    if inc is not None:
        index.absorb(inc, p)
        return inc, why
    if _can_start(p):
        return index.found(p), "new"
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
    return cast(IncidentIndex, index)


def _post_terms(index: IncidentIndex, facts: Sequence[PostFacts], fresh: Sequence[bool]
                ) -> tuple[list[list[int]], list[list[float]]]:
    """Each post's rarest bigrams (rarest first) and their IDF. Posts analysed for the first
    time are counted into the frequencies first (at a cold start there is no history; a
    re-analysed post is not counted twice)."""
    index.grams.add([f.grams for f, new in zip(facts, fresh, strict=True) if new])
    flat = np.fromiter((g for f in facts for g in f.grams), dtype=np.int64)
    idf_flat = index.grams.idf(flat).tolist() if flat.size else []
    terms, idfs, k = [], [], 0
    for f in facts:
        g = f.grams
        w = idf_flat[k : k + len(g)]
        k += len(g)
        order = sorted(range(len(g)), key=w.__getitem__, reverse=True)[:POST_TERMS]
        terms.append([g[j] for j in order])
        idfs.append([w[j] for j in order])
    return terms, idfs


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


def incidents_stage(ctx: Any, batch: Any) -> None:
    """nlp.pipeline stage: each post's role and incident; incidents founded and their stats."""
    session: Session = ctx.session
    index = _index(ctx)
    t0 = time.perf_counter()
    rows = batch.rows
    facts: list[PostFacts] | None = batch.extra(STAGE_NAME)
    if facts is None:
        facts = incidents_text_part(ctx)(batch.norm, [r.context for r in rows])
    ids = [r.id for r in rows]
    before, seen = _previous(session, ids)
    terms, idfs = _post_terms(index, facts, [i not in seen for i in ids])
    story_ids = batch.story_ids or [r.story_id for r in rows]
    debunks = batch.debunks
    lookups = _lookups(session, index, rows, story_ids)
    order = sorted(range(len(rows)), key=lambda i: (rows[i].when, rows[i].id))
    placed: list[_Open | None] = [None] * len(rows)
    for i in order:
        r, hit = rows[i], debunks[i]
        p = _Post(r.id, r.when, r.group_id, r.parent_id, story_ids[i], hit.debunk_id if hit else None,
                  facts[i].role, facts[i], terms[i], idfs[i], batch.norm[i])
        placed[i], why = place(index, p, lookups)
        ctx.count(f"incident_{why}")
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
    touched = {inc for inc in placed if inc is not None}
    reload = {inc.id for inc in touched if inc.stats is None and inc.id is not None}
    reload |= {i for i in left if i in index.open}
    if reload:
        loaded = load_stats(session, sorted(reload), exclude_posts=ids, model_version_id=ctx.model_version_id)
        for iid, counted in loaded.items():
            if iid in index.open:
                index.open[iid].stats = counted
    cols = batch.post_columns
    cats = cols.get("category") or [None] * len(rows)
    places = cols.get("places") or [[] for _ in rows]
    local = cols.get("is_local") or [None] * len(rows)
    proba, debunks, norm = batch.proba, batch.debunks, batch.norm
    for i in order:
        inc = placed[i]
        if inc is None:
            continue
        r, hit = rows[i], debunks[i]
        assert inc.stats is not None  # new ones start empty, the others were loaded above
        inc.stats.add(Member(r.id, r.when, r.group_id, r.source_id, facts[i].role, float(proba[i]),
                             hit.debunk_id if hit else None, hit.similarity if hit else None, cats[i], places[i],
                             local[i], facts[i], norm[i]))
    new = [inc for inc in touched if inc.id is None]
    if new:
        _insert(session, index, new)
    new_set = set(new)
    changed = {inc.id: inc for inc in touched if inc.id is not None and inc not in new_set}
    changed |= {i: index.open[i] for i in left if i in index.open and i not in changed}
    since = ctx.now - index.window
    stats: dict[int, IncidentStats] = {}
    extra: dict[int, dict[str, Any]] = {}
    emptied: list[int] = []
    for iid, inc in changed.items():
        st = inc.stats
        if st is None or st.post_count == 0:
            emptied.append(iid)
            continue
        stats[iid] = st
        active = st.last_seen is not None and st.last_seen >= since
        extra[iid] = {"centroid": pack_terms(inc.terms), "status": "active" if active else "dormant"}
    write_stats(session, stats, extra=extra, now=ctx.now)
    if emptied:
        _write_empty(session, emptied, ctx.now)
        for iid in emptied:
            index.close(iid)
    ctx.count("incidents_new", len(new))
    ctx.count("incidents_updated", len(changed))


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
        rows.append(stat_values(inc.stats) | {"centroid": pack_terms(inc.terms), "status": "active"})
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
