"""Shared helpers for the chat tests: the fixture folder and a writer of QQ text exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.db import make_engine
from core.tables import metadata

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "chats"

QQ_HEADER = (
    "消息记录（此消息记录为文本格式，不支持重新导入）\n\n"
    "================================================================\n"
    "消息分组:我的QQ群\n"
    "================================================================\n"
    "消息对象:{group}\n"
    "================================================================\n\n"
)


def every_text(engine: Engine) -> str:
    """Every row of every table as text, for "this value is stored nowhere" assertions."""
    chunks = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


def sqlite_file_bytes(engine: Engine, url: str) -> bytes | None:
    """The raw SQLite file after a WAL checkpoint (None on PostgreSQL): nothing hides in free pages,
    indexes or the write-ahead log."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    with engine.connect() as conn:
        conn.execute(sql("PRAGMA wal_checkpoint(TRUNCATE)"))
    return Path(str(parsed.database)).read_bytes()


def qq_export(messages: list[tuple[str, str, str, str]], group: str = "东湾村村民群") -> str:
    """Render (time, nickname, qq, text) tuples as a QQ text export."""
    out = [QQ_HEADER.format(group=group)]
    for when, name, qq, text in messages:
        out.append(f"{when} {name}({qq})\n{text}\n\n")
    return "".join(out)


@pytest.fixture
def db(fresh_db_url: str):
    """A session on a fresh database of its own.

    The importer commits after every batch; on SQLite the shared ``session`` fixture cannot undo
    those commits (pysqlite starts no transaction before the first savepoint), so each test that
    imports gets a new database instead.
    """
    engine = make_engine(fresh_db_url)
    session = Session(engine, expire_on_commit=False)
    yield session
    session.close()
    engine.dispose()
