"""Reading pictures: OCR of each distinct picture once, document-like flags, and the post's image_text.

Its own stage with its own queue (``images.ocr_status = 'pending'``) and worker processes
(`yuqing images work`, started by `yuqing run` as ``YUQING_IMAGE_WORKERS`` subprocesses), each
with a budget of ``YUQING_IMAGE_OCR_PER_MINUTE`` pictures, so a flood of pictures never delays
text analysis: the text of a message is analysed as soon as it arrives; when its pictures have
been read, core.images sets ``posts.image_text`` and resets ``analyzed_at``, and the next
`yuqing analyze` scores, matches, groups and classifies the post again with the picture's words.

OCR is RapidOCR (``rapidocr-onnxruntime``, PP-OCRv4 detection and recognition as ONNX models
inside its wheel: nothing is downloaded at run time). It is the optional extra ``ocr``
(``pip install 'yuqing[ocr]'``); without it pictures are still stored and deduplicated, and the
worker says what to install.

Document-like pictures (a photographed or forged 红头文件 is a known rumor form) are flagged by
rules over measured features, no deep model: a red header band or rule near the top, a red round
seal in the lower part, a mostly white page, and the OCR's official wording (发文字号 〔2026〕12号,
关于……的通知, an issuing body). Its headline and issuing body are read from the OCR lines.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

import numpy as np
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.images import image_bytes, posts_of_images, refresh_post_image_text
from core.picture_store import PictureMissing, StoreUnavailable
from core.privacy import mask_personal_data
from core.settings import get_settings
from core.tables import Image, utcnow

log = logging.getLogger(__name__)

STALE_CLAIM = dt.timedelta(minutes=10)
MIN_LINE_CONFIDENCE = 0.5
# What detection sees: the shorter side at most OCR_SHORT_SIDE px (never enlarged) and the longer at
# most OCR_LONG_SIDE. Detection costs in proportion to the pixels, and phone screenshots (1080 px
# wide) read as well at 720 px (body text 40 px -> 27 px); RapidOCR's own default instead
# *enlarges* every picture to 736 px on its shorter side. Measured in bench/bench_images.py
# (--part ocr): CPU per picture and the worker's peak memory both fall by about a third.
OCR_SHORT_SIDE = 720
OCR_LONG_SIDE = 4000  # a long chat screenshot keeps its lines readable; beyond, it is shrunk whole


class OcrUnavailable(InvalidInput):
    """rapidocr-onnxruntime is not installed."""


# ----------------------------------------------------------------------------- OCR


@dataclass
class OcrLine:
    box: list[list[float]]  # 4 corner points
    text: str
    confidence: float


@dataclass
class OcrResult:
    lines: list[OcrLine] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def confidence(self) -> float | None:
        if not self.lines:
            return None
        weights = [max(1, len(x.text)) for x in self.lines]
        return float(np.average([x.confidence for x in self.lines], weights=weights))


class OcrEngine:
    """RapidOCR's models, run stage by stage: blank pictures are skipped, detection sees only the
    picture's inked part, and each line is recognised on its own.

    One intra-op thread: parallelism comes from worker processes, and one thread per process keeps
    a flood of pictures from starving the text analysis of its cores. One engine per process
    (``work`` builds it once; loading the models takes about two seconds).

    Why not ``RapidOCR.__call__``: it detects on the whole picture (a notice's blank lower third
    costs as much as its text: detection is ~0.3 CPU s per megapixel) and recognises in batches of
    six padded to the widest line and to at least 320 px, which costs more than one line at a time
    (onnxruntime on one thread gains nothing from a batch). Measured in bench/bench_images.py."""

    def __init__(self, threads: int = 1) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as err:
            raise OcrUnavailable(
                "没有安装文字识别组件：请运行 pip install 'yuqing[ocr]'（或 pip install rapidocr-onnxruntime），"
                "图片仍会保存和去重，装好后会补读。"
            ) from err
        # No angle classifier (screenshots and notices are upright; rotation of a few degrees is
        # read anyway). Recognition: one line per run, as wide as the line (no 320 px minimum).
        self._engine = RapidOCR(
            intra_op_num_threads=threads, inter_op_num_threads=1, use_cls=False, print_verbose=False,
            rec_batch_num=1, rec_img_shape=[3, 48, REC_MIN_WIDTH],
        )
        from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
        from rapidocr_onnxruntime.utils import read_yaml, update_model_path

        models = update_model_path(read_yaml(DEFAULT_CFG_PATH))  # the models inside the wheel
        self._engine.text_det.infer.session = _session(models["Det"]["model_path"], threads)
        self._engine.text_rec.session.session = _session(models["Rec"]["model_path"], threads)

    def read(self, rgb: np.ndarray) -> OcrResult:
        """The text lines of a picture (as ``fit_for_ocr`` gave it; boxes in its coordinates)."""
        boxes = self.detect(rgb)
        if not boxes:
            return OcrResult()
        crops = self._engine.get_crop_img_list(rgb, boxes)
        result, _ = self._engine.text_rec(crops, False)
        lines = [
            OcrLine([[float(x), float(y)] for x, y in box.tolist()], str(text).strip(), float(score))
            for box, (text, score) in zip(boxes, result, strict=True)
            if float(score) >= MIN_LINE_CONFIDENCE and str(text).strip()
        ]
        lines.sort(key=lambda ln: (round(ln.box[0][1] / 12), ln.box[0][0]))  # rows, then left to right
        return OcrResult(lines)

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Text line boxes (4 corner points each, float32) in ``rgb``'s coordinates; none for a blank picture."""
        region = inked_region(rgb)
        if region is None:
            return []
        left, top, right, bottom = region
        part = rgb[top:bottom, left:right]
        det = self._engine.text_det
        x, (h, w) = _det_input(part)
        preds = det.infer(x)[0]
        boxes, _ = det.postprocess_op(preds, (h, w))
        boxes = det.filter_tag_det_res(boxes, part.shape[:2])
        if not len(boxes):
            return []
        boxes = np.asarray(boxes, dtype=np.float32) + np.array([left, top], dtype=np.float32)
        return list(boxes)

    def recognise(self, crops: list[np.ndarray]) -> list[str]:
        """Text of each crop (one line each), recognition only: no detection pass.

        In batches of six, as RapidOCR does (the line check recognises the same line cut from two
        pictures; sorted by width, the pair lands in one batch padded alike and reads alike: the
        bench's near-duplicate recall is 0.80 one line at a time, 0.85 in batches)."""
        rec = self._engine.text_rec
        rec.rec_batch_num = 6
        try:
            result, _ = rec(crops, False)
        finally:
            rec.rec_batch_num = 1
        return [str(r[0]).strip() for r in result]


