"""The console over real HTTP (uvicorn on loopback): sessions, CSRF, roles, filters, escaping."""

from __future__ import annotations

import datetime as dt
import re
import time

import httpx
from sqlalchemy import func, select, update

from api import accounts
from api.console.session import SESSION_HOURS
from api.security import hash_token
from core.db import session_scope
from core.tables import Alert, AlertEvent, EndedSession, Post, PostScore, Topic, User, utcnow
from tests.console.conftest import console_pages, csrf_of, login_client
from tests.console.factories import PASSWORD, Said, add_topic, build_story, grow_story, seed_alert

TIMEOUT = 30  # seconds per request: a loaded CI machine answers slowly, the default 5 s is not enough


def _events(engine, alert_id: int, action: str) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(AlertEvent)
                        .where(AlertEvent.alert_id == alert_id, AlertEvent.action == action)) or 0


# --------------------------------------------------------------------------- login and sessions


def test_pages_need_a_login_and_come_back_after_it(live) -> None:
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=TIMEOUT) as c:
        r = c.get("/alerts/1?x=1")
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=%2Falerts%2F1%3Fx%3D1"
        page = c.get(r.headers["location"])
        assert page.status_code == 200 and "登录" in page.text
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        assert 'name="next" value="/alerts/1?x=1"' in page.text
        ok = c.post("/login", data={"username": "zhangmin", "password": PASSWORD, "login_token": token,
                                    "next": "/alerts/1?x=1"})
        assert ok.status_code == 303 and ok.headers["location"] == "/alerts/1?x=1"
        cookie = ok.headers["set-cookie"]
        assert "yuqing_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http on loopback; see the https test below
        assert c.get("/").status_code == 200


def test_wrong_password_is_refused_in_chinese_and_nothing_is_set(live) -> None:
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=TIMEOUT) as c:
        token = re.search(r'name="login_token" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"username": "zhangmin", "password": "wrong-password", "login_token": token})
        assert r.status_code == 401
        assert "用户名或密码错误" in r.text
        assert "yuqing_session" not in r.headers.get("set-cookie", "")
        assert c.get("/").status_code == 303


def test_login_form_needs_its_own_token_and_refuses_open_redirects(live) -> None:
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=TIMEOUT) as c:
        r = c.post("/login", data={"username": "zhangmin", "password": PASSWORD, "login_token": "forged"})
        assert r.status_code == 400 and "登录页面已过期" in r.text
        token = re.search(r'name="login_token" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"username": "zhangmin", "password": PASSWORD, "login_token": token,
                                   "next": "//evil.example/steal"})
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_secure_cookie_behind_https(live, monkeypatch) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("YUQING_BASE_URL", "https://yuqing.qinghe.example")
    get_settings.cache_clear()
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=TIMEOUT) as c:
        page = c.get("/login")
        assert "Secure" in page.headers["set-cookie"]
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        # An https-only cookie is not sent back over plain http: send it as the browser would over https.
        r = c.post("/login", data={"username": "zhangmin", "password": PASSWORD, "login_token": token},
                   headers={"Cookie": f"yuqing_login={token}"})
        assert r.status_code == 303
        assert "Secure" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]


def test_logout_ends_the_session_even_for_a_copied_cookie(live, client_as) -> None:
    c = client_as("zhangmin")
    page = c.get("/")
    assert page.status_code == 200
    stolen = dict(c.cookies)
    csrf = csrf_of(page.text)
    r = c.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with httpx.Client(base_url=str(c.base_url), cookies=stolen, follow_redirects=False, timeout=TIMEOUT) as replay:
        assert replay.get("/").status_code == 303
        assert replay.get("/api/v1/me").status_code == 401
        # logging out again with the copied cookie records nothing new
        assert replay.post("/logout", data={"csrf_token": csrf}).status_code == 303
    # The end is in the database (so a restart or another worker refuses the cookie too), kept
    # by the token's hash only.
    with session_scope(live.engine) as s:
        ended = s.scalars(select(EndedSession).where(EndedSession.token_hash == hash_token(csrf))).all()
        assert len(ended) == 1
        assert ended[0].user_id == s.scalar(select(User.id).where(User.username == "zhangmin"))
        assert s.scalar(select(func.count()).select_from(EndedSession)
                        .where(EndedSession.token_hash == csrf)) == 0


