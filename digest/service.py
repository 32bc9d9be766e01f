"""Build, store and send the daily digest: once per day per recipient list, never lost.

Flow for each recipient list (:func:`send_day`):

1. If the day's latest revision for that list was sent (or is being sent), do nothing, unless
   ``force``, which stores a new revision.
2. Build and render, then store the row (status ``built``) and commit: from here on nothing is
   lost, whatever happens to the mail server or this process.
3. Claim the row with a conditional UPDATE (``built``/``failed`` -> ``sending``), so two
   processes never send the same digest; send; mark ``sent`` or ``failed`` with the error.

:func:`retry_failed` resends failed rows exactly as stored, with doubling delays; the scheduler
runs it every few minutes, and also catches up a day whose digest was never built (the process
was down at the configured time).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.mail import stable_message_id
from core.settings import Settings, get_settings
from core.tables import Digest, utcnow
from digest import charts
from digest.build import build_summary, today
from digest.config import Audience, audiences
from digest.errors import DigestConfigError, DigestError
from digest.render import SECTIONS, Rendered, render
from digest.send import build_message, deliver

log = logging.getLogger(__name__)

#: A row left in 'sending' longer than this belongs to a process that died mid-send.
SENDING_STALE = dt.timedelta(minutes=15)
MAX_RETRY_DELAY = dt.timedelta(hours=6)
CHART_TITLES = {"spread": "每小时帖子与群消息数", "categories": "关切类别分布"}


@dataclass
class Prepared:
    """One day's figures and charts, shared by every recipient list."""

    day: dt.date
    summary: dict[str, Any]
    charts: dict[str, bytes] = field(default_factory=dict)  # name -> PNG
    charts_note: str = ""
    pictures: dict[str, bytes] = field(default_factory=dict)  # "picture-<alert id>" -> JPEG thumbnail


@dataclass
class Outcome:
    """What happened to one recipient list's digest (for the CLI and the logs)."""

    digest_id: int | None
    recipients: list[str]
    status: str  # sent | failed | skipped
    revision: int = 0
    message: str = ""


def prepare(session: Session, day: dt.date, *, settings: Settings | None = None,
            now: dt.datetime | None = None) -> Prepared:
    """Gather the figures and draw the charts (no charts on a quiet day)."""
    settings = settings or get_settings()
    summary = build_summary(session, day, settings=settings, now=now)
    prepared = Prepared(day=day, summary=summary)
    if summary["quiet"]:
        return prepared
    prepared.pictures = rumor_thumbnails(session, summary)
    try:
        families = [charts.find_cjk_family(settings.digest_font)]
        if summary["volume"]["total"]:
            prepared.charts["spread"] = charts.spread_chart(summary["hourly"], summary["hourly_rumor"],
                                                            families=families)
        if any(name != "未分类" for name, _ in summary["categories"]):
            prepared.charts["categories"] = charts.category_chart(summary["categories"], families=families)
    except charts.ChartFontMissing as err:
        # The text matters more than the pictures: send without charts, and say why.
        log.warning("digest charts skipped: %s", err)
        prepared.charts_note = f"（图表未生成：{err}）"
    return prepared


PICTURE_SIDE = 240  # px, shown at 120 px wide: sharp on a phone's screen, about 10 KB each


def rumor_thumbnails(session: Session, summary: dict[str, Any]) -> dict[str, bytes]:
    """A small JPEG of each top rumor's picture (build.matter_pictures chose it), attached to the
    mail as an inline CID image: phone mail apps (Gmail, Outlook) show those and block data: URIs.
    A picture whose file is gone (purged), or whose store is down, is left out: the digest goes."""
    from core.images import thumbnail
    from core.picture_store import StoreUnavailable
    from core.tables import Image

    out: dict[str, bytes] = {}
    for rumor in summary.get("top_rumors", []):
        image = session.get(Image, rumor["picture"]) if rumor.get("picture") else None
        if image is None:
            continue
        try:
            out[f"picture-{rumor['id']}"] = thumbnail(image, PICTURE_SIDE)
        except (OSError, StoreUnavailable) as err:
            log.warning("digest: no thumbnail for picture %s: %s", image.id, err)
    return out


def _cid(name: str, day: dt.date, key: str, revision: int) -> str:
    return f"{name}.{day.isoformat()}.{key[:10]}.r{revision}@yuqing"


def compose(prepared: Prepared, *, title: str, sections: tuple[str, ...] | list[str], key: str,
            revision: int, settings: Settings) -> tuple[Rendered, dict[str, Any]]:
    """Render for one recipient list: subject, HTML, text, and the figures keyed by Content-ID."""
    images: dict[str, str] = {}
    figures: dict[str, Any] = {}
    if "charts" in sections:
        for name, png in prepared.charts.items():
            cid = _cid(name, prepared.day, key, revision)
            images[name] = cid
            figures[cid] = {"content_type": "image/png", "filename": f"{name}.png",
                            "title": CHART_TITLES[name], "b64": base64.b64encode(png).decode("ascii")}
    if "rumors" in sections:
        for name, jpeg in prepared.pictures.items():
            cid = _cid(name, prepared.day, key, revision)
            images[name] = cid
            figures[cid] = {"content_type": "image/jpeg", "filename": f"{name}.jpg",
                            "title": "谣言图片", "b64": base64.b64encode(jpeg).decode("ascii")}
    rendered = render(prepared.summary, title=title, sections=sections, images=images,
                      charts_note=prepared.charts_note, console_url=settings.base_url,
                      template_dir=settings.digest_template_dir)
    return rendered, figures


