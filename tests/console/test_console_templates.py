"""Response drafts in the console: the alert page's draft comes from the editable templates and
cannot be saved with an unfilled 【placeholder】; the 回应模板 page lets analysts (not staff or
viewers) reword a template, and the next draft follows. Over HTTP against the served app, and in
chromium at 390 px (a phone), on a fresh database (SQLite, or PostgreSQL)."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from alerts import drafts
from core.db import session_scope
from core.tables import Response, ResponseTemplate
from tests.console.conftest import browser_as, csrf_of

CATEGORY = "疫情防控措施/隔离"  # the quarantine rumor's category in the console scene


def _draft_on(page_html: str) -> str:
    import html

    m = re.search(r'<textarea name="text"[^>]*>(.*?)</textarea>', page_html, re.S)
    assert m, "no response form"
    return html.unescape(m.group(1))


def test_a_draft_with_an_unfilled_placeholder_is_not_recorded(live, client_as) -> None:
    alert_id = live.scene.alerts["quarantine"]  # confirmed, no debunk: the facts are for staff to fill
    c = client_as("liwei")
    page = c.get(f"/alerts/{alert_id}")
    draft = _draft_on(page.text)
    assert "经核实，【核实情况】" in draft and "青禾镇人民政府" in draft and draft.count("经核实") == 1
    assert drafts.draft_problems(draft) == []
    r = c.post(f"/alerts/{alert_id}/respond", data={"text": draft, "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303 and "err=" in r.headers["location"]
    assert "未填写的占位符" in unquote(r.headers["location"]) and "【核实情况】" in unquote(r.headers["location"])
    shown = c.get(r.headers["location"]).text
    assert "未填写的占位符：【核实情况】" in shown
    with session_scope(live.engine) as s:
        assert s.scalar(select(func.count()).select_from(Response)) == 0
    filled = draft.replace("【核实情况】", "南坪村没有发现确诊病例，也没有隔离安排")
    ok = c.post(f"/alerts/{alert_id}/respond", data={"text": filled, "channels": ["微信公众号"],
                                                     "csrf_token": csrf_of(page.text)})
    assert ok.status_code == 303 and "msg=" in ok.headers["location"]
    with session_scope(live.engine) as s:
        assert s.scalar(select(Response.text)) == filled


def test_only_analysts_edit_templates_and_the_next_draft_follows(live, client_as) -> None:
    alert_id = live.scene.alerts["quarantine"]
    mine = "{发布单位}关于“{说法}”的情况通报：经核实，{核实情况}。请以县、镇两级政府通告为准。"
    for name in ("chenkz", "zhangmin"):  # a viewer and a staff member: read, never write
        c = client_as(name)
        page = c.get("/response-templates")
        assert page.status_code == 200 and "谣言澄清" in page.text and CATEGORY in page.text
        assert 'action="/response-templates/save"' not in page.text and "修改模板需要" in page.text
        r = c.post("/response-templates/save", data={"kind": "rumor", "category": CATEGORY, "body": mine,
                                                    "csrf_token": csrf_of(page.text)})
        assert r.status_code == 403 and "权限不足" in r.text
    with session_scope(live.engine) as s:
        assert s.scalar(select(func.count()).select_from(ResponseTemplate)) == 0

    analyst = client_as("wangfang")
    page = analyst.get("/response-templates")
    assert 'action="/response-templates/save"' in page.text
    r = analyst.post("/response-templates/save", data={"kind": "rumor", "category": CATEGORY, "body": mine,
                                                       "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303 and "msg=" in r.headers["location"], r.headers.get("location")
    assert "已修改" in analyst.get(r.headers["location"]).text
    bad = analyst.post("/response-templates/save", data={"kind": "rumor", "category": CATEGORY,
                                                         "body": "经核实，{题目}", "csrf_token": csrf_of(page.text)})
    assert bad.status_code == 303 and "无法识别的变量" in unquote(bad.headers["location"])

    draft = _draft_on(client_as("liwei").get(f"/alerts/{alert_id}").text)
    assert draft.startswith("青禾镇人民政府关于“") and "的情况通报：经核实，【核实情况】。" in draft

    reset = analyst.post("/response-templates/reset", data={"kind": "rumor", "category": CATEGORY,
                                                            "csrf_token": csrf_of(page.text)})
    assert reset.status_code == 303
    draft = _draft_on(client_as("liwei").get(f"/alerts/{alert_id}").text)
    assert draft.startswith("关于网传“")


@pytest.mark.browser
def test_templates_and_the_refused_draft_on_a_phone(live, new_page) -> None:
    from tests.console.test_console_phone import HEIGHT, WIDTH, _problems

    page = new_page(WIDTH, HEIGHT, is_mobile=True, has_touch=True)
    browser_as(page, live, "wangfang")
    page.goto("/response-templates")
    item = page.locator("details.template", has_text=CATEGORY).first
    item.locator("summary").click()
    problems = _problems(page, "response-templates-open")
    box = item.locator("textarea[name=body]")
    box.fill("{发布单位}关于“{说法}”的说明：经核实，{核实情况}。")
    item.get_by_role("button", name="保存模板").click()
    page.wait_for_url(re.compile(r"/response-templates\?msg="))
    assert "已保存回应模板" in page.locator(".flash.ok").inner_text()
    problems += _problems(page, "response-templates-saved")

    staff = new_page(WIDTH, HEIGHT, is_mobile=True, has_touch=True)
    browser_as(staff, live, "liwei")
    staff.goto(f"/alerts/{live.scene.alerts['quarantine']}")
    text = staff.locator("#respond textarea[name=text]")
    assert text.input_value().startswith("青禾镇人民政府关于“")
    text.fill(text.input_value() + "\n联系电话：0571-1234567")  # the staff member's own edit
    staff.get_by_role("button", name="保存回应").click()
    # said at once, and the edit stays in the box (the server refuses it too: see above)
    assert "未填写的占位符：【核实情况】" in staff.locator("#respond .flash.err").inner_text()
    assert text.input_value().endswith("联系电话：0571-1234567")
    problems += _problems(staff, "alert-draft-refused")
    text.fill(text.input_value().replace("【核实情况】", "南坪村没有发现确诊病例"))
    staff.get_by_role("button", name="保存回应").click()
    assert "已记录回应" in staff.locator(".flash.ok").inner_text()
    with session_scope(live.engine) as s:
        assert "南坪村没有发现确诊病例" in s.scalar(select(Response.text))
    assert not problems, "\n".join(problems)
