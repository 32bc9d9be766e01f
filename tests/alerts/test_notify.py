"""Notifications: routing, quiet hours, real SMTP and webhook delivery, retries that never lose one."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts import evaluate as evaluation
from alerts import notify
from alerts.notify import deliver_due, parse_notify_config, quiet_until
from core.db import make_engine, session_scope
from core.errors import InvalidInput
from core.tables import Notification, NotificationAttempt
from tests.factories import make_alert, make_user

NOON = dt.datetime(2026, 11, 28, 4, 0, tzinfo=dt.UTC)  # 12:00 in Asia/Shanghai
NIGHT = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.UTC)  # 23:00 in Asia/Shanghai


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def test_quiet_hours_hold_all_but_urgent(session: Session) -> None:
    config = parse_notify_config("""
quiet_hours: {start: "22:00", end: "07:00"}
routes:
  - {name: 值班, channel: webhook, url: "http://127.0.0.1:9/a", min_severity: medium}
  - {name: 卫生院, channel: webhook, url: "http://127.0.0.1:9/b", min_severity: low, categories: [医疗救治]}
  - {name: 应急, channel: webhook, url: "http://127.0.0.1:9/c", min_severity: urgent, quiet_hours: false}
""")
    assert quiet_until(NOON, config.quiet_hours, "Asia/Shanghai") is None
    morning = dt.datetime(2026, 11, 28, 23, 0, tzinfo=dt.UTC)  # 07:00 next local day
    assert quiet_until(NIGHT, config.quiet_hours, "Asia/Shanghai") == morning
    medium = make_alert(session, severity="medium", category="医疗救治")
    urgent = make_alert(session, severity="urgent", category="公共安全")
    low = make_alert(session, severity="low", category="物价")
    notify.enqueue(session, medium, "created", now=NIGHT, config=config)
    notify.enqueue(session, urgent, "created", now=NIGHT, config=config)
    notify.enqueue(session, low, "created", now=NIGHT, config=config)
    rows = {(n.alert_id, n.payload["route"]): n for n in session.scalars(select(Notification))}
    assert set(rows) == {(medium.id, "值班"), (medium.id, "卫生院"), (urgent.id, "值班"), (urgent.id, "应急")}
    assert rows[(medium.id, "值班")].next_attempt_at == morning  # held until the end of quiet hours
    assert rows[(urgent.id, "值班")].next_attempt_at == NIGHT  # urgent goes now
    # enqueueing the same event again adds nothing
    assert notify.enqueue(session, medium, "created", now=NIGHT, config=config) == []


def test_routing_config_errors_are_clear() -> None:
    with pytest.raises(InvalidInput, match="url"):
        parse_notify_config("routes:\n  - {name: a, channel: dingtalk}\n")
    with pytest.raises(InvalidInput, match="邮箱"):
        parse_notify_config("routes:\n  - {name: a, channel: email, to: [not-an-address]}\n")
    with pytest.raises(InvalidInput, match="重复"):
        parse_notify_config(
            "routes:\n  - {name: a, channel: email, to: [a@b.c]}\n"
            "  - {name: a, channel: email, to: [d@b.c]}\n"
        )
    assert notify.load_notify_config().routes  # the shipped default is valid


def test_email_to_a_real_smtp_server_and_role_recipients(fresh_db_url: str, smtp_server) -> None:
    engine = make_engine(fresh_db_url)
    config = parse_notify_config("""
routes:
  - {name: 值班邮件, channel: email, to: [duty@qinghe.example.org], to_roles: [staff], min_severity: medium}
