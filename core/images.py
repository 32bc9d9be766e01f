"""Pictures of posts and chat messages: stored once, EXIF-free, content-addressed, deduplicated.

A picture arrives as bytes (fetched from a bot framework or a site by crawler.image_fetch, or
read from an export's image folder). :func:`store_image` decodes it (refusing what is not a
picture, too large, or a decompression bomb), re-encodes it without metadata (EXIF carries GPS
positions and camera serials: personal data we have no use for), and looks for a near-duplicate
among the pictures already stored: a forward, a recompression, a resize or a light crop of a
known picture is that picture (pHash **and** dHash within a few bits), so it is stored and read
(OCR) once. Files are kept by core.picture_store under the key ``<sha[:2]>/<sha>.<ext>``, in
``<data_dir>/images/`` or an S3-compatible bucket (``YUQING_IMAGE_S3_*``); the ``images`` row keeps
the hashes (so incident grouping can use them), the OCR result and the document flags.

Posts point at pictures through ``post_images`` (queued by core.ingest). A post's
``image_text`` is the text recognised in its pictures, joined in order, masked like any text;
when it changes the post's ``analyzed_at`` is reset so nlp analyses it again with the picture's
words (:func:`refresh_post_image_text`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.errors import InvalidInput
from core.picture_store import LocalStore, PictureMissing, picture_store
from core.settings import get_settings
from core.tables import Image, Post, PostImage, utcnow
from core.textsearch import row_tokens

log = logging.getLogger(__name__)

IMAGES: Table = Image.__table__  # type: ignore[assignment]
POST_IMAGES: Table = PostImage.__table__  # type: ignore[assignment]

# Near-duplicate thresholds (Hamming distance over 64 bits), both must hold. Chosen on
# bench/bench_images.py's forwarding transformations (recompression, resize, rotation, light
# crop, screenshot borders) against distinct renders of the same layout: see
# bench/results/images.md for recall and precision at these values.
PHASH_MAX = 16
DHASH_MAX = 16
FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "GIF": ("image/png", "png"),
           "WEBP": ("image/png", "png"), "BMP": ("image/png", "png")}
MAX_REFS_PER_POST = 20
MAX_CANDIDATES = 5  # near-duplicates by hash checked by the verifier, closest first
#: Thumbnail sizes (longest side, px): the console's 120/240/480 and the digest's 240. Only these
#: are made, so a purge knows every thumbnail key of a picture without listing the store.
THUMB_SIZES = (120, 240, 480)


class ImageRefused(InvalidInput):
    """Bytes that are not a picture we keep (the message says why, in Chinese)."""


class VerifyLater(Exception):
    """A hash candidate whose text is not read yet: the copy waits until it can be compared."""


#: ``verify(candidate row, new picture) -> same picture?`` (None: cannot tell yet). Layout hashes
#: cannot tell two notices printed on one template apart (a red header, a title, body lines: at
#: 32x32 pixels the text is a grey texture, and such pairs sit at distance 0). nlp.images gives a
#: verifier that re-reads only the candidate's longest text lines at the same place in the copy.
Verifier = Callable[[Image, Any], "bool | None"]


def images_dir() -> Path:
    """The local store's folder (pictures are there unless YUQING_IMAGE_S3_ENDPOINT is set)."""
    return get_settings().data_dir / "images"


# ----------------------------------------------------------------------------- decode and hash


