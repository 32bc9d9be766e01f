"""Turn new analysis into alerts: raising, folding and re-alerting (the features are
:mod:`alerts.subjects`', the rules and scores :mod:`alerts.scoring`').

:func:`evaluate` reads what the analysis wrote since the last run (posts.analyzed_at and
topics.updated_at watermarks, with an overlap: re-reading is harmless because every step is
idempotent) and raises or folds alerts. A subject under an open alert folds new posts into it
(evidence grows, severity may rise, a "rising" note is added); a dismissed or closed subject
re-alerts only past a clear growth margin. The session is passed in and the caller commits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from alerts import notify
from alerts.common import chunks, insert_ignore, refutation_of, short_title
from alerts.merge import fold_merged_incident
from alerts.queries import forget_counts
from alerts.rules import (
    SEVERITIES,
    SEVERITY_ZH,
    KeywordRule,
    RulesConfig,
    load_rules,
    resolve_rumor_thresholds,
)
from alerts.scoring import alert_kind, fire_rules, rule_kind, score_subject, suggest_response
from alerts.severity import Features, severity_rank
from alerts.spread import remeasure_responses
from alerts.states import OPEN_STATES, STATE_ZH
from alerts.subjects import (
    INERT_ROLES,
    Subject,
    incident_of_topic,
    incident_subjects,
    incidents_with_alerts,
    matter_kind,
    story_subjects,
    topic_in_alerted_matters,
    topic_is_concern,
    topic_subject,
)
from core.errors import InvalidInput
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    AlertRun,
    Incident,
    Post,
    Story,
    Topic,
    utcnow,
)

log = logging.getLogger(__name__)

#: Re-read this much before the last watermark: rows committed late by a concurrent analyze.
WATERMARK_OVERLAP = dt.timedelta(minutes=10)
EVALUATE_LOCK_KEY = 72_416_001  # pg_advisory_xact_lock key of `evaluate`


# ----------------------------------------------------------------------------- evaluate


@dataclass
class EvaluateResult:
    posts_seen: int = 0
    stories_seen: int = 0
    topics_seen: int = 0
    incidents_seen: int = 0
    merged: list[int] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    folded: list[int] = field(default_factory=list)
    rising: list[int] = field(default_factory=list)
    realerted: list[int] = field(default_factory=list)
    notifications: int = 0
    responses_measured: int = 0
    notify_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "posts_seen": self.posts_seen,
            "stories_seen": self.stories_seen,
            "topics_seen": self.topics_seen,
            "incidents_seen": self.incidents_seen,
            "merged": len(self.merged),
            "created": len(self.created),
            "folded": len(self.folded),
            "rising": len(self.rising),
            "realerted": len(self.realerted),
            "notifications": self.notifications,
            "responses_measured": self.responses_measured,
        }


class Notifier:
    """Per-run cache of the routing config, so 1,000 alerts do not re-read it."""

    def __init__(self, config: notify.NotifyConfig | None) -> None:
        self.config = config
        self.count = 0
        self.error: str | None = None

    def __call__(
        self,
        session: Session,
        alert: Alert,
        event: str,
        now: dt.datetime,
        note: str | None = None,
        routes: list[notify.Route] | None = None,
    ) -> None:
        if self.config is None:
            try:
                self.config = notify.load_notify_config()
            except InvalidInput as err:
                # A broken routing file must not stop alerts from being raised: they still show in
                # the console; the error is logged and reported by `yuqing alerts evaluate`.
                log.error("no notifications written: %s", err)
                self.error, self.config = str(err), notify.NotifyConfig()
        self.count += len(
            notify.enqueue(session, alert, event, now=now, config=self.config, note=note, routes=routes)
        )


def evaluate(
    session: Session,
    *,
    now: dt.datetime | None = None,
    rules: RulesConfig | None = None,
    notify_config: notify.NotifyConfig | None = None,
    full: bool = False,
) -> EvaluateResult:
    """Raise or fold alerts for what the analysis wrote since the last run. Idempotent."""
    now = now or utcnow()
    cfg = resolve_rumor_thresholds(rules or load_rules(), session)
    notifier = Notifier(notify_config)
    result = EvaluateResult()
    # One evaluation at a time (the scheduler's and a CLI run may overlap): otherwise both could
    # see a story without an alert and raise two. PostgreSQL: a transaction-level advisory lock.
    # SQLite: writing first takes the database's write lock, and this transaction's reads then
    # start after the other one's commit.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVALUATE_LOCK_KEY})
    run = AlertRun(started_at=now)
    session.add(run)
    session.flush()
    pending = _Pending()
    last = (
        None
        if full
        else session.scalar(
            select(AlertRun).where(AlertRun.finished_at.is_not(None)).order_by(AlertRun.id.desc()).limit(1)
        )
    )
    post_since = last.post_watermark - WATERMARK_OVERLAP if last and last.post_watermark else None
    topic_since = last.topic_watermark - WATERMARK_OVERLAP if last and last.topic_watermark else None
    incident_since = (
        last.incident_watermark - WATERMARK_OVERLAP if last and last.incident_watermark else None
    )

    # 1. new posts: which incidents and stories they touch, and the watched keywords they contain.
    # A post the roles stage has seen (role set) is part of the incident world: its matter carries
    # it, or, without one (chatter), only the keyword watch may; its story never alerts on its own.
    # Posts analysed before roles existed (role NULL) keep the story path.
    q = select(
        Post.id,
        Post.story_id,
        Post.incident_id,
        Post.role,
        Post.title,
        Post.raw_text,
        Post.norm_text,
        Post.analyzed_at,
    ).where(Post.analyzed_at.is_not(None))
    if post_since is not None:
        q = q.where(Post.analyzed_at > post_since)
    keyword_rules: list[KeywordRule] = cfg.enabled("keyword")
    new_by_story: dict[int, list[int]] = defaultdict(list)
    in_matter: set[int] = set()  # stories whose posts have roles: their incidents speak for them
    new_by_incident: dict[int, list[tuple[int, str]]] = defaultdict(list)
    hits_by_incident: dict[int, dict[str, list[str]]] = defaultdict(dict)
    lone: list[tuple[int, str]] = []
    hits_by_story: dict[int, dict[str, list[str]]] = defaultdict(dict)
    hits_by_post: dict[int, dict[str, list[str]]] = {}
    post_mark = last.post_watermark if last else None
    for row in session.execute(q.order_by(Post.analyzed_at)):
        result.posts_seen += 1
        post_mark = row.analyzed_at if post_mark is None or row.analyzed_at > post_mark else post_mark
        scored = f"{row.title or ''} {row.norm_text or row.raw_text}"
        # A refutation that quotes the watched words is not the thing being watched for.
        refutes = bool(keyword_rules) and bool(refutation_of(row.norm_text))
        hits = {} if refutes else {r.id: r.hits(scored) for r in keyword_rules if r.matches(scored)}
        if row.role is not None and row.role in INERT_ROLES:
            hits = {}  # a refutation, a notice or chatter is not what the office watches for
        if row.role is not None and row.story_id is not None:
            in_matter.add(row.story_id)
        if row.incident_id is not None:
            new_by_incident[row.incident_id].append((row.id, row.role or "other"))
            for rid, words in hits.items():
                hits_by_incident[row.incident_id][rid] = sorted(
                    set(hits_by_incident[row.incident_id].get(rid, [])) | set(words)
                )
        elif row.story_id is not None and row.role is None:
            new_by_story[row.story_id].append(row.id)
            for rid, words in hits.items():
                hits_by_story[row.story_id].setdefault(rid, [])
                hits_by_story[row.story_id][rid] = sorted(set(hits_by_story[row.story_id][rid]) | set(words))
        elif hits:
            lone.append((row.id, (row.title or "") + " " + row.raw_text))
            hits_by_post[row.id] = hits
    run.post_watermark = post_mark

    # 2. incidents (matters): changed since the last run, or touched by new posts
    _evaluate_incidents(
        session, run, last, incident_since, new_by_incident, hits_by_incident, cfg, now, notifier, result, pending
    )

    # 3. stories of posts analysed before roles existed
    story_ids = sorted(set(new_by_story) - in_matter)
    stories: list[Story] = []
    for chunk in chunks(story_ids):
        stories += list(session.scalars(select(Story).where(Story.id.in_(chunk))))
    result.stories_seen = len(stories)
    subjects = story_subjects(session, stories, cfg, hits_by_story)
    latest = latest_alerts(session, Alert.story_id, story_ids)
    # which of the new posts are already evidence of their story's open alert (one pass, not one
    # query per alert: the run re-reads a little of the previous run's window on purpose)
    open_alert_story = {a.id: sid for sid, a in latest.items() if a.status in OPEN_STATES}
    known_by_story: dict[int, set[int]] = defaultdict(set)
    all_new = [pid for sid in story_ids for pid in new_by_story[sid]]
    for chunk in chunks(all_new):
        for alert_id, post_id in session.execute(
            select(AlertPost.alert_id, AlertPost.post_id).where(AlertPost.post_id.in_(chunk))
        ):
            if alert_id in open_alert_story:
                known_by_story[open_alert_story[alert_id]].add(post_id)
    for sid, subject in subjects.items():
        subject.new_post_ids = new_by_story[sid]
        subject.known_evidence = known_by_story.get(sid, set())
        _apply(session, subject, latest.get(sid), cfg, now, notifier, result, pending)

    # 4. hot topics changed since the last run
    tq = select(Topic).where(Topic.is_hot.is_(True))
    if topic_since is not None:
        tq = tq.where(Topic.updated_at > topic_since)
    topics = list(session.scalars(tq))
    result.topics_seen = len(topics)
    topic_mark = last.topic_watermark if last else None
    for t in topics:
        topic_mark = t.updated_at if topic_mark is None or t.updated_at > topic_mark else topic_mark
    run.topic_watermark = topic_mark
    latest_t = latest_alerts(session, Alert.topic_id, [t.id for t in topics], story_null=True)
    fresh = [t.id for t in topics if t.id not in latest_t]
    alerted = incidents_with_alerts(session, fresh) if fresh else set()
    alerted |= {subj.incident.id for _a, subj, *_rest in pending.created if subj.incident is not None}
    for t in topics:
        if t.id not in latest_t and (incident_of_topic(session, t.id) is not None
                                     or topic_in_alerted_matters(session, t.id, alerted)
                                     or not topic_is_concern(session, t.id)):
            # Most of the topic's posts are one matter, or matters already alerted: their
            # incidents' alerts are the alerts on them (one alert per matter). A topic whose
            # posts do not complain (chatter, a rumor's questions and reactions, a notice) is
            # no concern: a hot topic raises only a concern alert.
            continue
        subject = topic_subject(session, t, cfg)
        subject.new_post_ids = subject.post_ids
        _apply(session, subject, latest_t.get(t.id), cfg, now, notifier, result, pending)

    # 5. watched keywords in posts that belong to no incident and no story
    if lone:
        known = {e["post_id"] for e in pending.evidence}
        known |= {pid for _a, subj, *_rest in pending.created for pid in subj.post_ids}
        for chunk in chunks([pid for pid, _ in lone]):
            known |= set(session.scalars(select(AlertPost.post_id).where(AlertPost.post_id.in_(chunk))))
        for pid, lone_text in lone:
            if pid in known:
                continue
            post = session.get(Post, pid)
            assert post is not None
            f = Features(
                post_count=1,
                category=post.category,
                negativity=post.negativity,
                local_share=1.0 if post.is_local else 0.0,
                groups=1 if (post.group_id or post.source_id) else 0,
                places=[p for p in post.places or [] if isinstance(p, str)],
                keyword_hits=hits_by_post[pid],
            )
            subject = Subject(
                kind="post",
                id=pid,
                title=short_title(lone_text),
                summary=short_title(lone_text, 300),
                features=f,
                post_ids=[pid],
                new_post_ids=[pid],
            )
            _apply(session, subject, None, cfg, now, notifier, result, pending)

    _finish(session, pending, now, notifier, result)
    result.responses_measured = remeasure_responses(session, now, cfg)
    result.notifications = notifier.count
    result.notify_error = notifier.error
    run.finished_at = utcnow()
    run.stats = result.as_dict()
    session.flush()
    log.info("alerts evaluated: %s", run.stats)
    forget_counts()
    return result


def _evaluate_incidents(
    session: Session,
    run: AlertRun,
    last: AlertRun | None,
    since: dt.datetime | None,
    new_by_incident: dict[int, list[tuple[int, str]]],
    hits: dict[int, dict[str, list[str]]],
    cfg: RulesConfig,
    now: dt.datetime,
    notifier: Notifier,
    result: EvaluateResult,
    pending: _Pending,
) -> None:
    """One alert per incident: raise, fold, re-alert; a merged incident's alert folds into its
    target's."""
    iq = select(Incident)
    if since is not None:
        iq = iq.where(Incident.updated_at > since)
    changed = {i.id: i for i in session.scalars(iq)}
    missing = [i for i in new_by_incident if i not in changed]
    for chunk in chunks(missing):
        changed |= {i.id: i for i in session.scalars(select(Incident).where(Incident.id.in_(chunk)))}
    mark = last.incident_watermark if last else None
    for inc in changed.values():
        mark = inc.updated_at if mark is None or inc.updated_at > mark else mark
    run.incident_watermark = mark
    merged = [i for i in changed.values() if i.status == "merged"]
    for inc in merged:
        target = fold_merged_incident(session, inc, now=now)
        if target is not None:
            result.merged.append(inc.id)
        if target is not None and target.id not in changed:
            changed[target.id] = target
    incidents = [i for i in changed.values() if i.status != "merged"]
    result.incidents_seen = len(incidents)
    if not incidents:
        return
    subjects = incident_subjects(session, incidents, cfg, hits)
    latest = latest_alerts(session, Alert.incident_id, [i.id for i in incidents])
    open_alerts = {a.id: iid for iid, a in latest.items() if a.status in OPEN_STATES}
    known: dict[int, set[int]] = defaultdict(set)
    for chunk in chunks(list(open_alerts)):
        for alert_id, post_id in session.execute(
            select(AlertPost.alert_id, AlertPost.post_id).where(AlertPost.alert_id.in_(chunk))
        ):
            known[open_alerts[alert_id]].add(post_id)
    for iid, subject in subjects.items():
        # Every post of the matter is evidence (the grouping may have moved older posts in); the
        # roles of those not yet in its alert decide whether severity may rise.
        subject.new_post_ids = subject.post_ids
        subject.known_evidence = known.get(iid, set())
        subject.new_roles = {r for pid, r in subject.roles.items() if pid not in subject.known_evidence}
        _apply(session, subject, latest.get(iid), cfg, now, notifier, result, pending)


