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
from core.ingest import content_hash
from core.privacy import mask_personal_data
from core.tables import Label, LabelEvent, Post, PostScore, Story, User, utcnow
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


def _event(session: Session, *, action: str, text_hash: str, label_id: int | None,
           old: tuple[int | None, str | None] = (None, None), new: tuple[int | None, str | None] = (None, None),
           user_id: int | None = None) -> None:
    session.add(LabelEvent(label_id=label_id, text_hash=text_hash, action=action, old_label=old[0],
                           new_label=new[0], old_category=old[1], new_category=new[1], user_id=user_id))


def _set(session: Session, row: Label, label: int, category: str | None, *, action: str,
         user_id: int | None) -> bool:
    """Change a label's verdict in place and record it in the history; True when it changed."""
    if row.label == label and row.category == category:
        return False
    _event(session, action=action, text_hash=row.text_hash, label_id=row.id, old=(row.label, row.category),
           new=(label, category), user_id=user_id)
    row.label, row.category, row.updated_at = label, category, utcnow()
    return True


def check_role(role: str | None) -> str | None:
    """A person's verdict on what a post does (nlp.roles.ROLES), or None. Only a person's: a label
    never copies the role model's own guess, or that model would learn from itself."""
    role = (role or "").strip() or None
    if role is None:
        return None
    from nlp.roles import ROLE_ZH, ROLES

    by_zh = {zh: r for r, zh in ROLE_ZH.items()}
    role = by_zh.get(role, role)
    if role not in ROLES:
        raise InvalidInput(f"作用“{role}”无法识别；可用：{'、'.join(f'{r}（{ROLE_ZH[r]}）' for r in ROLES)}")
    return role


def _upsert(session: Session, *, dedup_key: str, text: str, label: int, origin: str,
            post_id: int | None = None, alert_id: int | None = None, user_id: int | None = None,
            category: str | None = None, role: str | None = None) -> bool:
    """Insert or correct one label; True when it was new or changed. Both are recorded in the
    label history (`label_events`)."""
    row = session.scalar(select(Label).where(Label.dedup_key == dedup_key))
    if row is not None:
        changed = _set(session, row, label, category, action="corrected", user_id=user_id)
        if role is not None and row.role != role:
            row.role, changed = role, True
        return changed
    row = Label(dedup_key=dedup_key, text=text, text_hash=text_key(text), label=label, origin=origin,
                post_id=post_id, alert_id=alert_id, user_id=user_id, category=category, role=role)
    session.add(row)
    session.flush()
    _event(session, action="created", text_hash=row.text_hash, label_id=row.id, new=(label, category),
           user_id=user_id)
    return True


def post_label_key(post_id: int, user_id: int | None, origin: str = "manual") -> str:
    """One label per user, post and origin: labelling the same post again replaces it."""
    return f"{origin}:post{post_id}:user{user_id or 0}"


def label_post(session: Session, *, post_id: int, label: int, user_id: int | None,
               origin: str = "manual", category: str | None = None, role: str | None = None) -> Label:
    """An analyst's verdict on a stored post (one per user and post; labelling again replaces it)."""
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound(f"帖子 {post_id} 不存在")
    if label not in (0, 1):
        raise InvalidInput("标注只能是 1（谣言）或 0（非谣言）")
    category, role = check_category(category), check_role(role)
    key = post_label_key(post_id, user_id, origin)
    _upsert(session, dedup_key=key, text=post.raw_text, label=label, origin=origin, post_id=post_id,
            user_id=user_id, category=category, role=role)
    return session.scalars(select(Label).where(Label.dedup_key == key)).one()


def clear_post_label(session: Session, *, post_id: int, user_id: int | None, origin: str = "manual") -> bool:
    """Withdraw a user's own verdict on a post; True when there was one (clearing twice is a no-op)."""
    row = session.scalar(select(Label).where(Label.dedup_key == post_label_key(post_id, user_id, origin)))
    if row is None:
        return False
    _event(session, action="deleted", text_hash=row.text_hash, label_id=row.id, old=(row.label, row.category),
           user_id=user_id)
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
    """Import a labelled CSV (columns text,label[,category][,role]); re-importing changes nothing."""
    if not path.is_file():
        raise NotFound(f"找不到文件 {path}")
    result = LabelImport()
    seen: dict[str, tuple[int, int]] = {}  # text key -> (line, label) within this file
    for line, row in csv_rows(path, ("text", "label"), "text,label（可选 category）"):
        # masked as every post is (core.ingest): no raw phone, ID or QQ number in the labels table
        written = (row.get("text") or "").strip()
        text = mask_personal_data(written)
        if not text:
            result.errors.append(f"第 {line} 行：text 为空")
            continue
        if len(text) > MAX_LABEL_TEXT:
            result.errors.append(f"第 {line} 行：text 超过 {MAX_LABEL_TEXT} 字")
            continue
        try:
            label = parse_label(row.get("label"))
            category = check_category(row.get("category"))
            role = check_role(row.get("role"))
        except InvalidInput as err:
            result.errors.append(f"第 {line} 行：{err}")
            continue
        first = seen.setdefault(text_key(text), (line, label))
        if first[1] != label:  # one file cannot say both: neither row silently wins
            result.errors.append(f"第 {line} 行：与第 {first[0]} 行是同一文本但结论相反，未导入")
            continue
        changed = _import_one(session, text, label, category, user_id, role, written=written)
        if changed:
            result.new += 1
        else:
            result.unchanged += 1
    return result