def decode(data: bytes) -> Any:
    """Bytes -> an RGB PIL image (first frame, EXIF orientation applied) or :class:`ImageRefused`."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    settings = get_settings()
    if len(data) > settings.image_max_mb * 1024 * 1024:
        raise ImageRefused(f"图片超过 {settings.image_max_mb:g} MB（YUQING_IMAGE_MAX_MB）")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data))
            if img.format not in FORMATS:
                raise ImageRefused(f"不支持的图片格式：{img.format}")
            if img.width * img.height > settings.image_max_pixels:
                raise ImageRefused(f"图片像素过多（{img.width}x{img.height}，YUQING_IMAGE_MAX_PIXELS）")
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageRefused(f"不是可读的图片：{err}") from err
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as err:
        raise ImageRefused(f"图片像素过多：{err}") from err
    fmt = str(img.format)
    turned: Any = ImageOps.exif_transpose(img) or img
    rgb: Any = turned.convert("RGB")
    rgb.info.clear()
    rgb.format = fmt  # kept for clean_bytes; the pixels carry no metadata any more
    return rgb


def clean_bytes(img: Any) -> tuple[bytes, str, str]:
    """Re-encode without any metadata (EXIF, XMP, ICC, text chunks): (bytes, mime, extension)."""
    mime, ext = FORMATS.get(str(img.format), ("image/png", "png"))
    out = io.BytesIO()
    if ext == "jpg":
        img.save(out, format="JPEG", quality=92, optimize=False)
    else:
        img.save(out, format="PNG", optimize=False)
    return out.getvalue(), mime, ext


HASH_SIDE = 128  # hashes read a 32x32 (pHash) and 9x8 (dHash) picture: shrink once, cheaply, first


def hashes(img: Any) -> tuple[str, str]:
    """(pHash, dHash) as 16 hex digits each.

    The grey picture is reduced to 128 px with a box filter before imagehash's own LANCZOS
    resize: the same hashes within a bit or two, five times faster on phone-sized pictures."""
    import imagehash
    from PIL import Image as PILImage

    grey = img.convert("L")
    if max(grey.size) > HASH_SIDE:
        factor = max(1, min(grey.size) // 64)
        grey = grey.reduce(factor) if factor > 1 else grey
        grey = grey.resize((HASH_SIDE, HASH_SIDE), PILImage.Resampling.BOX)
    return str(imagehash.phash(grey)), str(imagehash.dhash(grey))


def _bits(hex_values: Sequence[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hex_values], dtype=np.uint64)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x) if hasattr(np, "bitwise_count") else np.unpackbits(x.view(np.uint8)).reshape(-1, 64).sum(1)


class NearDupIndex:
    """Every stored picture's (pHash, dHash) in two uint64 arrays: a lookup is one vectorised
    XOR + popcount (100,000 pictures in about a millisecond), no tree to maintain."""

    def __init__(self, ids: Sequence[int] = (), phashes: Sequence[str] = (), dhashes: Sequence[str] = ()) -> None:
        self.ids = np.array(list(ids), dtype=np.int64)
        self.ph = _bits(phashes)
        self.dh = _bits(dhashes)

    @classmethod
    def load(cls, session: Session) -> NearDupIndex:
        rows = session.execute(select(Image.id, Image.phash, Image.dhash).order_by(Image.id)).all()
        return cls([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])

    def find(self, phash: str, dhash: str, *, phash_max: int = PHASH_MAX, dhash_max: int = DHASH_MAX) -> int | None:
        """The id of the closest stored picture within both thresholds, or None."""
        found = self.candidates(phash, dhash, phash_max=phash_max, dhash_max=dhash_max, limit=1)
        return found[0] if found else None

    def candidates(self, phash: str, dhash: str, *, phash_max: int = PHASH_MAX, dhash_max: int = DHASH_MAX,
                   limit: int = MAX_CANDIDATES) -> list[int]:
        """Ids of stored pictures within both thresholds, closest first (at most ``limit``)."""
        if not len(self.ids):
            return []
        dp = _popcount(self.ph ^ np.uint64(int(phash, 16))).astype(np.int64)
        dd = _popcount(self.dh ^ np.uint64(int(dhash, 16))).astype(np.int64)
        ok = np.nonzero((dp <= phash_max) & (dd <= dhash_max))[0]
        order = ok[np.argsort(dp[ok] + dd[ok], kind="stable")][:limit]
        return [int(self.ids[i]) for i in order]

    def add(self, image_id: int, phash: str, dhash: str) -> None:
        self.ids = np.append(self.ids, np.int64(image_id))
        self.ph = np.append(self.ph, _bits([phash]))
        self.dh = np.append(self.dh, _bits([dhash]))


# ----------------------------------------------------------------------------- store


@dataclass
class Stored:
    image_id: int
    new: bool  # a new distinct picture (False: an exact or near-duplicate of a stored one)
    near_duplicate: bool = False


def store_image(
    session: Session, data: bytes, *, index: NearDupIndex | None = None, verify: Verifier | None = None
) -> Stored:
    """Store a picture once (caller commits); an exact or near-duplicate copy returns the stored one.

    A near-duplicate by hash is confirmed by ``verify`` when given (raises :class:`VerifyLater`
    while the candidate is unread); without it the hashes decide. The file is written before the
    row, so a store that is down (:class:`StoreUnavailable`) leaves no row without its picture."""
    img = decode(data)
    clean, mime, ext = clean_bytes(img)
    sha = hashlib.sha256(clean).hexdigest()
    now = utcnow()
    same = session.scalar(select(Image.id).where(Image.sha256 == sha))
    ph, dh = hashes(img)
    near = same if same is not None else _confirmed(session, img, (index or NearDupIndex.load(session)).candidates(ph, dh), verify)
    if near is not None:
        session.execute(update(Image).where(Image.id == near).values(copies=Image.copies + 1, last_seen=now))
        return Stored(near, new=False, near_duplicate=same is None)
    rel = f"{sha[:2]}/{sha}.{ext}"
    picture_store().put(rel, clean, mime)
    row = {"sha256": sha, "phash": ph, "dhash": dh, "path": rel, "mime": mime, "width": img.width,
           "height": img.height, "size_bytes": len(clean), "first_seen": now, "last_seen": now, "copies": 1,
           "ocr_status": "pending", "ocr_lines": [], "document": {}}
    session.execute(upsert_insert(session, IMAGES).on_conflict_do_nothing(index_elements=["sha256"]), [row])
    image_id = int(session.scalar(select(Image.id).where(Image.sha256 == sha)) or 0)
    if index is not None:
        index.add(image_id, ph, dh)
    return Stored(image_id, new=True)


def _confirmed(session: Session, img: Any, candidates: list[int], verify: Verifier | None) -> int | None:
    """The first candidate the verifier confirms (the closest, without a verifier)."""
    if verify is None:
        return candidates[0] if candidates else None
    for image_id in candidates:
        candidate = session.get(Image, image_id)
        verdict = verify(candidate, img) if candidate is not None else False
        if verdict is None:
            raise VerifyLater(f"与图片 {image_id} 相似，等它识别文字后再核对")
        if verdict:
            return image_id
    return None


def image_bytes(image: Image) -> bytes:
    """The stored (EXIF-free) picture; :class:`PictureMissing` if it is gone, :class:`StoreUnavailable`."""
    try:
        return picture_store().get(image.path)
    except PictureMissing as err:
        raise PictureMissing(f"图片 {image.id} 的文件不在图片存储中（{image.path}）") from err


def _thumb_key(sha: str, size: int) -> str:
    return f"thumbs/{size}/{sha}.jpg"


def thumbnail(image: Image, size: int) -> bytes:
    """A JPEG of the picture at most ``size`` px (one of THUMB_SIZES) on its longest side, made
    once and kept in the store beside it (the console's evidence and the digest's top rumors)."""
    from PIL import Image as PILImage

    if size not in THUMB_SIZES:
        raise ValueError(f"thumbnail size {size} is not one of {THUMB_SIZES}")
    store = picture_store()
    key = _thumb_key(image.sha256, size)
    try:
        return store.get(key)
    except PictureMissing:
        pass
    with PILImage.open(io.BytesIO(image_bytes(image))) as pic:
        small = pic.convert("RGB")
        small.thumbnail((size, size))
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=80)
    store.put(key, out.getvalue(), "image/jpeg")
    return out.getvalue()


# ----------------------------------------------------------------------------- posts and pictures


def queue_refs(session: Session, refs_by_key: dict[str, list[str]]) -> int:
    """post_images rows (pending) for the pictures of posts just ingested; idempotent per position."""
    if not refs_by_key:
        return 0
    ids = dict(session.execute(select(Post.dedup_key, Post.id).where(Post.dedup_key.in_(list(refs_by_key)))).all())
    now = utcnow()
    rows = [
        {"post_id": ids[key], "position": pos, "ref": ref[:2048], "status": "pending", "created_at": now}
        for key, refs in refs_by_key.items() if key in ids
        for pos, ref in enumerate(refs[:MAX_REFS_PER_POST])
    ]
    if rows:
        stmt = upsert_insert(session, POST_IMAGES).on_conflict_do_nothing(index_elements=["post_id", "position"])
        session.execute(stmt, rows)
        _requeue_found(session, rows)
    return len(rows)


def _requeue_found(session: Session, rows: list[dict[str, Any]]) -> None:
    """An export imported again after its missing pictures were copied in: those go back to the queue."""
    wanted = {(r["post_id"], r["position"]): r["ref"] for r in rows if r["ref"].startswith("file://")}
    if not wanted:
        return
    missing = session.execute(
        select(PostImage.id, PostImage.post_id, PostImage.position)
        .where(PostImage.post_id.in_({k[0] for k in wanted}), PostImage.status == "missing")
    ).all()
    for ref_id, post_id, position in missing:
        ref = wanted.get((post_id, position))
        if ref is not None and Path(ref.removeprefix("file://")).is_file():
            session.execute(update(PostImage).where(PostImage.id == ref_id)
                            .values(status="pending", ref=ref, error=None))


def refresh_post_image_text(session: Session, post_ids: Iterable[int]) -> int:
    """Set each post's ``image_text`` from its read pictures; a change resets ``analyzed_at``."""
    ids = sorted(set(post_ids))
    changed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        texts: dict[int, list[str]] = {i: [] for i in chunk}
        rows = session.execute(
            select(PostImage.post_id, Image.ocr_text)
            .join(Image, Image.id == PostImage.image_id)
            .where(PostImage.post_id.in_(chunk), Image.ocr_status == "done")
            .order_by(PostImage.post_id, PostImage.position)
        ).all()
        for post_id, text in rows:
            if text and text not in texts[post_id]:
                texts[post_id].append(text)
        current = {row.id: row for row in session.execute(
            select(Post.id, Post.title, Post.raw_text, Post.image_text).where(Post.id.in_(chunk)))}
        for post_id, parts in texts.items():
            joined = "\n".join(parts) or None
            row = current.get(post_id)
            if row is not None and row.image_text != joined:
                # a Core update skips the ORM flush hook that keeps the search words in step
                words = row_tokens("posts", {"title": row.title, "raw_text": row.raw_text, "image_text": joined})
                session.execute(update(Post).where(Post.id == post_id)
                                .values(image_text=joined, analyzed_at=None, search_tokens=words))
                changed += 1
    return changed


