"""The same picture, the same matter: a post joins the incident of another post showing its picture.

A screenshot or a photographed notice is forwarded from group to group, often with a different
caption ("这是真的吗", "转发") or none. Its words (the caption) do not tie those posts together,
its picture does. core.images already decides which pictures are one picture: a forward, a
recompression, a resize or a light crop is folded into the stored picture (pHash and dHash
within a few bits, confirmed by re-reading its lines, so two notices printed on one template stay
two pictures). So here "the same picture" is simply the same ``images.id``.

This is one small signal of the incident stage (nlp.incidents consults it in ``place`` when
neither a binding (staff link, reply, story, debunk) nor the post's own words placed it, before
the conversation): ``image id -> incident``, filled from the database for the pictures of a
batch's posts, and from the posts placed during the run. A picture whose posts are already in
two or more incidents (a sticker, a meme, a QR code sent under many matters) binds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.tables import Post, PostImage
from nlp.incident_index import IncidentIndex, _Open, live

__all__ = ["PictureIncidents"]

_CHUNK = 500


class PictureIncidents:
    """Which incident each picture belongs to, for the posts of an analysis run."""

    def __init__(self) -> None:
        self.by_image: dict[int, _Open] = {}
        self.of_post: dict[int, list[int]] = {}  # the batch's posts -> their stored pictures, in order
        self.ambiguous: set[int] = set()  # pictures seen in several incidents: they tell nothing

    def prepare(self, session: Session, index: IncidentIndex, post_ids: Sequence[int]) -> None:
        """Load the batch's pictures and the incidents other posts showing them are in."""
        self.of_post = _pictures_of(session, post_ids)
        wanted = sorted({i for ids in self.of_post.values() for i in ids if i not in self.by_image})
        if not wanted:
            return
        found = _incidents_of(session, wanted, set(post_ids))
        self.ambiguous |= {i for i, incidents in found.items() if len(incidents) > 1}
        index.reopen(session, [ids[0] for i, ids in found.items() if i not in self.ambiguous])
        for image_id, incidents in found.items():
            inc = index.open.get(incidents[0])
            if inc is not None and image_id not in self.ambiguous:
                self.by_image.setdefault(image_id, inc)

    def incident_of(self, index: IncidentIndex, post_id: int, forbidden: set[_Open]) -> _Open | None:
        """The incident of the first of the post's pictures that has one (and is still open)."""
        for image_id in self.of_post.get(post_id, ()):
            inc = self.by_image.get(image_id) if image_id not in self.ambiguous else None
            inc = live(inc) if inc is not None else None  # it may have merged into another since
            if inc is not None and inc not in forbidden and (inc.id is None or inc.id in index.open):
                return inc
        return None

    def note(self, post_id: int, inc: _Open | None) -> None:
        """A post was placed: its pictures now lead to its incident (the first one placed wins)."""
        if inc is None:
            return
        for image_id in self.of_post.get(post_id, ()):
            if self.by_image.setdefault(image_id, inc) is not inc:
                self.ambiguous.add(image_id)


def _pictures_of(session: Session, post_ids: Sequence[int]) -> dict[int, list[int]]:
    ids = sorted(set(post_ids))
    out: dict[int, list[int]] = {}
    for start in range(0, len(ids), _CHUNK):
        for post_id, image_id in session.execute(
            select(PostImage.post_id, PostImage.image_id)
            .where(PostImage.post_id.in_(ids[start : start + _CHUNK]), PostImage.image_id.is_not(None))
            .order_by(PostImage.post_id, PostImage.position)
        ):
            if image_id is not None:
                out.setdefault(post_id, []).append(image_id)
    return out


def _incidents_of(session: Session, image_ids: Sequence[int], skip_posts: set[int]) -> dict[int, list[int]]:
    """image id -> the incidents of the other posts showing it, earliest post first (the batch's aside)."""
    out: dict[int, list[int]] = {}
    for start in range(0, len(image_ids), _CHUNK):
        for image_id, post_id, incident_id in session.execute(
            select(PostImage.image_id, Post.id, Post.incident_id)
            .join(Post, Post.id == PostImage.post_id)
            .where(PostImage.image_id.in_(image_ids[start : start + _CHUNK]), Post.incident_id.is_not(None))
            .order_by(PostImage.image_id, Post.id)
        ):
            if post_id not in skip_posts and image_id is not None and incident_id is not None:
                seen = out.setdefault(image_id, [])
                if incident_id not in seen:
                    seen.append(incident_id)
    return out