def latest_alerts(
    session: Session, column: Any, ids: list[int], story_null: bool = False
) -> dict[int, Alert]:
    latest: dict[int, Alert] = {}
    for chunk in chunks(ids):
        q = select(Alert).where(column.in_(chunk))
        if story_null:
            q = q.where(Alert.story_id.is_(None))
        for alert in session.scalars(q.order_by(Alert.id)):
            latest[getattr(alert, column.key)] = alert  # the highest id wins
    return latest


@dataclass
class _Pending:
    """Alerts made in this run, inserted together at the end (one flush, one evidence insert)."""

    created: list[tuple[Alert, Subject, list[dict[str, Any]], str, Alert | None, int]] = field(
        default_factory=list
    )
    evidence: list[dict[str, Any]] = field(default_factory=list)


def _apply(
    session: Session,
    subject: Subject,
    existing: Alert | None,
    cfg: RulesConfig,
    now: dt.datetime,
    notifier: Notifier,
    result: EvaluateResult,
    pending: _Pending,
) -> None:
    fired = fire_rules(subject.features, cfg, rule_kind(subject))
    if existing is not None and existing.status in OPEN_STATES:
        _fold(session, existing, subject, cfg, fired, now, notifier, result, pending)
        return
    if not fired:
        return
    if subject.incident is not None and subject.features.post_count == 0:
        return  # questions, reactions or refutations alone are not a matter going round
    score, parts, severity = score_subject(subject, cfg, fired)
    if severity_rank(severity) < SEVERITIES.index(cfg.min_severity):
        return
    base = 0
    if existing is not None:  # dismissed or closed: only a clear growth re-alerts
        base = existing.post_count_at_close or existing.post_count or 0
        grown = subject.features.post_count - base
        if grown < cfg.folding.realert_min_posts or subject.features.post_count < base * (
            1 + cfg.folding.realert_ratio
        ):
            return
    alert = _build(
        session, subject, cfg, fired, score, parts, severity, now, kind=alert_kind(fired, "rumor", rule_kind(subject))
    )
    session.add(alert)
    pending.created.append((alert, subject, fired, severity, existing, base))


