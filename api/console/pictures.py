"""The pictures of evidence posts for the console: thumbnails and recognised text (识别文字).

Served by the image API (staff and up, session or token); the page only links to them, so the
console's CSP holds (img-src 'self', nothing inline from posts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.tables import Image, PostImage


def pictures_of(session: Session, post_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """post id -> its stored pictures in order: id, recognised text, document flags."""
    out: dict[int, list[dict[str, Any]]] = {}
    if not post_ids:
        return out
    rows = session.execute(
        select(PostImage.post_id, Image.id, Image.ocr_status, Image.ocr_text, Image.is_document, Image.document,
               Image.copies)
        .join(Image, Image.id == PostImage.image_id)
        .where(PostImage.post_id.in_(post_ids)).order_by(PostImage.post_id, PostImage.position)
    ).all()
    for post_id, image_id, status, text, is_doc, doc, copies in rows:
        out.setdefault(post_id, []).append({
            "id": image_id, "status": status, "text": text, "is_document": bool(is_doc),
            "headline": (doc or {}).get("headline"), "issuer": (doc or {}).get("issuer"), "copies": copies,
        })
    return out
