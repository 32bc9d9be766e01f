"""The alert service: turn new analysis into alerts, and run the review workflow.

Database functions only; the session is passed in and the caller commits (the API's request
session, the CLI's ``session_scope``). Everything an action changes -- the alert, its history
event, its outbox notifications, review labels -- is written in that one transaction.

- :func:`evaluate` reads what the analysis wrote since the last run (posts.analyzed_at and
  topics.updated_at watermarks, with an overlap: re-reading is harmless because every step is
  idempotent) and raises or folds alerts: **one alert per story** (and per hot topic). A story
  under an open alert folds new posts into it (evidence grows, severity may rise, a "rising" note
  is added); a dismissed or closed story re-alerts only past a clear growth margin.
- Workflow: :func:`transition` (a state machine; invalid moves raise :class:`Conflict`, HTTP 409),
  :func:`assign`, :func:`add_comment`, :func:`respond` (records what was published and the
  story's spread before/after), :func:`escalate` (unacknowledged high/urgent alerts),
  :func:`create_manual`. Verdicts become ``labels`` rows for retraining.
- Reading: :func:`list_alerts` and :func:`alert_detail` return plain dicts, shaped for the API and
  the console.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, column, delete, func, insert, select, text
from sqlalchemy.orm import Session

from alerts import notify
from alerts.rules import (
    SEVERITIES,
    SEVERITY_ZH,
    KeywordRule,
    RulesConfig,
    load_rules,
    resolve_rumor_thresholds,
)
from alerts.severity import Features, risk, severity_for, severity_rank
from core.db import upsert_insert
from core.errors import Conflict, InvalidInput, NotFound
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    AlertRun,
    ChatGroup,
    Debunk,
    DebunkMatch,
    Label,
    Post,
    PostScore,
    Response,
    Source,
    Story,
    Topic,
    User,
    utcnow,
)
from nlp.cues import refutation_cues

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- the state machine

STATES = ("new", "acknowledged", "confirmed_rumor", "confirmed_concern", "dismissed", "responded", "closed")
STATE_ZH = {
    "new": "新预警",
    "acknowledged": "已认领",
    "confirmed_rumor": "已确认谣言",
    "confirmed_concern": "已确认关切",
    "dismissed": "已排除",
    "responded": "已回应",
    "closed": "已关闭",
}
#: Valid moves. ``responded`` is reached by recording a response (:func:`respond`); a dismissed
#: alert may be reopened (back to acknowledged); closed is final.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("acknowledged", "confirmed_rumor", "confirmed_concern", "dismissed"),
    "acknowledged": ("confirmed_rumor", "confirmed_concern", "dismissed"),
    "confirmed_rumor": ("responded", "closed"),
    "confirmed_concern": ("responded", "closed"),
    "dismissed": ("acknowledged", "closed"),
    "responded": ("closed",),
    "closed": (),
}
OPEN_STATES = ("new", "acknowledged", "confirmed_rumor", "confirmed_concern", "responded")
FINISHED_STATES = ("dismissed", "closed")
#: Which fired rule names the alert's kind, strongest first.
_KIND_OF_RULE = {
    "debunk_match": "debunk_match",
    "rumor_probability": "rumor",
    "spread": "spread",
    "keyword": "keyword",
    "hot_concern": "concern",
}
_KIND_ORDER = ("debunk_match", "rumor", "spread", "keyword", "concern", "manual")
#: Re-read this much before the last watermark: rows committed late by a concurrent analyze.
WATERMARK_OVERLAP = dt.timedelta(minutes=10)
EVALUATE_LOCK_KEY = 72_416_001  # pg_advisory_xact_lock key of `evaluate`
_CHUNK = 500
MAX_LABEL_POSTS = 1000


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _insert_ignore(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on both dialects (idempotent evidence rows)."""
    if not rows:
        return
    stmt = upsert_insert(session, table).on_conflict_do_nothing()
    for chunk in _chunks(rows, 2000):
        session.execute(stmt, list(chunk))


def parse_hour(key: str) -> dt.datetime | None:
    """Hour keys of ``hourly_counts`` ("2026-11-28T14", or a full ISO time) as aware UTC."""
    try:
        value = dt.datetime.strptime(key[:13], "%Y-%m-%dT%H")
    except ValueError:
        return None
    return value.replace(tzinfo=dt.UTC)


