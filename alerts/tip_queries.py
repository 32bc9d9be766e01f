"""The read side of tips: the staff list (举报线索) and the measures (per day, per incident).

Nothing here returns a contact: the list shows a short reporter pseudonym and whether a contact
was left, never the contact itself (it is opened only to send an answer, alerts.tip_delivery).
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound
from core.settings import get_settings
from core.tables import Alert, Notification, Post, Tip, utcnow
from core.tips import (
    CHANNEL_ZH,
    FLAG_ZH,
    STATUS_ZH,
    block_reporter,
    enter_pipeline,
    is_blocked,
    unblock_reporter,
)

log = logging.getLogger(__name__)
DELIVERY_ZH = {"pending": "待发送", "sending": "发送中", "sent": "已送达", "dead": "发送失败",
               "unsure": "中断，待人工核实"}


def _base() -> Select[Tip, int | None]:
    return (
        select(Tip, Post.incident_id)
        .outerjoin(Post, Post.id == Tip.post_id)
    )


def list_tips(
    session: Session, *, status: str | None = None, channel: str | None = None, incident_id: int | None = None,
    alert_id: int | None = None, offset: int = 0, limit: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    query = _base()
    if status:
        query = query.where(Tip.status == status)
    if channel:
        query = query.where(Tip.channel == channel)
    if alert_id is not None:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise NotFound(f"预警 #{alert_id} 不存在")
        from alerts.tip_delivery import tips_of_alert

        ids = [t.id for t in tips_of_alert(session, alert)]
        query = query.where(Tip.id.in_(ids or [-1]))
    if incident_id is not None:
        query = query.where(Post.incident_id == incident_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Tip.received_at.desc(), Tip.id.desc()).offset(offset).limit(limit)).all()
    deliveries = _deliveries(session, [tip.id for tip, _ in rows])
    return [tip_view(tip, incident, deliveries.get(tip.id, {})) for tip, incident in rows], total


def get_tip_view(session: Session, tip_id: int) -> dict[str, Any]:
    row = session.execute(_base().where(Tip.id == tip_id)).first()
    if row is None:
        raise NotFound(f"线索 #{tip_id} 不存在")
    tip, incident = row
    return tip_view(tip, incident, _deliveries(session, [tip.id]).get(tip.id, {}))


def _deliveries(session: Session, ids: list[int]) -> dict[int, dict[str, str]]:
    if not ids:
        return {}
    keys = [f"tip:{i}:{kind}" for i in ids for kind in ("first", "answer")]
    out: dict[int, dict[str, str]] = {}
    for key, status in session.execute(select(Notification.dedup_key, Notification.status)
                                       .where(Notification.dedup_key.in_(keys))):
        _, tip_id, kind = key.split(":")
        out.setdefault(int(tip_id), {})[kind] = status
    return out


def tip_view(tip: Tip, incident_id: int | None, deliveries: dict[str, str]) -> dict[str, Any]:
    """One tip as staff and viewers see it: no contact, a short reporter pseudonym."""
    return {
        "id": tip.id, "channel": tip.channel, "channel_zh": CHANNEL_ZH.get(tip.channel, tip.channel),
        "received_at": tip.received_at, "text": tip.text, "image_count": len(tip.images or []),
        "reporter": "举报人" + tip.reporter_key[:8], "has_contact": tip.contact_sealed is not None,
        "wants_answer": tip.wants_answer, "status": tip.status, "status_zh": STATUS_ZH.get(tip.status, tip.status),
        "debunk_id": tip.debunk_id, "debunk_score": tip.debunk_score, "first_reply": tip.first_reply,
        "answer": tip.answer, "answered_at": tip.answered_at, "incident_id": incident_id, "post_id": tip.post_id,
        "delivery": {k: DELIVERY_ZH.get(v, v) for k, v in deliveries.items()},
        "needs_call_back": tip.wants_answer and tip.status == "acknowledged" and tip.answer is not None,
        "flag": tip.flag, "flag_zh": FLAG_ZH.get(tip.flag or "", tip.flag), "flag_terms": tip.flag_terms,
        "auto_reply_held": tip.auto_reply_held,
    }


def clear_flag(session: Session, tip_id: int, *, user_id: int | None) -> Tip:
    """Staff say a flagged tip is not abusive after all: the flag goes, and a tip the flag had
    closed (insults and nothing else) is reopened: it waits for staff like any tip, and its
    text enters the pipeline. A tip staff closed themselves, or whose reporter is blocked,
    stays closed."""
    tip = session.get(Tip, tip_id)
    if tip is None:
        raise NotFound(f"线索 #{tip_id} 不存在")
    if tip.flag is None:
        raise Conflict(f"线索 #{tip_id} 没有被标记为辱骂")
    reopen = tip.status == "abuse" and tip.closed_by is None and not is_blocked(session, tip.reporter_key)
    tip.flag = None
    if tip.auto_reply_held:  # the held reason the flag gave goes with it
        tip.auto_reply_held = "；".join(r for r in tip.auto_reply_held.split("；") if r != FLAG_ZH["insult"]) or None
    if reopen:
        tip.status = "acknowledged"
        enter_pipeline(session, tip)
    log.info("tip flag cleared", extra={"tip_id": tip_id, "user_id": user_id, "reopened": reopen})
    session.flush()
    return tip


def mark_abuse(session: Session, tip_id: int, *, user_id: int | None, block: bool = False,
               reason: str | None = None) -> Tip:
    """Close a tip as abuse without a reply: queued answers to it are cancelled; optionally the
    reporter goes on the block list."""
    tip = session.get(Tip, tip_id)
    if tip is None:
        raise NotFound(f"线索 #{tip_id} 不存在")
    tip.status, tip.closed_by = "abuse", user_id
    for row in session.scalars(select(Notification).where(
            Notification.dedup_key.in_([f"tip:{tip.id}:first", f"tip:{tip.id}:answer"]),
            Notification.status == "pending")):
        row.status, row.last_error = "dead", "线索已标记为恶意/骚扰，不再答复"
    if block:
        block_reporter(session, tip.reporter_key, reason=reason, user_id=user_id)
    session.flush()
    return tip


def reopen(session: Session, tip_id: int, *, user_id: int | None, unblock: bool = False) -> Tip:
    """Undo "abuse": staff closed a tip (or the insult flag did) by mistake. The tip waits for
    staff again and its text enters the pipeline; answers cancelled when it was closed are not
    sent (staff answer it afresh). ``unblock`` also takes its reporter off the block list."""
    tip = session.get(Tip, tip_id)
    if tip is None:
        raise NotFound(f"线索 #{tip_id} 不存在")
    if tip.status != "abuse":
        raise Conflict(f"线索 #{tip_id} 没有被标记为恶意/骚扰，无需重新打开")
    unblocked = unblock and unblock_reporter(session, tip.reporter_key)
    tip.status, tip.closed_by = "acknowledged", None
    enter_pipeline(session, tip)
    log.info("tip reopened", extra={"tip_id": tip_id, "user_id": user_id, "unblocked": unblocked})
    session.flush()
    return tip


# ----------------------------------------------------------------------------- measures


def _local_day(value: dt.datetime) -> str:
    return value.astimezone(ZoneInfo(get_settings().timezone)).date().isoformat()


def _summary(tips: list[Tip]) -> dict[str, Any]:
    waits = [(t.answered_at - t.received_at).total_seconds() / 60 for t in tips
             if t.answered_at is not None and t.status in ("answered", "auto_answered")]
    return {
        "received": len(tips),
        "auto_answered": sum(1 for t in tips if t.status == "auto_answered"),
        "answered_by_staff": sum(1 for t in tips if t.status == "answered"),
        "waiting": sum(1 for t in tips if t.status == "acknowledged"),
        "abuse": sum(1 for t in tips if t.status == "abuse"),
        "median_minutes_to_answer": round(statistics.median(waits), 1) if waits else None,
    }


def tip_measures(session: Session, *, days: int = 14, now: dt.datetime | None = None,
                 top_incidents: int = 10) -> dict[str, Any]:
    """Tips received, auto-answered, answered by staff and the median time to answer, per local
    day and per incident (the busiest first), over the last ``days`` days."""
    since = (now or utcnow()) - dt.timedelta(days=days)
    rows = session.execute(_base().where(Tip.received_at >= since)).all()
    by_day: dict[str, list[Tip]] = {}
    by_incident: dict[int, list[Tip]] = {}
    for tip, incident in rows:
        by_day.setdefault(_local_day(tip.received_at), []).append(tip)
        if incident is not None:
            by_incident.setdefault(int(incident), []).append(tip)
    busiest = sorted(by_incident.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top_incidents]
    return {
        "days": days,
        "total": _summary([t for t, _ in rows]),
        "by_day": [{"day": d, **_summary(ts)} for d, ts in sorted(by_day.items(), reverse=True)],
        "by_incident": [{"incident_id": i, **_summary(ts)} for i, ts in busiest],
    }


def tips_of_incidents(session: Session, incident_ids: list[int], end: dt.datetime) -> dict[int, dict[str, Any]]:
    """Per incident, the tips received before ``end`` (received, auto-answered, answered by staff,
    waiting, median minutes to answer): the digest shows them with each matter."""
    if not incident_ids:
        return {}
    rows = session.execute(_base().where(Post.incident_id.in_(incident_ids), Tip.received_at < end)).all()
    grouped: dict[int, list[Tip]] = {}
    for tip, incident in rows:
        if incident is not None:
            grouped.setdefault(int(incident), []).append(tip)
    return {i: _summary(ts) for i, ts in grouped.items()}


def tips_phrase(m: dict[str, Any]) -> str:
    """居民举报 … for one matter's tips (the digest's line under a rumor)."""
    text = (f"居民举报 {m['received']} 条（自动答复 {m['auto_answered']}，工作人员答复 {m['answered_by_staff']}，"
            f"待核实 {m['waiting']}")
    if m["median_minutes_to_answer"] is not None:
        text += f"；答复用时中位数 {m['median_minutes_to_answer']:g} 分钟"
    return text + "）"


def tips_sentence(session: Session, start: dt.datetime, end: dt.datetime) -> str | None:
    """One sentence on the tips received in [start, end), for the digest; None when there were none."""
    tips = list(session.scalars(select(Tip).where(Tip.received_at >= start, Tip.received_at < end)))
    if not tips:
        return None
    m = _summary(tips)
    text = (f"收到 {m['received']} 条，自动答复 {m['auto_answered']} 条，工作人员答复 {m['answered_by_staff']} 条，"
            f"待核实 {m['waiting']} 条")
    if m["median_minutes_to_answer"] is not None:
        text += f"；答复用时中位数 {m['median_minutes_to_answer']:g} 分钟"
    return text + "。"