""")
    with session_scope(engine) as s:
        make_user(s, "staff", email="zhang@qinghe.example.org")
        make_user(s, "viewer", email="viewer@qinghe.example.org")
        alert = make_alert(
            s, severity="high", title="青禾镇要封路的传言", category="交通出行", post_count=12, group_count=5
        )
        notify.enqueue(s, alert, "created", now=NOON, config=config)
        alert_id = alert.id
    stats = deliver_due(engine, now=lambda: NOON, config=config)
    assert (stats.sent, stats.failed) == (1, 0)
    [envelope] = smtp_server.messages
    assert sorted(envelope.rcpt_tos) == ["duty@qinghe.example.org", "zhang@qinghe.example.org"]
    body = envelope.content.decode("utf-8", "replace")
    assert "Subject:" in body and f"/alerts/{alert_id}" in body
    from email import message_from_bytes, policy

    msg = message_from_bytes(envelope.content, policy=policy.default)
    assert msg["Subject"] == "【高】新预警：青禾镇要封路的传言"
    assert "12 条帖子，5 个群或来源" in msg.get_content()
    with session_scope(engine) as s:
        [attempt] = s.scalars(select(NotificationAttempt))
        assert attempt.ok and attempt.status_code == 250
    assert deliver_due(engine, now=lambda: NOON, config=config).due == 0  # sent once
    engine.dispose()


def test_robot_and_webhook_formats_and_signature(fresh_db_url: str, webhook) -> None:
    engine = make_engine(fresh_db_url)
    config = parse_notify_config(f"""
routes:
  - {{name: 钉钉, channel: dingtalk, url: "{webhook.url}?access_token=t1", secret: dsecret,
      min_severity: low}}
  - {{name: 企业微信, channel: wecom, url: "{webhook.url}?key=k1", min_severity: low}}
  - {{name: 飞书, channel: feishu, url: "{webhook.url}/feishu", secret: fsecret, min_severity: low}}
  - {{name: 系统, channel: webhook, url: "{webhook.url}/generic", secret: wsecret, min_severity: low}}