def test_an_ended_session_is_forgotten_once_its_cookie_has_expired(live, client_as) -> None:
    with session_scope(live.engine) as s:
        user_id = s.scalar(select(User.id).where(User.username == "liwei"))
        s.add(EndedSession(token_hash="0" * 64, user_id=user_id,
                           ended_at=utcnow() - dt.timedelta(hours=SESSION_HOURS + 1)))
    c = client_as("liwei")
    page = c.get("/")
    assert c.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    with session_scope(live.engine) as s:
        hashes = s.scalars(select(EndedSession.token_hash)).all()
        assert "0" * 64 not in hashes and hash_token(csrf_of(page.text)) in hashes


def test_a_new_password_ends_the_sessions_signed_before_it(live, client_as) -> None:
    c = client_as("liwei")
    assert c.get("/").status_code == 200
    time.sleep(1.1)  # the cookie's signed timestamp has whole seconds
    with session_scope(live.engine) as s:
        accounts.set_password(s, accounts.get_user(s, "liwei"), "a-new-passphrase-2026")
    assert c.get("/").status_code == 303
    assert c.get("/api/v1/me").status_code == 401
    fresh = login_client(live.url, "liwei", "a-new-passphrase-2026")
    try:
        assert fresh.get("/").status_code == 200
    finally:
        fresh.close()


def test_forged_or_tampered_cookie_is_no_session(live) -> None:
    with httpx.Client(base_url=live.url, cookies={"yuqing_session": "eyJ1IjoxLCJjIjoieCJ9.abc.def"}, timeout=TIMEOUT,
                      follow_redirects=False) as c:
        assert c.get("/").status_code == 303
        assert c.get("/api/v1/me").status_code == 401


def test_deactivated_user_loses_the_console(live, client_as) -> None:
    c = client_as("liwei")
    assert c.get("/").status_code == 200
    with session_scope(live.engine) as s:
        s.scalar(select(User).where(User.username == "liwei")).is_active = False
    assert c.get("/").status_code == 303


# --------------------------------------------------------------------------- CSRF


