"""The Alembic migrations build exactly the schema the models describe, on both dialects."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core.db import make_engine
from core.migrate import current_heads, upgrade
from core.search import include_object
from core.tables import metadata


def test_upgrade_gives_the_models_schema(fresh_db_url: str) -> None:
    upgrade(fresh_db_url)  # already at head: running again is a no-op
    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        opts = {"compare_type": True, "include_object": include_object}  # the search index is not Alembic's
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert set(metadata.tables) <= tables


def test_single_head(fresh_db_url: str) -> None:
    assert len(current_heads(fresh_db_url)) == 1
