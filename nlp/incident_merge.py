"""Merging two open incidents when a later post shows they are one matter.

Grouping is incremental, so one matter can start twice: a question in one group ("听说幼儿园中午饭
有问题 好多孩子拉肚子住院了 真的吗") and the claim in another ("桂山镇中心幼儿园今天中午食物中毒") each
found an incident before anything ties them. A later post that fits both (a retelling, a
refutation naming the matter, a reply to one that restates the other) is that tie: the younger
incident is merged into the older one, in memory at once (`merge_linked`, called while placing the
post) and in the database after the batch is placed (`write_merges`: its posts move over, it becomes
``merged`` with ``merged_into_id``, and the alert evaluation folds its alert into the older one's).

Nothing is re-clustered: a merge costs the two incidents' profiles, never a scan of the others.
A merge needs the post to fit both well (not just a word in common), the two incidents to share
content of their own, no conflicting anchors (东湾村 / 柳树村, 800元 / 500元), and no staff
decision against it (an incident holding a post staff kept apart is never merged automatically).
"""

from __future__ import annotations

import datetime as dt
import heapq
from typing import cast

import numpy as np
from sqlalchemy import Table, update
from sqlalchemy.orm import Session

from core.tables import Incident, Post
from nlp.anchors import Anchors, anchors_conflict
from nlp.incident_index import PROFILE_TERMS, IncidentIndex, _Open, _Post, live

__all__ = ["LINKING_ROLES", "merge_linked", "write_merges"]

#: Roles of posts that can tie two incidents: they state the matter (a reaction or chatter that
#: names two matters, "又是银行又是鼠疫 今天咋了", ties nothing).
LINKING_ROLES = frozenset({"claim", "refutation", "notice", "complaint", "question"})
MERGE_SCORE = 0.5  # the post's fit to each of the two incidents (nlp.incidents._score)
STRONG_FIT = 1.0  # ... or to one of them, when it fits the other at least as a member would
MEMBER_FIT = 0.3  # (nlp.incidents.JOIN_SCORE)
MERGE_MIN_SHARED = 4  # bigrams the post shares with each of them
LINK_MIN_TERMS = 8  # bigrams the post needs at all (a short line fits anything)
PAIR_OVERLAP = 0.12  # IDF share of the smaller incident's profile the other holds
# A post that names two matters to tell them apart or asks whether they are one ("收费换报警器
# 的跟免费检查不是一回事", "跟网格员说的是一回事吗",
# "两码事") ties nothing together, however well it fits both.
APART_CUES = ("一回事", "一码事", "两码事", "两回事", "不是同一", "别搞混", "别弄混", "不要混淆")


def _pair_overlap(index: IncidentIndex, a: _Open, b: _Open) -> float:
    """How much of the smaller profile the larger holds, by IDF (each bigram once)."""
    small, large = (a, b) if len(a.terms) <= len(b.terms) else (b, a)
    if not small.terms:
        return 0.0
    keys = np.fromiter(small.terms, dtype=np.int64, count=len(small.terms))
    idf = index.grams.idf(keys)
    inside = np.fromiter((t in large.terms for t in small.terms), dtype=bool, count=len(small.terms))
    total = float(idf.sum())
    return float(idf[inside].sum()) / total if total > 0 else 0.0


def _solid(a: Anchors) -> Anchors:
    """The anchors of an incident that tell two matters apart reliably enough for a merge: its
    places and amounts. Named things are left out: an incident's anchors are the union over its
    posts, and the named things read off chat lines include fragments ("问请联系村委会",
    "电信诈骗政府") that would make any two incidents "conflict"."""
    return Anchors(a.places, frozenset(), a.amounts, frozenset())


def mergeable(index: IncidentIndex, a: _Open, b: _Open) -> bool:
    """Whether two incidents may become one without a staff decision."""
    if a is b or a.guarded or b.guarded:
        return False
    sa, sb = _solid(a.anchors), _solid(b.anchors)
    if sa and sb and anchors_conflict(sa, sb, index.parents):
        return False
    return _pair_overlap(index, a, b) >= PAIR_OVERLAP


