"""A real database outage for tests, on either backend.

- SQLite: the database lives in a folder of its own; the outage renames that folder away and
  drops the pool, so every new connection fails with "unable to open database file".
- PostgreSQL: the database stops accepting connections (ALLOW_CONNECTIONS false) and its
  sessions are terminated, as when the server restarts: "database ... is not currently accepting
  connections".

Either way the application sees the driver's own OperationalError, as in production.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("YUQING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def own_folder(url: str, folder: Path) -> str:
    """For SQLite: a copy of the database at ``url`` in ``folder`` (its own, so it can be taken
    away); PostgreSQL URLs are returned as they are."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return url
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "yuqing.db"
    shutil.copyfile(str(parsed.database), target)
    return f"sqlite:///{target}"


@contextmanager
def database_down(engine: Engine) -> Iterator[None]:
    """The database behind ``engine`` is unreachable inside the block, and back after it."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        folder = Path(str(url.database)).parent
        away = folder.with_name(folder.name + ".away")
        engine.dispose()
        folder.rename(away)
        try:
            yield
        finally:
            engine.dispose()
            away.rename(folder)
        return
    name = url.database
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": name})
        try:
            yield
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            engine.dispose()
    finally:
        admin.dispose()