def posts_of_images(session: Session, image_ids: Iterable[int]) -> list[int]:
    ids = list(set(image_ids))
    if not ids:
        return []
    return list(session.scalars(select(PostImage.post_id).where(PostImage.image_id.in_(ids)).distinct()))


def purge_orphans(session: Session, *, dry_run: bool = False) -> int:
    """Delete pictures no post refers to any more (after `yuqing purge`): files, thumbnails, rows.

    Files go first, then their rows: if the store fails half-way (:class:`StoreUnavailable` is
    raised), the rows deleted so far had their files deleted, and the rest are still orphans the
    next purge deletes. A row whose file is already gone is harmless (nothing refers to it)."""
    linked = select(PostImage.image_id).where(PostImage.image_id.is_not(None))
    orphans = session.execute(select(Image.id, Image.path, Image.sha256).where(Image.id.not_in(linked))).all()
    if dry_run or not orphans:
        return len(orphans)
    store = picture_store()
    for start in range(0, len(orphans), 500):
        chunk = orphans[start:start + 500]
        store.delete([key for _, rel, sha in chunk for key in (rel, *(_thumb_key(sha, s) for s in THUMB_SIZES))])
        session.execute(delete(Image).where(Image.id.in_([r[0] for r in chunk])))
    return len(orphans)


