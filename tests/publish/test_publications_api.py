"""The publication API against the app (TestClient) and the loopback OneBot server: viewers read
but never draft or approve, one person cannot draft and approve, bad payloads are 422, the card
and the poster download, the day's measure lists what went out."""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image
from sqlalchemy import Engine

from tests.onebot_server import OneBotApi
from tests.publish.conftest import seed_matter

Headers = dict[str, str]


def _base(alert_id: int) -> str:
    return f"/api/v1/alerts/{alert_id}/publications"


def _draft(api_client, alert_id: int, headers: Headers, **kw: object):
    body = {"claim": "青禾镇明天要封路", "text": "经核实，青禾镇明天没有封路安排，道路正常通行。",
            "url": "https://qinghe.example.gov.cn/piyao/7"} | kw
    return api_client.post(_base(alert_id), json=body, headers=headers)


def test_draft_approve_and_per_group_results(api_client, api_engine: Engine, make_user: Callable[..., Headers],
                                             onebot: OneBotApi) -> None:
    m = seed_matter(api_engine)
    staff, analyst, viewer = make_user("staff"), make_user("analyst"), make_user("viewer")
    form = api_client.get(f"/api/v1/alerts/{m.alert_id}/publication-form", headers=viewer).json()
    assert [g["id"] for g in form["groups"] if g["default"]] == m.groups
    assert {g["id"]: g["sendable"] for g in form["groups"]}[m.wechat_group] is False
    # the form starts from the response templates as they read now: a draft staff must complete
    assert form["text"].count("经核实") == 1 and "【核实情况】" in form["text"]
    assert form["publisher"] == "青禾镇人民政府"
    unfilled = _draft(api_client, m.alert_id, staff, text=form["text"])
    assert unfilled.status_code == 422 and "【核实情况】" in unfilled.text, unfilled.text
    r = _draft(api_client, m.alert_id, staff)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert [t["status"] for t in r.json()["targets"]] == ["waiting"] * 3
    again = _draft(api_client, m.alert_id, staff)
    assert again.status_code == 200 and again.json()["id"] == pid  # idempotent
    assert api_client.post(f"{_base(m.alert_id)}/{pid}/approve", headers=viewer).status_code == 403
    assert api_client.post(f"{_base(m.alert_id)}/{pid}/approve", headers=staff).status_code == 403  # not an approver
    assert onebot.calls == []
    r = api_client.post(f"{_base(m.alert_id)}/{pid}/approve", headers=analyst)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved" and r.json()["response_id"]
    assert onebot.sent_to() == m.numbers  # sent right after approval
    detail = api_client.get(f"{_base(m.alert_id)}/{pid}", headers=viewer).json()
    assert [t["status"] for t in detail["targets"]] == ["sent"] * 3
    assert all(t["message_id"] for t in detail["targets"])
    history = api_client.get(f"/api/v1/alerts/{m.alert_id}", headers=viewer).json()["history"]
    actions = [e["action"] for e in history]
    assert {"publication_drafted", "publication_approved", "publication_sent", "responded"} <= set(actions)
    day = api_client.get("/api/v1/publications", headers=viewer).json()
    assert day["publications"] == 1 and day["groups_sent"] == 3
    assert day["items"][0]["spread_before"]["hours"] > 0


def test_one_person_cannot_draft_and_approve(api_client, api_engine: Engine, make_user: Callable[..., Headers],
                                             onebot: OneBotApi) -> None:
    m = seed_matter(api_engine)
    analyst = make_user("analyst")
    pid = _draft(api_client, m.alert_id, analyst).json()["id"]
    r = api_client.post(f"{_base(m.alert_id)}/{pid}/approve", headers=analyst)
    assert r.status_code == 409 and "另一位" in r.json()["detail"]
    assert onebot.calls == []


