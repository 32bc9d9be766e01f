"""Read-only queries behind the console pages (plain rows, no ORM identity map churn).

Writes never happen here: actions call the owning stage's service functions.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from alerts import common, drafts, matters, states, subjects
from alerts.delivery_health import DeliveryHealth, delivery_health
from api.console.pictures import pictures_of
from core import search
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    ChatGroup,
    Debunk,
    DebunkMatch,
    Digest,
    Incident,
    Label,
    ModelVersion,
    Post,
    PostScore,
    Response,
    Source,
    SourceRun,
    Story,
    Topic,
    User,
    utcnow,
)
from nlp.drift import DriftStatus, drift_status
from nlp.labels import text_key

OPEN_STATUSES = ("new", "acknowledged", "confirmed_rumor", "confirmed_concern")
PAGE_SIZE = 50
RISING_WINDOW = dt.timedelta(hours=2)


def like_pattern(q: str) -> str:
    """A LIKE pattern for a user's search words, with LIKE's own wildcards taken literally."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --------------------------------------------------------------------------- the queue


@dataclass
class QueueFilter:
    status: str = "open"  # open | all | one of the statuses
    severity: str | None = None
    category: str | None = None
    assignee: str | None = None  # a user id, or "none" for unassigned
    mine: bool = False
    q: str | None = None
    sort: str = "severity"  # severity | recent
    page: int = 1

    def active(self) -> bool:
        return bool(self.severity or self.category or self.assignee or self.mine or self.q
                    or self.status != "open")


@dataclass
class QueuePage:
    rows: list[dict[str, Any]]
    total: int
    counts: dict[str, int]
    page: int
    pages: int
    newest_id: int
    rendered_at: dt.datetime = field(default_factory=utcnow)


def _text_match(column: Any, q: str, dialect: str) -> Any:
    if re.search(r"[A-Za-z]", q):
        return column.ilike(like_pattern(q), escape="\\")  # Latin letters (QQ, app): ignore case
    # Plain substring search: 2-5x faster than (I)LIKE over Chinese text on both databases.
    return (func.instr(column, q) if dialect == "sqlite" else func.strpos(column, q)) > 0


def _filtered(stmt: Select[Any], f: QueueFilter, user_id: int | None, *, with_status: bool,
              dialect: str = "") -> Select[Any]:
    if with_status:
        if f.status == "open":
            stmt = stmt.where(Alert.status.in_(OPEN_STATUSES))
        elif f.status != "all":
            stmt = stmt.where(Alert.status == f.status)
    if f.severity:
        stmt = stmt.where(Alert.severity == f.severity)
    if f.category:
        stmt = stmt.where(Alert.category == f.category)
    if f.mine and user_id is not None:
        stmt = stmt.where(Alert.assignee_id == user_id)
    elif f.assignee == "none":
        stmt = stmt.where(Alert.assignee_id.is_(None))
    elif f.assignee and f.assignee.isdigit():
        stmt = stmt.where(Alert.assignee_id == int(f.assignee))
    if f.q:
        q = f.q.strip()
        found = [_text_match(Alert.title, q, dialect), _text_match(Alert.summary, q, dialect)]
        words = search.matches("alerts", Alert.id, q, dialect)  # every word, wherever it stands
        stmt = stmt.where(or_(*found, *([words] if words is not None else [])))
    return stmt


def _narrowed(f: QueueFilter) -> bool:
    """Filters beyond status: no index serves them, so SQLite should read the table in order."""
    return bool(f.severity or f.category or f.mine or f.assignee or f.q)