def _import_one(session: Session, text: str, label: int, category: str | None, user_id: int | None,
                role: str | None = None, *, written: str | None = None) -> bool:
    """One imported verdict per text: a re-import with another label corrects it (recorded in the
    history) instead of adding a second, conflicting row. ``text`` is masked; ``written`` is the
    text as the file had it (a post's content hash is of its text before masking)."""
    key = text_key(text)
    row = session.scalar(select(Label).where(Label.origin == "import", Label.text_hash == key).order_by(Label.id))
    if row is not None:
        changed = _set(session, row, label, category, action="corrected", user_id=user_id)
        if role is not None and row.role != role:
            row.role, changed = role, True
        if row.post_id is None:
            row.post_id = _post_with_text(session, written or text, text)
        return changed
    return _upsert(session, dedup_key=f"import:{key}", text=text, label=label, origin="import", user_id=user_id,
                   category=category, post_id=_post_with_text(session, written or text, text), role=role)


def _post_with_text(session: Session, *texts: str) -> int | None:
    """A stored post whose text is exactly one of ``texts`` (untitled posts, by their indexed
    content hash), so an imported label shows, and can be corrected, where that post is shown."""
    hashes = list(dict.fromkeys(content_hash(t) for t in texts))
    return session.scalar(select(func.min(Post.id)).where(Post.content_hash.in_(hashes)))


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
                          offset: int = 0, band: tuple[float, float] = (0.15, 0.85),
                          reach_weight: float = 1.0) -> tuple[list[QueueItem], int]:
    """Unlabelled texts the model is least sure about, weighted by how far their story spread.

    priority = uncertainty x (1 + w ln(1 + posts in the story + groups reached)), where
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
        item = QueueItem(post_id, text, p, uncertainty, reach, uncertainty * (1.0 + reach_weight * math.log1p(reach)))
        kept = best.get(key)
        if kept is None or _queue_order(item) < _queue_order(kept):
            best[key] = item
    items = sorted(best.values(), key=_queue_order)
    return items[offset:offset + limit], len(items)


def _queue_order(item: QueueItem) -> tuple[float, int]:
    return -item.priority, item.post_id


# ----------------------------------------------------------------------------- labels as data


@dataclass
class LabelFilters:
    origin: str | None = None  # review | manual | import
    label: int | None = None
    conflicts_only: bool = False
    q: str | None = None  # words the text contains
    post_id: int | None = None


def _filtered(filters: LabelFilters) -> Any:
    stmt = select(Label)
    if filters.origin:
        stmt = stmt.where(Label.origin == filters.origin)
    if filters.label is not None:
        stmt = stmt.where(Label.label == filters.label)
    if filters.post_id is not None:
        stmt = stmt.where(Label.post_id == filters.post_id)
    if filters.q:
        stmt = stmt.where(Label.text.contains(filters.q.strip(), autoescape=True))
    if filters.conflicts_only:
        hashes = select(Label.text_hash).group_by(Label.text_hash).having(func.count(func.distinct(Label.label)) > 1)
        stmt = stmt.where(Label.text_hash.in_(hashes))
    return stmt


def list_labels(session: Session, filters: LabelFilters | None = None, *, limit: int = 50,
                offset: int = 0) -> tuple[list[Label], int]:
    """Labels, newest first, with the total for the filters."""
    stmt = _filtered(filters or LabelFilters())
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = list(session.scalars(stmt.order_by(Label.id.desc()).limit(limit).offset(offset)))
    return rows, total


def get_label(session: Session, label_id: int) -> Label:
    row = session.get(Label, label_id)
    if row is None:
        raise NotFound(f"标注 {label_id} 不存在")
    return row


_UNSET: Any = object()


def correct_label(session: Session, label_id: int, *, label: int | None = None, category: Any = _UNSET,
                  user_id: int | None = None) -> Label:
    """Correct a label's verdict and/or category; the earlier value stays in the history."""
    row = get_label(session, label_id)
    if label is not None and label not in (0, 1):
        raise InvalidInput("标注只能是 1（谣言）或 0（非谣言）")
    new_category = row.category if category is _UNSET else check_category(category)
    _set(session, row, row.label if label is None else label, new_category, action="corrected", user_id=user_id)
    session.flush()
    return row


