"""Word-aware search: the full-text index over ``search_tokens`` and the SQL that queries it.

SQLite: one FTS5 table per searchable table (``search_alerts`` ...), external content (it stores
only the index; the words live in the row's ``search_tokens``), kept in step by triggers.
PostgreSQL: a GIN index on ``to_tsvector('simple', search_tokens)``; the 'simple' configuration
lower-cases and splits on spaces, which is all jieba's words need (no stemming, no stop words).

Neither is a SQLAlchemy table or index: Alembic cannot describe FTS5 tables, so ``prepare`` makes
them (idempotent; called by core.migrate.upgrade after every upgrade) and backfills the tokens of
rows written without them. ``include_object`` keeps them out of Alembic's model comparison.

A search matches the rows holding every word of the query (core.textsearch.query_tokens), OR'ed
by the callers with their old substring test, so nothing found before is lost (a one-character
query, a word jieba cuts differently in the query and the text) and words are found apart.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Engine, column, inspect, text
from sqlalchemy.sql.elements import ColumnElement, TextClause

from core.textsearch import SEARCH_FIELDS, document_tokens, query_tokens

__all__ = ["include_object", "match_params", "match_sql", "matches", "prepare"]

log = logging.getLogger(__name__)

PREFIX = "search_"
_BATCH = 2000


def _index_name(table: str) -> str:
    return f"{PREFIX}{table}"


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic filter: the search index objects are made by ``prepare``, not by migrations."""
    return not (reflected and compare_to is None and (name or "").startswith(PREFIX))


# ----------------------------------------------------------------------------- making the index


def prepare(engine: Engine) -> dict[str, int]:
    """Make the full-text index where it is missing and fill missing tokens; {table: rows filled}."""
    with engine.begin() as conn:
        if not _has_words_column(conn):
            # a database from an older development version: core.migrate.missing_schema says so
            return {}
        created = _ensure_index(conn)
    filled = {table: _backfill(engine, table) for table in SEARCH_FIELDS}
    if any(filled.values()):  # a fresh database's empty index is no news
        log.info("search words filled in", extra={"index_created": created, "rows_filled": filled})
    return filled


def _has_words_column(conn: Connection) -> bool:
    found = inspect(conn)
    return all(any(c["name"] == "search_tokens" for c in found.get_columns(table)) for table in SEARCH_FIELDS)


def _ensure_index(conn: Connection) -> list[str]:
    created = []
    for table in SEARCH_FIELDS:
        if conn.dialect.name == "sqlite":
            if _sqlite_ensure(conn, table):
                created.append(table)
        elif conn.dialect.name == "postgresql":
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {_index_name(table)}_gin ON {table} "
                              "USING gin (to_tsvector('simple', search_tokens))"))
    return created


def _sqlite_ensure(conn: Connection, table: str) -> bool:
    fts = _index_name(table)
    if conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = :n"), {"n": fts}).first():
        return False
    # unicode61 splits on spaces and punctuation and folds case, like to_tsvector('simple').
    conn.execute(text(f"CREATE VIRTUAL TABLE {fts} USING fts5(search_tokens, content='{table}', "
                      "content_rowid='id', tokenize='unicode61')"))
    new, old = "new.id, new.search_tokens", "'delete', old.id, old.search_tokens"
    conn.execute(text(f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN "
                      f"INSERT INTO {fts}(rowid, search_tokens) VALUES ({new}); END"))
    conn.execute(text(f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN "
                      f"INSERT INTO {fts}({fts}, rowid, search_tokens) VALUES ({old}); END"))
    conn.execute(text(f"CREATE TRIGGER {fts}_au AFTER UPDATE OF search_tokens ON {table} BEGIN "
                      f"INSERT INTO {fts}({fts}, rowid, search_tokens) VALUES ({old}); "
                      f"INSERT INTO {fts}(rowid, search_tokens) VALUES ({new}); END"))
    conn.execute(text(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')"))  # rows that already have words
    return True


def _backfill(engine: Engine, table: str) -> int:
    """Tokens for rows written without them (before this version, or by a bulk writer)."""
    fields = SEARCH_FIELDS[table]
    pick = text(f"SELECT id, {', '.join(fields)} FROM {table} WHERE search_tokens IS NULL "
                f"ORDER BY id LIMIT {_BATCH}")
    put = text(f"UPDATE {table} SET search_tokens = :tokens WHERE id = :id")
    total = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(pick).all()
            if not rows:
                return total
            conn.execute(put, [{"id": r[0], "tokens": document_tokens(*r[1:])} for r in rows])
        total += len(rows)


# ----------------------------------------------------------------------------- querying it


def _rows_holding(table: str, dialect: str, param: str) -> str:
    if dialect == "sqlite":
        fts = _index_name(table)
        return f"SELECT rowid AS id FROM {fts} WHERE {fts} MATCH :{param}"
    # the expression of the GIN index, word for word, or PostgreSQL will not use it
    return (f"SELECT id FROM {table} WHERE to_tsvector('simple', search_tokens) "
            f"@@ plainto_tsquery('simple', :{param})")


def match_sql(table: str, dialect: str, id_sql: str, param: str = "words") -> str:
    """A WHERE fragment: the row ``id_sql`` holds every word bound as ``:param`` (match_params)."""
    return f"{id_sql} IN ({_rows_holding(table, dialect, param)})"


def match_params(query: str, dialect: str) -> str | None:
    """The bound value for ``match_sql``; None when the query has no words to match."""
    words = query_tokens(query)
    if not words:
        return None
    if dialect == "sqlite":  # each word a quoted FTS5 string: no query syntax gets through
        return " ".join('"' + w.replace('"', '""') + '"' for w in words)
    return " ".join(words)  # plainto_tsquery ANDs them and reads no operators


def matches(table: str, id_column: Any, query: str, dialect: str) -> ColumnElement[bool] | None:
    """The ORM form of ``match_sql``: ``id_column IN (rows holding every word)``, or None."""
    value = match_params(query, dialect)
    if value is None:
        return None
    param = f"{PREFIX}{table}"
    sub: TextClause = text(_rows_holding(table, dialect, param)).bindparams(**{param: value})
    return id_column.in_(sub.columns(column("id")))