def _latest(session: Session, day: dt.date, key: str) -> Digest | None:
    return session.scalar(
        select(Digest).where(Digest.day == day, Digest.recipients_key == key)
        .order_by(Digest.revision.desc()).limit(1)
    )


def _is_stale_sending(row: Digest, now: dt.datetime) -> bool:
    if row.status != "sending":
        return False
    return row.last_attempt_at is None or now - row.last_attempt_at > SENDING_STALE


def send_day(
    session: Session,
    day: dt.date | None = None,
    *,
    force: bool = False,
    only_missing: bool = False,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
    prepared: Prepared | None = None,
) -> list[Outcome]:
    """Build, store and send ``day``'s digest to every configured recipient list.

    Idempotent: a list whose digest for the day was sent gets nothing (unless ``force``, which
    stores and sends a new revision). ``only_missing`` sends only to lists with no row yet for
    the day (the scheduler's catch-up). ``prepared`` reuses figures already built for the day.
    Commits as it goes.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    day = day or today(settings.timezone, now)
    title, lists = audiences(settings)
    if not lists:
        raise DigestConfigError(
            "没有配置日报收件人：请在 YUQING_DIGEST_RECIPIENTS_FILE 指向的 YAML 文件中填写 recipients。"
        )
    if prepared is not None and prepared.day != day:
        prepared = None
    outcomes = []
    for audience in lists:
        key = audience.key
        latest = _latest(session, day, key)
        busy = latest is not None and latest.status == "sending" and not _is_stale_sending(latest, now)
        if latest is not None and not force and (only_missing or latest.status == "sent" or busy):
            outcomes.append(Outcome(latest.id, audience.emails, "skipped", latest.revision,
                                    _skip_reason(latest, settings)))
            continue
        if prepared is None:
            prepared = prepare(session, day, settings=settings, now=now)
        revision = 0 if latest is None else latest.revision + int(force)
        rendered, figures = compose(prepared, title=title, sections=audience.sections, key=key,
                                    revision=revision, settings=settings)
        row = latest if (latest is not None and not force) else None
        try:
            row = _store(session, row, day=day, audience=audience, revision=revision, rendered=rendered,
                         figures=figures, summary=prepared.summary, settings=settings)
        except IntegrityError:
            session.rollback()
            outcomes.append(Outcome(None, audience.emails, "skipped", revision,
                                    "另一个进程正在生成同一份日报，本次不重复发送。"))
            continue
        outcomes.append(_attempt(session, row, settings=settings, now=now))
    return outcomes


def _skip_reason(row: Digest, settings: Settings) -> str:
    if row.status == "sent":
        when = row.sent_at.astimezone(ZoneInfo(settings.timezone)).strftime("%m-%d %H:%M") if row.sent_at else ""
        return (f"{row.day} 的日报已于 {when} 发送给这些收件人（第 {row.revision + 1} 版），未重复发送；"
                "如需重发请加 --force。")
    if row.status == "sending":
        return f"{row.day} 的日报正在发送中，未重复发送。"
    return f"{row.day} 的日报已生成（状态 {row.status}），由定时任务负责重试。"


def _store(session: Session, row: Digest | None, *, day: dt.date, audience: Audience, revision: int,
           rendered: Rendered, figures: dict[str, Any], summary: dict[str, Any],
           settings: Settings) -> Digest:
    if row is None:
        row = Digest(day=day, recipients_key=audience.key, revision=revision, attempts=0,
                     message_id=stable_message_id(f"digest:{day.isoformat()}:{audience.key}:r{revision}",
                                                settings.smtp_sender))
        session.add(row)
    row.recipients = audience.as_json()
    row.subject = rendered.subject
    row.html = rendered.html
    row.text = rendered.text
    row.figures = figures
    row.summary = summary | {"sections": list(audience.sections)}
    if row.status != "failed":
        row.status = "built"
    session.commit()
    return row


def _attempt(session: Session, row: Digest, *, settings: Settings, now: dt.datetime) -> Outcome:
    """Claim ``row`` and send it as stored; record the result. Never raises on a mail failure."""
    stale = (Digest.status == "sending") & (Digest.last_attempt_at < now - SENDING_STALE)
    claimed = cast(CursorResult[Any], session.execute(
        update(Digest)
        .where(Digest.id == row.id, or_(Digest.status.in_(("built", "failed")), stale))
        .values(status="sending", attempts=Digest.attempts + 1, last_attempt_at=now)
        .execution_options(synchronize_session=False)
    )).rowcount
    session.commit()
    session.refresh(row)
    emails = [r["email"] for r in row.recipients]
    if claimed != 1:
        return Outcome(row.id, emails, "skipped", row.revision, "另一个进程正在发送这份日报。")
    msg = build_message(subject=row.subject, text=row.text, html=row.html, figures=row.figures,
                        recipients=row.recipients, sender=settings.smtp_sender,
                        message_id=row.message_id or stable_message_id(f"digest:{row.id}", settings.smtp_sender),
                        date=now)
    try:
        refused = deliver(msg, settings)
    except Exception as err:  # whatever happens, the row must not stay 'sending'
        message = str(err) if isinstance(err, DigestError) else f"发送日报时出错：{type(err).__name__}: {err}"
        if not isinstance(err, DigestError):
            log.exception("digest %s: unexpected error while sending", row.id)
        row.status, row.last_error = "failed", message
        session.commit()
        log.warning("digest %s (%s) not sent, attempt %d: %s", row.id, row.day, row.attempts, message)
        return Outcome(row.id, emails, "failed", row.revision, message)
    row.status, row.sent_at = "sent", now
    row.last_error = ("部分收件人被邮件服务器拒收：" + "；".join(f"{a}（{r}）" for a, r in refused.items())
                      if refused else None)
    session.commit()
    log.info("digest %s (%s) sent to %d recipients", row.id, row.day, len(emails) - len(refused))
    return Outcome(row.id, emails, "sent", row.revision, row.last_error or "")


def retry_delay(attempts: int, settings: Settings) -> dt.timedelta:
    """Delay before the next attempt after ``attempts`` failed ones: doubling, capped at 6 h."""
    base = dt.timedelta(minutes=settings.digest_retry_minutes)
    return min(base * (2 ** max(attempts - 1, 0)), MAX_RETRY_DELAY)


def retry_failed(session: Session, *, settings: Settings | None = None,
                 now: dt.datetime | None = None) -> list[Outcome]:
    """Resend failed digests (the latest revision of each day and list) that are due."""
    settings = settings or get_settings()
    now = now or utcnow()
    latest_rev = (
        select(Digest.day, Digest.recipients_key, func.max(Digest.revision).label("rev"))
        .group_by(Digest.day, Digest.recipients_key).subquery()
    )
    rows = session.scalars(
        select(Digest).join(latest_rev, (Digest.day == latest_rev.c.day)
                            & (Digest.recipients_key == latest_rev.c.recipients_key)
                            & (Digest.revision == latest_rev.c.rev))
        .where(or_(Digest.status == "failed",
                   (Digest.status == "sending") & (Digest.last_attempt_at < now - SENDING_STALE)),
               Digest.attempts < settings.digest_max_attempts)
        .order_by(Digest.day, Digest.id)
    ).all()
    outcomes = []
    for row in rows:
        due = row.last_attempt_at is None or now >= row.last_attempt_at + retry_delay(row.attempts, settings)
        if due:
            outcomes.append(_attempt(session, row, settings=settings, now=now))
    return outcomes


def _digest_time_passed(settings: Settings, now: dt.datetime) -> bool:
    hour, _, minute = settings.digest_time.partition(":")
    local = now.astimezone(ZoneInfo(settings.timezone))
    return (local.hour, local.minute) >= (int(hour), int(minute or 0))


def scheduled_send(session: Session, *, settings: Settings | None = None,
                   now: dt.datetime | None = None) -> list[Outcome]:
    """The daily job: today's digest to every list that has not had it."""
    settings = settings or get_settings()
    if not audiences(settings)[1]:
        log.info("digest: no recipients configured (YUQING_DIGEST_RECIPIENTS_FILE); nothing to send")
        return []
    return send_day(session, settings=settings, now=now)


