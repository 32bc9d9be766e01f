"""A group-chat evening pushed by a bot ends as one alert per matter: the real push route, the real
analysis (roles, incidents, the shipped rumor model) and the real evaluation, on a fresh database
(SQLite, or PostgreSQL with YUQING_TEST_DATABASE=postgres). The messages are ours."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts import evaluate as evaluation
from alerts.notify import NotifyConfig
from alerts.rules import load_rules
from core.db import session_scope
from core.tables import Alert, AlertEvent, Incident, Post, utcnow
from nlp.pipeline import analyze

BATCH = "/api/v1/ingest/messages"
QUIET = NotifyConfig()
GROUPS = {
    "qh": ("20261201-qh@chatroom", "青禾镇家长群"),
    "dw": ("20261201-dw@chatroom", "东湾村村民群"),
    "ls": ("20261201-ls@chatroom", "柳树村村民群"),
}
EVENING = [  # (group, minutes after the start, text)
    ("qh", 0, "紧急扩散！中心小学甲流，全校停课两周，不转不是中国人"),
    ("dw", 6, "听说中心小学因为甲流要停课两个星期，家长们注意"),
    ("ls", 9, "中心小学甲流停课两周，孩子们都要在家上网课了"),
    ("dw", 11, "中心小学甲流停课两周是真的吗？"),
    ("qh", 13, "天哪，那孩子谁带啊"),
    ("qh", 20, "青禾镇人民政府通知：因管网检修，12月8日8时至18时东湾村停水，请村民提前储水。"),
    ("dw", 22, "青禾镇人民政府通知：因管网检修，12月8日8时至18时东湾村停水，请村民提前储水。"),
    ("ls", 25, "青禾镇人民政府通知：因管网检修，12月8日8时至18时东湾村停水，请村民提前储水。"),
    ("ls", 27, "今晚吃饺子还是面条"),
]
REFUTATION = ("ls", 70, "经核实，中心小学停课两周的消息是谣言，学校正常上课，请勿相信")


@pytest.fixture(scope="module")
def rumor_model() -> Any:
    from nlp.classifier import RumorModel

    return RumorModel.load()


def _push(client: TestClient, bot: dict[str, str], start: dt.datetime, lines: list[tuple[str, int, str]],
          first_id: int = 1, reply_to: str | None = None) -> None:
    by_group: dict[str, list[dict[str, Any]]] = {}
    for n, (group, minute, text) in enumerate(lines, start=first_id):
        by_group.setdefault(group, []).append({
            "id": f"m{n}", "time": (start + dt.timedelta(minutes=minute)).isoformat(),
            "sender": f"居民{n % 7}", "sender_id": f"wxid_{n % 7}", "text": text,
        } | ({"reply_to": reply_to} if reply_to else {}))
    for group, messages in by_group.items():
        external_id, name = GROUPS[group]
        batch = {"group": {"platform": "wechat", "external_id": external_id, "name": name}, "messages": messages}
        response = client.post(BATCH, json=batch, headers=bot)
        assert response.status_code == 200 and not response.json()["rejected"], response.text


def _analyze_and_evaluate(engine: Engine, model: Any, now: dt.datetime) -> evaluation.EvaluateResult:
    session = Session(engine, expire_on_commit=False)
    try:
        analyze(session, model=model, workers=0, now=now)
        result = evaluation.evaluate(session, now=now, notify_config=QUIET)
        session.commit()
        return result
    finally:
        session.close()


def _incident_of(s: Session, text: str) -> int | None:
    return s.scalar(select(Post.incident_id).where(Post.raw_text == text).limit(1))


def test_a_pushed_evening_ends_as_one_alert_per_matter(
    api_client: TestClient, api_engine: Engine, bot: dict[str, str], rumor_model: Any
) -> None:
    start = utcnow() - dt.timedelta(hours=3)
    _push(api_client, bot, start, EVENING)
    first = _analyze_and_evaluate(api_engine, rumor_model, start + dt.timedelta(minutes=40))

    with session_scope(api_engine) as s:
        rumor = _incident_of(s, EVENING[0][2])
        notice = _incident_of(s, EVENING[5][2])
        assert rumor is not None and notice is not None and rumor != notice
        assert {_incident_of(s, t) for _g, _m, t in EVENING[:4]} == {rumor}  # claims and the question
        assert _incident_of(s, EVENING[-1][2]) is None  # chatter belongs to no matter
        per_incident = Counter(s.scalars(select(Alert.incident_id)))
        assert per_incident[rumor] == 1 and all(n == 1 for n in per_incident.values())
        assert s.scalar(select(func.count()).select_from(Alert).where(Alert.incident_id.is_(None))) == 0
        alert = s.scalar(select(Alert).where(Alert.incident_id == rumor))
        assert alert is not None and alert.kind in ("rumor", "spread", "debunk_match")
        matter = s.get(Incident, rumor)
        assert matter is not None and alert.title == matter.title and "中心小学" in alert.title
        assert alert.post_count == (matter.role_counts or {}).get("claim")
        notice_alerts = list(s.scalars(select(Alert).where(Alert.incident_id == notice)))
        assert all(a.kind == "notice" and a.severity == "low" for a in notice_alerts)  # never a rumor
        alert_id, severity, score = alert.id, alert.severity_rank, alert.risk_score
    assert alert_id in first.created

    # the school's refutation arrives: shown with the matter, never raising it
    # (a reply to the claim in its group: 柳树村's "中心小学甲流停课两周，孩子们…", message m3)
    _push(api_client, bot, start, [REFUTATION], first_id=len(EVENING) + 1, reply_to="m3")
    later = _analyze_and_evaluate(api_engine, rumor_model, start + dt.timedelta(minutes=90))
    with session_scope(api_engine) as s:
        assert _incident_of(s, REFUTATION[2]) == rumor
        alert = s.get(Alert, alert_id)
        assert alert is not None and alert.severity_rank <= severity and alert.risk_score <= score
        assert later.created == [] and s.scalar(
            select(func.count()).select_from(AlertEvent).where(AlertEvent.alert_id == alert_id,
                                                                AlertEvent.action == "rising")) == 0
        events = s.scalar(select(func.count()).select_from(AlertEvent))

    # re-running the evaluation changes nothing
    again = _analyze_and_evaluate(api_engine, rumor_model, start + dt.timedelta(minutes=95))
    assert again.created == [] and again.rising == []
    with session_scope(api_engine) as s:
        assert s.scalar(select(func.count()).select_from(AlertEvent)) == events


def test_a_debunk_added_later_reaches_the_open_alert(
    api_client: TestClient, api_engine: Engine, bot: dict[str, str], rumor_model: Any,
    make_user: Any,
) -> None:
    start = utcnow() - dt.timedelta(hours=3)
    _push(api_client, bot, start, EVENING[:5])
    _analyze_and_evaluate(api_engine, rumor_model, start + dt.timedelta(minutes=20))
    with session_scope(api_engine) as s:
        rumor = _incident_of(s, EVENING[0][2])
        alert = s.scalar(select(Alert).where(Alert.incident_id == rumor))
        assert alert is not None and "【核实情况】" in (alert.suggested_response or "")
        alert_id = alert.id

    # staff add the school's denial to the debunk library: the claims stage matches it to the
    # open incident (reworded claims included), and the next evaluation folds it into the alert
    staff = make_user("staff")
    created = api_client.post("/api/v1/debunks", headers=staff, json={
        "claim": "中心小学因为甲流全校停课两周",
        "refutation": "青禾镇中心小学说明：学校没有停课安排，正常上课。",
        "publisher": "青禾镇中心小学", "category": "教育",
    })
    assert created.status_code == 201, created.text
    with session_scope(api_engine) as s:
        matter = s.get(Incident, rumor)
        assert matter is not None and matter.debunk_id == created.json()["id"]
    result = _analyze_and_evaluate(api_engine, rumor_model, start + dt.timedelta(minutes=30))

    assert result.created == [] and alert_id in result.folded
    with session_scope(api_engine) as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None
        assert "【核实情况】" not in (alert.suggested_response or "") and "正常上课" in alert.suggested_response
        part = alert.score_parts["matter_debunk"]
        assert part["points"] > 0 and f"#{created.json()['id']}" in part["text"]
        # the debunk-match rule (and the kind it names) follows the office's similarity threshold
        matter = s.get(Incident, rumor)
        assert matter is not None and matter.debunk_similarity is not None
        fired = any(r["kind"] == "debunk_match" for r in alert.rules_fired)
        threshold = load_rules().enabled("debunk_match")[0].min_similarity
        assert fired == (matter.debunk_similarity >= threshold) and (alert.kind == "debunk_match") == fired


# A hearsay claim about a village of the township, passed on in two groups, asked about and
# corrected by a resident: chat lines the rumor model (trained on Weibo posts) scores low, a matter
# the groups themselves doubt.
HEARSAY = [
    ("qh", 0, "听说石桥村明天晚上开始停电，要停三天"),
    ("dw", 5, "石桥村明天起停三天电，供电所的人说的"),
    ("dw", 7, "石桥村停三天电是真的吗？"),
    ("qh", 9, "真的假的？石桥村停三天电谁受得了"),
    ("dw", 12, "石桥村停电的事有人确认过吗"),
]
CORRECTION = ("qh", 20, "没这回事，我刚问了村里，没接到停电通知")
# An office notice of the township passed on in three groups, asked about and retold as hearsay:
# information that spreads, never a rumor alert.
NOTICE = "青禾镇人民政府通知：因线路检修，12月9日8时至17时南坪村停电，请村民提前做好准备。"
NOTICE_EVENING = [
    ("qh", 0, NOTICE),
    ("dw", 3, NOTICE),
    ("dw", 6, "南坪村9号停电是真的吗？"),
    ("ls", 8, NOTICE),
    ("ls", 10, "南坪村停电停到几点啊？"),
    ("ls", 11, "听说南坪村9号要停一天电"),
    ("qh", 12, "9号南坪村停电，是镇里的通知吗"),
]
RUMOR_KINDS = ("rumor", "spread", "debunk_match")


def test_a_hearsay_claim_the_groups_ask_about_is_alerted_with_their_doubt_explained(
    api_client: TestClient, api_engine: Engine, bot: dict[str, str], rumor_model: Any
) -> None:
    start = utcnow() - dt.timedelta(hours=3)
    _push(api_client, bot, start, HEARSAY)
    _push(api_client, bot, start, [CORRECTION], first_id=len(HEARSAY) + 1, reply_to="m1")
    _analyze_and_evaluate(api_engine, rumor_model, start + dt.timedelta(minutes=30))

    with session_scope(api_engine) as s:
        rumor = _incident_of(s, HEARSAY[0][2])
        assert rumor is not None
        matter = s.get(Incident, rumor)
        assert matter is not None and matter.kind == "rumor"
        assert (matter.role_counts or {}).get("question", 0) >= 2
        [alert] = s.scalars(select(Alert).where(Alert.incident_id == rumor))
        assert alert.kind in RUMOR_KINDS and "石桥村" in alert.title
        # staff read why: the claims part names the residents' questions and corrections
        claims = next(p for p in matter.risk_parts["parts"] if p["key"] == "claims")
        assert "询问" in claims["detail"] and "质疑" in claims["detail"]
        assert s.scalar(select(func.count()).select_from(Alert)) == 1  # one alert for the matter


def test_a_true_notice_that_spreads_and_is_asked_about_is_no_rumor_alert(
    api_client: TestClient, api_engine: Engine, bot: dict[str, str], rumor_model: Any
) -> None:
    start = utcnow() - dt.timedelta(hours=3)
    _push(api_client, bot, start, NOTICE_EVENING)
    _analyze_and_evaluate(api_engine, rumor_model, start + dt.timedelta(minutes=30))

    with session_scope(api_engine) as s:
        notice = _incident_of(s, NOTICE)
        assert notice is not None
        matter = s.get(Incident, notice)
        assert matter is not None and matter.kind == "notice"
        assert (matter.role_counts or {}).get("question", 0) >= 2  # asked about (precondition)
        rumor_alerts = s.scalars(select(Alert).where(Alert.kind.in_(RUMOR_KINDS)))
        assert list(rumor_alerts) == []
