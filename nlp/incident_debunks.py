"""A matter linked to its debunk as a whole, when none of its posts matched it alone.

Debunk matching (nlp.debunks) compares one post with one debunk claim. A refutation is written in
an office's words ("经派出所民警现场核实，当日在石岭小学门口停放的白色面包车系校服厂家送货车辆") and
the chat in the residents' ("石岭小学门口有面包车抢娃娃", "派出所说了 那个面包车是送校服的"): no single
line says enough of it to match, while the matter's claims, questions and refutations together
hold most of what the debunk says. So an incident is compared with the debunk's claim and
refutation together: the IDF mass of the character bigrams they share, as a share of the smaller
side (the grouping's own containment measure and the stream's bigram frequencies, nlp.incidents).

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.tables import Debunk, DebunkMatch, Incident, Post, utcnow
from nlp.anchors import Anchors, anchors_conflict
from nlp.incident_index import GramFreq
from nlp.incident_text import HOOK_GRAMS, anchors_of, grams_of
from nlp.normalize import normalize
from nlp.similarity import match_key

__all__ = ["LINK_SCORE", "link_incidents"]

LINK_SCORE = 0.2  # IDF share of the smaller side's bigrams held by the other
LINK_LEAD = 1.5  # ... and this many times the runner-up's score, on both sides
MIN_SHARED = 4  # bigrams in common at least
POSTS_READ = 40  # stating posts of an incident read (its first ones: the claim and what followed)
LINKED_ROLES = ("claim", "question", "refutation", "complaint")  # posts whose words state the matter
HOLDER_ROLES = ("claim", "question", "complaint")  # a post that can carry the link (never a refutation)
MIN_POSTS = 2  # a matter of one post was compared with the library when that post was analysed
_CHUNK = 500


@dataclass
class _Side:
    key: int
    grams: np.ndarray  # distinct hashed bigrams, sorted
    anchors: Anchors


def _grams(texts: Iterable[str]) -> np.ndarray:
    out: set[int] = set()
    for t in texts:
        out.update(g for g in grams_of(match_key(t)) if g not in HOOK_GRAMS)
    return np.fromiter(sorted(out), dtype=np.int64, count=len(out))


def _solid(a: Anchors) -> Anchors:
    """Places and amounts: what tells two matters apart reliably (see nlp.incident_merge)."""
    return Anchors(a.places, frozenset(), a.amounts, frozenset())


def _conflict(a: Anchors, b: Anchors, parents: Mapping[str, frozenset[str]]) -> bool:
    sa, sb = _solid(a), _solid(b)
    return bool(sa and sb and anchors_conflict(sa, sb, parents))


def _incidents(session: Session, incident_ids: Sequence[int] | None) -> dict[int, Incident]:
    q = select(Incident).where(Incident.status == "active", Incident.debunk_id.is_(None),
                               Incident.kind != "notice", Incident.post_count >= MIN_POSTS)
    if incident_ids is None:
        return {i.id: i for i in session.scalars(q)}
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
        out.append(_Side(did, _grams([text]), anchors_of(text)))
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
    both sides; anchors that conflict rule a pair out (checked on the pairs that would link, in
    order, so a conflicting best gives way to the next)."""
    if not debunks or not incidents:
        return []
    scores = np.zeros((len(debunks), len(incidents)))
    for start in range(0, len(incidents), _CHUNK):
        scores[:, start:start + _CHUNK] = _scores(debunks, incidents[start:start + _CHUNK], idf, column)
    pairs = []
    for r, d in enumerate(debunks):
        row = scores[r]
        while True:
            c = int(np.argmax(row))
            top = float(row[c])
            if top < LINK_SCORE:
                break
            if _conflict(d.anchors, incidents[c].anchors, parents):
                row = row.copy()
                row[c] = 0.0
                scores[r, c] = 0.0
                continue
            row_next = float(np.partition(row, -2)[-2]) if len(row) > 1 else 0.0
            col_next = float(np.partition(scores[:, c], -2)[-2]) if len(debunks) > 1 else 0.0
            if top >= LINK_LEAD * row_next and top >= LINK_LEAD * col_next:
                pairs.append((d.key, incidents[c].key, top))
            break
    return pairs


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


def _write_link(session: Session, post_id: int, debunk_id: int, score: float, stamp: dt.datetime) -> None:
    stmt = upsert_insert(session, DebunkMatch.__table__)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["post_id", "debunk_id"],
        set_={"similarity": stmt.excluded.similarity, "method": stmt.excluded.method,
              "matched_at": stmt.excluded.matched_at},
    ), [{"post_id": post_id, "debunk_id": debunk_id, "similarity": round(score, 4), "method": "incident",
         "matched_at": stamp}])


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
        from nlp.debunks import gazetteer_place_parents  # nlp.debunks calls this module: import late

        parents = gazetteer_place_parents()
    posts = _posts(session, sorted(incidents))
    sides = [_Side(iid, _grams(t for _p, _r, t in posts[iid]), Anchors.from_dict(incidents[iid].anchors or {}))
             for iid in sorted(incidents) if posts.get(iid)]
    if not sides:
        return 0
    every = np.unique(np.concatenate([x.grams for x in (*sides, *debunks)]))
    column = {g: k for k, g in enumerate(every.tolist())}
    idf = (freq or GramFreq.load(session)).idf(every)
    by_debunk = {d.key: d for d in debunks}
    stamp = now or utcnow()
    linked = 0
    for did, iid, score in _best_pairs(debunks, sides, idf, column, parents):
        holder = _holder(posts[iid], by_debunk[did], idf, column)
        if holder is None:
            continue
        _write_link(session, holder, did, score, stamp)
        incident = incidents[iid]
        incident.debunk_id, incident.debunk_similarity, incident.updated_at = did, round(score, 4), stamp
        linked += 1
    session.flush()
    return linked
