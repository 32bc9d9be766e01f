"""Publishing an approved response: draft, approve (a second person), reject, and the read model.

A staff member drafts a publication (the claim, the official answer, a link, the chat groups);
someone else with the approver role (``YUQING_PUBLISH_APPROVER_ROLE``) approves it, or the drafter
alone where the office set ``YUQING_PUBLISH_SINGLE_APPROVER``. Approval records the response
(:func:`alerts.workflow.respond`, so the spread before/after is measured around it) and releases
the group messages to the outbox (:mod:`alerts.publish_delivery` sends them). Every step is an
event in the alert's history. The session is passed in and the caller commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts import cards, drafts, wecom_send, workflow
from alerts.common import get_alert, short_title
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.settings import get_settings
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    ChatGroup,
    Debunk,
    Incident,
    Post,
    Publication,
    PublicationTarget,
    Response,
    User,
    utcnow,
)

#: api.accounts.ROLES (alerts may not import api): least to most privileged.
ROLE_ORDER = ("viewer", "staff", "analyst", "admin")
#: Platforms a publication can go to: QQ groups through the OneBot bot, 企业微信 groups (and WeChat
#: groups that are 企业微信 groups) through a group robot configured in YUQING_WECOM_ROBOTS.
SENDABLE_PLATFORMS = ("qq", *wecom_send.PLATFORMS)
CHANNEL_ZH = {"qq": "QQ群", "wechat": "企业微信群", "wecom": "企业微信群"}
MAX_CLAIM = 300
MAX_TEXT = 1000
MAX_TARGETS = 200
TARGET_STATUS_ZH = {
    "waiting": "待批准",
    "pending": "待发送",
    "sending": "发送中",
    "sent": "已发送",
    "failed": "发送失败，将重试",
    "unknown": "结果未知，请核实",
    "dead": "发送失败",
    "cancelled": "已取消",
}
STATUS_ZH = {"draft": "待批准", "approved": "已批准", "rejected": "已退回"}
ACTION_ZH = {
    "publication_drafted": "起草发布",
    "publication_approved": "批准发布",
    "publication_rejected": "退回发布稿",
    "publication_sent": "已发到群",
    "publication_failed": "发群失败",
    "publication_unknown": "发群结果未知",
    "publication_retry": "重新发送",
}


def role_at_least(role: str, least: str) -> bool:
    return role in ROLE_ORDER and ROLE_ORDER.index(role) >= ROLE_ORDER.index(least)


def is_concern(alert: Alert) -> bool:
    """A concern gets an answer (回应), a rumor a refutation (辟谣)."""
    return alert.status == "confirmed_concern" or alert.kind == "concern"


# ----------------------------------------------------------------------------- groups


def spread_group_ids(session: Session, alert: Alert) -> list[int]:
    """The chat groups the alert's matter spread in (its incident's posts, else its evidence), most posts first."""
    if alert.incident_id is not None:
        where = Post.incident_id == alert.incident_id
        q = select(Post.group_id, func.count()).where(where, Post.group_id.is_not(None))
    else:
        q = (select(Post.group_id, func.count()).join(AlertPost, AlertPost.post_id == Post.id)
             .where(AlertPost.alert_id == alert.id, Post.group_id.is_not(None)))
    rows = session.execute(q.group_by(Post.group_id)).all()
    return [int(gid) for gid, _n in sorted(rows, key=lambda r: (-r[1], r[0])) if gid is not None]


def _sendable(group: ChatGroup) -> bool:
    if not group.enabled:
        return False
    if group.platform == "qq":
        return group.external_id.isdigit()
    return group.platform in wecom_send.PLATFORMS and wecom_send.robot_for(group.external_id, group.name) is not None


def group_choices(session: Session, alert: Alert) -> list[dict[str, Any]]:
    """Groups a publication may go to: the ones the matter spread in first (chosen by default),
    then the office's other QQ groups and robot-served 企业微信 groups. Groups no bot or robot
    can reach are listed as such."""
    spread = spread_group_ids(session, alert)
    rank = {gid: i for i, gid in enumerate(spread)}
    groups = list(session.scalars(
        select(ChatGroup).where((ChatGroup.id.in_(spread)) | (ChatGroup.platform.in_(SENDABLE_PLATFORMS)))
    ))
    groups = [g for g in groups if g.id in rank or _sendable(g)]
    groups.sort(key=lambda g: (rank.get(g.id, len(rank)), g.name, g.id))
    return [
        {"id": g.id, "name": g.name, "platform": g.platform, "spread": g.id in rank,
         "sendable": _sendable(g), "default": g.id in rank and _sendable(g)}
        for g in groups
    ]


# ----------------------------------------------------------------------------- draft


def _content_hash(claim: str, text: str, url: str | None, group_ids: list[int]) -> str:
    raw = json.dumps([claim, text, url or "", sorted(group_ids)], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _clean(value: str | None, what: str, limit: int, *, required: bool = True) -> str:
    # line breaks stay (paragraphs of the answer); runs of spaces and NUL go
    lines = (" ".join(line.split()) for line in (value or "").replace("\x00", "").splitlines())
    value = "\n".join(line for line in lines if line)
    if required and not value:
        raise InvalidInput(f"{what}不能为空")
    if len(value) > limit:
        raise InvalidInput(f"{what}太长（{len(value)} 字）：最多 {limit} 字，群消息和辟谣卡片都要简短")
    return value


_URL = re.compile(r"^https?://[^\s<>\"']+$")


def default_texts(session: Session, alert: Alert) -> dict[str, str]:
    """What the draft form starts with: the matter's headline as the claim, the draft its response
    templates give now (or the matched debunk's refutation) as the answer, and the debunk's link."""
    claim = alert.title
    debunk = None
    if alert.incident_id is not None:
        incident = session.get(Incident, alert.incident_id)
        if incident is not None:
            claim = incident.title or claim
            debunk = session.get(Debunk, incident.debunk_id) if incident.debunk_id else None
    text = drafts.draft_for_alert(session, alert) or (debunk.refutation if debunk else "")
    return {"claim": short_title(claim, MAX_CLAIM), "text": (text or "")[:MAX_TEXT],
            "url": (debunk.url or "") if debunk else ""}


def draft(
    session: Session,
    alert_id: int,
    *,
    claim: str,
    text: str,
    url: str | None = None,
    group_ids: list[int] | None = None,
    actor: User,
    now: dt.datetime | None = None,
) -> tuple[Publication, bool]:
    """A new draft (``True``), or the same open draft again when this content was drafted before
    (``False``): a repeated submission makes nothing new. ``group_ids`` None: the spread groups."""
    now = now or utcnow()
    if not role_at_least(actor.role, "staff"):
        raise PermissionDenied(f"用户 '{actor.username}' 是只读用户，不能起草发布")
    alert = get_alert(session, alert_id, lock=True)
    if alert.status in ("dismissed", "closed"):
        raise Conflict(f"预警 #{alert_id} 已{'排除' if alert.status == 'dismissed' else '关闭'}，不能再发布回应")
    claim = _clean(claim, "网传说法", MAX_CLAIM)
    text = _clean(text, "辟谣/回应内容", MAX_TEXT)
    unfilled = drafts.unfilled_placeholders(text)
    if unfilled:
        raise InvalidInput(f"发布稿中还有未填写的{'、'.join(unfilled)}：请换成实际情况后再提交")
    url = (url or "").strip() or None
    if url is not None and (len(url) > 2048 or not _URL.match(url)):
        raise InvalidInput("链接需以 http:// 或 https:// 开头，且不含空格")
    chosen = _chosen_groups(session, alert, group_ids)
    key = _content_hash(claim, text, url, [g.id for g in chosen])
    existing = session.scalar(
        select(Publication).where(Publication.alert_id == alert.id, Publication.content_hash == key,
                                  Publication.status.in_(("draft", "approved")))
    )
    if existing is not None:
        return existing, False
    publication = Publication(
        alert_id=alert.id, content_hash=key, status="draft", claim=claim, text=text, url=url,
        publisher=get_settings().office_public_name, created_by=actor.id, created_at=now,
    )
    session.add(publication)
    session.flush()
    for g in chosen:
        session.add(PublicationTarget(
            publication_id=publication.id, dedup_key=f"publication:{publication.id}:group:{g.platform}:{g.external_id}",
            group_id=g.id, platform=g.platform, external_id=g.external_id, group_name=g.name[:200],
            status="waiting", next_attempt_at=now, created_at=now,
        ))
    names = "、".join(g.name for g in chosen[:5]) + (f" 等 {len(chosen)} 个群" if len(chosen) > 5 else "")
    _event(session, alert, actor.id, "publication_drafted", now,
           f"起草发布稿 #{publication.id}：{short_title(text, 120)}" + (f"（发到：{names}）" if chosen else "（不发群，只做卡片）"),
           {"publication_id": publication.id, "groups": [g.id for g in chosen]})
    session.flush()
    return publication, True


def _chosen_groups(session: Session, alert: Alert, group_ids: list[int] | None) -> list[ChatGroup]:
    if group_ids is None:
        group_ids = spread_group_ids(session, alert)
        groups = [g for g in session.scalars(select(ChatGroup).where(ChatGroup.id.in_(group_ids))) if _sendable(g)]
        order = {gid: i for i, gid in enumerate(group_ids)}
        return sorted(groups, key=lambda g: order[g.id])
    ids = list(dict.fromkeys(group_ids))
    if len(ids) > MAX_TARGETS:
        raise InvalidInput(f"一次最多发 {MAX_TARGETS} 个群，选了 {len(ids)} 个")
    found = {g.id: g for g in session.scalars(select(ChatGroup).where(ChatGroup.id.in_(ids)))} if ids else {}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"群 #{', #'.join(map(str, missing))} 不存在：请从列表中选择")
    unreachable = [found[i].name for i in ids if not _sendable(found[i])]
    if unreachable:
        raise InvalidInput(f"机器人不能发到这些群：{'、'.join(unreachable)}（只能发 QQ 群和在 YUQING_WECOM_ROBOTS "
                           "中配置了群机器人的企业微信群，且群须启用）")
    return [found[i] for i in ids]


# ----------------------------------------------------------------------------- decide


def get_publication(session: Session, publication_id: int, *, alert_id: int | None = None,
                    lock: bool = False) -> Publication:
    q = select(Publication).where(Publication.id == publication_id)
    if lock:
        q = q.with_for_update()
    publication = session.scalar(q)
    if publication is None or (alert_id is not None and publication.alert_id != alert_id):
        raise NotFound(f"发布稿 #{publication_id} 不存在" + (f"（预警 #{alert_id}）" if alert_id else ""))
    return publication


def approve(
    session: Session, publication_id: int, *, actor: User, alert_id: int | None = None,
    now: dt.datetime | None = None,
) -> Publication:
    """Approve a draft: the response is recorded and its group messages go to the outbox.
    Approving an approved publication again changes nothing."""
    now = now or utcnow()
    settings = get_settings()
    publication = get_publication(session, publication_id, alert_id=alert_id, lock=True)
    if not role_at_least(actor.role, settings.publish_approver_role):
        raise PermissionDenied(
            f"批准发布需要“{settings.publish_approver_role}”或更高角色，用户 '{actor.username}' 是“{actor.role}”"
        )
    if publication.status == "approved":
        return publication
    if publication.status != "draft":
        raise Conflict(f"发布稿 #{publication.id} 已退回，不能批准：请重新起草")
    if publication.created_by == actor.id and not settings.publish_single_approver:
        raise Conflict(
            f"发布稿 #{publication.id} 是您起草的：需要另一位有批准权限的人批准（两人把关）。"
            "如本单位允许一人批准，请设置 YUQING_PUBLISH_SINGLE_APPROVER=true"
        )
    alert = get_alert(session, publication.alert_id)
    targets = _targets(session, publication.id)
    channels = list(dict.fromkeys(CHANNEL_ZH.get(t.platform, t.platform) for t in targets))
    response = workflow.respond(
        session, alert.id, text=publication.text, channels=[*channels, "辟谣卡片"], url=publication.url,
        published_at=now, actor=actor, now=now,
    )
    publication.status, publication.decided_by, publication.decided_at = "approved", actor.id, now
    publication.response_id = response.id
    for t in targets:
        if t.status == "waiting":
            t.status, t.next_attempt_at = "pending", now
    _event(session, alert, actor.id, "publication_approved", now,
           f"批准发布稿 #{publication.id}" + (f"，发到 {len(targets)} 个群" if targets else ""),
           {"publication_id": publication.id, "response_id": response.id, "groups": len(targets)})
    session.flush()
    return publication


def reject(
    session: Session, publication_id: int, *, actor: User, reason: str | None = None,
    alert_id: int | None = None, now: dt.datetime | None = None,
) -> Publication:
    """Send a draft back (its author withdrawing it, or an approver refusing it); nothing is sent."""
    now = now or utcnow()
    publication = get_publication(session, publication_id, alert_id=alert_id, lock=True)
    if not role_at_least(actor.role, "staff"):
        raise PermissionDenied(f"用户 '{actor.username}' 是只读用户，不能退回发布稿")
    if publication.status == "rejected":
        return publication
    if publication.status != "draft":
        raise Conflict(f"发布稿 #{publication.id} 已批准发布，不能退回")
    reason = _clean(reason, "退回理由", 1000, required=False) or None
    publication.status, publication.decided_by, publication.decided_at = "rejected", actor.id, now
    publication.reject_reason = reason
    for t in _targets(session, publication.id):
        t.status = "cancelled"
    alert = get_alert(session, publication.alert_id)
    _event(session, alert, actor.id, "publication_rejected", now,
           f"退回发布稿 #{publication.id}" + (f"：{reason}" if reason else ""), {"publication_id": publication.id})
    session.flush()
    return publication


def retry_target(
    session: Session, publication_id: int, target_id: int, *, actor: User, alert_id: int | None = None,
    now: dt.datetime | None = None,
) -> PublicationTarget:
    """Send to a group again after staff checked it did not arrive (a failed or unknown result)."""
    now = now or utcnow()
    if not role_at_least(actor.role, "staff"):
        raise PermissionDenied(f"用户 '{actor.username}' 是只读用户，不能重新发送")
    publication = get_publication(session, publication_id, alert_id=alert_id)
    target = session.get(PublicationTarget, target_id)
    if target is None or target.publication_id != publication.id:
        raise NotFound(f"发布稿 #{publication_id} 没有发送对象 #{target_id}")
    if target.status in ("pending", "sending", "sent"):
        return target  # nothing to retry (or already on its way)
    if target.status not in ("failed", "unknown", "dead"):
        raise Conflict(f"发到“{target.group_name}”的消息当前是“{TARGET_STATUS_ZH[target.status]}”，不能重新发送")
    target.status, target.next_attempt_at, target.attempts = "pending", now, 0
    _event(session, get_alert(session, publication.alert_id), actor.id, "publication_retry", now,
           f"确认“{target.group_name}”没有收到，重新发送发布稿 #{publication.id}",
           {"publication_id": publication.id, "target_id": target.id})
    session.flush()
    return target


def _targets(session: Session, publication_id: int) -> list[PublicationTarget]:
    return list(session.scalars(
        select(PublicationTarget).where(PublicationTarget.publication_id == publication_id).order_by(PublicationTarget.id)
    ))


def _event(session: Session, alert: Alert, actor_id: int | None, action: str, now: dt.datetime,
           comment: str, detail: dict[str, Any]) -> None:
    session.add(AlertEvent(alert_id=alert.id, at=now, actor_id=actor_id, action=action, comment=comment,
                           detail=detail))


# ----------------------------------------------------------------------------- read


def group_message(publication: Publication, alert: Alert) -> str:
    """The text the bot posts in each group."""
    word = "回应" if is_concern(alert) else "辟谣"
    lines = [f"【{publication.publisher}{word}】",
             f"{'群众关切' if word == '回应' else '网传'}：{publication.claim}",
             f"{'答复' if word == '回应' else '真相'}：{publication.text}"]
    if publication.url:
        lines.append(f"详情：{publication.url}")
    return "\n".join(lines)


def card_png(publication: Publication, alert: Alert) -> bytes:
    """The publication's 辟谣 card (1080 px PNG), dated the day it was approved (or drafted)."""
    when = publication.decided_at or publication.created_at
    card = cards.CardText(claim=publication.claim, text=publication.text, publisher=publication.publisher,
                          date=when.astimezone(ZoneInfo(get_settings().timezone)).date(), url=publication.url,
                          concern=is_concern(alert))
    return cards.png_bytes(cards.refutation_card(card))


def group_markdown(publication: Publication, alert: Alert) -> str:
    """The publication as WeCom markdown: a bold heading and the staff's text shown as is."""
    word = "回应" if is_concern(alert) else "辟谣"
    esc = wecom_send.markdown_escape
    lines = [f"**【{esc(publication.publisher)}{word}】**",
             f"> {'群众关切' if word == '回应' else '网传'}：{esc(publication.claim)}",
             f"**{'答复' if word == '回应' else '真相'}**：{esc(publication.text)}"]
    if publication.url:
        lines.append(f"[查看详情]({publication.url.replace(')', '%29')})")
    return "\n".join(lines)


def publication_dict(session: Session, publication: Publication, *, names: dict[int, str] | None = None) -> dict[str, Any]:
    names = names if names is not None else _user_names(session, [publication.created_by, publication.decided_by])
    response = session.get(Response, publication.response_id) if publication.response_id else None
    targets = _targets(session, publication.id)
    counts: dict[str, int] = {}
    for t in targets:
        counts[t.status] = counts.get(t.status, 0) + 1
    return {
        "id": publication.id,
        "alert_id": publication.alert_id,
        "status": publication.status,
        "status_zh": STATUS_ZH.get(publication.status, publication.status),
        "claim": publication.claim,
        "text": publication.text,
        "url": publication.url,
        "publisher": publication.publisher,
        "created_by": publication.created_by,
        "created_by_name": names.get(publication.created_by or 0),
        "created_at": publication.created_at,
        "decided_by": publication.decided_by,
        "decided_by_name": names.get(publication.decided_by or 0),
        "decided_at": publication.decided_at,
        "reject_reason": publication.reject_reason,
        "response_id": publication.response_id,
        "spread_before": response.spread_before if response else {},
        "spread_after": response.spread_after if response else {},
        "target_counts": counts,
        "targets": [
            {"id": t.id, "group_id": t.group_id, "group_name": t.group_name, "platform": t.platform,
             "status": t.status, "status_zh": TARGET_STATUS_ZH.get(t.status, t.status), "attempts": t.attempts,
             "sent_at": t.sent_at, "message_id": t.message_id, "last_error": t.last_error}
            for t in targets
        ],
    }


def _user_names(session: Session, ids: list[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i]
    if not wanted:
        return {}
    return {u.id: (u.display_name or u.username) for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def list_publications(session: Session, alert_id: int) -> list[dict[str, Any]]:
    get_alert(session, alert_id)
    rows = list(session.scalars(select(Publication).where(Publication.alert_id == alert_id).order_by(Publication.id.desc())))
    names = _user_names(session, [x for p in rows for x in (p.created_by, p.decided_by)])
    return [publication_dict(session, p, names=names) for p in rows]


def publications_of_day(session: Session, day: dt.date, tz: dt.tzinfo) -> dict[str, Any]:
    """The measure per day: publications approved on ``day`` (local), each with its matter's spread
    (posts per hour) before and after, and the groups reached; plus the day's totals."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    end = start + dt.timedelta(days=1)
    rows = list(session.scalars(
        select(Publication).where(Publication.status == "approved", Publication.decided_at >= start,
                                  Publication.decided_at < end).order_by(Publication.decided_at, Publication.id)
    ))
    names = _user_names(session, [x for p in rows for x in (p.created_by, p.decided_by)])
    items = []
    for p in rows:
        alert = session.get(Alert, p.alert_id)
        item = publication_dict(session, p, names=names)
        item |= {"alert_title": alert.title if alert else None,
                 "incident_id": alert.incident_id if alert else None,
                 "change": (item["spread_after"] or {}).get("change")}
        items.append(item)
    sent = sum(i["target_counts"].get("sent", 0) for i in items)
    changes = [i["change"] for i in items if i["change"] is not None]
    return {
        "day": day.isoformat(),
        "publications": len(items),
        "groups_sent": sent,
        "groups_not_sent": sum(n for i in items for k, n in i["target_counts"].items() if k != "sent"),
        "median_change": sorted(changes)[len(changes) // 2] if changes else None,
        "items": items,
    }