# Recognition input: 48 px high and as wide as the line, at least this (RapidOCR pads every line
# to 320 px: a 5-character line then costs as much as a 12-character one).
REC_MIN_WIDTH = 48
# Detection: the picture's longer side at most this (RapidOCR's own cap), sides multiples of 32.
DET_LONG_SIDE = 2000
DET_MIN_SIDE = 32
# A picture is "inked" where it differs from its background (the commonest border shade) by more
# than INK_CONTRAST grey levels; detection sees the inked box plus INK_MARGIN px (the detector's
# boxes reach past the strokes). Nothing inked at all: a blank picture, not read.
INK_CONTRAST = 32
INK_MARGIN = 24
INK_MIN_PIXELS = 5  # of the pixels looked at (every other one on both axes)


def _session(model_path: str, threads: int) -> Any:
    """An onnxruntime session as RapidOCR makes one, but with the CPU memory arena on: RapidOCR
    turns it off, and every run then allocates its buffers afresh (about 5% of the CPU; the arena
    costs about 10 MB)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])


def inked_region(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of what differs from the background, with a margin; None when nothing does.

    A notice's blank lower third and a screenshot's empty margins cost detection as much as text
    (in proportion to the pixels); a photo has no uniform background and is kept whole."""
    step = 2  # every other pixel: a stroke is wider than that, and the margin covers the rest
    gray = rgb[::step, ::step].astype(np.int16).sum(axis=2)  # 0..765: three times the grey level
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    bg = int(np.bincount(border, minlength=766).argmax())
    ink = np.abs(gray - bg) > 3 * INK_CONTRAST
    if int(np.count_nonzero(ink)) < INK_MIN_PIXELS:
        return None
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    h, w = rgb.shape[:2]
    return (max(0, step * int(cols[0]) - INK_MARGIN), max(0, step * int(rows[0]) - INK_MARGIN),
            min(w, step * (int(cols[-1]) + 1) + INK_MARGIN), min(h, step * (int(rows[-1]) + 1) + INK_MARGIN))


