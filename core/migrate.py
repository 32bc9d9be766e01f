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
