"""Storing residents' tips (举报线索): one idempotent write path for every channel.

A tip is kept twice, on purpose:

* as a row of ``tips``: the channel, when, the (masked) text, a pseudonymous reporter key, the
  contact encrypted with the instance secret, whether the resident wants an answer, and what
  happened to it (status, matched debunk, answers);
* as a post of the pipeline (through :func:`core.ingest.ingest_posts`, the one write path), in a
  chat group of its own (``其他/tipline``, 群众举报线索), so the next analysis puts it in the
  incident it belongs to, or starts one, exactly like a chat message. Being a chat message it
  also follows the chat retention (YUQING_RETENTION_DAYS), and :func:`purge_tips` applies the
  same cut-off to the tip rows.

Identity: the reporter key is HMAC-SHA256(instance secret, "tip reporter" + channel + address),
so one resident has one stable key per channel (for the block list and "several residents
asked"), and the key cannot be turned back into a QQ number or phone number. The contact is a
Fernet token under a key derived from the instance secret (as core.spill does), so a database
dump alone does not reveal how to reach anyone.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.ingest import GroupRef, PostItem, ingest_posts
from core.privacy import mask_personal_data
from core.settings import get_settings
from core.tables import ChatGroup, Post, Tip, TipBlock, utcnow

CHANNELS = ("web", "qq", "wechat", "hotline")
CHANNEL_ZH = {"web": "网页", "qq": "QQ", "wechat": "公众号", "hotline": "热线"}
STATUSES = ("auto_answered", "acknowledged", "answered", "abuse", "closed")
STATUS_ZH = {"auto_answered": "已自动答复", "acknowledged": "已受理，待核实", "answered": "已答复",
             "abuse": "恶意/骚扰", "closed": "已关闭"}
TIP_SOURCE = "群众举报线索"
TIP_GROUP = GroupRef(platform="other", external_id="tipline", name="群众举报线索")
MAX_TIP_CHARS = 2000
#: Automatic flags on a tip (alerts.tips): staff see them in the list and may clear them.
FLAG_ZH = {"insult": "含辱骂"}


class TipError(ValueError):
    """A tip that cannot be stored (empty, unknown channel); the message says what to fix."""


@dataclass
class TipIn:
    """One tip as a channel hands it over.

    ``message_id`` identifies it within its channel (QQ message id, 公众号 MsgId, hotline row
    reference, the tip page's signed form token), so a re-send or re-import is stored once.
    ``address`` is how to reach the reporter on that channel (QQ number, openid, phone or mail
    from the form, hotline caller reference): only hashed and encrypted, never stored plain.
    """

    channel: str
    message_id: str
    text: str
    address: str | None = None
    wants_answer: bool = False
    received_at: dt.datetime | None = None
    images: list[str] = field(default_factory=list)
    reporter: str | None = None  # identity for the reporter key when there is no address (client address)


def _secret() -> bytes:
    return get_settings().secret()


def reporter_key(channel: str, identity: str, secret: bytes | None = None) -> str:
    """The stable pseudonymous key of one reporter on one channel (hex, 32 chars)."""
    message = f"tip reporter|{channel}|{identity.strip()}".encode()
    return hmac.digest(secret or _secret(), message, hashlib.sha256).hex()[:32]


def _fernet(secret: bytes) -> Fernet:
    # A key of its own, derived from the instance secret (as core.spill does for its spill).
    key = hmac.digest(secret, b"yuqing tip contact v1", hashlib.sha256)
    return Fernet(base64.urlsafe_b64encode(key))


def seal_contact(channel: str, address: str, secret: bytes | None = None) -> str:
    payload = orjson.dumps({"channel": channel, "address": address})
    return _fernet(secret or _secret()).encrypt(payload).decode("ascii")


def open_contact(sealed: str, secret: bytes | None = None) -> dict[str, str] | None:
    """The contact a tip was stored with, or None when it was sealed under another secret."""
    try:
        value = orjson.loads(_fernet(secret or _secret()).decrypt(sealed.encode("ascii")))
    except (InvalidToken, ValueError):
        return None
    return value if isinstance(value, dict) else None


def tip_key(channel: str, message_id: str) -> str:
    return f"{channel}:{message_id}"[:200]


def is_blocked(session: Session, key: str) -> bool:
    return session.get(TipBlock, key) is not None


@dataclass
class StoredTip:
    tip: Tip
    new: bool
    blocked: bool = False


def tip_text(tip: TipIn) -> str:
    """The text a tip is stored and matched with (personal numbers masked, whitespace folded);
    TipError when the tip cannot be stored (unknown channel, nothing in it, too long)."""
    if tip.channel not in CHANNELS:
        raise TipError(f"未知渠道 '{tip.channel}'：可选 {', '.join(CHANNELS)}")
    # Mask before folding whitespace: two numbers on two lines must not become one digit run
    # that no mask pattern recognises.
    raw = mask_personal_data(tip.text) if tip.text and get_settings().mask_personal_data else tip.text
    text = " ".join(raw.split()) if raw else ""
    if not text and not tip.images:
        raise TipError("线索没有内容：请写上文字或附上图片")
    if len(text) > MAX_TIP_CHARS:
        raise TipError(f"线索太长（{len(text)} 字）：最多 {MAX_TIP_CHARS} 字")
    return text


def find_tip(session: Session, tip: TipIn) -> Tip | None:
    """The tip already stored for this channel + message id (a re-send), or None."""
    return session.scalar(select(Tip).where(Tip.dedup_key == tip_key(tip.channel, tip.message_id)))


def store_tip(session: Session, tip: TipIn, *, text: str | None = None, abusive: bool = False) -> StoredTip:
    """Store a tip (caller commits); the same channel + message id again returns the stored one.
    ``text``: :func:`tip_text` of the tip when the caller has it already.

    A blocked reporter's tip, and an ``abusive`` one (insults and nothing else, alerts.tips), is
    stored as ``abuse`` and kept out of the pipeline (no post)."""
    text = tip_text(tip) if text is None else text
    key = tip_key(tip.channel, tip.message_id)
    found = session.scalar(select(Tip).where(Tip.dedup_key == key))
    if found is not None:
        return StoredTip(found, new=False, blocked=found.status == "abuse")
    secret = _secret()
    identity = tip.address or tip.reporter or key
    reporter = reporter_key(tip.channel, identity, secret)
    blocked = abusive or is_blocked(session, reporter)
    received = tip.received_at or utcnow()
    masked = text
    post_id = None if blocked else _as_post(session, tip, key, reporter, masked, received)
    row: dict[str, Any] = {
        "dedup_key": key, "channel": tip.channel, "received_at": received, "text": masked,
        "images": list(tip.images), "reporter_key": reporter,
        "contact_sealed": seal_contact(tip.channel, tip.address, secret) if tip.address else None,
        "wants_answer": bool(tip.wants_answer and tip.address), "post_id": post_id,
        "status": "abuse" if blocked else "acknowledged",
    }
    # Two deliveries of one message racing (a bot retrying while the first is in flight) meet
    # at the unique key: the second inserts nothing and reads the first.
    # Told by RETURNING: the rowcount of INSERT ... ON CONFLICT DO NOTHING is -1 on PostgreSQL.
    inserted = session.execute(upsert_insert(session, Tip.__table__).values(**row)
                               .on_conflict_do_nothing(index_elements=["dedup_key"])
                               .returning(Tip.__table__.c.id)).first()
    stored = session.scalar(select(Tip).where(Tip.dedup_key == key))
    assert stored is not None
    return StoredTip(stored, new=inserted is not None, blocked=blocked)


def tipline_group_id(session: Session) -> int | None:
    """The id of the chat group tips are posted in (None before the first tip)."""
    return session.scalar(select(ChatGroup.id).where(ChatGroup.platform == TIP_GROUP.platform,
                                                     ChatGroup.external_id == TIP_GROUP.external_id))


def _as_post(session: Session, tip: TipIn, key: str, reporter: str, text: str, received: dt.datetime) -> int | None:
    """The tip as a chat message of the tip line's group (the one write path for posts)."""
    item = PostItem(
        channel="chat", source=TIP_SOURCE, source_kind="tip", group=TIP_GROUP, external_id=key,
        text=text or "[图片]", author_id=f"tip:{reporter}", published_at=received,
        extra={"tip": True, "tip_channel": tip.channel}, images=list(tip.images),
    )
    result = ingest_posts(session, [item])
    if result.rejected:
        raise TipError(f"线索无法入库：{result.rejected[0].reason}")
    return session.scalar(select(Post.id).where(Post.dedup_key == next(iter(result.keys))))


def enter_pipeline(session: Session, row: Tip) -> int | None:
    """Put a stored tip kept out of the pipeline (closed as abuse) into it after all: staff
    cleared its abuse flag, so its text joins or starts an incident like any tip's."""
    if row.post_id is not None:
        return row.post_id
    channel = row.channel
    item = TipIn(channel=channel, message_id=row.dedup_key.split(":", 1)[-1], text=row.text, images=list(row.images or []))
    row.post_id = _as_post(session, item, row.dedup_key, row.reporter_key, row.text, row.received_at)
    return row.post_id


def block_reporter(session: Session, key: str, *, reason: str | None = None, user_id: int | None = None) -> bool:
    """Put a reporter on the block list; False when already there."""
    if is_blocked(session, key):
        return False
    session.add(TipBlock(reporter_key=key, reason=reason, created_by=user_id))
    session.flush()
    return True


def unblock_reporter(session: Session, key: str) -> bool:
    return bool(session.execute(delete(TipBlock).where(TipBlock.reporter_key == key)).rowcount)  # type: ignore[attr-defined]


def purge_tips(session: Session, *, days: int | None = None, now: dt.datetime | None = None) -> int:
    """Delete tips older than the chat retention (YUQING_RETENTION_DAYS); their posts go with
    the chat purge. Returns how many were deleted (caller commits)."""
    days = days if days is not None else get_settings().retention_days
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    return int(session.execute(delete(Tip).where(Tip.received_at < cutoff)).rowcount or 0)  # type: ignore[attr-defined]
