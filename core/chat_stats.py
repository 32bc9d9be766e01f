"""Read helpers over chat messages for later stages (nlp spread, alert rules, the console).

Spread across groups is the strongest rumor signal, so per-group hourly message counts live in
core where every stage may read them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.tables import Post


@dataclass(frozen=True, slots=True)
class HourCount:
    group_id: int
    hour: dt.datetime  # start of the hour, aware UTC
    count: int


def _hour_expr(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", Post.published_at), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", Post.published_at)


def hourly_counts(
    session: Session, since: dt.datetime, until: dt.datetime, *, group_ids: Iterable[int] | None = None
) -> list[HourCount]:
    """Chat messages per group per UTC hour with ``since <= published_at < until``, ordered by group, hour.

    Hours without messages are absent. Counted in the database (one GROUP BY), so it is cheap
    for any number of messages.
    """
    hour = _hour_expr(session).label("hour")
    stmt = (
        select(Post.group_id, hour, func.count().label("n"))
        .where(
            Post.channel == "chat",
            Post.group_id.is_not(None),
            Post.published_at >= since,
            Post.published_at < until,
        )
        .group_by(Post.group_id, hour)
        .order_by(Post.group_id, hour)
    )
    if group_ids is not None:
        stmt = stmt.where(Post.group_id.in_(list(group_ids)))
    out = []
    for group_id, label, n in session.execute(stmt):
        start = dt.datetime.strptime(label, "%Y-%m-%d %H").replace(tzinfo=dt.UTC)
        out.append(HourCount(int(group_id), start, int(n)))
    return out


def hourly_counts_by_group(
    session: Session, since: dt.datetime, until: dt.datetime, *, group_ids: Iterable[int] | None = None
) -> dict[int, dict[dt.datetime, int]]:
    """The same as a mapping ``{group_id: {hour: count}}``."""
    out: dict[int, dict[dt.datetime, int]] = defaultdict(dict)
    for row in hourly_counts(session, since, until, group_ids=group_ids):
        out[row.group_id][row.hour] = row.count
    return dict(out)
