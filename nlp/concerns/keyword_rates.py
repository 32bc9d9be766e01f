"""Posts per keyword per UTC hour, and the keywords whose rate rises over their own baseline.

Kept as one state blob per hour (``concern_state`` row ``keywords:2026-11-28T14``, a JSON object
``{keyword: posts}``), not one row per keyword and hour: a busy day has tens of thousands of
distinct keywords an hour, and upserting that many rows cost more than the rest of the concern
stage together (about 100k rows/s on SQLite, half a million rows for 100k posts). A batch reads,
merges and writes back the one or two hours it touches; the read side loads the ~50 hours it
compares (window + baseline).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.settings import get_settings
from core.tables import ConcernState
from nlp.concerns.bursts import HOUR, BurstParams, burst, hour_floor, hour_key, parse_hour_key

PREFIX = "keywords:"
RETENTION = dt.timedelta(days=8)
MAX_CANDIDATES = 2000  # keywords scored per call: the most frequent in the recent window
_STATE: Table = ConcernState.__table__  # type: ignore[assignment]


def _name(hour: dt.datetime) -> str:
    return PREFIX + hour_key(hour)


def add(session: Session, kws: Sequence[Iterable[str]], times: Sequence[dt.datetime],
        hours: Sequence[str] | None = None) -> None:
    """Count each post's (distinct) keywords in the hour it was posted (``hours``: the
    `hour_key` of each time, if the caller has them)."""
    posts_of: dict[str, list[Iterable[str]]] = {}
    keys = hours if hours is not None else [hour_key(t) for t in times]
    for words, key in zip(kws, keys, strict=True):
        posts_of.setdefault(PREFIX + key, []).append(words)
    # One count per hour over all its posts' words (Counter counts an iterable in C).
    by_hour = {name: c for name, posts in posts_of.items() if (c := Counter(itertools.chain.from_iterable(posts)))}
    if not by_hour:
        return
    stored = dict(session.execute(select(_STATE.c.name, _STATE.c.value)
                                  .where(_STATE.c.name.in_(sorted(by_hour)))).all())
    rows = []
    for name, counts in sorted(by_hour.items()):
        merged: dict[str, int] = orjson.loads(stored[name]) if name in stored else {}
        for word, n in counts.items():
            merged[word] = merged.get(word, 0) + n
        rows.append({"name": name, "value": orjson.dumps(merged),
                     "meta": {"keywords": len(merged), "posts_counted": sum(merged.values())}})
    ins = upsert_insert(session, _STATE)
    session.connection().execute(
        ins.on_conflict_do_update(index_elements=["name"], set_={"value": ins.excluded.value,
                                                                  "meta": ins.excluded.meta}), rows)


def hourly(session: Session, start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, dict[str, int]]:
    """Counts of the hours from ``start`` to ``end`` (inclusive) that have any."""
    rows = session.execute(select(_STATE.c.name, _STATE.c.value).where(
        _STATE.c.name >= _name(start), _STATE.c.name <= _name(end))).all()
    return {parse_hour_key(name[len(PREFIX):]): orjson.loads(value) for name, value in rows}


def first_hour(session: Session) -> dt.datetime | None:
    """The first hour with counts (hours without a keyword since then are true zeros)."""
    name = session.execute(select(_STATE.c.name).where(_STATE.c.name.like(PREFIX + "%"))
                           .order_by(_STATE.c.name).limit(1)).scalar()
    return parse_hour_key(name[len(PREFIX):]) if name else None


def drop_before(session: Session, cutoff: dt.datetime) -> None:
    session.execute(delete(_STATE).where(_STATE.c.name.like(PREFIX + "%"), _STATE.c.name < _name(cutoff)))


def hot_keywords(session: Session, *, now: dt.datetime, params: BurstParams | None = None,
                 limit: int = 20) -> list[dict[str, Any]]:
    """Keywords whose recent hourly rate rose significantly over their own baseline."""
    params = params or BurstParams.from_settings(get_settings())
    window_start = hour_floor(now) - (params.window_hours - 1) * HOUR
    base_start = window_start - params.baseline_hours * HOUR
    hours = hourly(session, base_start, now)
    recent: Counter[str] = Counter()
    for h, counts in hours.items():
        if h >= window_start:
            recent.update(counts)
    candidates = [kw for kw, n in recent.most_common(MAX_CANDIDATES) if n >= params.min_posts]
    data_start = first_hour(session)
    out: list[dict[str, Any]] = []
    for kw in candidates:
        series = {hour_key(h): counts[kw] for h, counts in hours.items() if kw in counts}
        # Every keyword is counted, so hours without it are true zeros since our data began.
        b = burst(series, now, params, first_seen=data_start)
        if b.is_hot:
            out.append({"keyword": kw, "recent": b.recent, "expected": b.expected, "z": b.z})
    out.sort(key=lambda d: -float(d["z"]))
    return out[:limit]
