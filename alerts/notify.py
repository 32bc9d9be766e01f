"""Notifications that are never lost: a routing config, an outbox, and a delivery job.

- :func:`enqueue` writes outbox rows (``notifications``) in the caller's session, so they commit
  in the same transaction as the alert change they report (or not at all).
- :func:`deliver_due` sends what is due, one claimed row at a time, records every attempt in
  ``notification_attempts``, and on failure schedules a retry with exponential backoff. A channel
  that is down delays delivery; nothing is dropped.
- Routing (``alerts/notify.yaml`` or ``YUQING_NOTIFY_CONFIG_FILE``) sends each alert event to the
  routes whose severity, category and kind match; outside urgent alerts, a route that respects
  quiet hours gets its message at the end of the quiet hours instead.

Channels: email (smtplib, ``YUQING_SMTP_*``, none / STARTTLS / SSL), DingTalk and WeCom group
robots (markdown), Feishu (interactive card with markdown), and a generic JSON webhook signed with
HMAC-SHA256 (``X-Yuqing-Signature: sha256=<hex of HMAC(secret, body)>``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from alerts.rules import SEVERITIES, SEVERITY_ZH, AlertsConfigError, _format_errors
from core.db import session_scope
from core.mail import smtp_login, stable_message_id
from core.settings import Settings, get_settings
from core.tables import Alert, Notification, NotificationAttempt, User, utcnow

log = logging.getLogger(__name__)

DEFAULT_NOTIFY_FILE = Path(__file__).resolve().parent / "notify.yaml"
CHANNELS = ("email", "dingtalk", "wecom", "feishu", "webhook")
EVENTS = ("created", "rising", "escalated", "realert", "manual")
#: The one set of words for alert kinds: notifications, the console and the digest all use it.
KIND_ZH = {
    "rumor": "疑似谣言",
    "debunk_match": "匹配已辟谣",
    "spread": "多群扩散",
    "concern": "热点关切",
    "keyword": "关键词命中",
    "manual": "人工预警",
    "notice": "官方通知传播",
}
EVENT_ZH = {
    "created": "新预警",
    "rising": "预警升级",
    "escalated": "预警未处理，已升级",
    "realert": "再次预警",
    "manual": "人工预警",
}
#: How long a claimed notification stays invisible to other delivery workers.
CLAIM_SECONDS = 120

Severity = Literal["low", "medium", "high", "urgent"]


# ----------------------------------------------------------------------------- configuration


class Route(BaseModel):
    """Where one kind of alert event goes."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    channel: Literal["email", "dingtalk", "wecom", "feishu", "webhook"]
    to: list[str] = Field(default_factory=list, description="email addresses")
    to_roles: list[Literal["viewer", "staff", "analyst", "admin"]] = Field(
        default_factory=list, description="email every active user of these roles who has an address"
    )
    url: str | None = Field(None, description="webhook / robot URL")
    secret: str | None = Field(None, description="signing secret (DingTalk, Feishu, webhook)")
    secret_env: str | None = Field(None, description="... or the environment variable that holds it")
    min_severity: Severity = "medium"
    categories: list[str] = Field(default_factory=list, description="empty: every category")
    kinds: list[str] = Field(default_factory=list, description="empty: every alert kind")
    events: list[str] = Field(default_factory=lambda: ["created", "rising", "realert", "manual"])
    quiet_hours: bool = Field(True, description="hold non-urgent messages during quiet hours")
    enabled: bool = True

    @model_validator(mode="after")
    def _target(self) -> Route:
        if self.channel == "email":
            if not (self.to or self.to_roles):
                raise ValueError(f"路由 '{self.name}'：邮件渠道需要 to（邮箱）或 to_roles（角色）")
            bad = [a for a in self.to if "@" not in a]
            if bad:
                raise ValueError(f"路由 '{self.name}'：不是邮箱地址：{', '.join(bad)}")
        elif not self.url or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"路由 '{self.name}'：{self.channel} 渠道需要以 http:// 或 https:// 开头的 url")
        unknown = [e for e in self.events if e not in EVENTS]
        if unknown:
            raise ValueError(f"路由 '{self.name}'：未知事件 {unknown}，可选 {', '.join(EVENTS)}")
        return self

    def signing_secret(self) -> str | None:
        if self.secret:
            return self.secret
        if self.secret_env:
            return os.environ.get(self.secret_env) or None
        return None

    def wants(self, alert: Alert, event: str) -> bool:
        return (
            self.enabled
            and event.split(":")[0] in self.events
            and SEVERITIES.index(alert.severity) >= SEVERITIES.index(self.min_severity)
            and (not self.categories or alert.category in self.categories)
            and (not self.kinds or alert.kind in self.kinds)
        )


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "22:00"
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "07:00"


class EscalationLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after_minutes: dict[Severity, Annotated[float, Field(gt=0)]] = Field(
        description="minutes without acknowledgement, per severity (others never escalate)"
    )
    routes: list[Route] = Field(default_factory=list)


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quiet_hours: QuietHours | None = None
    routes: list[Route] = Field(default_factory=list)
    escalation: list[EscalationLevel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> NotifyConfig:
        names = [r.name for r in self.all_routes()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"路由名称重复：{', '.join(dupes)}")
        return self

    def all_routes(self) -> list[Route]:
        return [*self.routes, *(r for level in self.escalation for r in level.routes)]

    def route(self, name: str) -> Route | None:
        return next((r for r in self.all_routes() if r.name == name), None)


def parse_notify_config(text: str, *, origin: str = "<text>") -> NotifyConfig:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise AlertsConfigError(f"通知配置 {origin} 不是有效的 YAML：{err}") from err
    if not isinstance(data, dict):
        raise AlertsConfigError(f"通知配置 {origin} 的顶层必须是映射（键: 值）")
    try:
        return NotifyConfig.model_validate(data)
    except ValidationError as err:
        raise AlertsConfigError(f"通知配置 {origin} 有误：{_format_errors(err)}") from err


def notify_config_path() -> Path:
    return get_settings().notify_config_file or DEFAULT_NOTIFY_FILE


def load_notify_config(path: Path | None = None) -> NotifyConfig:
    path = path or notify_config_path()
    try:
        stat = path.stat()
    except OSError as err:
        raise AlertsConfigError(f"找不到通知配置 {path}：检查 YUQING_NOTIFY_CONFIG_FILE") from err
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int, _size: int) -> NotifyConfig:
    return parse_notify_config(Path(path).read_text(encoding="utf-8"), origin=path)


# ----------------------------------------------------------------------------- the outbox


def quiet_until(now: dt.datetime, quiet: QuietHours | None, tz: str) -> dt.datetime | None:
    """The end of the quiet period ``now`` falls in (UTC), or None outside quiet hours."""
    if quiet is None or quiet.start == quiet.end:
        return None
    local = now.astimezone(ZoneInfo(tz))
    sh, sm = map(int, quiet.start.split(":"))
    eh, em = map(int, quiet.end.split(":"))
    start, end = dt.time(sh, sm), dt.time(eh, em)
    t = local.time()
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    end_day = local.date() if t < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(end_day, end, tzinfo=local.tzinfo).astimezone(dt.UTC)


def _clean(text: str | None, limit: int = 200) -> str:
    """Untrusted post text inside a markdown message: no links, no HTML, one line."""
    text = " ".join((text or "").split())
    for a, b in (("[", "［"), ("]", "］"), ("<", "＜"), (">", "＞"), ("`", "'"), ("*", "＊"), ("#", "＃")):
        text = text.replace(a, b)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_message(alert: Alert, event: str, settings: Settings, note: str | None = None) -> dict[str, Any]:
    """Subject, markdown and plain text of a message about ``alert`` (all Simplified Chinese)."""
    sev = SEVERITY_ZH.get(alert.severity, alert.severity)
    kind = KIND_ZH.get(alert.kind, alert.kind)
    title = _clean(alert.title, 80)
    headline = EVENT_ZH.get(event.split(":")[0], "预警")
    link = f"{settings.base_url.rstrip('/')}/alerts/{alert.id}"
    reasons = [
        str(p.get("text"))
        for k, p in (alert.score_parts or {}).items()
        if isinstance(p, dict) and p.get("points") and k != "rules"
    ]
    fired = "、".join(str(r.get("name")) for r in alert.rules_fired or [] if isinstance(r, dict)) or "无"
    lines = [
        f"类型：{kind}",
        f"等级：{sev}（风险分 {alert.risk_score:.0f}）",
        f"类别：{alert.category or '未分类'}",
        f"范围：{alert.post_count} 条帖子，{alert.group_count} 个群或来源",
        f"触发规则：{fired}",
    ]
    if reasons:
        lines.append("依据：" + "；".join(reasons[:4]))
    if note:
        lines.append(f"说明：{_clean(note)}")
    subject = f"【{sev}】{headline}：{title}"
    markdown = f"### {subject}\n" + "\n".join(f"- {line}" for line in lines) + f"\n\n[查看详情]({link})"
    plain = subject + "\n\n" + "\n".join(lines) + f"\n\n查看详情：{link}\n\n（舆情哨兵自动发送）"
    return {"subject": subject, "markdown": markdown, "text": plain, "link": link}


