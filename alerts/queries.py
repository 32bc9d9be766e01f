"""The alerts read model: the queue (:func:`list_alerts`, :func:`count_alerts` with a short-lived
count cache), one alert's review page (:func:`alert_detail`), the totals (:func:`alert_stats`) and
the highlighting of a post's words. Plain dicts, shaped for the API and the console.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, column, func, select, text
from sqlalchemy.orm import Session

from alerts import drafts, matters
from alerts.common import REFUTES_ZH, get_alert, refutation_of
from alerts.rules import SEVERITIES
from alerts.severity import severity_rank
from alerts.spread import hourly_for
from alerts.states import OPEN_STATES, STATES, allowed_transitions
from core import search
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    ChatGroup,
    Debunk,
    DebunkMatch,
    Incident,
    Post,
    PostScore,
    Response,
    Source,
    Story,
    User,
    utcnow,
)

log = logging.getLogger(__name__)

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
    incident_id: int | None = None


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# The alert queue is the most requested query of the product (every open console polls it), so
# it is written as plain SQL that both dialects accept: building it through the ORM cost 4x the
# query itself. Typed binds and result columns keep times as aware UTC, as everywhere else.
_LIST_SELECT = (
    "SELECT a.id, a.kind, a.title, a.severity, a.risk_score, a.category, a.status, a.assignee_id, "
    "a.story_id, a.topic_id, a.incident_id, a.post_count, a.group_count, a.escalation_level, a.created_at, a.updated_at, "
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
    for name, value in (("story_id", f.story_id), ("topic_id", f.topic_id), ("incident_id", f.incident_id)):
        if value is not None:
            parts.append(f"a.{name} = :{name}")
            params[name] = value
    if f.q:
        like = "ILIKE" if dialect == "postgresql" else "LIKE"  # SQLite's LIKE ignores ASCII case already
        found = [f"a.title {like} :q ESCAPE '\\'", f"a.summary {like} :q ESCAPE '\\'"]
        params["q"] = _like(f.q)
        words = search.match_params(f.q, dialect)
        if words is not None:  # every word of the query, wherever it stands (core.search)
            found.append(search.match_sql("alerts", dialect, "a.id"))
            params["words"] = words
        parts.append(f"({' OR '.join(found)})")
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
                        "incident_id",
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
        f.incident_id,
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
    hourly = hourly_for(session, alert)
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
    incident = session.get(Incident, alert.incident_id) if alert.incident_id else None
    matter = (
        matters.incident_row(incident, alert.id) | matters.incident_parts(session, incident)
        if incident is not None
        else None
    )
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
        "incident_id": alert.incident_id,
        "incident": matter,
        "post_count": alert.post_count,
        "group_count": alert.group_count,
        "escalation_level": alert.escalation_level,
        "escalated_at": alert.escalated_at,
        "acknowledged_at": alert.acknowledged_at,
        # rendered now, so an analyst's edited template shows on the next look
        "suggested_response": drafts.draft_for_alert(
            session, alert, debunk_id=debunks[0]["id"] if debunks else None
        ),
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
