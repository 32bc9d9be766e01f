"""Gather one day's figures for the digest, and write its headline paragraph.

Everything is read from the shared tables (posts, scores, stories, topics, alerts, their history
and responses), so the digest depends on no other stage's code. A day is a calendar day in the
configured time zone. When the day is not over yet (the 18:00 digest), figures run up to "now"
and the comparisons use the same hours of the earlier days, so a partial day is never compared
with a full one.

The result is a plain, JSON-serialisable dict (stored as ``digests.summary``) so a stored digest
can always be explained and re-rendered.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from alerts import tip_queries
from core.settings import Settings, get_settings
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    Debunk,
    DebunkMatch,
    Incident,
    Post,
    PostImage,
    PostScore,
    Publication,
    PublicationTarget,
    Response,
    Story,
    Topic,
    User,
)
from digest.errors import DigestConfigError

log = logging.getLogger(__name__)

SEVERITIES = ("urgent", "high", "medium", "low")
SEVERITY_ZH = {"urgent": "紧急", "high": "高", "medium": "中", "low": "低"}
STATUS_ZH = {
    "new": "待处理",
    "acknowledged": "已接收",
    "confirmed_rumor": "确认谣言",
    "confirmed_concern": "确认关切",
    "dismissed": "已排除",
    "responded": "已回应",
    "closed": "已关闭",
}
#: Statuses that still need someone to act.
OPEN_STATUSES = ("new", "acknowledged", "confirmed_rumor", "confirmed_concern")
#: Alert kinds that are about a possible rumor (concerns have their own section).
RUMOR_KINDS = ("rumor", "debunk_match")
WEEKDAYS_ZH = "一二三四五六日"
UNCATEGORISED = "未分类"


@dataclass(frozen=True)
class Window:
    """The digest's day in UTC: [start, end) for the calendar day, ``cutoff`` = min(end, now)."""

    day: dt.date
    tz: ZoneInfo
    start: dt.datetime
    end: dt.datetime
    cutoff: dt.datetime

    @property
    def partial(self) -> bool:
        return self.cutoff < self.end

    def shifted(self, days: int) -> tuple[dt.datetime, dt.datetime]:
        """The same hours ``days`` days earlier (local calendar, so DST-safe)."""
        day = self.day - dt.timedelta(days=days)
        start = _local_midnight(day, self.tz)
        return start, start + (self.cutoff - self.start)


