"""The console in a real browser (Debian's chromium via Playwright) against a real server:
the review workflow end to end, a viewer who cannot act, hostile post text, keyboard and polling."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from api.console.render import OPEN_STATUSES
from core.db import session_scope
from core.tables import Alert, AlertEvent, Label, ModelVersion, Response
from tests.console.conftest import browser_as, browser_login, shot
from tests.console.factories import (
    Said,
    Uncertain,
    add_scored_posts,
    alert_for_story,
    build_story,
    seed_alert,
)

pytestmark = pytest.mark.browser


def test_staff_work_an_alert_from_queue_to_response(live, new_page) -> None:
    page = new_page(1366, 768)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    browser_login(page, "zhangmin")
    expect(page.locator("header.top .who")).to_contain_text("张敏")

    # Filter the queue: the severity choice applies on change, the search on submit.
    page.select_option("select[name=severity]", "urgent")
    page.wait_for_url(re.compile(r"severity=urgent"))
    with session_scope(live.engine) as s:
        urgent = s.scalars(select(Alert.title).where(
            Alert.severity == "urgent", Alert.status.in_(OPEN_STATUSES))).all()
    expect(page.locator("ol.alerts li.row")).to_have_count(len(urgent))
    page.fill("input[name=q]", "封路")
    page.press("input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"q=%E5%B0%81%E8%B7%AF"))
    rows = page.locator("ol.alerts li.row")
    expect(rows).to_have_count(1)
    shot(page, "workflow-1-filtered")

    # Open it.
    rows.first.locator("a.title").click()
    alert_id = live.scene.alerts["road"]
    page.wait_for_url(f"**/alerts/{alert_id}")
    expect(page.locator(".alert-head .status")).to_have_text("新预警")
    expect(page.locator("blockquote.rep mark").first).to_be_visible()

    # 认领: assigned to me and acknowledged.
    page.get_by_role("button", name="认领").click()
    expect(page.locator(".flash.ok")).to_contain_text("已认领")
    expect(page.locator(".alert-head .status")).to_have_text("已认领")
    expect(page.locator(".alert-head .meta")).to_contain_text("张敏")
    expect(page.locator("#history")).to_contain_text("指派")

    # 确认谣言.
    page.get_by_role("button", name="确认谣言").click()
    expect(page.locator(".alert-head .status")).to_have_text("已确认谣言")
    expect(page.locator("#history li").first).to_contain_text("已确认谣言")

    # 记录回应: the form starts from the service's suggested draft.
    with session_scope(live.engine) as s:
        draft = s.get(Alert, alert_id).suggested_response
    assert draft, "the alert service suggested no draft for a debunk match"
    text = page.locator("#respond textarea[name=text]")
    expect(text).to_have_value(draft)
    text.fill(draft + "\n青禾镇宣传及信息发布组 11 月 29 日")
    page.check("#respond input[value=微信公众号]")
    page.check("#respond input[value=村广播]")
    page.fill("#respond input[name=url]", "https://mp.qinghe.example/piyao/1129")
    page.get_by_role("button", name="保存回应").click()
    expect(page.locator(".flash.ok")).to_contain_text("已记录回应")
    expect(page.locator(".alert-head .status")).to_have_text("已回应")
    expect(page.locator("#history")).to_contain_text("记录回应")
    expect(page.locator(".effect")).to_contain_text("回应前")
    expect(page.locator(".chart .marker")).to_be_visible()

    # 评论.
    page.fill("#comment", "已在东湾村、柳树村群内转发辟谣")
    page.get_by_role("button", name="评论").click()
    expect(page.locator("#history li").first).to_contain_text("已在东湾村、柳树村群内转发辟谣")
    shot(page, "workflow-2-responded")

    with session_scope(live.engine) as s:
        alert = s.get(Alert, alert_id)
        assert (alert.status, alert.assignee_id) == ("responded", live.scene.users["zhangmin"])
        response = s.scalar(select(Response).where(Response.alert_id == alert_id))
        assert response.channels == ["微信公众号", "村广播"]
        assert response.url == "https://mp.qinghe.example/piyao/1129"
        assert response.spread_before.get("hours")
        actions = [e.action for e in s.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                                               .order_by(AlertEvent.id))]
        assert actions[-1] == "comment" and "responded" in actions and "assigned" in actions
    assert dialogs == []


def test_viewer_cannot_act(live, new_page) -> None:
    page = new_page()
    browser_as(page, live, "chenkz")
    alert_id = live.scene.alerts["road"]
    page.goto(f"/alerts/{alert_id}")
    expect(page.locator("h1")).to_contain_text("封路")
    for name in ("认领", "确认谣言", "确认关切", "排除", "评论", "保存回应"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.locator("#respond")).to_have_count(0)
    # Even a hand-made request with the page's own CSRF token is refused by the server.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    r = page.request.post(f"/alerts/{alert_id}/claim", form={"csrf_token": token}, max_redirects=0)
    assert r.status == 403
    with session_scope(live.engine) as s:
        assert s.get(Alert, alert_id).assignee_id is None
    # Keyboard shortcuts do nothing for a viewer either.
    page.goto("/")
    page.keyboard.press("j")
    page.keyboard.press("a")
    page.wait_for_timeout(300)
    assert page.url.rstrip("/") == live.url
    shot(page, "viewer-alert")


HOSTILE = [
    "<script>window.__xss='script';alert('xss')</script>东湾村封村了",
    "<img src=x onerror=\"window.__xss='img';alert(1)\">柳树村停水",
    "<svg/onload=alert(2)>南坪村 <a href=javascript:alert(3)>点我</a>",
]


def test_hostile_post_text_renders_inert(live, new_page) -> None:
    with session_scope(live.engine) as s:
        story = build_story(s, title=None, probability=0.95, category="公共安全", places=["东湾村"],
                            explanation=[["<script>", 0.9], ["封村", 0.8]],
                            said=[Said(v, t, 2 - i * 0.5) for i, (v, t) in
                                  enumerate(zip(["东湾村", "柳树村", "南坪村"], HOSTILE, strict=True))])
        from alerts import evaluate as evaluation

        evaluation.evaluate(s)
        alert_id = alert_for_story(s, story)
        seed_alert(s, title=HOSTILE[1], said=[Said("青禾论坛", HOSTILE[2], url="javascript:alert(4)")])
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    browser_as(page, live, "zhangmin")
    for path in ("/", f"/alerts/{alert_id}", "/?status=all&q=%3Cimg"):
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__xss") is None, path
    page.goto(f"/alerts/{alert_id}")
    # Shown literally, as text.
    expect(page.locator("ol.evidence").get_by_text("<script>window.__xss='script';alert('xss')</script>",
                                                    exact=False)).to_have_count(1)
    expect(page.locator("ol.evidence").get_by_text('<img src=x onerror="window.__xss=', exact=False)) \
        .to_have_count(1)
    assert page.locator("ol.evidence img, ol.evidence script, ol.evidence svg, .post-text a").count() == 0
    page.goto("/?status=all&q=%3Cimg")
    expect(page.locator("a.title").first).to_contain_text("<img src=x onerror=")
    assert page.locator("ol.alerts img").count() == 0
    shot(page, "xss-queue")
    assert dialogs == []


def test_keyboard_claims_and_the_notice_announces_new_alerts(live, new_page) -> None:
    page = new_page()
    browser_as(page, live, "liwei")
    page.goto("/")
    rows = page.locator("ol.alerts li.row")
    count = rows.count()
    page.keyboard.press("j")
    expect(rows.first).to_have_class(re.compile("selected"))
    first_id = int(rows.first.get_attribute("data-id"))
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("a")
    page.wait_for_url(re.compile(r"msg="))
    expect(page.locator(".flash.ok")).to_contain_text(f"已认领预警 #{first_id}")
    with session_scope(live.engine) as s:
        assert s.get(Alert, first_id).assignee_id == live.scene.users["liwei"]
    expect(page.locator("li.row.selected")).to_have_attribute("data-id", str(first_id))

    # A new alert arrives: the notice says so and the list stays as it is.
    assert page.locator("#news").is_hidden()
    with session_scope(live.engine) as s:
        seed_alert(s, title="石桥村群里说学校明天停课", said=[Said("石桥村", "学校明天停课，家长在家带娃")],
                   severity="medium")
    page.evaluate("window.yuqingPoll()")
    expect(page.locator("#news")).to_be_visible()
    expect(page.locator("#news")).to_contain_text("1 条新预警")
    expect(rows).to_have_count(count)
    assert page.title().startswith("(1)")
    page.locator("#news").click()
    expect(rows).to_have_count(count + 1)


def test_analyst_labels_from_the_active_learning_list_and_promotes_a_model(live, new_page, trained_models) -> None:
    with session_scope(live.engine) as s:
        active_id = s.scalars(select(ModelVersion.id).where(ModelVersion.status == "active")).one()
        unsure, other = add_scored_posts(s, [Uncertain("听说青禾镇明天全天停水，是真的吗？", 0.52, reach=30),
                                             Uncertain("东湾村好像要修路了", 0.7, reach=2)], active_id)
    page = new_page(1366, 768)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    browser_login(page, "wangfang")

    page.get_by_role("navigation", name="主导航").get_by_role("link", name="待标注").click()
    page.wait_for_url("**/labels")
    items = page.locator("ol.label-queue li.queue-item")
    expect(items).to_have_count(2)
    expect(items.first).to_have_attribute("id", f"post-{unsure}")  # least sure and widest first
    expect(items.first.locator(".post-text")).to_have_text("听说青禾镇明天全天停水，是真的吗？")
    shot(page, "labels-1-queue")
    items.first.get_by_role("button", name="谣言", exact=True).click()
    expect(page.locator(".flash.ok")).to_contain_text(f"已将帖子 #{unsure} 标注为「谣言」")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("id", f"post-{other}")
    with session_scope(live.engine) as s:
        label = s.scalars(select(Label).where(Label.post_id == unsure)).one()
        assert (label.label, label.origin, label.user_id) == (1, "manual", live.scene.users["wangfang"])

    page.get_by_role("navigation", name="主导航").get_by_role("link", name="模型").click()
    page.locator("tr", has=page.locator("code", has_text=re.compile("^good$"))).get_by_role("link", name="启用…").click()
    page.wait_for_url("**/models/good/promote")
    expect(page.locator("h1")).to_have_text("启用模型 good？")
    page.get_by_role("button", name="确认启用").click()
    page.wait_for_url(re.compile(r"/models\?msg="))
    expect(page.locator(".flash.ok")).to_contain_text("已启用模型 good")
    expect(page.locator(".active-model h2")).to_have_text("当前在用：rumor good")
    shot(page, "labels-2-promoted")
    with session_scope(live.engine) as s:
        assert s.scalars(select(ModelVersion.version).where(ModelVersion.status == "active")).one() == "good"
    assert dialogs == []


def test_api_docs_render_without_internet(live, new_page) -> None:
    """Swagger UI comes from our own server: /docs shows the API's operations offline (chromium
    here has no route to a CDN, which the stock FastAPI page needs)."""
    page = new_page(1366, 768)
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(live.url) else None)
    from api.console.session import SESSION_COOKIE
    from tests.console.conftest import session_cookie

    page.context.add_cookies([{"name": SESSION_COOKIE, "value": session_cookie(live.engine, "zhangmin"),
                               "url": live.url}])  # the docs need a login
    page.goto("/docs")
    # Swagger UI builds the page from a 1 MB script and the whole OpenAPI document: on a loaded
    # 2-core CI machine that took longer than expect's 5 s default.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("舆情哨兵 yuqing API", timeout=30_000)
    expect(page.locator(".opblock").first).to_be_visible()
    assert external == []
