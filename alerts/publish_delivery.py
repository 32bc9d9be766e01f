"""Sending approved publications to their chat groups: the outbox of ``publication_targets``.

The notification outbox's pattern (alerts.notify.deliver_due): stable keys, a conditional UPDATE
that claims a row, one short transaction per step. One difference, because a group message sent
twice is seen twice by every resident: a row is committed as ``sending`` *before* the bot is
called. If the process dies before the result is written, the row stays ``sending``; the next run
finds it past the claim window and marks it ``unknown`` (staff check the group and retry by hand)
instead of sending again. Only failures where the bot surely did not send are retried with backoff.

Two ways out, one path: QQ groups through the OneBot bot (alerts.onebot_send, one text message),
企业微信 groups through the group's robot webhook (alerts.wecom_send: the text, then the 辟谣
card as a picture). A group's messages are its *parts*; each confirmed part is committed
(``parts_sent``) before the next is sent, so a retry goes on where it stopped and never repeats
a message the group already has.

Sends are paced per sending account with a turn kept in the database (core.throttle.sending_turn):
one bot account (YUQING_PUBLISH_SEND_INTERVAL_SECONDS between two messages, so it is not banned for
flooding) and each WeCom robot (under its 20 messages a minute). The pace holds across processes:
the API's send right after approval and ``yuqing run``'s job, or two workers, share it; the pause
is counted from the end of the previous send, so a message that left late does not bunch up with
the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from alerts import onebot_send, wecom_send
from alerts.publish import card_png, group_markdown, group_message
from core.db import session_scope
from core.settings import get_settings
from core.tables import Alert, AlertEvent, Publication, PublicationTarget, utcnow
from core.throttle import sending_turn

log = logging.getLogger(__name__)

#: A row ``sending`` for longer than this was being sent by a process that died.
CLAIM_SECONDS = 120

SEND_ERRORS = (onebot_send.OneBotSendError, wecom_send.WeComSendError)


@dataclass(frozen=True)
class Destination:
    """Where one group's messages go."""

    platform: str  # qq | wechat | wecom
    external_id: str  # the QQ group number, or the group's id in yuqing's group list
    name: str


@dataclass(frozen=True)
class Part:
    """One message of a group's send: ``text`` (a str) or ``markdown`` (a str) or ``image`` (PNG bytes)."""

    kind: str
    body: str | bytes


#: (destination, part) -> the bot's message id if it gives one; raises one of SEND_ERRORS.
GroupSender = Callable[[Destination, Part], "str | None"]


def send_part(dest: Destination, part: Part) -> str | None:
    """Send one part through the group's platform: the OneBot bot or the group's WeCom robot."""
    if dest.platform == "qq":
        mid = onebot_send.send_group_msg(dest.external_id, str(part.body)).get("message_id")
        return None if mid is None else str(mid)
    robot = wecom_send.robot_for(dest.external_id, dest.name)
    if robot is None:
        raise wecom_send.WeComSendError(f"没有为“{dest.name}”配置企业微信群机器人：在 YUQING_WECOM_ROBOTS 中加上它的 key")
    if part.kind == "image":
        wecom_send.send_image(robot, bytes(part.body))  # type: ignore[arg-type]
    elif part.kind == "markdown":
        wecom_send.send_markdown(robot, str(part.body))
    else:
        wecom_send.send_text(robot, str(part.body))
    return None  # the webhook gives no message id


def message_parts(dest: Destination, publication: Publication, alert: Alert) -> list[Part]:
    """The messages one group gets: QQ one text; WeCom the text (or markdown) and the card."""
    if dest.platform == "qq":
        return [Part("text", group_message(publication, alert))]
    settings = get_settings()
    first = (Part("markdown", group_markdown(publication, alert)) if settings.wecom_message_format == "markdown"
             else Part("text", group_message(publication, alert)))
    return [first, Part("image", card_png(publication, alert))] if settings.wecom_send_card else [first]


def _pace(dest: Destination) -> tuple[str, float] | None:
    """The sending account's pace key and the seconds between two of its messages (None: no pacing)."""
    settings = get_settings()
    interval = settings.publish_send_interval_seconds
    if dest.platform == "qq":
        return ("send:qq:bot", interval) if interval > 0 else None
    robot = wecom_send.robot_for(dest.external_id, dest.name)
    if robot is None:
        return None
    # one under the limit: a send exactly a minute after the first of 20 still counts in its minute
    return f"send:wecom:{robot.account}", max(interval, 60.0 / (settings.wecom_per_minute - 1))


def _hold_seconds() -> float:
    """How long a send may hold its account's turn: longer than one HTTP send can take (connect,
    write and read may each take the timeout); past it a sender is taken for dead."""
    return 3 * get_settings().notify_timeout_seconds + 5.0


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
            done = "文字已发出，辟谣卡片图片" if t.parts_sent else "消息"
            t.last_error = (f"发送过程中断（程序重启或崩溃），无法确认{done}是否已发出：请到群里核实，"
                            "没收到再点“重新发送”")
            _history(s, t, "publication_unknown", now, f"发到“{t.group_name}”的结果未知（发送中断），不会自动重发")
    return len(stuck)


