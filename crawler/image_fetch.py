"""Fetch the pictures queued in ``post_images`` and store them (core.images).

A reference is an http(s) URL (a OneBot framework's temporary picture address, a crawled page's
picture) or a file of a chat export's image folder (``file://`` + absolute path, set only by the
importers run from the command line; pushes over the API cannot name local files).

URLs are fetched only from ``YUQING_IMAGE_HOSTS`` (a push names any URL it likes; without the
list the server would fetch whatever a bot, or whoever holds its token, points it at), redirects
are followed only to allowed hosts, and a body over ``YUQING_IMAGE_MAX_MB`` is abandoned while
streaming. Every reference ends ``stored`` (linked to its picture), ``refused`` (host not
allowed, not a picture, too large), ``missing`` (a picture an export names but does not hold)
or ``failed`` (network, unreadable file), with the reason. A fetch that still fails transiently
after its quick retries (the bot framework restarting for a few minutes) ends ``retry`` and is
tried again every RETRY_AFTER until RETRY_WINDOW after the picture arrived; only then ``failed``.
When the picture store itself fails
(core.picture_store.StoreUnavailable: the S3 server down, the disk full) the reference goes back
to ``pending`` with the store's error, and the rest of the batch waits too: nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import numpy as np
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from core.images import (
    ImageRefused,
    NearDupIndex,
    Verifier,
    VerifyLater,
    refresh_post_image_text,
    store_image,
)
from core.picture_store import StoreUnavailable
from core.settings import get_settings
from core.tables import Post, PostImage, utcnow

log = logging.getLogger(__name__)

STALE_CLAIM = dt.timedelta(minutes=10)  # a worker that died mid-fetch gives its claims back
MAX_REDIRECTS = 3
# Transient failures are tried again: a bot framework's picture cache answering 502/503 while it
# restarts, a dropped connection, a read timeout. Connection failures are retried by httpx's own
# transport (with its exponential backoff); answers and broken reads here, with ours.
RETRIES = 2  # after the first attempt
BACKOFF_SECONDS = 0.5  # doubled after each failure; a Retry-After answer is honoured up to MAX_WAIT
MAX_WAIT_SECONDS = 10.0
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# Later tries, for an outage longer than the quick retries above: every RETRY_AFTER, until the
# picture has waited RETRY_WINDOW (a OneBot framework's picture address stays valid for hours).
RETRY_AFTER = dt.timedelta(minutes=5)
RETRY_WINDOW = dt.timedelta(hours=6)


class FetchRefused(Exception):
    """Not fetched on purpose (host not allowed, too large): the reference ends ``refused``."""


@dataclass
class FetchReport:
    counts: Counter[str] = field(default_factory=Counter)  # stored | duplicate | refused | missing | failed | ...
    unavailable: str | None = None  # the picture store's error, if it failed (the references stay queued)

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "nothing to fetch"


def host_allowed(url: str, hosts: list[str]) -> bool:
    """``gchat.qpic.cn`` allows that host; ``.qpic.cn`` allows it and its subdomains."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    for entry in (h.strip().lower() for h in hosts):
        if entry.startswith(".") and (host.endswith(entry) or host == entry[1:]):
            return True
        if host == entry:
            return True
    return False