def queue(session: Session, f: QueueFilter, user_id: int | None, page_size: int = PAGE_SIZE) -> QueuePage:
    """One page of the alert queue: most severe first, then the most recently active.

    On SQLite the plan is chosen from the counts (which are needed anyway): when few rows match a
    filter, walking the (severity, updated) index would visit nearly every row in random order
    (0.5 s at 100k alerts), so the table is read straight through and the 50 best kept instead.
    """
    dialect = session.get_bind().dialect.name
    sqlite = dialect == "sqlite"
    # SQLite would group along the status index and fetch every row it names in random order;
    # grouping by an expression (status || '') makes it read the table straight through.
    counts: dict[str, int]
    if _narrowed(f):
        group_key: Any = Alert.status.concat("") if sqlite else Alert.status
        counts_stmt: Select[Any] = select(group_key, func.count()).group_by(group_key)
        counts_stmt = _filtered(counts_stmt, f, user_id, with_status=False, dialect=dialect)
        counts = {str(status): int(n) for status, n in session.execute(counts_stmt)}
    else:
        counts = status_counts(session)
    counts["open"] = sum(counts.get(s, 0) for s in OPEN_STATUSES)
    counts["all"] = sum(n for s, n in counts.items() if s != "open")
    total = counts.get(f.status, 0)
    pages = max(1, -(-total // page_size))
    page = min(max(f.page, 1), pages)
    newest = session.scalar(select(func.max(Alert.id))) or 0

    rank: Any = Alert.severity_rank
    # newest ~ table size: under 5% of rows matching, the ordered index walk is the slow plan;
    # ordering by an expression (rank + 0) makes SQLite scan and keep the best 50 instead.
    if sqlite and f.sort != "recent" and total * 20 < newest:
        rank = Alert.severity_rank + 0
    order = ([Alert.id.desc()] if f.sort == "recent" else [rank.desc(), Alert.updated_at.desc(), Alert.id.desc()])
    ids: list[int] = []
    if total:
        ids_stmt = _filtered(select(Alert.id), f, user_id, with_status=True, dialect=dialect).order_by(*order)
        ids = list(session.scalars(ids_stmt.offset((page - 1) * page_size).limit(page_size)))
    rows: list[Any] = []
    if ids:
        stmt = (
            select(Alert.id, Alert.title, Alert.summary, Alert.kind, Alert.severity, Alert.status,
                   Alert.category, Alert.risk_score, Alert.created_at, Alert.updated_at,
                   Alert.escalation_level, Alert.assignee_id, Alert.post_count, Alert.group_count,
                   User.display_name, User.username)
            .outerjoin(User, User.id == Alert.assignee_id)
            .where(Alert.id.in_(ids))
        )
        by_id = {r.id: r._asdict() for r in session.execute(stmt)}
        since = utcnow() - RISING_WINDOW
        rising = set(session.scalars(
            select(AlertEvent.alert_id).where(AlertEvent.alert_id.in_(ids), AlertEvent.action == "rising",
                                              AlertEvent.at >= since).distinct()))
        for alert_id in ids:
            row = by_id[alert_id]
            row["rising"] = alert_id in rising
            row["assignee"] = row["display_name"] or row["username"]
            rows.append(SimpleNamespace(**row))  # attribute access: Jinja looks attributes up first
    return QueuePage(rows=rows, total=total, counts=counts, page=page, pages=pages, newest_id=newest)


#: Finished alerts are most of the table and change slowly; their counts may be a little old.
ARCHIVE_STATUSES = ("dismissed", "closed")
LIVE_STATUSES = tuple(s for s in states.STATES if s not in ARCHIVE_STATUSES)
ARCHIVE_COUNT_TTL = 30.0


def status_counts(session: Session) -> dict[str, int]:
    """Alerts per status: exact for the live states (an index range), cached for the archive.

    Counting every alert on each page view costs ~60 ms at 100k alerts on PostgreSQL; the live
    states are a small slice of the index, and the dismissed/closed totals only label two tabs.
    """
    live = dict(session.execute(select(Alert.status, func.count())
                                .where(Alert.status.in_(LIVE_STATUSES)).group_by(Alert.status)).all())
    archive = _cached(session, "archive_counts", ARCHIVE_COUNT_TTL, lambda: dict(session.execute(
        select(Alert.status, func.count()).where(Alert.status.in_(ARCHIVE_STATUSES)).group_by(Alert.status)).all()))
    return {str(k): int(v) for k, v in {**live, **archive}.items()}


def forget_counts() -> None:
    """After a change made here, the next page shows exact archive counts."""
    for key in [k for k in _CACHE if k[1] == "archive_counts"]:
        _CACHE.pop(key, None)


def queue_news(session: Session, f: QueueFilter, user_id: int | None, after_id: int,
               since: dt.datetime) -> dict[str, int]:
    """For the "N 条新预警" notice: alerts created after ``after_id`` and others that grew since ``since``."""
    dialect = session.get_bind().dialect.name
    new = session.scalar(_filtered(select(func.count()).select_from(Alert), f, user_id, with_status=True,
                                   dialect=dialect).where(Alert.id > after_id)) or 0
    grown = session.scalar(
        _filtered(select(func.count(func.distinct(AlertEvent.alert_id))).select_from(AlertEvent)
                  .join(Alert, AlertEvent.alert_id == Alert.id), f, user_id, with_status=True, dialect=dialect)
        .where(AlertEvent.action == "rising", AlertEvent.at > since, Alert.id <= after_id)) or 0
    return {"new": int(new), "rising": int(grown)}


_CACHE: dict[tuple[str, str], tuple[float, Any]] = {}


def _cached(session: Session, key: str, ttl: float, compute: Any) -> Any:
    bind = session.get_bind()
    bind_key = (str(getattr(bind, "url", id(bind))), key)
    hit = _CACHE.get(bind_key)
    now = time.monotonic()
    if hit and now - hit[0] < ttl:
        return hit[1]
    value = compute()
    _CACHE[bind_key] = (now, value)
    return value


def alert_categories(session: Session) -> list[str]:
    """Categories that occur on alerts (cached for a minute: it scans the table)."""
    return _cached(session, "alert_categories", 60.0, lambda: sorted(
        c for c in session.scalars(select(Alert.category).where(Alert.category.is_not(None)).distinct()) if c))


def staff_users(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(User.id, User.username, User.display_name, User.role)
        .where(User.is_active.is_(True), User.role != "viewer").order_by(User.username))
    return [{"id": r.id, "name": r.display_name or r.username, "role": r.role} for r in rows]


def user_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(User.id, func.coalesce(User.display_name, User.username))).all())