def hour_key(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")


# ----------------------------------------------------------------------------- features


@dataclass
class Subject:
    """Something that may deserve an alert: a story, a hot topic, or a post without a story."""

    kind: str  # story | topic | post
    id: int
    title: str
    summary: str
    features: Features
    post_ids: list[int] = field(default_factory=list)  # evidence (new posts, or all for a new alert)
    new_post_ids: list[int] = field(default_factory=list)
    hourly: dict[str, int] = field(default_factory=dict)
    debunk_id: int | None = None
    known_evidence: set[int] | None = None  # new_post_ids already in the open alert's evidence


#: How a post that refutes the claim it quotes is marked in an alert's evidence.
REFUTES_ZH = "辟谣/澄清"


def refutation_of(norm_text: str | None) -> tuple[str, ...]:
    """The refutation cues of an analysed post (its text as nlp normalised it), or () when it does
    not refute. A post without normalised text has not been analysed: it counts as spreading."""
    return refutation_cues(norm_text, normalized=True) if norm_text else ()


def _title(text: str | None, limit: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _velocity(hourly: dict[str, Any], last_seen: dt.datetime | None, window: int) -> float:
    if not hourly or last_seen is None:
        return 0.0
    end = last_seen.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    keys = {hour_key(end - dt.timedelta(hours=i)) for i in range(window)}
    total = sum(int(v) for k, v in hourly.items() if k[:13] in keys and isinstance(v, (int, float)))
    return total / window


def _story_features(
    session: Session, stories: list[Story], cfg: RulesConfig, keyword_hits: dict[int, dict[str, list[str]]]
) -> dict[int, Subject]:
    """Features of many stories in a few set-based queries.

    Posts that refute the story's claim stay in its evidence but are left out of every feature:
    they neither open an alert nor raise its severity. The story's own aggregates (counts, hourly
    counts, best score and debunk match) include them, so a story holding refutations is measured
    from its spreading posts instead.
    """
    ids = [s.id for s in stories]
    rows_by_story: dict[int, list[Any]] = defaultdict(list)
    refuting: set[int] = set()
    for chunk in _chunks(ids):
        for row in session.execute(
            select(
                Post.story_id,
                Post.id,
                Post.group_id,
                Post.source_id,
                Post.published_at,
                Post.collected_at,
                Post.is_local,
                Post.negativity,
                Post.category,
                Post.places,
                Post.norm_text,
            ).where(Post.story_id.in_(chunk))
        ):
            rows_by_story[row.story_id].append(row)
            if refutation_of(row.norm_text):
                refuting.add(row.id)
    mixed = {sid for sid, rows in rows_by_story.items() if any(r.id in refuting for r in rows)}
    spreading_of_mixed = [r.id for sid in mixed for r in rows_by_story[sid] if r.id not in refuting]
    # Mixed stories: from their spreading posts; the others: only what the story does not hold.
    need_prob = [s.id for s in stories if s.max_rumor_probability is None and s.id not in mixed]
    prob = _max_probability(session, Post.story_id, need_prob)
    prob |= _max_probability(session, Post.id, spreading_of_mixed)
    need_debunk = [s.id for s in stories if s.debunk_id is None and s.id not in mixed]
    debunk = _best_debunk(session, Post.story_id, need_debunk)
    debunk |= _best_debunk(session, Post.id, spreading_of_mixed)
    title_post = {s.id: _title_post(s, rows_by_story.get(s.id, []), refuting) for s in stories}
    reps = {pid for pid in title_post.values() if pid}
    rep_text: dict[int, tuple[str | None, str]] = {}
    for chunk in _chunks(list(reps)):
        for pid, title, body in session.execute(
            select(Post.id, Post.title, Post.raw_text).where(Post.id.in_(chunk))
        ):
            rep_text[pid] = (title, body)

    subjects: dict[int, Subject] = {}
    for story in stories:
        rows = rows_by_story.get(story.id, [])
        spreading = [r for r in rows if r.id not in refuting]
        groups = {("g", r.group_id) for r in spreading if r.group_id} | {
            ("s", r.source_id) for r in spreading if r.source_id and not r.group_id
        }
        window_start = (story.last_seen or utcnow()) - dt.timedelta(hours=_spread_window(cfg))
        in_window = {
            ("g", r.group_id) if r.group_id else ("s", r.source_id)
            for r in spreading
            if (r.group_id or r.source_id) and (r.published_at or r.collected_at) >= window_start
        }
        negs = [r.negativity for r in spreading if r.negativity is not None]
        cats = Counter(r.category for r in spreading if r.category)
        places = Counter(p for r in spreading for p in (r.places or []) if isinstance(p, str))
        if story.id in mixed:
            post_count, reached = len(spreading), len(groups)
            hourly = _hourly_of(spreading)
            probability = prob.get(story.id)
            did, sim = debunk.get(story.id, (None, None))
        else:
            post_count = max(story.post_count or 0, len(rows))
            reached = max(story.group_count + story.source_count, len(groups))
            counts = (story.hourly_counts or {}).items()
            hourly = {k: int(v) for k, v in counts if isinstance(v, (int, float))} or _hourly_of(rows)
            probability = (
                story.max_rumor_probability if story.max_rumor_probability is not None else prob.get(story.id)
            )
            did, sim = story.debunk_id, story.debunk_similarity
            if did is None and story.id in debunk:
                did, sim = debunk[story.id]
        f = Features(
            post_count=post_count,
            rumor_probability=probability,
            debunk_id=did,
            debunk_similarity=sim if did else None,
            velocity=_velocity(hourly, story.last_seen, cfg.velocity_window_hours),
            groups=reached,
            groups_in_window=len(in_window),
            local_share=(sum(1 for r in spreading if r.is_local) / len(spreading)) if spreading else 0.0,
            category=cats.most_common(1)[0][0] if cats else None,
            negativity=sum(negs) / len(negs) if negs else None,
            places=[p for p, _ in places.most_common(5)],
            keyword_hits=keyword_hits.get(story.id, {}),
        )
        title_pid = title_post[story.id]
        title, text = rep_text.get(title_pid or -1, (None, ""))
        subjects[story.id] = Subject(
            kind="story",
            id=story.id,
            # the post as written (a forum post's own title, else its text), not the story's
            # normalised title: staff read "封城了？" with the poster's full-width marks
            title=_title(title or text or story.title),
            summary=_title(text, 300),
            features=f,
            post_ids=[r.id for r in rows],
            hourly=hourly,
            debunk_id=did,
        )
    return subjects


def _title_post(story: Story, rows: Sequence[Any], refuting: set[int]) -> int | None:
    """The post an alert on ``story`` is titled and summarised by: its founder, unless the founder
    refutes the claim ("网传…不实") and a post spreads it; then the first spreading post, since the
    alert is about the claim going round and staff should read the claim, not its denial."""
    rep = story.representative_post_id
    if rep not in refuting:
        return rep
    spreading = [r for r in rows if r.id not in refuting]
    if not spreading:
        return rep
    return min(spreading, key=lambda r: (r.published_at or r.collected_at, r.id)).id


def _hourly_of(rows: Sequence[Any]) -> dict[str, int]:
    hourly: dict[str, int] = defaultdict(int)
    for r in rows:
        hourly[hour_key(r.published_at or r.collected_at)] += 1
    return dict(hourly)


def _max_probability(session: Session, key: Any, keys: Sequence[int]) -> dict[int, float]:
    """Best rumor probability per story, over the posts whose ``key`` (story or post id) is in ``keys``."""
    best: dict[int, float] = {}
    for chunk in _chunks(keys):
        for sid, p in session.execute(
            select(Post.story_id, func.max(PostScore.rumor_probability))
            .join(PostScore, PostScore.post_id == Post.id)
            .where(key.in_(chunk))
            .group_by(Post.story_id)
        ):
            if sid is None:  # a post without a story (by post id): it counts for none
                continue
            best[sid] = max(best.get(sid, 0.0), float(p))  # a chunk of post ids may split a story
    return best


def _best_debunk(session: Session, key: Any, keys: Sequence[int]) -> dict[int, tuple[int, float]]:
    """Most similar debunk match per story, over the posts whose ``key`` is in ``keys``."""
    best: dict[int, tuple[int, float]] = {}
    for chunk in _chunks(keys):
        for sid, match_id, match_sim in session.execute(
            select(Post.story_id, DebunkMatch.debunk_id, DebunkMatch.similarity)
            .join(DebunkMatch, DebunkMatch.post_id == Post.id)
            .where(key.in_(chunk))
        ):
            if sid is None:  # a post without a story (by post id): it counts for none
                continue
            if sid not in best or match_sim > best[sid][1]:
                best[sid] = (match_id, float(match_sim))
    return best


def _spread_window(cfg: RulesConfig) -> float:
    windows = [r.window_hours for r in cfg.enabled("spread")]
    return max(windows) if windows else 6.0


def topic_voice(session: Session, topic: Topic) -> tuple[int, str] | None:
    """The post (id, raw text) that shows what a topic's people say: its representative (most
    central) post, unless that is the official answer ("经核实…不实"), then the latest post that
    does not refute it."""
    rep = (session.execute(select(Post.id, Post.raw_text, Post.norm_text)
                           .where(Post.id == topic.representative_post_id)).first()
           if topic.representative_post_id else None)
    if rep is not None and not refutation_of(rep.norm_text):
        return rep.id, rep.raw_text
    latest = session.execute(select(Post.id, Post.raw_text, Post.norm_text).where(Post.topic_id == topic.id)
                             .order_by(Post.id.desc()).limit(500))
    saying = next((r for r in latest if not refutation_of(r.norm_text)), None)
    if saying is not None:
        return saying.id, saying.raw_text
    return (rep.id, rep.raw_text) if rep is not None else None


def _topic_subject(session: Session, topic: Topic, cfg: RulesConfig) -> Subject:
    rows = session.execute(
        select(Post.id, Post.is_local, Post.raw_text, Post.norm_text)
        .where(Post.topic_id == topic.id)
        .order_by(Post.id.desc())
        .limit(500)
    ).all()
    voice = topic_voice(session, topic)
    rep = voice[1] if voice else None
    local = 1.0 if topic.places else (sum(1 for r in rows if r.is_local) / len(rows) if rows else 0.0)
    hourly = {k: int(v) for k, v in (topic.hourly_counts or {}).items() if isinstance(v, (int, float))}
    f = Features(
        post_count=max(topic.post_count or 0, len(rows)),
        velocity=_velocity(hourly, topic.last_seen, cfg.velocity_window_hours),
        groups=topic.group_count or 0,
        groups_in_window=topic.group_count or 0,
        local_share=local,
        category=topic.category,
        negativity=topic.negativity,
        is_hot=topic.is_hot,
        places=[p for p in (topic.places or []) if isinstance(p, str)],
    )
    return Subject(
        kind="topic",
        id=topic.id,
        title=_title(topic.label),
        summary=_title(rep or topic.label, 300),
        features=f,
        post_ids=[r.id for r in rows],
        hourly=hourly,
    )


def fire_rules(f: Features, cfg: RulesConfig, subject_kind: str) -> list[dict[str, Any]]:
    """The enabled rules a subject meets, as ``{"id", "name", "kind", "points", "why"}``."""
    fired: list[dict[str, Any]] = []

    def add(rule: Any, why: str) -> None:
        fired.append(
            {"id": rule.id, "name": rule.name, "kind": rule.kind, "points": rule.severity, "why": why}
        )

    for rule in cfg.enabled("rumor_probability"):
        if f.rumor_probability is not None and f.rumor_probability >= rule.threshold():
            add(rule, f"谣言概率 {f.rumor_probability:.2f} ≥ {rule.threshold():.2f}")
    for rule in cfg.enabled("debunk_match"):
        if f.debunk_id and (f.debunk_similarity or 0) >= rule.min_similarity:
            add(rule, f"与已辟谣信息 #{f.debunk_id} 相似度 {f.debunk_similarity or 0:.2f}")
    for rule in cfg.enabled("spread"):
        if f.groups_in_window >= rule.min_groups:
            add(rule, f"{rule.window_hours:g} 小时内在 {f.groups_in_window} 个群或来源出现")
    if subject_kind == "topic":
        for rule in cfg.enabled("hot_concern"):
            if (
                f.is_hot
                and (not rule.require_local or f.local_share > 0)
                and (not rule.categories or f.category in rule.categories)
            ):
                add(rule, "本地热点关切" if rule.require_local else "热点关切")
    for rule in cfg.enabled("keyword"):
        if rule.id in f.keyword_hits:
            add(rule, "命中关键词：" + "、".join(f.keyword_hits[rule.id][:8]))
    return fired


def _kind(fired: list[dict[str, Any]], default: str, subject_kind: str = "story") -> str:
    kinds = {_KIND_OF_RULE[r["kind"]] for r in fired}
    if subject_kind == "topic" and "concern" in kinds:
        return "concern"  # a topic is a concern first, whatever else it also meets
    return next((k for k in _KIND_ORDER if k in kinds), default)


def _score(
    subject: Subject, cfg: RulesConfig, fired: list[dict[str, Any]]
) -> tuple[float, dict[str, Any], str]:
    score, parts = risk(subject.features, cfg, fired)
    return score, parts, severity_for(score, cfg)


# ----------------------------------------------------------------------------- suggested responses


def suggest_response(
    session: Session,
    *,
    debunk_id: int | None,
    category: str | None,
    title: str,
    places: list[str],
    cfg: RulesConfig,
) -> str | None:
    """A draft for staff to edit: from the debunk's official text, else the category's template."""
    if debunk_id:
        d = session.get(Debunk, debunk_id)
        if d is not None:
            source = "、".join(x for x in (d.publisher, d.url) if x)
            return (
                f"【辟谣】近期有人在群聊和网络上转发“{_title(d.claim, 80)}”的说法。"
                f"经核实，{d.refutation.strip()}"
                + (f"（来源：{source}）" if source else "")
                + " 请大家不信谣、不传谣，以官方发布的信息为准。"
            )
    template = cfg.response_templates.get(category or "") or cfg.response_templates.get("其他")
    if not template:
        return None
    return template.format(
        title=_title(title, 40),
        places="、".join(places[:3]) or "相关地区",
        category=category or "其他",
        office=cfg.office_name,
    )


# ----------------------------------------------------------------------------- evaluate


@dataclass
class EvaluateResult:
    posts_seen: int = 0
    stories_seen: int = 0
    topics_seen: int = 0
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
            "created": len(self.created),
            "folded": len(self.folded),
            "rising": len(self.rising),
            "realerted": len(self.realerted),
            "notifications": self.notifications,
            "responses_measured": self.responses_measured,
        }


class _Notifier:
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
    notifier = _Notifier(notify_config)
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

    # 1. new posts: which stories they touch, and the watched keywords they contain
    q = select(Post.id, Post.story_id, Post.title, Post.raw_text, Post.norm_text, Post.analyzed_at).where(
        Post.analyzed_at.is_not(None)
    )
    if post_since is not None:
        q = q.where(Post.analyzed_at > post_since)
    keyword_rules: list[KeywordRule] = cfg.enabled("keyword")
    new_by_story: dict[int, list[int]] = defaultdict(list)
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
        if row.story_id is not None:
            new_by_story[row.story_id].append(row.id)
            for rid, words in hits.items():
                hits_by_story[row.story_id].setdefault(rid, [])
                hits_by_story[row.story_id][rid] = sorted(set(hits_by_story[row.story_id][rid]) | set(words))
        elif hits:
            lone.append((row.id, (row.title or "") + " " + row.raw_text))
            hits_by_post[row.id] = hits
    run.post_watermark = post_mark

    # 2. stories
    story_ids = sorted(new_by_story)
    stories: list[Story] = []
    for chunk in _chunks(story_ids):
        stories += list(session.scalars(select(Story).where(Story.id.in_(chunk))))
    result.stories_seen = len(stories)
    subjects = _story_features(session, stories, cfg, hits_by_story)
    latest = _latest_alerts(session, Alert.story_id, story_ids)
    # which of the new posts are already evidence of their story's open alert (one pass, not one
    # query per alert: the run re-reads a little of the previous run's window on purpose)
    open_alert_story = {a.id: sid for sid, a in latest.items() if a.status in OPEN_STATES}
    known_by_story: dict[int, set[int]] = defaultdict(set)
    all_new = [pid for sid in story_ids for pid in new_by_story[sid]]
    for chunk in _chunks(all_new):
        for alert_id, post_id in session.execute(
            select(AlertPost.alert_id, AlertPost.post_id).where(AlertPost.post_id.in_(chunk))
        ):
            if alert_id in open_alert_story:
                known_by_story[open_alert_story[alert_id]].add(post_id)
    for sid, subject in subjects.items():
        subject.new_post_ids = new_by_story[sid]
        subject.known_evidence = known_by_story.get(sid, set())
        _apply(session, subject, latest.get(sid), cfg, now, notifier, result, pending)

    # 3. hot topics changed since the last run
    tq = select(Topic).where(Topic.is_hot.is_(True))
    if topic_since is not None:
        tq = tq.where(Topic.updated_at > topic_since)
    topics = list(session.scalars(tq))
    result.topics_seen = len(topics)
    topic_mark = last.topic_watermark if last else None
    for t in topics:
        topic_mark = t.updated_at if topic_mark is None or t.updated_at > topic_mark else topic_mark
    run.topic_watermark = topic_mark
    latest_t = _latest_alerts(session, Alert.topic_id, [t.id for t in topics], story_null=True)
    for t in topics:
        subject = _topic_subject(session, t, cfg)
        subject.new_post_ids = subject.post_ids
        _apply(session, subject, latest_t.get(t.id), cfg, now, notifier, result, pending)

    # 4. watched keywords in posts that belong to no story
    if lone:
        known = {e["post_id"] for e in pending.evidence}
        known |= {pid for _a, subj, *_rest in pending.created for pid in subj.post_ids}
        for chunk in _chunks([pid for pid, _ in lone]):
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
                title=_title(lone_text),
                summary=_title(lone_text, 300),
                features=f,
                post_ids=[pid],
                new_post_ids=[pid],
            )
            _apply(session, subject, None, cfg, now, notifier, result, pending)

    _finish(session, pending, now, notifier, result)
    result.responses_measured = _remeasure_responses(session, now, cfg)
    result.notifications = notifier.count
    result.notify_error = notifier.error
    run.finished_at = utcnow()
    run.stats = result.as_dict()
    session.flush()
    log.info("alerts evaluated: %s", run.stats)
    forget_counts()
    return result


