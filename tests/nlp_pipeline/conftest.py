"""Fixtures of the analysis pipeline: the shipped rumor model, and posts we wrote about 青禾镇."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_DEBUNKS = REPO / "nlp" / "demo" / "debunks.yaml"

# One rumor forwarded with decorations and small edits across groups (story A), another rumor
# about the same town (story B), a third about a village, and ordinary chat.
STORY_A = [
    "青禾镇明天封城，所有人不准出门，赶紧去超市囤货",
    "紧急扩散！！青禾镇明天封城，所有人不准出门，赶紧去超市囤货！！不转不是中国人",
    "转发：青禾镇明天封城，所有人不准出门，赶紧去超市囤货",
    "【转】青禾镇明天要封城，所有人都不准出门，赶紧去超市囤货吧",
]
STORY_B = [
    "青禾镇自来水被污染了，千万不要喝自来水，快去买桶装水",
    "转发：青禾镇自来水被污染了，千万不要喝自来水，快去买桶装水！",
]
STORY_C = [
    "东湾村出现大量确诊病例，整个村已经被封锁",
    "【转】东湾村出现大量确诊病例，整个村已经被封锁了！！",
]
ORDINARY = [
    "青禾镇今天的集市很热闹，大家都去买年货了",
    "东湾村今天开了村民大会，讨论修路的事情，大家都很支持",
    "青禾镇人民政府通知：本周六上午在镇文化站举办健康讲座，欢迎居民参加",
    "收到",
]


def chat(text: str, n: int, group: str = "qh-1", minute: int = 0, day: int = 28) -> dict[str, Any]:
    """A chat message item for core.ingest."""
    return {
        "channel": "chat",
        "group": {"platform": "wechat", "external_id": group, "name": f"青禾镇群{group}"},
        "external_id": f"m{n}",
        "text": text,
        "author": f"居民{n % 7}",
        "published_at": dt.datetime(2026, 11, day, 9, minute, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    }


def sample_items() -> list[dict[str, Any]]:
    items = []
    n = 0
    for texts, groups in (
        (STORY_A, ["qh-1", "qh-2", "dw-1", "lsc-1"]),
        (STORY_B, ["qh-1", "nanping"]),
        (STORY_C, ["dw-1", "qh-2"]),
        (ORDINARY, ["qh-1", "dw-1", "qh-2", "qh-1"]),
    ):
        for text, group in zip(texts, groups, strict=True):
            items.append(chat(text, n, group, minute=n))
            n += 1
    return items


@pytest.fixture(scope="session")
def rumor_model():
    """The shipped rumor model (the real one, loaded once)."""
    from nlp.classifier import RumorModel

    return RumorModel.load()


@pytest.fixture
def db(fresh_db_url: str):
    """A session on a fresh database, for code that commits (``analyze`` commits per batch).

    The shared ``session`` fixture rolls back a SAVEPOINT, but on SQLite (pysqlite emits no
    BEGIN before the first SAVEPOINT) releasing that savepoint on commit commits for real, so
    committed work would leak into later tests.
    """
    from sqlalchemy.orm import Session

    from core.db import make_engine

    engine = make_engine(fresh_db_url)
    session = Session(engine, expire_on_commit=False)
    yield session
    session.close()
    engine.dispose()