# --------------------------------------------------------------------------- one alert


def _evidence_filter(alert: Alert) -> Any:
    in_alert = Post.id.in_(select(AlertPost.post_id).where(AlertPost.alert_id == alert.id))
    return or_(in_alert, Post.story_id == alert.story_id) if alert.story_id else in_alert


EVIDENCE_LIMIT = 200


def alert_detail(session: Session, alert_id: int) -> dict[str, Any] | None:
    alert = session.get(Alert, alert_id)
    if alert is None:
        return None
    story = session.get(Story, alert.story_id) if alert.story_id else None
    topic = session.get(Topic, alert.topic_id) if alert.topic_id else None
    assignee = session.get(User, alert.assignee_id) if alert.assignee_id else None
    evidence_where = _evidence_filter(alert)

    post_cols = (Post.id, Post.title, Post.raw_text, Post.url, Post.author, Post.published_at,
                 Post.collected_at, Post.channel, Post.is_forward, Post.places, Post.norm_text,
                 Source.name.label("source_name"), ChatGroup.name.label("group_name"),
                 ChatGroup.platform.label("platform"))
    posts_stmt = (select(*post_cols).outerjoin(Source, Source.id == Post.source_id)
                  .outerjoin(ChatGroup, ChatGroup.id == Post.group_id).where(evidence_where)
                  .order_by(func.coalesce(Post.published_at, Post.collected_at), Post.id).limit(EVIDENCE_LIMIT))
    posts = [r._asdict() for r in session.execute(posts_stmt)]
    for p in posts:  # a post that refutes the claim it quotes is marked, as in the API's evidence
        p["refutation_cues"] = common.refutation_of(p.pop("norm_text"))
    pictures = pictures_of(session, [p["id"] for p in posts])
    for p in posts:
        p["pictures"] = pictures.get(p["id"], [])
    evidence_total = session.scalar(select(func.count()).select_from(Post).where(evidence_where)) or 0

    # The matter (incident) the alert is about: its posts by role, where it spread, its timeline.
    incident = session.get(Incident, alert.incident_id) if alert.incident_id else None
    matter = (matters.incident_row(incident, alert.id) | matters.incident_parts(session, incident, per_role=100)
              if incident is not None else None)
    # The representative post: the matter's claim, the story's, or what the topic's people say, else the
    # first evidence post.
    voice = subjects.topic_voice(session, topic) if topic and not story and not incident else None
    rep_id = (incident.representative_post_id if incident and incident.representative_post_id
              else story.representative_post_id if story and story.representative_post_id
              else voice[0] if voice else posts[0]["id"] if posts else None)
    representative = None
    score = None
    if rep_id is not None:
        rep = session.execute(select(*post_cols).outerjoin(Source, Source.id == Post.source_id)
                              .outerjoin(ChatGroup, ChatGroup.id == Post.group_id)
                              .where(Post.id == rep_id)).first()
        representative = rep._asdict() if rep else None
        score_row = session.execute(
            select(PostScore.rumor_probability, PostScore.explanation, PostScore.scored_at)
            .where(PostScore.post_id == rep_id).order_by(PostScore.scored_at.desc()).limit(1)).first()
        score = score_row._asdict() if score_row else None

    # Scores of every shown post, for a per-post probability.
    ids = [p["id"] for p in posts]
    if ids:
        latest: dict[int, tuple[float, dt.datetime, int]] = {}
        for pid, prob, at, label in session.execute(
                select(PostScore.post_id, PostScore.rumor_probability, PostScore.scored_at, PostScore.label)
                .where(PostScore.post_id.in_(ids))):
            if pid not in latest or at > latest[pid][1]:
                latest[pid] = (prob, at, label)
        for p in posts:
            found = latest.get(p["id"])
            unjudged = found is not None and found[2] == -1
            # a post the model cannot judge (label -1) shows 无法判断, not its channel's rumor share
            p["rumor_probability"] = None if found is None or unjudged else found[0]
            p["unjudged"] = unjudged

    groups = [r._asdict() for r in session.execute(
        select(ChatGroup.id, ChatGroup.name, ChatGroup.platform, ChatGroup.member_count,
               func.count(Post.id).label("posts"), func.min(Post.published_at).label("first"))
        .join(Post, Post.group_id == ChatGroup.id).where(evidence_where)
        .group_by(ChatGroup.id, ChatGroup.name, ChatGroup.platform, ChatGroup.member_count)
        .order_by(func.count(Post.id).desc()))]
    sources = [r._asdict() for r in session.execute(
        select(Source.id, Source.name, Source.kind, func.count(Post.id).label("posts"),
               func.min(Post.published_at).label("first"))
        .join(Post, Post.source_id == Source.id).where(evidence_where, Post.group_id.is_(None))
        .group_by(Source.id, Source.name, Source.kind).order_by(func.count(Post.id).desc()))]

    debunks = debunks_for(session, evidence_where, story)
    events = [r._asdict() for r in session.execute(
        select(AlertEvent.id, AlertEvent.at, AlertEvent.action, AlertEvent.from_status, AlertEvent.to_status,
               AlertEvent.comment, AlertEvent.detail, User.display_name, User.username)
        .outerjoin(User, User.id == AlertEvent.actor_id).where(AlertEvent.alert_id == alert.id)
        .order_by(AlertEvent.at.desc(), AlertEvent.id.desc()))]
    responses = [r._asdict() for r in session.execute(
        select(Response.id, Response.text, Response.channels, Response.url, Response.published_at,
               Response.spread_before, Response.spread_after, User.display_name, User.username)
        .outerjoin(User, User.id == Response.created_by).where(Response.alert_id == alert.id)
        .order_by(Response.published_at))]
    return {"alert": alert, "story": story, "topic": topic, "matter": matter, "assignee": assignee, "posts": posts,
            "evidence_total": evidence_total, "representative": representative, "score": score,
            "groups": groups, "sources": sources, "debunks": debunks, "events": events,
            "responses": responses,
            # the draft as the templates read now (an analyst's edit shows on the next look)
            "draft": drafts.draft_for_alert(session, alert, debunk_id=debunks[0]["debunk"].id if debunks else None)}