def merge_linked(index: IncidentIndex, p: _Post, joined: _Open, ranked: list[tuple[float, int, _Open, int]]
                 ) -> _Open | None:
    """``p`` joined ``joined`` (by its words, or through a reply, story, debunk or staff link:
    its words must fit ``joined`` all the same); when they also fit another open incident well,
    the two merge. ``ranked``: ``p``'s candidates by score (nlp.incidents._ranked). Returns the
    incident ``p`` ends in after a merge, else None."""
    if len(p.terms) < LINK_MIN_TERMS or any(c in p.text for c in APART_CUES):
        return None
    fit: dict[_Open, tuple[float, int]] = {}
    for score, _k, inc, n in ranked:
        fit.setdefault(live(inc), (score, n))
    own = fit.get(joined)
    if own is None or own[0] < MEMBER_FIT:
        return None
    for other, (score, n) in fit.items():
        if other is joined or n < MERGE_MIN_SHARED or score < MEMBER_FIT:
            continue
        both = min(own[0], score) >= MERGE_SCORE and own[1] >= MERGE_MIN_SHARED
        if not both and max(own[0], score) < STRONG_FIT:
            continue
        if p.facts.anchors and other.anchors and anchors_conflict(p.facts.anchors, other.anchors, index.parents):
            continue
        if mergeable(index, joined, other):
            keep, gone = _older(joined, other)
            merge(index, keep, gone)
            return keep
    return None


def _older(a: _Open, b: _Open) -> tuple[_Open, _Open]:
    """(the incident that stays, the one merged into it): the one with a row, the older."""
    key_a = (a.id is None, a.id or 0, a.first_seen)
    key_b = (b.id is None, b.id or 0, b.first_seen)
    return (a, b) if key_a <= key_b else (b, a)


def merge(index: IncidentIndex, keep: _Open, gone: _Open) -> None:
    """``gone`` becomes part of ``keep`` in the run's memory; its row is written by `write_merges`."""
    gone_mass = gone.mass
    terms = keep.terms
    new_terms = [t for t in gone.terms if t not in terms]
    if gone.terms:
        keep.mass += gone_mass * len(new_terms) / len(gone.terms)
    for t, w in gone.terms.items():
        terms[t] = terms.get(t, 0.0) + w
    if len(terms) > PROFILE_TERMS * 4 // 3:
        kept = heapq.nlargest(PROFILE_TERMS, terms, key=terms.__getitem__)
        keep.mass *= len(kept) / len(terms)
        keep.terms = {t: terms[t] for t in kept}
    keep.packed = None
    index.index_terms(keep, sorted(new_terms, key=gone.terms.__getitem__, reverse=True))
    keep.anchors = keep.anchors.union(gone.anchors)
    keep.families |= gone.families
    keep.event_texts += gone.event_texts
    index.index_anchors(keep, gone.anchors)
    keep.first_seen = min(keep.first_seen, gone.first_seen)
    keep.last_seen = max(keep.last_seen, gone.last_seen)
    if keep.debunk_id is None:
        keep.debunk_id = gone.debunk_id
    gone.merged_into = keep
    if gone.id is not None:
        index.open.pop(gone.id, None)
        index.dirty.pop(gone.id, None)
        index.merges.append((gone, keep))
        if keep.id is not None:
            keep.stats = None  # recounted from the database once gone's posts moved (write_merges)


def write_merges(session: Session, index: IncidentIndex, now: dt.datetime) -> list[int]:
    """Write the run's pending merges: ``gone``'s stored posts move to where its matter lives
    now, ``gone`` becomes ``merged`` (zero counts, ``merged_into_id``). Returns the incidents
    whose stats must be recounted (those that received posts)."""
    table = cast(Table, Incident.__table__)
    recount: list[int] = []
    for gone, _keep in index.merges:
        target = live(gone)
        assert gone.id is not None
        if target.id is None:  # cannot happen (the older one, with a row, stays); be safe
            continue
        session.execute(update(Post).where(Post.incident_id == gone.id).values(incident_id=target.id))
        session.execute(
            update(table).where(table.c.id == gone.id).values(
                status="merged", merged_into_id=target.id, post_count=0, group_count=0, source_count=0,
                role_counts={}, hourly_counts={}, spread={}, risk=0.0,
                risk_parts={"parts": [], "notes": [f"已并入事件 #{target.id}（同一件事）"]},
                max_rumor_probability=None, updated_at=now,
            )
        )
        recount.append(target.id)
    index.merges.clear()
    return recount