""")
    with session_scope(engine) as s:
        alert = make_alert(s, severity="medium", title="[点我](http://evil) <b>东湾村</b>停水")
        notify.enqueue(s, alert, "created", now=NOON, config=config)
    stats = deliver_due(engine, now=lambda: NOON, config=config)
    assert stats.sent == 4, stats.errors
    by_path = {r["path"].split("?")[0].rsplit("/", 1)[-1]: r for r in webhook.received}
    ding = next(r for r in webhook.received if "access_token=t1" in r["path"])
    assert ding["json"]["msgtype"] == "markdown" and "timestamp=" in ding["path"] and "sign=" in ding["path"]
    assert "](http://evil)" not in ding["json"]["markdown"]["text"]  # untrusted text cannot make links
    query = parse_qs(urlsplit(ding["path"]).query)
    expected_sign = base64.b64encode(
        hmac.new(b"dsecret", f"{query['timestamp'][0]}\ndsecret".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"][0] == expected_sign and query["access_token"] == ["t1"]
    wecom = next(r for r in webhook.received if "key=k1" in r["path"])
    assert wecom["json"]["msgtype"] == "markdown" and "东湾村" in wecom["json"]["markdown"]["content"]
    feishu = by_path["feishu"]["json"]
    assert feishu["msg_type"] == "interactive"
    assert feishu["sign"] == notify.feishu_sign("fsecret", int(feishu["timestamp"]))
    generic = by_path["generic"]
    expected = "sha256=" + hmac.new(b"wsecret", generic["raw"], hashlib.sha256).hexdigest()
    assert generic["headers"]["X-Yuqing-Signature"] == expected
    assert generic["json"]["alert"]["severity"] == "medium" and generic["json"]["event"] == "created"
    engine.dispose()


def test_robot_error_codes_are_failures_that_retry(fresh_db_url: str, webhook) -> None:
    engine = make_engine(fresh_db_url)
    webhook.body = {"errcode": 310000, "errmsg": "keywords not in content"}
    config = parse_notify_config(
        f"routes:\n  - {{name: 钉钉, channel: dingtalk, url: '{webhook.url}', min_severity: low}}\n"
    )
    with session_scope(engine) as s:
        notify.enqueue(s, make_alert(s), "created", now=NOON, config=config)
    clock = Clock(NOON)
    stats = deliver_due(engine, now=clock, config=config)
    assert stats.failed == 1 and "310000" in stats.errors[0]
    with session_scope(engine) as s:
        [n] = s.scalars(select(Notification))
        assert (
            n.status == "pending" and n.attempts == 1 and n.next_attempt_at == NOON + dt.timedelta(seconds=30)
        )
    webhook.body = {"errcode": 0}
    clock.advance(31)
    assert deliver_due(engine, now=clock, config=config).sent == 1
    engine.dispose()


def test_receiver_down_mid_run_every_notification_delivered_exactly_once(
    fresh_db_url: str, webhook, monkeypatch
) -> None:
    """Stop the webhook receiver part-way; retries with backoff deliver everything once it is back."""
    monkeypatch.setenv("YUQING_NOTIFY_BACKOFF_SECONDS", "10")
    monkeypatch.setenv("YUQING_NOTIFY_BACKOFF_MAX_SECONDS", "60")
    from core.settings import get_settings

    get_settings.cache_clear()
    engine = make_engine(fresh_db_url)
    config = parse_notify_config(
        f"routes:\n  - {{name: 指挥中心, channel: webhook, url: '{webhook.url}', "
        "secret: s3, min_severity: low}\n"
    )
    with session_scope(engine) as s:
        for i in range(8):
            notify.enqueue(s, make_alert(s, title=f"预警{i}"), "created", now=NOON, config=config)
    clock = Clock(NOON)
    first = deliver_due(engine, now=clock, config=config, limit=3)
    assert first.sent == 3
    webhook.stop()  # the channel goes down mid-run
    down = deliver_due(engine, now=clock, config=config)
    assert (down.sent, down.failed) == (0, 5)
    assert deliver_due(engine, now=clock, config=config).due == 0  # nothing due before the backoff ends
    clock.advance(11)
    again = deliver_due(engine, now=clock, config=config)
    assert (again.sent, again.failed) == (0, 5)  # still down: second failure, backoff doubles to 20 s
    with session_scope(engine) as s:
        waits = {
            (n.next_attempt_at - clock.now).total_seconds()
            for n in s.scalars(select(Notification).where(Notification.status == "pending"))
        }
        assert waits == {20.0}
    webhook.start()  # back on the same port
    clock.advance(10)
    assert deliver_due(engine, now=clock, config=config).due == 0
    clock.advance(11)
    back = deliver_due(engine, now=clock, config=config)
    assert (back.sent, back.failed) == (5, 0)
    assert deliver_due(engine, now=clock, config=config).due == 0
    deliveries = [r["headers"]["X-Yuqing-Delivery"] for r in webhook.received]
    assert len(deliveries) == 8 and len(set(deliveries)) == 8  # every one, exactly once
    with session_scope(engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(Notification).where(Notification.status == "sent")) == 8
        )
        attempts = s.execute(
            select(NotificationAttempt.ok, func.count()).group_by(NotificationAttempt.ok)
        ).all()
        assert dict(attempts) == {True: 8, False: 10}
    engine.dispose()


def test_smtp_unreachable_delays_and_never_drops(fresh_db_url: str, monkeypatch) -> None:
    from core.settings import get_settings
    from tests.alerts.receivers import free_port

    monkeypatch.setenv("YUQING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("YUQING_SMTP_PORT", str(free_port()))  # nobody listens there
    get_settings.cache_clear()
    engine = make_engine(fresh_db_url)
    config = parse_notify_config(
        "routes:\n  - {name: m, channel: email, to: [a@qinghe.example.org], min_severity: low}\n"
    )
    with session_scope(engine) as s:
        notify.enqueue(s, make_alert(s), "created", now=NOON, config=config)
    clock = Clock(NOON)
    for _ in range(12):  # far past any retry limit a dropping system would have
        deliver_due(engine, now=clock, config=config)
        clock.advance(get_settings().notify_backoff_max_seconds + 1)
    with session_scope(engine) as s:
        [n] = s.scalars(select(Notification))
        assert n.status == "pending" and n.attempts == 12 and "邮件发送失败" in n.last_error
    engine.dispose()


def test_evaluate_writes_outbox_rows_in_the_same_transaction(fresh_db_url: str) -> None:
    """If the alert change rolls back, its notifications roll back with it (and vice versa)."""
    from tests.factories import story_with_posts

    engine = make_engine(fresh_db_url)
    config = parse_notify_config(
        "routes:\n  - {name: w, channel: webhook, url: 'http://127.0.0.1:9/', min_severity: low}\n"
    )
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        story_with_posts(s, 3, groups=3, probability=0.95, now=NOON)
        result = evaluation.evaluate(s, now=NOON, notify_config=config)
        assert result.created and result.notifications == 1
        raise RuntimeError("crash before commit")
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 0
    engine.dispose()


def test_message_text_is_chinese_and_escapes_markdown() -> None:
    from core.settings import get_settings
    from core.tables import Alert

    alert = Alert(
        id=7,
        kind="debunk_match",
        title="**紧急**[链接](x) 石桥村",
        severity="urgent",
        risk_score=88.0,
        score_parts={"debunk": {"points": 20, "text": "与已辟谣信息相似度 0.93"}},
        rules_fired=[{"name": "与已辟谣信息相符"}],
        category="公共安全",
        post_count=9,
        group_count=4,
    )
    message = notify.render_message(alert, "created", get_settings())
    assert message["subject"].startswith("【紧急】新预警：")
    assert "](x)" not in message["markdown"] and "**紧急**" not in message["markdown"]
    assert "匹配已辟谣" in message["text"] and "相似度 0.93" in message["text"]
    assert json.dumps(message, ensure_ascii=False)


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_email_over_tls_with_login(fresh_db_url: str, tmp_path, monkeypatch, mode: str) -> None:
    """STARTTLS and implicit TLS with login, trusting the office's own CA (YUQING_SMTP_CA_FILE)."""
    import ssl

    from core.settings import get_settings
    from tests.alerts.receivers import free_port
    from tests.digest.smtp import PASSWORD, USER, Inbox, authenticator, self_signed, smtp_server_at

    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    inbox = Inbox()
    tls = (
        {"tls_context": ctx, "require_starttls": True, "auth_require_tls": True}
        if mode == "starttls"
        else {"ssl_context": ctx, "auth_require_tls": False}
    )
    server = smtp_server_at(free_port(), inbox, authenticator=authenticator(inbox), **tls)
    server.start()
    for key_, value in {
        "HOST": "127.0.0.1",
        "PORT": str(server.port),
        "SECURITY": mode,
        "USER": USER,
        "PASSWORD": PASSWORD,
        "CA_FILE": str(cert),
    }.items():
        monkeypatch.setenv(f"YUQING_SMTP_{key_}", value)
    get_settings.cache_clear()
    engine = make_engine(fresh_db_url)
    config = parse_notify_config(
        "routes:\n  - {name: m, channel: email, to: [duty@qinghe.example.org], min_severity: low}\n"
    )
    try:
        with session_scope(engine) as s:
            notify.enqueue(s, make_alert(s, title="柳树村停水"), "created", now=NOON, config=config)
        stats = deliver_due(engine, now=lambda: NOON, config=config)
        assert stats.sent == 1, stats.errors
        assert inbox.logins == [USER] and inbox.messages[0]["Subject"].endswith("柳树村停水")
    finally:
        server.stop()
        engine.dispose()


def test_an_email_sent_again_after_a_crash_keeps_its_message_id(fresh_db_url: str, smtp_server) -> None:
    """The server accepted the mail, then the process died before recording it: the retry is the
    same message (same Message-ID), so mail clients show it once."""
    from email import message_from_bytes, policy

    from sqlalchemy import update

    from core.tables import Notification

    engine = make_engine(fresh_db_url)
    config = parse_notify_config("routes:\n  - {name: 值班, channel: email, to: [duty@qinghe.example.org]}\n")
    with session_scope(engine) as s:
        notify.enqueue(s, make_alert(s, severity="high", title="青禾镇要封路的传言"), "created", now=NOON, config=config)
    assert deliver_due(engine, now=lambda: NOON, config=config).sent == 1
    with session_scope(engine) as s:  # what a kill -9 between "250 OK" and the commit leaves
        s.execute(update(Notification).values(status="pending", sent_at=None, next_attempt_at=NOON))
    assert deliver_due(engine, now=lambda: NOON, config=config).sent == 1
    ids = [message_from_bytes(e.content, policy=policy.default)["Message-ID"] for e in smtp_server.messages]
    assert len(ids) == 2 and ids[0] == ids[1] and ids[0].startswith("<yuqing.")
    engine.dispose()