def debunks_for(session: Session, evidence_where: Any, story: Story | None) -> list[dict[str, Any]]:
    """Known debunks matched by the evidence posts (best similarity first), with the closest post."""
    rows = session.execute(
        select(DebunkMatch.debunk_id, DebunkMatch.similarity, DebunkMatch.method, Post.id.label("post_id"),
               Post.raw_text)
        .join(Post, Post.id == DebunkMatch.post_id).where(evidence_where)
        .order_by(DebunkMatch.similarity.desc()))
    best: dict[int, dict[str, Any]] = {}
    for r in rows:
        entry = best.setdefault(r.debunk_id, {"similarity": r.similarity, "method": r.method,
                                              "post_id": r.post_id, "post_text": r.raw_text, "matches": 0})
        entry["matches"] += 1
    if story is not None and story.debunk_id and story.debunk_id not in best:
        best[story.debunk_id] = {"similarity": story.debunk_similarity, "method": "story",
                                 "post_id": story.representative_post_id, "post_text": None, "matches": 0}
    if not best:
        return []
    found = {d.id: d for d in session.scalars(select(Debunk).where(Debunk.id.in_(list(best))))}
    out = []
    for debunk_id, entry in best.items():
        if debunk_id in found:
            out.append(entry | {"debunk": found[debunk_id]})
    out.sort(key=lambda e: -(e["similarity"] or 0))
    return out


