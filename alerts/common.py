"""Small helpers every part of the alert service shares: chunked IN lists, idempotent inserts,
hour keys, short titles, refutation cues, and looking an alert up.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.errors import NotFound
from core.tables import (
    Alert,
)
from nlp.cues import refutation_cues

log = logging.getLogger(__name__)

CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def insert_ignore(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on both dialects (idempotent evidence rows)."""
    if not rows:
        return
    stmt = upsert_insert(session, table).on_conflict_do_nothing()
    for chunk in chunks(rows, 2000):
        session.execute(stmt, list(chunk))


def parse_hour(key: str) -> dt.datetime | None:
    """Hour keys of ``hourly_counts`` ("2026-11-28T14", or a full ISO time) as aware UTC."""
    try:
        value = dt.datetime.strptime(key[:13], "%Y-%m-%dT%H")
    except ValueError:
        return None
    return value.replace(tzinfo=dt.UTC)


def hour_key(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")



#: How a post that refutes the claim it quotes is marked in an alert's evidence.
REFUTES_ZH = "辟谣/澄清"


def refutation_of(norm_text: str | None) -> tuple[str, ...]:
    """The refutation cues of an analysed post (its text as nlp normalised it), or () when it does
    not refute. A post without normalised text has not been analysed: it counts as spreading."""
    return refutation_cues(norm_text, normalized=True) if norm_text else ()


def short_title(text: str | None, limit: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"




def get_alert(session: Session, alert_id: int, *, lock: bool = False) -> Alert:
    q = select(Alert).where(Alert.id == alert_id)
    if lock:
        q = q.with_for_update()
    alert = session.scalar(q)
    if alert is None:
        raise NotFound(f"预警 #{alert_id} 不存在：请检查编号，或回到预警列表刷新")
    return alert


