"""The alert service on a real database: raise, fold, re-alert, workflow, labels, responses, escalation."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts import evaluate as evaluation
from alerts import queries, severity, workflow
from alerts.notify import NotifyConfig, parse_notify_config
from alerts.rules import load_rules, parse_rules
from core.errors import Conflict, InvalidInput, NotFound
from core.tables import Alert, AlertEvent, AlertPost, AlertRun, Label, Notification, Post, Response
from tests.factories import (
    make_debunk,
    make_debunk_match,
    make_post,
    make_score,
    make_story,
    make_topic,
    make_user,
    story_with_posts,
)

NOW = dt.datetime(2026, 11, 28, 6, 30, tzinfo=dt.UTC)  # 14:30 in 青禾县 (Asia/Shanghai): not quiet hours
QUIET = NotifyConfig()


def evaluate(session: Session, now: dt.datetime = NOW, **kw):
    return evaluation.evaluate(session, now=now, notify_config=kw.pop("notify_config", QUIET), **kw)


def alerts_for(session: Session, story_id: int) -> list[Alert]:
    return list(session.scalars(select(Alert).where(Alert.story_id == story_id).order_by(Alert.id)))


def test_a_likely_rumor_story_raises_one_alert_with_stored_parts(session: Session) -> None:
    story, posts = story_with_posts(session, 4, groups=4, probability=0.93, now=NOW)
    quiet_story, _ = story_with_posts(
        session, 2, groups=1, probability=0.2, now=NOW, text="青禾镇卫生院周六照常开诊。"
    )
    result = evaluate(session)
    [alert] = alerts_for(session, story.id)
    assert alerts_for(session, quiet_story.id) == []  # no rule fires on a plain notice
    assert result.created == [alert.id] and result.posts_seen == 6
    assert alert.kind == "rumor" and alert.status == "new"
    assert {r["id"] for r in alert.rules_fired} == {
        "rumor-probability",
        "multi-group-spread",
        "watch-lockdown",
    }
    parts = alert.score_parts
    assert parts["rumor"]["value"] == pytest.approx(0.93) and parts["rumor"]["points"] == pytest.approx(27.9)
    assert parts["groups"]["value"] == 4 and "4 个群" in parts["groups"]["text"]
    total = sum(p["points"] for p in parts.values())
    assert alert.risk_score == pytest.approx(min(100, total), abs=0.01)
    assert alert.severity == severity.severity_for(alert.risk_score, load_rules())
    evidence = set(session.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == alert.id)))
    assert evidence == {p.id for p in posts}
    # a second run over the same analysis changes nothing (idempotent)
    updated = alert.updated_at
    again = evaluate(session, now=NOW + dt.timedelta(minutes=1))  # re-reads the same posts (overlap)
    assert again.posts_seen == 6 and again.created == [] and again.folded == []
    assert len(alerts_for(session, story.id)) == 1 and alert.updated_at == updated
    assert session.scalar(select(func.count()).select_from(AlertRun)) == 2


def test_alert_is_titled_by_the_post_as_written(session: Session) -> None:
    """A forum post's own title, with its full-width marks, not the story's normalised text."""
    body = "群里都在传青禾镇下周要封城，我刚去超市米面都快被抢光了，有没有人知道是真是假？"
    story, [post] = story_with_posts(session, 1, probability=0.95, now=NOW, text=body,
                                     title="听说下周要封城了？超市米面都被抢光了")
    story.title = "听说下周要封城了?超市米面都被抢光了 群里都在传青禾镇下周要封城,"  # as nlp stores it
    story.representative_post_id = post.id
    session.flush()
    evaluate(session)
    [alert] = alerts_for(session, story.id)
    assert alert.title == "听说下周要封城了？超市米面都被抢光了"
    assert alert.summary == body


def test_severity_orders_the_risks(session: Session) -> None:
    """A debunked rumor spreading fast in many local groups outranks a lone borderline post."""
    cfg = load_rules()
    big, posts = story_with_posts(
        session, 40, groups=12, probability=0.97, now=NOW, is_local=True, category="公共安全", negativity=0.9
    )
    debunk = make_debunk(session)
    make_debunk_match(session, posts[0], debunk, 0.95)
    small, _ = story_with_posts(
        session, 1, groups=1, probability=0.81, now=NOW, text="有人说南坪村的井水不能喝了？"
    )
    evaluate(session)
    [a_big] = alerts_for(session, big.id)
    [a_small] = alerts_for(session, small.id)
    assert a_big.kind == "debunk_match" and a_big.severity == "urgent"
    assert a_small.severity in ("low", "medium") and a_small.risk_score < a_big.risk_score - 30
    assert a_big.score_parts["debunk"]["value"] == pytest.approx(0.95)
    assert a_big.score_parts["category"]["value"] == "公共安全"
    # the category weight matters: the same story in 其他 scores lower
    other = cfg.model_copy(update={"category_weights": {"公共安全": 0.2}})
    assert (
        severity.risk(severity.Features(category="公共安全"), other, [])[0]
        < severity.risk(severity.Features(category="公共安全"), cfg, [])[0]
    )
    # the draft response is built from the debunk's official text and link
    assert "全镇道路正常通行" in a_big.suggested_response and debunk.url in a_big.suggested_response


def test_new_posts_fold_into_the_open_alert_and_rising_raises_severity(session: Session) -> None:
    story, _ = story_with_posts(
        session, 2, groups=1, probability=0.85, now=NOW, text="听说卫生院的疫苗是过期的"
    )
    evaluate(session)
    [alert] = alerts_for(session, story.id)
    assert alert.severity == "medium"
    first_severity, first_rank = alert.severity, alert.severity_rank
    later = NOW + dt.timedelta(hours=1)
    story_with_posts(session, 30, groups=9, probability=0.97, story=story, now=later, is_local=True)
    result = evaluate(
        session,
        now=later + dt.timedelta(minutes=1),
        notify_config=parse_notify_config("""
