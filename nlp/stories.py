"""Story grouping: forwards and near-duplicate copies of one message become one story.

A story is founded by its first post; its ``signature`` is that post's MinHash (bigrams of the
match key, so "转发：", "【转】", "紧急扩散！" and "不转不是中国人" do not count). A new post joins
the indexed story whose signature is most similar (estimated Jaccard >= threshold), else it
founds a new story. Only founders are indexed, never members, so a chain of small edits cannot
drift a story into another topic. Two texts that each name a place the other does not ("东湾村
封村了" / "柳树村封村了") never join, however similar the rest (:func:`nlp.similarity.places_conflict`).

Incremental by design: :class:`StoryIndex` is rebuilt at the start of a run from
``stories.signature`` of the stories seen in a recent window (14 days by default) and is then
updated in memory as posts arrive; nothing is ever re-clustered.

Stats per story: first/last seen, post count, distinct groups and sources (recounted in the
database for the stories a batch touched), per-hour counts in UTC (``{"2026-11-28T14": n}``),
the highest rumor probability, and the best-matching debunk.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session

from core.tables import Post, Story, utcnow
from nlp.bulk import constant, executemany
from nlp.similarity import (
    NUM_PERM,
    BandedIndex,
    match_key,
    pack_signature,
    place_marks,
    places_conflict,
    unpack_signature,
)

__all__ = [
    "BatchPrep",
    "StoryIndex",
    "StoryMember",
    "StoryUpdate",
    "assign_stories",
    "hour_bucket",
    "prepare_batch",
    "write_stories",
]

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
DEFAULT_WINDOW_DAYS = 14
MIN_KEY_CHARS = 6  # "收到", "好的", "+1": chat noise founds no story
_CHUNK = 500
_NO_PLACES: frozenset[str] = frozenset()


def hour_bucket(when: dt.datetime) -> str:
    """The UTC hour of ``when`` as ``2026-11-28T14``."""
    return _hour_label(int(when.timestamp() // 3600))


@lru_cache(maxsize=4096)
def _hour_label(hour: int) -> str:
    # One label per hour: a batch's posts share a few hours, and strftime is the slow part.
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%Y-%m-%dT%H")


@dataclass
class _Stats:
    """The incrementally kept stats of a story (as last written by this run)."""

    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    hourly_counts: dict[str, int]
    max_rumor_probability: float | None
    debunk_id: int | None
    debunk_similarity: float | None


class StoryIndex:
    """LSH over the signatures of recently active stories, plus an exact-signature shortcut."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, num_perm: int = NUM_PERM) -> None:
        self.lsh = BandedIndex(threshold, num_perm)
        self._exact: dict[bytes, int] = {}
        self._places: dict[int, frozenset[str]] = {}
        # Stats of the stories written in this run, so the next batches need not read them back.
        self.stats: dict[int, _Stats] = {}
        # Stories founded by the current batch, indexed once they have ids (write_stories).
        self.pending: dict[int, tuple[np.ndarray, np.ndarray, frozenset[str]]] = {}

    def __len__(self) -> int:
        return len(self.lsh)

    @classmethod
    def load(
        cls,
        session: Session,
        *,
        now: dt.datetime | None = None,
        window_days: int = DEFAULT_WINDOW_DAYS,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> StoryIndex:
        index = cls(threshold)
        since = (now or utcnow()) - dt.timedelta(days=window_days)
        stmt = (
            select(Story.id, Story.signature, Story.title)
            .where(Story.last_seen >= since, Story.signature.is_not(None))
            .order_by(Story.id)
        )
        ids: list[int] = []
        sigs: list[np.ndarray] = []
        places: list[frozenset[str]] = []
        for story_id, blob, title in session.execute(stmt):
            sig = unpack_signature(blob, index.lsh.num_perm)
            if sig is not None:
                ids.append(story_id)
                sigs.append(sig)
                places.append(place_marks(match_key(title or "")))
        if sigs:
            matrix = np.vstack(sigs)
            band_keys = index.lsh.band_keys(matrix)
            for pos, story_id in enumerate(ids):
                index.add(story_id, matrix[pos], band_keys[pos], places[pos])
        log.debug("story index loaded", extra={"stories": len(ids), "window_days": window_days})
        return index

    def add(
        self,
        story_id: int,
        sig: np.ndarray,
        band_keys: np.ndarray | None = None,
        places: frozenset[str] = frozenset(),
    ) -> None:
        self.lsh.insert(story_id, sig, band_keys)
        self._exact.setdefault(sig.tobytes(), story_id)
        self._places[story_id] = places

    def add_many(
        self, story_ids: Sequence[int], sigs: np.ndarray, band_keys: np.ndarray, places: Sequence[frozenset[str]]
    ) -> None:
        """`add` for the stories a batch founded, in one pass."""
        self.lsh.insert_many(story_ids, sigs, band_keys)
        for story_id, sig, marks in zip(story_ids, sigs, places, strict=True):
            self._exact.setdefault(sig.tobytes(), story_id)
            self._places[story_id] = marks

    def find(
        self, sig: np.ndarray, band_keys: np.ndarray, places: frozenset[str] = frozenset()
    ) -> tuple[int, float] | None:
        exact = self._exact.get(sig.tobytes())
        if exact is not None:
            return exact, 1.0
        return self.lsh.best(
            sig,
            band_keys,
            accept=lambda story: not places_conflict(places, self._places.get(story, frozenset())),
        )


@dataclass
class StoryMember:
    """What grouping needs to know about one post."""

    post_id: int
    key: str
    when: dt.datetime
    old_story_id: int | None
    title: str
    rumor_probability: float | None = None
    debunk_id: int | None = None
    debunk_similarity: float | None = None
    group_id: int | None = None
    source_id: int | None = None


@dataclass
class StoryUpdate:
    """The effect of a batch on one story (``story_id`` < 0: a story founded in this batch)."""

    story_id: int
    signature: np.ndarray | None = None
    founder: StoryMember | None = None
    hourly: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    max_prob: float | None = None
    debunk_id: int | None = None
    debunk_similarity: float | None = None
    posts: int = 0
    groups: set[int] = field(default_factory=set)
    sources: set[int] = field(default_factory=set)

    def add(self, member: StoryMember, count_hour: bool = True) -> None:
        self.posts += 1
        # Reach is distinct groups plus distinct sources *outside* groups: a chat message's source is
        # the way it arrived (接口推送, a chat export, a group board's site), not one more place.
        if member.group_id is not None:
            self.groups.add(member.group_id)
        elif member.source_id is not None:
            self.sources.add(member.source_id)
        if count_hour:
            self.hourly[hour_bucket(member.when)] += 1
        self.first_seen = member.when if self.first_seen is None else min(self.first_seen, member.when)
        self.last_seen = member.when if self.last_seen is None else max(self.last_seen, member.when)
        if member.rumor_probability is not None:
            self.max_prob = max(self.max_prob or 0.0, member.rumor_probability)
        if member.debunk_id is not None and (
            self.debunk_similarity is None or (member.debunk_similarity or 0) > self.debunk_similarity
        ):
            self.debunk_id, self.debunk_similarity = member.debunk_id, member.debunk_similarity


@dataclass
class BatchPrep:
    """What grouping computes from a batch's own keys and signatures, before any lookup in the
    index: band keys, the earlier similar posts of the batch, the place names of each key.
    Pure, so `yuqing analyze` has its worker processes do it (`prepare_batch`)."""

    band_keys: np.ndarray
    earlier: list[list[tuple[int, float]]]
    places: list[frozenset[str]]


def prepare_batch(lsh: BandedIndex, keys: Sequence[str], signatures: np.ndarray) -> BatchPrep:
    """`BatchPrep` of a batch, with the banding of ``lsh`` (an empty twin will do)."""
    if not len(keys):
        return BatchPrep(np.zeros((0, lsh.bands), dtype=np.uint64), [], [])
    band_keys = lsh.band_keys(signatures)
    return BatchPrep(band_keys, lsh.batch_pairs(signatures, band_keys), [place_marks(k) for k in keys])


def assign_stories(
    index: StoryIndex,
    members: Sequence[StoryMember],
    signatures: np.ndarray,
    *,
    min_chars: int = MIN_KEY_CHARS,
    prep: BatchPrep | None = None,
) -> tuple[list[int | None], dict[int, StoryUpdate]]:
    """Story id per post (negative: new in this batch; None: too short to group) and per-story effects.

    Posts are taken in order, so a later post of the batch joins a story an earlier one founded.
    Stories known before the batch are looked up for the whole batch at once
    (:meth:`BandedIndex.query_many`); stories founded in the batch live in a small local index
    until :func:`write_stories` gives them their ids. ``prep``: the batch's `prepare_batch`,
    when a worker process computed it already.
    """
    n = len(members)
    lsh = index.lsh
    if prep is None:
        prep = prepare_batch(lsh, [m.key for m in members], signatures)
    band_keys, earlier = prep.band_keys, prep.earlier
    known = lsh.query_many(signatures, band_keys) if n else []
    founder_story: dict[int, int] = {}  # batch position of a founder -> its temporary story id
    places_at: list[frozenset[str]] = []
    local_exact: dict[bytes, int] = {}
    updates: dict[int, StoryUpdate] = {}
    assigned: list[int | None] = []
    next_temp = -1
    for i, member in enumerate(members):
        story_id: int | None = None
        places = prep.places[i]
        places_at.append(places)
        if len(member.key) >= min_chars:
            sig = signatures[i]
            raw = sig.tobytes()
            story_id = index._exact.get(raw)
            if story_id is None:
                for cand, _sim in known[i]:
                    if not places_conflict(places, index._places.get(cand, _NO_PLACES)):
                        story_id = cand
                        break
            if story_id is None:
                story_id = local_exact.get(raw)
            if story_id is None:
                for pos, _sim in earlier[i]:
                    if pos in founder_story and not places_conflict(places, places_at[pos]):
                        story_id = founder_story[pos]
                        break
            if story_id is None:
                story_id = next_temp
                next_temp -= 1
                founder_story[i] = story_id
                local_exact.setdefault(raw, story_id)
                updates[story_id] = StoryUpdate(story_id, signature=sig, founder=member)
                index.pending[story_id] = (sig, band_keys[i], places)
        assigned.append(story_id)
        old = member.old_story_id
        if old is not None and old != story_id:  # a re-analysed post left its story
            gone = updates.setdefault(old, StoryUpdate(old))
            gone.hourly[hour_bucket(member.when)] -= 1
        if story_id is not None:
            updates.setdefault(story_id, StoryUpdate(story_id)).add(member, count_hour=old != story_id)
    return assigned, updates


def write_stories(
    session: Session, index: StoryIndex, assigned: list[int | None], updates: dict[int, StoryUpdate]
) -> list[int | None]:
    """Insert the batch's new stories and update touched ones; returns the real story id per post.

    New stories get their counts here; the counts of older ones are recounted by
    :func:`refresh_counts` once the posts point at them (distinct groups need the database).
    """
    now = utcnow()
    new = [u for u in updates.values() if u.story_id < 0]
    real: dict[int, int] = {}
    if new:
        rows: list[dict[str, Any]] = []
        for u in new:
            assert u.founder is not None and u.signature is not None
            rows.append(
                {
                    "representative_post_id": u.founder.post_id,
                    "title": u.founder.title[:500],
                    "first_seen": u.first_seen,
                    "last_seen": u.last_seen,
                    "post_count": u.posts,
                    "group_count": len(u.groups),
                    "source_count": len(u.sources),
                    "hourly_counts": {k: v for k, v in u.hourly.items() if v > 0},
                    "max_rumor_probability": u.max_prob,
                    "debunk_id": u.debunk_id,
                    "debunk_similarity": u.debunk_similarity,
                    "signature": pack_signature(u.signature),
                }
            )
        # Constant columns converted once (nlp.bulk.constant), not once per row.
        conn = session.connection()
        table = cast(Table, Story.__table__)
        ins = (
            insert(table)
            .values(
                created_at=constant(conn, table.c.created_at, now),
                updated_at=constant(conn, table.c.updated_at, now),
            )
            .returning(table.c.id, sort_by_parameter_order=True)
        )
        ids = session.execute(ins, rows).scalars().all()
        founded = [index.pending.pop(u.story_id) for u in new]
        index.add_many(
            ids,
            np.vstack([f[0] for f in founded]),
            np.vstack([f[1] for f in founded]),
            [f[2] for f in founded],
        )
        for u, story_id, values in zip(new, ids, rows, strict=True):
            real[u.story_id] = story_id
            index.stats[story_id] = _Stats(
                values["first_seen"],
                values["last_seen"],
                values["hourly_counts"],
                values["max_rumor_probability"],
                values["debunk_id"],
                values["debunk_similarity"],
            )
    index.pending.clear()
    old = [u for u in updates.values() if u.story_id > 0]
    if old:
        # Stats of stories this run already wrote come from memory; the others from the database.
        current: dict[int, Any] = {
            u.story_id: index.stats[u.story_id] for u in old if u.story_id in index.stats
        }
        ids_old = [u.story_id for u in old if u.story_id not in current]
        for start in range(0, len(ids_old), _CHUNK):
            query = select(
                Story.id,
                Story.first_seen,
                Story.last_seen,
                Story.hourly_counts,
                Story.max_rumor_probability,
                Story.debunk_id,
                Story.debunk_similarity,
            ).where(Story.id.in_(ids_old[start : start + _CHUNK]))
            for found in session.execute(query):
                current[found.id] = _Stats(*found[1:])
        params = []
        for u in old:
            row = current.get(u.story_id)
            if row is None:  # deleted meanwhile
                continue
            hourly = dict(row.hourly_counts or {})  # a copy: the cached one may be rolled back
            for bucket, delta in u.hourly.items():
                value = hourly.get(bucket, 0) + delta
                if value > 0:
                    hourly[bucket] = value
                else:
                    hourly.pop(bucket, None)
            debunk_id, debunk_sim = row.debunk_id, row.debunk_similarity
            if u.debunk_id is not None and (debunk_sim is None or (u.debunk_similarity or 0) > debunk_sim):
                debunk_id, debunk_sim = u.debunk_id, u.debunk_similarity
            probs = [p for p in (row.max_rumor_probability, u.max_prob) if p is not None]
            params.append(
                {
                    "_id": u.story_id,
                    "first_seen": min(t for t in (row.first_seen, u.first_seen) if t is not None),
                    "last_seen": max(t for t in (row.last_seen, u.last_seen) if t is not None),
                    "hourly_counts": hourly,
                    "max_rumor_probability": max(probs) if probs else None,
                    "debunk_id": debunk_id,
                    "debunk_similarity": debunk_sim,
                }
            )
            p = params[-1]
            index.stats[u.story_id] = _Stats(
                p["first_seen"], p["last_seen"], hourly, p["max_rumor_probability"], debunk_id, debunk_sim
            )
        if params:
            table = cast(Table, Story.__table__)
            stmt = (
                update(table)
                .where(table.c.id == bindparam("_id"))
                .values(
                    {k: bindparam(k) for k in params[0] if k != "_id"}
                    | {"updated_at": constant(session.connection(), table.c.updated_at, now)}
                )
            )
            executemany(session.connection(), stmt, params)
    return [None if s is None else real.get(s, s) for s in assigned]


def refresh_counts(session: Session, story_ids: Sequence[int]) -> None:
    """Recount posts, distinct groups and distinct sources of these stories from the posts table."""
    ids = sorted({s for s in story_ids if s is not None and s > 0})
    if not ids:
        return
    table = Post.__table__
    params = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = (
            select(
                table.c.story_id,
                func.count(),
                func.count(table.c.group_id.distinct()),
                # sources outside groups only (see StoryUpdate.add)
                func.count(case((table.c.group_id.is_(None), table.c.source_id)).distinct()),
            )
            .where(table.c.story_id.in_(chunk))
            .group_by(table.c.story_id)
        )
        seen = set()
        for story_id, posts, groups, sources in session.execute(query):
            seen.add(story_id)
            params.append(
                {"_id": story_id, "post_count": posts, "group_count": groups, "source_count": sources}
            )
        params.extend(
            {"_id": s, "post_count": 0, "group_count": 0, "source_count": 0} for s in chunk if s not in seen
        )
    stories = cast(Table, Story.__table__)
    conn = session.connection()
    stmt = (
        update(stories)
        .where(stories.c.id == bindparam("_id"))
        .values(
            post_count=bindparam("post_count"),
            group_count=bindparam("group_count"),
            source_count=bindparam("source_count"),
            # one stamp for the batch, converted once (else `onupdate` runs per row)
            updated_at=constant(conn, stories.c.updated_at, utcnow()),
        )
    )
    executemany(conn, stmt, params)
