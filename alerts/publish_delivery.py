"""Sending approved publications to their chat groups: the outbox of ``publication_targets``.

The notification outbox's pattern (alerts.notify.deliver_due): stable keys, a conditional UPDATE
that claims a row, one short transaction per step. One difference, because a group message sent
twice is seen twice by every resident: a row is committed as ``sending`` *before* the bot is
called. If the process dies before the result is written, the row stays ``sending``; the next run
finds it past the claim window and marks it ``unknown`` (staff check the group and retry by hand)
instead of sending again. Only failures where the bot surely did not send are retried with backoff.
Sends are paced (``YUQING_PUBLISH_SEND_INTERVAL_SECONDS``) so the bot is not banned for flooding.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from alerts import onebot_send
from alerts.publish import group_message
from core.db import session_scope
from core.settings import get_settings
from core.tables import Alert, AlertEvent, Publication, PublicationTarget, utcnow

log = logging.getLogger(__name__)

#: A row ``sending`` for longer than this was being sent by a process that died.
CLAIM_SECONDS = 120

#: (group number, message) -> the bot's message id; raises onebot_send.OneBotSendError.
GroupSender = Callable[[str, str], "str | None"]


def send_via_bot(group: str, message: str) -> str | None:
    mid = onebot_send.send_group_msg(group, message).get("message_id")
    return None if mid is None else str(mid)


@dataclass
class PublishStats:
    due: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    errors: list[str] = field(default_factory=list)


def backoff_seconds(attempts: int) -> float:
    settings = get_settings()
    return float(min(settings.notify_backoff_max_seconds, settings.notify_backoff_seconds * 2 ** max(0, attempts - 1)))


def mark_interrupted(engine: Engine | None, now: dt.datetime) -> int:
    """Rows left ``sending`` by a process that died become ``unknown``: never sent again by themselves."""
    with session_scope(engine) as s:
        stuck = list(s.scalars(
            select(PublicationTarget).where(
                PublicationTarget.status == "sending",
                PublicationTarget.claimed_at <= now - dt.timedelta(seconds=CLAIM_SECONDS),
            )
        ))
        for t in stuck:
            t.status = "unknown"
            t.last_error = "发送过程中断（程序重启或崩溃），无法确认消息是否已发出：请到群里核实，没收到再点“重新发送”"
            _history(s, t, "publication_unknown", now, f"发到“{t.group_name}”的结果未知（发送中断），不会自动重发")
    return len(stuck)


def deliver_publications(
    engine: Engine | None = None,
    *,
    now: Callable[[], dt.datetime] = utcnow,
    limit: int = 100,
    sender: GroupSender = send_via_bot,
    sleep: Callable[[float], None] = time.sleep,
    publication_id: int | None = None,
) -> PublishStats:
    """Send every due group message of approved publications (at most ``limit``)."""
    settings = get_settings()
    stats = PublishStats()
    mark_interrupted(engine, now())
    with session_scope(engine) as s:
        q = (
            select(PublicationTarget.id)
            .join(Publication, Publication.id == PublicationTarget.publication_id)
            .where(Publication.status == "approved", PublicationTarget.status.in_(("pending", "failed")),
                   PublicationTarget.next_attempt_at <= now())
            .order_by(PublicationTarget.next_attempt_at, PublicationTarget.id)
            .limit(limit)
        )
        if publication_id is not None:
            q = q.where(PublicationTarget.publication_id == publication_id)
        due_ids = list(s.scalars(q))
    stats.due = len(due_ids)
    first = True
    for tid in due_ids:
        start = now()
        with session_scope(engine) as s:
            claimed = s.execute(  # type: ignore[attr-defined]
                update(PublicationTarget)
                .where(PublicationTarget.id == tid, PublicationTarget.status.in_(("pending", "failed")),
                       PublicationTarget.next_attempt_at <= start)
                .values(status="sending", claimed_at=start, attempts=PublicationTarget.attempts + 1)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not claimed:
                continue  # another worker has it
            target = s.get(PublicationTarget, tid)
            assert target is not None
            publication = s.get(Publication, target.publication_id)
            alert = s.get(Alert, publication.alert_id) if publication else None
            assert publication is not None and alert is not None
            group, message, attempts = target.external_id, group_message(publication, alert), target.attempts
        if not first and settings.publish_send_interval_seconds:
            sleep(settings.publish_send_interval_seconds)  # the rate limit between two group messages
        first = False
        message_id, error, maybe = None, None, False
        try:
            message_id = sender(group, message)
        except onebot_send.OneBotSendError as err:
            error, maybe = str(err), err.maybe_sent
        except Exception as err:  # a bug must not stop the other groups; we cannot know what went out
            log.exception("publication target #%s: unexpected error while sending", tid)
            error, maybe = f"{type(err).__name__}: {err}", True
        _record(engine, tid, now(), message_id, error, maybe, attempts, settings.publish_max_attempts, stats)
    return stats


def _record(engine: Engine | None, tid: int, finished: dt.datetime, message_id: str | None, error: str | None,
            maybe: bool, attempts: int, max_attempts: int, stats: PublishStats) -> None:
    with session_scope(engine) as s:
        t = s.get(PublicationTarget, tid)
        assert t is not None
        if error is None:
            t.status, t.sent_at, t.message_id, t.last_error = "sent", finished, message_id, None
            stats.sent += 1
            _history(s, t, "publication_sent", finished, f"已发到“{t.group_name}”")
        elif maybe:
            t.status, t.last_error = "unknown", error + "。请到群里核实，没收到再点“重新发送”"
            stats.unknown += 1
            stats.errors.append(f"#{tid} {t.group_name}: {error}")
            _history(s, t, "publication_unknown", finished, f"发到“{t.group_name}”的结果未知：{error}")
        else:
            gave_up = attempts >= max_attempts
            t.status, t.last_error = ("dead" if gave_up else "failed"), error
            t.next_attempt_at = finished + dt.timedelta(seconds=backoff_seconds(attempts))
            stats.failed += 1
            stats.errors.append(f"#{tid} {t.group_name}: {error}")
            tail = f"已试 {attempts} 次，不再自动重试" if gave_up else f"第 {attempts} 次，稍后自动重试"
            _history(s, t, "publication_failed", finished, f"发到“{t.group_name}”失败（{tail}）：{error}")


def _history(s: Session, t: PublicationTarget, action: str, at: dt.datetime, comment: str) -> None:
    publication = s.get(Publication, t.publication_id)
    assert publication is not None
    s.add(AlertEvent(alert_id=publication.alert_id, at=at, action=action, comment=comment,
                     detail={"publication_id": publication.id, "target_id": t.id, "group_id": t.group_id,
                             "status": t.status, "message_id": t.message_id}))
