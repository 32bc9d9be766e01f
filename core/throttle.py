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
is the same on SQLite and PostgreSQL and never holds a database lock across the caller's work.

Pacing sends (:func:`sending_turn`) is stricter than limiting requests: what must be spaced is
when the messages *reach* the bot, and a booked slot says nothing about that. Booking slots
(``last_at += interval``) and then sending let a process whose message left late (a fresh
process's first connection and HTTP client take a second on a busy machine) send right before
the next process's on-time slot: two messages 16 ms apart under a 2 s pace. So a send holds the
key's *turn*: the row's ``last_at`` becomes a lease (``now + hold``) while the message goes out,
and the interval is counted from the end of the send. A holder that dies frees the turn when its
lease runs out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
        return self._step(session, key, now or utcnow())

    def _step(self, session: Session, key: str, now: dt.datetime) -> float:
        for _ in range(MAX_ROUNDS):
            row = session.execute(
                select(RateCounter.hits, RateCounter.last_at).where(RateCounter.key == key)
            ).first()
            if row is None:
                _forget_stale(session, key, now)
                if _insert_first(session, key, now, now + self.interval):
                    return 0.0
                continue  # another request created it first: read it
            tat = max(_aware(row.last_at), now)
            wait = (tat - self.tolerance - now).total_seconds()
            if wait > 0:
                return wait
            done = session.execute(
                update(RateCounter)
                .where(RateCounter.key == key, RateCounter.hits == row.hits)
                .values(hits=row.hits + 1, last_at=tat + self.interval)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if done:
                return 0.0
        return self.interval.total_seconds()  # a storm of writers on one key: refuse this one for now


def _insert_first(session: Session, key: str, now: dt.datetime, last_at: dt.datetime) -> bool:
    """Create the key's row unless another request just did; whether this one did.

    Told by RETURNING, not by the cursor's rowcount: for ``INSERT ... ON CONFLICT DO NOTHING``
    psycopg under SQLAlchemy reports -1 (unknown, and truthy), so on PostgreSQL two processes
    starting at once both believed they had created the row and both sent at once."""
    stmt = (upsert_insert(session, RateCounter.__table__)
            .values(key=key, hits=1, first_at=now, last_at=last_at)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(RateCounter.key))
    return session.execute(stmt).first() is not None


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


@contextmanager
def sending_turn(engine: Engine | None, key: str, *, interval: float, hold: float,
                 sleep: Callable[[float], None], now: Callable[[], dt.datetime] = utcnow) -> Iterator[float]:
    """Wait for ``key``'s turn, hold it while the body sends, and free it ``interval`` seconds
    after the send ended; yields the seconds waited. Across processes: the turn is a row.

    ``hold`` bounds the turn of a holder that died mid-send (longer than any send takes: a
    live sender past it may overlap the next). While another holds the turn, a waiter looks
    again at least every ``interval`` (never more often than every 0.2 s): the holder's end
    is not known in advance. A waiter that has slept all it was told for the row as it found it
    takes the turn whatever its clock says (the tests' clocks stand still while they sleep)."""
    engine = engine or get_engine()
    waited, lease, poll = 0.0, dt.timedelta(seconds=hold), max(interval, 0.2)
    owing: tuple[int, float] | None = None  # the row's version being waited out, and the seconds left
    while True:
        paid = owing[0] if owing is not None and owing[1] <= 0 else None
        with write_turn(engine), session_scope(engine) as session:
            wait, version, taken = _take_turn(session, key, now(), lease, paid)
        if taken:
            break
        if owing is None or owing[0] != version:
            owing = (version, wait)  # found the row changed: what this state costs
        step = min(owing[1], poll)
        sleep(step)
        waited += step
        owing = (version, owing[1] - step)
    try:
        yield waited
    finally:
        with write_turn(engine), session_scope(engine) as session:
            _end_turn(session, key, version, now() + dt.timedelta(seconds=interval))


def _take_turn(session: Session, key: str, now: dt.datetime, lease: dt.timedelta,
               paid: int | None) -> tuple[float, int, bool]:
    """Take the turn, held until ``now + lease``: (seconds until it may be free, the row's
    version, whether taken). ``last_at`` is when the key is free: after the last send's pause,
    or when a holder's lease ends; ``paid`` is a version whose wait the caller has slept out."""
    for _ in range(MAX_ROUNDS):
        row = session.execute(select(RateCounter.hits, RateCounter.last_at).where(RateCounter.key == key)).first()
        if row is None:
            _forget_stale(session, key, now)
            if _insert_first(session, key, now, now + lease):
                return 0.0, 1, True
            continue  # another sender created it first: read it
        wait = (_aware(row.last_at) - now).total_seconds()
        if wait > 0 and row.hits != paid:
            return wait, row.hits, False
        done = session.execute(
            update(RateCounter)
            .where(RateCounter.key == key, RateCounter.hits == row.hits)
            .values(hits=row.hits + 1, last_at=now + lease)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if done:
            return 0.0, row.hits + 1, True
    return 0.0, -1, False  # a storm of senders on one key: look again


def _end_turn(session: Session, key: str, version: int, free_at: dt.datetime) -> None:
    """Free the turn at ``free_at``, unless the lease ran out and another sender took it."""
    session.execute(
        update(RateCounter)
        .where(RateCounter.key == key, RateCounter.hits == version)
        .values(hits=version + 1, last_at=free_at)
        .execution_options(synchronize_session=False)
    )
