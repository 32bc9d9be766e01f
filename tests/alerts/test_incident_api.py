"""Incidents over the API: the alert page by role, /incidents, and staff's merge, split and move
round trips (with the constraints the grouping must honour and the alerts' history)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from alerts import evaluate as evaluation
from alerts.notify import NotifyConfig
from core.db import session_scope
from core.tables import Alert, AlertEvent, AlertPost, Incident, IncidentConstraint, Post, utcnow
from tests.factories import incident_posts, make_group, make_incident

API = "/api/v1"
QUIET = NotifyConfig()


def _matters(engine: Engine, n: int = 2) -> tuple[list[int], list[int]]:
    """``n`` rumor incidents (3 claims in 3 groups, a question, a refutation each), evaluated:
    (incident ids, alert ids)."""
    now = utcnow()
    with session_scope(engine) as s:
        ids = []
        for i in range(n):
            inc = make_incident(s, title=f"青禾镇第{i + 1}件事？", category="交通出行", now=now)
            incident_posts(s, inc, {"claim": 3, "question": 1, "refutation": 1},
                           groups=[make_group(s) for _ in range(3)], now=now)
            ids.append(inc.id)
        evaluation.evaluate(s, now=now, notify_config=QUIET)
    with session_scope(engine) as s:
        alerts = [s.scalar(select(Alert.id).where(Alert.incident_id == i)) for i in ids]
    assert all(alerts)
    return ids, [a for a in alerts if a is not None]


def _events(engine: Engine, alert_id: int, action: str) -> list[AlertEvent]:
    with session_scope(engine) as s:
        rows = list(s.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id, AlertEvent.action == action)))
        s.expunge_all()
    return rows


def _claims(engine: Engine, incident_id: int) -> list[int]:
    with session_scope(engine) as s:
        return list(s.scalars(select(Post.id).where(Post.incident_id == incident_id, Post.role == "claim").order_by(Post.id)))


def test_the_alert_page_shows_the_matter_by_role_with_its_spread_and_timeline(
    api_client: TestClient, api_engine: Engine, make_user: Callable[..., dict[str, str]]
) -> None:
    [incident_id], [alert_id] = _matters(api_engine, 1)
    viewer = make_user("viewer")

    body = api_client.get(f"{API}/alerts/{alert_id}", headers=viewer).json()

    assert body["incident_id"] == incident_id and body["title"] == "青禾镇第1件事？"
    matter = body["incident"]
    roles = {r["key"]: r for r in matter["roles"]}
    assert roles["claims"]["count"] == 3 and roles["questions"]["count"] == 1 and roles["responses"]["count"] == 1
    assert roles["claims"]["label"] == "传播的说法" and roles["responses"]["posts"][0]["role_zh"] == "辟谣/澄清"
    assert len(matter["spread"]) == 3 and sum(p["posts"] for p in matter["spread"]) == 5
    assert all(p["first_at"] <= p["last_at"] and p["name"] for p in matter["spread"])
    assert sum(h["count"] for h in matter["timeline"]) == 5
    assert sum(h["count"] for h in body["timeline"]) == 3  # the alert's chart: the claims that carry it

    queue = api_client.get(f"{API}/alerts?incident_id={incident_id}", headers=viewer).json()
    assert [a["id"] for a in queue["items"]] == [alert_id] and queue["items"][0]["incident_id"] == incident_id
    listed = api_client.get(f"{API}/incidents", headers=viewer).json()
    assert listed["total"] == 1 and listed["items"][0]["alert_id"] == alert_id
    assert listed["items"][0]["spreading_count"] == 3 and listed["items"][0]["kind_zh"] == "疑似谣言"
    detail = api_client.get(f"{API}/incidents/{incident_id}", headers=viewer).json()
    assert detail["id"] == incident_id and detail["roles"] == matter["roles"]
    assert api_client.get(f"{API}/incidents/999999", headers=viewer).status_code == 404
    assert api_client.get(f"{API}/incidents").status_code == 401
    assert api_client.get(f"{API}/incidents?kind=bogus", headers=viewer).status_code == 422


def test_merge_two_alerts_round_trip(
    api_client: TestClient, api_engine: Engine, make_user: Callable[..., dict[str, str]]
) -> None:
    (inc_a, inc_b), (alert_a, alert_b) = _matters(api_engine, 2)
    staff, viewer = make_user("staff"), make_user("viewer")
    claims_b = _claims(api_engine, inc_b)
    url = f"{API}/alerts/{alert_a}/merge"

    assert api_client.post(url, json={"other_alert_id": alert_b}, headers=viewer).status_code == 403
    assert api_client.post(url, json={"other_alert_id": alert_a}, headers=staff).status_code == 422
    assert api_client.post(url, json={"other_alert_id": 999999}, headers=staff).status_code == 404
    assert api_client.post(url, json={"other_alert_id": "x"}, headers=staff).status_code == 422
    response = api_client.post(url, json={"other_alert_id": alert_b}, headers=staff)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {r["key"]: r["count"] for r in body["incident"]["roles"]}["claims"] == 6
    assert body["post_count"] == 6

    with session_scope(api_engine) as s:
        a, b = s.get(Alert, alert_a), s.get(Alert, alert_b)
        assert a is not None and b is not None and b.status == "closed" and a.status == "new"
        merged = s.get(Incident, inc_b)
        assert merged is not None and merged.status == "merged" and merged.merged_into_id == inc_a
        assert set(claims_b) <= set(s.scalars(select(Post.id).where(Post.incident_id == inc_a)))
        assert set(claims_b) <= set(s.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == alert_a)))
        links = list(s.scalars(select(IncidentConstraint).where(IncidentConstraint.action == "merge")))
        assert links and all(c.kind == "must_link" and c.created_by is not None for c in links)
        n_links = len(links)
    assert len(_events(api_engine, alert_a, "merged")) == 1 and len(_events(api_engine, alert_b, "merged")) == 1

    # the same merge again changes nothing; merging the closed one back is a conflict
    assert api_client.post(url, json={"other_alert_id": alert_b}, headers=staff).status_code == 200
    assert len(_events(api_engine, alert_a, "merged")) == 1
    with session_scope(api_engine) as s:
        assert s.scalar(select(func.count()).select_from(IncidentConstraint)) == n_links
    back = api_client.post(f"{API}/alerts/{alert_b}/merge", json={"other_alert_id": alert_a}, headers=staff)
    assert back.status_code == 409 and "已关闭" in back.json()["detail"]

    # the next evaluation keeps one alert for the matter
    with session_scope(api_engine) as s:
        result = evaluation.evaluate(s, now=utcnow() + dt.timedelta(minutes=1), notify_config=QUIET)
        assert result.created == []
        assert s.scalar(select(func.count()).select_from(Alert).where(Alert.status != "closed")) == 1


def test_split_and_move_posts_round_trip(
    api_client: TestClient, api_engine: Engine, make_user: Callable[..., dict[str, str]]
) -> None:
    (inc_a, inc_c), (alert_a, alert_c) = _matters(api_engine, 2)
    staff = make_user("staff")
    first, second, third = _claims(api_engine, inc_a)

    # split: the post starts its own matter, leaves the alert's evidence, never links back
    split = f"{API}/incidents/{inc_a}/posts/{first}/split"
    response = api_client.post(split, headers=staff)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["changed"] is True and body["other_incident"]["post_count"] == 1
    new_id = body["other_incident"]["id"]
    assert {r["key"]: r["count"] for r in body["incident"]["roles"]}["claims"] == 2
    with session_scope(api_engine) as s:
        assert s.get(Post, first).incident_id == new_id  # type: ignore[union-attr]
        assert first not in set(s.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == alert_a)))
        cannot = {(c.post_id, c.other_post_id) for c in s.scalars(
            select(IncidentConstraint).where(IncidentConstraint.kind == "cannot_link", IncidentConstraint.action == "split"))}
        assert cannot and all(first in pair for pair in cannot) and len(cannot) <= 5
        assert s.get(Alert, alert_a).post_count == 2  # type: ignore[union-attr]
    [event] = _events(api_engine, alert_a, "split")
    assert event.comment and f"#{first}" in event.comment
    again = api_client.post(split, headers=staff)
    assert again.status_code == 200 and again.json()["changed"] is False
    assert len(_events(api_engine, alert_a, "split")) == 1
    assert api_client.post(f"{API}/incidents/{inc_c}/posts/{second}/split", headers=staff).status_code == 409
    assert api_client.post(f"{API}/incidents/999999/posts/{second}/split", headers=staff).status_code == 404
    assert api_client.post(split, json={"new_incident": "maybe"}, headers=staff).status_code == 422

    # move: the post joins the other matter and its alert's evidence
    move = f"{API}/incidents/{inc_a}/posts/{second}/move"
    assert api_client.post(move, json={"to_incident_id": inc_a}, headers=staff).status_code == 422
    assert api_client.post(move, json={"to_incident_id": 999999}, headers=staff).status_code == 404
    assert api_client.post(move, json={}, headers=staff).status_code == 422
    response = api_client.post(move, json={"to_incident_id": inc_c}, headers=staff)
    assert response.status_code == 200, response.text
    assert response.json()["other_incident"]["role_counts"]["claim"] == 4
    with session_scope(api_engine) as s:
        assert s.get(Post, second).incident_id == inc_c  # type: ignore[union-attr]
        assert second in set(s.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == alert_c)))
        assert second not in set(s.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == alert_a)))
        kinds = {c.kind for c in s.scalars(select(IncidentConstraint).where(IncidentConstraint.action == "move"))}
        assert kinds == {"must_link", "cannot_link"}
    assert len(_events(api_engine, alert_a, "moved")) == 1 and len(_events(api_engine, alert_c, "moved")) == 1
    assert api_client.post(move, json={"to_incident_id": inc_c}, headers=staff).json()["changed"] is False
    assert len(_events(api_engine, alert_c, "moved")) == 1
    assert third in _claims(api_engine, inc_a)