routes:
  - {name: 值班, channel: webhook, url: "http://127.0.0.1:9/x", min_severity: low}
"""),
    )
    assert alerts_for(session, story.id) == [alert]  # one alert per story
    assert result.folded == [alert.id] and result.rising == [alert.id]
    assert alert.post_count == 32 and alert.severity == "urgent" and alert.severity_rank > first_rank, (
        first_severity,
        alert.severity,
    )
    evidence = session.scalar(
        select(func.count()).select_from(AlertPost).where(AlertPost.alert_id == alert.id)
    )
    assert evidence == 32
    note = session.scalars(
        select(AlertEvent).where(AlertEvent.alert_id == alert.id, AlertEvent.action == "rising")
    )
    [rising] = list(note)
    assert "2 条增至 32 条" in rising.comment
    [n] = session.scalars(select(Notification).where(Notification.alert_id == alert.id))
    assert n.dedup_key == f"alert:{alert.id}:rising:{alert.severity}:值班"


def test_dismissed_story_realerts_only_past_the_margin(session: Session) -> None:
    staff = make_user(session, "staff")
    story, _ = story_with_posts(session, 10, groups=3, probability=0.9, now=NOW)
    evaluate(session)
    [first] = alerts_for(session, story.id)
    workflow.transition(session, first.id, "dismissed", actor=staff, comment="老谣言，已无人转发")
    assert first.post_count_at_close == 10
    t1 = NOW + dt.timedelta(hours=1)
    story_with_posts(session, 5, groups=1, probability=0.9, story=story, now=t1)
    evaluate(session, now=t1)
    assert alerts_for(session, story.id) == [first]  # 15 posts: below the margin (x2, +10)
    t2 = NOW + dt.timedelta(hours=2)
    story_with_posts(session, 10, groups=2, probability=0.9, story=story, now=t2)
    result = evaluate(session, now=t2)
    first_again, second = alerts_for(session, story.id)
    assert first_again.status == "dismissed" and second.status == "new"
    assert result.realerted == [second.id] and second.post_count == 25
    [event] = session.scalars(
        select(AlertEvent).where(AlertEvent.alert_id == second.id, AlertEvent.action == "realert")
    )
    assert event.detail["previous_alert_id"] == first.id and "#" + str(first.id) in event.comment


def test_hot_local_concern_and_keyword_watch(session: Session) -> None:
    topic = make_topic(session, now=NOW, post_count=25, group_count=4, hourly_counts={"2026-11-28T06": 20})
    for _ in range(3):
        make_post(
            session, "东湾村药店的口罩卖完了，什么时候补货？", topic_id=topic.id, is_local=True, now=NOW
        )
    far = make_topic(session, now=NOW, label="外省某地物价", places=[], category="物价")
    lone = make_post(session, "石桥村那边要封村了吗？有没有人知道", now=NOW)
    ignored = make_post(session, "网传石桥村封村是谣言，镇里已辟谣", now=NOW)
    evaluate(session)
    [concern] = session.scalars(select(Alert).where(Alert.topic_id == topic.id))
    assert concern.kind == "concern" and concern.category == "物资供应"
    # titled by what people say, and the draft answers it with the 物资供应 template
    assert concern.title.startswith("东湾村药店的口罩卖完了") and "、" not in concern.title
    assert "“东湾村药店的口罩卖完了" in concern.suggested_response and "按需购买" in concern.suggested_response
    assert "【核实情况】" in concern.suggested_response
    assert session.scalar(select(Alert).where(Alert.topic_id == far.id)) is None  # not local
    [kw] = session.scalars(select(Alert).join(AlertPost).where(AlertPost.post_id == lone.id))
    assert (
        kw.kind == "keyword" and "封村" in kw.rules_fired[0]["why"] and "石桥村" in kw.rules_fired[0]["why"]
    )
    assert session.scalar(select(AlertPost).where(AlertPost.post_id == ignored.id)) is None  # excluded word


def test_concern_alert_reads_what_people_say_not_the_official_answer(session: Session) -> None:
    topic = make_topic(session, now=NOW, post_count=25, group_count=4, hourly_counts={"2026-11-28T06": 20})
    asked = make_post(session, "东湾村药店的口罩卖完了，什么时候补货？", topic_id=topic.id, is_local=True, now=NOW)
    official = make_post(session, "经核实，网传东湾村口罩断货的消息不实，镇卫生院口罩储备充足", topic_id=topic.id,
                         is_local=True, now=NOW)
    topic.representative_post_id = official.id  # the most central post is the refutation
    session.flush()
    evaluate(session)
    [concern] = session.scalars(select(Alert).where(Alert.topic_id == topic.id))
    assert concern.summary == asked.raw_text


def test_workflow_state_machine_history_and_labels(session: Session) -> None:
    staff, other = make_user(session, "staff"), make_user(session, "analyst")
    story, posts = story_with_posts(session, 3, groups=3, probability=0.95, now=NOW)
    evaluate(session)
    [alert] = alerts_for(session, story.id)
    with pytest.raises(Conflict, match="不能直接改为"):
        workflow.transition(session, alert.id, "closed", actor=staff)
    with pytest.raises(InvalidInput):
        workflow.transition(session, alert.id, "flying", actor=staff)
    with pytest.raises(NotFound):
        workflow.transition(session, 999_999, "acknowledged", actor=staff)
    workflow.assign(session, alert.id, other.id, actor=staff)
    workflow.transition(session, alert.id, "acknowledged", actor=other)
    assert alert.acknowledged_at is not None
    workflow.transition(session, alert.id, "confirmed_rumor", actor=other)
    with pytest.raises(Conflict, match="还没有回应"):
        workflow.transition(session, alert.id, "responded", actor=other)
    assert alert.status == "confirmed_rumor"
    labels = list(session.scalars(select(Label).where(Label.alert_id == alert.id)))
    assert sorted(lab.post_id for lab in labels) == sorted(p.id for p in posts)
    assert all(lab.label == 1 and lab.origin == "review" and lab.user_id == other.id for lab in labels)
    assert labels[0].text == session.get(Post, labels[0].post_id).norm_text
    workflow.add_comment(session, alert.id, "已联系交通局核实", actor=other)
    with pytest.raises(InvalidInput):
        workflow.add_comment(session, alert.id, "  ", actor=other)
    with pytest.raises(InvalidInput, match="只读"):
        workflow.assign(session, alert.id, make_user(session, "viewer").id, actor=staff)
    history = [
        (e.action, e.to_status, e.actor_id)
        for e in session.scalars(
            select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.id)
        )
    ]
    assert history == [
        ("created", "new", None),
        ("assigned", None, staff.id),
        ("status", "acknowledged", other.id),
        ("status", "confirmed_rumor", other.id),
        ("comment", None, other.id),
    ]


def test_dismissal_labels_posts_as_not_rumor_and_reopening_withdraws_them(session: Session) -> None:
    staff = make_user(session, "staff")
    story, _posts = story_with_posts(session, 2, groups=3, probability=0.9, now=NOW)
    evaluate(session)
    [alert] = alerts_for(session, story.id)
    workflow.transition(session, alert.id, "dismissed", actor=staff)
    assert {lab.label for lab in session.scalars(select(Label))} == {0}
    workflow.transition(session, alert.id, "acknowledged", actor=staff)
    assert session.scalar(select(func.count()).select_from(Label)) == 0
    workflow.transition(session, alert.id, "confirmed_rumor", actor=staff)
    assert {lab.label for lab in session.scalars(select(Label))} == {1}


def test_response_records_spread_before_and_after(session: Session) -> None:
    staff = make_user(session, "staff")
    story = make_story(session, now=NOW)
    # 10/hour for the 6 hours before the response at 06:30, then 2/hour after it
    hourly = {f"2026-11-28T{h:02d}": 10 for h in range(0, 6)} | {
        f"2026-11-28T{h:02d}": 2 for h in range(6, 10)
    }
    story_with_posts(session, 3, groups=3, probability=0.9, story=story, now=NOW)
    story.hourly_counts = hourly
    evaluate(session)
    [alert] = alerts_for(session, story.id)
    with pytest.raises(Conflict, match="请先确认"):
        workflow.respond(session, alert.id, text="辟谣", channels=["镇政府公众号"], actor=staff, now=NOW)
    workflow.transition(session, alert.id, "confirmed_rumor", actor=staff)
    with pytest.raises(InvalidInput):
        workflow.respond(session, alert.id, text=" ", channels=[], actor=staff, now=NOW)
    published = dt.datetime(2026, 11, 28, 6, 5, tzinfo=dt.UTC)
    later = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)
    response = workflow.respond(
        session,
        alert.id,
        text="青禾镇没有封路安排，请勿轻信。",
        channels=["公众号", "村村通广播"],
        url="https://example.org/qinghe/notice/7",
        published_at=published,
        actor=staff,
        now=later,
    )
    assert alert.status == "responded"
    before, after = response.spread_before, response.spread_after
    assert before["posts"] == 60 and before["per_hour"] == 10
    assert after["observed_hours"] == 4 and after["posts"] == 8 and after["per_hour"] == 2
    assert after["change"] == pytest.approx(-0.8) and after["complete"] is False
    # the next evaluation measures again as the after-window fills
    story.hourly_counts = hourly | {"2026-11-28T10": 1, "2026-11-28T11": 1}
    evaluate(session, now=dt.datetime(2026, 11, 28, 12, 30, tzinfo=dt.UTC))
    assert response.spread_after["complete"] is True and response.spread_after["posts"] == 10
    workflow.transition(session, alert.id, "closed", actor=staff)
    with pytest.raises(Conflict, match="已关闭"):
        workflow.transition(session, alert.id, "acknowledged", actor=staff)
    assert session.scalar(select(func.count()).select_from(Response)) == 1


def test_escalation_marks_and_notifies_once(session: Session) -> None:
    config = parse_notify_config("""
