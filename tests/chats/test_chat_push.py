"""The push routes (OneBot v11 and generic batches) and the groups API, over HTTP on a fresh database."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api import accounts
from core.db import session_scope
from core.settings import get_settings
from core.tables import ChatGroup, Post
from crawler.chats.onebot import signature

ONEBOT = "/api/v1/ingest/onebot"
BATCH = "/api/v1/ingest/messages"


@pytest.fixture
def bot(api_engine) -> dict[str, str]:
    with session_scope(api_engine) as s:
        user = accounts.create_user(s, username="qqbot-owner", role="staff")
        token = accounts.create_token(s, user, "qq-bot-1", kind="bot")
    return {"Authorization": f"Bearer {token}"}


def event(message_id: int = 52001, **over) -> dict:
    body = {
        "time": 1764036000,
        "self_id": 10001,
        "post_type": "message",
        "message_type": "group",
        "sub_type": "normal",
        "message_id": message_id,
        "group_id": 880001,
        "user_id": 3141592653,
        "message": [
            {"type": "text", "data": {"text": "听说东湾村要封村了？电话13912345678"}},
            {"type": "image", "data": {"file": "a.jpg"}},
        ],
        "raw_message": "听说东湾村要封村了？[CQ:image,file=a.jpg]",
        "sender": {"user_id": 3141592653, "nickname": "张小军", "card": "东湾村-张小军"},
    }
    return body | over


def posts(api_engine) -> list[Post]:
    with session_scope(api_engine) as s:
        return list(s.scalars(select(Post).order_by(Post.id)))


def test_onebot_push_is_stored_once(api_client: TestClient, api_engine, bot: dict) -> None:
    first = api_client.post(ONEBOT, json=event(), headers=bot)
    assert first.status_code == 200, first.text
    assert first.json() | {"rejected": []} == {
        "new": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": [],
        "skipped": {},
        "ignored": None,
        "spooled": 0,
    }
    again = api_client.post(ONEBOT, json=event(), headers=bot)
    assert again.json()["unchanged"] == 1 and again.json()["new"] == 0
    stored = posts(api_engine)
    assert len(stored) == 1
    post = stored[0]
    assert post.raw_text == "听说东湾村要封村了？电话139****5678[图片]" and post.external_id == "52001"
    assert post.author.startswith("用户") and post.channel == "chat"
    reply = event(52002, message="[CQ:reply,id=52001]没有的事[CQ:face,id=14]", user_id=2718281828)
    assert api_client.post(ONEBOT, json=reply, headers=bot).json()["new"] == 1
    stored = posts(api_engine)
    assert stored[1].parent_id == stored[0].id and stored[1].raw_text == "没有的事[表情]"
    with session_scope(api_engine) as s:
        group = s.scalar(select(ChatGroup))
        assert (group.platform, group.external_id, group.name) == ("qq", "880001", "QQ群880001")


def test_nul_is_cleaned_and_lone_surrogates_are_422(api_client: TestClient, api_engine, bot: dict) -> None:
    headers = bot | {"Content-Type": "application/json"}
    broken = json.dumps(event(message="坏字符\ud800", group_name="东湾\ud83d村")).encode()
    assert api_client.post(ONEBOT, content=broken, headers=headers).status_code == 422
    body = json.dumps(event(message="坏字符\x00在这里", sender={"nickname": "张\x00三"})).encode()
    res = api_client.post(ONEBOT, content=body, headers=headers)
    assert res.status_code == 200 and res.json()["new"] == 1, res.text
    assert posts(api_engine)[0].raw_text == "坏字符在这里"


def test_non_group_events_are_acknowledged_and_ignored(api_client: TestClient, api_engine, bot: dict) -> None:
    beat = {"time": 1764036000, "self_id": 10001, "post_type": "meta_event", "meta_event_type": "heartbeat"}
    res = api_client.post(ONEBOT, json=beat, headers=bot)
    assert res.status_code == 200 and "不是群消息" in res.json()["ignored"]
    notice = {"time": 1764036000, "self_id": 10001, "post_type": "notice", "notice_type": "group_increase"}
    assert api_client.post(ONEBOT, json=notice, headers=bot).json()["ignored"]
    assert posts(api_engine) == []
    # A private message to the bot is a resident's tip (tests/tips): stored in the tip line, not a group.
    private = event(message_type="private")
    assert api_client.post(ONEBOT, json=private, headers=bot).json()["new"] == 1
    assert [p.extra.get("tip_channel") for p in posts(api_engine)] == ["qq"]


MALFORMED_ONEBOT = [
    b"not json",
    b"[1, 2]",
    json.dumps({"post_type": "message"}).encode(),  # no time
    json.dumps(event(time="yesterday")).encode(),
    json.dumps(event(group_id=None)).encode(),
    json.dumps(event(message=None, raw_message=None)).encode(),
    json.dumps(event(message=[{"data": {"text": "no type"}}])).encode(),
    json.dumps(event(time=10**12)).encode(),
]


def test_malformed_pushes_are_422_and_store_nothing(api_client: TestClient, api_engine, bot: dict) -> None:
    for body in MALFORMED_ONEBOT:
        res = api_client.post(ONEBOT, content=body, headers=bot | {"Content-Type": "application/json"})
        assert res.status_code == 422, (body, res.text)
        assert res.headers["content-type"].startswith("application/problem+json")
    assert posts(api_engine) == []


def test_tokens(api_client: TestClient, api_engine, bot: dict, make_user: Callable[[str], dict]) -> None:
    assert api_client.post(ONEBOT, json=event()).status_code == 401
    assert (
        api_client.post(ONEBOT, json=event(), headers={"Authorization": "Bearer yq_wrong"}).status_code == 401
    )
    assert api_client.post(ONEBOT, json=event(), headers=make_user("viewer")).status_code == 403
    assert api_client.post(ONEBOT, json=event(), headers=make_user("staff")).status_code == 200
    # OneBot's convention for frameworks that cannot set headers: ?access_token=
    token = bot["Authorization"].split()[1]
    assert api_client.post(ONEBOT, params={"access_token": token}, json=event(52077)).json()["new"] == 1
    assert api_client.post(ONEBOT, params={"access_token": "yq_nope"}, json=event()).status_code == 401
    # a bot token pushes, and nothing else
    assert api_client.get("/api/v1/groups", headers=bot).status_code == 403
    assert api_client.get("/api/v1/me", headers=bot).status_code == 403


def test_signature_when_a_secret_is_set(
    api_client: TestClient, api_engine, bot: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUQING_ONEBOT_SECRET", "qinghe-bot-secret")
    get_settings.cache_clear()
    body = json.dumps(event(), ensure_ascii=False).encode("utf-8")
    headers = bot | {"Content-Type": "application/json"}
    assert api_client.post(ONEBOT, content=body, headers=headers).status_code == 401
    wrong = signature(b"other-secret", body)
    res = api_client.post(ONEBOT, content=body, headers=headers | {"X-Signature": wrong})
    assert res.status_code == 401 and "YUQING_ONEBOT_SECRET" in res.json()["detail"]
    # a signed body that was changed on the way
    tampered = body.replace("封村".encode(), "解封".encode())
    sig = signature(b"qinghe-bot-secret", body)
    assert (
        api_client.post(ONEBOT, content=tampered, headers=headers | {"X-Signature": sig}).status_code == 401
    )
    assert posts(api_engine) == []
    ok = api_client.post(ONEBOT, content=body, headers=headers | {"X-Signature": sig})
    assert ok.status_code == 200 and ok.json()["new"] == 1
    # without a secret, no signature is needed
    monkeypatch.delenv("YUQING_ONEBOT_SECRET")
    get_settings.cache_clear()
    assert api_client.post(ONEBOT, json=event(52009), headers=bot).json()["new"] == 1


def test_generic_batch(api_client: TestClient, api_engine, bot: dict) -> None:
    batch = {
        "group": {"platform": "wechat", "external_id": "20261122@chatroom", "name": "南坪村村民群"},
        "messages": [
            {
                "id": "m1",
                "time": "2026-11-22T10:00:00+08:00",
                "sender": "南坪村老李",
                "sender_id": "wxid_li",
                "text": "南坪村菜市场明天关门？",
            },
            {
                "id": "m2",
                "time": "2026-11-22T10:01:00",
                "sender": "网格员",
                "text": "照常营业",
                "reply_to": "m1",
            },
            {"time": "2026-11-22T10:02:00", "sender": "网格员", "text": "没有 id 的消息"},
            {"time": "2099-01-01T00:00:00", "sender": "网格员", "text": "时间在未来"},
        ],
    }
    res = api_client.post(BATCH, json=batch, headers=bot)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["new"] == 3 and len(body["rejected"]) == 1 and body["rejected"][0]["index"] == 3
    assert "未来" in body["rejected"][0]["reason"]
    again = api_client.post(BATCH, json=batch, headers=bot).json()
    assert (again["new"], again["unchanged"]) == (0, 3)
    stored = posts(api_engine)
    assert len(stored) == 3 and stored[1].parent_id == stored[0].id
    other_group = {
        "messages": [
            {
                "group": {"platform": "qq", "external_id": "880002", "name": "石桥村群"},
                "time": "2026-11-22T11:00:00",
                "text": "各有各的群",
            }
        ]
    }
    assert api_client.post(BATCH, json=other_group, headers=bot).json()["new"] == 1


BAD_BATCHES = [
    {"messages": []},
    {"messages": [{"time": "2026-11-22T10:00:00", "text": "没有群"}]},
    {
        "group": {"platform": "weibo", "external_id": "1"},
        "messages": [{"time": "2026-11-22T10:00:00", "text": "x"}],
    },
    {"group": {"platform": "qq", "external_id": "1"}, "messages": [{"time": "不是时间", "text": "x"}]},
    {
        "group": {"platform": "qq", "external_id": "1"},
        "messages": [
            {"time": "2026-11-22T10:00:00", "text": "好的"},
            {"time": "2026-11-22T10:00:00", "text": ""},
        ],
    },
]


def test_bad_batches_are_422_and_store_nothing(api_client: TestClient, api_engine, bot: dict) -> None:
    for body in BAD_BATCHES:
        res = api_client.post(BATCH, json=body, headers=bot)
        assert res.status_code == 422, (body, res.text)
    assert posts(api_engine) == []


def test_groups_api(api_client: TestClient, api_engine, bot: dict, make_user: Callable[[str], dict]) -> None:
    api_client.post(ONEBOT, json=event(), headers=bot)
    api_client.post(ONEBOT, json=event(52002), headers=bot)
    api_client.post(ONEBOT, json=event(60001, group_id=880002, group_name="石桥村群"), headers=bot)
    viewer, admin = make_user("viewer"), make_user("admin")
    page = api_client.get("/api/v1/groups", headers=viewer).json()
    assert page["total"] == 2 and [g["message_count"] for g in page["items"]] == [2, 1]
    first = page["items"][0]
    assert first["name"] == "QQ群880001" and first["last_message_at"].startswith("2025-11-25T02:00")
    gid = first["id"]
    patch = {"name": "东湾村村民群", "tags": ["村民群", "东湾村"], "member_count": 312, "keep_names": True}
    assert (
        api_client.patch(f"/api/v1/groups/{gid}", json=patch, headers=make_user("staff")).status_code == 403
    )
    res = api_client.patch(f"/api/v1/groups/{gid}", json=patch, headers=admin)
    assert res.status_code == 200 and res.json()["tags"] == ["东湾村", "村民群"] and res.json()["keep_names"]
    tagged = api_client.get("/api/v1/groups", params={"tag": "村民群"}, headers=viewer).json()
    assert [g["id"] for g in tagged["items"]] == [gid]
    assert api_client.get("/api/v1/groups", params={"tag": "村"}, headers=viewer).json()["total"] == 0
    assert api_client.get("/api/v1/groups", params={"q": "石桥"}, headers=viewer).json()["total"] == 1
    # keep_names: new messages of this group keep the sender's group card
    api_client.post(ONEBOT, json=event(52003), headers=bot)
    assert posts(api_engine)[-1].author == "东湾村-张小军"
    assert (
        api_client.patch(f"/api/v1/groups/{gid}", json={"enabled": False}, headers=admin).status_code == 200
    )
    res = api_client.post(ONEBOT, json=event(52004), headers=bot).json()
    assert res["new"] == 0 and res["skipped"] == {"disabled": 1}
    assert api_client.patch("/api/v1/groups/99999", json={"enabled": True}, headers=admin).status_code == 404
    assert api_client.patch(f"/api/v1/groups/{gid}", json={"colour": "red"}, headers=admin).status_code == 422
    assert (
        api_client.patch(f"/api/v1/groups/{gid}", json={"member_count": -1}, headers=admin).status_code == 422
    )
    assert api_client.get(f"/api/v1/groups/{gid}", headers=viewer).json()["member_count"] == 312
    with session_scope(api_engine) as s:
        assert s.scalar(select(func.count()).select_from(ChatGroup)) == 2


def test_activity_and_openapi_examples(
    api_client: TestClient, api_engine, bot: dict, make_user: Callable[[str], dict]
) -> None:
    import time

    now = int(time.time())
    for i in range(3):
        api_client.post(ONEBOT, json=event(70000 + i, time=now - 60 * i), headers=bot)
    rows = api_client.get("/api/v1/groups/activity", params={"hours": 2}, headers=make_user("viewer")).json()
    assert sum(r["count"] for r in rows) == 3 and {r["group_id"] for r in rows} == {1}
    spec = api_client.get("/openapi.json", headers=make_user("viewer")).json()
    op = spec["paths"]["/api/v1/ingest/onebot"]["post"]
    examples = op["requestBody"]["content"]["application/json"]["examples"]
    assert {"segments", "cq_string", "heartbeat"} <= set(examples)
    assert "X-Signature" in op["description"]
    assert "/api/v1/ingest/messages" in spec["paths"] and "/api/v1/groups/{group_id}" in spec["paths"]
