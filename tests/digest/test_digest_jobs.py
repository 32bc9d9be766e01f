"""The digest's jobs in `yuqing run`: daily at the configured time, retries, catch-up, no double sends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.settings import Settings, get_settings
from core.tables import Digest
from digest.service import retry_failed, scheduled_retry, scheduled_send, send_day
from tests.digest.factories import local
from tests.digest.scenario import DAY, BusyDay
from tests.digest.smtp import SmtpServer
from yuqing.commands import digest as digest_commands
from yuqing.scheduler import build_scheduler, collect_jobs


def _settings(tmp_path: Path, server: SmtpServer, **extra) -> Settings:
    path = tmp_path / "digest.yaml"
    path.write_text(yaml.safe_dump({"recipients": ["shuji@qinghe.example"]}), encoding="utf-8")
    return Settings(timezone="Asia/Shanghai", digest_recipients_file=path, smtp_host=server.host,
                    smtp_port=server.port, smtp_timeout=5, **extra)


def test_jobs_are_scheduled_at_the_configured_time() -> None:
    settings = Settings(digest_time="07:30", digest_retry_minutes=3)
    jobs = {j.id: j for j in collect_jobs(settings)}
    assert jobs["digest-daily"].cron == "07:30" and jobs["digest-daily"].func is digest_commands.daily_job
    assert jobs["digest-retry"].seconds == 180
    scheduler = build_scheduler(settings, list(jobs.values()))
    trigger = scheduler.get_job("digest-daily").trigger
    assert str(trigger.fields[5]) == "7" and str(trigger.fields[6]) == "30"  # hour, minute
    with pytest.raises(ValidationError):
        Settings(digest_time="25:00")


def test_catch_up_after_the_digest_time_only_once(db: Session, busy_day: BusyDay, smtp_server: SmtpServer,
                                                   tmp_path: Path) -> None:
    settings = _settings(tmp_path, smtp_server, digest_time="18:00")
    assert scheduled_retry(db, settings=settings, now=local(DAY, 17, 55)) == []  # not yet time
    (o,) = scheduled_retry(db, settings=settings, now=local(DAY, 18, 20))  # missed at 18:00: catch up
    assert o.status == "sent"
    assert scheduled_retry(db, settings=settings, now=local(DAY, 18, 25)) == []
    assert [x.status for x in scheduled_send(db, settings=settings, now=local(DAY, 18, 30))] == ["skipped"]
    assert len(smtp_server.inbox.envelopes) == 1


def test_scheduled_send_without_recipients_does_nothing(db: Session) -> None:
    assert scheduled_send(db, settings=Settings(), now=local(DAY, 18)) == []
    assert scheduled_retry(db, settings=Settings(), now=local(DAY, 18)) == []


def test_a_digest_being_sent_is_not_sent_again_unless_its_sender_died(
        db: Session, busy_day: BusyDay, smtp_server: SmtpServer, tmp_path: Path) -> None:
    settings = _settings(tmp_path, smtp_server)
    (o,) = send_day(db, DAY, settings=settings, now=local(DAY, 18))
    # pretend another process claimed it and is still sending
    db.execute(update(Digest).where(Digest.id == o.digest_id).values(status="sending",
                                                                       last_attempt_at=local(DAY, 18, 1)))
    db.commit()
    db.expire_all()
    assert [x.status for x in send_day(db, DAY, settings=settings, now=local(DAY, 18, 5))] == ["skipped"]
    assert retry_failed(db, settings=settings, now=local(DAY, 18, 5)) == []
    # twenty minutes later that process is clearly gone: the retry job takes the row over
    (again,) = retry_failed(db, settings=settings, now=local(DAY, 18, 30))
    assert again.status == "sent" and again.digest_id == o.digest_id
    assert len(smtp_server.inbox.envelopes) == 2  # first send + the takeover (the other never finished)


def test_retries_stop_after_max_attempts(db: Session, busy_day: BusyDay, smtp_down: SmtpServer,
                                         tmp_path: Path) -> None:
    settings = _settings(tmp_path, smtp_down, digest_max_attempts=2, digest_retry_minutes=1)
    now = local(DAY, 18)
    assert send_day(db, DAY, settings=settings, now=now)[0].status == "failed"
    assert [o.status for o in retry_failed(db, settings=settings, now=now + dt.timedelta(minutes=2))] == ["failed"]
    assert retry_failed(db, settings=settings, now=now + dt.timedelta(days=1)) == []
    assert db.query(Digest).one().attempts == 2


def test_job_functions_run_against_the_configured_database(fresh_db_url: str, smtp_server: SmtpServer,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "digest.yaml"
    path.write_text(yaml.safe_dump({"recipients": ["shuji@qinghe.example"]}), encoding="utf-8")
    monkeypatch.setenv("YUQING_DIGEST_RECIPIENTS_FILE", str(path))
    monkeypatch.setenv("YUQING_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("YUQING_SMTP_PORT", str(smtp_server.port))
    get_settings.cache_clear()
    try:
        digest_commands.daily_job()  # today's (quiet) digest, for real
        digest_commands.daily_job()  # and not twice
        digest_commands.retry_job()
    finally:
        get_settings.cache_clear()
    assert len(smtp_server.inbox.envelopes) == 1
