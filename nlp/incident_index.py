"""The open incidents of an analysis run and the indexes that find a post's candidates.

Used by the incident stage (nlp.incidents): `IncidentIndex` holds the incidents active in the
window (loaded once per run, then grown in memory), inverted indexes from character bigrams and
specific anchors to incidents (posting lists capped, newest kept, so a lookup costs the same with
1,000 or 100,000 open incidents), the story / debunk / post -> incident maps of the run, the
conversation of each chat group, and the staff constraints. `GramFreq` keeps the bigram document
frequencies across runs.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from core.tables import ConcernState, Incident, IncidentConstraint
from nlp.anchors import Anchors, default_extractor
from nlp.incident_stats import IncidentStats
from nlp.incident_text import GRAM_FEATURES, PostFacts

__all__ = ["GramFreq", "IncidentIndex", "event_families_of", "families_of", "live", "pack_terms", "unpack_terms"]

log = logging.getLogger(__name__)

DEFAULT_WINDOW_DAYS = 7
CONVERSATION = dt.timedelta(minutes=15)  # "right after" in a chat group
SCORED_CANDIDATES = 4  # candidates scored in full (the best by the probe terms)
PROFILE_TERMS = 160  # bigrams kept per incident (by accumulated IDF weight)
INDEXED_TERMS = 48  # bigrams a founder is listed under in the inverted index
LOAD_INDEXED = 32  # bigrams an incident loaded at the start of a run is listed under (its strongest)
MAX_INDEXED = 96  # bigrams an incident is listed under at most (it gains some as it grows)
POSTING_CAP = 32  # incidents kept per bigram in the index (the most recent ones)
RECENT_PER_GROUP = 4  # incidents remembered per chat group for the conversation
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

    __slots__ = ("anchors", "claims", "debunk_id", "event_texts", "families", "first_seen", "guarded", "id", "indexed",
                 "last_seen", "mass", "merged_into", "packed", "stats", "terms")

    def __init__(self, incident_id: int | None, first_seen: dt.datetime, last_seen: dt.datetime,
                 terms: dict[int, float], anchors: Anchors, debunk_id: int | None = None) -> None:
        self.id = incident_id
        self.first_seen, self.last_seen = first_seen, last_seen
        self.terms = terms  # hashed bigram -> accumulated IDF weight
        self.mass = 0.0  # IDF mass of its bigrams (each counted once), for reverse containment
        self.indexed = 0  # bigrams it is listed under in the inverted index
        self.packed: bytes | None = None  # pack_terms(terms) as last written (None: terms changed)
        self.anchors = anchors
        self.debunk_id = debunk_id
        self.stats: IncidentStats | None = None  # loaded when first touched in the run
        self.merged_into: _Open | None = None  # set when the grouping merged it into another
        self.guarded = False  # holds a post staff kept apart from another (never merged automatically)
        self.claims: tuple[str, ...] = ()  # its first claims' texts, for the paraphrase signal
        # The kinds of event its statements naming a place name (`families_of`): read only for a few
        # candidates, so the texts wait in ``event_texts`` until then (a tenth of a run's time else).
        self.families: frozenset[str] = frozenset()
        self.event_texts: list[str] = []


def pack_terms(terms: dict[int, float], mass: float = 0.0) -> bytes:
    """An incident's bigrams for ``incidents.centroid``: a count, its IDF mass (float32), int32
    ids and float32 weights, strongest first (the load indexes the first ones without sorting)."""
    order = sorted(terms, key=terms.__getitem__, reverse=True)
    keys = np.fromiter(order, dtype=np.int32, count=len(order))
    vals = np.fromiter((terms[t] for t in order), dtype=np.float32, count=len(order))
    return len(terms).to_bytes(4, "little") + np.float32(mass).tobytes() + keys.tobytes() + vals.tobytes()


def unpack_terms(blob: bytes | None) -> tuple[dict[int, float], float]:
    """`pack_terms` undone: (bigram -> weight, strongest first; IDF mass)."""
    if not blob or len(blob) < 8:
        return {}, 0.0
    n = int.from_bytes(blob[:4], "little")
    mass = float(np.frombuffer(blob[4:8], dtype=np.float32)[0])
    keys = np.frombuffer(blob[8 : 8 + 4 * n], dtype=np.int32)
    vals = np.frombuffer(blob[8 + 4 * n : 8 + 8 * n], dtype=np.float32)
    return dict(zip(keys.tolist(), vals.tolist(), strict=True)), mass


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
    probe: list[tuple[int, float]] = field(default_factory=list)  # rarest bigrams another post has too
    wide: list[tuple[int, float]] = field(default_factory=list)  # ... more of them, for a second look
    quote: _Post | None = None  # the part it quotes ("网传“…”不实"), as a post of its own
    sender: str | None = None  # who sent it (posts.author: a pseudonym in chat), for the sender's thread
    source_places: frozenset[str] | None = None  # places it names only as its source (nlp.incidents), once read

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
        self.group_last: dict[int, _Open | None] = {}  # the incident of each group's last message placed
        # (group, sender) -> (when, incident) of the sender's last message placed in the group: one
        # person carries a matter on over several lines (a forward, then its caption)
        self.sender_last: dict[tuple[int, str], tuple[dt.datetime, _Open]] = {}
        self.cannot: dict[int, set[int]] = {}
        self.must: dict[int, set[int]] = {}
        self.parents: dict[str, frozenset[str]] = {}  # place -> the places it lies in (gazetteer)
        self.home: frozenset[str] = frozenset()  # the office's own area: named by nearly every post
        self.landmarks: frozenset[str] = frozenset()  # the gazetteer's offices, schools, plants (kind landmark)
        self.spots: frozenset[str] = frozenset()  # its landmarks and streets: places of one matter or few
        # The paraphrase signal (nlp.incident_paraphrase.Paraphrase: the claim matcher), or None.
        self.paraphrase: Any = None
        self.grams = GramFreq()
        self.dirty: dict[int, _Open] = {}  # incidents whose row is behind (written by _flush)
        self.merges: list[tuple[_Open, _Open]] = []  # (merged away, into) not yet written (nlp.incident_merge)
        self.batches = 0

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
                   table.c.debunk_id, table.c.title)
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
        index._guard(session)
        index.parents = default_extractor().parents
        index.home, index.landmarks = _home_places(), _landmarks()
        index.spots = index.landmarks | _landmarks(("street",))
        log.debug("incident index loaded", extra={"open": len(index.open), "window_days": window_days})
        return index

    def _guard(self, session: Session) -> None:
        """Mark the open incidents holding a post staff kept apart from another (cannot_link):
        the grouping never merges those on its own."""
        from core.tables import Post

        ids = sorted(self.cannot)
        t = cast(Table, Post.__table__)
        for start in range(0, len(ids), _CHUNK):
            for (iid,) in session.execute(
                select(t.c.incident_id).where(t.c.id.in_(ids[start : start + _CHUNK]), t.c.incident_id.is_not(None))
            ):
                inc = self.open.get(iid)
                if inc is not None:
                    inc.guarded = True

    def _add_open(self, row: Any) -> _Open:
        terms, mass = unpack_terms(row.centroid)
        inc = _Open(row.id, row.first_seen, row.last_seen, terms, Anchors.from_dict(row.anchors), row.debunk_id)
        inc.mass = mass
        if row.title:  # its headline: its representative claim, for the paraphrase signal
            inc.claims = (row.title,)
            inc.event_texts.append(row.title)
        self.open[row.id] = inc
        self._index_terms(inc, list(itertools.islice(terms, LOAD_INDEXED)))  # stored strongest first
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
                       table.c.debunk_id, table.c.title)
                .where(table.c.id.in_(want[start : start + _CHUNK]), table.c.status != "merged")
            ):
                self._add_open(row)

    # ------------------------------------------------------------------ the inverted indexes

    def _index_terms(self, inc: _Open, new_terms: Sequence[int]) -> None:
        """List ``inc`` under ``new_terms`` (in order) until it is listed under MAX_INDEXED."""
        room = MAX_INDEXED - inc.indexed
        if room <= 0:
            return
        for t in new_terms[:room]:
            _post(self.postings.setdefault(t, []), inc)
        inc.indexed += min(room, len(new_terms))

    def _index_anchors(self, inc: _Open, anchors: Anchors) -> None:
        for a in (*anchors.amounts, *anchors.names):
            _post(self.anchor_postings.setdefault(a, []), inc)

    index_terms = _index_terms
    index_anchors = _index_anchors

    def candidates(self, p: _Post, recent: Iterable[_Open] = (),
                   probe_terms: list[tuple[int, float]] | None = None) -> list[tuple[_Open, float, int]]:
        """The incidents ``p`` may join, found through its rarest shared bigrams (`_Post.probe`),
        its specific anchors and its group's conversation (``recent``); the best
        SCORED_CANDIDATES with the IDF mass and the number of ``p``'s bigrams they hold. Posting
        lists are capped, so this costs the same with 1,000 or 100,000 open incidents."""
        probe: dict[_Open, float] = {}
        postings = self.postings
        for t, w in p.probe if probe_terms is None else probe_terms:
            for inc in postings.get(t, ()):
                if inc.merged_into is not None:
                    inc = live(inc)
                probe[inc] = probe.get(inc, 0.0) + w
        for a in (*p.facts.anchors.amounts, *p.facts.anchors.names):
            for inc in self.anchor_postings.get(a, ()):
                probe.setdefault(live(inc), 0.0)
        for inc in recent:
            probe.setdefault(inc, 0.0)
        best = sorted(probe, key=probe.__getitem__, reverse=True)[:SCORED_CANDIDATES] \
            if len(probe) > SCORED_CANDIDATES else list(probe)
        return [_shared(p, inc) for inc in best]

    def recent_in_group(self, p: _Post, within: dt.timedelta = CONVERSATION) -> list[tuple[dt.datetime, _Open]]:
        """Incidents talked about in ``p``'s group within ``within`` before it, newest first."""
        if p.group_id is None:
            return []
        out: list[tuple[dt.datetime, _Open]] = []
        for w, inc in reversed(self.group_recent.get(p.group_id, ())):
            inc = live(inc)
            if timedelta_ok(p.when - w, within) and (inc.id is None or inc.id in self.open) \
                    and all(inc is not i for _w, i in out):
                out.append((w, inc))
        return out

    # ------------------------------------------------------------------ growing an incident

    def absorb(self, inc: _Open, p: _Post, copy: bool = False) -> None:
        """``p`` joined ``inc``: its bigrams and anchors (if it states something and is not a
        near-copy, ``copy``, of a text the incident has), time, conversation."""
        if p.role in STATING_ROLES and p.terms and not copy:
            inc.packed = None
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
                keep = heapq.nlargest(PROFILE_TERMS, terms, key=terms.__getitem__)
                inc.mass *= len(keep) / len(terms)
                inc.terms = {t: terms[t] for t in keep}
            if gained and inc.indexed < MAX_INDEXED:
                shared = {t for t, _w in p.probe}  # bigrams other posts have: what paraphrases will probe
                self._index_terms(inc, [t for t in gained if t in shared] + [t for t in gained if t not in shared])
            if p.facts.anchors:
                inc.anchors = inc.anchors.union(p.facts.anchors)
                self._index_anchors(inc, p.facts.anchors)
                if p.facts.anchors.places and p.text:
                    inc.event_texts.append(p.text)
                    if len(inc.event_texts) > EVENT_TEXTS:
                        families_of(inc)
        inc.last_seen = max(inc.last_seen, p.when)
        inc.first_seen = min(inc.first_seen, p.when)
        if p.id in self.cannot:
            inc.guarded = True
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


