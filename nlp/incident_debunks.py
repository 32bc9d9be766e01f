"""A matter linked to its debunk as a whole, when none of its posts matched it alone.

Debunk matching (nlp.debunks) compares one post with one debunk claim. A refutation is written in
an office's words ("经派出所民警现场核实，当日在石岭小学门口停放的白色面包车系校服厂家送货车辆") and
the chat in the residents' ("石岭小学门口有面包车抢娃娃", "派出所说了 那个面包车是送校服的"): no single
line says enough of it to match, while the matter's claims, questions and refutations together
hold most of what the debunk says. So an incident is compared with the debunk's claim and
refutation together, and with its claim alone (a long refutation dilutes a claim retold closely):
the IDF mass of the character bigrams they share, as a share of the smaller side (the grouping's
own containment measure and the stream's bigram frequencies, nlp.incidents).

A link needs the score, a clear lead over the runner-up on both sides (the next incident for this
debunk, the next debunk for this incident) and no conflicting place or amount (东湾村 / 柳树村,
800元 / 500元). Notices that spread are never linked: a true notice is not a rumor. The link is
stored as a ``debunk_matches`` row (method ``incident``) on the incident's post that shares most
with the debunk, so every recount of the incident reads it like any other match, and the
incident points at the debunk at once. The score is kept as the similarity: it is a bag-of-words
share, not a claim-to-claim score, so the debunk-match alert rule (0.75 by default) does not fire
on it alone; the link makes the matter a rumor, adds the risk's debunk part and shows the
official refutation on the alert page.

Runs at the end of each analysis for the incidents it changed that have no debunk, and when a
debunk is added or edited (`nlp.debunks.match_open_incidents`) for the open incidents.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.tables import Debunk, Incident, Post, utcnow
from nlp.anchors import Anchors, anchors_conflict
from nlp.debunks import DebunkHit, gazetteer_place_parents, write_matches
from nlp.incident_index import GramFreq
from nlp.incident_text import HOOK_GRAMS, anchors_of, grams_of
from nlp.normalize import normalize
from nlp.similarity import match_key

__all__ = ["LINK_SCORE", "link_incidents"]

LINK_SCORE = 0.2  # IDF share of the smaller side's bigrams held by the other
LINK_LEAD = 1.5  # ... and this many times the runner-up's score, on both sides
CLAIM_LINK_SCORE = 0.3  # the same share of the debunk's claim alone (its refutation left out)
MIN_SHARED = 4  # bigrams in common at least
POSTS_READ = 40  # stating posts of an incident read (its first ones: the claim and what followed)
LINKED_ROLES = ("claim", "question", "refutation", "complaint")  # posts whose words state the matter
HOLDER_ROLES = ("claim", "question", "complaint")  # a post that can carry the link (never a refutation)
RECENT_INCIDENTS = 2000  # a debunk added is compared with this many matters, the latest talked about
_CHUNK = 500


@dataclass
class _Side:
    key: int
    grams: np.ndarray  # distinct hashed bigrams, sorted
    anchors: Anchors
    claim_grams: np.ndarray | None = None  # a debunk's: those of its claim alone


def _grams(texts: Iterable[str]) -> np.ndarray:
    out: set[int] = set()
    for t in texts:
        out.update(g for g in grams_of(match_key(t)) if g not in HOOK_GRAMS)
    return np.fromiter(sorted(out), dtype=np.int64, count=len(out))


def _conflict(debunk: Anchors, incident: Anchors, parents: Mapping[str, frozenset[str]]) -> bool:
    """Whether the debunk's claim is about another place or amount than the matter. The matter's
    anchors are the union over its posts (retellings name the village, the county, a neighbour's
    amount), so it conflicts only when none of its places or amounts agrees with the debunk's:
    东湾村 vs 柳树村, 800元 vs 500元 (a place inside the other agrees: 石桥村 in 青禾镇)."""
    return _none_agree(debunk.places, incident.places, lambda x: Anchors(places=frozenset({x})), parents) \
        or _none_agree(debunk.amounts, incident.amounts, lambda x: Anchors(amounts=frozenset({x})), parents)


def _none_agree(a: frozenset[str], b: frozenset[str], wrap: Callable[[str], Anchors],
                parents: Mapping[str, frozenset[str]]) -> bool:
    """Both name some, none of ``a`` agrees with one of ``b``, and some pair disagrees (two
    amounts in other units neither agree nor disagree)."""
    if not a or not b or a & b:
        return False
    clash = [anchors_conflict(wrap(x), wrap(y), parents) for x in a for y in b]
    return any(clash) and all(clash)


def _incidents(session: Session, incident_ids: Sequence[int] | None) -> dict[int, Incident]:
    q = select(Incident).where(Incident.status == "active", Incident.debunk_id.is_(None),
                               Incident.kind != "notice")
    if incident_ids is None:
        # A debunk just added: the matters talked about most lately (the analysis links the
        # others as they go on), at most RECENT_INCIDENTS of them, so adding one stays a short request.
        recent = q.order_by(Incident.last_seen.desc(), Incident.id.desc())
        return {i.id: i for i in session.scalars(recent.limit(RECENT_INCIDENTS))}
    out: dict[int, Incident] = {}
    ids = sorted(set(incident_ids))
    for start in range(0, len(ids), _CHUNK):
        out |= {i.id: i for i in session.scalars(q.where(Incident.id.in_(ids[start:start + _CHUNK])))}
    return out


def _posts(session: Session, ids: list[int]) -> dict[int, list[tuple[int, str, str]]]:
    """(post id, role, normalised text) of each incident's first stating posts."""
    out: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(Post.incident_id, Post.id, Post.role, Post.norm_text, Post.raw_text)
            .where(Post.incident_id.in_(ids[start:start + _CHUNK]), Post.role.in_(LINKED_ROLES))
            .order_by(Post.published_at, Post.id)
        ).all()
        for r in rows:
            if len(out[r.incident_id]) < POSTS_READ:
                out[r.incident_id].append((r.id, r.role, r.norm_text or normalize(r.raw_text or "")))
    return out


