"""The incident (matter, 一件事) read model: its posts grouped by role, where it spread (per group or
source: posts, first and last time), its hourly timeline, and the alert working on it.

Plain dicts for the API (``/alerts/{id}``, ``/incidents``, ``/incidents/{id}``) and the console.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from alerts.common import parse_hour
from alerts.subjects import ROLE_ZH, matter_kind, spreading_count
from core.tables import Alert, ChatGroup, Incident, Post, PostScore, Source
from nlp.incident_edits import get_incident

KIND_ZH = {"rumor": "疑似谣言", "concern": "群众关切", "notice": "官方通知", "unknown": "待判断"}
STATUS_ZH = {"active": "活跃", "dormant": "沉寂", "merged": "已合并"}
#: Sections of the alert page, in order: what goes round, what people ask and feel, the answer.
ROLE_SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("claims", "传播的说法", ("claim",)),
    ("complaints", "诉求/投诉", ("complaint",)),
    ("questions", "询问", ("question",)),
    ("reactions", "反应", ("reaction",)),
    ("responses", "辟谣与通知", ("refutation", "notice")),
    ("other", "其他", ("other",)),
)
_SECTION_OF = {role: key for key, _zh, roles in ROLE_SECTIONS for role in roles}


def incident_row(incident: Incident, alert_id: int | None = None) -> dict[str, Any]:
    """One incident as the list shows it."""
    return {
        "id": incident.id,
        "kind": incident.kind,
        "kind_zh": KIND_ZH.get(incident.kind, incident.kind),
        "title": incident.title,
        "status": incident.status,
        "merged_into_id": incident.merged_into_id,
        "representative_post_id": incident.representative_post_id,
        "first_seen": incident.first_seen,
        "last_seen": incident.last_seen,
        "post_count": incident.post_count,
        "spreading_count": spreading_count(incident),
        "group_count": incident.group_count,
        "source_count": incident.source_count,
        "role_counts": incident.role_counts or {},
        "max_rumor_probability": incident.max_rumor_probability,
        "risk": incident.risk,
        "debunk_id": incident.debunk_id,
        "debunk_similarity": incident.debunk_similarity,
        "category": incident.category,
        "places": [p for p in incident.places or [] if isinstance(p, str)],
        "updated_at": incident.updated_at,
        "alert_id": alert_id,
    }


def latest_alert_ids(session: Session, incident_ids: list[int]) -> dict[int, int]:
    if not incident_ids:
        return {}
    rows = session.execute(
        select(Alert.incident_id, func.max(Alert.id)).where(Alert.incident_id.in_(incident_ids)).group_by(Alert.incident_id)
    )
    return {iid: aid for iid, aid in rows if iid is not None}


def list_incidents(
    session: Session,
    *,
    kind: Sequence[str] | None = None,
    status: Sequence[str] | None = None,
    q: str | None = None,
    offset: int = 0,
    limit: int = 20,
) -> tuple[list[dict[str, Any]], int]:
    """Incidents, most recently active first (merged ones only when asked for)."""
    where: list[ColumnElement[bool]] = []
    if kind:
        where.append(Incident.kind.in_(kind))
    where.append(Incident.status.in_(status) if status else Incident.status != "merged")
    if q:
        where.append(Incident.title.contains(q, autoescape=True))
    total = int(session.scalar(select(func.count()).select_from(Incident).where(*where)) or 0)
    incidents = list(
        session.scalars(
            select(Incident).where(*where).order_by(Incident.last_seen.desc(), Incident.id.desc()).offset(offset).limit(limit)
        )
    )
    alerts = latest_alert_ids(session, [i.id for i in incidents])
    return [incident_row(i, alerts.get(i.id)) for i in incidents], total


def incident_parts(session: Session, incident: Incident, *, per_role: int = 50) -> dict[str, Any]:
    """The matter's posts by role, its per-group spread and its timeline."""
    rows = session.execute(
        select(
            Post.id,
            Post.role,
            Post.role_confidence,
            Post.title,
            Post.raw_text,
            Post.url,
            Post.author,
            Post.published_at,
            Post.collected_at,
            Post.group_id,
            Post.source_id,
            ChatGroup.name.label("group_name"),
            Source.name.label("source_name"),
        )
        .outerjoin(ChatGroup, ChatGroup.id == Post.group_id)
        .outerjoin(Source, Source.id == Post.source_id)
        .where(Post.incident_id == incident.id)
        .order_by(func.coalesce(Post.published_at, Post.collected_at), Post.id)
    ).all()
    probs: dict[int, float] = {}
    claim_ids = [r.id for r in rows if r.role == "claim"]
    for i in range(0, len(claim_ids), 500):
        for pid, p in session.execute(
            select(PostScore.post_id, func.max(PostScore.rumor_probability))
            .where(PostScore.post_id.in_(claim_ids[i : i + 500]))
            .group_by(PostScore.post_id)
        ):
            probs[pid] = float(p)
    sections: dict[str, dict[str, Any]] = {
        key: {"key": key, "label": zh, "count": 0, "posts": []} for key, zh, _roles in ROLE_SECTIONS
    }
    spread: dict[tuple[str, int], dict[str, Any]] = {}
    hourly: dict[str, int] = {}
    for r in rows:
        role = r.role or "other"
        section = sections[_SECTION_OF.get(role, "other")]
        section["count"] += 1
        at = r.published_at or r.collected_at
        if len(section["posts"]) < per_role:
            section["posts"].append(
                {
                    "id": r.id,
                    "role": role,
                    "role_zh": ROLE_ZH.get(role, role),
                    "role_confidence": r.role_confidence,
                    "title": r.title,
                    "text": r.raw_text,
                    "url": r.url,
                    "author": r.author,
                    "at": at,
                    "group": r.group_name,
                    "source": r.source_name,
                    "rumor_probability": probs.get(r.id),
                }
            )
        key = ("g", r.group_id) if r.group_id else (("s", r.source_id) if r.source_id else None)
        if key is not None:
            place = spread.setdefault(
                key,
                {
                    "kind": "group" if key[0] == "g" else "source",
                    "id": key[1],
                    "name": (r.group_name if key[0] == "g" else r.source_name) or f"#{key[1]}",
                    "posts": 0,
                    "claims": 0,
                    "first_at": at,
                    "last_at": at,
                },
            )
            place["posts"] += 1
            place["claims"] += 1 if role == "claim" else 0
            place["first_at"], place["last_at"] = min(place["first_at"], at), max(place["last_at"], at)
        hour = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")
        hourly[hour] = hourly.get(hour, 0) + 1
    stored = {k[:13]: int(v) for k, v in (incident.hourly_counts or {}).items() if isinstance(v, (int, float)) and parse_hour(k)}
    timeline = stored or hourly
    return {
        "roles": [s for s in sections.values() if s["count"]],
        "spread": sorted(spread.values(), key=lambda p: (p["first_at"], p["name"])),
        "timeline": [{"hour": k, "count": timeline[k]} for k in sorted(timeline)],
    }


def incident_detail(session: Session, incident_id: int) -> dict[str, Any]:
    """Everything the API shows about one incident."""
    incident = get_incident(session, incident_id)
    alert_id = latest_alert_ids(session, [incident.id]).get(incident.id)
    return incident_row(incident, alert_id) | {
        "matter_kind": matter_kind(incident),
        "risk_parts": incident.risk_parts or {},
        "anchors": incident.anchors or {},
        "first_seen": incident.first_seen,
        "created_at": incident.created_at,
    } | incident_parts(session, incident)