def scheduled_retry(session: Session, *, settings: Settings | None = None,
                    now: dt.datetime | None = None) -> list[Outcome]:
    """The retry job: resend failed digests; after the digest time, build any that is missing."""
    settings = settings or get_settings()
    now = now or utcnow()
    outcomes = retry_failed(session, settings=settings, now=now)
    if audiences(settings)[1] and _digest_time_passed(settings, now):
        outcomes += [o for o in send_day(session, only_missing=True, settings=settings, now=now)
                     if o.status != "skipped"]
    return outcomes


# --------------------------------------------------------------------------- files


def write_files(prepared: Prepared, out: Path, *, title: str, settings: Settings) -> list[Path]:
    """digest.html (charts as files next to it), digest.txt and the PNGs, with every section."""
    out.mkdir(parents=True, exist_ok=True)
    images = {name: f"{name}.png" for name in prepared.charts} | {name: f"{name}.jpg" for name in prepared.pictures}
    files = prepared.charts | prepared.pictures
    rendered = render(prepared.summary, title=title, sections=SECTIONS, images=images,
                      charts_note=prepared.charts_note, console_url=settings.base_url,
                      template_dir=settings.digest_template_dir)
    written = []
    html = rendered.html
    for name, filename in images.items():
        html = html.replace(f"cid:{filename}", filename)
        (out / filename).write_bytes(files[name])
        written.append(out / filename)
    (out / "digest.html").write_text(html, encoding="utf-8")
    (out / "digest.txt").write_text(rendered.text, encoding="utf-8")
    return [out / "digest.html", out / "digest.txt", *written]