def _debunks(session: Session, debunk_ids: Sequence[int] | None) -> list[_Side]:
    q = select(Debunk.id, Debunk.claim, Debunk.refutation).where(Debunk.active.is_(True))
    if debunk_ids is not None:
        q = q.where(Debunk.id.in_(sorted(set(debunk_ids))))
    out = []
    for did, claim, refutation in session.execute(q.order_by(Debunk.id)):
        text = normalize(f"{claim} {refutation or ''}")
        # What the debunk is about is its claim's place and amounts; the refutation may name others
        # (the office, the real cause, a fee that is not charged).
        out.append(_Side(did, _grams([text]), anchors_of(normalize(claim)), _grams([normalize(claim)])))
    return out


def _anchors(incident: Incident, posts: list[tuple[int, str, str]]) -> Anchors:
    """What the matter names: its stored anchors and those of the posts read (a matter written
    before its anchors were kept, or whose stored list was cut at its most frequent)."""
    out = Anchors.from_dict(incident.anchors or {})
    for _pid, _role, text in posts:
        out = out.union(anchors_of(text))
    return out


def _matrix(sides: Sequence[_Side], column: dict[int, int]) -> sp.csr_matrix:
    """Sides x vocabulary, 1 where a side holds the bigram."""
    indptr: list[int] = [0]
    cols: list[int] = []
    for side in sides:
        cols.extend(column[g] for g in side.grams.tolist())
        indptr.append(len(cols))
    return sp.csr_matrix((np.ones(len(cols)), np.asarray(cols, dtype=np.int64), np.asarray(indptr)),
                         shape=(len(sides), len(column)))


def _scores(debunks: Sequence[_Side], incidents: Sequence[_Side], idf: np.ndarray,
            column: dict[int, int]) -> np.ndarray:
    """Debunks x incidents: the IDF mass of the bigrams they share over the smaller side's mass
    (0 with fewer than MIN_SHARED in common)."""
    d, i = _matrix(debunks, column), _matrix(incidents, column)
    shared = (d.multiply(idf[None, :]).tocsr() @ i.T).toarray()
    count = (d @ i.T).toarray()
    norm = np.minimum.outer(d @ idf, i @ idf)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((count >= MIN_SHARED) & (norm > 0), shared / norm, 0.0)
    return out


