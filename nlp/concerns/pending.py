"""One-post topics waiting for a second post: the pending pool of the concern stage.

Most posts of a busy day match nothing (a lone remark, an advert, a greeting). Keeping each as
a topic row costs an INSERT, a JSON-heavy fold and a burst score per post, and fills ``topics``
with rows nobody reads. So a post that starts a cluster stays here, in one state blob, with
what its topic will need (vector, keywords, category, mood, places, group, source, story); it
is offered for joining like a topic and becomes a topic row only when a second post joins it.
Entries older than the singleton window expire (their post stays without a topic).

The blob is columnar (numpy arrays for ids, times and vectors; per-post details as JSON lines
that are decoded only for the entries that get promoted), so a pool of tens of thousands of
posts loads and saves in milliseconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import scipy.sparse as sp
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from core.db import json_dumps, upsert_insert
from core.tables import ConcernState

STATE_NAME = "topic_pending"
_HEADER = np.dtype("<i8")
_STATE: Table = ConcernState.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class PendingPost:
    """A pending post's details, as its topic's fold needs them."""

    id: int
    time: dt.datetime
    negativity: float
    category: str
    places: list[str]
    local: bool
    group_id: int | None
    source_id: int | None
    story_id: int | None
    keywords: list[str]

    def dumps(self) -> str:
        return json_dumps([self.negativity, self.category, self.places, self.local, self.group_id,
                           self.source_id, self.story_id, self.keywords])

    @classmethod
    def loads(cls, post_id: int, when: float, line: str) -> PendingPost:
        neg, cat, places, local, group, source, story, kws = orjson.loads(line)
        return cls(post_id, dt.datetime.fromtimestamp(when, dt.UTC), neg, cat, places, local, group, source,
                   story, kws)


class PendingPool:
    """Columnar pending posts: ``ids``, ``times`` (epoch s), CSR ``vectors``, JSON ``details``."""

    def __init__(self, ids: np.ndarray, times: np.ndarray, vectors: sp.csr_matrix, details: list[str]) -> None:
        self.ids = ids
        self.times = times
        self.vectors = vectors
        self.details = details

    @classmethod
    def empty(cls, n_features: int) -> PendingPool:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0), sp.csr_matrix((0, n_features), dtype=np.float32), [])

    def __len__(self) -> int:
        return len(self.ids)

    def keep(self, mask: np.ndarray) -> PendingPool:
        """The entries where ``mask`` is true."""
        idx = np.flatnonzero(mask)
        return PendingPool(self.ids[idx], self.times[idx], self.vectors[idx], [self.details[i] for i in idx])

    def without(self, post_ids: Any) -> PendingPool:
        if not len(self):
            return self
        return self.keep(~np.isin(self.ids, np.fromiter(post_ids, dtype=np.int64)))

    def since(self, start: dt.datetime) -> PendingPool:
        """The entries posted at or after ``start`` (older ones expire)."""
        return self.keep(self.times >= start.timestamp()) if len(self) else self

    def post(self, i: int) -> PendingPost:
        return PendingPost.loads(int(self.ids[i]), float(self.times[i]), self.details[i])

    def extended(self, posts: list[PendingPost], vectors: sp.csr_matrix) -> PendingPool:
        if not posts:
            return self
        return PendingPool(
            np.concatenate([self.ids, np.array([p.id for p in posts], dtype=np.int64)]),
            np.concatenate([self.times, np.array([p.time.timestamp() for p in posts])]),
            sp.vstack([self.vectors, sp.csr_matrix(vectors, dtype=np.float32)], format="csr"),
            self.details + [p.dumps() for p in posts],
        )

    # -- persistence

    def dumps(self) -> bytes:
        v = self.vectors
        text = "\n".join(self.details).encode("utf-8")
        header = np.array([len(self.ids), v.nnz, len(text), v.shape[1]], dtype=_HEADER)
        return b"".join([header.tobytes(), self.ids.astype("<i8").tobytes(), self.times.astype("<f8").tobytes(),
                         v.indptr.astype("<i8").tobytes(), v.indices.astype("<i4").tobytes(),
                         v.data.astype("<f4").tobytes(), text])

    @classmethod
    def loads(cls, blob: bytes) -> PendingPool:
        n, nnz, n_text, n_features = (int(x) for x in np.frombuffer(blob[:32], dtype=_HEADER))
        pos = 32

        def take(dtype: str, count: int) -> np.ndarray:
            nonlocal pos
            arr = np.frombuffer(blob, dtype=dtype, count=count, offset=pos)
            pos += arr.nbytes
            return arr

        ids, times, indptr = take("<i8", n), take("<f8", n), take("<i8", n + 1)
        indices, data = take("<i4", nnz), take("<f4", nnz)
        text = blob[pos : pos + n_text].decode("utf-8")
        vectors = sp.csr_matrix((data, indices, indptr), shape=(n, n_features))
        return cls(ids, times, vectors, text.split("\n") if n else [])


def load(session: Session, n_features: int) -> PendingPool:
    blob = session.execute(select(_STATE.c.value).where(_STATE.c.name == STATE_NAME)).scalar()
    return PendingPool.loads(blob) if blob else PendingPool.empty(n_features)


def save(session: Session, pool: PendingPool) -> None:
    ins = upsert_insert(session, _STATE)
    stmt = ins.values(name=STATE_NAME, value=pool.dumps(), meta={"posts": len(pool)})
    session.connection().execute(stmt.on_conflict_do_update(
        index_elements=["name"], set_={"value": stmt.excluded.value, "meta": stmt.excluded.meta}))
