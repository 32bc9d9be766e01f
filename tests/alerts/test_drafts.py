"""Response drafts staff can publish with light edits, through the API (SQLite, or PostgreSQL with
YUQING_TEST_DATABASE=postgres): they speak as the office's public name, never quote the rumor's
hooks, state only the debunk's facts or 【placeholders】, say 经核实 once and put the link last; a
draft with an unfilled placeholder cannot be recorded as published; analysts reword the template
of a kind and category and the next draft follows it; viewers and staff cannot.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts import drafts
from alerts import evaluate as evaluation
from alerts.notify import NotifyConfig
from core.db import session_scope
from core.settings import get_settings
from core.tables import Alert, Response, utcnow
from nlp.concerns.taxonomy import load_taxonomy
from tests.factories import make_debunk, make_debunk_match, story_with_posts

pytestmark = pytest.mark.db

QUIET = NotifyConfig()
HOOKED = "紧急扩散！听说青禾镇明天起封路，所有车辆禁止进出，转发扩散"
REFUTATION = ("【辟谣】近日有人在群里传播“青禾镇明天封路”的消息，经核实，该消息不实，全镇道路正常通行，"
              "没有任何封路安排，请勿信谣传谣。https://www.qinghe.gov.cn/piyao/1208.html")
LINK = "https://www.qinghe.gov.cn/piyao/1208.html"
HOOKS = ("紧急扩散", "转发扩散", "听说", "不转不是")
URL_RE = re.compile(r"https?://\S+")


def _categories() -> list[str]:
    t = load_taxonomy()
    return list(dict.fromkeys([*t.categories, t.default]))


def _assert_publishable_shape(text: str) -> None:
    """One 经核实, no hook, no claimed action, no doubled appeal, a URL only on a last 详见 line."""
    assert drafts.draft_problems(text) == [], (drafts.draft_problems(text), text)
    body, _, last = text.rpartition("\n")
    if URL_RE.search(text):
        assert last.startswith("详见：") and not URL_RE.search(body), text
    assert get_settings().office_public_name in text


# ----------------------------------------------------------------------------- the templates


@pytest.mark.parametrize("kind", drafts.KINDS)
def test_every_default_template_renders_without_hooks_or_double_phrases(session: Session, kind: str) -> None:
    debunk = make_debunk(session, claim=HOOKED, refutation=REFUTATION, url=None)
    for category in ["", *_categories()]:
        text = drafts.draft(session, kind=kind, category=category or None, claim=HOOKED, places=["东湾村"],
                            debunk_id=debunk.id if kind == "rumor" else None)
        _assert_publishable_shape(text)
        assert not any(h in text for h in HOOKS), text
        assert "“青禾镇明天起封路" in text, text  # the claim, cleaned and short, in quotes
        if kind == "rumor":
            # the debunk's facts once, without its own 经核实, appeal or URL; its URL goes last
            assert "经核实，该消息不实，全镇道路正常通行，没有任何封路安排。" in text, text
            assert "【核实情况】" not in text and text.endswith(f"详见：{LINK}")
            assert text.count("信谣") == 1  # the template's appeal, not also the debunk's
        else:
            assert "经核实，" in text and drafts.unfilled_placeholders(text), text


def test_a_rumor_without_a_debunk_leaves_the_facts_to_staff(session: Session) -> None:
    text = drafts.draft(session, kind="rumor", category="交通出行", claim="【转】速看：青禾镇明天起停水三天？？？")
    assert "经核实，【核实情况】。" in text and "“青禾镇明天起停水三天”" in text
    assert drafts.unfilled_placeholders(text) == ["【核实情况】"]
    _assert_publishable_shape(text)


def test_placeholders_are_not_headings() -> None:
    assert drafts.unfilled_placeholders("【辟谣】经核实，没有封路。") == []
    assert drafts.unfilled_placeholders("经核实，【核实情况】。电话【咨询电话】，【核实情况】") == [
        "【核实情况】", "【咨询电话】"]


# ----------------------------------------------------------------------------- through the API


def _debunked_alert(engine, now: dt.datetime) -> int:
    with session_scope(engine) as s:
        _, posts = story_with_posts(s, 10, groups=5, probability=0.96, now=now, is_local=True,
                                    category="交通出行", text=HOOKED)
        debunk = make_debunk(s, claim="青禾镇明天起封路，所有车辆禁止进出", refutation=REFUTATION, url=LINK)
        make_debunk_match(s, posts[0], debunk, 0.93)
        result = evaluation.evaluate(s, now=now, notify_config=QUIET)
        assert len(result.created) == 1
        return result.created[0]


def test_api_draft_is_clean_and_an_unfilled_placeholder_refuses_publishing(
    api_client: TestClient, api_engine, make_user
) -> None:
    staff = make_user("staff")
    alert_id = _debunked_alert(api_engine, utcnow())
    url = f"/api/v1/alerts/{alert_id}"
    detail = api_client.get(url, headers=staff).json()
    draft = detail["suggested_response"]
    _assert_publishable_shape(draft)
    assert not any(h in draft for h in HOOKS) and "全镇道路正常通行" in draft
    assert draft.endswith(f"详见：{LINK}") and draft.startswith("关于网传“青禾镇明天起封路")
    assert "已会同" not in draft and "宣传及信息发布组" not in draft
    # the alert's own title is a headline, not the hooked post
    title = detail["title"]
    assert "青禾镇明天起封路" in title and not any(h in title for h in ("紧急扩散", "转发扩散")), title

    assert api_client.post(f"{url}/transition", json={"to": "confirmed_rumor"}, headers=staff).status_code == 200
    unfilled = api_client.post(f"{url}/responses", headers=staff,
                               json={"text": draft.replace("全镇道路正常通行", "【核实情况】"), "channels": ["微信公众号"]})
    assert unfilled.status_code == 422, unfilled.text
    assert "未填写的占位符" in unfilled.json()["detail"] and "【核实情况】" in unfilled.json()["detail"]
    with session_scope(api_engine) as s:
        assert s.scalar(select(func.count()).select_from(Response)) == 0
        assert s.get(Alert, alert_id).status == "confirmed_rumor"  # nothing recorded
    published = api_client.post(f"{url}/responses", headers=staff, json={"text": draft, "channels": ["微信公众号"]})
    assert published.status_code == 201, published.text


def test_an_analyst_rewords_a_template_and_the_next_draft_follows(
    api_client: TestClient, api_engine, make_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer, staff, analyst = make_user("viewer"), make_user("staff"), make_user("analyst")
    alert_id = _debunked_alert(api_engine, utcnow())
    listed = api_client.get("/api/v1/response-templates", headers=viewer)
    assert listed.status_code == 200
    body = listed.json()
    assert body["office_public_name"] == "青禾镇人民政府" and "核实情况" in body["variables"]
    assert len(body["items"]) == 3 * (1 + len(_categories()))
    assert not any(i["edited"] for i in body["items"])

    mine = {"kind": "rumor", "category": "交通出行",
            "body": "{发布单位}关于“{说法}”的说明：经核实，{核实情况}。出行请以交通部门通告为准。"}
    for who in (viewer, staff):
        assert api_client.put("/api/v1/response-templates", json=mine, headers=who).status_code == 403
    assert api_client.put("/api/v1/response-templates", json=mine).status_code == 401
    saved = api_client.put("/api/v1/response-templates", json=mine, headers=analyst)
    assert saved.status_code == 200, saved.text
    assert saved.json()["edited"] and saved.json()["body"] == mine["body"]
    again = api_client.put("/api/v1/response-templates", json=mine, headers=analyst)  # idempotent
    assert again.status_code == 200 and again.json()["body"] == mine["body"]

    draft = api_client.get(f"/api/v1/alerts/{alert_id}", headers=staff).json()["suggested_response"]
    assert draft.startswith("青禾镇人民政府关于“青禾镇明天起封路") and "出行请以交通部门通告为准" in draft
    assert "全镇道路正常通行" in draft and draft.endswith(f"详见：{LINK}")

    # the office's public name is a setting
    monkeypatch.setenv("YUQING_OFFICE_PUBLIC_NAME", "柳河镇人民政府")
    get_settings.cache_clear()
    try:
        draft = api_client.get(f"/api/v1/alerts/{alert_id}", headers=staff).json()["suggested_response"]
        assert draft.startswith("柳河镇人民政府关于“")
    finally:
        monkeypatch.delenv("YUQING_OFFICE_PUBLIC_NAME")
        get_settings.cache_clear()

    for bad, says in [({"body": "关于{题目}：经核实，{核实情况}"}, "无法识别的变量"),
                      ({"body": "经核实，{核实情况}。经核实，没有。"}, "只能出现一次"),
                      ({"body": "经核实，{核实情况}，见 https://x.example/1"}, "不要写网址"),
                      ({"category": "没有这个类"}, "不在分类表里"),
                      ({"kind": "gossip"}, None), ({"body": ""}, None)]:
        r = api_client.put("/api/v1/response-templates", json=mine | bad, headers=analyst)
        assert r.status_code == 422, (bad, r.text)
        if says:
            assert says in r.json()["detail"], r.text

    reset = api_client.delete("/api/v1/response-templates", params={"kind": "rumor", "category": "交通出行"},
                              headers=analyst)
    assert reset.status_code == 200 and not reset.json()["edited"]
    assert api_client.delete("/api/v1/response-templates", params={"kind": "rumor"}, headers=staff).status_code == 403
    draft = api_client.get(f"/api/v1/alerts/{alert_id}", headers=staff).json()["suggested_response"]
    assert draft.startswith("关于网传“青禾镇明天起封路")