def _det_input(rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The detector's input (NCHW float32 in [-1, 1], sides multiples of 32) and the (height,
    width) in ``rgb``'s pixels that its output map covers.

    At its own size a picture is padded to the next multiple of 32 with its edge pixels, not
    resized (resizing by a few percent blurs the strokes; the boxes stay in its coordinates);
    beyond DET_LONG_SIDE it is shrunk."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, DET_LONG_SIDE / max(h, w))
    if min(h, w) * scale < DET_MIN_SIDE:
        scale = DET_MIN_SIDE / min(h, w)
    if scale == 1.0:
        covered = (-(-h // 32) * 32, -(-w // 32) * 32)
        rgb = cv2.copyMakeBorder(rgb, 0, covered[0] - h, 0, covered[1] - w, cv2.BORDER_REPLICATE)
    else:
        size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, size, interpolation=interpolation)
        covered = (h, w)
    x = rgb.astype(np.float32) * np.float32(2 / 255) - np.float32(1)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[np.newaxis]), covered


def fit_for_ocr(img: Any) -> Any:
    """An RGB PIL picture scaled down (never up) to what detection reads (OCR_SHORT_SIDE / OCR_LONG_SIDE)."""
    from PIL import Image as PILImage

    rgb = img.convert("RGB")
    w, h = rgb.size
    scale = min(1.0, OCR_SHORT_SIDE / max(1, min(w, h)), OCR_LONG_SIDE / max(1, max(w, h)))
    if scale < 1.0:
        rgb = rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))), PILImage.Resampling.BILINEAR)
    return rgb


def load_rgb(source: Any) -> np.ndarray:
    """The stored picture as OCR reads it (the boxes of its lines are in these coordinates).
    ``source``: a path, a file object, or the picture's bytes (as the picture store returns them)."""
    import io

    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        return np.asarray(fit_for_ocr(img))


# ----------------------------------------------------------------------------- same picture, same text?

VERIFY_LINES = 5
VERIFY_MIN_SIMILARITY = 0.9  # mean over the lines
VERIFY_MIN_LINE = 0.85  # and every line: a notice on the same template differs in its header or date only


