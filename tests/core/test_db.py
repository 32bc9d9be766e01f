"""SQLite under concurrent writers: a job that reads, then writes, waits instead of failing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from core.db import make_engine


def test_read_then_write_survives_a_concurrent_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    setup = make_engine(url)
    with setup.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    job, other = make_engine(url), make_engine(url)
    with job.connect() as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar()  # the job reads first ...
        with other.begin() as o:
            o.execute(text("INSERT INTO t VALUES (1)"))  # ... another process writes and commits ...
        conn.execute(text("INSERT INTO t VALUES (2)"))  # ... and the job's write still goes through
        conn.commit()
    with setup.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2
    for e in (setup, job, other):
        e.dispose()
