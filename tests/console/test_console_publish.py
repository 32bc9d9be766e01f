"""The alert page's 发布 section over real HTTP (uvicorn on loopback) and in chromium at 390 px:
a staff member drafts, someone else approves, the bot (a loopback OneBot server) posts to the
groups where the matter spread, each group's result shows, the card downloads."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from sqlalchemy import select

from core.db import session_scope
from core.tables import PublicationTarget, User
from tests.console.conftest import browser_as, csrf_of, shot
from tests.console.test_console_phone import HEIGHT, WIDTH, _problems
from tests.onebot_server import OneBotApi
from tests.publish.conftest import onebot, seed_matter  # noqa: F401 (a fixture)


def _name(live, uid: int) -> str:
    with session_scope(live.engine) as s:
        name = s.scalar(select(User.username).where(User.id == uid))
    assert name
    return name


def _wait_for(done, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _settled(live) -> bool:
    with session_scope(live.engine) as s:
        states = set(s.scalars(select(PublicationTarget.status)))
    return bool(states) and not states & {"waiting", "pending", "sending"}


def _post(client: httpx.Client, path: str, page: str, data: dict | None = None) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf_of(page), **(data or {})})


def test_draft_then_a_second_person_approves_and_the_groups_get_it(live, client_as, onebot: OneBotApi) -> None:  # noqa: F811
    m = seed_matter(live.engine)
    staff, analyst, viewer = (client_as(_name(live, u)) for u in (m.staff, m.analyst, m.viewer))
    path = f"/alerts/{m.alert_id}"
    page = staff.get(path).text
    assert 'id="publish"' in page and "起草发布稿" in page
    checked = re.findall(r'name="group_ids" value="(\d+)" checked', page)
    assert [int(x) for x in checked] == m.groups  # the spread groups, chosen by default
    r = _post(staff, f"{path}/publications", page, {"claim": "青禾镇明天要封路", "text": "经核实，明天没有封路安排。",
                                                   "url": "", "group_ids": [str(g) for g in m.groups[:2]]})
    assert r.status_code == 303 and "msg=" in r.headers["location"], r.headers
    page = staff.get(path).text
    assert "等待另一位分析员批准" in page and "/approve\"" not in page  # not by the one who drafted it
    pid = int(re.search(r'id="publication-(\d+)"', page).group(1))  # type: ignore[union-attr]
    seen = viewer.get(path).text
    assert "/approve\"" not in seen and 'name="claim"' not in seen and "下载辟谣卡片" in seen
    refused = viewer.post(f"{path}/publications/{pid}/approve", data={"csrf_token": csrf_of(viewer.get(path).text)})
    assert refused.status_code == 403
    assert onebot.calls == []
    page = analyst.get(path).text
    r = _post(analyst, f"{path}/publications/{pid}/approve", page)
    assert r.status_code == 303 and "err=" not in r.headers["location"], r.headers
    _wait_for(lambda: len(onebot.sent_to()) >= 2)  # sent in the background right after the redirect
    assert onebot.sent_to() == m.numbers[:2]
    page = analyst.get(path).text
    assert page.count(">已发送<") == 2 and "已发到群" in page and "批准发布" in page  # results and history
    day = analyst.get("/publications").text
    assert f'href="/alerts/{m.alert_id}#publication-{pid}"' in day and "已发送 2" in day
    assert analyst.get("/publications?day=nope").status_code == 303
    card = analyst.get(f"/api/v1/alerts/{m.alert_id}/publications/{pid}/card.png")
    assert card.status_code == 200 and card.headers["content-type"] == "image/png"


@pytest.mark.browser
def test_publish_section_on_a_phone(live, new_page, onebot: OneBotApi) -> None:  # noqa: F811
    m = seed_matter(live.engine)
    onebot.refused = {m.numbers[2]}
    page = new_page(WIDTH, HEIGHT, is_mobile=True, has_touch=True)
    page.on("dialog", lambda d: d.accept())
    browser_as(page, live, _name(live, m.staff))
    page.goto(f"/alerts/{m.alert_id}#publish")
    page.fill("textarea[name=claim]", "青禾镇明天要封路，所有车辆禁止通行，东湾村的赶紧囤菜")
    page.fill("textarea[name=text]", "经核实，青禾镇明天没有封路安排，全镇道路正常通行。" * 3)
    page.fill("input[name=url]", "https://mp.qinghe.example/piyao/2026/12/06/a-very-long-link-that-does-not-break")
    page.click("#publish form.stack button[type=submit]")
    page.wait_for_selector("#publish article.pub-draft")
    assert not _problems(page, "publish-draft")
    approver = new_page(WIDTH, HEIGHT, is_mobile=True, has_touch=True)
    approver.on("dialog", lambda d: d.accept())
    browser_as(approver, live, _name(live, m.analyst))
    approver.goto(f"/alerts/{m.alert_id}#publish")
    approver.click("#publish article.pub-draft form[action$='/approve'] button")
    approver.wait_for_selector("#publish article.pub-approved")
    _wait_for(lambda: _settled(live))  # every group's result written
    approver.reload()
    assert approver.locator("#publish li.tg-sent").count() == 2
    assert approver.locator("#publish li.tg-failed").count() == 1  # the group the bot refused, shown as such
    assert sorted(onebot.sent_to()) == sorted(m.numbers[:2])
    problems = _problems(approver, "publish-approved")
    shot(approver, "phone-publish")
    approver.goto("/publications")
    problems += _problems(approver, "publications-day")
    assert not problems, "\n".join(problems)