def _local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def zone(tz_name: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise DigestConfigError(f"时区 '{tz_name}' 无效：请检查 YUQING_TIMEZONE（例如 Asia/Shanghai）。") from err


def make_window(day: dt.date, tz_name: str, now: dt.datetime | None = None) -> Window:
    tz = zone(tz_name)
    start = _local_midnight(day, tz)
    end = _local_midnight(day + dt.timedelta(days=1), tz)
    now = now or dt.datetime.now(dt.UTC)
    return Window(day=day, tz=tz, start=start, end=end, cutoff=max(start, min(end, now)))


def today(tz_name: str, now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(zone(tz_name)).date()


# --------------------------------------------------------------------------- queries


def _post_time_in(start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
    """A post belongs to the time it was published; undated posts to when we collected them."""
    return or_(
        and_(Post.published_at >= start, Post.published_at < end),
        and_(Post.published_at.is_(None), Post.collected_at >= start, Post.collected_at < end),
    )


def _rumor_post_ids(session: Session, day_posts: Select[Any]) -> set[int]:
    """Which of ``day_posts`` count as rumor posts: the post's latest score says so, it matches a
    known rumor, or it is evidence of an alert confirmed as a rumor.

    Three set-based queries (semi-joins on the day's post ids) rather than one correlated
    subquery per post, which PostgreSQL may run as a nested loop on fresh statistics.
    """
    latest = (
        select(func.max(PostScore.id).label("id"))
        .where(PostScore.post_id.in_(day_posts))
        .group_by(PostScore.post_id)
        .subquery()
    )
    ids = set(session.scalars(
        select(PostScore.post_id).join(latest, PostScore.id == latest.c.id).where(PostScore.label == 1)))
    ids |= set(session.scalars(select(DebunkMatch.post_id).where(DebunkMatch.post_id.in_(day_posts))))
    ids |= set(session.scalars(
        select(AlertPost.post_id).join(Alert, Alert.id == AlertPost.alert_id)
        .where(Alert.status == "confirmed_rumor", AlertPost.post_id.in_(day_posts))))
    return ids


def _count_posts(session: Session, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    rows = session.execute(
        select(Post.channel, func.count()).where(_post_time_in(start, end)).group_by(Post.channel)
    ).all()
    counts = {"web": 0, "chat": 0}
    for channel, n in rows:
        counts["chat" if channel == "chat" else "web"] += n
    return counts


def _change(current: float, base: float) -> float | None:
    """Relative change in percent, or None when the base is zero."""
    if base <= 0:
        return None
    return round((current - base) / base * 100, 1)


# Under this many posts a day, a percentage says more about the small base than about the day
# ("增加 2000%" for 2 -> 42): the digest states the difference in posts instead.
SMALL_BASE = 10


def change_words(current: float, base: float) -> dict[str, str]:
    """How ``current`` compares with ``base``, in Chinese: ``long`` for sentences and tables
    ("增加 35%", "增加 40 条", "基本持平", "无可比数据"), ``short`` for a figure tile."""
    pct = _change(current, base)
    if pct is None:
        return {"long": "无可比数据", "short": "—"}
    if abs(pct) < 5:
        return {"long": "基本持平", "short": "持平"}
    word, sign = ("增加", "+") if current > base else ("减少", "−")
    if base < SMALL_BASE:
        # posts are counted in whole numbers, even when the base is an average ("日均 2.3 条")
        n = str(max(1, int(abs(current - base) + 0.5)))
        return {"long": f"{word} {n} 条", "short": f"{sign}{n} 条"}
    return {"long": f"{word} {abs(pct):g}%", "short": f"{sign}{abs(pct):.0f}%"}


def _status_at(session: Session, alerts: Sequence[Alert], cutoff: dt.datetime) -> dict[int, str]:
    """Each alert's status at ``cutoff``, replayed from its history.

    The last status change at or before the cutoff wins; with only later changes, the status
    before the first of them; with no recorded changes, the alert's current status.
    """
    ids = [a.id for a in alerts]
    before: dict[int, str] = {}
    after: dict[int, str] = {}
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start:chunk_start + 500]
        events = session.execute(
            select(AlertEvent.alert_id, AlertEvent.at, AlertEvent.from_status, AlertEvent.to_status)
            .where(AlertEvent.alert_id.in_(chunk), AlertEvent.to_status.is_not(None))
            .order_by(AlertEvent.at, AlertEvent.id)
        ).all()
        for alert_id, at, from_status, to_status in events:
            if at <= cutoff:
                before[alert_id] = str(to_status)
            elif alert_id not in after and from_status:
                after[alert_id] = from_status
    return {a.id: before.get(a.id) or after.get(a.id) or a.status for a in alerts}


MatterKey = tuple[str, int]


def matter_keys(session: Session, alerts: Sequence[Alert]) -> dict[int, MatterKey]:
    """The matter (一件事) each alert is about: ``("i", incident id)`` (following merges to the
    incident that holds it now), or for an alert raised before incidents existed, the incident
    most of its evidence posts belong to; ``("a", alert id)`` when it has none. Alerts on one
    matter count once in the digest."""
    direct: dict[int, int] = {a.id: a.incident_id for a in alerts if a.incident_id is not None}
    legacy = [a.id for a in alerts if a.incident_id is None]
    for start in range(0, len(legacy), 500):
        votes: dict[int, Counter[int]] = defaultdict(Counter)
        for alert_id, incident_id, n in session.execute(
            select(AlertPost.alert_id, Post.incident_id, func.count())
            .join(Post, Post.id == AlertPost.post_id)
            .where(AlertPost.alert_id.in_(legacy[start:start + 500]), Post.incident_id.is_not(None))
            .group_by(AlertPost.alert_id, Post.incident_id)
        ):
            if incident_id is not None:
                votes[alert_id][incident_id] += n
        direct |= {aid: v.most_common(1)[0][0] for aid, v in votes.items()}
    final = _final_incidents(session, set(direct.values()))
    return {a.id: ("i", final[direct[a.id]]) if a.id in direct else ("a", a.id) for a in alerts}


def _final_incidents(session: Session, ids: set[int]) -> dict[int, int]:
    """Each incident id -> the incident that holds its matter now (merged ones follow merged_into)."""
    into: dict[int, int | None] = {}
    todo = set(ids)
    for _ in range(20):  # merge chains are short; a cycle stops here
        if not todo:
            break
        for iid, status, target in session.execute(
            select(Incident.id, Incident.status, Incident.merged_into_id).where(Incident.id.in_(list(todo)))
        ):
            into[iid] = target if status == "merged" else None
        into |= {i: None for i in todo if i not in into}  # a deleted incident holds itself
        todo = {t for t in into.values() if t is not None and t not in into}
    out = {}
    for iid in ids:
        current, seen = iid, {iid}
        while into.get(current) is not None and into[current] not in seen:
            current = into[current]  # type: ignore[assignment]
            seen.add(current)
        out[iid] = current
    return out


def matter_pictures(session: Session, keys: dict[int, MatterKey]) -> dict[int, int]:
    """alert id -> the picture shown by most posts of its matter (an incident's posts, or the
    alert's evidence when it has no incident), for the digest's thumbnail; none without pictures."""
    counts: dict[int, Counter[int]] = defaultdict(Counter)
    by_incident: dict[int, list[int]] = defaultdict(list)
    for alert_id, (kind, ref) in keys.items():
        if kind == "i":
            by_incident[ref].append(alert_id)
    ids = sorted(by_incident)
    for start in range(0, len(ids), 500):
        for incident_id, image_id, n in session.execute(
            select(Post.incident_id, PostImage.image_id, func.count(func.distinct(Post.id)))
            .join(PostImage, PostImage.post_id == Post.id)
            .where(Post.incident_id.in_(ids[start:start + 500]), PostImage.image_id.is_not(None))
            .group_by(Post.incident_id, PostImage.image_id)
        ):
            for alert_id in by_incident[incident_id or -1]:
                counts[alert_id][image_id or -1] += n
    alone = sorted(a for a, (kind, _ref) in keys.items() if kind == "a")
    for start in range(0, len(alone), 500):
        for alert_id, image_id, n in session.execute(
            select(AlertPost.alert_id, PostImage.image_id, func.count(func.distinct(AlertPost.post_id)))
            .join(PostImage, PostImage.post_id == AlertPost.post_id)
            .where(AlertPost.alert_id.in_(alone[start:start + 500]), PostImage.image_id.is_not(None))
            .group_by(AlertPost.alert_id, PostImage.image_id)
        ):
            counts[alert_id][image_id or -1] += n
    return {a: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for a, c in counts.items() if c}


def one_per_matter(alerts: Sequence[Alert], keys: dict[int, MatterKey]) -> list[tuple[Alert, int]]:
    """One alert per matter (the most severe, then the oldest) with how many alerts the matter has."""
    groups: dict[MatterKey, list[Alert]] = defaultdict(list)
    for a in alerts:
        groups[keys[a.id]].append(a)
    return [(min(g, key=lambda a: (-a.severity_rank, a.created_at, a.id)), len(g)) for g in groups.values()]


def _holders(session: Session, user_ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {u for u in user_ids if u is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.display_name, User.username).where(User.id.in_(wanted))).all()
    return {uid: display or username for uid, display, username in rows}


def _place_name(place: Any) -> str:
    if isinstance(place, dict):
        return str(place.get("name") or place.get("place") or place.get("canonical") or "")
    return str(place)


def _clip(text: str | None, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mood(negativity: float | None) -> str:
    if negativity is None:
        return "未知"
    if negativity >= 0.6:
        return "不满"
    if negativity >= 0.3:
        return "担忧"
    return "平稳"


def _trend(today_n: int, yesterday_n: int) -> str:
    if yesterday_n == 0:
        return "新出现" if today_n else "无变化"
    ratio = today_n / yesterday_n
    if ratio >= 1.2:
        return "上升"
    if ratio <= 0.8:
        return "回落"
    return "持平"


def alert_link(settings: Settings, alert_id: int) -> str:
    return f"{settings.base_url.rstrip('/')}/alerts/{alert_id}"


# --------------------------------------------------------------------------- the figures


def build_summary(
    session: Session,
    day: dt.date,
    *,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Every figure the digest shows for ``day`` (local calendar day), as a JSON-ready dict."""
    settings = settings or get_settings()
    win = make_window(day, settings.timezone, now)
    top_n = settings.digest_top_n

    # ---- volume, per hour, per category
    rows = session.execute(
        select(Post.id, Post.channel, Post.published_at, Post.collected_at, Post.category,
               Post.story_id, Post.topic_id, Post.negativity, Post.incident_id)
        .where(_post_time_in(win.start, win.cutoff))
    ).all()
    rumor_ids = _rumor_post_ids(session, select(Post.id).where(_post_time_in(win.start, win.cutoff)))
    hourly = [0] * 24
    hourly_rumor = [0] * 24
    categories: Counter[str] = Counter()
    story_today: Counter[int] = Counter()
    incident_today: Counter[int] = Counter()
    topic_today: Counter[int] = Counter()
    topic_neg_today: dict[int, list[float]] = defaultdict(list)
    volume = {"web": 0, "chat": 0}
    rumor_posts = 0
    for row in rows:
        hour = (row.published_at or row.collected_at).astimezone(win.tz).hour
        hourly[hour] += 1
        volume["chat" if row.channel == "chat" else "web"] += 1
        if row.id in rumor_ids:
            hourly_rumor[hour] += 1
            rumor_posts += 1
        categories[row.category or UNCATEGORISED] += 1
        if row.story_id is not None:
            story_today[row.story_id] += 1
        if row.incident_id is not None:
            incident_today[row.incident_id] += 1
        if row.topic_id is not None:
            topic_today[row.topic_id] += 1
            if row.negativity is not None:
                topic_neg_today[row.topic_id].append(row.negativity)
    total = volume["web"] + volume["chat"]
    previous = _count_posts(session, *win.shifted(1))
    previous_total = previous["web"] + previous["chat"]
    week_totals = [sum(_count_posts(session, *win.shifted(k)).values()) for k in range(1, 8)]
    week_avg = round(sum(week_totals) / 7, 1)

    # ---- alerts raised, rumors confirmed, responses made (all within the day)
    alerts_today = session.execute(
        select(Alert.severity, func.count())
        .where(Alert.created_at >= win.start, Alert.created_at < win.cutoff)
        .group_by(Alert.severity)
    ).all()
    by_severity = dict.fromkeys(SEVERITIES, 0)
    for severity, n in alerts_today:
        by_severity[severity if severity in by_severity else "low"] += n
    in_day = (AlertEvent.at >= win.start) & (AlertEvent.at < win.cutoff)
    confirmed_ids = set(session.scalars(
        select(AlertEvent.alert_id).where(AlertEvent.to_status == "confirmed_rumor", in_day)))
    concern_ids = set(session.scalars(
        select(AlertEvent.alert_id).where(AlertEvent.to_status == "confirmed_concern", in_day)))
    responses_today = session.scalars(
        select(Response).where(Response.published_at >= win.start, Response.published_at < win.cutoff)
        .order_by(Response.published_at)
    ).all()

    # ---- alerts open at the cutoff (current status open, or changed since: replay history)
    changed_since = select(AlertEvent.alert_id).where(AlertEvent.at > win.cutoff,
                                                      AlertEvent.to_status.is_not(None))
    candidates = session.scalars(
        select(Alert).where(
            Alert.created_at < win.cutoff,
            or_(Alert.status.in_(OPEN_STATUSES), Alert.id.in_(changed_since)),
        )
    ).all()
    status_at = _status_at(session, candidates, win.cutoff)
    # one pending item per matter: six alerts on two matters are two things to do
    open_keys = matter_keys(session, [a for a in candidates if status_at[a.id] in OPEN_STATUSES])
    open_groups = one_per_matter([a for a in candidates if a.id in open_keys], open_keys)
    open_alerts = [a for a, _n in open_groups]
    alerts_per_item = {a.id: n for a, n in open_groups}

    # ---- rumor alerts active today
    active_ids = set(session.scalars(
        select(AlertEvent.alert_id).where(AlertEvent.at >= win.start, AlertEvent.at < win.cutoff)))
    active_ids |= {r.alert_id for r in responses_today}
    ever_confirmed = select(AlertEvent.alert_id).where(
        AlertEvent.to_status == "confirmed_rumor", AlertEvent.at < win.cutoff)
    rumor_alerts = session.scalars(
        select(Alert).outerjoin(Story, Story.id == Alert.story_id)
        .outerjoin(Incident, Incident.id == Alert.incident_id).where(
            Alert.created_at < win.cutoff,
            or_(Alert.kind.in_(RUMOR_KINDS), Alert.status == "confirmed_rumor", Alert.id.in_(ever_confirmed)),
            or_(
                Alert.created_at >= win.start,
                Alert.id.in_(active_ids) if active_ids else false(),
                and_(Story.last_seen >= win.start, Story.first_seen < win.cutoff),
                and_(Incident.last_seen >= win.start, Incident.first_seen < win.cutoff),
            ),
        )
    ).all()
    rumor_status = _status_at(session, rumor_alerts, win.cutoff)
    rumor_alerts = [a for a in rumor_alerts if rumor_status[a.id] not in ("dismissed", "confirmed_concern")]
    # one top rumor per matter (its alerts' stories were copies and rewordings of one claim)
    rumor_keys = matter_keys(session, rumor_alerts)
    rumor_alerts = [a for a, _n in one_per_matter(rumor_alerts, rumor_keys)]
    incidents = {i.id: i for i in session.scalars(select(Incident).where(
        Incident.id.in_([k[1] for k in rumor_keys.values() if k[0] == "i"])))}

    def _today(alert: Alert) -> int:
        key = rumor_keys[alert.id]
        if key[0] == "i":
            return incident_today.get(key[1], 0)
        return story_today.get(alert.story_id or -1, 0)

    rumor_alerts.sort(key=lambda a: (-a.severity_rank, -_today(a), -a.risk_score, a.id))

    holders = _holders(session, [a.assignee_id for a in open_alerts] + [a.assignee_id for a in rumor_alerts])
    limits = settings.digest_overdue_hours

    def _open_item(alert: Alert) -> dict[str, Any]:
        age_h = (win.cutoff - alert.created_at).total_seconds() / 3600
        limit = limits.get(alert.severity, limits.get("low", 72.0))
        return {
            "id": alert.id,
            "title": _clip(alert.title, 60),
            "severity": alert.severity,
            "severity_zh": SEVERITY_ZH.get(alert.severity, alert.severity),
            "status": status_at[alert.id],
            "status_zh": STATUS_ZH.get(status_at[alert.id], status_at[alert.id]),
            "holder": holders.get(alert.assignee_id or -1, "未指派"),
            "assigned": alert.assignee_id is not None,
            "age_hours": round(age_h, 2),
            "overdue": age_h > limit,
            "overdue_hours": round(max(0.0, age_h - limit), 1),
            "link": alert_link(settings, alert.id),
            "alerts": alerts_per_item.get(alert.id, 1),
        }

    open_items = sorted((_open_item(a) for a in open_alerts),
                        key=lambda i: (not i["overdue"], SEVERITIES.index(i["severity"])
                                       if i["severity"] in SEVERITIES else 9, -i["age_hours"]))
    overdue_items = [i for i in open_items if i["overdue"]]

    # ---- the top rumors, with their debunk and latest response
    top_rumors = []
    shown = rumor_alerts[:top_n]
    stories = {s.id: s for s in session.scalars(
        select(Story).where(Story.id.in_([a.story_id for a in shown if a.story_id is not None])))}
    debunk_ids = [s.debunk_id for s in stories.values() if s.debunk_id]
    debunk_ids += [i.debunk_id for i in incidents.values() if i.debunk_id]
    debunks = {d.id: d for d in session.scalars(select(Debunk).where(Debunk.id.in_(debunk_ids)))}
    latest_response: dict[int, Response] = {}
    for resp in session.scalars(
        select(Response)
        .where(Response.alert_id.in_([a.id for a in shown]), Response.published_at < win.cutoff)
        .order_by(Response.published_at, Response.id)
    ):
        latest_response[resp.alert_id] = resp
    pictures = matter_pictures(session, {a.id: rumor_keys[a.id] for a in shown})
    matter_tips = tip_queries.tips_of_incidents(
        session, [rumor_keys[a.id][1] for a in shown if rumor_keys[a.id][0] == "i"], win.cutoff)
    for alert in shown:
        story = stories.get(alert.story_id or -1)
        key = rumor_keys[alert.id]
        matter = incidents.get(key[1]) if key[0] == "i" else None
        debunk_id = (matter.debunk_id if matter else None) or (story.debunk_id if story else None)
        debunk = debunks.get(debunk_id) if debunk_id else None
        total_posts = matter.post_count if matter else (story.post_count if story else None)
        reached = (matter.group_count + matter.source_count) if matter else (story.group_count if story else None)
        answer = latest_response.get(alert.id)
        top_rumors.append({
            "id": alert.id,
            "title": _clip(alert.title, 80),
            "summary": _clip(alert.summary, 160),
            "severity": alert.severity,
            "severity_zh": SEVERITY_ZH.get(alert.severity, alert.severity),
            "status": rumor_status[alert.id],
            "status_zh": STATUS_ZH.get(rumor_status[alert.id], rumor_status[alert.id]),
            "holder": holders.get(alert.assignee_id or -1, "未指派"),
            "posts_today": _today(alert),
            "posts_total": total_posts,
            "groups": reached,
            "debunk": ({"claim": _clip(debunk.claim, 80), "publisher": debunk.publisher, "url": debunk.url}
                       if debunk else None),
            "response": ({"text": _clip(answer.text, 120), "channels": [str(c) for c in answer.channels],
                          "url": answer.url,
                          "at": answer.published_at.astimezone(win.tz).strftime("%m-%d %H:%M"),
                          "effect": response_effect(answer)}
                         if answer else None),
            "link": alert_link(settings, alert.id),
            "picture": pictures.get(alert.id),  # image id: a thumbnail in the mail (digest.service)
            "tips": (tip_queries.tips_phrase(matter_tips[key[1]])
                     if key[0] == "i" and key[1] in matter_tips else None),  # residents who asked the office
        })

    # ---- hot concerns
    hot_topics = session.scalars(
        select(Topic)
        .where(Topic.is_hot.is_(True), Topic.last_seen >= win.start, Topic.first_seen < win.cutoff)
    ).all()
    topic_yesterday: Counter[int] = Counter()
    topic_neg_yesterday: dict[int, list[float]] = defaultdict(list)
    if hot_topics:
        y_start, y_end = win.shifted(1)
        for topic_id, negativity in session.execute(
            select(Post.topic_id, Post.negativity)
            .where(Post.topic_id.in_([t.id for t in hot_topics]), _post_time_in(y_start, y_end))
        ):
            if topic_id is None:
                continue
            topic_yesterday[topic_id] += 1
            if negativity is not None:
                topic_neg_yesterday[topic_id].append(negativity)
    hot_topics = sorted(hot_topics, key=lambda t: (-(t.burst_score or 0.0), -topic_today[t.id], t.id))
    shown_topics = hot_topics[:top_n]
    # the office's handling of each concern: its latest alert (status at the cutoff) and any response
    topic_alerts: dict[int, Alert] = {}
    for alert in session.scalars(
        select(Alert).where(Alert.topic_id.in_([t.id for t in shown_topics]), Alert.created_at < win.cutoff)
        .order_by(Alert.created_at, Alert.id)
    ):
        topic_alerts[alert.topic_id] = alert  # type: ignore[index]
    for topic_id, alert in _matter_alerts_of_topics(
            session, [t.id for t in shown_topics if t.id not in topic_alerts], win.cutoff).items():
        topic_alerts[topic_id] = alert
    topic_status = _status_at(session, list(topic_alerts.values()), win.cutoff)
    answered = set(session.scalars(
        select(Response.alert_id).where(Response.alert_id.in_([a.id for a in topic_alerts.values()]),
                                        Response.published_at < win.cutoff)))
    topic_holders = _holders(session, [a.assignee_id for a in topic_alerts.values()])
    concerns = []
    for topic in shown_topics:
        handling = topic_alerts.get(topic.id)
        neg_today = topic_neg_today.get(topic.id)
        neg_before = topic_neg_yesterday.get(topic.id)
        negativity = round(sum(neg_today) / len(neg_today), 2) if neg_today else topic.negativity
        mood_rising = bool(neg_today and neg_before
                           and sum(neg_today) / len(neg_today) - sum(neg_before) / len(neg_before) >= 0.15)
        concerns.append({
            "id": topic.id,
            "label": _clip(topic.label, 40),
            "keywords": topic.keyword_words(5),
            "category": topic.category or UNCATEGORISED,
            "places": [p for p in (_place_name(p) for p in topic.places) if p][:5],
            "posts_today": topic_today[topic.id],
            "posts_yesterday": topic_yesterday[topic.id],
            "trend": _trend(topic_today[topic.id], topic_yesterday[topic.id]),
            "negativity": negativity,
            "mood": _mood(negativity),
            "mood_rising": mood_rising,
            "alert": ({"id": handling.id, "status": topic_status[handling.id],
                       "status_zh": STATUS_ZH.get(topic_status[handling.id], topic_status[handling.id]),
                       "holder": topic_holders.get(handling.assignee_id or -1, "未指派"),
                       "responded": handling.id in answered, "link": alert_link(settings, handling.id)}
                      if handling else None),
        })

    summary: dict[str, Any] = {
        "day": win.day.isoformat(),
        "day_zh": f"{win.day.year}年{win.day.month}月{win.day.day}日",
        "weekday_zh": "星期" + WEEKDAYS_ZH[win.day.weekday()],
        "timezone": settings.timezone,
        "partial": win.partial,
        "cutoff_local": win.cutoff.astimezone(win.tz).strftime("%H:%M") if win.partial else "24:00",
        "generated_at": (now or dt.datetime.now(dt.UTC)).astimezone(win.tz).strftime("%Y-%m-%d %H:%M"),
        "volume": {
            "web": volume["web"], "chat": volume["chat"], "total": total,
            "previous_total": previous_total, "week_avg": week_avg,
            "change_vs_previous": _change(total, previous_total),
            "change_vs_week": _change(total, week_avg),
            "vs_previous": change_words(total, previous_total),
            "vs_week": change_words(total, week_avg),
        },
        "rumor_posts": rumor_posts,
        "hourly": hourly,
        "hourly_rumor": hourly_rumor,
        "categories": sorted(([name, n] for name, n in categories.items()), key=lambda c: (-c[1], c[0])),
        "alerts": {"total": sum(by_severity.values()), "by_severity": by_severity},
        "rumors_confirmed": len(confirmed_ids),
        "concerns_confirmed": len(concern_ids),
        "responses": len(responses_today),
        "publications": _publications_sent(session, win),
        "open_count": len(open_items),
        "overdue_count": len(overdue_items),
        "unassigned_count": sum(1 for i in open_items if not i["assigned"]),
        "open_items": open_items[: max(top_n * 2, 10)],
        "rumor_alert_count": len(rumor_alerts),
        "top_rumors": top_rumors,
        "hot_count": len(hot_topics),
        "concerns": concerns,
    }
    summary["quiet"] = not (
        summary["alerts"]["total"] or summary["rumors_confirmed"] or summary["concerns_confirmed"]
        or summary["responses"] or open_items or hot_topics or rumor_posts or rumor_alerts
    )
    summary["headline"] = headline(summary)
    summary["model_drift"] = _model_drift(session, win)
    summary["prevalence_note"] = _prevalence_note(session, win)
    summary["tips_note"] = tip_queries.tips_sentence(session, win.start, win.cutoff)
    return summary


def _matter_alerts_of_topics(session: Session, topic_ids: list[int], cutoff: dt.datetime) -> dict[int, Alert]:
    """A hot concern without an alert of its own is handled through the matter most of its posts
    belong to (the alert stage raises none for a topic whose matters are alerted already): topic id
    -> the latest alert, before ``cutoff``, of the incident holding most of the topic's posts."""
    if not topic_ids:
        return {}
    best: dict[int, tuple[int, int]] = {}  # topic -> (posts, incident); ties: the older incident
    rows = session.execute(
        select(Post.topic_id, Post.incident_id, func.count())
        .where(Post.topic_id.in_(topic_ids), Post.incident_id.is_not(None))
        .group_by(Post.topic_id, Post.incident_id)
        .order_by(Post.incident_id)
    )
    for topic_id, incident_id, n in rows:
        if topic_id is not None and incident_id is not None and n > best.get(topic_id, (0, 0))[0]:
            best[topic_id] = (int(n), incident_id)
    latest: dict[int, Alert] = {}
    for alert in session.scalars(
        select(Alert).where(Alert.incident_id.in_({i for _, i in best.values()}), Alert.created_at < cutoff)
        .order_by(Alert.created_at, Alert.id)
    ):
        latest[alert.incident_id] = alert  # type: ignore[index]
    return {t: latest[i] for t, (_, i) in best.items() if i in latest}


def response_effect(response: Response) -> str | None:
    """The spread before and after a response, in words: posts per hour of its matter."""
    before, after = response.spread_before or {}, response.spread_after or {}
    if before.get("per_hour") is None or after.get("per_hour") is None:
        return None
    words = f"发布前每小时 {before['per_hour']:g} 条，发布后 {after['per_hour']:g} 条"
    if after.get("change") is not None:
        words += f"（{after['change'] * 100:+.0f}%）"
    return words + ("" if after.get("complete") else "，仍在观察")


def _publications_sent(session: Session, win: Window) -> dict[str, int]:
    """Approved publications of the day and the chat groups the bot posted them to."""
    ids = list(session.scalars(select(Publication.id).where(
        Publication.status == "approved", Publication.decided_at >= win.start, Publication.decided_at < win.cutoff)))
    sent = session.scalar(select(func.count()).select_from(PublicationTarget).where(
        PublicationTarget.publication_id.in_(ids), PublicationTarget.status == "sent")) if ids else 0
    return {"count": len(ids), "groups_sent": int(sent or 0)}


def _prevalence_note(session: Session, win: Window) -> str | None:
    """A note when the estimated rumor share of a channel moved during the day (nlp.prevalence_store)."""
    from nlp.prevalence_store import move_note

    return move_note(session, now=win.cutoff)


def _model_drift(session: Session, win: Window) -> str | None:
    """The drift warning of the rumor model for the day, or None when the scores look normal."""
    from nlp.drift import drift_status

    status = drift_status(session, now=win.cutoff)
    return status.message if status.drifting else None


# --------------------------------------------------------------------------- the headline


def _change_phrase(words: dict[str, str], what: str, base: float) -> str:
    """"较前一日（2 条）增加 40 条", "与近 7 日日均（30 条）基本持平", "前一日无可比数据"."""
    if words["long"] == "无可比数据":
        return f"{what}无可比数据"
    if words["long"] == "基本持平":
        return f"与{what}（{base:g} 条）基本持平"
    return f"较{what}（{base:g} 条）{words['long']}"


def headline(s: dict[str, Any]) -> str:
    """One paragraph of Chinese that states the day's figures (every number comes from ``s``)."""
    v = s["volume"]
    until = f"截至 {s['cutoff_local']}，" if s["partial"] else ""
    day = s["day_zh"]
    if s["quiet"]:
        if v["total"]:
            seen = f"共监测到公开帖子 {v['web']} 条、群消息 {v['chat']} 条"
        else:
            seen = "未监测到新的公开帖子和群消息"
        return f"{day}{until}今日无异常：{seen}，未发现谣言和热点关切，无新增预警，无待处理事项。"
    parts = [
        f"{day}{until}共监测到公开帖子 {v['web']} 条、群消息 {v['chat']} 条，合计 {v['total']} 条，"
        f"{_change_phrase(v['vs_previous'], '前一日同期' if s['partial'] else '前一日', v['previous_total'])}，"
        f"{_change_phrase(v['vs_week'], '近 7 日日均', v['week_avg'])}"
    ]
    if s["rumor_posts"]:
        parts[-1] += f"，其中疑似谣言 {s['rumor_posts']} 条"
    parts[-1] += "。"
    a = s["alerts"]
    if a["total"]:
        sev = "、".join(f"{SEVERITY_ZH[k]} {n} 条" for k, n in a["by_severity"].items() if n)
        parts.append(f"新增预警 {a['total']} 条（{sev}）")
    else:
        parts.append("无新增预警")
    parts[-1] += f"，确认谣言 {s['rumors_confirmed']} 条"
    if s["concerns_confirmed"]:
        parts[-1] += f"、确认群众关切 {s['concerns_confirmed']} 项"
    parts[-1] += f"，发布回应 {s['responses']} 次。"
    if s["open_count"]:
        tail = f"，其中 {s['overdue_count']} 项已超时" if s["overdue_count"] else ""
        unassigned = f"，{s['unassigned_count']} 项尚未指派" if s["unassigned_count"] else ""
        parts.append(f"目前仍有 {s['open_count']} 项待处理{tail}{unassigned}。")
    else:
        parts.append("所有事项均已处理。")
    if s["concerns"]:
        names = "、".join(f"“{c['label']}”（{c['trend']}）" for c in s["concerns"][:3])
        more = f"等 {s['hot_count']} 个" if s["hot_count"] > 3 else ""
        rising = [c["label"] for c in s["concerns"] if c["mood_rising"]]
        mood = f"；其中“{rising[0]}”相关情绪明显转负，需关注" if rising else ""
        parts.append(f"热点关切：{names}{more}{mood}。")
    return "".join(parts)
