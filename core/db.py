"""Engine and sessions for SQLite (the default) and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.settings import get_settings


def json_dumps(value: Any) -> str:
    """The text stored in JSON columns: UTF-8 as is (no \\u escapes), via orjson.

    Every engine serialises JSON columns with it (``json_serializer``). The stdlib encoder cost
    the concern stage seconds per 100k posts (five JSON columns on every touched topic row,
    places on every post); orjson does the same work several times faster. Integer dict keys
    become strings and numpy scalars numbers, as the stdlib encoder would give or better.
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while the crawler writes; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_explicit_transactions(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def make_engine(url: str, *, sqlite_savepoints: bool = False, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite make the folder and turn on WAL and foreign keys.

    By default pysqlite opens a write transaction only at the first INSERT/UPDATE, so a job that
    reads and then writes waits for other writers (busy_timeout) instead of failing on a stale
    snapshot. ``sqlite_savepoints=True`` lets SQLAlchemy emit BEGIN itself, which SAVEPOINTs need
    to nest properly (the tests' rolled-back session); its reads then pin a snapshot, so a
    concurrent writer makes later writes fail with "database is locked": not for the service.
    """
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        if sqlite_savepoints:
            event.listen(engine, "connect", _sqlite_explicit_transactions)
            event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return _engine_for(get_settings().effective_database_url)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """Commit ``session`` on success, roll it back on any error, close it either way (the API's
    per-request session and `session_scope` share this)."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def session_scope(engine: Engine | None = None) -> AbstractContextManager[Session]:
    """A session that commits on success and rolls back on error."""
    return transaction(session_factory(engine)())


def is_postgres(engine_or_session: Engine | Session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "postgresql"


def upsert_insert(session: Session, table: Any) -> Any:
    """``INSERT`` for ``table`` in the session's dialect, with ``on_conflict_do_nothing`` /
    ``on_conflict_do_update`` (PostgreSQL and SQLite both have them). Every write path that may
    race with another process (two crawler workers creating one group) inserts through this."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert(table) if is_postgres(session) else sqlite.insert(table)


_WRITE_TURNS: dict[str, threading.Lock] = {}
_WRITE_TURNS_GUARD = threading.Lock()


def write_turn(engine: Engine) -> AbstractContextManager[object]:
    """Hold while a short write transaction runs and commits, on request paths where many
    threads of one server write at once (tips, rate limits).

    SQLite has one write lock per database, and a connection waiting for it polls with growing
    sleeps (busy_timeout): under a burst of requests one writer can lose every round and wait
    seconds while others pass (the 公众号 must answer within 5 s). Taking turns on a lock in the
    process first makes the threads queue instead of poll. Other processes still meet at
    SQLite's own lock. PostgreSQL locks rows, not the database: nothing to do there."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    key = engine.url.render_as_string(hide_password=True)
    with _WRITE_TURNS_GUARD:
        lock = _WRITE_TURNS.setdefault(key, threading.Lock())
    return lock


def is_outage(err: BaseException) -> bool:
    """Whether ``err`` means "the database is away" (down, unreachable, locked, out of
    connections), as opposed to a bad statement or bad data: the first is worth a spill and a
    retry, the second is not."""
    if isinstance(err, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    return isinstance(err, sa_exc.DBAPIError) and bool(err.connection_invalidated)
