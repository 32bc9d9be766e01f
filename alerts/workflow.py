"""The review workflow: what staff do to an alert.

:func:`transition` (a state machine; invalid moves raise :class:`Conflict`, HTTP 409),
:func:`assign`, :func:`add_comment`, :func:`respond` (records what was published and measures the
spread before/after), :func:`escalate` (unacknowledged high/urgent alerts) and
:func:`create_manual`. Verdicts become ``labels`` rows for retraining. The session is passed in
and the caller commits: an action, its history event, its notifications and labels are one
transaction.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from alerts import notify, tip_delivery
from alerts.common import get_alert, insert_ignore, short_title
from alerts.drafts import unfilled_placeholders
from alerts.evaluate import Notifier, create_alert, latest_alerts
from alerts.merge import final_incident, fold_alert_into, open_alert_of
from alerts.queries import forget_counts
from alerts.rules import SEVERITIES, SEVERITY_ZH, RulesConfig, load_rules
from alerts.scoring import fire_rules, score_subject
from alerts.severity import Features
from alerts.spread import measure_spread
from alerts.states import FINISHED_STATES, OPEN_STATES, STATE_ZH, STATES, TRANSITIONS
from alerts.subjects import Subject, spreading_count, story_subjects, topic_subject
from core.errors import Conflict, InvalidInput, NotFound
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    Incident,
    Label,
    LabelEvent,
    Post,
    Response,
    Story,
    Topic,
    User,
    utcnow,
)
from nlp import incident_edits
from nlp.headline import headline
from nlp.labels import text_key

log = logging.getLogger(__name__)

MAX_LABEL_POSTS = 1000


def _actor(session: Session, actor: User | int | None) -> int | None:
    if actor is None or isinstance(actor, int):
        return actor
    return actor.id



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
    # A dismissed concern or notice is not a verdict on rumors; a confirmed rumor always is.
    if to == "confirmed_rumor" or (
        to == "dismissed" and alert.kind not in ("concern", "notice") and alert.topic_id is None
    ):
        _review_labels(session, alert, 1 if to == "confirmed_rumor" else 0, actor_id, now)
    session.flush()
    forget_counts()
    return alert


def _current_post_count(session: Session, alert: Alert) -> int:
    if alert.incident_id is not None:
        incident = session.get(Incident, alert.incident_id)
        if incident is not None:
            return max(spreading_count(incident), alert.post_count)
    if alert.story_id is not None:
        story = session.get(Story, alert.story_id)
        if story is not None:
            return max(story.post_count or 0, alert.post_count)
    return alert.post_count


def _review_labels(
    session: Session, alert: Alert, label: int, actor_id: int | None, now: dt.datetime
) -> None:
    """Each evidence post becomes a label with the text as it was scored (for retraining)."""
    q = (
        select(Post.id, Post.norm_text, Post.raw_text, Post.category)
        .join(AlertPost, AlertPost.post_id == Post.id)
        .where(AlertPost.alert_id == alert.id)
    )
    if alert.incident_id is not None:
        # A verdict on a matter is a verdict on its claims: its questions, reactions and
        # refutations say nothing of whether the claim is a rumor.
        q = q.where(or_(Post.role.is_(None), Post.role == "claim"))
    rows = session.execute(q.order_by(Post.id).limit(MAX_LABEL_POSTS)).all()
    if not rows:
        return
    keys = [f"review:{r.id}" for r in rows]
    existing = {lab.dedup_key: lab for lab in session.scalars(select(Label).where(Label.dedup_key.in_(keys)))}
    for r in rows:
        text = r.norm_text or r.raw_text
        key = f"review:{r.id}"
        lab = existing.get(key)
        # the text's identity as every other label has it (nlp.labels.text_key), so a review and
        # an import of the same text meet as one text (conflicts, the labelling queue)
        text_hash = text_key(text)
        if lab is None:
            session.add(
                Label(
                    dedup_key=key,
                    post_id=r.id,
                    alert_id=alert.id,
                    text=text,
                    text_hash=text_hash,
                    label=label,
                    category=r.category or alert.category,
                    origin="review",
                    user_id=actor_id,
                    created_at=now,
                )
            )
            session.add(LabelEvent(text_hash=text_hash, action="created", new_label=label, user_id=actor_id, at=now))
        else:  # the latest verdict on a post wins; the earlier one stays in the history
            if lab.label != label:
                session.add(LabelEvent(label_id=lab.id, text_hash=lab.text_hash, action="corrected",
                                       old_label=lab.label, new_label=label, user_id=actor_id, at=now))
            lab.label, lab.alert_id, lab.user_id, lab.updated_at = label, alert.id, actor_id, now


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
    unfilled = unfilled_placeholders(text)
    if unfilled:
        raise InvalidInput(
            f"回应里还有未填写的占位符：{'、'.join(unfilled)}。请换成实际内容后再记录发布"
        )
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
    tip_delivery.answer_tips(session, alert, response)  # residents who asked about it and want an answer
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
            comment=short_title(text, 200),
            detail={"response_id": response.id, "channels": response.channels, "url": url},
        )
    )
    session.flush()
    forget_counts()
    return response



def escalate(
    session: Session, *, now: dt.datetime | None = None, config: notify.NotifyConfig | None = None
) -> list[int]:
    """Mark and notify high/urgent alerts nobody acknowledged in time (each level once)."""
    now = now or utcnow()
    config = config or notify.load_notify_config()
    notifier = Notifier(config)
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
        if post.incident_id is not None:  # one open alert per matter
            existing_alert = open_alert_of(session, post.incident_id)
            if existing_alert is not None:
                raise Conflict(f"这件事已有未结束的预警 #{existing_alert.id}：请直接处理该预警")
    subject: Subject
    if story_id is not None:
        story = session.get(Story, story_id)
        if story is None:
            raise NotFound(f"事件 #{story_id} 不存在")
        existing = latest_alerts(session, Alert.story_id, [story_id]).get(story_id)
        if existing is not None and existing.status in OPEN_STATES:
            raise Conflict(f"这个事件已有未结束的预警 #{existing.id}：请直接处理该预警")
        subject = story_subjects(session, [story], cfg, {})[story_id]
    elif topic_id is not None:
        topic = session.get(Topic, topic_id)
        if topic is None:
            raise NotFound(f"话题 #{topic_id} 不存在")
        existing = latest_alerts(session, Alert.topic_id, [topic_id], story_null=True).get(topic_id)
        if existing is not None and existing.status in OPEN_STATES:
            raise Conflict(f"这个话题已有未结束的预警 #{existing.id}：请直接处理该预警")
        subject = topic_subject(session, topic, cfg)
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
            title=short_title(headline(post.title, post.raw_text) or text),  # without its hooks
            summary=short_title(text, 300),
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
    score, parts, computed = score_subject(subject, cfg, fired)
    chosen = severity or computed
    parts["manual"] = {
        "value": chosen,
        "points": 0,
        "max": None,
        "text": f"人工预警，等级由工作人员定为{SEVERITY_ZH[chosen]}" if severity else "人工预警",
    }
    actor_id = _actor(session, actor)
    alert = create_alert(
        session, subject, cfg, fired, score, parts, chosen, now, kind="manual", actor_id=actor_id, title=title
    )
    if comment and comment.strip():
        session.add(
            AlertEvent(
                alert_id=alert.id, at=now, actor_id=actor_id, action="comment", comment=comment.strip()
            )
        )
    Notifier(None)(session, alert, "manual", now, comment)
    session.flush()
    forget_counts()
    return alert




# ----------------------------------------------------------------------------- staff correct the grouping


def _open_alert(session: Session, incident_id: int | None) -> Alert | None:
    return open_alert_of(session, incident_id) if incident_id else None


def _sync_counts(session: Session, alert: Alert | None, now: dt.datetime) -> None:
    """An incident alert's counts follow its matter after staff moved posts around."""
    if alert is None or alert.incident_id is None:
        return
    incident = session.get(Incident, alert.incident_id)
    if incident is None:
        return
    alert.post_count = spreading_count(incident)
    alert.group_count = (incident.group_count or 0) + (incident.source_count or 0)
    alert.updated_at = now


