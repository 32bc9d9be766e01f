"""Human labels for retraining: import, manual labelling, conflicts, the active-learning queue.

Every label stores the text as it was judged and a hash of its normalised form, so the same
message forwarded with a different prefix counts as one text. Conflicting verdicts on one text
are reported, never averaged away; training uses only texts whose labels agree.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.encoding import file_encoding
from core.errors import InvalidInput, NotFound
from core.tables import Label, Post, PostScore, Story, utcnow
from nlp.normalize import normalize

_POSITIVE = {"1", "rumor", "fake", "true", "yes", "谣言", "是", "假"}
_NEGATIVE = {"0", "non-rumor", "nonrumor", "real", "false", "no", "非谣言", "不是谣言", "否", "真"}
MAX_LABEL_TEXT = 20_000


def text_key(text: str) -> str:
    """Hash of the normalised text without spaces: the identity of a text across sources."""
    return hashlib.sha256("".join(normalize(text).split()).encode("utf-8")).hexdigest()


def parse_label(value: Any) -> int:
    token = str(value).strip().lower()
    if token in _POSITIVE:
        return 1
    if token in _NEGATIVE:
        return 0
    raise InvalidInput(f"无法识别的标注值 '{value}'：请用 1/0、谣言/非谣言 或 rumor/non-rumor")


@dataclass
class LabelImport:
    new: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)  # "第 N 行: reason"


def check_category(category: str | None) -> str | None:
    """A label's concern category, which must be one of the office's taxonomy (or empty)."""
    category = (category or "").strip() or None
    if category is None:
        return None
    from nlp.concerns.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    if category not in taxonomy.categories:
        raise InvalidInput(f"类别“{category}”不在分类文件中；可用的类别：{'、'.join(taxonomy.categories)}")
    return category


def _upsert(session: Session, *, dedup_key: str, text: str, label: int, origin: str,
            post_id: int | None = None, alert_id: int | None = None, user_id: int | None = None,
            category: str | None = None) -> bool:
    """Insert or update one label; True when it was new or changed."""
    row = session.scalar(select(Label).where(Label.dedup_key == dedup_key))
    if row is not None:
        if row.label == label and row.category == category:
            return False
        row.label, row.category, row.created_at = label, category, utcnow()
        return True
    session.add(Label(dedup_key=dedup_key, text=text, text_hash=text_key(text), label=label, origin=origin,
                      post_id=post_id, alert_id=alert_id, user_id=user_id, category=category))
    session.flush()
    return True


def post_label_key(post_id: int, user_id: int | None, origin: str = "manual") -> str:
    """One label per user, post and origin: labelling the same post again replaces it."""
    return f"{origin}:post{post_id}:user{user_id or 0}"


def label_post(session: Session, *, post_id: int, label: int, user_id: int | None,
               origin: str = "manual", category: str | None = None) -> Label:
    """An analyst's verdict on a stored post (one per user and post; labelling again replaces it)."""
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound(f"帖子 {post_id} 不存在")
    if label not in (0, 1):
        raise InvalidInput("标注只能是 1（谣言）或 0（非谣言）")
    category = check_category(category)
    key = post_label_key(post_id, user_id, origin)
    _upsert(session, dedup_key=key, text=post.raw_text, label=label, origin=origin, post_id=post_id,
            user_id=user_id, category=category)
    return session.scalars(select(Label).where(Label.dedup_key == key)).one()


