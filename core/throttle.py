"""Rate limits that hold across processes: one row per key in ``rate_counters``.

The console's login throttle (api.console.web.LoginThrottle) first kept its counts in the
database so that a restart or a second worker does not reset them; the tip page, residents'
messages and the publishing pace use the same table through :class:`RateLimit`. A limit kept in
process memory is per worker: with ``uvicorn --workers 4`` an address gets four times its budget,
and two processes sending to one bot account together would flood it.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket stored as one time): a row
holds the theoretical arrival time (TAT) of the next request, ``interval = 60 / per_minute``.
A request at ``now`` is allowed when ``TAT - now <= (burst - 1) * interval``; it moves TAT to
``max(TAT, now) + interval``. A TAT in the past means a full bucket, the same as no row, so old
rows can be deleted at any time.

Concurrency: the row is read, then written with a compare-and-set on its ``hits`` counter
(``UPDATE ... WHERE key = :k AND hits = :read``); a writer that lost the race reads again. This
is the same on SQLite and PostgreSQL and never holds a lock across the caller's work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from core.db import get_engine, session_scope, upsert_insert, write_turn
from core.tables import RateCounter, utcnow

#: Compare-and-set rounds before giving up (each lost round means another request got a slot).
MAX_ROUNDS = 50
#: Rows whose TAT lies this far in the past limit nothing; they are deleted as new keys arrive.
STALE = dt.timedelta(minutes=10)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class RateLimit:
    """``per_minute`` requests per key on average, at most ``burst`` at once."""

    def __init__(self, per_minute: float, burst: int = 1) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be > 0 and burst >= 1")
        self.interval = dt.timedelta(seconds=60.0 / per_minute)
        self.tolerance = self.interval * (burst - 1)

    def take(self, session: Session, key: str, *, now: dt.datetime | None = None) -> float:
        """Take a slot now: 0.0 when allowed, else the seconds until one frees (nothing taken)."""
        return self._step(session, key, now or utcnow(), wait_anyway=False)

    def reserve(self, session: Session, key: str, *, now: dt.datetime | None = None) -> float:
        """Book the next free slot, however far: the seconds to wait before using it (pacing)."""
        return self._step(session, key, now or utcnow(), wait_anyway=True)

    def _step(self, session: Session, key: str, now: dt.datetime, *, wait_anyway: bool) -> float:
        table = RateCounter.__table__
        for _ in range(MAX_ROUNDS):
            row = session.execute(
                select(RateCounter.hits, RateCounter.last_at).where(RateCounter.key == key)
            ).first()
            if row is None:
                _forget_stale(session, key, now)
                stmt = upsert_insert(session, table).values(key=key, hits=1, first_at=now, last_at=now + self.interval)
                if session.execute(stmt.on_conflict_do_nothing(index_elements=["key"])).rowcount:  # type: ignore[attr-defined]
                    return 0.0
                continue  # another request created it first: read it
            tat = max(_aware(row.last_at), now)
            wait = (tat - self.tolerance - now).total_seconds()
            if wait > 0 and not wait_anyway:
                return wait
            done = session.execute(
                update(RateCounter)
                .where(RateCounter.key == key, RateCounter.hits == row.hits)
                .values(hits=row.hits + 1, last_at=tat + self.interval)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if done:
                return max(0.0, wait)
        return self.interval.total_seconds()  # a storm of writers on one key: refuse this one for now


def _forget_stale(session: Session, key: str, now: dt.datetime) -> None:
    """Delete rows of the key's kind (``tip:addr:`` ...) that no longer limit anything."""
    kind = ":".join(key.split(":")[:2]) + ":"  # the address itself may hold colons (IPv6)
    session.execute(delete(RateCounter).where(RateCounter.key.startswith(kind), RateCounter.last_at < now - STALE))


def take_now(engine: Engine | None, limit: RateLimit, key: str) -> float:
    """:meth:`RateLimit.take` in its own short transaction: the slot is used even when the
    request it admits fails afterwards (a flood of bad requests is still a flood)."""
    engine = engine or get_engine()
    with write_turn(engine), session_scope(engine) as session:
        return limit.take(session, key)


def pace(engine: Engine | None, limit: RateLimit, key: str, sleep: Callable[[float], None],
         now: Callable[[], dt.datetime] = utcnow) -> float:
    """Book the next slot of ``key`` in its own transaction and sleep until it; the seconds slept."""
    engine = engine or get_engine()
    with write_turn(engine), session_scope(engine) as session:
        wait = limit.reserve(session, key, now=now())
    if wait > 0:
        sleep(wait)
    return wait
