"""Answers to residents' tips, through the notification outbox (alerts.notify).

* The first reply to a QQ private message (refutation or acknowledgement) is an outbox row
  written with the tip, so it is sent even if the bot framework is down for a while.
* :func:`answer_tips` runs when staff record a response on an alert (alerts.workflow.respond):
  every tip on that alert's incident (or among its evidence) whose resident asked to be told,
  and that has not been answered yet, gets the approved text on its own channel. The delivery key
  ``tip:<id>:answer`` makes it one answer per tip, however often responses are recorded.

Channels: ``qq_private`` (OneBot send_private_msg), ``wechat_user`` (the 公众号 customer-service
message API; needs AppID/AppSecret), ``tip_email`` (a mail to the address the resident left on
the tip page). The target of each row is the *sealed* contact (core.tips), never the address
in clear; it is opened only in the sender. A phone number or a hotline caller reference has no
automatic channel: such tips are listed for staff to call back.

Residents must never get an answer twice, so these channels are sent at most once
(notify.AT_MOST_ONCE_CHANNELS): the row is marked ``sending`` in its own commit before the call;
a failure the other side reported (refused, unreachable) puts it back to retry; a crash between
the call and the "sent" mark leaves ``sending``, which is turned into ``unsure`` (shown to staff,
never re-sent) once the claim window has passed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import httpx
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from alerts.onebot_send import OneBotSendError, send_private_msg
from core.settings import Settings
from core.tables import Alert, AlertPost, Notification, Post, Response, Tip, utcnow
from core.tips import open_contact

log = logging.getLogger(__name__)
TIP_CHANNELS = ("qq_private", "wechat_user", "tip_email")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def staff_answer_message(text: str) -> str:
    return f"【答复】您此前反映的情况，答复如下：\n{text.strip()}"


def delivery_channel(tip: Tip) -> str | None:
    """The outbox channel that can reach this tip's resident, or None (staff call back)."""
    if tip.channel == "qq":
        return "qq_private"
    if tip.channel == "wechat":
        return "wechat_user"
    if tip.channel == "web" and tip.contact_sealed:
        contact = open_contact(tip.contact_sealed) or {}
        return "tip_email" if _EMAIL.match(contact.get("address", "")) else None
    return None


