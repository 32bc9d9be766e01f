"""Run Alembic programmatically (``yuqing db upgrade``), without an alembic.ini on disk."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
    if revision == "head":
        _prepare_search(url)


def _prepare_search(url: str) -> None:
    """The full-text index Alembic cannot describe (FTS5), and tokens for rows that lack them."""
    from core.db import make_engine
    from core.search import prepare

    engine = make_engine(url)
    try:
        prepare(engine)
    finally:
        engine.dispose()


def missing_schema(url: str) -> list[str]:
    """Tables and columns of this version's models that the database lacks ("table" or
    "table.column"). Empty for a database made by this version's migrations.

    Before the first release the initial revision is regenerated in place (`regenerate_initial`),
    so a database made by an older checkout is "at head" for Alembic and still lacks what was
    added since: this is how such a database is found, instead of a failure at the first query.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from core.db import make_engine
    from core.search import include_object
    from core.tables import metadata

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"include_object": include_object}),
                                    metadata)
    finally:
        engine.dispose()
    # Alembic's own model/database comparison; only what is absent matters here (a list entry is
    # a group of column changes, never an addition).
    adds = [d for d in diff if isinstance(d, tuple)]
    return [d[1].name for d in adds if d[0] == "add_table"] + [
        f"{d[2]}.{d[3].name}" for d in adds if d[0] == "add_column"
    ]


def current_heads(url: str) -> list[str]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def regenerate_initial() -> None:
    """Pre-release only: rebuild 0001 from the models (run after editing core/tables.py).

    Until the first release there are no deployed databases to migrate, so one initial
    revision is simpler for everybody than a chain of drafts. After the release, add
    revisions with ``alembic revision --autogenerate`` instead.
    """
    import tempfile

    versions = MIGRATIONS / "versions"
    for old in versions.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        command.revision(alembic_config(f"sqlite:///{tmp}/empty.db"), message="initial schema",
                         autogenerate=True, rev_id="0001")


if __name__ == "__main__":  # python -m core.migrate
    regenerate_initial()
