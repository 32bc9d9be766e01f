"""The jobs of `yuqing run` on APScheduler.

Each stage contributes jobs through a function here; the scheduler runs them in a small thread
pool next to the API server. Jobs never overlap themselves (max_instances=1, coalesce).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    func: Callable[[], object]
    seconds: int | None = None  # run every N seconds
    cron: str | None = None  # or at a local time "HH:MM" every day
    run_now: bool = False  # also once right at start


def collect_jobs(settings: Settings) -> list[Job]:
    """Every periodic job of the product. Stages add theirs here as they land."""
    jobs: list[Job] = []
    # Stages add their jobs below, one block each.

    # crawler: each source on its own interval; each crawl is a subprocess (Twisted's reactor cannot
    # restart in one process), see yuqing/commands/crawl.py. Disabled sources are skipped at run time.
    from yuqing.commands.crawl import crawl_schedule

    for job_id, seconds, func in crawl_schedule(settings):
        jobs.append(Job(id=job_id, func=func, seconds=seconds, run_now=True))
    # ingest: pushes spilled while the database was away, stored in order once it is back
    def replay_push_spill() -> None:
        from core.db import session_factory
        from crawler.chats.push import replay_spill

        replay_spill(session_factory())

    jobs.append(Job("ingest.spill-replay", replay_push_spill, seconds=max(1, int(settings.spill_replay_seconds)),
                    run_now=True))
    # alerts: new analysis -> alerts; the notification outbox; escalation of unacknowledged alerts
    from yuqing.commands.alerts import deliver_job, escalate_job, evaluate_job, publish_deliver_job

    jobs += [
        Job("alerts-evaluate", evaluate_job, seconds=settings.alerts_interval_seconds),
        Job("notify-deliver", deliver_job, seconds=settings.notify_interval_seconds, run_now=True),
        Job("publish-deliver", publish_deliver_job, seconds=settings.notify_interval_seconds, run_now=True),
        Job("alerts-escalate", escalate_job, seconds=60),
    ]

    # Digest: build and send at digest_time; retry failed sends (and catch up a missed day).
    from yuqing.commands import digest as digest_jobs

    jobs.append(Job("digest-daily", digest_jobs.daily_job, cron=settings.digest_time))
    jobs.append(Job("digest-retry", digest_jobs.retry_job, seconds=60 * settings.digest_retry_minutes))

    # chats: delete raw chat messages past YUQING_RETENTION_DAYS, daily at night (alert evidence stays)
    def purge_old_chat_messages() -> None:
        from core.db import session_scope
        from crawler.chats import purge_chat_messages

        with session_scope() as session:
            result = purge_chat_messages(session)
            from core.images import purge_orphans
            from core.picture_store import StoreUnavailable

            try:
                purge_orphans(session)  # pictures no remaining message refers to
            except StoreUnavailable as err:  # the rest waits for tomorrow's purge
                log.warning("picture purge stopped: %s", err)
            from core.tips import purge_tips

            purge_tips(session)  # residents' tips follow the same retention
            session.commit()
        log.info("purged %d chat messages (kept %d as evidence)", result.deleted, result.kept_as_evidence)

    jobs.append(Job(id="chats.purge", func=purge_old_chat_messages, cron="03:30"))

    # nlp: score, match debunks and group stories for new posts (incremental; a no-op when none wait)
    def analyze_new_posts() -> None:
        from core.db import session_scope
        from nlp.pipeline import analyze

        with session_scope() as session:
            analyze(session, window_days=settings.story_window_days)
        # Alerts right after the analysis they read, instead of up to a minute later.
        evaluate_job()

    jobs.append(Job("nlp.analyze", analyze_new_posts, seconds=settings.analyze_interval_seconds,
                    run_now=True))

    # nlp.concerns: topics are scored during analyze; this re-scores bursts when no posts arrive,
    # so a hot topic cools down on time.
    def refresh_topic_bursts() -> None:
        from core.db import session_scope
        from nlp.concerns.pipeline_stage import refresh

        with session_scope() as session:
            refresh(session)

    jobs.append(Job("nlp.concerns.refresh", refresh_topic_bursts, seconds=settings.topic_refresh_seconds))

    # pictures: fetch, deduplicate and read (OCR) in their own processes, within a budget per minute,
    # so a flood of pictures never delays text analysis (nlp/images.py); started only when some wait.
    if settings.image_workers > 0:
        jobs.append(Job("images.work", read_pictures, seconds=settings.image_interval_seconds, run_now=True))
    return jobs


def read_pictures() -> None:
    """Start `yuqing images work --once` in YUQING_IMAGE_WORKERS processes when pictures wait."""
    import subprocess
    import sys

    from core.db import session_scope
    from core.images import counts
    from core.settings import get_settings
    from crawler.image_fetch import due_retries

    with session_scope() as session:
        waiting = {k: v for k, v in counts(session).items() if k in ("images.pending", "refs.pending")}
        waiting["refs.retry"] = due_retries(session)  # failed fetches whose next try is due
    if not any(waiting.values()):
        return
    cmd = [sys.executable, "-m", "yuqing.cli", "images", "work", "--once"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for _ in range(get_settings().image_workers)]
    for proc in procs:
        if proc.wait() != 0:
            log.warning("picture worker exited with %s", proc.returncode)


def _guarded(job: Job) -> Callable[[], None]:
    def run() -> None:
        try:
            job.func()
        except Exception:  # a failing job must not stop the scheduler; it runs again next time
            log.exception("job %s failed; it will run again at its next time", job.id)

    return run


def build_scheduler(settings: Settings, jobs: list[Job] | None = None) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=settings.timezone,
                                    job_defaults={"coalesce": True, "max_instances": 1})
    for job in jobs if jobs is not None else collect_jobs(settings):
        if job.cron:
            hour, minute = job.cron.split(":")
            trigger: object = CronTrigger(hour=int(hour), minute=int(minute), timezone=settings.timezone)
        else:
            trigger = IntervalTrigger(seconds=job.seconds or 60)
        # "now" is when the jobs were built; the scheduler starts once the console answers, seconds
        # later, and APScheduler skips a run late by more than its grace time (1 s): no limit here.
        extra = {"next_run_time": dt.datetime.now(dt.UTC), "misfire_grace_time": None} if job.run_now else {}
        scheduler.add_job(_guarded(job), trigger, id=job.id, name=job.id, replace_existing=True, **extra)
    return scheduler
