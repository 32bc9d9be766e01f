"""Pictures of posts (staff and up): the stored file, a thumbnail, the recognised text, where it spread.

A picture is evidence and may show people, so only staff roles (staff, analyst, admin) see it,
with the console session or a token; viewers and anonymous callers get 403/401. Files are served
from the picture store (the data dir or S3, core.picture_store) by id, never by a path from a
request, with ``nosniff`` and a private cache; a store that is down answers 503 with Retry-After.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import func, select

from api.deps import MAX_ROW_ID, SessionDep, StaffUser
from api.problems import Problem
from core.errors import NotFound
from core.images import THUMB_SIZES, image_bytes, thumbnail
from core.picture_store import PictureMissing, StoreUnavailable
from core.tables import ChatGroup, Image, Post, PostImage

router = APIRouter(tags=["images"])
ImageId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="图片编号")]
PostId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="帖子编号")]
_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox"}


class ImagePublic(BaseModel):
    id: int
    width: int
    height: int
    mime: str
    copies: int
    first_seen: dt.datetime
    ocr_status: str
    image_text: str | None  # 识别文字: recognised, not typed by the sender; masked like any text
    ocr_confidence: float | None
    ocr_lines: list[Any]
    is_document: bool | None
    document: dict[str, Any]
    phash: str
    dhash: str
    url: str
    thumb_url: str


class PostImagePublic(BaseModel):
    position: int
    status: str  # pending | fetching | stored | retry (tried again later) | failed | refused | missing
    error: str | None
    image: ImagePublic | None


class SpreadPublic(BaseModel):
    posts: int
    groups: list[dict[str, Any]]


def _public(img: Image) -> ImagePublic:
    return ImagePublic(
        id=img.id, width=img.width, height=img.height, mime=img.mime, copies=img.copies, first_seen=img.first_seen,
        ocr_status=img.ocr_status, image_text=img.ocr_text, ocr_confidence=img.ocr_confidence,
        ocr_lines=img.ocr_lines, is_document=img.is_document, document=img.document, phash=img.phash,
        dhash=img.dhash, url=f"/api/v1/images/{img.id}", thumb_url=f"/api/v1/images/{img.id}/thumb",
    )


def _image(session: Any, image_id: int) -> Image:
    img = session.get(Image, image_id)
    if img is None:
        raise NotFound(f"图片 {image_id} 不存在（可能已过保留期被删除）")
    return img


@router.get("/posts/{post_id}/images", response_model=list[PostImagePublic], summary="帖子的图片及识别文字")
def post_images(post_id: PostId, session: SessionDep, _: StaffUser) -> list[PostImagePublic]:
    if session.get(Post, post_id) is None:
        raise NotFound(f"帖子 {post_id} 不存在")
    rows = session.execute(
        select(PostImage, Image).outerjoin(Image, Image.id == PostImage.image_id)
        .where(PostImage.post_id == post_id).order_by(PostImage.position)
    ).all()
    return [PostImagePublic(position=pi.position, status=pi.status, error=pi.error,
                            image=_public(img) if img is not None else None) for pi, img in rows]


@router.get("/images/{image_id}/info", response_model=ImagePublic, summary="图片信息与识别文字")
def image_info(image_id: ImageId, session: SessionDep, _: StaffUser) -> ImagePublic:
    return _public(_image(session, image_id))


@router.get("/images/{image_id}/spread", response_model=SpreadPublic, summary="同一张图片出现在哪些群")
def image_spread(image_id: ImageId, session: SessionDep, _: StaffUser) -> SpreadPublic:
    _image(session, image_id)
    rows = session.execute(
        select(ChatGroup.id, ChatGroup.name, func.count(Post.id), func.min(Post.published_at))
        .join(Post, Post.group_id == ChatGroup.id).join(PostImage, PostImage.post_id == Post.id)
        .where(PostImage.image_id == image_id).group_by(ChatGroup.id, ChatGroup.name)
        .order_by(func.min(Post.published_at))
    ).all()
    total = session.scalar(select(func.count(func.distinct(PostImage.post_id))).where(PostImage.image_id == image_id))
    return SpreadPublic(posts=int(total or 0), groups=[
        {"group_id": gid, "group": name, "posts": int(n), "first_seen": first} for gid, name, n, first in rows])


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "图片字节"},
    503: {"description": "图片存储暂不可用（按 Retry-After 重试）"},
}


def _from_store(read: Any) -> bytes:
    """The picture's bytes, or 404 (file gone) / 503 (the store is down: not the caller's fault)."""
    try:
        return bytes(read())
    except PictureMissing as err:
        raise NotFound(str(err)) from err
    except StoreUnavailable as err:
        raise Problem(503, "图片存储暂不可用", str(err), headers={"Retry-After": "30"}) from err


@router.get("/images/{image_id}", summary="图片原图（已去除 EXIF）", response_class=Response,
            responses=_RESPONSES)
def image_file(image_id: ImageId, session: SessionDep, _: StaffUser) -> Response:
    img = _image(session, image_id)
    return Response(_from_store(lambda: image_bytes(img)), media_type=img.mime, headers=_HEADERS)


@router.get("/images/{image_id}/thumb", summary="图片缩略图", response_class=Response,
            responses=_RESPONSES)
def image_thumb(
    image_id: ImageId, session: SessionDep, _: StaffUser,
    size: Annotated[int, Query(description="最长边像素：120 / 240 / 480")] = 240,
) -> Response:
    img = _image(session, image_id)
    size = min(THUMB_SIZES, key=lambda s: abs(s - size))
    return Response(_from_store(lambda: thumbnail(img, size)), media_type="image/jpeg", headers=_HEADERS)
