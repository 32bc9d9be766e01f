"""Fixtures of the incident stage: a fresh database per test (analyze commits), the shipped rumor
model, and chat messages we wrote about 青禾镇 and its villages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from core.db import make_engine

CST = dt.timezone(dt.timedelta(hours=8))
EVENING = dt.datetime(2026, 12, 1, 19, 0, tzinfo=CST)


def msg(text: str, n: int, group: str = "qh-1", minute: float = 0, *, reply_to: int | None = None,
        start: dt.datetime = EVENING, channel: str = "chat") -> dict[str, Any]:
    """A chat message item for core.ingest (``n`` is its id in the group's platform)."""
    item: dict[str, Any] = {
        "channel": channel,
        "text": text,
        "external_id": f"m{n}",
        "author": f"居民{n % 9}",
        "published_at": start + dt.timedelta(minutes=minute),
    }
    if channel == "chat":
        item["group"] = {"platform": "wechat", "external_id": group, "name": f"青禾镇{group}群"}
    else:
        item["source"] = group
    if reply_to is not None:
        item["parent_external_id"] = f"m{reply_to}"
    return item


@pytest.fixture(scope="session")
def rumor_model() -> Any:
    """The shipped rumor model (the real one, loaded once)."""
    from nlp.classifier import RumorModel

    return RumorModel.load()


@pytest.fixture
def db(fresh_db_url: str) -> Iterator[Session]:
    """A session on a fresh database, for code that commits (``analyze`` commits per batch)."""
    engine = make_engine(fresh_db_url)
    session = Session(engine, expire_on_commit=False)
    yield session
    session.close()
    engine.dispose()
