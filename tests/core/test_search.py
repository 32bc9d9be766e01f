"""Word-aware search: "水库污染" finds "水库被污染" in alerts, posts and debunks, through the API and
the console, on both databases; the index survives edits and deletes, and rows written without
words are backfilled by the upgrade (once: running it again changes nothing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from api import accounts
from api.console.session import SESSION_COOKIE
from core import search
from core.db import session_scope
from core.ingest import ingest_posts
from core.migrate import upgrade
from core.tables import Alert, Debunk, Post
from core.textsearch import document_tokens, query_tokens
from tests.console.conftest import session_cookie
from tests.factories import make_alert, make_debunk

pytestmark = pytest.mark.db

WATER = "网传东湾村水库被污染，自来水不能喝了"
ROADS = "听说青禾镇明天要封路"


def _seed(engine: Engine) -> dict[str, list[int]]:
    """Alerts and debunks through the ORM, posts through the ingest path every collector uses."""
    with session_scope(engine) as s:
        alerts = [make_alert(s, title=WATER, summary="村民在群里转发").id,
                  make_alert(s, title=ROADS, summary="封路传言").id,
                  make_alert(s, title="东湾村停水通知", summary="水库检修，暂停供水").id]
        debunks = [make_debunk(s, claim=WATER, refutation="县水利局检测：水库水质正常。").id,
                   make_debunk(s, claim=ROADS).id]
        ingest_posts(s, [{"source": "青禾论坛", "external_id": "w1", "title": "水库的事", "text": WATER},
                         {"source": "青禾论坛", "external_id": "r1", "text": ROADS}])
        posts = list(s.scalars(select(Post.id).order_by(Post.id)))
    return {"alerts": alerts, "debunks": debunks, "posts": posts}


def test_tokens_of_documents_and_queries() -> None:
    assert {"水库", "污染", "自来水", "自来"} <= set(document_tokens(WATER).split())
    assert query_tokens("水库污染") == ["水库", "污染"]
    assert query_tokens("水库被污染") == ["水库", "污染"]  # one-character filler words go
    assert query_tokens("被") == ["被"]  # unless nothing else is left
    assert query_tokens("！？  \x00\x1b") == []
    assert query_tokens("ＱＱ群") == query_tokens("qq群")  # full-width and case folded


def test_words_found_apart_through_the_api(api_client: TestClient, api_engine: Engine,
                                            make_user: Callable[..., dict[str, str]]) -> None:
    ids = _seed(api_engine)
    viewer = make_user("viewer")

    def found(path: str, q: str) -> list[int]:
        res = api_client.get(f"/api/v1/{path}", params={"q": q, "page_size": 50}, headers=viewer)
        assert res.status_code == 200, res.text
        return sorted(x["id"] for x in res.json()["items"])

    assert found("alerts", "水库污染") == [ids["alerts"][0]]
    assert found("posts", "水库污染") == [ids["posts"][0]]
    assert found("debunks", "水库污染") == [ids["debunks"][0]]
    assert found("alerts", "污染 水库") == [ids["alerts"][0]]  # order does not matter
    assert found("alerts", "水库") == sorted([ids["alerts"][0], ids["alerts"][2]])
    assert found("alerts", "水库封路") == []  # every word must be there
    assert found("alerts", "湾村水") == [ids["alerts"][0]]  # a substring is still found
    assert found("alerts", '"水库" 污染* (') == [ids["alerts"][0]]  # FTS syntax is just text
    assert found("alerts", '水库 OR 封路') == []  # OR is a word like any other
    for path in ("alerts", "posts", "debunks"):
        assert api_client.get(f"/api/v1/{path}", params={"q": "水库\x00污染"}, headers=viewer).status_code == 422
        assert api_client.get(f"/api/v1/{path}", params={"q": "！！"}, headers=viewer).status_code == 200


def test_words_found_apart_in_the_console(api_client: TestClient, api_engine: Engine) -> None:
    ids = _seed(api_engine)
    with session_scope(api_engine) as s:
        accounts.create_user(s, username="zhangmin", role="staff", password="x" * 12)
    api_client.cookies.set(SESSION_COOKIE, session_cookie(api_engine, "zhangmin"))
    html = {"Accept": "text/html"}
    queue = api_client.get("/", params={"q": "水库污染", "status": "all"}, headers=html)
    assert queue.status_code == 200
    assert f"/alerts/{ids['alerts'][0]}" in queue.text and f"/alerts/{ids['alerts'][1]}" not in queue.text
    debunks = api_client.get("/debunks", params={"q": "水库污染"}, headers=html)
    assert debunks.status_code == 200
    assert "县水利局检测" in debunks.text and "没有封路安排" not in debunks.text
    assert api_client.get("/", params={"q": "水库\x00污染"}, headers=html).status_code == 422


def test_index_follows_edits_and_deletes(api_engine: Engine) -> None:
    dialect = api_engine.dialect.name
    ids = _seed(api_engine)

    def hits(q: str) -> list[int]:
        with session_scope(api_engine) as s:
            cond = search.matches("alerts", Alert.id, q, dialect)
            return list(s.scalars(select(Alert.id).where(cond)))

    with session_scope(api_engine) as s:
        s.get(Alert, ids["alerts"][1]).title = "石桥村水库发现死鱼"  # ORM edit: words follow
    assert hits("死鱼 水库") == [ids["alerts"][1]] and hits("明天") == []  # the old title is gone
    with session_scope(api_engine) as s:
        s.delete(s.get(Alert, ids["alerts"][0]))
    assert hits("污染") == []
    from nlp.debunks import upsert_debunks

    def debunk_hits(q: str) -> list[int]:
        with session_scope(api_engine) as s:
            return list(s.scalars(select(Debunk.id).where(search.matches("debunks", Debunk.id, q, dialect))))

    claim = "柳树村的井水有毒"
    with session_scope(api_engine) as s:  # the import path writes in bulk, past the ORM
        new_id = upsert_debunks(s, [{"claim": claim, "refutation": "经检测井水合格。"}]).ids[0]
    assert debunk_hits("井水 合格") == [new_id]
    with session_scope(api_engine) as s:
        assert upsert_debunks(s, [{"claim": claim, "refutation": "县疾控中心化验：水质达标。"}]).updated == 1
    assert debunk_hits("水质达标") == [new_id] and debunk_hits("合格") == []


def test_upgrade_backfills_rows_without_words_once(fresh_db_url: str, api_engine: Engine) -> None:
    ids = _seed(api_engine)
    with session_scope(api_engine) as s:  # as rows written before this version
        for table in (Alert, Post, Debunk):
            s.execute(update(table).values(search_tokens=None))
    with session_scope(api_engine) as s:
        assert s.scalars(select(Alert.id).where(search.matches("alerts", Alert.id, "污染", api_engine.dialect.name))).all() == []
    upgrade(fresh_db_url)
    with session_scope(api_engine) as s:
        for table, name in ((Alert, "alerts"), (Post, "posts"), (Debunk, "debunks")):
            assert s.scalar(select(func.count()).where(table.search_tokens.is_(None))) == 0
            cond = search.matches(name, table.id, "水库污染", api_engine.dialect.name)
            assert list(s.scalars(select(table.id).where(cond))) == [ids[name][0]]
    assert search.prepare(api_engine) == {"alerts": 0, "posts": 0, "debunks": 0}  # nothing left to do
