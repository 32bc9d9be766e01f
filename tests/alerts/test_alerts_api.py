"""The alert API end to end: analysis rows in -> evaluate -> notifications delivered to a real SMTP
server and a loopback webhook -> review via the API -> response recorded -> spread before/after."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections import Counter
from email import message_from_bytes, policy

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alerts import evaluate as evaluation
from alerts.notify import deliver_due, parse_notify_config
from core.db import session_scope
from core.tables import Alert, Label, User, utcnow
from tests.factories import (
    make_alert,
    make_debunk,
    make_debunk_match,
    make_post,
    make_score,
    make_story,
    make_topic,
    story_with_posts,
)


def _uid(headers: dict[str, str]) -> int:
    return int(headers["X-User-Id"])


def test_end_to_end_posts_to_alert_to_notification_to_response(
    api_client: TestClient, api_engine, make_user, smtp_server, webhook
) -> None:
    staff = make_user("staff", email="zhang@qinghe.example.org")
    viewer = make_user("viewer")
    now = utcnow()
    config = parse_notify_config(f"""
routes:
  - {{name: 值班邮件, channel: email, to_roles: [staff], min_severity: medium, quiet_hours: false}}
  - {{name: 指挥中心, channel: webhook, url: "{webhook.url}", secret: k, min_severity: medium,
      quiet_hours: false}}