def test_forms_without_the_csrf_token_change_nothing(live, client_as) -> None:
    alert_id = live.scene.alerts["road"]
    c = client_as("zhangmin")
    before = _events(live.engine, alert_id, "comment")
    for data in ({"comment": "没有令牌"}, {"comment": "错误令牌", "csrf_token": "not-the-token"}):
        r = c.post(f"/alerts/{alert_id}/comment", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert _events(live.engine, alert_id, "comment") == before
    token = csrf_of(c.get(f"/alerts/{alert_id}").text)
    r = c.post(f"/alerts/{alert_id}/comment", data={"comment": "已联系村委核实", "csrf_token": token},
               headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert _events(live.engine, alert_id, "comment") == before
    r = c.post(f"/alerts/{alert_id}/comment", data={"comment": "已联系村委核实", "csrf_token": token})
    assert r.status_code == 303
    assert _events(live.engine, alert_id, "comment") == before + 1


def test_api_accepts_the_cookie_for_reading_and_only_with_the_csrf_header_for_writing(live, client_as) -> None:
    c = client_as("admin")
    me = c.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["username"] == "admin"
    body = {"username": "zhaoli", "role": "staff", "password": "password123"}
    assert c.post("/api/v1/users", json=body).status_code == 401
    token = csrf_of(c.get("/").text)
    r = c.post("/api/v1/users", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text


def test_bearer_tokens_keep_working_for_scripts(live) -> None:
    with session_scope(live.engine) as s:
        token = accounts.create_token(s, accounts.get_user(s, "wangfang"), "report-script")
    with httpx.Client(base_url=live.url, timeout=TIMEOUT) as c:
        r = c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["username"] == "wangfang"


# --------------------------------------------------------------------------- roles


def test_viewer_sees_no_buttons_and_the_server_refuses_anyway(live, client_as) -> None:
    alert_id = live.scene.alerts["road"]
    c = client_as("chenkz")
    page = c.get(f"/alerts/{alert_id}")
    assert page.status_code == 200
    for action in ("/claim", "/status", "/respond", "/comment", "/assign"):
        assert f"/alerts/{alert_id}{action}" not in page.text
    token = csrf_of(page.text)  # the logout form's
    with session_scope(live.engine) as s:
        before = s.get(Alert, alert_id)
        status, assignee = before.status, before.assignee_id
    for action, data in [("claim", {}), ("status", {"to": "confirmed_rumor"}), ("comment", {"comment": "x"}),
                         ("respond", {"text": "辟谣"}), ("assign", {"user_id": "1"})]:
        r = c.post(f"/alerts/{alert_id}/{action}", data=data | {"csrf_token": token})
        assert r.status_code == 403, action
        assert "权限不足" in r.text
    with session_scope(live.engine) as s:
        after = s.get(Alert, alert_id)
        assert (after.status, after.assignee_id) == (status, assignee)
    assert "/alerts/" in c.get("/").text and 'data-can-act="0"' in c.get("/").text
    assert c.get("/models").status_code == 403


def test_invalid_transition_comes_back_as_a_message_not_an_error(live, client_as) -> None:
    alert_id = live.scene.alerts["mask"]  # dismissed
    c = client_as("zhangmin")
    token = csrf_of(c.get(f"/alerts/{alert_id}").text)
    r = c.post(f"/alerts/{alert_id}/status", data={"to": "confirmed_rumor", "csrf_token": token})
    assert r.status_code == 303 and "err=" in r.headers["location"]
    page = c.get(r.headers["location"])
    assert "不能直接改为" in page.text
    r = c.post("/alerts/999999/status", data={"to": "dismissed", "csrf_token": token})
    assert r.status_code == 404 and "不存在" in r.text


# --------------------------------------------------------------------------- the queue


def _titles(html: str) -> list[str]:
    return re.findall(r'<a class="title" href="/alerts/\d+">([^<]+)</a>', html)


def test_queue_filters_counts_and_search(live, client_as) -> None:
    scene = live.scene
    c = client_as("zhangmin")
    home = c.get("/").text
    with session_scope(live.engine) as s:
        rows = s.execute(select(Alert.id, Alert.status, Alert.severity, Alert.assignee_id, Alert.title)).all()
    open_rows = [r for r in rows if r.status in ("new", "acknowledged", "confirmed_rumor", "confirmed_concern")]
    assert len(_titles(home)) == len(open_rows)
    assert f"待处理\n    <b>{len(open_rows)}</b>" in home or f"<b>{len(open_rows)}</b>" in home
    # most severe first
    ranks = {"urgent": 3, "high": 2, "medium": 1, "low": 0}
    shown = [next(r for r in rows if r.title == t) for t in _titles(home)]
    assert [ranks[r.severity] for r in shown] == sorted((ranks[r.severity] for r in shown), reverse=True)

    dismissed = c.get("/?status=dismissed").text
    assert sorted(_titles(dismissed)) == sorted(r.title for r in rows if r.status == "dismissed")
    mine = c.get("/?mine=1").text
    assert sorted(_titles(mine)) == sorted(r.title for r in open_rows if r.assignee_id == scene.users["zhangmin"])
    unassigned = c.get("/?assignee=none&status=all").text
    assert sorted(_titles(unassigned)) == sorted(r.title for r in rows if r.assignee_id is None)
    urgent = [r.title for r in open_rows if r.severity == "urgent"]
    assert sorted(_titles(c.get("/?severity=urgent").text)) == sorted(urgent)
    found = c.get("/", params={"q": "自来水", "status": "all"}).text
    assert _titles(found) == [r.title for r in rows if "自来水" in r.title]
    assert "没有符合条件的预警" in c.get("/", params={"q": "%_不存在的词"}).text
    # nonsense parameters are ignored, never a 500
    for q in ("page=abc", "status=<x>", "severity=huge", "assignee=-1", "sort=drop", "page=99999999"):
        assert c.get("/?" + q).status_code == 200, q


def test_queue_pages_through_many_alerts(live, client_as) -> None:
    with session_scope(live.engine) as s:
        for i in range(60):
            seed_alert(s, title=f"批量预警 {i:03d}", said=[Said("东湾村", f"东湾村第 {i} 条消息")], severity="low")
    c = client_as("zhangmin")
    first = c.get("/?q=批量预警").text
    assert len(_titles(first)) == 50 and "第 1 / 2 页" in first
    second = c.get("/?q=批量预警&page=2").text
    assert len(_titles(second)) == 10
    assert not set(_titles(first)) & set(_titles(second))


def test_new_alert_notice_counts_only_what_is_new(live, client_as) -> None:
    c = client_as("zhangmin")
    home = c.get("/").text
    url = re.search(r'data-news="([^"]+)"', home).group(1).replace("&amp;", "&")
    assert c.get(url).json() == {"new": 0, "rising": 0}
    with session_scope(live.engine) as s:
        seed_alert(s, title="新的传言", said=[Said("南坪村", "南坪村又有人说要封村")], severity="high")
        seed_alert(s, title="已排除的", said=[Said("南坪村", "无关消息")], status="dismissed")
    assert c.get(url).json() == {"new": 1, "rising": 0}


def test_every_page_answers(live, client_as) -> None:
    """Each console page's server side on this database (the browser tests look at the same pages
    in chromium, on SQLite only: layout and scripts do not depend on the database)."""
    from yuqing.digest_actions import register

    register()  # as `yuqing serve` does: the digest preview page
    admin = client_as("admin")
    failed = {name: (path, r.status_code) for name, path in console_pages(live).items()
              if (r := admin.get(path)).status_code != 200 or "</html>" not in r.text}
    assert not failed, failed


def test_pages_escape_hostile_text(live, client_as) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with session_scope(live.engine) as s:
        seeded = seed_alert(s, title=hostile, said=[Said("柳树村", hostile), Said("青禾论坛", hostile,
                                                                                   url="javascript:alert(1)")])
    c = client_as("zhangmin")
    for path in ("/", f"/alerts/{seeded.alert_id}", "/sources"):
        html = c.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
    detail = c.get(f"/alerts/{seeded.alert_id}")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in detail.text
    assert 'href="javascript:' not in detail.text
    csp = detail.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert detail.headers["x-frame-options"] == "DENY"


def test_queue_page_is_light(live, client_as) -> None:
    with session_scope(live.engine) as s:
        for i in range(50):
            seed_alert(s, title=f"网传柳树村第 {i} 号通知：明天起停水停电，请提前储水", severity="high",
                       said=[Said("柳树村", "明天起停水停电，请提前储水，转给家里老人" * 3)])
    c = client_as("zhangmin")
    r = c.get("/", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"
    assert len(_titles(r.text)) == 50
    raw = len(r.content)  # httpx decodes; measure what was on the wire instead
    wire = int(r.headers.get("content-length", raw))
    assets = sum(len(c.get(p).content) for p in ("/static/console.css", "/static/console.js",
                                                 "/static/favicon.svg"))
    assert wire + assets < 300_000


def test_a_concern_shows_one_sample_per_story(live, client_as) -> None:
    notice = "东湾村今晚八点停电检修，请村民提前做好准备"
    with session_scope(live.engine) as s:
        topic = add_topic(s, "停电 东湾村", keywords=["停电", "检修"], category="公共安全", places=["东湾村"],
                          negativity=0.5, counts=[0, 1, 2, 6], burst=4.2)
        copied = build_story(s, title="东湾村停电通知", said=[Said("东湾村", notice, hours_ago=2),
                                                         Said("南坪村", notice, hours_ago=1)])
        other = build_story(s, title="停电", said=[Said("东湾村", "停电要停到几点？冰箱里的东西怎么办", hours_ago=0.5)])
        s.execute(update(Post).where(Post.story_id.in_([copied, other])).values(topic_id=topic.id))
    page = client_as("zhangmin").get("/concerns").text
    assert page.count(notice) == 1 and "冰箱里的东西怎么办" in page  # the copy is not shown twice


def test_staff_raise_an_alert_for_a_hot_topic_once(live, client_as) -> None:
    supply, _ = live.scene.topics
    with session_scope(live.engine) as s:
        school = add_topic(s, "班车 停运 县城", keywords=["班车", "停运"], category="交通出行", places=["南坪村"],
                           negativity=0.4, counts=[0, 1, 0, 2, 3, 5], burst=3.1).id
    c = client_as("zhangmin")
    page = c.get("/concerns")
    assert page.status_code == 200
    assert f"/concerns/{school}/alert" in page.text  # no alert yet: the button is there
    assert "关键词：班车、停运" in page.text and "[&#39;" not in page.text
    token = csrf_of(page.text)
    r = c.post(f"/concerns/{school}/alert", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"].startswith("/alerts/")
    alert_id = int(r.headers["location"].split("/")[2].split("?")[0])
    with session_scope(live.engine) as s:
        alert = s.get(Alert, alert_id)
        assert (alert.topic_id, alert.kind) == (school, "manual")
    assert f"/concerns/{school}/alert" not in c.get("/concerns").text
    again = c.post(f"/concerns/{school}/alert", data={"csrf_token": token})
    assert again.status_code == 303 and "err=" in again.headers["location"]
    viewer = client_as("chenkz")
    vpage = viewer.get("/concerns").text
    assert "/alert\"" not in vpage and "为此创建预警" not in vpage
    assert viewer.post(f"/concerns/{supply}/alert", data={"csrf_token": csrf_of(vpage)}).status_code == 403


def test_a_concern_alert_shows_what_people_say_and_the_topic_words(live, client_as) -> None:
    early = "镇区新开了一家药店，退烧药和口罩都有货，价格也正常"
    central = "柳树村药店的口罩已经卖断货了，听说下周口罩要限购，哪里还能买到？"
    answer = "经核实，网传口罩限购系谣言，各药店口罩供应充足，请勿听信"
    with session_scope(live.engine) as s:
        topic = add_topic(s, "口罩 药店 限购", keywords=["口罩", "药店", "限购"], category="物资供应",
                          places=["柳树村"], negativity=0.6, counts=[0, 1, 2, 5], burst=4.5)
        ids = []
        for i, text in enumerate([early, central, answer]):
            story = build_story(s, title=None, said=[Said("柳树村", text, hours_ago=3 - i)])
            ids.append(s.scalar(select(Post.id).where(Post.story_id == story)))
        s.execute(update(Post).where(Post.id.in_(ids)).values(topic_id=topic.id))
        s.get(Topic, topic.id).representative_post_id = ids[1]
        topic_id = topic.id
    c = client_as("zhangmin")
    r = c.post(f"/concerns/{topic_id}/alert", data={"csrf_token": csrf_of(c.get("/concerns").text)})
    html = c.get(r.headers["location"].split("?")[0]).text
    rep = re.search(r'<blockquote class="post-text rep">(.*?)</blockquote>', html, re.S)
    # the topic's central post, not its first one; its words are the topic's, not a rumor score's
    assert rep and "卖断货" in rep.group(1) and "<mark>口罩</mark>" in rep.group(1)
    assert "话题关键词：" in html and "推高谣言分" not in html
    with session_scope(live.engine) as s:  # when the central post is the official answer: what people say
        s.get(Topic, topic_id).representative_post_id = ids[2]
    html = c.get(r.headers["location"].split("?")[0]).text
    rep = re.search(r'<blockquote class="post-text rep">(.*?)</blockquote>', html, re.S)
    assert rep and "经核实" not in rep.group(1) and "卖断货" in rep.group(1)


def test_sources_page_shows_runs_and_errors(live, client_as) -> None:
    from core.tables import Source

    with session_scope(live.engine) as s:  # how pushed messages arrive: never crawled, so never "从未运行"
        s.add_all([Source(name="接口推送", kind="api", config={}, enabled=True),
                   Source(name="群聊导入（QQ）", kind="chat_export", config={}, enabled=True)])
    page = client_as("zhangmin").get("/sources")
    assert page.status_code == 200
    assert "青禾县政府网站" in page.text and "部分失败" in page.text and "HTTP 503" in page.text
    rows = {m.group(1): m.group(2) for m in re.finditer(r"<tr[^>]*>\s*<td><strong>([^<]+)</strong>(.*?)</tr>",
                                                         page.text, re.S)}
    assert "接口推送，不抓取" in rows["接口推送"] and "从未运行" not in rows["接口推送"]
    assert "导入，不抓取" in rows["群聊导入（QQ）"]
    assert "东湾村村民群" in page.text and "/enabled" not in page.text  # staff: no switches


def test_admin_disables_and_enables_a_source_and_a_group(live, client_as) -> None:
    from core.tables import ChatGroup, Source

    with session_scope(live.engine) as s:
        source_id = s.scalar(select(Source.id).where(Source.name == "青禾县政府网站"))
        group_id = s.scalar(select(ChatGroup.id).where(ChatGroup.name == "东湾村村民群"))
    staff = client_as("zhangmin")
    token = csrf_of(staff.get("/sources").text)
    assert staff.post(f"/sources/{source_id}/enabled", data={"enabled": "0", "csrf_token": token}).status_code == 403
    admin = client_as("admin")
    page = admin.get("/sources").text
    assert f"/sources/{source_id}/enabled" in page and f"/groups/{group_id}/enabled" in page
    token = csrf_of(page)
    assert admin.post(f"/sources/{source_id}/enabled", data={"enabled": "0", "csrf_token": token}).status_code == 303
    assert admin.post(f"/groups/{group_id}/enabled", data={"enabled": "0", "csrf_token": token}).status_code == 303
    with session_scope(live.engine) as s:
        assert s.get(Source, source_id).enabled is False and s.get(ChatGroup, group_id).enabled is False
    admin.post(f"/groups/{group_id}/enabled", data={"enabled": "1", "csrf_token": token})
    with session_scope(live.engine) as s:
        assert s.get(ChatGroup, group_id).enabled is True
    assert admin.post("/sources/999999/enabled", data={"enabled": "1", "csrf_token": token}).status_code == 404


def test_a_story_that_keeps_spreading_is_flagged_in_the_queue_and_the_notice(live, client_as) -> None:
    from alerts import evaluate as evaluation
    from core.tables import Story

    c = client_as("zhangmin")
    home = c.get("/").text
    url = re.search(r'data-news="([^"]+)"', home).group(1).replace("&amp;", "&")
    url = re.sub(r"since=\d+", f"since={int(time.time()) - 5}", url)
    water = live.scene.alerts["water"]
    with session_scope(live.engine) as s:
        story_id = s.get(Alert, water).story_id
        before = s.get(Story, story_id).post_count
        grow_story(s, story_id, [Said(v, f"{v}也有人说自来水污染了，不能喝 {i}", 0.2)
                                 for i, v in enumerate(["石桥村", "青禾镇", "南坪村", "东湾村"])])
        evaluation.evaluate(s)
        alert = s.get(Alert, water)
        assert alert.post_count >= before + 4
    assert c.get(url).json() == {"new": 0, "rising": 1}
    row = re.search(rf'<li class="row [^"]*" data-id="{water}">(.*?)</li>', c.get("/").text, re.S).group(1)
    assert "正在扩散" in row
    assert "正在扩散" in c.get(f"/alerts/{water}").text  # the history note


def test_repeated_wrong_passwords_are_slowed_down(live, monkeypatch) -> None:
    from api.console.web import throttle

    # The first wait (15 s) could pass between two requests on a loaded machine: make it long.
    monkeypatch.setattr(throttle, "first_wait", 600.0)
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=TIMEOUT) as c:
        codes = []
        for _ in range(6):
            token = re.search(r'name="login_token" value="([^"]+)"', c.get("/login").text).group(1)
            r = c.post("/login", data={"username": "nobody-here", "password": "guess", "login_token": token})
            codes.append(r.status_code)
        assert codes == [401] * 5 + [429]
        assert "登录失败次数过多" in r.text


def test_posts_through_a_reverse_proxy_that_keeps_its_own_host_header(live, client_as, monkeypatch) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("YUQING_BASE_URL", "https://yuqing.qinghe.example")
    get_settings.cache_clear()
    alert_id = live.scene.alerts["road"]
    c = client_as("zhangmin")
    token = csrf_of(c.get(f"/alerts/{alert_id}").text)
    r = c.post(f"/alerts/{alert_id}/comment", data={"comment": "经代理提交", "csrf_token": token},
               headers={"Origin": "https://yuqing.qinghe.example"})
    assert r.status_code == 303
    r = c.post(f"/alerts/{alert_id}/comment", data={"comment": "别的网站", "csrf_token": token},
               headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def _tab_count(html: str, label: str) -> int:
    return int(re.search(rf">\s*{label}\s*<b>(\d+)</b>", html).group(1))


def test_counts_follow_an_action_at_once(live, client_as) -> None:
    c = client_as("zhangmin")
    home = c.get("/").text
    dismissed, waiting = _tab_count(home, "已排除"), _tab_count(home, "待处理")
    alert_id = live.scene.alerts["road"]
    token = csrf_of(c.get(f"/alerts/{alert_id}").text)
    r = c.post(f"/alerts/{alert_id}/status", data={"to": "dismissed", "csrf_token": token, "next": "/"})
    assert r.status_code == 303 and r.headers["location"].startswith("/?msg=")
    after = c.get(r.headers["location"]).text
    assert (_tab_count(after, "已排除"), _tab_count(after, "待处理")) == (dismissed + 1, waiting - 1)


def test_evidence_marks_a_post_that_refutes_the_rumor(live, client_as) -> None:
    with session_scope(live.engine) as s:
        seeded = seed_alert(s, title="网传青禾镇下周封城", said=[
            Said("东湾村", "听说青禾镇下周要封城了，赶紧囤米囤油！", hours_ago=3),
            Said("南坪村", "镇政府已经发了说明，没有封城安排，大家不要转发谣言", hours_ago=1)])
    html = client_as("zhangmin").get(f"/alerts/{seeded.alert_id}").text
    items = {int(m.group(1)): m.group(2) for m in re.finditer(r'<li id="post-(\d+)">(.*?)</li>', html, re.S)}
    spreading, refuting = seeded.post_ids
    assert "辟谣/澄清" in items[refuting] and "没有…安排" in items[refuting]
    assert "辟谣/澄清" not in items[spreading]


def test_reasons_name_cues_in_chinese_and_only_words_are_highlighted(live, client_as) -> None:
    with session_scope(live.engine) as s:
        seeded = seed_alert(s, title="听说要封城", said=[Said("东湾村", "听说青禾镇下周要封城了", hours_ago=1)])
        s.execute(update(PostScore).where(PostScore.post_id == seeded.post_ids[0]).values(
            explanation=[["辟谣库#3", 0.9], ["封城", 1.1], ["cue:hearsay", 0.6]]))
    html = client_as("zhangmin").get(f"/alerts/{seeded.alert_id}").text
    assert "cue:" not in html and "消息来源不明" in html and "与辟谣库 #3 相符" in html
    rep = re.search(r'<blockquote class="post-text rep">(.*?)</blockquote>', html, re.S)
    assert rep and "<mark>封城</mark>" in rep.group(1) and "<mark>" not in rep.group(1).replace("<mark>封城</mark>", "")


def test_unknown_pages_answer_a_console_page_and_the_api_keeps_json(live, client_as) -> None:
    c = client_as("zhangmin")
    page = c.get("/no-such-page", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "没有这个页面" in page.text
    assert 'aria-label="主导航"' in page.text  # the page says "use the navigation above": it is there
    anonymous = httpx.get(f"{live.url}/no-such-page", headers={"Accept": "text/html"}, timeout=10)
    assert anonymous.status_code == 404 and 'aria-label="主导航"' not in anonymous.text
    api = c.get("/api/v1/no-such-route", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")
    script = httpx.get(f"{live.url}/no-such-page", timeout=10)  # no browser Accept header: JSON
    assert script.status_code == 404 and "json" in script.headers["content-type"]


def test_password_spraying_across_names_is_slowed_down_and_survives_a_restart(api_engine) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    def attempt(client: TestClient, name: str) -> int:
        token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text).group(1)
        return client.post("/login", data={"username": name, "password": "123456", "login_token": token},
                           follow_redirects=False).status_code

    with TestClient(create_app(api_engine)) as c:
        codes = [attempt(c, f"user{i}") for i in range(21)]  # one address, a new name every time
    assert codes == [401] * 20 + [429]
    with TestClient(create_app(api_engine)) as c:  # a restarted server (or another worker)
        assert attempt(c, "someone-else") == 429