@dataclass
class CopyReport:
    copied: int = 0
    missing: list[str] = field(default_factory=list)  # rows whose local file is not there


def copy_local_to_store(session: Session, *, progress: Callable[[int, int], None] | None = None) -> CopyReport:
    """Copy every stored picture from ``<data_dir>/images`` into the configured store (S3), for an
    installation switching stores: idempotent (a key already there is not written again), the
    local files are left in place (delete them once `yuqing images status` shows the store works).
    Thumbnails are not copied: they are made again on first view."""
    local, store = LocalStore(images_dir()), picture_store()
    if isinstance(store, LocalStore):
        raise InvalidInput("图片存储仍是数据目录：先设置 YUQING_IMAGE_S3_ENDPOINT 等，再复制")
    rows = session.execute(select(Image.path, Image.mime).order_by(Image.id)).all()
    report = CopyReport()
    for n, (key, mime) in enumerate(rows, start=1):
        try:
            data = local.get(key)
        except PictureMissing:
            report.missing.append(key)
            continue
        store.put(key, data, mime)
        report.copied += 1
        if progress is not None:
            progress(n, len(rows))
    return report


def counts(session: Session) -> dict[str, int]:
    """Pictures by OCR status and references by fetch status (for `yuqing images status`)."""
    out: dict[str, int] = {}
    for status, n in session.execute(select(Image.ocr_status, func.count()).group_by(Image.ocr_status)):
        out[f"images.{status}"] = int(n)
    for status, n in session.execute(select(PostImage.status, func.count()).group_by(PostImage.status)):
        out[f"refs.{status}"] = int(n)
    return out
