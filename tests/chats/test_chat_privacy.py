"""No raw QQ number, wxid, Telegram id, e-mail, phone or ID-card number reaches the database.

Imports every sample export and pushes OneBot events and a generic batch, then reads every
column of every table back as text (and, on SQLite, the raw database file) and looks for them.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import inspect

from api import accounts
from core.db import session_scope
from crawler.chats import import_chat_file
from tests.chats.conftest import FIXTURES, every_text, sqlite_file_bytes

RAW_SENDER_IDS = [
    "3141592653",
    "2718281828",
    "1618033988",
    "1732050807",
    "2236067977",
    "2449489742",  # QQ txt
    "lidajie@qinghe.example",
    "wxid_shiqiao_chen01",
    "wxid_zhou_power77",
    "wxid_nanping_ayi",  # export ids
    "wxid_nanping_li88",
    "wxid_nanping_wang5",
    "user707070707",
    "user808080808",
    "2645751311",  # the private chat's sender (not imported at all)
    "1414213562",  # the sender of a message with a broken date
    "1123581321",
    "wxid_pushed_user",  # pushed
]
RAW_PERSONAL = [
    "13912345678",
    "138-1234-5678",
    "13812345678",
    "110101199003071234",
    "13800002222",
    "+86 13800002222",
    "13700001111",
]
NAMES = [
    "张小军",
    "村委会王主任",
    "周大伟",
    "老同学",
    "东湾村-推送者",
]  # as senders (周站长 is also thanked in a text)


def test_nothing_personal_reaches_the_database(api_client: TestClient, api_engine, fresh_db_url: str) -> None:
    with session_scope(api_engine) as s:
        token = accounts.create_token(
            s, accounts.create_user(s, username="bot-owner", role="staff"), "b", kind="bot"
        )
    for path in sorted(FIXTURES.iterdir()):
        if path.name == "unknown_layout.csv":
            continue
        with session_scope(api_engine) as s:
            import_chat_file(s, path)
    headers = {"Authorization": f"Bearer {token}"}
    event = {
        "time": 1764036000,
        "post_type": "message",
        "message_type": "group",
        "message_id": 9,
        "group_id": 880001,
        "user_id": 1123581321,
        "self_id": 1000001,
        "message": "[CQ:at,qq=3141592653] 我的电话13700001111，微信 wxid_pushed_user 不要外传",
        "sender": {"user_id": 1123581321, "nickname": "东湾村-推送者"},
    }
    assert api_client.post("/api/v1/ingest/onebot", json=event, headers=headers).json()["new"] == 1
    batch = {
        "group": {"platform": "wechat", "external_id": "room1", "name": "石桥村群"},
        "messages": [
            {
                "id": "x1",
                "time": "2026-11-22T10:00:00",
                "sender": "周大伟",
                "sender_id": "wxid_zhou_power77",
                "text": "电话 13912345678",
            }
        ],
    }
    assert api_client.post("/api/v1/ingest/messages", json=batch, headers=headers).json()["new"] == 1

    everything = every_text(api_engine)
    assert "139****5678" in everything and "137****1111" in everything  # the data is there, masked
    for raw in RAW_SENDER_IDS + RAW_PERSONAL + NAMES:
        # (wxid_pushed_user was typed into a message by its sender: text is kept, so it may appear)
        if raw == "wxid_pushed_user":
            continue
        assert raw not in everything, raw
    # the raw file too (SQLite): nothing hides in free pages, indexes or the write-ahead log
    data = sqlite_file_bytes(api_engine, fresh_db_url)
    if data is not None:
        for raw in RAW_SENDER_IDS[:-1] + RAW_PERSONAL + NAMES:
            assert raw.encode("utf-8") not in data, raw
    assert "posts" in inspect(api_engine).get_table_names()
