"""Turn new analysis into alerts: features of what the analysis wrote, the rules it meets, and
raising or folding alerts.

:func:`evaluate` reads what the analysis wrote since the last run (posts.analyzed_at and
topics.updated_at watermarks, with an overlap: re-reading is harmless because every step is
idempotent) and raises or folds alerts. A subject under an open alert folds new posts into it
(evidence grows, severity may rise, a "rising" note is added); a dismissed or closed subject
re-alerts only past a clear growth margin. The session is passed in and the caller commits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from alerts import notify
from alerts.common import chunks, insert_ignore, refutation_of, short_title
from alerts.merge import fold_merged_incident
from alerts.queries import forget_counts
from alerts.rules import SEVERITIES, SEVERITY_ZH, KeywordRule, RulesConfig, load_rules
from alerts.severity import Features, risk, severity_for, severity_rank
from alerts.spread import remeasure_responses
from alerts.states import OPEN_STATES, STATE_ZH
from alerts.subjects import (
    INERT_ROLES,
    Subject,
    hourly_of,
    incident_of_topic,
    incident_subjects,
    matter_kind,
    spread_window,
    velocity,
)
from core.errors import InvalidInput
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    AlertRun,
    Debunk,
    DebunkMatch,
    Incident,
    Post,
    PostScore,
    Story,
    Topic,
    utcnow,
)

log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- features


def story_subjects(
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
    for chunk in chunks(ids):
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
    for chunk in chunks(list(reps)):
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
        window_start = (story.last_seen or utcnow()) - dt.timedelta(hours=spread_window(cfg))
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
            hourly = hourly_of(spreading)
            probability = prob.get(story.id)
            did, sim = debunk.get(story.id, (None, None))
        else:
            post_count = max(story.post_count or 0, len(rows))
            reached = max(story.group_count + story.source_count, len(groups))
            counts = (story.hourly_counts or {}).items()
            hourly = {k: int(v) for k, v in counts if isinstance(v, (int, float))} or hourly_of(rows)
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
            velocity=velocity(hourly, story.last_seen, cfg.velocity_window_hours),
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
            title=short_title(title or text or story.title),
            summary=short_title(text, 300),
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


def _max_probability(session: Session, key: Any, keys: Sequence[int]) -> dict[int, float]:
    """Best rumor probability per story, over the posts whose ``key`` (story or post id) is in ``keys``."""
    best: dict[int, float] = {}
    for chunk in chunks(keys):
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
    for chunk in chunks(keys):
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


def topic_subject(session: Session, topic: Topic, cfg: RulesConfig) -> Subject:
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
        velocity=velocity(hourly, topic.last_seen, cfg.velocity_window_hours),
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
        title=short_title(topic.label),
        summary=short_title(rep or topic.label, 300),
        features=f,
        post_ids=[r.id for r in rows],
        hourly=hourly,
    )


def fire_rules(f: Features, cfg: RulesConfig, subject_kind: str) -> list[dict[str, Any]]:
    """The enabled rules a subject meets, as ``{"id", "name", "kind", "points", "why"}``.

    ``subject_kind``: story | topic | post, or a matter's kind (rumor | concern | notice | unknown)."""
    fired: list[dict[str, Any]] = []

    def add(rule: Any, why: str) -> None:
        fired.append(
            {"id": rule.id, "name": rule.name, "kind": rule.kind, "points": rule.severity, "why": why}
        )

    for rule in cfg.enabled("rumor_probability"):
        if f.rumor_probability is not None and f.rumor_probability >= rule.min_probability:
            add(rule, f"谣言概率 {f.rumor_probability:.2f} ≥ {rule.min_probability}")
    for rule in cfg.enabled("debunk_match"):
        if f.debunk_id and (f.debunk_similarity or 0) >= rule.min_similarity:
            add(rule, f"与已辟谣信息 #{f.debunk_id} 相似度 {f.debunk_similarity or 0:.2f}")
    for rule in cfg.enabled("spread"):
        if f.groups_in_window >= rule.min_groups:
            add(rule, f"{rule.window_hours:g} 小时内在 {f.groups_in_window} 个群或来源出现")
    if subject_kind in ("topic", "concern"):
        for rule in cfg.enabled("hot_concern"):
            # a topic is hot by nlp's measure; a concern incident by its complaints and questions
            hot = f.is_hot if subject_kind == "topic" else f.post_count >= rule.min_posts
            if (
                hot
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
    if subject_kind in ("concern", "notice"):
        return subject_kind  # a matter's kind was decided by its roles
    if subject_kind == "topic" and "concern" in kinds:
        return "concern"  # a topic is a concern first, whatever else it also meets
    return next((k for k in _KIND_ORDER if k in kinds), default)


def _rule_kind(subject: Subject) -> str:
    """What :func:`fire_rules` is told the subject is (a matter by its kind)."""
    if subject.incident is not None:
        return matter_kind(subject.incident)
    return subject.kind


def score_subject(
    subject: Subject, cfg: RulesConfig, fired: list[dict[str, Any]]
) -> tuple[float, dict[str, Any], str]:
    if subject.incident is not None:
        score, parts = incident_score(subject, cfg, fired)
    else:
        score, parts = risk(subject.features, cfg, fired)
    return score, parts, severity_for(score, cfg)


def incident_score(subject: Subject, cfg: RulesConfig, fired: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    """A matter's risk score (0-100) and its explained parts.

    A rumor whose analysis computed its risk (``Incident.risk`` with ``risk_parts``: claims,
    questions, reach, velocity, cues, debunk, locality, each with a Chinese phrase) is scored from
    those parts, scaled to ``weights.incident`` points, plus the category's weight and the points of
    the rules that fired (the office's own rules file stays in charge of severity). Without them
    (an older analysis) the alert computes the parts itself from the claims. A concern is scored
    from its complaints; an official notice is information: always low.
    """
    inc = subject.incident
    assert inc is not None
    kind = matter_kind(inc)
    f = subject.features
    rules_part = {
        "value": [r["id"] for r in fired],
        "points": round(sum(r["points"] for r in fired), 2),
        "max": None,
        "text": "触发规则：" + ("、".join(r["name"] for r in fired) or "无"),
    }
    if kind == "notice":
        notice_parts: dict[str, Any] = {
            "notice": {
                "value": f.groups,
                "points": 0.0,
                "max": None,
                "text": f"官方通知在 {f.groups} 个群或来源传播：是信息，不是谣言",
            },
            "rules": rules_part | {"points": 0.0},
        }
        return 0.0, notice_parts
    matter_parts = (inc.risk_parts or {}).get("parts") if isinstance(inc.risk_parts, dict) else None
    if kind == "concern" or inc.risk is None or not isinstance(matter_parts, list) or not matter_parts:
        return risk(f, cfg, fired)
    scale = cfg.weights.incident
    parts: dict[str, Any] = {}
    for p in matter_parts:
        if not isinstance(p, dict) or not p.get("key"):
            continue
        if p["key"] == "debunk" and inc.debunk_id is not None and not p.get("contribution"):
            # a debunk matched after the matter was last counted (the claims stage points the
            # incident at it without recounting): the part says so now
            weight = float(p.get("weight") or 0.0)
            p = p | {"value": 1.0, "contribution": weight,
                     "detail": f"与辟谣库 #{inc.debunk_id} 相符（相似度 {inc.debunk_similarity or 0:.2f}）"}
        parts[f"matter_{p['key']}"] = {
            "value": p.get("value"),
            "points": round(float(p.get("contribution") or 0.0) * scale, 2),
            "max": round(float(p.get("weight") or 0.0) * scale, 2),
            "text": f"{p.get('label') or p['key']}：{p.get('detail') or ''}".rstrip("："),
        }
    cw = cfg.category_weight(f.category)
    parts["category"] = {
        "value": f.category,
        "points": round(cw * cfg.weights.category, 2),
        "max": cfg.weights.category,
        "text": f"类别：{f.category or '未分类'}（权重 {cw:.1f}）",
    }
    notes = [n for n in (inc.risk_parts or {}).get("notes") or [] if isinstance(n, str)]
    if notes:
        parts["response"] = {"value": len(notes), "points": 0.0, "max": None, "text": "；".join(notes)}
    parts["rules"] = rules_part
    total = sum(float(p["points"]) for p in parts.values())
    return round(min(100.0, total), 2), parts


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
                f"【辟谣】近期有人在群聊和网络上转发“{short_title(d.claim, 80)}”的说法。"
                f"经核实，{d.refutation.strip()}"
                + (f"（来源：{source}）" if source else "")
                + " 请大家不信谣、不传谣，以官方发布的信息为准。"
            )
    template = cfg.response_templates.get(category or "") or cfg.response_templates.get("其他")
    if not template:
        return None
    return template.format(
        title=short_title(title, 40),
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
    cfg = rules or load_rules()
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
    for t in topics:
        if t.id not in latest_t and incident_of_topic(session, t.id) is not None:
            # Most of the topic's posts are one matter: the incident's alert is the alert on it.
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
    fired = fire_rules(subject.features, cfg, _rule_kind(subject))
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
        session, subject, cfg, fired, score, parts, severity, now, kind=_kind(fired, "rumor", _rule_kind(subject))
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
            session, debunk_id=f.debunk_id, category=f.category, title=subject.title, places=f.places, cfg=cfg
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
    debunk_new = bool(f.debunk_id) and "【辟谣】" not in (alert.suggested_response or "")
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
        alert.kind = _kind(fired, "rumor", kind)