def timedelta_ok(gap: dt.timedelta, within: dt.timedelta = CONVERSATION) -> bool:
    """A gap short enough to be the same conversation (a little negative too: two importers'
    clocks disagree by seconds)."""
    return -CONVERSATION <= gap <= within


def live(inc: _Open) -> _Open:
    """Where ``inc``'s matter lives now: itself, or the incident the grouping merged it into."""
    while inc.merged_into is not None:
        inc = inc.merged_into
    return inc


def _shared(p: _Post, inc: _Open) -> tuple[_Open, float, int]:
    """``inc`` with the IDF mass and number of ``p``'s bigrams it holds."""
    terms = inc.terms
    mass, n = 0.0, 0
    for t, w in zip(p.terms, p.idf, strict=True):
        if t in terms:
            mass += w
            n += 1
    return inc, mass, n


def _post(lst: list[_Open], inc: _Open) -> None:
    """Append ``inc`` to a posting list once; a list past POSTING_CAP keeps its newest half."""
    if inc in lst[-4:]:
        return
    lst.append(inc)
    if len(lst) > POSTING_CAP:
        del lst[: len(lst) - POSTING_CAP // 2]


#: Texts an incident holds back before it reads their kinds of event (`families_of`).
EVENT_TEXTS = 32


def families_of(inc: _Open) -> frozenset[str]:
    """The kinds of event ``inc``'s statements naming a place name (nlp.claim_events)."""
    if inc.event_texts:
        inc.families = inc.families.union(*(event_families_of(t) for t in inc.event_texts))
        inc.event_texts = []
    return inc.families


@lru_cache(maxsize=1 << 14)
def event_families_of(norm_text: str) -> frozenset[str]:
    """The kinds of event a text names (nlp.claim_events: water cut, garbage, pollution ...)."""
    from nlp.claim_events import event_families
    from nlp.claim_words import canonical_key
    from nlp.claims import claim_key

    return event_families(canonical_key(claim_key(norm_text)))


def _landmarks(kinds: tuple[str, ...] = ("landmark",)) -> frozenset[str]:
    """The gazetteer's landmarks (白沙供电所, 中心小学), or its places of other ``kinds``, or nothing."""
    from nlp.concerns.errors import ConcernConfigError
    from nlp.concerns.places import load_gazetteer

    try:
        places = load_gazetteer().places
    except ConcernConfigError:
        return frozenset()
    return frozenset(name for name, spec in places.items() if spec.kind in kinds)


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
