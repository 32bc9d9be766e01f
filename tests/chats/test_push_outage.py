"""Pushes during a database outage: spooled (202), replayed in order once it is back, never a 500,
never stored twice; 503 with Retry-After only when the spill itself cannot be written."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from api import accounts
from api.app import create_app
from core.db import make_engine, session_factory, session_scope
from core.settings import get_settings
from core.spill import SPILL_FILE, Spill
from core.tables import Post
from crawler.chats.push import replay_spill
from tests.chats.test_chat_push import BATCH, ONEBOT, event
from tests.outage import database_down, own_folder

PHONE = "13987654323"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data dir (so a spill file) of this test's own."""
    folder = tmp_path / "data"
    monkeypatch.setenv("YUQING_DATA_DIR", str(folder))
    monkeypatch.setenv("YUQING_SPILL_REPLAY_SECONDS", "3600")  # replay only when the test says so
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


@pytest.fixture
def db(fresh_db_url: str, tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(own_folder(fresh_db_url, tmp_path / "db"))
    yield engine
    engine.dispose()


@pytest.fixture
def client(db: Engine, data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def bot(db: Engine) -> dict[str, str]:
    with session_scope(db) as s:
        user = accounts.create_user(s, username="qqbot-owner", role="staff")
        token = accounts.create_token(s, user, "qq-bot-1", kind="bot")
    return {"Authorization": f"Bearer {token}"}


def stored(db: Engine) -> list[str]:
    with session_scope(db) as s:
        return list(s.scalars(select(Post.external_id).order_by(Post.id)))


def test_onebot_pushes_during_an_outage_are_spooled_then_stored_once(
    client: TestClient, db: Engine, bot: dict, data_dir: Path
) -> None:
    assert client.post(ONEBOT, json=event(1), headers=bot).status_code == 200  # the token is now known
    with database_down(db):
        answers = [client.post(ONEBOT, json=event(i, message=f"第{i}条 电话{PHONE}"), headers=bot)
                   for i in range(2, 12)]
        assert [a.status_code for a in answers] == [202] * 10, answers[0].text
        assert all(a.json()["spooled"] == 1 for a in answers)
        heartbeat = {"time": 1764036000, "post_type": "meta_event", "meta_event_type": "heartbeat"}
        assert client.post(ONEBOT, json=heartbeat, headers=bot).status_code == 200
        assert replay_spill(session_factory(db)).outage  # still away: nothing replayed, nothing lost
    spill_bytes = b"".join(p.read_bytes() for p in data_dir.glob(SPILL_FILE + "*"))
    assert PHONE.encode() not in spill_bytes and "第2条".encode() not in spill_bytes  # encrypted
    result = replay_spill(session_factory(db))
    assert (result.replayed, result.left, result.outage) == (10, 0, False)
    assert stored(db) == [str(i) for i in range(1, 12)]  # in order
    # The bot's own retry, or a second replay, stores nothing twice
    assert client.post(ONEBOT, json=event(5, message=f"第5条 电话{PHONE}"), headers=bot).json()["unchanged"] == 1
    assert replay_spill(session_factory(db)).replayed == 0
    assert len(stored(db)) == 11
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).where(Post.raw_text.contains(PHONE))) == 0


def test_a_batch_during_an_outage_is_spooled_whole(client: TestClient, db: Engine, bot: dict) -> None:
    client.post(ONEBOT, json=event(1), headers=bot)
    batch = {
        "group": {"platform": "wechat", "external_id": "g1@chatroom", "name": "南坪村村民群"},
        "messages": [{"time": "2026-11-22T10:00:00+08:00", "sender": f"人{i}", "text": f"消息{i}"} for i in range(30)],
    }
    with database_down(db):
        res = client.post(BATCH, json=batch, headers=bot)
        assert res.status_code == 202 and res.json()["spooled"] == 30
    replay_spill(session_factory(db))
    assert len(stored(db)) == 31
    # the same batch pushed again by the script (no message ids): derived ids, nothing twice
    assert client.post(BATCH, json=batch, headers=bot).json()["unchanged"] == 30
    assert len(stored(db)) == 31


def test_the_api_replays_the_spill_by_itself(
    db: Engine, bot: dict, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUQING_SPILL_REPLAY_SECONDS", "0.2")
    get_settings.cache_clear()
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        client.post(ONEBOT, json=event(1), headers=bot)
        with database_down(db):
            assert client.post(ONEBOT, json=event(2), headers=bot).status_code == 202
        deadline = time.monotonic() + 20
        while len(stored(db)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert stored(db) == ["1", "2"]
    assert Spill.default().count() == 0


def test_503_with_retry_after_only_when_the_spill_cannot_be_written(
    client: TestClient, db: Engine, bot: dict, data_dir: Path
) -> None:
    client.post(ONEBOT, json=event(1), headers=bot)
    with database_down(db):
        spill = data_dir / SPILL_FILE
        if spill.exists():
            spill.unlink()
        spill.mkdir()  # a folder where the file should be: nothing can be written
        res = client.post(ONEBOT, json=event(2), headers=bot)
        assert res.status_code == 503 and int(res.headers["Retry-After"]) > 0, res.text
        assert "暂存区也无法写入" in res.json()["detail"]
        assert res.headers["content-type"].startswith("application/problem+json")


def test_an_unknown_token_during_an_outage_is_503_not_accepted(client: TestClient, db: Engine, bot: dict) -> None:
    with database_down(db):  # this token was never seen by the API: it cannot be checked now
        res = client.post(ONEBOT, json=event(2), headers=bot)
        assert res.status_code == 503 and "Retry-After" in res.headers
        assert client.post(ONEBOT, json=event(2), headers={"Authorization": "Bearer yq_x"}).status_code == 503
    assert stored(db) == []
