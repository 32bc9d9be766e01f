"""Incidents (一件事): the matter a post belongs to, built incrementally as posts are analysed.

An incident holds a rumor's claim, its near-copies (stories) and paraphrases, the questions and
reactions it draws, and the refutations and notices about it; or one concern's complaints and
questions. This is the unit staff work on; alerts are raised per incident.

The stage ``incidents`` runs in `yuqing analyze` after ``concerns`` (it uses each post's story,
category and places) and before ``write``. It puts ``incident_id``, ``role`` and
``role_confidence`` into ``batch.post_columns`` (written by the write stage's UPDATE) and inserts
and updates ``incidents`` rows (stats: nlp.incident_stats).

How a post finds its incident (in this order; nothing is ever re-clustered):

1. Chatter (role ``other``: "收到", "哈哈", "晚安") gets no incident: it says nothing about a
   matter, and an incident must never become alert-worthy through chatter. A reply that says
   something is not chatter (the role model sees ``is_reply``) and binds through step 3.
2. Staff decisions first: a post never joins the incident of a post it ``cannot_link`` to; a
   ``must_link`` partner's incident takes it.
3. Bindings that are stronger than any wording: a reply or quote joins its parent's incident
   (posts.parent_id), a post joins its story's incident (every near-copy of a text is one
   matter), and a post matching a debunk joins the incident holding that debunk's matches.
4. Content: candidate incidents come from an inverted index on the incident's strongest content
   words (IDF-weighted, hashed; the concern stage's document frequencies) and specific anchors
   (800元, 中心小学), so a post's cost does not grow with the number of open incidents. Score =
   the IDF share of the post's words that the incident has (containment: a short paraphrase or
   question shares most of its words with a matter, not the other way round) + a bonus for
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
from nlp.anchors import Anchors, anchor_overlap, anchors_conflict, default_extractor
from nlp.bulk import constant
from nlp.concerns import topics as tp
from nlp.incident_stats import (
    IncidentStats,
    Member,
    load_stats,
    recompute_incidents,
    stat_values,
    write_stats,
)
from nlp.incident_text import STARTER_ROLES, IncidentText, PostFacts

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
JOIN_SCORE = 0.55  # content score a post needs to join an incident (see _score)
ANCHOR_BONUS = 0.3  # times the share of specific anchors in common
CONVERSATION_BONUS = 0.15  # the incident was just talked about in the post's group
CONVERSATION = dt.timedelta(minutes=15)  # "right after" in a chat group
QUIET_PENALTY = ((dt.timedelta(days=5), 0.2), (dt.timedelta(days=2), 0.1))
POST_TERMS = 12  # strongest content words kept per post
PROFILE_TERMS = 48  # content words kept per incident (by accumulated IDF weight)
INDEXED_TERMS = 16  # of which the strongest are in the inverted index
POSTING_CAP = 48  # incidents kept per word in the index (the most recent ones)
MIN_SHARED = 2  # words in common, unless anchors or the conversation bind too
QUESTION_START_TERMS = 3  # words a question needs to start an incident by itself
SMALL_POST_TERMS = 2  # "真的吗？", "太吓人了": few words of its own, so the conversation decides
DF_STATE = "topic_docfreq"  # the concern stage's hashed document frequencies (nlp.concerns.stage)
_CHUNK = 500


# ----------------------------------------------------------------------------- open incidents


class _Open:
    """An open incident as the grouping sees it (its id is filled in once the row exists)."""

    __slots__ = ("anchors", "debunk_id", "first_seen", "id", "last_seen", "stats", "terms")

    def __init__(self, incident_id: int | None, first_seen: dt.datetime, last_seen: dt.datetime,
                 terms: dict[int, float], anchors: Anchors, debunk_id: int | None = None) -> None:
        self.id = incident_id
        self.first_seen, self.last_seen = first_seen, last_seen
        self.terms = terms  # hashed content word -> accumulated IDF weight
        self.anchors = anchors
        self.debunk_id = debunk_id
        self.stats: IncidentStats | None = None  # loaded when first touched in the run


def pack_terms(terms: dict[int, float]) -> bytes:
    """An incident's content words for ``incidents.centroid``: int32 ids then float32 weights."""
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
    """One post of a batch as the grouping sees it."""

    pos: int
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
        self.postings: dict[int, list[_Open]] = {}  # content word -> incidents, oldest first
        self.anchor_postings: dict[str, list[_Open]] = {}
        self.by_story: dict[int, _Open] = {}
        self.by_debunk: dict[int, _Open] = {}
        self.by_post: dict[int, _Open] = {}  # posts placed in this run
        self.group_last: dict[int, tuple[dt.datetime, _Open]] = {}
        self.cannot: dict[int, set[int]] = {}
        self.must: dict[int, set[int]] = {}
        self.parents: dict[str, frozenset[str]] = {}  # place -> its ancestors (gazetteer)
        self.home: frozenset[str] = frozenset()  # the office's own area: named by nearly every post
        # Slot for a paraphrase matcher (nlp.claims): (post text, incident) -> similarity 0..1.
        self.paraphrase: Callable[[str, _Open], float] | None = None
        self.dfreq: tp.DocFreq | None = None
        self._df_docs = -1.0

    def __len__(self) -> int:
        return len(self.open)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, session: Session, *, now: dt.datetime, window_days: int = DEFAULT_WINDOW_DAYS) -> IncidentIndex:
        """Incidents active within the window (older active ones are marked dormant first), and
        the staff constraints."""
        index = cls(window_days)
        since = now - index.window
        table = cast(Table, Incident.__table__)
        session.execute(
            update(table).where(table.c.status == "active", table.c.last_seen < since).values(status="dormant")
        )
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
        self._index_terms(inc, list(inc.terms))
        self._index_anchors(inc, inc.anchors)
        if row.debunk_id is not None:
            self.by_debunk.setdefault(row.debunk_id, inc)
        return inc

    def close(self, incident_id: int) -> None:
        """Stop offering an incident (emptied); stale index entries are skipped by their check."""
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
                       table.c.debunk_id, table.c.status)
                .where(table.c.id.in_(want[start : start + _CHUNK]), table.c.status != "merged")
            ):
                self._add_open(row)

    # ------------------------------------------------------------------ the inverted indexes

    def _index_terms(self, inc: _Open, new_terms: Sequence[int]) -> None:
        """Put ``inc`` under its strongest words (among ``new_terms``, the ones it just gained)."""
        if len(inc.terms) > INDEXED_TERMS:
            strongest = set(sorted(inc.terms, key=inc.terms.__getitem__, reverse=True)[:INDEXED_TERMS])
            new_terms = [t for t in new_terms if t in strongest]
        for t in new_terms:
            lst = self.postings.get(t)
            if lst is None:
                self.postings[t] = [inc]
            elif inc not in lst[-4:]:
                lst.append(inc)
                if len(lst) > POSTING_CAP:
                    del lst[: len(lst) - POSTING_CAP // 2]  # keep the most recent half

    def _index_anchors(self, inc: _Open, anchors: Anchors) -> None:
        for a in (*anchors.amounts, *anchors.names):
            lst = self.anchor_postings.setdefault(a, [])
            if inc not in lst[-4:]:
                lst.append(inc)
                if len(lst) > POSTING_CAP:
                    del lst[: len(lst) - POSTING_CAP // 2]

    def candidates(self, p: _Post) -> dict[_Open, float]:
        """Incidents sharing a strong word or a specific anchor with ``p``, with the IDF mass shared."""
        shared: dict[_Open, float] = {}
        for t, w in zip(p.terms, p.idf, strict=True):
            for inc in self.postings.get(t, ()):
                if t in inc.terms:
                    shared[inc] = shared.get(inc, 0.0) + w
        for a in (*p.facts.anchors.amounts, *p.facts.anchors.names):
            for inc in self.anchor_postings.get(a, ()):
                shared.setdefault(inc, 0.0)
        if len(shared) > 0:
            # words indexed under other incidents' strongest terms but not this one's: recount
            for inc in shared:
                if shared[inc] == 0.0:
                    shared[inc] = sum(w for t, w in zip(p.terms, p.idf, strict=True) if t in inc.terms)
        return shared

    # ------------------------------------------------------------------ growing an incident

    def absorb(self, inc: _Open, p: _Post) -> None:
        """``p`` joined ``inc``: its words and anchors (if it states something), time, conversation."""
        if p.role in ("claim", "complaint", "notice", "refutation", "question") and p.terms:
            gained = [t for t in p.terms if t not in inc.terms]
            for t, w in zip(p.terms, p.idf, strict=True):
                inc.terms[t] = inc.terms.get(t, 0.0) + w
            if len(inc.terms) > PROFILE_TERMS * 4 // 3:
                keep = sorted(inc.terms, key=inc.terms.__getitem__, reverse=True)[:PROFILE_TERMS]
                inc.terms = {t: inc.terms[t] for t in keep}
            self._index_terms(inc, gained)
            if p.facts.anchors:
                inc.anchors = inc.anchors.union(p.facts.anchors)
                self._index_anchors(inc, p.facts.anchors)
        inc.last_seen = max(inc.last_seen, p.when)
        inc.first_seen = min(inc.first_seen, p.when)
        if p.group_id is not None:
            self.group_last[p.group_id] = (p.when, inc)
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


# ----------------------------------------------------------------------------- placing one post


def _conflicts(index: IncidentIndex, p: _Post, inc: _Open) -> bool:
    return bool(p.facts.anchors) and bool(inc.anchors) and anchors_conflict(p.facts.anchors, inc.anchors, index.parents)


def _specific(index: IncidentIndex, a: Anchors) -> Anchors:
    """``a`` without the office's own area (青禾镇 is in nearly every post: it binds nothing)."""
    if not a.places or not index.home or not (a.places & index.home):
        return a
    return Anchors(a.places - index.home, a.numbers, a.amounts, a.names)


def _specific_overlap(index: IncidentIndex, a: Anchors, b: Anchors) -> float:
    if not a or not b:
        return 0.0
    return anchor_overlap(_specific(index, a), _specific(index, b))


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


def _score(index: IncidentIndex, p: _Post, inc: _Open, shared: float, n_shared: int) -> float:
    """How well ``p`` fits ``inc`` (joins at JOIN_SCORE); -1 when it must not join."""
    if _conflicts(index, p, inc):
        return -1.0
    mass = p.mass
    content = shared / mass if mass > 0 else 0.0
    overlap = _specific_overlap(index, p.facts.anchors, inc.anchors)
    recent = index.group_last.get(p.group_id) if p.group_id is not None else None
    talked = recent is not None and recent[1] is inc and p.when - recent[0] <= CONVERSATION
    if n_shared < MIN_SHARED and overlap == 0.0 and not (talked and n_shared >= 1):
        content = 0.0
    score = content + ANCHOR_BONUS * overlap + (CONVERSATION_BONUS if talked else 0.0)
    quiet = p.when - inc.last_seen
    for after, penalty in QUIET_PENALTY:
        if quiet > after:
            score -= penalty
            break
    if index.paraphrase is not None and score < JOIN_SCORE:
        score = max(score, index.paraphrase(p.text, inc))
    return score


def _bound(index: IncidentIndex, p: _Post, forbidden: set[_Open], parent_of: dict[int, _Open],
           story_of: dict[int, _Open], partner_of: dict[int, _Open]) -> tuple[_Open | None, str]:
    """The incident a staff link, reply, story or debunk binds ``p`` to (before any wording)."""
    for q in sorted(index.must.get(p.id, ())):
        inc = index.by_post.get(q) or partner_of.get(q)
        if inc is not None and inc not in forbidden:
            return inc, "must_link"
    if p.parent_id is not None:
        inc = index.by_post.get(p.parent_id) or parent_of.get(p.parent_id)
        if inc is not None and inc not in forbidden:
            return inc, "reply"
    if p.story_id is not None:
        inc = index.by_story.get(p.story_id) or story_of.get(p.story_id)
        if inc is not None and inc not in forbidden:
            return inc, "story"
    if p.debunk_id is not None and p.role not in ("refutation", "notice"):
        inc = index.by_debunk.get(p.debunk_id)
        if inc is not None and inc not in forbidden and not _conflicts(index, p, inc):
            return inc, "debunk"
    return None, ""


def _can_start(p: _Post) -> bool:
    if p.role in STARTER_ROLES:
        return len(p.terms) >= MIN_SHARED or bool(p.facts.anchors.amounts or p.facts.anchors.names)
    if p.role == "question":
        return len(p.terms) >= QUESTION_START_TERMS
    return False


def place(index: IncidentIndex, p: _Post, *, parent_of: dict[int, _Open], story_of: dict[int, _Open],
          partner_of: dict[int, _Open]) -> tuple[_Open | None, str]:
    """The incident ``p`` joins or founds, and why (a word for the counts); None for chatter."""
    if p.role == "other":
        return None, "chatter"
    forbidden = {inc for q in index.cannot.get(p.id, ()) if (inc := index.by_post.get(q) or partner_of.get(q))}
    inc, why = _bound(index, p, forbidden, parent_of, story_of, partner_of)
    if inc is None:
        best, best_score = None, JOIN_SCORE
        for cand, shared in index.candidates(p).items():
            if cand in forbidden:
                continue
            n_shared = sum(1 for t in p.terms if t in cand.terms)
            s = _score(index, p, cand, shared, n_shared)
            if s >= best_score and (best is None or s > best_score or cand.last_seen > best.last_seen):
                best, best_score = cand, s
        if best is not None:
            inc, why = best, "content"
    if inc is None and p.role in ("question", "reaction") and p.group_id is not None and len(p.terms) <= SMALL_POST_TERMS:
        recent = index.group_last.get(p.group_id)
        if recent is not None and p.when - recent[0] <= CONVERSATION and recent[1] not in forbidden \
                and not _conflicts(index, p, recent[1]):
            inc, why = recent[1], "conversation"
    if inc is not None:
        index.absorb(inc, p)
        return inc, why
    if _can_start(p):
        return index.found(p), "new"
    return None, "alone"


# ----------------------------------------------------------------------------- the stage


def incidents_text_part(ctx: Any) -> IncidentText:
    """The stage's per-text part (roles, anchors, cues), run with the text stage (in its workers)."""
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


def _docfreq(session: Session, index: IncidentIndex) -> tp.DocFreq | None:
    """The concern stage's document frequencies, re-read when they have grown by a tenth."""
    row = session.get(ConcernState, DF_STATE)
    if row is None:
        return index.dfreq
    n = float((row.meta or {}).get("n_docs", 0))
    if index.dfreq is None or n > index._df_docs * 1.1:
        index.dfreq, index._df_docs = tp.DocFreq.loads(row.value, n), n
    return index.dfreq


def _content_terms(ctx: Any, batch: Any, index: IncidentIndex) -> tuple[list[list[int]], list[list[float]]]:
    """Each post's strongest distinct content words (hashed) and their IDF."""
    from nlp.concerns.pipeline_stage import STAGE_NAME as CONCERNS

    texts = batch.extra(CONCERNS)
    if texts is not None:
        hashed = [list(dict.fromkeys(t.hashed)) for t in texts]
    else:
        hashed = [list(dict.fromkeys(tp.feature_indices(tp.keywords(toks)))) for toks in batch.tokens]
    dfreq = _docfreq(ctx.session, index)
    if dfreq is None:  # no concern stage: the batch's own frequencies
        dfreq = tp.DocFreq()
        dfreq.add(hashed)
    flat = np.fromiter((t for h in hashed for t in h), dtype=np.int64)
    idf_flat = dfreq.idf(flat).tolist() if flat.size else []
    terms, idfs, k = [], [], 0
    for h in hashed:
        w = idf_flat[k : k + len(h)]
        k += len(h)
        if len(h) > POST_TERMS:
            keep = sorted(range(len(h)), key=w.__getitem__, reverse=True)[:POST_TERMS]
            h, w = [h[j] for j in keep], [w[j] for j in keep]
        terms.append(h)
        idfs.append(w)
    return terms, idfs


def _lookup(session: Session, column: Any, values: Sequence[int], key: Any) -> dict[int, int]:
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


def incidents_stage(ctx: Any, batch: Any) -> None:
    """nlp.pipeline stage: each post's role and incident; incidents founded and their stats."""
    session: Session = ctx.session
    index = _index(ctx)
    t0 = time.perf_counter()
    rows = batch.rows
    n = len(rows)
    facts: list[PostFacts] | None = batch.extra(STAGE_NAME)
    if facts is None:
        facts = incidents_text_part(ctx)(batch.norm, [r.context for r in rows])
    terms, idfs = _content_terms(ctx, batch, index)
    story_ids = batch.story_ids or [r.story_id for r in rows]
    debunks = batch.debunks
    ids = [r.id for r in rows]
    t = Post.__table__
    # What the batch's posts were before (a re-analysed post leaves its old incident).
    before = _lookup(session, t.c.id, ids, t.c.id)
    # Incidents of parents, stories and staff-linked partners outside this run's memory.
    in_batch = set(ids)
    parent_ids = [r.parent_id for r in rows if r.parent_id is not None and r.parent_id not in index.by_post]
    story_q = [s for s in story_ids if s is not None and s not in index.by_story]
    partners = [q for i in ids for q in (*index.must.get(i, ()), *index.cannot.get(i, ())) if q not in index.by_post]
    parent_iid = _lookup(session, t.c.id, [p for p in parent_ids if p not in in_batch], t.c.id)
    story_iid = _lookup(session, t.c.story_id, story_q, t.c.story_id)
    partner_iid = _lookup(session, t.c.id, partners, t.c.id)
    index.reopen(session, [*parent_iid.values(), *story_iid.values(), *partner_iid.values()])
    parent_of = {k: index.open[v] for k, v in parent_iid.items() if v in index.open}
    story_of = {k: index.open[v] for k, v in story_iid.items() if v in index.open}
    partner_of = {k: index.open[v] for k, v in partner_iid.items() if v in index.open}

    order = sorted(range(n), key=lambda i: (rows[i].when, rows[i].id))
    placed: list[_Open | None] = [None] * n
    for i in order:
        r = rows[i]
        hit = debunks[i]
        p = _Post(i, r.id, r.when, r.group_id, r.parent_id, story_ids[i], hit.debunk_id if hit else None,
                  facts[i].role, facts[i], terms[i], idfs[i], batch.norm[i])
        inc, why = place(index, p, parent_of=parent_of, story_of=story_of, partner_of=partner_of)
        placed[i] = inc
        ctx.count(f"incident_{why}")
    ctx.timings["incidents.group"] = ctx.timings.get("incidents.group", 0.0) + time.perf_counter() - t0

    _fold_stats(ctx, batch, index, placed, facts, before)
    batch.post_columns["role"] = [f.role for f in facts]
    batch.post_columns["role_confidence"] = [round(float(f.confidence), 4) for f in facts]
    batch.post_columns["incident_id"] = [inc.id if inc is not None else None for inc in placed]
    ctx.timings["incidents"] = ctx.timings.get("incidents", 0.0) + time.perf_counter() - t0


def _fold_stats(ctx: Any, batch: Any, index: IncidentIndex, placed: list[_Open | None], facts: list[PostFacts],
                before: dict[int, int]) -> None:
    """Fold the batch's posts into their incidents' stats and write the incidents."""
    session: Session = ctx.session
    rows = batch.rows
    ids = [r.id for r in rows]
    # Incidents a re-analysed post left (or re-enters) are recounted from the database without
    # the batch's posts, as are incidents touched for the first time in the run; then the batch
    # is folded in.
    left = {before[i] for i in ids if i in before}
    index.reopen(session, left)
    touched = {inc for inc in placed if inc is not None}
    reload = {inc.id for inc in touched if inc.stats is None and inc.id is not None}
    reload |= {i for i in left if i in index.open}
    if reload:
        loaded = load_stats(session, sorted(reload), exclude_posts=ids, model_version_id=ctx.model_version_id)
        for iid, s in loaded.items():
            if iid in index.open:
                index.open[iid].stats = s
    cols = batch.post_columns
    cats = cols.get("category") or [None] * len(rows)
    places = cols.get("places") or [[] for _ in rows]
    local = cols.get("is_local") or [None] * len(rows)
    proba = batch.proba
    debunks = batch.debunks
    for i in sorted(range(len(rows)), key=lambda i: (rows[i].when, rows[i].id)):
        inc = placed[i]
        if inc is None:
            continue
        r, hit = rows[i], debunks[i]
        assert inc.stats is not None
        inc.stats.add(Member(r.id, r.when, r.group_id, r.source_id, facts[i].role, float(proba[i]),
                             hit.debunk_id if hit else None, hit.similarity if hit else None, cats[i], places[i],
                             local[i], facts[i], batch.norm[i]))
    new = [inc for inc in touched if inc.id is None]
    if new:
        _insert(session, index, new)
    changed = {inc.id: inc for inc in touched if inc.id is not None and inc not in new}
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
    """Incidents left with no post (their only posts were re-analysed elsewhere): zero, dormant."""
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
        .values(created_at=constant(conn, table.c.created_at, stamp), updated_at=constant(conn, table.c.updated_at, stamp))
        .returning(table.c.id, sort_by_parameter_order=True)
    )
    got = session.execute(stmt, rows).scalars().all()
    for inc, iid in zip(new, got, strict=True):
        inc.id = iid
        index.open[iid] = inc
