"""The day's figures: every number checked against the database by a query written here."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.settings import Settings
from core.tables import Alert, AlertEvent, DebunkMatch, Post, PostScore, Response
from digest.build import build_summary, change_words, make_window
from digest.errors import DigestConfigError
from digest.render import render, subject_for
from tests.digest.factories import local, make_alert, make_post, move
from tests.digest.scenario import DAY, BusyDay

SETTINGS = Settings(timezone="Asia/Shanghai", base_url="http://127.0.0.1:8000")
AFTER_DAY = local(DAY + dt.timedelta(days=1), 9)  # built the next morning: the whole day


def _posts_between(db: Session, start: dt.datetime, end: dt.datetime, channel: str | None = None) -> int:
    q = select(func.count()).select_from(Post).where(Post.published_at >= start, Post.published_at < end)
    if channel:
        q = q.where(Post.channel == channel)
    return db.scalar(q) or 0


def test_figures_match_the_database(db: Session, busy_day: BusyDay) -> None:
    s = build_summary(db, DAY, settings=SETTINGS, now=AFTER_DAY)
    start, end = local(DAY, 0), local(DAY + dt.timedelta(days=1), 0)

    web, chat = _posts_between(db, start, end, "web"), _posts_between(db, start, end, "chat")
    assert (s["volume"]["web"], s["volume"]["chat"]) == (web, chat) == (12, 30)
    assert s["volume"]["total"] == web + chat
    prev = _posts_between(db, start - dt.timedelta(days=1), start)
    assert s["volume"]["previous_total"] == prev
    week = [_posts_between(db, start - dt.timedelta(days=k), start - dt.timedelta(days=k - 1))
            for k in range(1, 8)]
    assert s["volume"]["week_avg"] == round(sum(week) / 7, 1)
    assert s["volume"]["change_vs_previous"] == round((web + chat - prev) / prev * 100, 1)
    assert s["volume"]["vs_previous"] == change_words(web + chat, prev)
    assert sum(s["hourly"]) == web + chat

    day_posts = select(Post.id).where(Post.published_at >= start, Post.published_at < end)
    rumor_ids = set(db.scalars(select(PostScore.post_id).where(PostScore.label == 1,
                                                                    PostScore.post_id.in_(day_posts))))
    rumor_ids |= set(db.scalars(select(DebunkMatch.post_id).where(DebunkMatch.post_id.in_(day_posts))))
    assert s["rumor_posts"] == sum(s["hourly_rumor"]) == len(rumor_ids) == 5
    assert s["hourly_rumor"][10] == 2

    created = db.execute(select(Alert.severity, func.count()).where(
        Alert.created_at >= start, Alert.created_at < end).group_by(Alert.severity)).all()
    assert {k: v for k, v in s["alerts"]["by_severity"].items() if v} == dict(created)
    assert s["alerts"]["total"] == 4
    confirmed = db.scalar(select(func.count(AlertEvent.alert_id.distinct())).where(
        AlertEvent.to_status == "confirmed_rumor", AlertEvent.at >= start, AlertEvent.at < end))
    assert s["rumors_confirmed"] == confirmed == 1
    assert s["responses"] == db.scalar(select(func.count()).select_from(Response).where(
        Response.published_at >= start, Response.published_at < end)) == 1

    open_now = db.scalar(select(func.count()).select_from(Alert).where(
        Alert.status.in_(("new", "acknowledged", "confirmed_rumor", "confirmed_concern"))))
    assert s["open_count"] == open_now == 3
    a = busy_day.alerts
    overdue = {i["id"] for i in s["open_items"] if i["overdue"]}
    assert overdue == {a["a2"].id, a["a4"].id}  # urgent for ~10 h; low for ~3.6 days
    holders = {i["id"]: i["holder"] for i in s["open_items"]}
    assert holders == {a["a2"].id: "未指派", a["a3"].id: "王芳", a["a4"].id: "李明"}
    assert s["unassigned_count"] == 1

    # top rumors of the day: the urgent one first; not the dismissed one, not the concern,
    # not the old rumor with nothing new today (that one is listed as an open item)
    assert [r["id"] for r in s["top_rumors"]] == [a["a2"].id, a["a1"].id]
    first_rumor = s["top_rumors"][1]
    assert first_rumor["status_zh"] == "已回应" and first_rumor["holder"] == "李明"
    assert first_rumor["response"]["url"] == "https://qinghe.example/notice/13"
    assert first_rumor["debunk"]["publisher"] == "青禾镇人民政府"
    assert first_rumor["posts_today"] == 5 and first_rumor["link"].endswith(f"/alerts/{a['a1'].id}")

    (hot,) = s["concerns"]
    assert hot["label"] == "药店口罩断货" and hot["trend"] == "上升"
    assert hot["keywords"] == ["口罩", "药店", "断货"]  # the words of nlp's [word, count] pairs
    assert (hot["posts_today"], hot["posts_yesterday"]) == (8, 3)
    assert hot["places"] == ["东湾村", "柳树村"] and hot["category"] == "物资供应"
    assert hot["mood"] == "不满" and hot["mood_rising"] is True
    assert hot["alert"]["id"] == a["a3"].id and hot["alert"]["status_zh"] == "确认关切"
    assert hot["alert"]["holder"] == "王芳" and hot["alert"]["responded"] is False

    cats = dict(s["categories"])
    assert cats["物资供应"] == db.scalar(select(func.count()).select_from(Post).where(
        Post.category == "物资供应", Post.published_at >= start, Post.published_at < end))
    assert sum(cats.values()) == web + chat
    assert s["quiet"] is False and s["partial"] is False


def test_headline_and_text_state_the_database_numbers(db: Session, busy_day: BusyDay) -> None:
    s = build_summary(db, DAY, settings=SETTINGS, now=AFTER_DAY)
    h = s["headline"]
    assert "2026年11月20日" in h
    assert "公开帖子 12 条、群消息 30 条，合计 42 条" in h
    assert f"较前一日（{s['volume']['previous_total']} 条）{s['volume']['vs_previous']['long']}" in h
    assert "新增预警 4 条（紧急 1 条、高 2 条、中 1 条）" in h
    assert "确认谣言 1 条" in h and "发布回应 1 次" in h
    assert "仍有 3 项待处理，其中 2 项已超时，1 项尚未指派" in h
    assert "“药店口罩断货”（上升）" in h
    out = render(s, title="青禾镇舆情日报")
    for text in (out.text, out.html):
        assert "公开帖子 12 条" in text and "合计 42 条" in text
        assert "东湾村要封村" in text and "李明" in text and "王芳" in text
        assert "药店口罩断货" in text and "东湾村、柳树村" in text
        assert "关键词：口罩、药店、断货" in text
    assert "待处理事项】（3 项，超时 2 项）" in out.text
    assert out.subject == "青禾镇舆情日报｜11月20日｜预警 4 条，确认谣言 1 条，待处理 3 项，超时 2 项"


def test_partial_day_compares_the_same_hours(db: Session, busy_day: BusyDay) -> None:
    """At 10:30 only the morning counts, compared with the mornings before; later events not yet."""
    now = local(DAY, 10, 30)
    s = build_summary(db, DAY, settings=SETTINGS, now=now)
    start = local(DAY, 0)
    assert s["partial"] is True and s["cutoff_local"] == "10:30"
    assert s["volume"]["total"] == _posts_between(db, start, now)
    assert s["volume"]["previous_total"] == _posts_between(db, start - dt.timedelta(days=1),
                                                           now - dt.timedelta(days=1))
    assert sum(s["hourly"][11:]) == 0
    a = busy_day.alerts
    assert s["alerts"]["total"] == 1 and s["rumors_confirmed"] == 1 and s["responses"] == 0
    rumor = next(r for r in s["top_rumors"] if r["id"] == a["a1"].id)
    assert rumor["status"] == "confirmed_rumor" and rumor["response"] is None  # answered only at 11:00
    assert "截至 10:30" in s["headline"] and "前一日同期" in s["headline"]


def test_status_is_replayed_for_a_past_day(db: Session, busy_day: BusyDay) -> None:
    """The day before, a4 was open (acknowledged) and a6 still open until its closing at 12:00 two days before."""
    a = busy_day.alerts
    three_days_before = DAY - dt.timedelta(days=3)
    s = build_summary(db, three_days_before, settings=SETTINGS, now=AFTER_DAY)
    assert {i["id"]: i["status"] for i in s["open_items"]} == {a["a4"].id: "new"}
    two_before = build_summary(db, DAY - dt.timedelta(days=2), settings=SETTINGS, now=AFTER_DAY)
    assert {i["id"]: i["status"] for i in two_before["open_items"]} == {a["a4"].id: "acknowledged"}


def test_empty_day_gives_the_short_digest(db: Session) -> None:
    s = build_summary(db, dt.date(2026, 6, 1), settings=SETTINGS, now=local(dt.date(2026, 6, 2), 8))
    assert s["quiet"] is True
    assert s["volume"]["total"] == 0 and s["volume"]["change_vs_previous"] is None
    assert "今日无异常" in s["headline"] and "未监测到新的公开帖子和群消息" in s["headline"]
    out = render(s, title="青禾镇舆情日报")
    assert "今日无异常" in out.text and "今日无异常" in out.html and "今日无异常" in out.subject
    assert "【待处理事项】" not in out.text and "今日谣言" not in out.html and "<img" not in out.html
    assert len(out.text.splitlines()) < 12


def test_ordinary_day_without_incidents_is_quiet_but_counts_posts(db: Session) -> None:
    day = dt.date(2026, 6, 3)
    for i in range(3):
        make_post(db, text=f"石桥村今天赶集 {i}", at=local(day, 9 + i), channel="chat")
    make_post(db, text="没有发布时间的帖子", at=local(day, 12), dated=False)
    s = build_summary(db, day, settings=SETTINGS, now=local(day + dt.timedelta(days=1), 8))
    assert s["quiet"] is True and s["volume"]["total"] == 4  # the undated one counts at collection time
    assert "群消息 3 条" in s["headline"] and "今日无异常" in s["headline"]


def test_an_open_alert_makes_a_day_not_quiet(db: Session) -> None:
    day = dt.date(2026, 6, 5)
    alert = make_alert(db, title="柳树村停水", created_at=local(day - dt.timedelta(days=1), 9), severity="medium")
    s = build_summary(db, day, settings=SETTINGS, now=local(day, 20))
    assert s["quiet"] is False and s["open_count"] == 1
    move(db, alert, "closed", at=local(day, 8))
    s = build_summary(db, day, settings=SETTINGS, now=local(day, 20))
    assert s["open_count"] == 0


def test_window_is_the_local_calendar_day() -> None:
    win = make_window(DAY, "Asia/Shanghai", now=local(DAY, 18))
    assert win.start == dt.datetime(2026, 11, 19, 16, tzinfo=dt.UTC)
    assert win.cutoff == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC) and win.partial
    future = make_window(DAY + dt.timedelta(days=3), "Asia/Shanghai", now=local(DAY, 18))
    assert future.cutoff == future.start




def test_window_follows_daylight_saving_days() -> None:
    day = dt.date(2026, 3, 29)  # clocks go forward in Berlin: a 23-hour day
    win = make_window(day, "Europe/Berlin", now=dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    assert win.end - win.start == dt.timedelta(hours=23)
    start, end = win.shifted(1)
    assert end - start == dt.timedelta(hours=23) and start == dt.datetime(2026, 3, 27, 23, tzinfo=dt.UTC)


def test_bad_timezone_is_explained() -> None:
    with pytest.raises(DigestConfigError, match="YUQING_TIMEZONE"):
        make_window(DAY, "Mars/Olympus_Mons")


def test_model_drift_is_a_line_in_the_digest(db: Session, busy_day: BusyDay) -> None:
    from core.tables import AnalysisRun, ModelVersion

    active = db.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
    if active is None:
        active = ModelVersion(name="rumor", version="drift-test", path="-", status="active")
        db.add(active)
    active.reference_distribution = {"bins": [400, 200, 100, 50, 50, 50, 50, 20, 20, 10]}
    db.flush()
    quiet = build_summary(db, DAY, settings=SETTINGS, now=AFTER_DAY)
    assert quiet["model_drift"] is None
    db.add(AnalysisRun(model_version_id=active.id, started_at=local(DAY, 15),
                       score_histogram=[50, 20, 20, 20, 20, 20, 20, 30, 200, 300]))
    db.flush()
    s = build_summary(db, DAY, settings=SETTINGS, now=AFTER_DAY)
    assert s["model_drift"] and "评分分布明显升高" in s["model_drift"]
    out = render(s, title="青禾镇舆情日报")
    assert "模型提示" in out.text and "模型提示" in out.html and "评分分布明显升高" in out.text


@pytest.mark.parametrize(("current", "base", "long", "short"), [
    (42, 2, "增加 40 条", "+40 条"),          # a percentage of a tiny base says nothing
    (1, 9.5, "减少 9 条", "−9 条"),          # posts are whole, even against an average
    (42, 2.3, "增加 40 条", "+40 条"),
    (135, 100, "增加 35%", "+35%"),
    (60, 120, "减少 50%", "−50%"),
    (102, 100, "基本持平", "持平"),
    (5, 0, "无可比数据", "—"),
])
def test_changes_are_worded_for_a_reader(current, base, long, short) -> None:
    assert change_words(current, base) == {"long": long, "short": short}



def test_pending_items_and_top_rumors_count_matters_not_alerts(db: Session) -> None:
    """Six open alerts on two matters are two things to do: alerts raised per story before
    incidents existed (their posts now in one incident), an alert on the incident itself, and one
    on an incident since merged into it, all count once."""
    from tests.factories import make_incident

    day = dt.date(2026, 6, 5)
    at = local(day, 9)
    lockdown = make_incident(db, title="青禾镇要封城？", now=at, first_seen=at, last_seen=at, post_count=5,
                             group_count=3)
    merged_away = make_incident(db, title="青禾镇封城了", now=at, first_seen=at, last_seen=at, status="merged",
                                merged_into_id=lockdown.id)
    water = make_incident(db, title="东湾村自来水有毒？", now=at, first_seen=at, last_seen=at, post_count=2)
    posts = [make_post(db, text=f"听说青禾镇下周封城（{i}）", at=at, rumor=True) for i in range(4)]
    water_posts = [make_post(db, text=f"东湾村自来水有毒（{i}）", at=at, rumor=True) for i in range(2)]
    for p in posts:
        p.incident_id = lockdown.id
    for p in water_posts:
        p.incident_id = water.id
    db.flush()
    for i in range(3):  # per-story alerts of the old unit, evidence in the lockdown incident
        make_alert(db, title=f"封城传言 {i}", created_at=at, posts=[posts[i]])
    on_lockdown = make_alert(db, title="青禾镇要封城？", created_at=at, severity="high")
    on_lockdown.incident_id = lockdown.id
    on_merged = make_alert(db, title="青禾镇封城了", created_at=at)
    on_merged.incident_id = merged_away.id
    on_water = make_alert(db, title="东湾村自来水有毒？", created_at=at)
    on_water.incident_id = water.id
    db.flush()
    assert db.scalar(select(func.count()).select_from(Alert).where(Alert.status == "new")) == 6

    s = build_summary(db, day, settings=SETTINGS, now=local(day, 20))

    assert s["open_count"] == 2 and len(s["open_items"]) == 2
    assert {i["id"]: i["alerts"] for i in s["open_items"]} == {on_lockdown.id: 5, on_water.id: 1}
    assert s["rumor_alert_count"] == 2
    lockdown_item = next(r for r in s["top_rumors"] if r["id"] == on_lockdown.id)
    assert lockdown_item["posts_today"] == 4 and lockdown_item["posts_total"] == 5
    assert "待处理 2 项" in subject_for(s, "舆情日报")