""")
    with session_scope(api_engine) as s:
        rumor, posts = story_with_posts(
            s, 12, groups=6, probability=0.96, now=now, is_local=True, category="交通出行", negativity=0.7
        )
        debunk = make_debunk(s)
        make_debunk_match(s, posts[0], debunk, 0.91)
        calm, _ = story_with_posts(s, 2, groups=1, probability=0.1, now=now, text="青禾镇周末集市照常开放")
        result = evaluation.evaluate(s, now=now, notify_config=config)
        rumor_id, calm_id = rumor.id, calm.id
    assert len(result.created) == 1 and result.notifications == 2
    # a second analysis batch of the same story folds into the same alert
    with session_scope(api_engine) as s:
        story, _ = story_with_posts(
            s, 3, groups=2, probability=0.97, story=s.get(type(rumor), rumor_id), now=now
        )
        # as the analysis counted it: 10 posts an hour in the 6 hours before now
        story.hourly_counts = {(now - dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H"): 10 for h in range(1, 7)}
        again = evaluation.evaluate(s, now=now + dt.timedelta(seconds=30), notify_config=config)
    assert again.created == [] and again.folded == result.created
    with session_scope(api_engine) as s:
        assert s.scalar(select(func.count()).select_from(Alert).where(Alert.story_id == calm_id)) == 0
        [alert] = s.scalars(select(Alert).where(Alert.story_id == rumor_id))
        alert_id, severity = alert.id, alert.severity
    assert severity == "urgent"

    delivered = deliver_due(api_engine, config=config)
    assert delivered.sent == 2, delivered.errors
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["zhang@qinghe.example.org"]
    assert message_from_bytes(mail.content, policy=policy.default)["Subject"].startswith("【紧急】新预警")
    [hook] = webhook.received
    assert hook["json"]["alert"]["id"] == alert_id and hook["headers"]["X-Yuqing-Signature"].startswith(
        "sha256="
    )

    listed = api_client.get("/api/v1/alerts", headers=viewer).json()
    assert (
        listed["total"] == 1
        and listed["items"][0]["id"] == alert_id
        and listed["items"][0]["post_count"] == 15
    )
    detail = api_client.get(f"/api/v1/alerts/{alert_id}", headers=viewer).json()
    assert detail["debunks"][0]["id"] and detail["debunks"][0]["similarity"] == pytest.approx(0.91)
    assert len(detail["groups"]) == 8 and detail["timeline"] and detail["score_parts"]["debunk"]["points"] > 0
    assert any("<mark>封路</mark>" in p["text_html"] for p in detail["posts"])
    assert "全镇道路正常通行" in detail["suggested_response"]
    assert detail["allowed_transitions"] == [
        "acknowledged",
        "confirmed_rumor",
        "confirmed_concern",
        "dismissed",
    ]

    url = f"/api/v1/alerts/{alert_id}"
    assert (
        api_client.post(f"{url}/transition", json={"to": "acknowledged"}, headers=viewer).status_code == 403
    )
    assert api_client.post(f"{url}/assign", json={"assignee": "me"}, headers=staff).json()[
        "assignee_id"
    ] == _uid(staff)
    ack = api_client.post(
        f"{url}/transition", json={"to": "acknowledged", "comment": "我来处理"}, headers=staff
    )
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    bad = api_client.post(f"{url}/transition", json={"to": "closed"}, headers=staff)
    assert bad.status_code == 409 and "不能直接改为" in bad.json()["detail"]
    early = api_client.post(f"{url}/responses", json={"text": "辟谣"}, headers=staff)
    assert early.status_code == 409
    assert (
        api_client.post(f"{url}/transition", json={"to": "confirmed_rumor"}, headers=staff).status_code == 200
    )
    response = api_client.post(
        f"{url}/responses",
        headers=staff,
        json={
            "text": detail["suggested_response"],
            "channels": ["青禾镇政府公众号", "村村通广播"],
            "url": "https://example.org/qinghe/notice/9",
        },
    )
    assert response.status_code == 201, response.text
    spread = response.json()
    assert spread["spread_before"]["posts"] == 60 and spread["spread_before"]["per_hour"] == 10
    assert spread["spread_after"]["observed_hours"] >= 1
    final = api_client.get(url, headers=viewer).json()
    assert final["status"] == "responded" and final["responses"][0]["spread_before"]["hours"] == 6
    actions = [(h["action"], h["to_status"]) for h in final["history"]]
    assert actions[:4] == [
        ("created", "new"),
        ("assigned", None),
        ("status", "acknowledged"),
        ("status", "confirmed_rumor"),
    ]
    assert ("responded", None) in actions and final["history"][2]["comment"] == "我来处理"
    with session_scope(api_engine) as s:
        assert s.scalar(select(func.count()).select_from(Label).where(Label.alert_id == alert_id)) == 15
    sent = api_client.get(f"{url}/notifications", headers=viewer).json()
    assert {n["status"] for n in sent} == {"sent"} and all(n["attempt_log"][0]["ok"] for n in sent)
    assert "?" not in next(n for n in sent if n["channel"] == "webhook")["target"]


def test_list_filters_sorting_and_pagination(api_client: TestClient, api_engine, make_user) -> None:
    staff = make_user("staff")
    t0 = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
    with session_scope(api_engine) as s:
        me = s.get(User, _uid(staff))
        a = make_alert(s, severity="low", title="柳树村菜价上涨", category="物价", now=t0)
        b = make_alert(
            s,
            severity="urgent",
            title="石桥村封村传言",
            category="疫情防控措施/隔离",
            now=t0 + dt.timedelta(hours=1),
            assignee_id=me.id,
        )
        c = make_alert(
            s,
            severity="urgent",
            title="南坪村井水有毒",
            category="公共安全",
            now=t0 + dt.timedelta(hours=2),
            status="dismissed",
        )
        d = make_alert(
            s,
            severity="medium",
            title="东湾村口罩断货_100%",
            category="物资供应",
            now=t0 + dt.timedelta(hours=3),
        )
        ids = [a.id, b.id, c.id, d.id]

    def get(**params) -> list[int]:
        r = api_client.get("/api/v1/alerts", params=params, headers=staff)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    assert get() == [ids[2], ids[1], ids[3], ids[0]]  # severity, then most recently updated
    assert get(status="new") == [ids[1], ids[3], ids[0]]
    assert get(severity=["urgent", "medium"], status="new") == [ids[1], ids[3]]
    assert get(category="物价") == [ids[0]]
    assert get(assignee="me") == [ids[1]] and get(assignee=str(_uid(staff))) == [ids[1]]
    assert get(assignee="none") == [ids[2], ids[3], ids[0]]
    assert get(since="2026-11-20T11:30:00+08:00") == [ids[2], ids[3]]  # local 11:30 = 03:30 UTC
    assert get(since="2026-11-20T11:30:00") == [ids[2], ids[3]]  # naive: read in Asia/Shanghai
    assert get(until="2026-11-20T03:30:00Z") == [ids[1], ids[0]]
    assert get(q="封村") == [ids[1]] and get(q="100%") == [ids[3]] and get(q="_") == [ids[3]]
    page2 = api_client.get("/api/v1/alerts", params={"page": 2, "page_size": 3}, headers=staff).json()
    assert page2["total"] == 4 and [x["id"] for x in page2["items"]] == [ids[0]]
    assert api_client.get("/api/v1/alerts", params={"assignee": "zhang"}, headers=staff).status_code == 422
    assert api_client.get("/api/v1/alerts", params={"severity": "huge"}, headers=staff).status_code == 422
    assert api_client.get("/api/v1/alerts", params={"since": "yesterday"}, headers=staff).status_code == 422


def test_manual_alert_comments_and_errors(api_client: TestClient, api_engine, make_user) -> None:
    staff, viewer = make_user("staff"), make_user("viewer")
    with session_scope(api_engine) as s:
        topic_id = make_topic(s, is_hot=False, category="交通出行", places=["石桥村"]).id
        post_id = make_post(s, "石桥村到县城的公交停了吗？").id
    body = {"topic_id": topic_id, "severity": "high", "comment": "村民来电"}
    assert api_client.post("/api/v1/alerts", json=body, headers=viewer).status_code == 403
    created = api_client.post("/api/v1/alerts", json=body, headers=staff)
    assert created.status_code == 201 and created.json()["kind"] == "manual"
    assert api_client.post("/api/v1/alerts", json=body, headers=staff).status_code == 409
    assert api_client.post("/api/v1/alerts", json={"post_id": post_id}, headers=staff).status_code == 201
    both = api_client.post("/api/v1/alerts", json={"post_id": post_id, "topic_id": topic_id}, headers=staff)
    assert both.status_code == 422 and "只指定一个" in both.json()["detail"]
    assert api_client.post("/api/v1/alerts", json={"post_id": 10**9}, headers=staff).status_code == 404
    alert_id = created.json()["id"]
    ok = api_client.post(f"/api/v1/alerts/{alert_id}/comments", json={"text": "已转交交通站"}, headers=staff)
    assert ok.status_code == 201 and ok.json()["comment"] == "已转交交通站"
    blank = api_client.post(f"/api/v1/alerts/{alert_id}/comments", json={"text": "   "}, headers=staff)
    assert blank.status_code == 422 and blank.json()["detail"]
    assert (
        api_client.post("/api/v1/alerts/99999/comments", json={"text": "x"}, headers=staff).status_code == 404
    )
    assert api_client.get("/api/v1/alerts/99999", headers=viewer).status_code == 404
    assert api_client.get("/api/v1/alerts/0", headers=viewer).status_code == 422
    extra = api_client.post(f"/api/v1/alerts/{alert_id}/transition", json={"to": "x"}, headers=staff)
    assert extra.status_code == 422 and "to" in extra.json()["detail"]
    to_viewer = api_client.post(
        f"/api/v1/alerts/{alert_id}/assign", json={"assignee": _uid(viewer)}, headers=staff
    )
    assert to_viewer.status_code == 422 and "只读" in to_viewer.json()["detail"]
    assert (
        api_client.post(
            f"/api/v1/alerts/{alert_id}/assign", json={"assignee": 123456}, headers=staff
        ).status_code
        == 404
    )
    unassign = api_client.post(f"/api/v1/alerts/{alert_id}/assign", json={"assignee": None}, headers=staff)
    assert unassign.status_code == 200 and unassign.json()["assignee_id"] is None
    future = api_client.post(
        f"/api/v1/alerts/{alert_id}/responses",
        headers=staff,
        json={"text": "x", "published_at": "2099-01-01T00:00:00+08:00"},
    )
    assert future.status_code == 422
    naive = api_client.post(
        f"/api/v1/alerts/{alert_id}/responses",
        headers=staff,
        json={"text": "x", "published_at": "2026-11-28T10:00:00"},
    )
    assert naive.status_code == 422


def test_stories_posts_and_stats(api_client: TestClient, api_engine, make_user) -> None:
    viewer = make_user("viewer")
    now = utcnow()
    with session_scope(api_engine) as s:
        story, posts = story_with_posts(s, 4, groups=2, probability=0.9, now=now)
        other = make_story(
            s,
            title="南坪村停电",
            now=now - dt.timedelta(days=3),
        )
        p = make_post(s, "南坪村今晚停电到几点？", story_id=other.id, category="其他", is_local=True)
        make_score(s, p, 0.05)
        make_topic(s)
        evaluation.evaluate(s, now=now, notify_config=parse_notify_config("{}"))
        story_id, post_id = story.id, posts[0].id
    stories = api_client.get("/api/v1/stories", headers=viewer).json()
    assert stories["items"][0]["id"] == story_id and stories["total"] == 2
    assert api_client.get("/api/v1/stories", params={"q": "停电"}, headers=viewer).json()["total"] == 1
    assert api_client.get("/api/v1/stories", params={"min_groups": 2}, headers=viewer).json()["total"] == 1
    detail = api_client.get(f"/api/v1/stories/{story_id}", headers=viewer).json()
    assert detail["post_count"] == 4 and len(detail["groups"]) == 2 and detail["alert_ids"]
    assert sum(h["count"] for h in detail["timeline"]) == 4
    assert api_client.get("/api/v1/stories/424242", headers=viewer).status_code == 404
    found = api_client.get("/api/v1/posts", params={"q": "停电"}, headers=viewer).json()
    assert found["total"] == 1 and found["items"][0]["is_local"] is True
    assert (
        api_client.get("/api/v1/posts", params={"min_probability": 0.5}, headers=viewer).json()["total"] == 4
    )
    assert (
        api_client.get(
            "/api/v1/posts", params={"story_id": story_id, "channel": "chat"}, headers=viewer
        ).json()["total"]
        == 4
    )
    post = api_client.get(f"/api/v1/posts/{post_id}", headers=viewer).json()
    assert post["rumor_probability"] == pytest.approx(0.9) and post["explanation"] and post["alert_ids"]
    assert api_client.get("/api/v1/posts/424242", headers=viewer).status_code == 404
    assert api_client.get("/api/v1/posts", params={"min_probability": 2}, headers=viewer).status_code == 422
    stats = api_client.get("/api/v1/stats", headers=viewer).json()
    assert stats["posts"]["total"] == 5 and stats["alerts"]["open"] == 2 and stats["hot_topics"] == 1
    assert stats["alerts"]["by_status"]["new"] == 2 and stats["last_alert_run_at"]
    assert api_client.get("/api/v1/stats").status_code == 401


ROUTES = [
    # (method, path, body, lowest role allowed)
    ("GET", "/api/v1/alerts", None, "viewer"),
    ("GET", "/api/v1/alerts/{id}", None, "viewer"),
    ("GET", "/api/v1/alerts/{id}/notifications", None, "viewer"),
    ("POST", "/api/v1/alerts/{id}/transition", {"to": "acknowledged"}, "staff"),
    ("POST", "/api/v1/alerts/{id}/assign", {"assignee": "me"}, "staff"),
    ("POST", "/api/v1/alerts/{id}/comments", {"text": "备注"}, "staff"),
    ("POST", "/api/v1/alerts/{id}/responses", {"text": "回应", "channels": ["公众号"]}, "staff"),
    ("POST", "/api/v1/alerts", {"topic_id": "{topic}"}, "staff"),
    ("GET", "/api/v1/stories", None, "viewer"),
    ("GET", "/api/v1/stories/{story}", None, "viewer"),
    ("GET", "/api/v1/posts", None, "viewer"),
    ("GET", "/api/v1/posts/{post}", None, "viewer"),
    ("GET", "/api/v1/stats", None, "viewer"),
    ("GET", "/api/v1/alert-rules", None, "analyst"),
    ("POST", "/api/v1/alert-rules/validate", "rules: []\n", "analyst"),
    ("PUT", "/api/v1/alert-rules", "version: 1\n", "analyst"),
]
LOWER = {"viewer": None, "staff": "viewer", "analyst": "staff"}


def test_every_route_right_role_passes_wrong_role_403(
    api_client: TestClient, api_engine, make_user, monkeypatch, tmp_path
) -> None:
    """Each route: no token 401, the role just below the one required 403, the required role 2xx."""
    from alerts.rules import DEFAULT_RULES_FILE
    from core.settings import get_settings

    (tmp_path / "rules.yaml").write_bytes(DEFAULT_RULES_FILE.read_bytes())
    monkeypatch.setenv("YUQING_ALERT_RULES_FILE", str(tmp_path / "rules.yaml"))  # PUT writes there
    get_settings.cache_clear()
    tokens = {role: make_user(role) for role in ("viewer", "staff", "analyst")}
    for method, path, body, role in ROUTES:
        with session_scope(api_engine) as s:
            story, posts = story_with_posts(s, 1, groups=1)
            status = "confirmed_rumor" if path.endswith("responses") else "new"
            alert = make_alert(s, story_id=story.id, status=status)
            ids = {"id": alert.id, "story": story.id, "post": posts[0].id, "topic": make_topic(s).id}
        url = path.format(**ids)
        payload = body
        if isinstance(body, dict):
            payload = {
                k: ids[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v for k, v in body.items()
            }

        def call(headers: dict[str, str], url: str = url, payload: object = payload, method: str = method):
            if isinstance(payload, str):
                return api_client.request(
                    method, url, content=payload, headers=headers | {"content-type": "text/plain"}
                )
            return api_client.request(method, url, json=payload, headers=headers)

        assert call({}).status_code == 401, (method, path)
        if LOWER[role]:
            denied = call(tokens[LOWER[role]])
            assert denied.status_code == 403 and "权限" in denied.json()["title"], (method, path)
        allowed = call(tokens[role])
        assert allowed.status_code in (200, 201), (method, path, allowed.text)


def test_rules_endpoints(api_client: TestClient, make_user, monkeypatch, tmp_path) -> None:
    from alerts.rules import DEFAULT_RULES_FILE
    from core.settings import get_settings

    (tmp_path / "office_rules.yaml").write_bytes(DEFAULT_RULES_FILE.read_bytes())
    monkeypatch.setenv("YUQING_ALERT_RULES_FILE", str(tmp_path / "office_rules.yaml"))
    get_settings.cache_clear()
    analyst = make_user("analyst")
    rules = api_client.get("/api/v1/alert-rules", headers=analyst).json()
    assert rules["path"].endswith("rules.yaml") and rules["rules"]["thresholds"]["urgent"] == 75
    bad = api_client.post(
        "/api/v1/alert-rules/validate",
        content="rules:\n  - {id: a, kind: nope}\n",
        headers=analyst | {"content-type": "text/plain"},
    ).json()
    assert bad["ok"] is False and "rules.0" in bad["message"]
    good = api_client.post(
        "/api/v1/alert-rules/validate",
        content="rules: []\n",
        headers=analyst | {"content-type": "text/plain"},
    ).json()
    assert good["ok"] is True

    text_headers = analyst | {"content-type": "text/plain"}
    mine = "rules:\n  - {id: watch-masks, name: 口罩断货, kind: keyword, any: [口罩], severity: 5}\n"
    saved = api_client.put("/api/v1/alert-rules", content=mine.encode(), headers=text_headers)
    assert saved.status_code == 200 and saved.json()["rules"] == 1
    assert (tmp_path / "office_rules.yaml").read_text(encoding="utf-8") == mine
    assert (
        api_client.get("/api/v1/alert-rules", headers=analyst).json()["rules"]["rules"][0]["id"]
        == "watch-masks"
    )
    broken = api_client.put("/api/v1/alert-rules", content=b"rules: [", headers=text_headers)
    assert broken.status_code == 422 and "没有保存" in broken.json()["detail"]
    assert (tmp_path / "office_rules.yaml").read_text(encoding="utf-8") == mine
    staff = make_user("staff") | {"content-type": "text/plain"}
    assert api_client.put("/api/v1/alert-rules", content=mine.encode(), headers=staff).status_code == 403


#: 500s found by the run below in routes of other stages, reported to their owners. Anything else
#: fails the test. Remove an entry when it is fixed.
KNOWN_500: dict[str, str] = {}  # "METHOD path" -> why, for a 500 whose fix belongs to another stage


def test_no_route_returns_500_under_schemathesis(
    api_client: TestClient, make_user, api_engine, monkeypatch, tmp_path
) -> None:
    """Property-based calls generated from our OpenAPI schema, bounded, with a valid admin token."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    from alerts.rules import DEFAULT_RULES_FILE
    from core.settings import get_settings

    # PUT /alert-rules may save what it is sent: keep it away from the shared test data folder
    (tmp_path / "rules.yaml").write_bytes(DEFAULT_RULES_FILE.read_bytes())
    monkeypatch.setenv("YUQING_ALERT_RULES_FILE", str(tmp_path / "rules.yaml"))
    get_settings.cache_clear()
    admin = make_user("admin")
    with session_scope(api_engine) as s:
        story, _ = story_with_posts(s, 2, groups=2)
        make_alert(s, story_id=story.id)
        make_topic(s)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_client.app, headers=admin)
    failures: list[str] = []
    statuses: Counter[int] = Counter()

    for operation in schema.get_all_operations():
        op = operation.ok()
        # a token of its own per operation: generated calls revoke tokens and change users, and an
        # operation run after the admin's token was revoked would test nothing but the 401
        auth = {"Authorization": make_user("admin")["Authorization"]}

        @settings(
            max_examples=int(os.environ.get("YUQING_SCHEMATHESIS_EXAMPLES", "25")),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=op.as_strategy())
        def check(case) -> None:
            label = f"{case.method.upper()} {case.operation.path}"
            try:
                response = case.call(headers=auth)  # noqa: B023 - check() runs within this iteration
            except Exception as err:  # the app raised instead of answering: a 500 for a real client
                failures.append(f"{label} -> raised on {case.formatted_path}: {type(err).__name__} {err}")
                return
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(
                    f"{label} -> {response.status_code} on {case.formatted_path} "
                    f"{str(case.body)[:80]!r}: {response.text[:120]}"
                )

        check()
    known = [f for f in failures if f.split(" -> ")[0] in KNOWN_500]
    for failure in known:  # visible in the test summary until the owner fixes it
        warnings.warn(f"known 500 ({KNOWN_500[failure.split(' -> ')[0]]}): {failure}", stacklevel=1)
    unknown = [f for f in failures if f not in known]
    assert not unknown, "\n".join(unknown[:10])
    print(dict(statuses))
    assert statuses[200] + statuses[201] > 20  # real calls got through auth and validation
    assert statuses[401] < sum(statuses.values()) / 4, "most calls were refused at the door"
    assert len(list(schema.get_all_operations())) >= 15


def test_nul_characters_are_refused_not_500(api_client: TestClient, api_engine, make_user) -> None:
    """PostgreSQL text cannot hold NUL: it is a 422 on every route and both databases, never a 500
    (api.guards refuses NUL and control characters in any query string)."""
    staff = make_user("staff")
    with session_scope(api_engine) as s:
        alert_id = make_alert(s).id
    bad = api_client.post(f"/api/v1/alerts/{alert_id}/comments", json={"text": "a\x00b"}, headers=staff)
    assert bad.status_code == 422 and "NUL" in bad.json()["detail"]
    assert api_client.get("/api/v1/alerts", params={"q": "\x00"}, headers=staff).status_code == 422
    assert api_client.get("/api/v1/posts", params={"q": "封\x00路"}, headers=staff).status_code == 422
    assert api_client.get("/api/v1/stories", params={"q": "\x00"}, headers=staff).status_code == 422