def delete_label(session: Session, label_id: int, *, user_id: int | None = None) -> None:
    """Delete a label (its history stays)."""
    row = get_label(session, label_id)
    _event(session, action="deleted", text_hash=row.text_hash, label_id=row.id, old=(row.label, row.category),
           user_id=user_id)
    session.delete(row)
    session.flush()


def find_text_hash(session: Session, prefix: str) -> str:
    """The full text hash a prefix (at least 8 characters, as the CLI shows it) stands for."""
    prefix = prefix.strip().lower()
    if len(prefix) < 8:
        raise InvalidInput("文本编号至少给出前 8 位")
    found = list(session.scalars(select(Label.text_hash).where(Label.text_hash.startswith(prefix)).distinct().limit(2)))
    if not found:
        raise NotFound(f"没有编号以 {prefix} 开头的标注文本")
    if len(found) > 1:
        raise InvalidInput(f"编号 {prefix} 对应多条文本：请多给几位")
    return found[0]


def resolve_conflict(session: Session, text_hash: str, *, label: int, user_id: int | None = None) -> int:
    """Decide a conflict: every label on the text takes the chosen verdict (recorded as
    ``resolved`` in the history). Returns how many labels changed."""
    if label not in (0, 1):
        raise InvalidInput("标注只能是 1（谣言）或 0（非谣言）")
    rows = list(session.scalars(select(Label).where(Label.text_hash == text_hash)))
    if not rows:
        raise NotFound("没有这条文本的标注")
    changed = sum(_set(session, r, label, r.category, action="resolved", user_id=user_id) for r in rows)
    session.flush()
    return changed


@dataclass
class BulkItem:
    post_id: int
    label: int
    category: str | None = None
    role: str | None = None


def label_posts(session: Session, items: list[BulkItem], *, user_id: int | None) -> list[Label]:
    """Label many posts in one call (each as :func:`label_post`: labelling again replaces)."""
    return [label_post(session, post_id=i.post_id, label=i.label, user_id=user_id, category=i.category, role=i.role)
            for i in items]


def label_history(session: Session, label_id: int) -> list[LabelEvent]:
    """Every change of a label's text (all of its labels: a correction of a copy shows too)."""
    row = session.get(Label, label_id)
    text_hash = row.text_hash if row is not None else session.scalar(
        select(LabelEvent.text_hash).where(LabelEvent.label_id == label_id).limit(1))
    if text_hash is None:
        raise NotFound(f"标注 {label_id} 不存在")
    return list(session.scalars(select(LabelEvent).where(LabelEvent.text_hash == text_hash)
                                .order_by(LabelEvent.id)))


EXPORT_COLUMNS = ("id", "text", "label", "category", "role", "origin", "post_id", "user", "created_at", "updated_at")


def export_rows(session: Session, filters: LabelFilters | None = None) -> Iterator[dict[str, Any]]:
    """Labels as CSV rows (the columns of :data:`EXPORT_COLUMNS`); `text,label,category` re-import as they are."""
    names = {uid: name for uid, name in session.execute(select(User.id, User.username))}
    stmt = _filtered(filters or LabelFilters()).order_by(Label.id)
    for row in session.scalars(stmt.execution_options(yield_per=1000)):
        yield {"id": row.id, "text": row.text, "label": row.label, "category": row.category or "",
               "role": row.role or "", "origin": row.origin, "post_id": row.post_id or "",
               "user": names.get(row.user_id, "") if row.user_id else "",
               "created_at": row.created_at.isoformat(timespec="seconds"),
               "updated_at": row.updated_at.isoformat(timespec="seconds") if row.updated_at else ""}


def write_export(session: Session, handle: Any, filters: LabelFilters | None = None) -> int:
    """Write the labels as CSV to an open text handle; returns how many."""
    writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    n = 0
    for n, row in enumerate(export_rows(session, filters), start=1):  # noqa: B007
        writer.writerow(row)
    return n