def merge_alerts(
    session: Session,
    alert_id: int,
    other_alert_id: int,
    *,
    actor: User | int | None,
    now: dt.datetime | None = None,
) -> Alert:
    """Staff say two alerts are one matter: the other alert's posts move into this alert's
    incident (the other incident becomes merged into it, must_link pairs are recorded), and the
    other alert closes into this one with history on both. Idempotent."""
    now = now or utcnow()
    if alert_id == other_alert_id:
        raise InvalidInput("不能把预警和它自己合并：请选择另一条预警")
    alert = get_alert(session, alert_id, lock=True)
    other = get_alert(session, other_alert_id, lock=True)
    actor_id = _actor(session, actor)
    already = session.scalar(
        select(AlertEvent.id).where(AlertEvent.alert_id == other.id, AlertEvent.action == "merged",
                                    AlertEvent.to_status == "closed").limit(1)
    )
    if already is not None and other.status == "closed":
        into = (session.get(AlertEvent, already).detail or {}).get("into_alert_id")  # type: ignore[union-attr]
        if into == alert.id:
            return alert
        raise Conflict(f"预警 #{other.id} 已并入预警 #{into}：请在预警 #{into} 上操作")
    if alert.status not in OPEN_STATES:
        raise Conflict(f"预警 #{alert.id} 已{STATE_ZH[alert.status]}：请把其他预警并入一条未结束的预警")
    if other.status == "closed":
        raise Conflict(f"预警 #{other.id} 已关闭：关闭的预警不能再合并")
    into_incident = _incident_of_alert(session, alert, now)
    other_incident = _incident_of_alert(session, other, now)
    if other_incident.id != into_incident.id:
        incident_edits.merge_incidents(session, into_incident.id, other_incident.id, actor_id=actor_id, now=now)
    # the other alert keeps its own incident (now merged): "the latest alert of an incident" must
    # stay this one, or the next evaluation would take the closed alert for the matter's verdict
    alert.incident_id = into_incident.id
    fold_alert_into(session, other, alert, actor_id=actor_id, now=now, reason="人工合并")
    _sync_counts(session, alert, now)
    session.flush()
    forget_counts()
    return alert