def deliver_publications(
    engine: Engine | None = None,
    *,
    now: Callable[[], dt.datetime] = utcnow,
    limit: int = 100,
    sender: GroupSender = send_part,
    sleep: Callable[[float], None] = time.sleep,
    publication_id: int | None = None,
) -> PublishStats:
    """Send every due group message of approved publications (at most ``limit`` groups)."""
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
    for tid in due_ids:
        claimed = _claim(engine, tid, now())
        if claimed is None:
            continue  # another worker has it
        dest, parts, done, attempts = claimed
        message_id, error, maybe = None, None, False
        for index in range(done, len(parts)):
            with _account_turn(engine, dest, sleep, now):
                try:
                    message_id = sender(dest, parts[index]) or message_id
                except SEND_ERRORS as err:
                    error, maybe = str(err), err.maybe_sent
                except Exception as err:  # a bug must not stop the other groups; we cannot know what went out
                    log.exception("publication target #%s: unexpected error while sending", tid)
                    error, maybe = f"{type(err).__name__}: {err}", True
            if error is not None:
                break
            if index + 1 < len(parts):
                _part_sent(engine, tid, index + 1, now())
        _record(engine, tid, now(), message_id, error, maybe, attempts, settings.publish_max_attempts, stats,
                parts=len(parts))
    return stats


def _account_turn(engine: Engine | None, dest: Destination, sleep: Callable[[float], None],
                  now: Callable[[], dt.datetime]) -> AbstractContextManager[object]:
    """The sending account's turn (its pace, across processes) for one message; nothing when unpaced."""
    paced = _pace(dest)
    if paced is None:
        return nullcontext()
    key, interval = paced
    return sending_turn(engine, key, interval=interval, hold=_hold_seconds(), sleep=sleep, now=now)


def _claim(engine: Engine | None, tid: int, start: dt.datetime) -> tuple[Destination, list[Part], int, int] | None:
    """Mark a due row ``sending`` (committed before anything is sent); its destination, parts,
    parts already confirmed and attempts; None when another worker took it first."""
    with session_scope(engine) as s:
        claimed = s.execute(  # type: ignore[attr-defined]
            update(PublicationTarget)
            .where(PublicationTarget.id == tid, PublicationTarget.status.in_(("pending", "failed")),
                   PublicationTarget.next_attempt_at <= start)
            .values(status="sending", claimed_at=start, attempts=PublicationTarget.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            return None
        target = s.get(PublicationTarget, tid)
        assert target is not None
        publication = s.get(Publication, target.publication_id)
        alert = s.get(Alert, publication.alert_id) if publication else None
        assert publication is not None and alert is not None
        dest = Destination(target.platform, target.external_id, target.group_name)
        done, attempts = target.parts_sent, target.attempts
    # drawn after the claim's commit: the card takes a moment, and SQLite's write lock is not held meanwhile
    return dest, message_parts(dest, publication, alert), done, attempts


def _part_sent(engine: Engine | None, tid: int, parts_sent: int, at: dt.datetime) -> None:
    """One more part confirmed; the row stays ``sending`` (claimed again from now)."""
    with session_scope(engine) as s:
        s.execute(update(PublicationTarget).where(PublicationTarget.id == tid)
                  .values(parts_sent=parts_sent, claimed_at=at).execution_options(synchronize_session=False))


def _record(engine: Engine | None, tid: int, finished: dt.datetime, message_id: str | None, error: str | None,
            maybe: bool, attempts: int, max_attempts: int, stats: PublishStats, *, parts: int) -> None:
    with session_scope(engine) as s:
        t = s.get(PublicationTarget, tid)
        assert t is not None
        if error is None:
            t.status, t.sent_at, t.message_id, t.last_error, t.parts_sent = "sent", finished, message_id, None, parts
            stats.sent += 1
            _history(s, t, "publication_sent", finished, f"已发到“{t.group_name}”")
            return
        stats.errors.append(f"#{tid} {t.group_name}: {error}")
        if t.parts_sent:
            error = f"文字已发出；辟谣卡片图片：{error}"
        if maybe:
            t.status, t.last_error = "unknown", error + "。请到群里核实，没收到再点“重新发送”"
            stats.unknown += 1
            _history(s, t, "publication_unknown", finished, f"发到“{t.group_name}”的结果未知：{error}")
        else:
            gave_up = attempts >= max_attempts
            t.status, t.last_error = ("dead" if gave_up else "failed"), error
            t.next_attempt_at = finished + dt.timedelta(seconds=backoff_seconds(attempts))
            stats.failed += 1
            tail = f"已试 {attempts} 次，不再自动重试" if gave_up else f"第 {attempts} 次，稍后自动重试"
            _history(s, t, "publication_failed", finished, f"发到“{t.group_name}”失败（{tail}）：{error}")


def _history(s: Session, t: PublicationTarget, action: str, at: dt.datetime, comment: str) -> None:
    publication = s.get(Publication, t.publication_id)
    assert publication is not None
    s.add(AlertEvent(alert_id=publication.alert_id, at=at, action=action, comment=comment,
                     detail={"publication_id": publication.id, "target_id": t.id, "group_id": t.group_id,
                             "status": t.status, "message_id": t.message_id}))
