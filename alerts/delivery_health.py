"""Can anyone be notified? Each notification route, whether it can deliver, and its last delivery.

The shipped routing mails staff by role; until someone enters an address (or a mail server), every
alert only logged a warning and nobody noticed that nobody was told. This module answers, from the
routing file and the outbox tables (``notifications``, ``notification_attempts``), what the
console shows: a warning in the header when no alert route can deliver, and a page of routes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.notify import NotifyConfig, Route, load_notify_config
from alerts.rules import AlertsConfigError
from core.settings import Settings, get_settings
from core.tables import Notification, User

ROLE_ZH = {"viewer": "只读", "staff": "工作人员", "analyst": "分析员", "admin": "管理员"}
CHANNEL_ZH = {"email": "邮件", "dingtalk": "钉钉", "wecom": "企业微信", "feishu": "飞书", "webhook": "Webhook"}


@dataclass
class RouteHealth:
    """One route as staff need to see it."""

    name: str
    channel: str
    escalation: bool  # an escalation route (escalated events only)
    enabled: bool
    targets: list[str]  # addresses, or the robot/webhook host
    problem: str | None  # why it cannot deliver now, in Chinese; None when it can
    sent: int = 0
    pending: int = 0
    last_sent_at: dt.datetime | None = None
    last_error: str | None = None

    @property
    def can_deliver(self) -> bool:
        return self.problem is None


@dataclass
class DeliveryHealth:
    routes: list[RouteHealth] = field(default_factory=list)
    config_error: str | None = None

    @property
    def alert_routes_ok(self) -> list[RouteHealth]:
        return [r for r in self.routes if not r.escalation and r.can_deliver]

    @property
    def nobody_notified(self) -> bool:
        """No route for new alerts can deliver: alerts reach no one outside the console."""
        return not self.alert_routes_ok

    @property
    def summary(self) -> str:
        if self.config_error:
            return f"通知路由文件有误，预警通知无法发出：{self.config_error}"
        if self.nobody_notified:
            return "没有能送达的预警通知路由：新预警不会通知任何人，只能在审核台里看到。"
        return f"{len(self.alert_routes_ok)} 条预警通知路由可以送达。"


def _emails(session: Session, route: Route) -> list[str]:
    found = list(route.to)
    if route.to_roles:
        found += [e for e in session.scalars(
            select(User.email).where(User.role.in_(route.to_roles), User.is_active.is_(True),
                                     User.email.is_not(None))) if e]
    return sorted(dict.fromkeys(a.strip() for a in found if a and a.strip()))


def _problem(route: Route, targets: list[str], settings: Settings) -> str | None:
    if not route.enabled:
        return "已停用（enabled: false）"
    if route.channel == "email":
        if not targets:
            roles = "、".join(ROLE_ZH.get(r, r) for r in route.to_roles)
            who = f"角色为{roles}的在岗用户都没有填写邮箱" if roles else "没有收件地址"
            return f"{who}：请为用户填写邮箱（yuqing users add … --email），或在路由里写 to 地址"
        if not settings.smtp_host:
            return "未配置邮件服务器：请设置 YUQING_SMTP_HOST（以及端口、账号）"
    elif route.channel in ("dingtalk", "feishu", "webhook") and route.secret_env and not route.signing_secret():
        return f"签名密钥的环境变量 {route.secret_env} 没有设置"
    return None


def _host(url: str | None) -> str:
    """A robot URL carries its access token: show only the host."""
    if not url:
        return ""
    return url.split("://", 1)[-1].split("/", 1)[0]


def _like_suffix(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%:{escaped}"


def _outbox(session: Session, health: RouteHealth) -> None:
    """Counts and the last delivery of a route, from its outbox rows (dedup key ends in :<route>)."""
    mine = Notification.dedup_key.like(_like_suffix(health.name), escape="\\")
    rows = session.execute(select(Notification.status, func.count(), func.max(Notification.sent_at))
                           .where(mine).group_by(Notification.status)).all()
    for status, count, last_sent in rows:
        if status == "sent":
            health.sent, health.last_sent_at = int(count), last_sent
        elif status == "pending":
            health.pending = int(count)
    health.last_error = session.scalar(
        select(Notification.last_error).where(mine, Notification.last_error.is_not(None))
        .order_by(Notification.id.desc()).limit(1))


def delivery_health(session: Session, *, config: NotifyConfig | None = None,
                    settings: Settings | None = None) -> DeliveryHealth:
    """Every route of the routing file, whether it can deliver now, and what its outbox holds."""
    settings = settings or get_settings()
    if config is None:
        try:
            config = load_notify_config()
        except AlertsConfigError as err:
            return DeliveryHealth(config_error=str(err))
    escalation = {id(r) for level in config.escalation for r in level.routes}
    out = DeliveryHealth()
    for route in config.all_routes():
        targets = _emails(session, route) if route.channel == "email" else [_host(route.url)]
        health = RouteHealth(name=route.name, channel=route.channel, escalation=id(route) in escalation,
                             enabled=route.enabled, targets=targets, problem=_problem(route, targets, settings))
        _outbox(session, health)
        out.routes.append(health)
    return out