def _latest_alerts(
    session: Session, column: Any, ids: list[int], story_null: bool = False
) -> dict[int, Alert]:
    latest: dict[int, Alert] = {}
    for chunk in _chunks(ids):
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
    notifier: _Notifier,
    result: EvaluateResult,
    pending: _Pending,
) -> None:
    fired = fire_rules(subject.features, cfg, subject.kind)
    if existing is not None and existing.status in OPEN_STATES:
        _fold(session, existing, subject, cfg, fired, now, notifier, result, pending)
        return
    if not fired:
        return
    score, parts, severity = _score(subject, cfg, fired)
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
        session, subject, cfg, fired, score, parts, severity, now, kind=_kind(fired, "rumor", subject.kind)
    )
    session.add(alert)
    pending.created.append((alert, subject, fired, severity, existing, base))


def _finish(
    session: Session, pending: _Pending, now: dt.datetime, notifier: _Notifier, result: EvaluateResult
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
    _insert_ignore(session, AlertPost.__table__, pending.evidence)
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
            session, debunk_id=f.debunk_id, category=f.category, title=subject.title, places=f.places, cfg=cfg
        ),
    )


def _create(
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
    _insert_ignore(
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
    notifier: _Notifier,
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
            for chunk in _chunks(subject.new_post_ids):
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
    score, parts, severity = _score(subject, cfg, fired)
    old_rank, old_count = alert.severity_rank, alert.noted_post_count or alert.post_count
    changed = f.post_count != alert.post_count or f.groups != alert.group_count or parts != alert.score_parts
    if not changed and not new_ids:
        return  # nothing new: the alert keeps its place in the queue
    alert.post_count, alert.group_count = f.post_count, f.groups
    alert.score_parts, alert.rules_fired = parts, fired
    alert.risk_score = max(score, alert.risk_score) if severity_rank(severity) <= old_rank else score
    if alert.category is None and f.category:
        alert.category = f.category
    if alert.suggested_response is None or (
        f.debunk_id and "【辟谣】" not in (alert.suggested_response or "")
    ):
        alert.suggested_response = (
            suggest_response(
                session,
                debunk_id=f.debunk_id,
                category=alert.category,
                title=alert.title,
                places=f.places,
                cfg=cfg,
            )
            or alert.suggested_response
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


# ----------------------------------------------------------------------------- the workflow


def get_alert(session: Session, alert_id: int, *, lock: bool = False) -> Alert:
    q = select(Alert).where(Alert.id == alert_id)
    if lock:
        q = q.with_for_update()
    alert = session.scalar(q)
    if alert is None:
        raise NotFound(f"预警 #{alert_id} 不存在：请检查编号，或回到预警列表刷新")
    return alert


def _actor(session: Session, actor: User | int | None) -> int | None:
    if actor is None or isinstance(actor, int):
        return actor
    return actor.id


def allowed_transitions(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())


def transition(
    session: Session,
    alert_id: int,
    to: str,
    *,
    actor: User | int | None,
    comment: str | None = None,
    now: dt.datetime | None = None,
) -> Alert:
    """Move an alert to ``to``; invalid moves raise :class:`Conflict` (HTTP 409) naming the valid ones."""
    now = now or utcnow()
    if to not in STATES:
        raise InvalidInput(f"未知状态 '{to}'：可选 {', '.join(STATES)}")
    alert = get_alert(session, alert_id, lock=True)
    current = alert.status
    if to == current:
        raise Conflict(f"预警 #{alert_id} 已经是「{STATE_ZH[current]}」")
    if to not in TRANSITIONS[current]:
        options = "、".join(f"{STATE_ZH[s]}（{s}）" for s in TRANSITIONS[current]) or "无（已关闭）"
        raise Conflict(
            f"预警 #{alert_id} 当前是「{STATE_ZH[current]}」，"
            f"不能直接改为「{STATE_ZH[to]}」。可改为：{options}"
        )
    if to == "responded" and session.scalar(select(func.count()).where(Response.alert_id == alert_id)) == 0:
        raise Conflict(f"预警 #{alert_id} 还没有回应记录：请用“记录回应”填写发布的内容，状态会自动变为已回应")
    actor_id = _actor(session, actor)
    alert.status = to
    alert.updated_at = now
    if alert.acknowledged_at is None and current == "new":
        alert.acknowledged_at = now
    if to in FINISHED_STATES:
        alert.post_count_at_close = _current_post_count(session, alert)
    if current == "dismissed" and to == "acknowledged":
        # Reopened: the earlier verdict no longer stands.
        session.execute(delete(Label).where(Label.alert_id == alert.id, Label.origin == "review"))
    session.add(
        AlertEvent(
            alert_id=alert.id,
            at=now,
            actor_id=actor_id,
            action="status",
            from_status=current,
            to_status=to,
            comment=comment,
        )
    )
    # A dismissed concern is not a verdict on rumors; a confirmed rumor always is.
    if to == "confirmed_rumor" or (to == "dismissed" and alert.kind != "concern" and alert.topic_id is None):
        _review_labels(session, alert, 1 if to == "confirmed_rumor" else 0, actor_id, now)
    session.flush()
    forget_counts()
    return alert


def _current_post_count(session: Session, alert: Alert) -> int:
    if alert.story_id is not None:
        story = session.get(Story, alert.story_id)
        if story is not None:
            return max(story.post_count or 0, alert.post_count)
    return alert.post_count


def _review_labels(
    session: Session, alert: Alert, label: int, actor_id: int | None, now: dt.datetime
) -> None:
    """Each evidence post becomes a label with the text as it was scored (for retraining)."""
    rows = session.execute(
        select(Post.id, Post.norm_text, Post.raw_text, Post.category)
        .join(AlertPost, AlertPost.post_id == Post.id)
        .where(AlertPost.alert_id == alert.id)
        .order_by(Post.id)
        .limit(MAX_LABEL_POSTS)
    ).all()
    if not rows:
        return
    keys = [f"review:{r.id}" for r in rows]
    existing = {lab.dedup_key: lab for lab in session.scalars(select(Label).where(Label.dedup_key.in_(keys)))}
    for r in rows:
        text = r.norm_text or r.raw_text
        key = f"review:{r.id}"
        lab = existing.get(key)
        if lab is None:
            session.add(
                Label(
                    dedup_key=key,
                    post_id=r.id,
                    alert_id=alert.id,
                    text=text,
                    text_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    label=label,
                    category=r.category or alert.category,
                    origin="review",
                    user_id=actor_id,
                    created_at=now,
                )
            )
        else:  # the latest verdict on a post wins
            lab.label, lab.alert_id, lab.user_id, lab.created_at = label, alert.id, actor_id, now


def assign(
    session: Session,
    alert_id: int,
    user_id: int | None,
    *,
    actor: User | int | None,
    now: dt.datetime | None = None,
) -> Alert:
    now = now or utcnow()
    alert = get_alert(session, alert_id, lock=True)
    if user_id is not None:
        user = session.get(User, user_id)
        if user is None or not user.is_active:
            raise NotFound(f"用户 #{user_id} 不存在或已停用：请从用户列表中选择")
        if user.role == "viewer":
            raise InvalidInput(f"用户 '{user.username}' 是只读用户，不能处理预警：请指派给工作人员")
    previous = alert.assignee_id
    if previous == user_id:
        return alert
    alert.assignee_id = user_id
    alert.updated_at = now
    session.add(
        AlertEvent(
            alert_id=alert.id,
            at=now,
            actor_id=_actor(session, actor),
            action="assigned",
            detail={"from": previous, "to": user_id},
        )
    )
    session.flush()
    forget_counts()
    return alert


def add_comment(
    session: Session, alert_id: int, text: str, *, actor: User | int | None, now: dt.datetime | None = None
) -> AlertEvent:
    text = (text or "").strip()
    if not text:
        raise InvalidInput("备注内容不能为空")
    alert = get_alert(session, alert_id)
    event = AlertEvent(
        alert_id=alert.id, at=now or utcnow(), actor_id=_actor(session, actor), action="comment", comment=text
    )
    session.add(event)
    session.flush()
    return event


def respond(
    session: Session,
    alert_id: int,
    *,
    text: str,
    channels: list[str],
    url: str | None = None,
    published_at: dt.datetime | None = None,
    actor: User | int | None,
    now: dt.datetime | None = None,
) -> Response:
    """Record what the office published; the alert becomes 'responded'; spread is measured."""
    now = now or utcnow()
    text = (text or "").strip()
    if not text:
        raise InvalidInput("回应内容不能为空：请填写发布的辟谣或答复文字")
    published_at = published_at or now
    if published_at.tzinfo is None:
        raise InvalidInput("发布时间需要带时区，例如 2026-11-28T15:00:00+08:00")
    if published_at > now + dt.timedelta(minutes=5):
        raise InvalidInput("发布时间不能晚于现在：只记录已经发布的回应")
    alert = get_alert(session, alert_id, lock=True)
    if alert.status not in ("confirmed_rumor", "confirmed_concern", "responded"):
        raise Conflict(
            f"预警 #{alert_id} 当前是「{STATE_ZH[alert.status]}」：请先确认为谣言或关切，再记录回应"
        )
    actor_id = _actor(session, actor)
    response = Response(
        alert_id=alert.id,
        text=text,
        channels=[c.strip() for c in channels if c.strip()],
        url=url,
        published_at=published_at,
        created_by=actor_id,
        created_at=now,
    )
    session.add(response)
    session.flush()
    measure_spread(session, response, alert, now=now)
    if alert.status != "responded":
        session.add(
            AlertEvent(
                alert_id=alert.id,
                at=now,
                actor_id=actor_id,
                action="status",
                from_status=alert.status,
                to_status="responded",
                comment="记录回应",
            )
        )
        alert.status = "responded"
    alert.updated_at = now
    session.add(
        AlertEvent(
            alert_id=alert.id,
            at=now,
            actor_id=actor_id,
            action="responded",
            comment=_title(text, 200),
            detail={"response_id": response.id, "channels": response.channels, "url": url},
        )
    )
    session.flush()
    forget_counts()
    return response


def _hourly_for(session: Session, alert: Alert) -> dict[str, int]:
    source: dict[str, Any] = {}
    if alert.story_id is not None:
        story = session.get(Story, alert.story_id)
        source = story.hourly_counts if story is not None else {}
    elif alert.topic_id is not None:
        topic = session.get(Topic, alert.topic_id)
        source = topic.hourly_counts if topic is not None else {}
    hourly = {
        k[:13]: int(v) for k, v in (source or {}).items() if isinstance(v, (int, float)) and parse_hour(k)
    }
    if hourly:
        return hourly
    for published, collected in session.execute(
        select(Post.published_at, Post.collected_at)
        .join(AlertPost, AlertPost.post_id == Post.id)
        .where(AlertPost.alert_id == alert.id)
    ):
        key = hour_key(published or collected)
        hourly[key] = hourly.get(key, 0) + 1
    return hourly


def spread_around(
    hourly: dict[str, int], at: dt.datetime, hours: int, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Posts per hour in the ``hours`` before and after ``at`` (the response's hour counts as after)."""
    start = at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    before = [(hour_key(start - dt.timedelta(hours=i)), 0) for i in range(hours, 0, -1)]
    after = [(hour_key(start + dt.timedelta(hours=i)), 0) for i in range(hours)]
    before_s: list[dict[str, Any]] = [{"hour": k, "count": hourly.get(k, 0)} for k, _ in before]
    after_s: list[dict[str, Any]] = [{"hour": k, "count": hourly.get(k, 0)} for k, _ in after]
    elapsed = (now - start).total_seconds() / 3600
    observed = max(0, min(hours, int(elapsed) + (1 if elapsed > int(elapsed) else 0)))
    after_s = after_s[:observed] if observed else []
    b = sum(x["count"] for x in before_s)
    a = sum(x["count"] for x in after_s)
    before_d = {"hours": hours, "posts": b, "per_hour": round(b / hours, 2), "series": before_s}
    after_d = {
        "hours": hours,
        "observed_hours": observed,
        "posts": a,
        "per_hour": round(a / observed, 2) if observed else None,
        "series": after_s,
        "complete": observed >= hours,
    }
    if observed and b:
        after_d["change"] = round((a / observed) / (b / hours) - 1, 3)
    return before_d, after_d


def measure_spread(
    session: Session,
    response: Response,
    alert: Alert | None = None,
    *,
    now: dt.datetime | None = None,
    hours: int | None = None,
) -> None:
    alert = alert or get_alert(session, response.alert_id)
    if hours is None:
        try:
            hours = load_rules().response_hours
        except InvalidInput:
            hours = 6
    response.spread_before, response.spread_after = spread_around(
        _hourly_for(session, alert), response.published_at, hours, now or utcnow()
    )


def _remeasure_responses(session: Session, now: dt.datetime, cfg: RulesConfig) -> int:
    """Responses whose after-window is still open get their spread measured again."""
    since = now - dt.timedelta(hours=cfg.response_hours + 1)
    count = 0
    for response in session.scalars(select(Response).where(Response.published_at >= since)):
        if (response.spread_after or {}).get("complete"):
            continue
        measure_spread(session, response, now=now, hours=cfg.response_hours)
        count += 1
    return count


def escalate(
    session: Session, *, now: dt.datetime | None = None, config: notify.NotifyConfig | None = None
) -> list[int]:
    """Mark and notify high/urgent alerts nobody acknowledged in time (each level once)."""
    now = now or utcnow()
    config = config or notify.load_notify_config()
    notifier = _Notifier(config)
    escalated: list[int] = []
    for level, spec in enumerate(config.escalation, start=1):
        for severity, minutes in spec.after_minutes.items():
            cutoff = now - dt.timedelta(minutes=minutes)
            due = session.scalars(
                select(Alert)
                .where(
                    Alert.status == "new",
                    Alert.severity == severity,
                    Alert.escalation_level == level - 1,
                    Alert.created_at <= cutoff,
                )
                .order_by(Alert.id)
                .with_for_update(skip_locked=True)
            )
            for alert in due:
                alert.escalation_level, alert.escalated_at, alert.updated_at = level, now, now
                note = f"{SEVERITY_ZH[severity]}等级预警 {minutes:g} 分钟内无人认领，已升级到第 {level} 级"
                session.add(
                    AlertEvent(
                        alert_id=alert.id,
                        at=now,
                        action="escalated",
                        comment=note,
                        detail={"level": level, "after_minutes": minutes},
                    )
                )
                routes = [r for r in spec.routes if r.wants(alert, "escalated")]
                notifier(session, alert, f"escalated:{level}", now, note, routes=routes)
                escalated.append(alert.id)
    session.flush()
    forget_counts()
    return escalated


def create_manual(
    session: Session,
    *,
    actor: User | int | None,
    topic_id: int | None = None,
    post_id: int | None = None,
    story_id: int | None = None,
    title: str | None = None,
    severity: str | None = None,
    comment: str | None = None,
    now: dt.datetime | None = None,
    rules: RulesConfig | None = None,
) -> Alert:
    """An alert raised by staff from a topic, a story or a post (one open alert per story still holds)."""
    now = now or utcnow()
    cfg = rules or load_rules()
    if sum(x is not None for x in (topic_id, post_id, story_id)) != 1:
        raise InvalidInput("请只指定一个来源：topic_id（话题）、story_id（事件）或 post_id（帖子）")
    if severity is not None and severity not in SEVERITIES:
        raise InvalidInput(f"未知等级 '{severity}'：可选 {', '.join(SEVERITIES)}")
    if post_id is not None:
        post = session.get(Post, post_id)
        if post is None:
            raise NotFound(f"帖子 #{post_id} 不存在")
        story_id = post.story_id
    subject: Subject
    if story_id is not None:
        story = session.get(Story, story_id)
        if story is None:
            raise NotFound(f"事件 #{story_id} 不存在")
        existing = _latest_alerts(session, Alert.story_id, [story_id]).get(story_id)
        if existing is not None and existing.status in OPEN_STATES:
            raise Conflict(f"这个事件已有未结束的预警 #{existing.id}：请直接处理该预警")
        subject = _story_features(session, [story], cfg, {})[story_id]
    elif topic_id is not None:
        topic = session.get(Topic, topic_id)
        if topic is None:
            raise NotFound(f"话题 #{topic_id} 不存在")
        existing = _latest_alerts(session, Alert.topic_id, [topic_id], story_null=True).get(topic_id)
        if existing is not None and existing.status in OPEN_STATES:
            raise Conflict(f"这个话题已有未结束的预警 #{existing.id}：请直接处理该预警")
        subject = _topic_subject(session, topic, cfg)
    else:
        assert post_id is not None
        post = session.get(Post, post_id)
        assert post is not None
        if (
            session.scalar(
                select(AlertPost.alert_id)
                .join(Alert)
                .where(AlertPost.post_id == post_id, Alert.status.in_(OPEN_STATES))
                .limit(1)
            )
            is not None
        ):
            raise Conflict(f"帖子 #{post_id} 已在未结束的预警中")
        text = (post.title or "") + " " + post.raw_text
        subject = Subject(
            kind="post",
            id=post_id,
            title=_title(text),
            summary=_title(text, 300),
            features=Features(
                post_count=1,
                category=post.category,
                negativity=post.negativity,
                local_share=1.0 if post.is_local else 0.0,
                places=[p for p in post.places or [] if isinstance(p, str)],
            ),
            post_ids=[post_id],
        )
    fired = fire_rules(subject.features, cfg, subject.kind)
    score, parts, computed = _score(subject, cfg, fired)
    chosen = severity or computed
    parts["manual"] = {
        "value": chosen,
        "points": 0,
        "max": None,
        "text": f"人工预警，等级由工作人员定为{SEVERITY_ZH[chosen]}" if severity else "人工预警",
    }
    actor_id = _actor(session, actor)
    alert = _create(
        session, subject, cfg, fired, score, parts, chosen, now, kind="manual", actor_id=actor_id, title=title
    )
    if comment and comment.strip():
        session.add(
            AlertEvent(
                alert_id=alert.id, at=now, actor_id=actor_id, action="comment", comment=comment.strip()
            )
        )
    _Notifier(None)(session, alert, "manual", now, comment)
    session.flush()
    forget_counts()
    return alert


# ----------------------------------------------------------------------------- reading


@dataclass
class AlertFilters:
    status: Sequence[str] = field(default_factory=list)
    severity: Sequence[str] = field(default_factory=list)
    category: Sequence[str] = field(default_factory=list)
    kind: Sequence[str] = field(default_factory=list)
    assignee_id: int | None = None
    unassigned: bool = False
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    q: str | None = None
    story_id: int | None = None
    topic_id: int | None = None


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# The alert queue is the most requested query of the product (every open console polls it), so
# it is written as plain SQL that both dialects accept: building it through the ORM cost 4x the
# query itself. Typed binds and result columns keep times as aware UTC, as everywhere else.
_LIST_SELECT = (
    "SELECT a.id, a.kind, a.title, a.severity, a.risk_score, a.category, a.status, a.assignee_id, "
    "a.story_id, a.topic_id, a.post_count, a.group_count, a.escalation_level, a.created_at, a.updated_at, "
    "u.username AS assignee FROM alerts a LEFT OUTER JOIN users u ON u.id = a.assignee_id"
)
_ORDER = " ORDER BY a.severity_rank DESC, a.updated_at DESC, a.id DESC LIMIT :limit OFFSET :offset"
_TIME = Alert.__table__.c.created_at.type
_statements: dict[tuple[str, str], Any] = {}


def _where(f: AlertFilters, dialect: str) -> tuple[str, dict[str, Any]]:
    parts: list[str] = []
    params: dict[str, Any] = {}

    def one_of(column: str, name: str, values: Sequence[Any]) -> None:
        if not values:
            return
        names = [f"{name}{i}" for i in range(len(values))]
        params.update(zip(names, values, strict=True))
        if len(names) == 1:
            parts.append(f"{column} = :{names[0]}")
        else:
            parts.append(f"{column} IN ({', '.join(':' + n for n in names)})")

    # Severity is filtered on its rank: (status, severity_rank, updated_at) is a covering index.
    ranks = sorted({severity_rank(s) for s in f.severity if s in SEVERITIES})
    if f.severity and not ranks:
        parts.append("1 = 0")
    one_of("a.status", "status", f.status)
    one_of("a.severity_rank", "rank", ranks)
    one_of("a.category", "category", f.category)
    one_of("a.kind", "kind", f.kind)
    if f.unassigned:
        parts.append("a.assignee_id IS NULL")
    elif f.assignee_id is not None:
        parts.append("a.assignee_id = :assignee")
        params["assignee"] = f.assignee_id
    if f.since is not None:
        parts.append("a.created_at >= :since")
        params["since"] = f.since
    if f.until is not None:
        parts.append("a.created_at < :until")
        params["until"] = f.until
    for name, value in (("story_id", f.story_id), ("topic_id", f.topic_id)):
        if value is not None:
            parts.append(f"a.{name} = :{name}")
            params[name] = value
    if f.q:
        like = "ILIKE" if dialect == "postgresql" else "LIKE"  # SQLite's LIKE ignores ASCII case already
        parts.append(f"(a.title {like} :q ESCAPE '\\' OR a.summary {like} :q ESCAPE '\\')")
        params["q"] = _like(f.q)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _statement(sql: str) -> Any:
    stmt = _statements.get(("", sql))
    if stmt is None:
        stmt = text(sql)
        binds = [bindparam(n, type_=_TIME) for n in ("since", "until") if f":{n}" in sql]
        if binds:
            stmt = stmt.bindparams(*binds)
        if sql.startswith("SELECT a.id"):
            stmt = stmt.columns(
                *(
                    column(n)
                    for n in (
                        "id",
                        "kind",
                        "title",
                        "severity",
                        "risk_score",
                        "category",
                        "status",
                        "assignee_id",
                        "story_id",
                        "topic_id",
                        "post_count",
                        "group_count",
                        "escalation_level",
                    )
                ),
                column("created_at", _TIME),
                column("updated_at", _TIME),
                column("assignee"),
            )
        if len(_statements) > 500:
            _statements.clear()
        _statements[("", sql)] = stmt
    return stmt


#: Totals of the alert list, per filter, for a moment: counting tens of thousands of index entries
#: on every poll of the queue costs more than the page itself. Writes through this module clear it;
#: other processes' writes show within COUNT_TTL seconds. The page rows themselves are always fresh.
COUNT_TTL = 2.0
_count_cache: dict[Any, tuple[float, int]] = {}
_count_locks: dict[Any, threading.Lock] = {}
_locks_guard = threading.Lock()


def forget_counts() -> None:
    _count_cache.clear()


def _filters_key(f: AlertFilters) -> Any:
    return (
        tuple(f.status),
        tuple(f.severity),
        tuple(f.category),
        tuple(f.kind),
        f.assignee_id,
        f.unassigned,
        f.since,
        f.until,
        f.q,
        f.story_id,
        f.topic_id,
    )


def _bind(session: Session | Connection) -> Any:
    return session if isinstance(session, Connection) else session.get_bind()


def count_alerts(session: Session | Connection, filters: AlertFilters) -> int:
    """How many alerts match, cached for COUNT_TTL seconds. One caller per filter counts at a time:
    the others wait for it, or, when an older figure exists, use that meanwhile (a slow count, such
    as a text search over 100,000 alerts, must not be run 32 times at once)."""
    bind = _bind(session)
    key = (str(bind.engine.url), _filters_key(filters))
    hit = _count_cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < COUNT_TTL:
        return hit[1]
    with _locks_guard:
        if len(_count_locks) > 1000:
            _count_locks.clear()
        lock = _count_locks.setdefault(key, threading.Lock())
    if hit is not None:
        if not lock.acquire(blocking=False):
            return hit[1]
    else:
        lock.acquire()
        hit = _count_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < COUNT_TTL:
            lock.release()
            return hit[1]
    try:
        where, params = _where(filters, bind.dialect.name)
        total = int(
            session.execute(_statement("SELECT count(*) FROM alerts a" + where), params).scalar() or 0
        )
        if len(_count_cache) > 1000:
            _count_cache.clear()
        _count_cache[key] = (time.monotonic(), total)
    finally:
        lock.release()
    return total


def list_alerts(
    session: Session | Connection, filters: AlertFilters, *, offset: int = 0, limit: int = 20
) -> tuple[list[dict[str, Any]], int]:
    """Alerts matching ``filters``, most severe first, then most recently updated (a Session or a
    plain Connection: the queue endpoint skips the ORM)."""
    where, params = _where(filters, _bind(session).dialect.name)
    rows = session.execute(
        _statement(_LIST_SELECT + where + _ORDER), params | {"limit": limit, "offset": offset}
    )
    keys = list(rows.keys())
    items = [dict(zip(keys, row, strict=True)) for row in rows.all()]
    if len(items) < limit and (items or offset == 0):
        return items, offset + len(items)  # the last page tells the exact total for free
    return items, count_alerts(session, filters)


def _pairs(result: Any) -> dict[Any, Any]:
    return {row[0]: row[1] for row in result}


def _usernames(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return _pairs(session.execute(select(User.id, User.username).where(User.id.in_(ids))))


def highlight(text: str, terms: Iterable[str]) -> tuple[str, list[list[Any]]]:
    """Escaped HTML with ``<mark>`` around the terms, and the ``[start, end, term]`` spans (on ``text``).

    Case-insensitive: the model's terms are lower-cased ("qq", "covid"), the post is not.
    """
    words = sorted({t for t in terms if isinstance(t, str) and t.strip()}, key=len, reverse=True)
    if not words:
        return html.escape(text), []
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    spans: list[list[Any]] = []
    out: list[str] = []
    pos = 0
    for m in pattern.finditer(text):
        spans.append([m.start(), m.end(), m.group(0)])
        out.append(html.escape(text[pos : m.start()]))
        out.append(f"<mark>{html.escape(m.group(0))}</mark>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out), spans


def _terms(explanation: Any) -> list[str]:
    terms = []
    for item in explanation or []:
        if isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
            weight = item[1] if len(item) > 1 and isinstance(item[1], (int, float)) else 1
            if weight > 0:
                terms.append(item[0])
        elif isinstance(item, dict) and isinstance(item.get("term"), str):
            terms.append(item["term"])
    return terms


def alert_detail(
    session: Session, alert_id: int, *, posts_limit: int = 50, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Everything the review page shows about one alert."""
    alert = get_alert(session, alert_id)
    now = now or utcnow()
    keyword_terms = [
        w
        for r in alert.rules_fired or []
        if isinstance(r, dict) and r.get("kind") == "keyword"
        for w in re.findall(r"[^、：]+", str(r.get("why", "")).split("：", 1)[-1])
    ]
    post_rows = session.execute(
        select(
            Post.id,
            Post.channel,
            Post.title,
            Post.raw_text,
            Post.url,
            Post.author,
            Post.published_at,
            Post.collected_at,
            Post.group_id,
            Post.source_id,
            Post.category,
            Post.is_local,
            Post.norm_text,
            ChatGroup.name.label("group_name"),
            Source.name.label("source_name"),
        )
        .join(AlertPost, AlertPost.post_id == Post.id)
        .outerjoin(ChatGroup, ChatGroup.id == Post.group_id)
        .outerjoin(Source, Source.id == Post.source_id)
        .where(AlertPost.alert_id == alert.id)
        .order_by(func.coalesce(Post.published_at, Post.collected_at).desc(), Post.id.desc())
        .limit(posts_limit)
    ).all()
    ids = [r.id for r in post_rows]
    scores: dict[int, tuple[float, list[Any]]] = {}
    if ids:
        for pid, prob, expl in session.execute(
            select(PostScore.post_id, PostScore.rumor_probability, PostScore.explanation)
            .where(PostScore.post_id.in_(ids))
            .order_by(PostScore.scored_at)
        ):
            scores[pid] = (prob, expl)
    posts = []
    for r in post_rows:
        prob, expl = scores.get(r.id, (None, []))
        terms = _terms(expl) + keyword_terms
        text_html, spans = highlight(r.raw_text, terms)
        cues = refutation_of(r.norm_text)
        posts.append(
            {
                "id": r.id,
                "channel": r.channel,
                "title": r.title,
                "text": r.raw_text,
                "text_html": text_html,
                "highlights": spans,
                "terms": _terms(expl),
                "url": r.url,
                "author": r.author,
                "published_at": r.published_at,
                "collected_at": r.collected_at,
                "group": r.group_name,
                "source": r.source_name,
                "category": r.category,
                "is_local": r.is_local,
                "rumor_probability": prob,
                # Shown, marked, and not counted as spreading (see _story_features).
                "refutes": bool(cues),
                "stance": REFUTES_ZH if cues else None,
                "refutation_cues": list(cues),
            }
        )
    # groups and sources reached, over all the evidence (not only the page of posts above)
    reached = session.execute(
        select(ChatGroup.name, Source.name, func.count())
        .select_from(AlertPost)
        .join(Post, Post.id == AlertPost.post_id)
        .outerjoin(ChatGroup, ChatGroup.id == Post.group_id)
        .outerjoin(Source, Source.id == Post.source_id)
        .where(AlertPost.alert_id == alert.id)
        .group_by(ChatGroup.name, Source.name)
    ).all()
    groups: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for gname, sname, c in reached:
        if gname:
            groups[gname] += c
        elif sname:
            sources[sname] += c
    # matched debunks: the story's, and any matched by an evidence post
    matches: dict[int, float] = {}
    for did, sim in session.execute(
        select(DebunkMatch.debunk_id, func.max(DebunkMatch.similarity))
        .join(AlertPost, AlertPost.post_id == DebunkMatch.post_id)
        .where(AlertPost.alert_id == alert.id)
        .group_by(DebunkMatch.debunk_id)
    ):
        matches[did] = float(sim)
    story = session.get(Story, alert.story_id) if alert.story_id else None
    if story is not None and story.debunk_id:
        matches[story.debunk_id] = max(matches.get(story.debunk_id, 0.0), story.debunk_similarity or 0.0)
    debunks: list[dict[str, Any]] = []
    if matches:
        for d in session.scalars(select(Debunk).where(Debunk.id.in_(list(matches)))):
            debunks.append(
                {
                    "id": d.id,
                    "claim": d.claim,
                    "refutation": d.refutation,
                    "publisher": d.publisher,
                    "url": d.url,
                    "published_at": d.published_at,
                    "similarity": round(matches[d.id], 4),
                }
            )
        debunks.sort(key=lambda x: -x["similarity"])
    hourly = _hourly_for(session, alert)
    timeline = [{"hour": k, "count": hourly[k]} for k in sorted(hourly)]
    events = session.execute(
        select(AlertEvent, User.username)
        .outerjoin(User, User.id == AlertEvent.actor_id)
        .where(AlertEvent.alert_id == alert.id)
        .order_by(AlertEvent.at, AlertEvent.id)
    ).all()
    history = [
        {
            "id": e.id,
            "at": e.at,
            "actor_id": e.actor_id,
            "actor": name or ("系统" if e.actor_id is None else None),
            "action": e.action,
            "from_status": e.from_status,
            "to_status": e.to_status,
            "comment": e.comment,
            "detail": e.detail,
        }
        for e, name in events
    ]
    responses = [
        response_dict(r)
        for r in session.scalars(select(Response).where(Response.alert_id == alert.id).order_by(Response.id))
    ]
    names = _usernames(session, {alert.assignee_id} if alert.assignee_id else set())
    return {
        "id": alert.id,
        "kind": alert.kind,
        "title": alert.title,
        "summary": alert.summary,
        "severity": alert.severity,
        "risk_score": alert.risk_score,
        "score_parts": alert.score_parts,
        "rules_fired": alert.rules_fired,
        "category": alert.category,
        "status": alert.status,
        "allowed_transitions": list(allowed_transitions(alert.status)),
        "assignee_id": alert.assignee_id,
        "assignee": names.get(alert.assignee_id or -1),
        "story_id": alert.story_id,
        "topic_id": alert.topic_id,
        "post_count": alert.post_count,
        "group_count": alert.group_count,
        "escalation_level": alert.escalation_level,
        "escalated_at": alert.escalated_at,
        "acknowledged_at": alert.acknowledged_at,
        "suggested_response": alert.suggested_response,
        "created_at": alert.created_at,
        "updated_at": alert.updated_at,
        "posts": posts,
        "timeline": timeline,
        "groups": [{"name": n, "posts": c} for n, c in groups.most_common()],
        "sources": [{"name": n, "posts": c} for n, c in sources.most_common()],
        "debunks": debunks,
        "history": history,
        "responses": responses,
    }


def alert_stats(session: Session) -> dict[str, Any]:
    by_status = _pairs(session.execute(select(Alert.status, func.count()).group_by(Alert.status)))
    open_by_sev = _pairs(
        session.execute(
            select(Alert.severity, func.count()).where(Alert.status.in_(OPEN_STATES)).group_by(Alert.severity)
        )
    )
    unassigned = (
        session.scalar(
            select(func.count())
            .select_from(Alert)
            .where(Alert.status.in_(("new", "acknowledged")), Alert.assignee_id.is_(None))
        )
        or 0
    )
    escalated = (
        session.scalar(
            select(func.count()).select_from(Alert).where(Alert.status == "new", Alert.escalation_level > 0)
        )
        or 0
    )
    return {
        "by_status": {s: int(by_status.get(s, 0)) for s in STATES},
        "open_by_severity": {s: int(open_by_sev.get(s, 0)) for s in SEVERITIES},
        "open": int(sum(by_status.get(s, 0) for s in OPEN_STATES)),
        "unassigned_open": int(unassigned),
        "escalated_unacknowledged": int(escalated),
    }


__all__ = [
    "OPEN_STATES",
    "STATES",
    "STATE_ZH",
    "TRANSITIONS",
    "AlertFilters",
    "EvaluateResult",
    "add_comment",
    "alert_detail",
    "alert_stats",
    "allowed_transitions",
    "assign",
    "create_manual",
    "escalate",
    "evaluate",
    "fire_rules",
    "get_alert",
    "highlight",
    "list_alerts",
    "measure_spread",
    "respond",
    "spread_around",
    "suggest_response",
    "transition",
]


def response_dict(r: Response) -> dict[str, Any]:
    """A recorded response as plain data (the API and the alert detail share this shape)."""
    return {
        "id": r.id,
        "text": r.text,
        "channels": r.channels,
        "url": r.url,
        "published_at": r.published_at,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "spread_before": r.spread_before,
        "spread_after": r.spread_after,
    }