def _finish(
    session: Session, pending: _Pending, now: dt.datetime, notifier: Notifier, result: EvaluateResult
) -> None:
    """Insert the alerts made in this run, their evidence and history, then their notifications."""
    if pending.created:
        session.flush()  # one batched INSERT ... RETURNING for every new alert
    events: list[dict[str, Any]] = []
    for alert, subject, fired, severity, _existing, _base in pending.created:
        pending.evidence += [
            {"alert_id": alert.id, "post_id": pid, "added_at": now} for pid in subject.post_ids
        ]
        events.append(_created_event(alert, subject, fired, severity, now, None))
    insert_ignore(session, AlertPost.__table__, pending.evidence)
    for alert, subject, _fired, _severity, existing, base in pending.created:
        note = None
        if existing is not None:
            note = (
                f"此前的预警 #{existing.id} 已{STATE_ZH[existing.status]}，"
                f"之后帖子从 {base} 条增至 {subject.features.post_count} 条"
            )
            events.append(
                {
                    "alert_id": alert.id,
                    "at": now,
                    "actor_id": None,
                    "action": "realert",
                    "from_status": None,
                    "to_status": None,
                    "comment": note,
                    "detail": {"previous_alert_id": existing.id, "previous_post_count": base},
                }
            )
            result.realerted.append(alert.id)
        result.created.append(alert.id)
        if alert.kind != "notice":  # information spreading: shown in the queue, nobody is paged
            notifier(session, alert, "realert" if existing is not None else "created", now, note)
    if events:
        session.execute(insert(AlertEvent), events)