def _emails_for(session: Session, route: Route) -> list[str]:
    found = list(route.to)
    if route.to_roles:
        found += [
            e
            for e in session.scalars(
                select(User.email)
                .where(User.role.in_(route.to_roles), User.is_active.is_(True), User.email.is_not(None))
                .order_by(User.id)
            )
            if e
        ]
    return sorted(dict.fromkeys(a.strip() for a in found if a and a.strip()))


def enqueue(
    session: Session,
    alert: Alert,
    event: str,
    *,
    now: dt.datetime | None = None,
    routes: list[Route] | None = None,
    config: NotifyConfig | None = None,
    note: str | None = None,
) -> list[Notification]:
    """Write the outbox rows for one alert event, in the caller's transaction. Idempotent:
    the dedup key (alert, event, route) makes a repeated call add nothing."""
    settings = get_settings()
    config = config or load_notify_config()
    now = now or utcnow()
    routes = routes if routes is not None else [r for r in config.routes if r.wants(alert, event)]
    if not routes:
        return []
    message = render_message(alert, event, settings, note)
    quiet_end = quiet_until(now, config.quiet_hours, settings.timezone)
    created = []
    for route in routes:
        key = f"alert:{alert.id}:{event}:{route.name}"
        if session.scalar(select(Notification.id).where(Notification.dedup_key == key)) is not None:
            continue
        if route.channel == "email":
            addresses = _emails_for(session, route)
            if not addresses:
                log.warning("通知路由“%s”没有收件邮箱，预警 #%s 未发邮件：请为用户填写邮箱或在路由里写 to 地址"
                            "（审核台“通知”页列出每条路由能否送达）", route.name, alert.id)
                continue
            target = ",".join(addresses)
        else:
            target = route.url or ""
        due = quiet_end if (quiet_end and route.quiet_hours and alert.severity != "urgent") else now
        payload = {
            "route": route.name,
            "event": event,
            **message,
            "alert": {
                "id": alert.id,
                "title": alert.title,
                "kind": alert.kind,
                "severity": alert.severity,
                "risk_score": alert.risk_score,
                "category": alert.category,
                "status": alert.status,
                "post_count": alert.post_count,
                "group_count": alert.group_count,
                "story_id": alert.story_id,
                "topic_id": alert.topic_id,
            },
        }
        row = Notification(
            dedup_key=key[:300],
            channel=route.channel,
            target=target[:1000],
            subject=message["subject"][:500],
            payload=payload,
            alert_id=alert.id,
            status="pending",
            attempts=0,
            next_attempt_at=due,
            created_at=now,
        )
        session.add(row)
        created.append(row)
    session.flush()
    return created


# ----------------------------------------------------------------------------- channels