def _incident_of_alert(session: Session, alert: Alert, now: dt.datetime) -> Incident:
    """The alert's matter; an alert raised before incidents existed gets one from its evidence."""
    if alert.incident_id is not None:
        incident = session.get(Incident, alert.incident_id)
        if incident is not None:
            final = final_incident(session, incident)
            if final is not None:
                return final
    post_ids = list(session.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == alert.id)))
    if not post_ids:
        raise Conflict(f"预警 #{alert.id} 没有证据帖子，无法合并")
    owners = set(session.scalars(select(Post.incident_id).where(Post.id.in_(post_ids[:2000]))))
    owners.discard(None)
    if len(owners) == 1:
        return incident_edits.get_incident(session, owners.pop())  # type: ignore[arg-type]
    return incident_edits.incident_for_posts(session, post_ids, now=now)


def split_incident_post(
    session: Session,
    incident_id: int,
    post_id: int,
    *,
    new_incident: bool = True,
    actor: User | int | None,
    now: dt.datetime | None = None,
) -> incident_edits.EditResult:
    """Take a post out of its incident (it starts its own, or none): it leaves the open alert's
    evidence, cannot_link pairs are recorded, the alert's history says so. Idempotent."""
    now = now or utcnow()
    actor_id = _actor(session, actor)
    result = incident_edits.split_post(
        session, incident_id, post_id, new_incident=new_incident, actor_id=actor_id, now=now
    )
    if not result.changed:
        return result
    alert = _open_alert(session, incident_id)
    if alert is not None:
        session.execute(delete(AlertPost).where(AlertPost.alert_id == alert.id, AlertPost.post_id == post_id))
        where = f"成为新事件 #{result.new_incident_id}" if result.new_incident_id else "不再属于任何事件"
        session.add(
            AlertEvent(
                alert_id=alert.id,
                at=now,
                actor_id=actor_id,
                action="split",
                comment=f"帖子 #{post_id} 已从本事件拆出，{where}",
                detail={"post_id": post_id, "incident_id": incident_id, "new_incident_id": result.new_incident_id},
            )
        )
        _sync_counts(session, alert, now)
    session.flush()
    forget_counts()
    return result


def move_incident_post(
    session: Session,
    incident_id: int,
    post_id: int,
    to_incident_id: int,
    *,
    actor: User | int | None,
    now: dt.datetime | None = None,
) -> incident_edits.EditResult:
    """Move a post to another incident: its evidence follows it from one open alert to the other,
    must_link / cannot_link pairs are recorded, both histories say so. Idempotent."""
    now = now or utcnow()
    actor_id = _actor(session, actor)
    result = incident_edits.move_post(session, incident_id, post_id, to_incident_id, actor_id=actor_id, now=now)
    if not result.changed:
        return result
    source, target = _open_alert(session, incident_id), _open_alert(session, to_incident_id)
    detail = {"post_id": post_id, "from_incident_id": incident_id, "to_incident_id": to_incident_id}
    if source is not None:
        session.execute(delete(AlertPost).where(AlertPost.alert_id == source.id, AlertPost.post_id == post_id))
        session.add(AlertEvent(alert_id=source.id, at=now, actor_id=actor_id, action="moved",
                               comment=f"帖子 #{post_id} 已移到事件 #{to_incident_id}", detail=detail))
        _sync_counts(session, source, now)
    if target is not None:
        insert_ignore(session, AlertPost.__table__, [{"alert_id": target.id, "post_id": post_id, "added_at": now}])
        session.add(AlertEvent(alert_id=target.id, at=now, actor_id=actor_id, action="moved",
                               comment=f"帖子 #{post_id} 从事件 #{incident_id} 移入本事件", detail=detail))
        _sync_counts(session, target, now)
    session.flush()
    forget_counts()
    return result