def _created_event(
    alert: Alert,
    subject: Subject,
    fired: list[dict[str, Any]],
    severity: str,
    now: dt.datetime,
    actor_id: int | None,
) -> dict[str, Any]:
    return {
        "alert_id": alert.id,
        "at": now,
        "actor_id": actor_id,
        "action": "created",
        "from_status": None,
        "to_status": "new",
        "comment": None,
        "detail": {
            "severity": severity,
            "risk_score": alert.risk_score,
            "post_count": subject.features.post_count,
            "rules": [r["id"] for r in fired],
            "subject": subject.kind,
        },
    }


def _build(
    session: Session,
    subject: Subject,
    cfg: RulesConfig,
    fired: list[dict[str, Any]],
    score: float,
    parts: dict[str, Any],
    severity: str,
    now: dt.datetime,
    *,
    kind: str,
    title: str | None = None,
) -> Alert:
    f = subject.features
    return Alert(
        incident_id=subject.id if subject.kind == "incident" else None,
        story_id=subject.id if subject.kind == "story" else None,
        topic_id=subject.id if subject.kind == "topic" else None,
        kind=kind,
        title=(title or subject.title or "（无标题）")[:500],
        summary=subject.summary,
        severity=severity,
        severity_rank=severity_rank(severity),
        risk_score=score,
        score_parts=parts,
        rules_fired=fired,
        category=f.category,
        status="new",
        escalation_level=0,
        post_count=f.post_count,
        group_count=f.groups,
        noted_post_count=f.post_count,
        created_at=now,
        updated_at=now,
        suggested_response=suggest_response(
            session, debunk_id=f.debunk_id, category=f.category, title=subject.title, places=f.places, cfg=cfg,
            kind="concern" if kind == "manual" and subject.kind == "topic" else kind,
        ),
    )


