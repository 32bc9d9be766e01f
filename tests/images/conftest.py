"""Fixtures of the picture tests: the shipped rumor model and a session on a fresh database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from core.db import make_engine


@pytest.fixture(scope="session")
def rumor_model_any():
    """The shipped rumor model (loaded once)."""
    from nlp.classifier import RumorModel

    return RumorModel.load()


@pytest.fixture
def db_session(fresh_db_url: str) -> Iterator[Session]:
    """A session on a database of its own (the code under test commits)."""
    engine = make_engine(fresh_db_url)
    session = Session(engine, expire_on_commit=False)
    yield session
    session.close()
    engine.dispose()