class DeliveryError(Exception):
    def __init__(self, message: str, status_code: int | None = None, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.maybe_sent = maybe_sent  # an at-most-once row is then left unsure, not retried


def send_email(n: Notification, settings: Settings) -> int | None:
    if not settings.smtp_host:
        raise DeliveryError("未配置邮件服务器：设置 YUQING_SMTP_HOST（以及端口、账号）后会自动重试")
    msg = EmailMessage()
    msg["Subject"] = n.subject or "舆情哨兵预警"
    msg["From"] = formataddr(("舆情哨兵", settings.smtp_sender))
    msg["To"] = n.target
    msg["Message-ID"] = stable_message_id(f"notification:{n.id}:{n.dedup_key}", settings.smtp_sender)
    msg["X-Yuqing-Delivery"] = str(n.id)
    msg.set_content(str(n.payload.get("text", "")))
    timeout = settings.notify_timeout_seconds
    security = settings.smtp_security.lower()
    if security not in ("none", "starttls", "ssl"):
        raise DeliveryError(
            f"YUQING_SMTP_SECURITY 的值 '{settings.smtp_security}' 无效：可选 none、starttls、ssl"
        )
    ca_file = getattr(settings, "smtp_ca_file", None)  # a private CA, if the office has one
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    try:
        if security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with smtp:
            if security == "starttls":
                smtp.starttls(context=context)
            if settings.smtp_user:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp_login(smtp, settings.smtp_user, password)
            refused = smtp.send_message(msg, to_addrs=[a for a in n.target.split(",") if a])
    except smtplib.SMTPAuthenticationError as err:
        raise DeliveryError(
            f"邮件服务器 {settings.smtp_host}:{settings.smtp_port} 拒绝登录（用户 {settings.smtp_user}）："
            "请检查 YUQING_SMTP_USER 和 YUQING_SMTP_PASSWORD；通知会保留并自动重试"
        ) from err
    except (OSError, smtplib.SMTPException, UnicodeError) as err:
        raise DeliveryError(f"邮件发送失败（{settings.smtp_host}:{settings.smtp_port}）：{err}") from err
    if refused:
        raise DeliveryError(f"邮件服务器拒收：{', '.join(refused)}")
    return 250


def _dingtalk_url(url: str, secret: str | None) -> str:
    if not secret:
        return url
    timestamp = str(int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def feishu_sign(secret: str, timestamp: int) -> str:
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def build_request(n: Notification, route: Route | None) -> tuple[str, bytes, dict[str, str]]:
    """URL, body and headers of a webhook-style delivery (pure, so tests can check formats)."""
    secret = route.signing_secret() if route else None
    p = n.payload
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "yuqing-notify/0.1"}
    url = n.target
    if n.channel == "dingtalk":
        body: dict[str, Any] = {
            "msgtype": "markdown",
            "markdown": {"title": p.get("subject", ""), "text": p.get("markdown", "")},
        }
        url = _dingtalk_url(url, secret)
    elif n.channel == "wecom":
        body = {"msgtype": "markdown", "markdown": {"content": p.get("markdown", "")}}
    elif n.channel == "feishu":
        body = {
            "msg_type": "interactive",
            "card": {
                "header": {"title": {"tag": "plain_text", "content": p.get("subject", "")}},
                "elements": [{"tag": "markdown", "content": p.get("markdown", "")}],
            },
        }
        if secret:
            ts = int(time.time())
            body = {"timestamp": str(ts), "sign": feishu_sign(secret, ts)} | body
    else:
        body = {
            "event": p.get("event"),
            "delivery": n.dedup_key,
            "sent_at": utcnow().isoformat(),
            "subject": p.get("subject"),
            "text": p.get("text"),
            "link": p.get("link"),
            "alert": p.get("alert", {}),
        }
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers["X-Yuqing-Delivery"] = n.dedup_key.encode("ascii", "backslashreplace").decode()[:200]
    headers["X-Yuqing-Notification"] = str(n.id)
    if n.channel == "webhook" and secret:
        headers["X-Yuqing-Signature"] = webhook_signature(secret, raw)
    return url, raw, headers


def send_webhook(n: Notification, route: Route | None, settings: Settings) -> int | None:
    url, raw, headers = build_request(n, route)
    try:
        with httpx.Client(
            timeout=settings.notify_timeout_seconds, follow_redirects=False, trust_env=False
        ) as c:
            response = c.post(url, content=raw, headers=headers)
    except httpx.HTTPError as err:
        raise DeliveryError(f"无法连接 {n.channel} 接口：{type(err).__name__} {err}") from err
    if response.status_code >= 300:
        raise DeliveryError(
            f"{n.channel} 接口返回 HTTP {response.status_code}：{response.text[:200]}", response.status_code
        )
    if n.channel in ("dingtalk", "wecom", "feishu"):
        # The robots answer HTTP 200 with an error code in the body (bad token, rate limit, ...).
        try:
            data = response.json()
        except ValueError:
            data = {}
        code = (
            data.get("errcode", data.get("code", data.get("StatusCode", 0))) if isinstance(data, dict) else 0
        )
        if code not in (0, None):
            msg = data.get("errmsg") or data.get("msg") or data.get("StatusMessage") or ""
            raise DeliveryError(f"{n.channel} 机器人返回错误 {code}：{msg}", response.status_code)
    return response.status_code


Sender = Callable[[Notification, "Route | None", Settings], "int | None"]
#: Answers to residents (alerts.tip_delivery): sent at most once, since a resident must never be
#: answered twice. Marked ``sending`` in a commit before the call; a crash leaves it ``unsure``.
AT_MOST_ONCE_CHANNELS = ("qq_private", "wechat_user", "tip_email")


def send(n: Notification, route: Route | None, settings: Settings) -> int | None:
    if n.channel in AT_MOST_ONCE_CHANNELS:
        from alerts.tip_delivery import TipDeliveryError, send_tip_message

        try:
            return send_tip_message(n, settings)
        except TipDeliveryError as err:
            raise DeliveryError(str(err), err.status_code, maybe_sent=err.maybe_sent) from err
    if n.channel == "email":
        return send_email(n, settings)
    if n.channel in ("dingtalk", "wecom", "feishu", "webhook"):
        return send_webhook(n, route, settings)
    raise DeliveryError(f"未知渠道 '{n.channel}'：可选 {', '.join(CHANNELS)}")


# ----------------------------------------------------------------------------- delivery


@dataclass
class DeliveryStats:
    due: int = 0
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def backoff_seconds(attempts: int, settings: Settings) -> float:
    """Delay before retry number ``attempts`` (1 = after the first failure): base * 2^(n-1), capped."""
    return min(
        settings.notify_backoff_max_seconds, settings.notify_backoff_seconds * 2 ** max(0, attempts - 1)
    )


def deliver_due(
    engine: Engine | None = None,
    *,
    now: Callable[[], dt.datetime] = utcnow,
    limit: int = 100,
    config: NotifyConfig | None = None,
    sender: Sender = send,
) -> DeliveryStats:
    """Send every due notification (at most ``limit``); one short transaction per step.

    Each row is first *claimed* (its next attempt moved past the claim window by a conditional
    UPDATE), so two delivery workers never send the same row; then sent; then marked sent or
    rescheduled with backoff, with the attempt recorded. ``now`` is injectable for tests.
    """
    settings = get_settings()
    stats = DeliveryStats()
    try:
        config = config or load_notify_config()
    except AlertsConfigError as err:
        log.error("通知路由文件有误，按无路由处理（已排队的通知照常发送）：%s", err)
        config = NotifyConfig()
    with session_scope(engine) as s:
        _give_up_interrupted(s, now())
        due = s.execute(
            select(Notification.id, Notification.channel)
            .where(Notification.status == "pending", Notification.next_attempt_at <= now())
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        ).all()
    stats.due = len(due)
    for nid, channel in due:
        start = now()
        once = {"status": "sending"} if channel in AT_MOST_ONCE_CHANNELS else {}
        with session_scope(engine) as s:
            claimed = s.execute(  # type: ignore[attr-defined]
                update(Notification)
                .where(
                    Notification.id == nid,
                    Notification.status == "pending",
                    Notification.next_attempt_at <= start,
                )
                .values(next_attempt_at=start + dt.timedelta(seconds=CLAIM_SECONDS), **once)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not claimed:
                continue  # another worker has it
            n = s.get(Notification, nid)
            assert n is not None
            s.expunge(n)
        t0 = time.perf_counter()
        ok, code, error, maybe_sent = True, None, None, False
        try:
            code = sender(n, config.route(str(n.payload.get("route", ""))), settings)
        except DeliveryError as err:
            ok, code, error, maybe_sent = False, err.status_code, str(err), err.maybe_sent
        except Exception as err:  # a bug in one channel must not stop the others
            log.exception("通知 #%s 发送时出现意外错误（稍后重试）", nid)
            ok, error = False, f"{type(err).__name__}: {err}"
            maybe_sent = True  # for an answer to a resident: it may have gone out before the bug
        duration = (time.perf_counter() - t0) * 1000
        finished = now()
        with session_scope(engine) as s:
            row = s.get(Notification, nid)
            assert row is not None
            row.attempts += 1
            s.add(
                NotificationAttempt(
                    notification_id=nid,
                    at=finished,
                    ok=ok,
                    status_code=code,
                    error=error,
                    duration_ms=round(duration, 2),
                )
            )
            if ok:
                row.status, row.sent_at, row.last_error = "sent", finished, None
                stats.sent += 1
            elif channel in AT_MOST_ONCE_CHANNELS and maybe_sent:
                row.status, row.last_error = "unsure", error
                stats.failed += 1
                stats.errors.append(f"#{nid} {n.channel}: {error}")
            else:
                row.status = "pending"  # an at-most-once row the other side refused: not delivered
                row.last_error = error
                row.next_attempt_at = finished + dt.timedelta(seconds=backoff_seconds(row.attempts, settings))
                stats.failed += 1
                stats.errors.append(f"#{nid} {n.channel}: {error}")
                log.warning(
                    "通知 #%s（%s）发送失败，第 %s 次，将于 %s 重试：%s",
                    nid,
                    n.channel,
                    row.attempts,
                    row.next_attempt_at.isoformat(),
                    error,
                )
    return stats


def _give_up_interrupted(session: Session, now: dt.datetime) -> None:
    """At-most-once rows still ``sending`` after their claim window: the sender died between the
    call and the record, so the message may have gone out. They become ``unsure``, never re-sent."""
    for row in session.scalars(
        select(Notification).where(Notification.status == "sending", Notification.next_attempt_at <= now)
    ):
        row.status = "unsure"
        row.last_error = "发送过程中断，可能已送达也可能未送达：为免重复答复，不再自动重发，请人工核实"
        log.warning("通知 #%s（%s）发送中断，标记为待核实，不再重发", row.id, row.channel)
