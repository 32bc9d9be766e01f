"""Folding one alert into another when their matters become one.

Two ways lead here: staff merge two alerts (:func:`alerts.workflow.merge_alerts`), or the analysis
merges two incidents (``incidents.status = 'merged'``, ``merged_into_id``) and the next
evaluation finds the merged incident's open alert (:func:`fold_merged_incident`). Either way the
merged alert's evidence joins the target's, the merged alert is closed, and both histories say so.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.common import chunks, insert_ignore
from alerts.queries import forget_counts
from alerts.severity import severity_rank
from alerts.states import OPEN_STATES
from core.tables import Alert, AlertEvent, AlertPost, Incident, utcnow

log = logging.getLogger(__name__)

#: How far a chain of merges (A into B into C) is followed before giving up (a cycle is a bug).
MAX_MERGE_CHAIN = 20


def final_incident(session: Session, incident: Incident) -> Incident | None:
    """Where a merged incident's matter lives now (following A -> B -> C), or None (a broken chain)."""
    seen = {incident.id}
    current = incident
    for _ in range(MAX_MERGE_CHAIN):
        if current.status != "merged" or current.merged_into_id is None:
            return current
        nxt = session.get(Incident, current.merged_into_id)
        if nxt is None or nxt.id in seen:
            log.warning("incident %s: merge chain broken or cyclic at %s", incident.id, current.merged_into_id)
            return None
        seen.add(nxt.id)
        current = nxt
    return None


def open_alert_of(session: Session, incident_id: int) -> Alert | None:
    """The incident's latest alert, when it is still open."""
    alert = session.scalar(
        select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id.desc()).limit(1)
    )
    return alert if alert is not None and alert.status in OPEN_STATES else None


def fold_alert_into(
    session: Session,
    source: Alert,
    target: Alert,
    *,
    actor_id: int | None,
    now: dt.datetime | None = None,
    reason: str = "合并",
) -> None:
    """``source``'s evidence joins ``target``; ``source`` closes into it; both histories record it.

    The target keeps the higher severity of the two (merging never hides an urgent matter)."""
    now = now or utcnow()
    post_ids = list(session.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == source.id)))
    for chunk in chunks(post_ids):
        insert_ignore(
            session,
            AlertPost.__table__,
            [{"alert_id": target.id, "post_id": pid, "added_at": now} for pid in chunk],
        )
    if source.severity_rank > target.severity_rank:
        target.severity, target.severity_rank = source.severity, severity_rank(source.severity)
        target.risk_score = max(target.risk_score, source.risk_score)
    target.updated_at = now
    before = source.status
    source.status = "closed"
    source.post_count_at_close = source.post_count
    source.updated_at = now
    session.add_all(
        [
            AlertEvent(
                alert_id=source.id,
                at=now,
                actor_id=actor_id,
                action="merged",
                from_status=before,
                to_status="closed",
                comment=f"{reason}：已并入预警 #{target.id}（同一件事）",
                detail={"into_alert_id": target.id, "incident_id": target.incident_id, "posts": len(post_ids)},
            ),
            AlertEvent(
                alert_id=target.id,
                at=now,
                actor_id=actor_id,
                action="merged",
                comment=f"{reason}：预警 #{source.id}「{source.title[:40]}」并入本预警，带来 {len(post_ids)} 条帖子",
                detail={"from_alert_id": source.id, "from_incident_id": source.incident_id, "posts": len(post_ids)},
            ),
        ]
    )
    session.flush()
    forget_counts()


def fold_merged_incident(session: Session, incident: Incident, *, now: dt.datetime | None = None) -> Incident | None:
    """The analysis merged ``incident`` into another: its open alert folds into the target's alert,
    or, when the target has none, moves over to the target incident. Returns the target incident
    (to be evaluated in the same run), or None when there is nothing to do. Idempotent: a closed
    or moved alert is not found again."""
    target = final_incident(session, incident)
    if target is None or target.id == incident.id:
        return None
    source = open_alert_of(session, incident.id)
    if source is None:
        return target
    now = now or utcnow()
    into = open_alert_of(session, target.id)
    if into is not None and into.id != source.id:
        fold_alert_into(session, source, into, actor_id=None, now=now, reason="分析合并了两件事")
        return target
    source.incident_id = target.id
    source.updated_at = now
    session.add(
        AlertEvent(
            alert_id=source.id,
            at=now,
            action="merged",
            comment=f"分析把事件 #{incident.id} 并入事件 #{target.id}：本预警随之跟踪事件 #{target.id}",
            detail={"from_incident_id": incident.id, "into_incident_id": target.id},
        )
    )
    session.flush()
    return target
