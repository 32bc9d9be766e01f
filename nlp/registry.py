"""The model registry: versions on disk and in ``model_versions``, promotion, rollback, hot swap.

- The shipped model lives read-only under ``<model_dir>/rumor/<version>/`` (in the repository);
  models trained here go to ``<data_dir>/models/rumor/<version>/``. The database says which
  version is active; exactly one per name is.
- Promotion compares the candidate with the active model on the registry's fixed evaluation set
  (see :mod:`nlp.retrain`) and refuses a worse candidate unless forced with a reason.
- :class:`ModelHolder` gives a running process the active model and switches to a newly
  promoted one without a restart: the swap is one reference assignment, so scoring that already
  holds the old model finishes on it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput, NotFound
from core.settings import get_settings
from core.tables import ModelVersion, utcnow
from nlp.classifier import RumorModel, default_model_path

log = logging.getLogger(__name__)

MODEL_NAME = "rumor"
#: A candidate may be this much worse (macro-F1 on the evaluation set) and still be promoted.
PROMOTION_TOLERANCE = 0.005


def trained_dir(name: str = MODEL_NAME) -> Path:
    """Where models trained on this instance are written."""
    return get_settings().data_dir / "models" / name


def _card(path: Path) -> dict[str, Any]:
    import json

    card_file = path / "card.json"
    return json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}


def _metrics(path: Path) -> dict[str, Any]:
    import json

    file = path / "metrics.json"
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}


def register_version(session: Session, path: Path, *, name: str = MODEL_NAME, status: str = "candidate",
                     user_id: int | None = None, note: str | None = None) -> ModelVersion:
    """Record a model directory in the database (idempotent by name + version)."""
    card = _card(path)
    version = str(card.get("version") or path.name)
    row = session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version))
    if row is not None:
        return row
    trained_at = card.get("trained_at")
    row = ModelVersion(
        name=name, version=version, path=str(path.resolve()), status=status, card=card,
        metrics=_metrics(path) or dict(card.get("metrics") or {}),
        reference_distribution=dict(card.get("reference_distribution") or {}),
        trained_at=_parse_time(trained_at), created_by=user_id, note=note,
        promoted_at=utcnow() if status == "active" else None, promoted_by=user_id if status == "active" else None,
    )
    session.add(row)
    session.flush()
    return row


def _parse_time(value: Any) -> Any:
    import datetime as dt

    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def ensure_registered(session: Session, name: str = MODEL_NAME) -> ModelVersion:
    """The active version; on a fresh database the shipped model is registered and activated."""
    active = session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.status == "active"))
    if active is not None:
        return active
    shipped = default_model_path()
    row = register_version(session, shipped, name=name, status="active", note="随软件发布的默认模型")
    if row.status != "active":  # registered before but nothing is active (e.g. all retired by hand)
        row.status, row.promoted_at = "active", utcnow()
    return row


def active_version(session: Session, name: str = MODEL_NAME) -> ModelVersion:
    return ensure_registered(session, name)


def list_versions(session: Session, name: str = MODEL_NAME) -> list[ModelVersion]:
    ensure_registered(session, name)
    return list(session.scalars(select(ModelVersion).where(ModelVersion.name == name)
                                .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())))


def get_version(session: Session, version: str, name: str = MODEL_NAME) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version))
    if row is None:
        raise NotFound(f"模型版本 '{version}' 不存在：用 `yuqing models list` 查看已有版本")
    return row


@dataclass
class Comparison:
    candidate: dict[str, float]
    active: dict[str, float]
    n: int

    @property
    def delta(self) -> float:
        return self.candidate["macro_f1"] - self.active["macro_f1"]


def compare_on_evalset(candidate: RumorModel, active: RumorModel, name: str = MODEL_NAME) -> Comparison:
    from nlp.classifier import evaluate
    from nlp.retrain import load_evalset

    texts, labels = load_evalset(name)
    if len(set(labels)) < 2:
        raise InvalidInput(
            f"评估集只有 {len(labels)} 条且不含两类标注，无法比较模型：先用 `yuqing train` 训练（会建立评估集），"
            "或用 --force 并说明理由"
        )
    return Comparison(evaluate(candidate, texts, labels), evaluate(active, texts, labels), len(labels))


def promote(session: Session, version: str, *, force: bool = False, reason: str | None = None,
            user_id: int | None = None, name: str = MODEL_NAME,
            tolerance: float = PROMOTION_TOLERANCE) -> tuple[ModelVersion, Comparison | None]:
    """Make ``version`` the active model, unless it is worse than the active one on the evaluation set."""
    candidate = get_version(session, version, name)
    current = active_version(session, name)
    if candidate.id == current.id:
        raise Conflict(f"模型 {version} 已经是当前使用的版本")
    if force and not (reason and reason.strip()):
        raise InvalidInput("强制启用必须说明理由（--reason）")
    comparison: Comparison | None = None
    try:
        comparison = compare_on_evalset(RumorModel.load(candidate.path), RumorModel.load(current.path), name)
    except InvalidInput:
        if not force:
            raise
    if comparison is not None and comparison.delta < -tolerance and not force:
        raise Conflict(
            f"候选模型 {version} 在评估集（{comparison.n} 条）上 macro-F1 为 {comparison.candidate['macro_f1']:.4f}，"
            f"低于当前模型 {current.version} 的 {comparison.active['macro_f1']:.4f}（容差 {tolerance}）：未启用。"
            "确需启用请加 --force 并用 --reason 说明理由"
        )
    now = utcnow()
    current.status = "retired"
    candidate.status, candidate.promoted_at, candidate.promoted_by = "active", now, user_id
    if comparison is not None:
        candidate.metrics = {**candidate.metrics, "evalset_at_promotion": comparison.candidate,
                             "previous_on_evalset": comparison.active}
    if force:
        candidate.note = f"强制启用：{reason}"
    session.flush()
    log.info("model promoted", extra={"version": version, "forced": force})
    return candidate, comparison


def rollback_target(session: Session, name: str = MODEL_NAME) -> ModelVersion | None:
    """The version :func:`rollback` would re-activate (the last one active before the current), if any."""
    current = active_version(session, name)
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.name == name, ModelVersion.status == "retired", ModelVersion.promoted_at.is_not(None),
               ModelVersion.id != current.id)
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc())
    )


def rollback(session: Session, *, user_id: int | None = None, name: str = MODEL_NAME) -> ModelVersion:
    """Re-activate the version that was active before the current one.

    The current version is marked ``rolled_back``: it is never a rollback target again (so two
    rollbacks walk back through history instead of toggling), but it can be promoted again.
    """
    current = active_version(session, name)
    previous = rollback_target(session, name)
    if previous is None:
        raise Conflict("没有可以回滚到的历史版本")
    current.status = "rolled_back"
    previous.status, previous.promoted_at, previous.promoted_by = "active", utcnow(), user_id
    previous.note = f"由 {current.version} 回滚"
    session.flush()
    return previous


def active_count(session: Session, name: str = MODEL_NAME) -> int:
    return int(session.scalar(select(func.count()).select_from(ModelVersion)
                              .where(ModelVersion.name == name, ModelVersion.status == "active")) or 0)


class ModelHolder:
    """The active model of a running process, switched without a restart when another is promoted.

    ``get(session)`` costs one small query; the model itself is loaded only when the active
    version changes. Loading happens before the swap, so callers never see a half-loaded model.
    """

    def __init__(self, name: str = MODEL_NAME) -> None:
        self.name = name
        self._current: tuple[int, str, RumorModel] | None = None
        self._lock = threading.Lock()

    def get(self, session: Session) -> tuple[int, RumorModel]:
        row = active_version(session, self.name)
        current = self._current
        if current is not None and current[:2] == (row.id, row.path):
            return current[0], current[2]
        with self._lock:
            if self._current is None or self._current[:2] != (row.id, row.path):
                model = RumorModel.load(row.path)
                self._current = (row.id, row.path, model)  # one assignment: the atomic switch
                log.info("active model loaded", extra={"version": row.version})
            return self._current[0], self._current[2]


#: One holder per process for the default model name.
holder = ModelHolder()


def load_active_model(session: Session) -> tuple[RumorModel, int]:
    """The active rumor model and its ``model_versions`` id (the shipped one on a fresh database)."""
    version_id, model = holder.get(session)
    return model, version_id