def content_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of what differs from the background (the most common border
    shade): a border added by a screenshot, or a margin cropped away, leaves it in place."""
    a = gray.astype(np.int16)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = int(np.bincount(border.astype(np.int64), minlength=256).argmax())
    fg = np.abs(a - bg) > 48
    rows = np.nonzero(fg.mean(axis=1) > 0.002)[0]
    cols = np.nonzero(fg.mean(axis=0) > 0.002)[0]
    if not len(rows) or not len(cols):
        return 0, 0, gray.shape[1], gray.shape[0]
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


class TextVerifier:
    """Confirms a near-duplicate by hash: the candidate's longest recognised lines are cut from the
    same place of the new copy (mapped through both pictures' content boxes) and only recognised
    (no detection): a few tens of milliseconds instead of a full read. Same words: same picture."""

    def __init__(self, engine: OcrEngine) -> None:
        self.engine = engine

    def __call__(self, candidate: Image, new_img: Any) -> bool | None:
        if candidate.ocr_status in ("pending", "reading"):
            return None
        lines = pick_lines(candidate.ocr_lines or [])
        if not lines:
            return True  # no text to tell them apart: the hashes decide
        try:
            old = load_rgb(image_bytes(candidate))
        except PictureMissing:
            return False  # its file was purged: nothing to compare, so not this one
        new = np.asarray(fit_for_ocr(new_img))
        crops = [c for c in (_map_crop(ln[0], old, new) for ln in lines) if c is not None]
        if len(crops) < len(lines):
            return False
        # The same cut of the candidate is recognised too (not compared with its full read): a line
        # the full read got slightly wrong (a seal over a date) is then wrong the same way in both.
        own = [c for c in (_map_crop(ln[0], old, old) for ln in lines) if c is not None]
        texts = self.engine.recognise(own + crops) if len(own) == len(lines) else []
        if not texts:
            return False
        sims = [SequenceMatcher(None, _letters(a), _letters(b)).ratio()
                for a, b in zip(texts[: len(lines)], texts[len(lines):], strict=True)]
        log.debug("line check %s: %s", candidate.id,
                  list(zip(texts[: len(lines)], texts[len(lines):], sims, strict=True)))
        return float(np.mean(sims)) >= VERIFY_MIN_SIMILARITY and min(sims) >= VERIFY_MIN_LINE


_NOT_LETTERS = re.compile(r"[\W_]+")


def _letters(text: str) -> str:
    """Characters, letters and digits only: brackets and punctuation are what recognition varies on."""
    return _NOT_LETTERS.sub("", text)


def pick_lines(ocr_lines: list[Any]) -> list[Any]:
    """The lines that tell a picture apart: the top and bottom ones (a notice's issuer, a
    screenshot's group name, a date) and the longest ones, unmasked, 4 characters or more."""
    usable = [ln for ln in ocr_lines if len(ln[1]) >= 4 and "*" not in ln[1]]
    if len(usable) <= VERIFY_LINES:
        return usable
    by_top = sorted(usable, key=lambda ln: min(p[1] for p in ln[0]))
    chosen = [by_top[0], by_top[-1]]
    for ln in sorted(usable, key=lambda ln: -len(ln[1])):
        if len(chosen) >= VERIFY_LINES:
            break
        if ln not in chosen:
            chosen.append(ln)
    return chosen


def _map_crop(box: list[list[float]], old: np.ndarray, new: np.ndarray) -> np.ndarray | None:
    ol, ot, orr, ob = content_box(old.mean(axis=2))
    nl, nt, nr, nb = content_box(new.mean(axis=2))
    sx, sy = (nr - nl) / max(1, orr - ol), (nb - nt) / max(1, ob - ot)
    xs, ys = [p[0] for p in box], [p[1] for p in box]
    height = (max(ys) - min(ys)) * sy
    x0 = nl + (min(xs) - ol) * sx - 0.3 * height
    x1 = nl + (max(xs) - ol) * sx + 0.3 * height
    y0 = nt + (min(ys) - ot) * sy - 0.25 * height
    y1 = nt + (max(ys) - ot) * sy + 0.25 * height
    h, w = new.shape[:2]
    x0, x1, y0, y1 = max(0, int(x0)), min(w, int(x1)), max(0, int(y0)), min(h, int(y1))
    if x1 - x0 < 8 or y1 - y0 < 6:
        return None
    return np.ascontiguousarray(new[y0:y1, x0:x1])


# ----------------------------------------------------------------------------- document-like pictures

_DOC_NUMBER = re.compile(r"[\u4e00-\u9fff]{1,8}[〔\[［(（【]\s*20\d{2}\s*[〕\]］)）】]\s*\d{1,4}\s*号")
_HEADLINE = re.compile(r"关于.{2,40}?的(?:紧急)?(?:通知|通告|公告|决定|函|意见|通报|批复|办法)")
_NOTICE_WORD = re.compile(r"(紧急)?(通知|通告|公告|通报)$")
_ISSUER = re.compile(
    r"([\u4e00-\u9fff]{2,24}?(?:人民政府|委员会|办公室|办事处|指挥部|领导小组|卫生健康局|卫健委|公安局|派出所|"
    r"教育局|应急管理局|市场监督管理局|管理局|街道办|村委会|居委会|政府))"
)
_OFFICIAL = ("人民政府", "委员会", "办公室", "指挥部", "文件", "通知", "通告", "公告", "各村", "各单位", "特此通知",
             "请各", "印发", "发文", "抄送", "盖章")


def red_mask(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    return (r > 140) & (r - g > 70) & (r - b > 70)


def measure(rgb: np.ndarray) -> dict[str, float]:
    """Layout features of a picture, all in [0, 1] (numpy only, a few ms)."""
    h, w = rgb.shape[:2]
    red = red_mask(rgb)
    gray = rgb.mean(axis=2)
    top = red[: max(1, int(h * 0.3))]
    rows_red = top.mean(axis=1)  # a red rule under the header spans most of the width
    bottom = red[int(h * 0.4):]
    seal = 0.0
    if bottom.any():
        ys, xs = np.nonzero(bottom)
        bh, bw = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        aspect = min(bh, bw) / max(bh, bw)
        fill = len(ys) / float(bh * bw)
        size = max(bh, bw) / float(w)
        # a round stamp: a near-square bounding box, a ring or textured fill, a tenth to a half of the width
        seal = float(aspect > 0.7 and 0.08 < fill < 0.7 and 0.08 < size < 0.5)
    return {
        "red_top": float(top.mean()),
        "red_rule": float(rows_red.max() if len(rows_red) else 0.0),
        "red_bottom": float(bottom.mean()) if bottom.size else 0.0,
        "seal": seal,
        "white": float((gray > 200).mean()),
    }


def document_flags(rgb: np.ndarray, ocr: OcrResult) -> tuple[bool, dict[str, Any]]:
    """(looks like an official document, details: features, cues, headline, issuer)."""
    features = measure(rgb)
    text = ocr.text
    cues = [word for word in _OFFICIAL if word in text]
    number = _DOC_NUMBER.search(text.replace(" ", ""))
    red_header = features["red_top"] > 0.004 and (features["red_rule"] > 0.45 or features["red_top"] > 0.01)
    page = features["white"] > 0.6
    headline = _headline(ocr.lines)
    issuer = _issuer(ocr.lines)
    score = (
        1.5 * red_header + 1.5 * features["seal"] + 0.5 * page + 1.5 * bool(number)
        + 1.0 * bool(headline) + 0.5 * bool(issuer) + 0.25 * min(len(cues), 4)
    )
    is_doc = score >= 3.0 and (red_header or bool(features["seal"]) or bool(number) or bool(headline))
    return is_doc, {
        "score": round(score, 2),
        "features": {k: round(v, 4) for k, v in features.items()},
        "red_header": bool(red_header),
        "seal": bool(features["seal"]),
        "doc_number": number.group(0) if number else None,
        "headline": headline,
        "issuer": issuer,
        "cues": cues,
    }


def _headline(lines: Sequence[OcrLine]) -> str | None:
    for line in lines:
        m = _HEADLINE.search(line.text)
        if m:
            return line.text.strip()
    for line in lines:
        if _NOTICE_WORD.search(line.text.strip()) and len(line.text.strip()) <= 40:
            return line.text.strip()
    return None


def _issuer(lines: Sequence[OcrLine]) -> str | None:
    for line in [*lines[:3], *lines[-4:]]:  # the red header on top, the signature above the seal at the end
        m = _ISSUER.search(line.text)
        if m:
            return m.group(1)
    return None


# ----------------------------------------------------------------------------- the queue


def _claim(session: Session, limit: int) -> list[tuple[int, str]]:
    now = utcnow()
    rows = session.execute(
        select(Image.id, Image.path)
        .where(or_(Image.ocr_status == "pending",
                   (Image.ocr_status == "reading") & (Image.ocr_at < now - STALE_CLAIM)))
        .order_by(Image.id).limit(limit)
    ).all()
    mine = []
    for image_id, rel in rows:
        res = session.execute(
            update(Image).where(Image.id == image_id, Image.ocr_status.in_(("pending", "reading")))
            .values(ocr_status="reading", ocr_at=now)
        )
        if getattr(res, "rowcount", 0):
            mine.append((image_id, rel))
    session.commit()
    return mine


@dataclass
class ReadReport:
    read: int = 0
    failed: int = 0
    documents: int = 0
    posts_changed: int = 0
    seconds: float = 0.0
    unavailable: str | None = None  # the picture store's error, if it failed (the pictures stay queued)


def read_pending(session: Session, engine: OcrEngine, *, limit: int = 10) -> ReadReport:
    """Read up to ``limit`` pictures waiting for OCR; each is committed as soon as it is read."""
    report = ReadReport()
    t0 = time.perf_counter()
    masked = get_settings().mask_personal_data
    claimed = _claim(session, limit)
    for n, (image_id, _) in enumerate(claimed):
        image = session.get(Image, image_id)
        assert image is not None
        try:
            rgb = load_rgb(image_bytes(image))
            ocr = engine.read(rgb)
            is_doc, doc = document_flags(rgb, ocr)
        except StoreUnavailable as err:
            # The store is down: this picture and the rest of the batch go back to the queue.
            _unclaim(session, [i for i, _ in claimed[n:]])
            report.unavailable = str(err)
            log.warning("picture store unavailable, %d pictures stay queued: %s", len(claimed) - n, err)
            break
        except (OSError, ValueError, RuntimeError) as err:  # a file gone (PictureMissing), not a picture
            session.execute(update(Image).where(Image.id == image_id).values(
                ocr_status="failed", ocr_error=f"{type(err).__name__}: {err}"[:500], ocr_at=utcnow()))
            session.commit()
            report.failed += 1
            continue
        clean = mask_personal_data if masked else (lambda s: s)
        text = clean(ocr.text) or None
        session.execute(update(Image).where(Image.id == image_id).values(
            ocr_status="done", ocr_text=text, ocr_confidence=ocr.confidence, ocr_at=utcnow(), ocr_error=None,
            ocr_lines=[[ln.box, clean(ln.text), round(ln.confidence, 4)] for ln in ocr.lines],
            is_document=is_doc,
            document={**doc, "headline": clean(doc["headline"]) if doc["headline"] else None},
        ))
        report.posts_changed += refresh_post_image_text(session, posts_of_images(session, [image_id]))
        session.commit()
        report.read += 1
        report.documents += int(is_doc)
    report.seconds = time.perf_counter() - t0
    return report


def _unclaim(session: Session, image_ids: list[int]) -> None:
    session.execute(update(Image).where(Image.id.in_(image_ids), Image.ocr_status == "reading")
                    .values(ocr_status="pending", ocr_at=None))
    session.commit()


def work(
    session_factory: Callable[[], Any],
    *,
    per_minute: int | None = None,
    once: bool = False,
    fetch: Callable[..., object] | None = None,
    stop: Callable[[], bool] = lambda: False,
    idle_seconds: float | None = None,
) -> ReadReport:
    """The picture worker: fetch what is queued (``fetch``), read pictures within the budget, repeat.

    The budget is a token bucket of ``per_minute`` pictures refilled continuously, so a burst of a
    thousand pictures is read at the budgeted pace while text analysis keeps its CPU."""
    settings = get_settings()
    per_minute = per_minute or settings.image_ocr_per_minute
    idle = idle_seconds if idle_seconds is not None else settings.image_interval_seconds
    engine = OcrEngine()
    verifier = TextVerifier(engine)
    total = ReadReport()
    tokens, last = float(per_minute), time.monotonic()
    while not stop():
        now = time.monotonic()
        tokens = min(float(per_minute), tokens + (now - last) * per_minute / 60.0)
        last = now
        with session_factory() as session:
            fetched = fetch(session, verify=verifier) if fetch is not None else None
            take = int(tokens)
            report = read_pending(session, engine, limit=take) if take >= 1 else ReadReport()
        if take < 1:  # budget spent: wait for the next picture's worth of time
            time.sleep(60.0 / per_minute)
        tokens -= report.read + report.failed
        for name in ("read", "failed", "documents", "posts_changed"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        total.seconds += report.seconds
        down = report.unavailable or getattr(fetched, "unavailable", None)
        if down:  # the picture store is down: everything stays queued; try again after a pause
            total.unavailable = down
            if once:
                break
            time.sleep(idle)
            continue
        if once:
            waiting_refs = getattr(fetched, "counts", {}).get("waiting", 0)
            with session_factory() as session:
                if not _waiting(session) and not waiting_refs:
                    break
            continue
        if report.read + report.failed == 0 and take >= 1:
            time.sleep(idle)
    return total


def _waiting(session: Session) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(Image).where(Image.ocr_status == "pending")) or 0)
