"""Each tip channel end to end through its real protocol: the tip page (form token, minimum fill
time, rate limit, pictures), OneBot private messages through the push endpoint (replies reach a
recording OneBot HTTP API server on loopback), the 公众号 callback with a signing client, and
the staff list (no contacts, ever)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from sqlalchemy import select

from alerts.notify import NotifyConfig, deliver_due
from core.db import session_scope
from core.settings import get_settings
from core.tables import Post, Tip
from core.tips import is_blocked
from tests.factories import make_debunk
from tests.onebot_server import OneBotApi as OneBotApiServer

CLAIM = "青禾镇将全面封路，所有车辆禁止通行"
WECHAT_TOKEN = "wechat-test-token"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde\x00"
       b"\x00\x00\x0cIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7V\x87\x1f\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def tip_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_TIP_FORM_MIN_SECONDS", "0.3")
    monkeypatch.setenv("YUQING_TIP_RATE_BURST", "5")
    monkeypatch.setenv("YUQING_TIP_RATE_PER_MINUTE", "1")
    monkeypatch.setenv("YUQING_WECHAT_TOKEN", WECHAT_TOKEN)
    get_settings.cache_clear()


def _library(api_engine: Any) -> None:
    with session_scope(api_engine) as s:
        make_debunk(s, claim=CLAIM)


def _form(client: Any) -> str:
    page = client.get("/tip")
    assert page.status_code == 200 and "width=device-width" in page.text and "联系方式" in page.text
    found = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_tip_page_answers_a_known_claim_and_stores_an_unknown_one_once(
    api_client: Any, api_engine: Any, tip_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _library(api_engine)
    token = _form(api_client)
    monkeypatch.setenv("YUQING_TIP_FORM_MIN_SECONDS", "60")  # no person fills the form this fast
    get_settings.cache_clear()
    too_fast = api_client.post("/tip", data={"form_token": token, "text": "有人说"})
    assert too_fast.status_code == 422 and "提交太快" in too_fast.text
    monkeypatch.setenv("YUQING_TIP_FORM_MIN_SECONDS", "0.3")
    get_settings.cache_clear()
    time.sleep(0.35)
    known = api_client.post("/tip", data={"form_token": token, "text": "青禾镇将全面封路，所有车辆禁止通行，是真的吗"})
    assert known.status_code == 200 and "【官方辟谣】" in known.text and "没有封路安排" in known.text
    again = api_client.post("/tip", data={"form_token": token, "text": "青禾镇将全面封路，所有车辆禁止通行，是真的吗"})
    assert "【官方辟谣】" in again.text  # a double submit: the same answer, one tip
    token2 = _form(api_client)
    time.sleep(0.35)
    unknown = api_client.post(
        "/tip", data={"form_token": token2, "text": "东湾村的桥<script>alert(1)</script>塌了吗", "contact": "13912345678",
                      "wants_answer": "1"},
        files=[("images", ("a.png", PNG, "image/png"))])
    assert unknown.status_code == 200 and "已收到，正在核实" in unknown.text
    assert "<script>alert(1)</script>" not in unknown.text
    with session_scope(api_engine) as s:
        tips = list(s.scalars(select(Tip).order_by(Tip.id)))
        assert [t.status for t in tips] == ["auto_answered", "acknowledged"]
        assert tips[1].wants_answer and len(tips[1].images) == 1 and "13912345678" not in (tips[1].contact_sealed or "")
        post = s.get(Post, tips[1].post_id)
        assert post is not None and post.channel == "chat" and post.extra.get("tip_channel") == "web"


def test_tip_page_refuses_forged_tokens_too_many_pictures_and_floods(
    api_client: Any, api_engine: Any, tip_settings: None
) -> None:
    assert api_client.post("/tip", data={"form_token": "forged", "text": "x"}).status_code == 422
    token = _form(api_client)
    time.sleep(0.35)
    many = [("images", (f"{i}.png", PNG, "image/png")) for i in range(4)]
    assert api_client.post("/tip", data={"form_token": token, "text": "x"}, files=many).status_code == 422
    codes = [api_client.post("/tip", data={"form_token": "forged", "text": "x"}).status_code for _ in range(4)]
    assert codes == [422, 422, 422, 429]  # a burst of 5 used up
    flood = api_client.post("/tip", data={"form_token": token, "text": "x"})
    assert flood.status_code == 429 and int(flood.headers["Retry-After"]) >= 1
    with session_scope(api_engine) as s:
        assert s.scalars(select(Tip)).all() == []


def test_qq_private_messages_become_tips_answered_through_the_bot_api(
    api_client: Any, api_engine: Any, make_user: Any, onebot_api: OneBotApiServer
) -> None:
    _library(api_engine)
    bot = make_user("staff")
    event = {"time": int(time.time()), "self_id": 99, "post_type": "message", "message_type": "private",
             "sub_type": "friend", "message_id": 501, "user_id": 10001,
             "message": [{"type": "text", "data": {"text": "青禾镇将全面封路，所有车辆禁止通行？"}}],
             "sender": {"user_id": 10001, "nickname": "张三"}}
    first = api_client.post("/api/v1/ingest/onebot", json=event, headers=bot)
    again = api_client.post("/api/v1/ingest/onebot", json=event, headers=bot)
    assert first.status_code == 200 and first.json()["new"] == 1 and again.json()["unchanged"] == 1
    deliver_due(api_engine, config=NotifyConfig())
    sent = onebot_api.sent("send_private_msg")
    assert len(sent) == 1 and sent[0]["user_id"] == 10001 and "没有封路安排" in sent[0]["message"]


def _signed(params: dict[str, str] | None = None, token: str = WECHAT_TOKEN) -> dict[str, str]:
    ts, nonce = str(int(time.time())), "n0nce"
    sig = hashlib.sha1("".join(sorted([token, ts, nonce])).encode()).hexdigest()
    return {"signature": sig, "timestamp": ts, "nonce": nonce} | (params or {})


def _wechat_text(openid: str, text: str, msg_id: int) -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_office]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


def test_wechat_callback_checks_signatures_and_replies_passively(
    api_client: Any, api_engine: Any, tip_settings: None
) -> None:
    _library(api_engine)
    check = api_client.get("/wechat/callback", params=_signed({"echostr": "abc123"}))
    assert check.status_code == 200 and check.text == "abc123"
    assert api_client.get("/wechat/callback", params=_signed({"echostr": "x"}, token="wrong")).status_code == 403
    bad = api_client.post("/wechat/callback", params=_signed(token="wrong"), content=_wechat_text("o1", "x", 1))
    assert bad.status_code == 403
    body = _wechat_text("oResident1", "青禾镇将全面封路，所有车辆禁止通行，是真的吗？", 7001)
    answer = api_client.post("/wechat/callback", params=_signed(), content=body)
    retry = api_client.post("/wechat/callback", params=_signed(), content=body)  # WeChat's retry
    xml = ET.fromstring(answer.text)
    assert xml.findtext("ToUserName") == "oResident1" and xml.findtext("FromUserName") == "gh_office"
    assert "没有封路安排" in (xml.findtext("Content") or "")
    assert ET.fromstring(retry.text).findtext("Content") == xml.findtext("Content")
    image = (b"<xml><ToUserName>gh_office</ToUserName><FromUserName>oResident2</FromUserName><CreateTime>1</CreateTime>"
             b"<MsgType>image</MsgType><PicUrl>http://127.0.0.1:9/p.jpg</PicUrl><MediaId>m</MediaId><MsgId>7002</MsgId></xml>")
    got = ET.fromstring(api_client.post("/wechat/callback", params=_signed(), content=image).text)
    assert "已收到，正在核实" in (got.findtext("Content") or "")
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><FromUserName>&a;</FromUserName></xml>'
    assert api_client.post("/wechat/callback", params=_signed(), content=bomb).status_code == 422
    with session_scope(api_engine) as s:
        assert sorted(t.channel for t in s.scalars(select(Tip))) == ["wechat", "wechat"]


def test_viewers_and_staff_never_see_contacts_and_staff_mark_abuse(
    api_client: Any, api_engine: Any, make_user: Any, tip_settings: None
) -> None:
    token = _form(api_client)
    time.sleep(0.35)
    api_client.post("/tip", data={"form_token": token, "text": "东湾村的桥塌了吗", "contact": "resident@example.org",
                                  "wants_answer": "1"})
    assert api_client.get("/api/v1/tips").status_code == 401
    for role in ("viewer", "staff", "admin"):
        listing = api_client.get("/api/v1/tips", headers=make_user(role))
        assert listing.status_code == 200 and listing.json()["total"] == 1
        raw = listing.text
        assert "resident@example.org" not in raw and "contact_sealed" not in raw and listing.json()["items"][0]["has_contact"]
    tip_id = listing.json()["items"][0]["id"]
    assert api_client.post(f"/api/v1/tips/{tip_id}/abuse", headers=make_user("viewer")).status_code == 403
    marked = api_client.post(f"/api/v1/tips/{tip_id}/abuse", json={"block": True, "reason": "骚扰"},
                             headers=make_user("staff"))
    assert marked.status_code == 200 and marked.json()["status"] == "abuse"
    stats = api_client.get("/api/v1/tips/stats", headers=make_user("viewer")).json()
    assert stats["total"]["received"] == 1 and stats["total"]["abuse"] == 1
    # marked by mistake: reopened (viewers may not), with the reporter off the block list on request
    assert api_client.post(f"/api/v1/tips/{tip_id}/reopen", headers=make_user("viewer")).status_code == 403
    reopened = api_client.post(f"/api/v1/tips/{tip_id}/reopen", json={"unblock": True}, headers=make_user("staff"))
    assert reopened.status_code == 200 and reopened.json()["status"] == "acknowledged"
    again = api_client.post(f"/api/v1/tips/{tip_id}/reopen", headers=make_user("staff"))
    assert again.status_code == 409  # only a tip closed as abuse can be reopened
    with session_scope(api_engine) as s:
        tip = s.get(Tip, tip_id)
        assert tip is not None and tip.post_id is not None and not is_blocked(s, tip.reporter_key)


def test_the_tip_page_limit_holds_across_processes(api_engine: Any, fresh_db_url: str, tip_settings: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two server processes (two workers, or a restart) on one database share one address's
    budget: the limit is in the database, not in a process's memory."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    # A refill of one token in 100 minutes: two process starts on a loaded machine can take a minute.
    monkeypatch.setenv("YUQING_TIP_RATE_PER_MINUTE", "0.01")
    repo = Path(__file__).resolve().parents[2]
    code = ("import json, sys; from fastapi.testclient import TestClient; from api.app import create_app; "
            "from core.db import make_engine\n"
            "with TestClient(create_app(make_engine(sys.argv[1]))) as c:\n"
            "    print(json.dumps([c.post('/tip', data={'form_token': 'forged', 'text': 'x'}).status_code "
            "for _ in range(3)]))")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    codes = [json.loads(subprocess.run([sys.executable, "-c", code, fresh_db_url], cwd=repo, env=env, check=True,
                                       capture_output=True, text=True, timeout=300).stdout.strip().splitlines()[-1])
             for _ in range(2)]
    assert codes == [[422, 422, 422], [422, 422, 429]]  # a burst of 5 in all, not 5 per process


def test_one_resident_flooding_the_bot_or_the_official_account_is_cut_off(
    api_client: Any, api_engine: Any, make_user: Any, onebot_api: OneBotApiServer, tip_settings: None
) -> None:
    bot = make_user("staff")

    def private(message_id: int, user: int = 10001) -> Any:
        event = {"time": int(time.time()), "self_id": 99, "post_type": "message", "message_type": "private",
                 "sub_type": "friend", "message_id": message_id, "user_id": user,
                 "message": [{"type": "text", "data": {"text": f"东湾村的桥塌了吗？第{message_id}次问"}}]}
        return api_client.post("/api/v1/ingest/onebot", json=event, headers=bot)

    answers = [private(600 + k).json() for k in range(7)]
    assert [a["new"] for a in answers] == [1] * 5 + [0, 0] and "太频繁" in answers[5]["ignored"]
    assert private(600).json()["unchanged"] == 1  # the bot re-sending a stored message is not refused
    assert private(700, user=10002).json()["new"] == 1  # another resident is not held up
    wechat = [ET.fromstring(api_client.post("/wechat/callback", params=_signed(),
                                            content=_wechat_text("oFlood", f"桥塌了吗{k}", 8000 + k)).text)
              .findtext("Content") for k in range(6)]
    assert all("已收到" in (w or "") for w in wechat[:5]) and "太频繁" in (wechat[5] or "")
    deliver_due(api_engine, config=NotifyConfig())
    assert len(onebot_api.sent("send_private_msg")) == 6  # one reply per stored tip, none to the flood
    with session_scope(api_engine) as s:
        assert len(s.scalars(select(Tip)).all()) == 11


def test_a_slow_official_account_reply_acknowledges_in_time_and_the_refutation_follows(
    api_client: Any, api_engine: Any, tip_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.tables import Notification

    _library(api_engine)
    import api.routes.wechat as wechat_route

    real_take_tip = wechat_route.take_tip
    answered = threading.Event()

    def slow_take_tip(*args: Any, **kwargs: Any) -> Any:
        # The work cannot finish before the passive reply has gone out, however late a busy
        # machine wakes the event loop (a sleep of 3 s once lost that race in CI).
        answered.wait(60)
        return real_take_tip(*args, **kwargs)

    monkeypatch.setattr(wechat_route, "take_tip", slow_take_tip)
    monkeypatch.setenv("YUQING_WECHAT_REPLY_DEADLINE_SECONDS", "0.05")
    get_settings.cache_clear()
    body = _wechat_text("oResident9", "青禾镇将全面封路，所有车辆禁止通行，是真的吗？", 7101)
    answer = ET.fromstring(api_client.post("/wechat/callback", params=_signed(), content=body).text)
    answered.set()
    assert "已收到，正在核实" in (answer.findtext("Content") or "")
    give_up = time.monotonic() + 90  # the work goes on after the reply (a loaded machine builds slowly)
    while time.monotonic() < give_up:
        with session_scope(api_engine) as s:
            queued = s.scalars(select(Notification).where(Notification.channel == "wechat_user")).all()
            tip = s.scalar(select(Tip))
        if queued:
            break
        time.sleep(0.1)
    assert tip is not None and tip.status == "auto_answered"
    assert len(queued) == 1 and queued[0].dedup_key == f"tip:{tip.id}:first" and "没有封路安排" in queued[0].payload["text"]