def create_alert(
    session: Session,
    subject: Subject,
    cfg: RulesConfig,
    fired: list[dict[str, Any]],
    score: float,
    parts: dict[str, Any],
    severity: str,
    now: dt.datetime,
    *,
    kind: str,
    actor_id: int | None = None,
    title: str | None = None,
) -> Alert:
    """One alert with its evidence and its 'created' event (manual alerts)."""
    alert = _build(session, subject, cfg, fired, score, parts, severity, now, kind=kind, title=title)
    session.add(alert)
    session.flush()
    insert_ignore(
        session,
        AlertPost.__table__,
        [{"alert_id": alert.id, "post_id": pid, "added_at": now} for pid in subject.post_ids],
    )
    session.execute(insert(AlertEvent), [_created_event(alert, subject, fired, severity, now, actor_id)])
    return alert


def _fold(
    session: Session,
    alert: Alert,
    subject: Subject,
    cfg: RulesConfig,
    fired: list[dict[str, Any]],
    now: dt.datetime,
    notifier: Notifier,
    result: EvaluateResult,
    pending: _Pending,
) -> None:
    """New posts of a story already under an open alert: grow the evidence, maybe raise severity."""
    f = subject.features
    # Runs re-read a little of the previous run's window: only posts not yet in evidence are new.
    known = subject.known_evidence
    if known is None:
        known = set()
        with session.no_autoflush:  # the alerts changed so far are flushed once, at the end of the run
            for chunk in chunks(subject.new_post_ids):
                known |= set(
                    session.scalars(
                        select(AlertPost.post_id).where(
                            AlertPost.alert_id == alert.id, AlertPost.post_id.in_(chunk)
                        )
                    )
                )
    new_ids = [pid for pid in subject.new_post_ids if pid not in known]
    pending.evidence += [{"alert_id": alert.id, "post_id": pid, "added_at": now} for pid in new_ids]
    # Rules that fired before stay fired (they stand on evidence already shown to staff).
    fired_ids = {r["id"] for r in fired}
    fired = fired + [
        r for r in (alert.rules_fired or []) if isinstance(r, dict) and r.get("id") not in fired_ids
    ]
    score, parts, severity = score_subject(subject, cfg, fired)
    old_rank, old_count = alert.severity_rank, alert.noted_post_count or alert.post_count
    if _only_response(subject, alert) and (severity_rank(severity) > old_rank or score > alert.risk_score):
        # Refutations, notices and chatter are the answer, not the spread: they never raise it.
        score, severity = alert.risk_score, alert.severity
    # a debunk reached the alert when the draft it makes differs from the one stored (only
    # rendered for alerts with a debunk: a few, and cached templates)
    draft_now = (
        suggest_response(session, debunk_id=f.debunk_id, category=alert.category or f.category,
                         title=alert.title, places=f.places, cfg=cfg, kind=alert.kind)
        if f.debunk_id else None
    )
    debunk_new = draft_now is not None and draft_now != alert.suggested_response
    changed = (
        f.post_count != alert.post_count
        or f.groups != alert.group_count
        or parts != alert.score_parts
        or debunk_new
    )
    if not changed and not new_ids:
        return  # nothing new: the alert keeps its place in the queue
    alert.post_count, alert.group_count = f.post_count, f.groups
    alert.score_parts, alert.rules_fired = parts, fired
    alert.risk_score = max(score, alert.risk_score) if severity_rank(severity) <= old_rank else score
    if alert.category is None and f.category:
        alert.category = f.category
    if subject.incident is not None:
        _follow_matter(alert, subject, fired)
    if debunk_new:
        alert.suggested_response = draft_now
    elif alert.suggested_response is None:
        alert.suggested_response = suggest_response(
            session, debunk_id=f.debunk_id, category=alert.category, title=alert.title, places=f.places,
            cfg=cfg, kind=alert.kind,
        )
    alert.updated_at = now
    result.folded.append(alert.id)
    rose = severity_rank(severity) > old_rank
    grew = f.post_count - old_count >= cfg.folding.rising_min_posts and f.post_count >= old_count * (
        1 + cfg.folding.rising_ratio
    )
    if rose or grew:
        note = f"正在扩散：帖子从 {old_count} 条增至 {f.post_count} 条，覆盖 {f.groups} 个群或来源"
        if rose:
            note += f"；等级由{SEVERITY_ZH[alert.severity]}升为{SEVERITY_ZH[severity]}"
            alert.severity, alert.severity_rank = severity, severity_rank(severity)
        alert.noted_post_count = f.post_count
        session.add(
            AlertEvent(
                alert_id=alert.id,
                at=now,
                action="rising",
                comment=note,
                detail={
                    "from_posts": old_count,
                    "to_posts": f.post_count,
                    "severity": alert.severity,
                    "risk_score": alert.risk_score,
                },
            )
        )
        result.rising.append(alert.id)
        if rose:
            notifier(session, alert, f"rising:{severity}", now, note)




def _only_response(subject: Subject, alert: Alert) -> bool:
    """The matter's new posts are all inert (refutations, notices, chatter) and no debunk newly
    reached it: nothing that may raise the alert's severity arrived."""
    if subject.incident is None or not subject.new_roles or not subject.new_roles <= INERT_ROLES:
        return False
    return not (subject.features.debunk_id and "【辟谣】" not in (alert.suggested_response or ""))


def _follow_matter(alert: Alert, subject: Subject, fired: list[dict[str, Any]]) -> None:
    """An incident alert's title and kind follow its matter (nlp rewrites the headline as the
    matter grows; a matter found to be an official notice is never left as a rumor alert)."""
    inc = subject.incident
    assert inc is not None
    if inc.title:
        alert.title = short_title(inc.title)[:500]
    alert.summary = subject.summary or alert.summary
    if alert.kind == "manual":
        return
    kind = matter_kind(inc)
    if kind in ("concern", "notice"):
        alert.kind = kind
    elif alert.kind in ("notice", "concern", "keyword", "spread", "rumor"):
        alert.kind = alert_kind(fired, "rumor", kind)