def _enqueue(session: Session, tip: Tip, kind: str, text: str, *, alert_id: int | None = None) -> Notification | None:
    channel = delivery_channel(tip)
    if channel is None or not tip.contact_sealed:
        return None
    key = f"tip:{tip.id}:{kind}"
    if session.scalar(select(Notification.id).where(Notification.dedup_key == key)) is not None:
        return None
    row = Notification(
        dedup_key=key, channel=channel, target=tip.contact_sealed, subject="举报线索答复",
        payload={"text": text, "tip_id": tip.id, "kind": kind}, alert_id=alert_id, status="pending",
        attempts=0, next_attempt_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def enqueue_first_reply(session: Session, tip: Tip, *, late: bool = False) -> Notification | None:
    """Queue the first reply where the channel has no way to answer in the request (QQ), or
    (``late``) where the request was answered before the reply was ready (a 公众号 message
    answered with the acknowledgement at its deadline: its refutation follows as a message)."""
    if not tip.first_reply or (tip.channel != "qq" and not late):
        return None
    return _enqueue(session, tip, "first", tip.first_reply)


def tips_of_alert(session: Session, alert: Alert) -> list[Tip]:
    """Tips whose post is in the alert's incident or among its evidence."""
    conditions = [Tip.post_id.in_(select(AlertPost.post_id).where(AlertPost.alert_id == alert.id))]
    if alert.incident_id is not None:
        conditions.append(Tip.post_id.in_(select(Post.id).where(Post.incident_id == alert.incident_id)))
    return list(session.scalars(select(Tip).where(or_(*conditions)).order_by(Tip.received_at, Tip.id)))


def answer_tips(session: Session, alert: Alert, response: Response) -> int:
    """Queue the approved answer for every waiting tip of the alert (caller commits); how many."""
    queued = 0
    text = staff_answer_message(response.text)
    for tip in tips_of_alert(session, alert):
        if tip.status not in ("acknowledged",) or not tip.wants_answer:
            continue
        tip.response_id = response.id
        tip.answer = response.text
        if _enqueue(session, tip, "answer", text, alert_id=alert.id) is None:
            continue  # no automatic channel: listed for staff to call back
        tip.status, tip.answered_at = "answered", utcnow()
        queued += 1
    return queued


# ----------------------------------------------------------------------------- senders


class TipDeliveryError(Exception):
    def __init__(self, message: str, status_code: int | None = None, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.maybe_sent = maybe_sent


def send_tip_message(n: Notification, settings: Settings) -> int | None:
    """Send one tip answer; raises TipDeliveryError when it was certainly not delivered."""
    contact = open_contact(n.target)
    if contact is None:
        raise TipDeliveryError("联系方式无法解密（实例密钥已更换？）：此答复无法发送")
    text = str(n.payload.get("text", ""))
    address = contact.get("address", "")
    if n.channel == "qq_private":
        try:
            send_private_msg(address, text)
        except OneBotSendError as err:
            raise TipDeliveryError(str(err), err.status_code, maybe_sent=err.maybe_sent) from err
        return 200
    if n.channel == "wechat_user":
        return _send_wechat(address, text, settings)
    if n.channel == "tip_email":
        return _send_email(address, text, n, settings)
    raise TipDeliveryError(f"未知的线索答复渠道 '{n.channel}'")


def _send_email(address: str, text: str, n: Notification, settings: Settings) -> int | None:
    from alerts.notify import DeliveryError, send_email

    mail = Notification(id=n.id, dedup_key=n.dedup_key, channel="email", target=address,
                        subject="关于您反映情况的答复", payload={"text": text + "\n\n（请勿直接回复此邮件）"})
    try:
        return send_email(mail, settings)
    except DeliveryError as err:
        raise TipDeliveryError(str(err), err.status_code) from err


_WECHAT_TOKEN: dict[str, Any] = {}
_WECHAT_LOCK = threading.Lock()


def _wechat_access_token(client: httpx.Client, settings: Settings) -> str:
    """The 公众号 access_token (valid 2 h; cached until 5 minutes before it expires)."""
    if not settings.wechat_app_id or settings.wechat_app_secret is None:
        raise TipDeliveryError("未配置公众号 AppID/AppSecret（YUQING_WECHAT_APP_ID、YUQING_WECHAT_APP_SECRET）：无法主动答复")
    with _WECHAT_LOCK:
        cached = _WECHAT_TOKEN.get(settings.wechat_app_id)
        if cached and cached[1] > time.monotonic():
            return str(cached[0])
        response = client.get(f"{settings.wechat_api_url.rstrip('/')}/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": settings.wechat_app_id,
            "secret": settings.wechat_app_secret.get_secret_value()})
        body = response.json()
        if "access_token" not in body:
            raise TipDeliveryError(f"公众号 access_token 获取失败：{body.get('errcode')} {body.get('errmsg')}")
        _WECHAT_TOKEN[settings.wechat_app_id] = (body["access_token"], time.monotonic() + int(body.get("expires_in", 7200)) - 300)
        return str(body["access_token"])


def _send_wechat(openid: str, text: str, settings: Settings) -> int | None:
    try:
        with httpx.Client(timeout=settings.notify_timeout_seconds, trust_env=False) as client:
            token = _wechat_access_token(client, settings)
            response = client.post(
                f"{settings.wechat_api_url.rstrip('/')}/cgi-bin/message/custom/send",
                params={"access_token": token},
                content=_json({"touser": openid, "msgtype": "text", "text": {"content": text}}),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
    except httpx.HTTPError as err:
        raise TipDeliveryError(f"无法连接公众号接口：{type(err).__name__} {err}") from err
    body = response.json() if response.headers.get("content-type", "").startswith(("application/json", "text/plain")) else {}
    if response.status_code >= 300 or body.get("errcode", 0) != 0:
        raise TipDeliveryError(f"公众号客服消息发送失败：{body.get('errcode')} {body.get('errmsg')}", response.status_code)
    return response.status_code


def _json(value: dict[str, Any]) -> bytes:
    import json

    return json.dumps(value, ensure_ascii=False).encode("utf-8")

