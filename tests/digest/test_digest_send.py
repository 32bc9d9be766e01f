"""Sending against a real SMTP server in-process: both parts and inline images arrive, never twice."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.settings import Settings
from core.tables import Digest, Post
from digest.config import recipients_key
from digest.errors import DigestConfigError
from digest.service import retry_delay, retry_failed, scheduled_retry, send_day
from tests.digest.factories import local
from tests.digest.scenario import DAY, BusyDay
from tests.digest.smtp import PASSWORD, USER, Inbox, SmtpServer, free_port, smtp_server_at

NOW = local(DAY, 18)
LEADERS = [{"email": "shuji@qinghe.example", "name": "王书记"}, {"email": "zhenzhang@qinghe.example", "name": "赵镇长"}]


def _settings(tmp_path: Path, server: SmtpServer | None, recipients: list | None = None, **extra) -> Settings:
    path = tmp_path / "digest.yaml"
    path.write_text(yaml.safe_dump({"title": "青禾镇舆情日报", "recipients": recipients or LEADERS},
                                   allow_unicode=True), encoding="utf-8")
    smtp = {"smtp_host": server.host, "smtp_port": server.port} if server else {}
    return Settings(timezone="Asia/Shanghai", digest_recipients_file=path, smtp_sender="yuqing@qinghe.example",
                    smtp_timeout=5, **smtp, **extra)


def test_message_arrives_with_both_parts_and_inline_images(
        db: Session, busy_day: BusyDay, smtp_server: SmtpServer, tmp_path: Path) -> None:
    settings = _settings(tmp_path, smtp_server)
    (outcome,) = send_day(db, DAY, settings=settings, now=NOW)
    assert outcome.status == "sent", outcome.message

    (envelope,) = smtp_server.inbox.envelopes
    assert sorted(envelope[1]) == sorted(r["email"] for r in LEADERS)
    (msg,) = smtp_server.inbox.messages
    assert msg["Subject"].startswith("青禾镇舆情日报｜11月20日｜预警 4 条")
    assert "王书记" in str(msg["To"]) and msg["Message-ID"]
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html_part = msg.get_body(preferencelist=("html",))
    html = html_part.get_content()
    total = db.scalar(select(func.count()).select_from(Post).where(
        Post.published_at >= local(DAY, 0), Post.published_at < NOW))
    assert f"合计 {total} 条" in text and f"合计 {total} 条" in html
    related = msg.get_payload()[1]
    assert related.get_content_type() == "multipart/related"
    images = [p for p in related.iter_parts() if p.get_content_maintype() == "image"]
    assert len(images) == 2
    for img in images:
        cid = img["Content-ID"].strip("<>")
        assert img.get_content_disposition() == "inline"
        assert f'src="cid:{cid}"' in html
        assert img.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    referenced = set(re.findall(r'src="cid:([^"]+)"', html))
    assert referenced == {img["Content-ID"].strip("<>") for img in images}

    row = db.get(Digest, outcome.digest_id)
    assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None
    assert row.recipients_key == recipients_key([r["email"] for r in LEADERS])
    assert row.html.rstrip() == html.replace("\r\n", "\n").rstrip()  # stored = sent (CRLF on the wire)
    assert set(row.figures) == referenced and row.summary["volume"]["total"] == total


def test_second_send_sends_nothing_and_force_sends_a_new_revision(
        db: Session, busy_day: BusyDay, smtp_server: SmtpServer, tmp_path: Path) -> None:
    settings = _settings(tmp_path, smtp_server)
    assert send_day(db, DAY, settings=settings, now=NOW)[0].status == "sent"
    again = send_day(db, DAY, settings=settings, now=NOW + dt.timedelta(minutes=5))
    assert [o.status for o in again] == ["skipped"] and "未重复发送" in again[0].message
    # the same people in another order and case are the same list
    shuffled = _settings(tmp_path, smtp_server, [{"email": "ZhenZhang@qinghe.example"}, {"email": "shuji@qinghe.example"}])
    assert send_day(db, DAY, settings=shuffled, now=NOW)[0].status == "skipped"
    assert len(smtp_server.inbox.envelopes) == 1
    forced = send_day(db, DAY, settings=settings, now=NOW + dt.timedelta(minutes=10), force=True)
    assert [(o.status, o.revision) for o in forced] == [("sent", 1)]
    assert len(smtp_server.inbox.envelopes) == 2
    rows = db.scalars(select(Digest).order_by(Digest.revision)).all()
    assert [(r.revision, r.status) for r in rows] == [(0, "sent"), (1, "sent")]
    assert rows[0].message_id != rows[1].message_id


def test_smtp_down_then_up_delivers_exactly_once(
        db: Session, busy_day: BusyDay, smtp_down: SmtpServer, tmp_path: Path) -> None:
    settings = _settings(tmp_path, smtp_down, digest_retry_minutes=5)
    (first,) = send_day(db, DAY, settings=settings, now=NOW)
    assert first.status == "failed" and f"127.0.0.1:{smtp_down.port}" in first.message
    row = db.get(Digest, first.digest_id)
    assert (row.status, row.attempts) == ("failed", 1) and "YUQING_SMTP_HOST" in row.last_error
    kept_html = row.html

    # still down at the first retry; not due yet a minute later
    assert retry_failed(db, settings=settings, now=NOW + dt.timedelta(minutes=1)) == []
    (second,) = retry_failed(db, settings=settings, now=NOW + dt.timedelta(minutes=6))
    assert second.status == "failed" and db.get(Digest, row.id).attempts == 2
    assert retry_delay(2, settings) == dt.timedelta(minutes=10)

    # a manual --send while it is failed does not send twice either: it retries the same row
    smtp_down.start()
    (third,) = retry_failed(db, settings=settings, now=NOW + dt.timedelta(minutes=20))
    assert third.status == "sent" and third.digest_id == row.id
    assert retry_failed(db, settings=settings, now=NOW + dt.timedelta(hours=3)) == []
    assert send_day(db, DAY, settings=settings, now=NOW + dt.timedelta(hours=3))[0].status == "skipped"
    assert scheduled_retry(db, settings=settings, now=NOW + dt.timedelta(hours=4)) == []
    assert len(smtp_down.inbox.envelopes) == 1
    row = db.get(Digest, row.id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert row.html == kept_html  # retried exactly as stored
    assert db.query(Digest).count() == 1


def test_manual_send_after_failure_uses_the_same_row(
        db: Session, busy_day: BusyDay, smtp_down: SmtpServer, tmp_path: Path) -> None:
    settings = _settings(tmp_path, smtp_down)
    assert send_day(db, DAY, settings=settings, now=NOW)[0].status == "failed"
    smtp_down.start()
    (o,) = send_day(db, DAY, settings=settings, now=NOW + dt.timedelta(minutes=1))
    assert o.status == "sent" and o.revision == 0
    assert db.query(Digest).count() == 1 and len(smtp_down.inbox.envelopes) == 1


def test_per_recipient_sections_make_separate_lists(
        db: Session, busy_day: BusyDay, smtp_server: SmtpServer, tmp_path: Path) -> None:
    recipients = [
        {"email": "shuji@qinghe.example", "name": "王书记", "sections": ["rumors", "concerns"]},
        "zhenzhang@qinghe.example",
        {"email": "ban@qinghe.example", "name": "宣传办"},
    ]
    settings = _settings(tmp_path, smtp_server, recipients)
    outcomes = send_day(db, DAY, settings=settings, now=NOW)
    assert [o.status for o in outcomes] == ["sent", "sent"]
    by_to = {tuple(sorted(e[1])): m for e, m in zip(smtp_server.inbox.envelopes, smtp_server.inbox.messages,
                                                     strict=True)}
    short = by_to[("shuji@qinghe.example",)]
    full = by_to[("ban@qinghe.example", "zhenzhang@qinghe.example")]
    short_text = short.get_body(preferencelist=("plain",)).get_content()
    full_text = full.get_body(preferencelist=("plain",)).get_content()
    assert "【今日谣言】" in short_text and "【待处理事项】" not in short_text
    assert "【待处理事项】" in full_text and "【传播态势】" in full_text
    assert not [p for p in short.walk() if p.get_content_maintype() == "image"]
    assert len([p for p in full.walk() if p.get_content_maintype() == "image"]) == 2


def test_quiet_day_sends_the_short_digest(db: Session, smtp_server: SmtpServer, tmp_path: Path) -> None:
    day = dt.date(2026, 6, 1)
    (o,) = send_day(db, day, settings=_settings(tmp_path, smtp_server), now=local(day, 18))
    assert o.status == "sent"
    (msg,) = smtp_server.inbox.messages
    assert "今日无异常" in msg["Subject"]
    assert "今日无异常" in msg.get_body(preferencelist=("plain",)).get_content()


def test_starttls_and_ssl_with_login(db: Session, busy_day: BusyDay, tls_servers: dict, tmp_path: Path) -> None:
    for mode in ("starttls", "ssl"):
        server = tls_servers[mode]
        settings = _settings(tmp_path, server, [{"email": f"{mode}@qinghe.example"}], smtp_security=mode,
                             smtp_user=USER, smtp_password=PASSWORD, smtp_ca_file=tls_servers["ca"])
        (o,) = send_day(db, DAY, settings=settings, now=NOW)
        assert o.status == "sent", o.message
    assert len(tls_servers["inbox"].envelopes) == 2 and tls_servers["inbox"].logins == [USER, USER]

    wrong = _settings(tmp_path, tls_servers["starttls"], [{"email": "wrong@qinghe.example"}],
                      smtp_security="starttls", smtp_user=USER, smtp_password="nope", smtp_ca_file=tls_servers["ca"])
    (o,) = send_day(db, DAY, settings=wrong, now=NOW)
    assert o.status == "failed" and "拒绝登录" in o.message and "YUQING_SMTP_PASSWORD" in o.message
    untrusted = _settings(tmp_path, tls_servers["ssl"], [{"email": "untrusted@qinghe.example"}],
                          smtp_security="ssl", smtp_user=USER, smtp_password=PASSWORD)
    (o,) = send_day(db, DAY, settings=untrusted, now=NOW)
    assert o.status == "failed" and "YUQING_SMTP_CA_FILE" in o.message
    assert len(tls_servers["inbox"].envelopes) == 2


@pytest.mark.parametrize("content, needle", [
    ("recipients: [{email: not-an-address}]", "不是有效的邮箱地址"),
    ("recipients: [{email: a@qinghe.example, sections: [weather]}]", "未知的日报栏目 weather"),
    ("recipients: [a@qinghe.example, A@qinghe.example]", "出现了两次"),
    ("recipients: [{email: a@qinghe.example, colour: red}]", "colour"),
    ("recipients: [: bad", "不是有效的 UTF-8 YAML"),
])
def test_bad_recipients_file_says_what_is_wrong(db: Session, tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "digest.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DigestConfigError, match=needle):
        send_day(db, DAY, settings=Settings(digest_recipients_file=path), now=NOW)
    assert db.query(Digest).count() == 0


def test_title_and_names_cannot_break_headers(db: Session, smtp_server: SmtpServer, tmp_path: Path) -> None:
    path = tmp_path / "digest.yaml"
    path.write_text(yaml.safe_dump({"title": "青禾镇\n舆情日报\r\nBcc: x@evil.example",
                                    "recipients": [{"email": "a@qinghe.example", "name": "王\n书记"}]},
                                   allow_unicode=True), encoding="utf-8")
    settings = Settings(digest_recipients_file=path, smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    day = dt.date(2026, 6, 1)
    assert send_day(db, day, settings=settings, now=local(day, 18))[0].status == "sent"
    (envelope,) = smtp_server.inbox.envelopes
    assert envelope[1] == ["a@qinghe.example"]
    (msg,) = smtp_server.inbox.messages
    assert msg["Subject"].startswith("青禾镇 舆情日报 Bcc: x@evil.example｜") and msg["Bcc"] is None
    assert "王 书记" in str(msg["To"])


def test_a_refused_recipient_does_not_hold_back_the_others(db: Session, tmp_path: Path) -> None:
    class Picky(Inbox):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # aiosmtpd hook
            if address.startswith("gone@"):
                return "550 5.1.1 mailbox unavailable"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    server = smtp_server_at(free_port(), Picky())
    server.start()
    try:
        settings = _settings(tmp_path, server, [{"email": "shuji@qinghe.example"}, {"email": "gone@qinghe.example"}])
        day = dt.date(2026, 6, 1)
        (o,) = send_day(db, day, settings=settings, now=local(day, 18))
    finally:
        server.stop()
    assert o.status == "sent" and "gone@qinghe.example" in o.message and "550" in o.message
    assert server.inbox.envelopes[0][1] == ["shuji@qinghe.example"]
    row = db.get(Digest, o.digest_id)
    assert row.status == "sent" and "gone@qinghe.example" in row.last_error
    assert retry_failed(db, settings=settings, now=local(day, 20)) == []  # not resent to the others


def test_no_recipients_is_a_clear_error(db: Session) -> None:
    with pytest.raises(DigestConfigError, match="YUQING_DIGEST_RECIPIENTS_FILE"):
        send_day(db, DAY, settings=Settings(), now=NOW)