def test_viewers_read_but_never_draft(api_client, api_engine: Engine, make_user: Callable[..., Headers]) -> None:
    m = seed_matter(api_engine)
    viewer = make_user("viewer")
    assert _draft(api_client, m.alert_id, viewer).status_code == 403
    assert api_client.get(_base(m.alert_id), headers=viewer).json() == []
    assert api_client.get(_base(m.alert_id)).status_code == 401


def test_bad_payloads_are_422(api_client, api_engine: Engine, make_user: Callable[..., Headers]) -> None:
    m = seed_matter(api_engine)
    staff = make_user("staff")
    for bad in ({"claim": "", "text": "x"}, {"claim": "x"}, {"claim": "x", "text": "长" * 1001},
                {"claim": "x", "text": "y", "url": "javascript:alert(1)"}, {"claim": "x", "text": "y", "group_ids": [0]},
                {"claim": "x", "text": "y", "group_ids": "all"}, {"claim": "x", "text": "y", "extra": 1},
                {"claim": "x\u0000", "text": "y"}, {"claim": "x", "text": "y", "group_ids": [m.wechat_group]},
                {"claim": "x", "text": "y", "group_ids": [2**61]}):
        r = api_client.post(_base(m.alert_id), json=bad, headers=staff)
        assert r.status_code == 422, (bad, r.status_code, r.text)
    r = api_client.post(_base(m.alert_id), content=b"\xff\xfe", headers=staff | {"Content-Type": "application/json"})
    assert r.status_code == 422
    assert api_client.post(f"{_base(m.alert_id)}/99/approve", headers=staff).status_code == 404
    assert api_client.get(f"{_base(m.alert_id)}/{2**63}", headers=staff).status_code == 422
    assert api_client.get("/api/v1/publications?day=yesterday", headers=staff).status_code == 422
    assert api_client.get("/api/v1/publications/poster.gif", headers=staff).status_code == 422


def test_card_and_poster_download(api_client, api_engine: Engine, make_user: Callable[..., Headers]) -> None:
    m = seed_matter(api_engine)
    staff, viewer = make_user("staff"), make_user("viewer")
    pid = _draft(api_client, m.alert_id, staff, group_ids=[]).json()["id"]
    r = api_client.get(f"{_base(m.alert_id)}/{pid}/card.png", headers=viewer)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).width == 1080
    png = api_client.get("/api/v1/publications/poster.png", headers=viewer)
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (2480, 3508)
    pdf = api_client.get("/api/v1/publications/poster.pdf", headers=viewer)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert api_client.get(f"/api/v1/alerts/{m.alert_id}/publications/{pid}/card.png").status_code == 401


def test_reject_and_retry(api_client, api_engine: Engine, make_user: Callable[..., Headers], onebot: OneBotApi) -> None:
    m = seed_matter(api_engine)
    staff, analyst = make_user("staff"), make_user("analyst")
    pid = _draft(api_client, m.alert_id, staff, group_ids=[m.groups[0]]).json()["id"]
    r = api_client.post(f"{_base(m.alert_id)}/{pid}/reject", json={"reason": "措辞再改"}, headers=analyst)
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert api_client.post(f"{_base(m.alert_id)}/{pid}/approve", headers=analyst).status_code == 409
    onebot.refused = {m.numbers[1]}
    pid = _draft(api_client, m.alert_id, staff, group_ids=[m.groups[1]], text="道路正常通行").json()["id"]
    r = api_client.post(f"{_base(m.alert_id)}/{pid}/approve", headers=analyst)
    target = api_client.get(f"{_base(m.alert_id)}/{pid}", headers=staff).json()["targets"][0]
    assert target["status"] == "failed" and "群不存在" in target["last_error"]
    onebot.refused = set()
    r = api_client.post(f"{_base(m.alert_id)}/{pid}/targets/{target['id']}/retry", headers=staff)
    assert r.status_code == 200
    assert api_client.get(f"{_base(m.alert_id)}/{pid}", headers=staff).json()["targets"][0]["status"] == "sent"
    assert onebot.sent_to() == [m.numbers[1]]