class Transient(Exception):
    """A failure worth another try (see TRANSIENT_STATUS): ``wait`` is the server's Retry-After."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


def fetch_with_retry(client: httpx.Client, url: str, *, sleep: Callable[[float], None] = time.sleep) -> bytes:
    """`fetch_url`, tried again after transient failures with exponential backoff."""
    for attempt in range(RETRIES + 1):
        try:
            return fetch_url(client, url)
        except (Transient, *TRANSIENT_ERRORS) as err:
            if attempt == RETRIES:
                raise httpx.TransportError(f"{RETRIES + 1} 次尝试均失败：{err}") from err
            wait = getattr(err, "wait", None)
            delay = min(MAX_WAIT_SECONDS, wait if wait is not None else BACKOFF_SECONDS * 2**attempt)
            log.info("picture fetch: %s, trying again in %.1f s", err, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: our own backoff is as good


def fetch_url(client: httpx.Client, url: str) -> bytes:
    settings = get_settings()
    limit = int(settings.image_max_mb * 1024 * 1024)
    for _ in range(MAX_REDIRECTS + 1):
        if not host_allowed(url, settings.image_hosts):
            raise FetchRefused(f"图片地址的主机不在 YUQING_IMAGE_HOSTS 中：{urlsplit(url).hostname}")
        with client.stream("GET", url) as resp:
            if resp.is_redirect and "location" in resp.headers:
                url = urljoin(url, resp.headers["location"])
                continue
            if resp.status_code in TRANSIENT_STATUS:
                raise Transient(f"HTTP {resp.status_code}", _retry_after(resp.headers.get("retry-after")))
            resp.raise_for_status()
            declared = int(resp.headers.get("content-length") or 0)
            if declared > limit:
                raise FetchRefused(f"图片超过 {settings.image_max_mb:g} MB（YUQING_IMAGE_MAX_MB）")
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchRefused(f"图片超过 {settings.image_max_mb:g} MB（YUQING_IMAGE_MAX_MB）")
                chunks.append(chunk)
            return b"".join(chunks)
    raise FetchRefused(f"重定向超过 {MAX_REDIRECTS} 次")


def read_file(ref: str) -> bytes:
    path = Path(ref.removeprefix("file://"))
    settings = get_settings()
    if not path.is_file():
        raise FileNotFoundError(f"导出文件夹里没有这张图片：{path}")
    if path.stat().st_size > settings.image_max_mb * 1024 * 1024:
        raise FetchRefused(f"图片超过 {settings.image_max_mb:g} MB（YUQING_IMAGE_MAX_MB）")
    data = path.read_bytes()
    return decode_wechat_dat(data) if path.suffix.lower() == ".dat" else data


# WeChat for PC keeps pictures as .dat files: the image bytes XOR one key byte. The key is found
# from the first two bytes against the known signatures (JPEG FF D8, PNG 89 50, GIF 47 49).
_SIGNATURES = ((0xFF, 0xD8), (0x89, 0x50), (0x47, 0x49), (0x42, 0x4D))


def decode_wechat_dat(data: bytes) -> bytes:
    if len(data) < 2:
        return data
    for first, second in _SIGNATURES:
        key = data[0] ^ first
        if data[1] ^ key == second:
            return (np.frombuffer(data, dtype=np.uint8) ^ np.uint8(key)).tobytes() if key else data
    return data  # not an XOR'd picture: decoding will say it is not a picture


def _claim(session: Session, limit: int) -> list[tuple[int, int, str]]:
    """Take up to ``limit`` pending references for this worker (committed, so others skip them)."""
    now = utcnow()
    stale = now - STALE_CLAIM
    rows = session.execute(
        select(PostImage.id, PostImage.post_id, PostImage.ref)
        .where(or_(PostImage.status == "pending",
                   (PostImage.status == "fetching") & (PostImage.fetched_at < stale),
                   _due_retry(now)))
        .order_by(PostImage.id).limit(limit)
    ).all()
    mine = []
    for ref_id, post_id, ref in rows:
        res = session.execute(
            update(PostImage)
            .where(PostImage.id == ref_id, PostImage.status.in_(("pending", "fetching", "retry")))
            .values(status="fetching", fetched_at=now)
        )
        if getattr(res, "rowcount", 0):
            mine.append((ref_id, post_id, ref))
    session.commit()
    return mine


def _due_retry(now: dt.datetime) -> ColumnElement[bool]:
    return (PostImage.status == "retry") & (PostImage.fetched_at < now - RETRY_AFTER)


def due_retries(session: Session) -> int:
    """References whose next try is due (`yuqing run` starts a worker for them)."""
    return int(session.scalar(select(func.count()).select_from(PostImage).where(_due_retry(utcnow()))) or 0)


def fetch_pending(
    session: Session, *, limit: int = 200, client: httpx.Client | None = None, verify: Verifier | None = None
) -> FetchReport:
    """Fetch and store up to ``limit`` queued pictures; each reference is committed as it ends.

    ``verify`` confirms a near-duplicate by hash (core.images.Verifier); a copy of a picture not
    read yet goes back to the queue (``waiting``) and is compared once it has been read."""
    report = FetchReport()
    claimed = _claim(session, limit)
    if not claimed:
        return report
    settings = get_settings()
    own = client is None
    http = client or httpx.Client(
        timeout=settings.image_fetch_timeout, follow_redirects=False,
        transport=httpx.HTTPTransport(retries=RETRIES),  # connection failures, with httpcore's backoff
        headers={"User-Agent": settings.user_agent} if getattr(settings, "user_agent", None) else None,
    )
    index = NearDupIndex.load(session)
    try:
        for n, (ref_id, post_id, ref) in enumerate(claimed):
            status, error, image_id = _fetch_one(session, http, ref, index, verify)
            if status == "retry" and _arrived(session, ref_id) < utcnow() - RETRY_WINDOW:
                status = "failed"  # tried for RETRY_WINDOW: given up
            if status == "unavailable":
                report.counts["unavailable"] += 1
                report.unavailable = error
                _unclaim(session, [c[0] for c in claimed[n:]], error)
                log.warning("picture store unavailable, %d references stay queued: %s", len(claimed) - n, error)
                break
            report.counts[status if status != "stored" or error is None else "duplicate"] += 1
            session.execute(
                update(PostImage).where(PostImage.id == ref_id)
                .values(status="pending" if status == "waiting" else status,
                        error=None if status == "stored" else error, image_id=image_id, fetched_at=utcnow())
            )
            if image_id is not None and not refresh_post_image_text(session, [post_id]):
                _analyse_again(session, post_id)  # a picture read before gave its text at once
            session.commit()
    finally:
        if own:
            http.close()
    log.info("images fetched", extra={"counts": dict(report.counts)})
    return report


def _arrived(session: Session, ref_id: int) -> dt.datetime:
    return session.scalar(select(PostImage.created_at).where(PostImage.id == ref_id)) or utcnow()


def _unclaim(session: Session, ref_ids: list[int], error: str | None) -> None:
    """Back to the queue, with the reason shown to staff (`images status`, the post's pictures)."""
    session.execute(update(PostImage).where(PostImage.id.in_(ref_ids), PostImage.status == "fetching")
                    .values(status="pending", error=error, fetched_at=None))
    session.commit()


def _analyse_again(session: Session, post_id: int) -> None:
    """The post's picture is known now: analysed again, so it joins the incident of the other
    posts showing that picture (nlp.incident_pictures) even when the picture has no text."""
    session.execute(update(Post).where(Post.id == post_id, Post.analyzed_at.is_not(None)).values(analyzed_at=None))


def _fetch_one(
    session: Session, http: httpx.Client, ref: str, index: NearDupIndex, verify: Verifier | None
) -> tuple[str, str | None, int | None]:
    """(status, error or the duplicate marker, image id)."""
    try:
        data = fetch_with_retry(http, ref) if ref.startswith(("http://", "https://")) else read_file(ref)
        stored = store_image(session, data, index=index, verify=verify)
        _drop_crawl_copy(ref)
    except VerifyLater as err:
        return "waiting", str(err)[:500], None
    except StoreUnavailable as err:  # the store, not the picture: tried again later
        return "unavailable", str(err)[:500], None
    except FileNotFoundError as err:  # an export's picture that was not exported with it: not an error
        return "missing", str(err)[:500], None
    except (FetchRefused, ImageRefused) as err:
        return "refused", str(err)[:500], None
    except httpx.TransportError as err:  # still unreachable after the quick retries: later again
        return "retry", f"{type(err).__name__}: {err}"[:500], None
    except (httpx.HTTPError, OSError) as err:
        return "failed", f"{type(err).__name__}: {err}"[:500], None
    return "stored", None if stored.new else "duplicate", stored.image_id


def _drop_crawl_copy(ref: str) -> None:
    """A picture the crawler downloaded is stored now: its download copy goes (an export's file stays)."""
    if not ref.startswith("file://"):
        return
    path = Path(ref.removeprefix("file://"))
    if (get_settings().data_dir / "crawl-images").resolve() in path.resolve().parents:
        path.unlink(missing_ok=True)