def clear_post_label(session: Session, *, post_id: int, user_id: int | None, origin: str = "manual") -> bool:
    """Withdraw a user's own verdict on a post; True when there was one (clearing twice is a no-op)."""
    row = session.scalar(select(Label).where(Label.dedup_key == post_label_key(post_id, user_id, origin)))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def csv_rows(path: Path, columns: tuple[str, ...], header: str,
             error: type[Exception] = InvalidInput) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a labelled CSV (UTF-8, GBK or UTF-16, as Excel saves it) with their line numbers; a
    missing column is one ``error`` that names the header to write."""
    with path.open(encoding=file_encoding(path), newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            missing = set(columns) - set(reader.fieldnames or [])
            if missing:
                raise error(
                    f"{path.name}：缺少列 {', '.join(sorted(missing))}。需要表头 {header}；"
                    f"现有列：{', '.join(reader.fieldnames or []) or '无'}。"
                )
            for row in reader:
                yield reader.line_num, row
        except UnicodeDecodeError as err:
            raise error(f"{path.name}：第 {reader.line_num + 1} 行附近的字符无法识别（不是 UTF-8、GBK 或 UTF-16"
                        "文本）：请在 Excel 中另存为“CSV UTF-8”后再导入。") from err


def import_labels_csv(session: Session, path: Path, *, user_id: int | None = None) -> LabelImport:
    """Import a labelled CSV (columns text,label[,category]); re-importing changes nothing."""
    if not path.is_file():
        raise NotFound(f"找不到文件 {path}")
    result = LabelImport()
    for line, row in csv_rows(path, ("text", "label"), "text,label（可选 category）"):
        text = (row.get("text") or "").strip()
        if not text:
            result.errors.append(f"第 {line} 行：text 为空")
            continue
        if len(text) > MAX_LABEL_TEXT:
            result.errors.append(f"第 {line} 行：text 超过 {MAX_LABEL_TEXT} 字")
            continue
        try:
            label = parse_label(row.get("label"))
            category = check_category(row.get("category"))
        except InvalidInput as err:
            result.errors.append(f"第 {line} 行：{err}")
            continue
        key = f"import:{text_key(text)}:{label}"
        changed = _upsert(session, dedup_key=key, text=text, label=label, origin="import", user_id=user_id,
                          category=category)
        if changed:
            result.new += 1
        else:
            result.unchanged += 1
    return result


@dataclass
class LabelConflict:
    text_hash: str
    text: str
    labels: dict[int, int]  # label -> how many verdicts
    origins: list[str]


def label_conflicts(session: Session) -> list[LabelConflict]:
    """Texts that were judged both rumor and not rumor."""
    hashes = select(Label.text_hash).group_by(Label.text_hash).having(func.count(func.distinct(Label.label)) > 1)
    rows = session.execute(
        select(Label.text_hash, Label.text, Label.label, Label.origin).where(Label.text_hash.in_(hashes))
        .order_by(Label.text_hash, Label.id)
    ).all()
    out: dict[str, LabelConflict] = {}
    for text_hash, text, label, origin in rows:
        c = out.setdefault(text_hash, LabelConflict(text_hash, text, {}, []))
        c.labels[label] = c.labels.get(label, 0) + 1
        if origin not in c.origins:
            c.origins.append(origin)
    return list(out.values())


def training_labels(session: Session) -> tuple[list[str], list[int], list[LabelConflict]]:
    """One (text, label) per distinct text whose verdicts agree, plus the conflicts left out."""
    conflicts = label_conflicts(session)
    skip = {c.text_hash for c in conflicts}
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    for text_hash, text, label in session.execute(
        select(Label.text_hash, Label.text, Label.label).order_by(Label.id)
    ):
        if text_hash in skip or text_hash in seen:
            continue
        seen.add(text_hash)
        texts.append(text)
        labels.append(label)
    return texts, labels, conflicts


@dataclass
class QueueItem:
    post_id: int
    text: str
    rumor_probability: float
    uncertainty: float
    reach: int
    priority: float


def active_learning_queue(session: Session, *, model_version_id: int | None = None, limit: int = 50,
                          offset: int = 0, band: tuple[float, float] = (0.15, 0.85)) -> tuple[list[QueueItem], int]:
    """Unlabelled texts the model is least sure about, weighted by how far their story spread.

    priority = uncertainty x (1 + ln(1 + posts in the story + groups reached)), where
    uncertainty = 1 - |2p - 1| (1 at p = 0.5, 0 at p = 0 or 1). A label is a verdict on a text
    (`text_key`), so a text appears once (its highest-priority copy: one notice copied by two
    sites is one question) and not at all once any copy of it is labelled.
    """
    labelled = select(Label.post_id).where(Label.post_id.is_not(None))
    labelled_texts = set(session.scalars(select(Label.text_hash)))
    stmt = (
        select(PostScore.post_id, PostScore.rumor_probability, Post.raw_text,
               func.coalesce(Story.post_count, 1), func.coalesce(Story.group_count, 0))
        .join(Post, Post.id == PostScore.post_id)
        .outerjoin(Story, Story.id == Post.story_id)
        .where(PostScore.rumor_probability.between(*band), PostScore.post_id.not_in(labelled))
    )
    if model_version_id is not None:
        stmt = stmt.where(PostScore.model_version_id == model_version_id)
    best: dict[str, QueueItem] = {}
    key_of: dict[str, str] = {}  # copies repeat the same raw text: normalise it once
    for post_id, p, text, posts, groups in session.execute(stmt.limit(20_000)):
        key = key_of.get(text)
        if key is None:
            key = key_of[text] = text_key(text)
        if key in labelled_texts:
            continue
        uncertainty = 1.0 - abs(2.0 * p - 1.0)
        reach = int(posts) + int(groups)
        item = QueueItem(post_id, text, p, uncertainty, reach, uncertainty * (1.0 + math.log1p(reach)))
        kept = best.get(key)
        if kept is None or _queue_order(item) < _queue_order(kept):
            best[key] = item
    items = sorted(best.values(), key=_queue_order)
    return items[offset:offset + limit], len(items)


def _queue_order(item: QueueItem) -> tuple[float, int]:
    return -item.priority, item.post_id