def _best_pairs(debunks: Sequence[_Side], incidents: Sequence[_Side], idf: np.ndarray, column: dict[int, int],
                parents: Mapping[str, frozenset[str]]) -> list[tuple[int, int, float]]:
    """(debunk, incident, score) pairs that clear the score and lead over their runners-up on
    both sides (the next incident for this debunk, the next debunk for this incident). A pair
    whose anchors conflict scores nothing, and is nobody's runner-up."""
    if not debunks or not incidents:
        return []
    scores = np.zeros((len(debunks), len(incidents)))
    # The claim with its refutation, or the claim alone: a long refutation in an office's words
    # dilutes a claim the matter retells almost word for word. The claim alone is short, so shares
    # more by chance with a matter of the same kind elsewhere: it needs CLAIM_LINK_SCORE (on the tune
    # part, LINK_SCORE linked 13 more matters and 3 to the wrong debunk; this bar 5, none wrong).
    claims = [_Side(d.key, d.claim_grams if d.claim_grams is not None else d.grams, d.anchors) for d in debunks]
    for start in range(0, len(incidents), _CHUNK):
        part = incidents[start:start + _CHUNK]
        alone = _scores(claims, part, idf, column)
        alone[alone < CLAIM_LINK_SCORE] = 0.0
        scores[:, start:start + _CHUNK] = np.maximum(_scores(debunks, part, idf, column), alone)
    for r, d in enumerate(debunks):
        for c in np.flatnonzero(scores[r] >= LINK_SCORE / LINK_LEAD).tolist():
            if _conflict(d.anchors, incidents[c].anchors, parents):
                scores[r, c] = 0.0
    pairs = []
    for r, d in enumerate(debunks):
        order = np.argsort(-scores[r], kind="stable")[:2].tolist()
        top = [float(scores[r, c]) for c in order] + [0.0]
        best = order[0]
        if top[0] >= LINK_SCORE and top[0] >= LINK_LEAD * top[1] \
                and top[0] >= LINK_LEAD * _next_in_column(scores, r, best):
            pairs.append((d.key, incidents[best].key, top[0]))
    return pairs


def _next_in_column(scores: np.ndarray, row: int, col: int) -> float:
    """The best score of another debunk for incident ``col``."""
    column = np.delete(scores[:, col], row)
    return float(column.max()) if column.size else 0.0


def _holder(posts: list[tuple[int, str, str]], debunk: _Side, idf: np.ndarray, column: dict[int, int]) -> int | None:
    """The post that carries the link: the claim (else question or complaint) sharing most."""
    best, best_mass = None, 0.0
    for pid, role, text in posts:
        if role not in HOLDER_ROLES:
            continue
        shared = np.intersect1d(_grams([text]), debunk.grams, assume_unique=True)
        mass = float(sum(idf[column[g]] for g in shared.tolist())) + (1e-3 if role == "claim" else 0.0)
        if mass > best_mass:
            best, best_mass = pid, mass
    return best


def link_incidents(
    session: Session,
    *,
    incident_ids: Sequence[int] | None = None,
    debunk_ids: Sequence[int] | None = None,
    parents: Mapping[str, frozenset[str]] | None = None,
    freq: GramFreq | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Link active incidents that have no debunk (these, or all) to the debunks (these, or the
    whole active library) they state as a whole. ``freq``: the stream's bigram frequencies when
    the caller holds them (the incident stage does). Returns the number of incidents linked."""
    incidents = _incidents(session, incident_ids)
    if not incidents:
        return 0
    debunks = _debunks(session, debunk_ids)
    if not debunks:
        return 0
    if parents is None:
        parents = gazetteer_place_parents()
    posts = _posts(session, sorted(incidents))
    sides = [_Side(iid, _grams(t for _p, _r, t in posts[iid]), _anchors(incidents[iid], posts[iid]))
             for iid in sorted(incidents) if posts.get(iid)]
    if not sides:
        return 0
    every = np.unique(np.concatenate([x.grams for x in (*sides, *debunks)]))
    column = {g: k for k, g in enumerate(every.tolist())}
    idf = (freq or GramFreq.load(session)).idf(every)
    by_debunk = {d.key: d for d in debunks}
    stamp = now or utcnow()
    linked = 0
    pairs = _best_pairs(debunks, sides, idf, column, parents)
    for did, iid, score in pairs:
        holder = _holder(posts[iid], by_debunk[did], idf, column)
        if holder is None:
            continue
        write_matches(session, [(holder, DebunkHit(did, round(score, 4), "incident"))])
        incident = incidents[iid]
        incident.debunk_id, incident.debunk_similarity, incident.updated_at = did, round(score, 4), stamp
        linked += 1
    session.flush()
    return linked
