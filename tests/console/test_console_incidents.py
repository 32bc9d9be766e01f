"""The console's alert page shows the matter by role, and staff merge, split and move through its
forms (real HTTP, CSRF tokens, roles)."""

from __future__ import annotations

from sqlalchemy import select

from alerts import evaluate as evaluation
from alerts.notify import NotifyConfig
from core.db import session_scope
from core.tables import Alert, AlertEvent, Incident, IncidentConstraint, Post, utcnow
from tests.console.conftest import csrf_of
from tests.factories import incident_posts, make_group, make_incident


def _two_matters(engine) -> tuple[list[int], list[int]]:
    now = utcnow()
    with session_scope(engine) as s:
        ids = []
        for title in ("柳树村桥塌了？", "柳树村的桥要拆"):
            inc = make_incident(s, title=title, category="公共安全", now=now)
            incident_posts(s, inc, {"claim": 3, "question": 1, "refutation": 1},
                           groups=[make_group(s) for _ in range(3)], now=now,
                           texts={"claim": f"听说{title}，大家别走那条路", "question": "桥真的出事了吗？"})
            ids.append(inc.id)
        evaluation.evaluate(s, now=now, notify_config=NotifyConfig())
    with session_scope(engine) as s:
        alerts = [s.scalar(select(Alert.id).where(Alert.incident_id == i)) for i in ids]
    return ids, [a for a in alerts if a is not None]


def test_alert_page_shows_the_matter_by_role_and_viewers_get_no_regroup_buttons(live, client_as) -> None:
    (incident_id, _), (alert_id, _) = _two_matters(live.engine)
    page = client_as("zhangmin").get(f"/alerts/{alert_id}").text
    assert "这件事" in page and f"事件 #{incident_id}" in page
    for heading in ("传播的说法", "询问", "辟谣与通知", "各群传播"):
        assert heading in page
    assert "柳树村桥塌了？" in page and "桥真的出事了吗？" in page
    assert f'action="/incidents/{incident_id}/posts/' in page and f'action="/alerts/{alert_id}/merge"' in page
    viewer = client_as("chenkz").get(f"/alerts/{alert_id}").text
    assert "这件事" in viewer and "/merge" not in viewer and "/split" not in viewer


def test_merge_split_and_move_through_the_console(live, client_as) -> None:
    (inc_a, inc_b), (alert_a, alert_b) = _two_matters(live.engine)
    c = client_as("zhangmin")
    token = csrf_of(c.get(f"/alerts/{alert_a}").text)

    # a form without the token changes nothing
    assert c.post(f"/alerts/{alert_a}/merge", data={"other_alert_id": str(alert_b)}).status_code == 403
    bad = c.post(f"/alerts/{alert_a}/merge", data={"other_alert_id": "abc", "csrf_token": token})
    assert bad.status_code == 303  # back to the page with the reason
    assert "编号" in c.get(bad.headers["location"]).text

    # split a claim out of A, then move another claim of A to B, then merge B into A
    with session_scope(live.engine) as s:
        claims = list(s.scalars(select(Post.id).where(Post.incident_id == inc_a, Post.role == "claim").order_by(Post.id)))
    r = c.post(f"/incidents/{inc_a}/posts/{claims[0]}/split", data={"alert_id": str(alert_a), "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/alerts/{alert_a}")
    r = c.post(f"/incidents/{inc_a}/posts/{claims[1]}/move",
               data={"alert_id": str(alert_a), "to_incident_id": f"#{inc_b}", "csrf_token": token})
    assert r.status_code == 303
    r = c.post(f"/alerts/{alert_a}/merge", data={"other_alert_id": str(alert_b), "csrf_token": token})
    assert r.status_code == 303
    with session_scope(live.engine) as s:
        split_post, moved = s.get(Post, claims[0]), s.get(Post, claims[1])
        assert split_post is not None and split_post.incident_id not in (inc_a, inc_b, None)
        assert moved is not None and moved.incident_id == inc_a  # moved to B, then B merged into A
        b = s.get(Incident, inc_b)
        assert b is not None and b.status == "merged" and b.merged_into_id == inc_a
        assert s.get(Alert, alert_b).status == "closed"  # type: ignore[union-attr]
        actions = {e.action for e in s.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_a))}
        assert {"split", "moved", "merged"} <= actions
        kinds = {(c.kind, c.action) for c in s.scalars(select(IncidentConstraint))}
        assert {("cannot_link", "split"), ("must_link", "move"), ("must_link", "merge")} <= kinds
    page = c.get(f"/alerts/{alert_a}").text
    assert "合并" in page and "拆出帖子" in page