# --------------------------------------------------------------------------- other pages


def _one_per_story(posts: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` posts of different stories: one notice copied by two sites is one sample."""
    seen: set[Any] = set()
    out = []
    for p in posts:
        key = p["story_id"] if p["story_id"] is not None else ("post", p["id"])
        if key not in seen:
            seen.add(key)
            out.append(p)
            if len(out) == limit:
                break
    return out


def hot_topics(session: Session, *, limit: int = 30, show_all: bool = False) -> list[dict[str, Any]]:
    stmt = select(Topic)
    if not show_all:
        stmt = stmt.where(Topic.is_hot.is_(True))
    stmt = stmt.order_by(Topic.burst_score.desc().nulls_last(), Topic.last_seen.desc()).limit(limit)
    topics = list(session.scalars(stmt))
    samples: dict[int, list[dict[str, Any]]] = {t.id: [] for t in topics}
    for t in topics:
        rows = session.execute(
            select(Post.id, Post.story_id, Post.raw_text, Post.title, Post.url, Post.published_at,
                   ChatGroup.name.label("group_name"), Source.name.label("source_name"))
            .outerjoin(ChatGroup, ChatGroup.id == Post.group_id).outerjoin(Source, Source.id == Post.source_id)
            .where(Post.topic_id == t.id).order_by(Post.published_at.desc().nulls_last()).limit(30))
        samples[t.id] = _one_per_story([r._asdict() for r in rows], 3)
    alert_of = dict(session.execute(
        select(Alert.topic_id, func.max(Alert.id)).where(Alert.topic_id.in_(list(samples)))
        .group_by(Alert.topic_id)).all()) if samples else {}
    return [{"topic": t, "samples": samples[t.id], "alert_id": alert_of.get(t.id)} for t in topics]


def search_debunks(session: Session, q: str | None, *, offset: int = 0, limit: int = 50,
                   include_inactive: bool = True) -> tuple[list[Debunk], int]:
    stmt = select(Debunk)
    if q and q.strip():
        pattern = like_pattern(q.strip())
        found = [Debunk.claim.like(pattern, escape="\\"), Debunk.refutation.like(pattern, escape="\\"),
                 Debunk.publisher.like(pattern, escape="\\")]
        words = search.matches("debunks", Debunk.id, q.strip(), session.get_bind().dialect.name)
        stmt = stmt.where(or_(*found, *([words] if words is not None else [])))
    if not include_inactive:
        stmt = stmt.where(Debunk.active.is_(True))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    # by date, newest first, like every other list: when it was published, else when it was added
    when = func.coalesce(Debunk.published_at, Debunk.created_at)
    rows = list(session.scalars(stmt.order_by(when.desc(), Debunk.id.desc()).offset(offset).limit(limit)))
    return rows, total


def debunk_match_counts(session: Session, ids: Sequence[int]) -> dict[int, int]:
    if not ids:
        return {}
    return dict(session.execute(select(DebunkMatch.debunk_id, func.count())
                                .where(DebunkMatch.debunk_id.in_(list(ids))).group_by(DebunkMatch.debunk_id)).all())


def sources_overview(session: Session) -> list[dict[str, Any]]:
    """Each source with its latest run (status, new items, errors) and its post count."""
    latest = (select(SourceRun.source_id, func.max(SourceRun.id).label("run_id"))
              .group_by(SourceRun.source_id).subquery())
    rows = session.execute(
        select(Source, SourceRun).outerjoin(latest, latest.c.source_id == Source.id)
        .outerjoin(SourceRun, SourceRun.id == latest.c.run_id).order_by(Source.name))
    day_ago = utcnow() - dt.timedelta(hours=24)
    new_24h = dict(session.execute(select(Post.source_id, func.count()).where(Post.collected_at >= day_ago)
                                   .group_by(Post.source_id)).all())
    out = []
    for source, run in rows:
        out.append({"source": source, "run": run, "new_24h": new_24h.get(source.id, 0)})
    return out


def groups_overview(session: Session) -> list[dict[str, Any]]:
    day_ago = utcnow() - dt.timedelta(hours=24)
    stats = {r.group_id: r for r in session.execute(
        select(Post.group_id, func.count().label("total"), func.max(Post.published_at).label("last"),
               func.sum(case((Post.collected_at >= day_ago, 1), else_=0)).label("new_24h"))
        .where(Post.group_id.is_not(None)).group_by(Post.group_id))}
    out = []
    for g in session.scalars(select(ChatGroup).order_by(ChatGroup.platform, ChatGroup.name)):
        s = stats.get(g.id)
        out.append({"group": g, "total": s.total if s else 0, "last": s.last if s else None,
                    "new_24h": int(s.new_24h or 0) if s else 0})
    return out


def digests(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Digest.id, Digest.day, Digest.revision, Digest.subject, Digest.status, Digest.recipients,
               Digest.sent_at, Digest.created_at, Digest.attempts, Digest.last_error)
        .order_by(Digest.day.desc(), Digest.revision.desc(), Digest.id.desc()).limit(limit))
    return [r._asdict() for r in rows]


def models(session: Session) -> list[dict[str, Any]]:
    users = dict(session.execute(select(User.id, func.coalesce(User.display_name, User.username))).all())
    out = []
    order = (ModelVersion.name, ModelVersion.trained_at.desc().nulls_last(), ModelVersion.created_at.desc(),
             ModelVersion.id.desc())
    for m in session.scalars(select(ModelVersion).order_by(*order)):
        out.append({"model": m, "promoted_by": users.get(m.promoted_by or -1),
                    "created_by": users.get(m.created_by or -1)})
    return out


MODEL_EVENT_ZH = {"registered": "登记", "trained": "训练", "recalibrated": "校准", "promoted": "启用",
                  "forced": "强制启用", "rolled_back": "回滚", "deleted": "删除"}


def model_history(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The registry's transitions, newest first, with who did each (nlp.registry.model_history)."""
    from nlp.registry import model_history as history

    users = dict(session.execute(select(User.id, func.coalesce(User.display_name, User.username))).all())
    return [{"event": e, "action_zh": MODEL_EVENT_ZH.get(e.action, e.action), "who": users.get(e.user_id or -1)}
            for e in history(session, limit=limit)]


def prevalence(session: Session) -> dict[str, Any]:
    """The rumor share estimates the decisions rest on (nlp.prevalence_store), their recent history,
    and what the rumor threshold currently is and why (the rules file's target, resolved)."""
    from alerts.rules import load_rules, resolve_rumor_thresholds, rumor_threshold_note
    from nlp import prevalence_store as ps

    latest = ps.current(session)
    return {
        "channels": [{"name": ps.CHANNEL_ZH[ch], "e": latest[ch], "method": ps.method_zh(latest[ch].method),
                      "calibration": ps.calibration_zh(latest[ch]), "days": ps.window_days(latest[ch]),
                      "uncertain": ps.UNCERTAIN_ZH if ps.too_uncertain(latest[ch]) else None}
                     for ch in ("web", "chat", "all") if ch in latest],
        "history": ps.history(session, "all", 10),
        "threshold_note": rumor_threshold_note(resolve_rumor_thresholds(load_rules(), session)),
        "defaults": ps.DEFAULT_PRIORS,
    }


def open_alert_counts(session: Session) -> dict[str, int]:
    """Open alerts per severity, for the navigation badge."""
    return dict(session.execute(select(Alert.severity, func.count()).where(
        and_(Alert.status.in_(OPEN_STATUSES))).group_by(Alert.severity)).all())


# --------------------------------------------------------------------------- labels and drift


def label_info(session: Session, posts: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """For each shown post (``id``, ``raw_text``): its labels (who, when) and, when people disagree
    about its text (here or on a copy of it), the votes on each side."""
    ids = [p["id"] for p in posts]
    out: dict[int, dict[str, Any]] = {pid: {"labels": [], "conflict": None} for pid in ids}
    if not ids:
        return out
    who = func.coalesce(User.display_name, User.username)
    for row in session.execute(
            select(Label.post_id, Label.label, Label.origin, Label.user_id, Label.created_at, who.label("who"))
            .outerjoin(User, User.id == Label.user_id).where(Label.post_id.in_(ids))
            .order_by(Label.created_at, Label.id)):
        out[row.post_id]["labels"].append(row._asdict())
    # Hashing every shown text costs ~0.1 ms a post: only when some text is in conflict at all.
    disputed = select(Label.text_hash).group_by(Label.text_hash).having(func.count(func.distinct(Label.label)) > 1)
    if session.scalar(select(func.count()).select_from(disputed.limit(1).subquery())):
        keys = {p["id"]: text_key(p["raw_text"] or "") for p in posts}
        votes: dict[str, dict[int, int]] = {}
        for text_hash, label, n in session.execute(
                select(Label.text_hash, Label.label, func.count())
                .where(Label.text_hash.in_(set(keys.values())), Label.text_hash.in_(disputed))
                .group_by(Label.text_hash, Label.label)):
            votes.setdefault(text_hash, {})[int(label)] = int(n)
        for pid, key in keys.items():
            if key in votes:
                out[pid]["conflict"] = votes[key]
    return out


DRIFT_TTL = 60.0


def drift(session: Session) -> DriftStatus:
    """The active model's drift status (nlp.drift), cached for a minute: every page's header shows it."""
    return _cached(session, "drift", DRIFT_TTL, lambda: drift_status(session))


def notify_health(session: Session, *, fresh: bool = False) -> DeliveryHealth:
    """Whether alert notifications can reach anyone (alerts.delivery_health), cached for a minute:
    every page's header warns when none can. ``fresh``: compute now (the 通知 page)."""
    if fresh:
        for key in [k for k in _CACHE if k[1] == "notify_health"]:
            _CACHE.pop(key, None)
    return _cached(session, "notify_health", DRIFT_TTL, lambda: delivery_health(session))


def forget_drift() -> None:
    """After a promotion or rollback the active model, and so its reference, has changed."""
    for key in [k for k in _CACHE if k[1] == "drift"]:
        _CACHE.pop(key, None)