escalation:
  - after_minutes: {urgent: 15, high: 60}
    routes:
      - {name: 分管领导, channel: webhook, url: "http://127.0.0.1:9/lead", min_severity: high,
         events: [escalated]}
  - after_minutes: {urgent: 60}
    routes:
      - {name: 镇长, channel: webhook, url: "http://127.0.0.1:9/boss", min_severity: urgent,
         events: [escalated]}
""")
    from tests.factories import make_alert

    urgent = make_alert(session, severity="urgent", now=NOW)
    high = make_alert(session, severity="high", now=NOW)
    medium = make_alert(session, severity="medium", now=NOW)
    acked = make_alert(session, severity="urgent", now=NOW, status="acknowledged")
    assert workflow.escalate(session, now=NOW + dt.timedelta(minutes=10), config=config) == []
    assert workflow.escalate(session, now=NOW + dt.timedelta(minutes=20), config=config) == [urgent.id]
    assert workflow.escalate(session, now=NOW + dt.timedelta(minutes=21), config=config) == []
    assert urgent.escalation_level == 1 and urgent.escalated_at is not None
    assert set(workflow.escalate(session, now=NOW + dt.timedelta(minutes=61), config=config)) == {
        high.id,
        urgent.id,
    }
    assert urgent.escalation_level == 2 and high.escalation_level == 1
    assert medium.escalation_level == 0 and acked.escalation_level == 0
    targets = sorted((n.alert_id, n.target.rsplit("/", 1)[1]) for n in session.scalars(select(Notification)))
    assert targets == sorted([(urgent.id, "lead"), (urgent.id, "boss"), (high.id, "lead")])


def test_manual_alert_from_topic_post_and_conflicts(session: Session) -> None:
    staff = make_user(session, "staff")
    topic = make_topic(session, now=NOW, is_hot=False, category="交通出行", places=["柳树村"])
    alert = workflow.create_manual(
        session,
        actor=staff,
        topic_id=topic.id,
        severity="high",
        comment="村民来电反映",
        now=NOW,
        rules=load_rules(),
    )
    assert alert.kind == "manual" and alert.severity == "high" and alert.topic_id == topic.id
    # a manual alert on a topic is answered as a concern, with its category's advice
    assert alert.suggested_response.startswith("关于群众反映“")
    assert "交通运输部门" in alert.suggested_response
    with pytest.raises(Conflict):
        workflow.create_manual(session, actor=staff, topic_id=topic.id, now=NOW)
    story, posts = story_with_posts(session, 2, groups=1, probability=0.3, now=NOW)
    from_post = workflow.create_manual(session, actor=staff, post_id=posts[0].id, now=NOW)
    assert from_post.story_id == story.id and from_post.post_count == 2
    with pytest.raises(InvalidInput):
        workflow.create_manual(session, actor=staff, now=NOW)
    with pytest.raises(NotFound):
        workflow.create_manual(session, actor=staff, post_id=10**9, now=NOW)
    # new posts of that story now fold into the manual alert
    story_with_posts(session, 2, groups=1, probability=0.95, story=story, now=NOW + dt.timedelta(minutes=5))
    evaluate(session, now=NOW + dt.timedelta(minutes=6))
    assert alerts_for(session, story.id) == [from_post] and from_post.post_count == 4


def test_debunk_match_without_story_link_uses_post_matches(session: Session) -> None:
    story = make_story(session, now=NOW)
    post = make_post(session, "紧急扩散！青禾镇全面封路，车辆禁止通行", story_id=story.id, now=NOW)
    make_score(session, post, 0.4)
    story.post_count, story.representative_post_id = 1, post.id
    make_debunk_match(session, post, make_debunk(session), 0.88)
    evaluate(session)
    [alert] = alerts_for(session, story.id)
    assert alert.kind == "debunk_match" and "debunk-match" in {r["id"] for r in alert.rules_fired}
    detail = queries.alert_detail(session, alert.id, now=NOW)
    assert detail["debunks"][0]["similarity"] == pytest.approx(0.88)
    [p] = detail["posts"]
    assert "<mark>封路</mark>" in p["text_html"] and [s[2] for s in p["highlights"]].count("封路") == 1


def test_highlight_escapes_untrusted_text() -> None:
    html_text, spans = queries.highlight("<img src=x onerror=alert(1)>封路<script>", ["封路", "<img"])
    assert "<img" not in html_text and "<script>" not in html_text
    assert "<mark>&lt;img</mark>" in html_text and "<mark>封路</mark>" in html_text
    assert spans[0] == [0, 4, "<img"]


def test_highlight_ignores_case() -> None:
    # the model's terms are lower-cased; the post keeps its own case
    html_text, spans = queries.highlight("加我QQ：2718，口罩", ["qq", "口罩"])
    assert "<mark>QQ</mark>" in html_text and [s[2] for s in spans] == ["QQ", "口罩"]


def test_rules_validation_names_the_field() -> None:
    with pytest.raises(InvalidInput, match=r"rules\.0"):
        parse_rules("rules:\n  - {id: x, name: y, kind: keyword, excluded: [a]}\n", origin="mine.yaml")
    with pytest.raises(InvalidInput, match=r"mine\.yaml"):
        parse_rules("rules: [", origin="mine.yaml")
    with pytest.raises(InvalidInput, match="重复"):
        parse_rules(
            "rules:\n  - {id: a, name: 一, kind: debunk_match}\n  - {id: a, name: 二, kind: spread}\n"
        )
    with pytest.raises(InvalidInput, match="thresholds"):
        parse_rules("thresholds: {medium: 80, high: 50, urgent: 90}\n")
    with pytest.raises(InvalidInput, match="占位符"):
        parse_rules("response_templates: {其他: '关于{topic}'}\n")
    assert parse_rules("").rules == []


def test_concurrent_evaluations_raise_one_alert_per_story(fresh_db_url: str) -> None:
    """The scheduler's run and a CLI run at the same moment must not raise two alerts for a story."""
    import threading

    from core.db import make_engine, session_scope

    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        ids = [story_with_posts(s, 3, groups=3, probability=0.95, now=NOW)[0].id for _ in range(5)]
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            with session_scope(engine) as s:
                evaluation.evaluate(s, now=NOW, notify_config=QUIET)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with session_scope(engine) as s:
        per_story = dict(
            s.execute(
                select(Alert.story_id, func.count()).where(Alert.story_id.in_(ids)).group_by(Alert.story_id)
            ).all()
        )
        assert per_story == dict.fromkeys(ids, 1)
        assert s.scalar(select(func.count()).select_from(AlertRun)) == 3
    engine.dispose()
