"""The model registry: versions on disk and in ``model_versions``, promotion, rollback, hot swap.

- The shipped model lives read-only under ``<model_dir>/rumor/<version>/`` (in the repository);
  models trained here go to ``<data_dir>/models/rumor/<version>/``. The database says which
  version is active; exactly one per name is.
- Promotion compares the candidate with the active model on the texts of the registry's fixed
  evaluation set that neither was trained on (:mod:`nlp.model_compare`), with n and a bootstrap
  interval; it does not decide below a minimum n and refuses a candidate only when it is worse
  beyond the interval, unless forced with a reason.
- Every transition is appended to ``model_events`` (who, when, why); notes are never overwritten.
- :class:`ModelHolder` gives a running process the active model and switches to a newly
  promoted one without a restart: the swap is one reference assignment, so scoring that already
  holds the old model finishes on it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput, NotFound
from core.settings import get_settings
from core.tables import ModelEvent, ModelVersion, utcnow
from nlp.model_compare import MIN_EVAL_N, MIN_PER_CLASS, Comparison, compare
from nlp.scoring import ModelFileError, RumorScorer, load_scorer

log = logging.getLogger(__name__)

MODEL_NAME = "rumor"


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


def record_event(session: Session, version: str, action: str, *, name: str = MODEL_NAME,
                 previous: str | None = None, reason: str | None = None, detail: dict[str, Any] | None = None,
                 user_id: int | None = None) -> None:
    """Append one transition to the registry's history (``model_events``)."""
    session.add(ModelEvent(name=name, version=version, action=action, previous_version=previous, reason=reason,
                           detail=detail or {}, user_id=user_id, at=utcnow()))


def model_history(session: Session, name: str = MODEL_NAME, limit: int = 200) -> list[ModelEvent]:
    """The registry's transitions, newest first."""
    return list(session.scalars(select(ModelEvent).where(ModelEvent.name == name)
                                .order_by(ModelEvent.id.desc()).limit(limit)))


def register_version(session: Session, path: Path, *, name: str = MODEL_NAME, status: str = "candidate",
                     user_id: int | None = None, note: str | None = None,
                     action: str = "registered") -> ModelVersion:
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
    record_event(session, version, action, name=name, reason=note, user_id=user_id,
                 detail={"status": status, "path": row.path})
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
    from nlp.classifier import default_model_path  # scikit-learn: only when a model is needed

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


def compare_versions(session: Session, candidate: str, active: str | None = None, *, name: str = MODEL_NAME,
                     details: bool = True) -> Comparison:
    """``candidate`` against ``active`` (default: the active version) on the evaluation texts
    neither was trained on: a dry run, nothing is written."""
    from nlp.retrain import evalset_path

    a = get_version(session, candidate, name)
    b = get_version(session, active, name) if active else active_version(session, name)
    return compare(session, a, b, evalset_path(name), details=details)


def gate(comparison: Comparison) -> str | None:
    """Why the candidate must not be promoted without --force, or None when it may be."""
    if not comparison.enough:
        return (f"评估集中两个模型都没训练过的标注只有 {comparison.n} 条（谣言 {comparison.per_class[0]} / "
                f"非谣言 {comparison.per_class[1]}），少于作出判断所需的 {MIN_EVAL_N} 条（每类至少 "
                f"{MIN_PER_CLASS} 条）：大约还需要 {comparison.labels_needed()} 条审核或人工标注（约五分之一进入评估集）。"
                "确需启用请加 --force 并用 --reason 说明理由")
    if comparison.clearly_worse:
        return (f"候选模型 {comparison.candidate_version} 明显更差，未启用。{comparison.sentence()}。"
                "确需启用请加 --force 并用 --reason 说明理由")
    return None


def promote(session: Session, version: str, *, force: bool = False, reason: str | None = None,
            user_id: int | None = None, name: str = MODEL_NAME) -> tuple[ModelVersion, Comparison | None]:
    """Make ``version`` the active model, unless the fair comparison says no (see :func:`gate`)."""
    candidate = get_version(session, version, name)
    current = active_version(session, name)
    if candidate.id == current.id:
        raise Conflict(f"模型 {version} 已经是当前使用的版本")
    if force and not (reason and reason.strip()):
        raise InvalidInput("强制启用必须说明理由（--reason）")
    comparison = compare_versions(session, candidate.version, current.version, name=name, details=False)
    refusal = gate(comparison)
    if refusal and not force:
        raise (InvalidInput if not comparison.enough else Conflict)(refusal)
    now = utcnow()
    current.status = "retired"
    candidate.status, candidate.promoted_at, candidate.promoted_by = "active", now, user_id
    candidate.metrics = {**candidate.metrics, "evalset_at_promotion": comparison.candidate,
                         "previous_on_evalset": comparison.active, "comparison_n": comparison.n,
                         "comparison_ci": [comparison.ci_low, comparison.ci_high]}
    record_event(session, candidate.version, "forced" if refusal else "promoted", name=name,
                 previous=current.version, reason=reason if force else None, user_id=user_id,
                 detail={"n": comparison.n, "delta": comparison.delta,
                         "ci": [comparison.ci_low, comparison.ci_high], "refusal_overridden": refusal})
    session.flush()
    log.info("model promoted", extra={"version": version, "forced": bool(refusal)})
    return candidate, comparison


def delete_version(session: Session, version: str, *, user_id: int | None = None, name: str = MODEL_NAME) -> None:
    """Delete a candidate that was never active: its row and its folder under this instance's
    registry (never the shipped model's folder). The history keeps the event."""
    import shutil

    row = get_version(session, version, name)
    if row.status != "candidate" or row.promoted_at is not None:
        raise Conflict(f"模型 {version} 曾经启用过（或正在使用），只能删除从未启用的候选版本：它要留作历史和回滚目标")
    folder = Path(row.path)
    folder = folder.parent if folder.is_file() else folder
    root = trained_dir(name).resolve()
    if folder.resolve().is_relative_to(root) and folder.resolve() != root:
        shutil.rmtree(folder, ignore_errors=True)
    record_event(session, version, "deleted", name=name, user_id=user_id, detail={"path": row.path})
    session.delete(row)
    session.flush()


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
    record_event(session, previous.version, "rolled_back", name=name, previous=current.version, user_id=user_id)
    session.flush()
    return previous


def active_count(session: Session, name: str = MODEL_NAME) -> int:
    return int(session.scalar(select(func.count()).select_from(ModelVersion)
                              .where(ModelVersion.name == name, ModelVersion.status == "active")) or 0)


def load_for_scoring(path: str | Path) -> RumorScorer:
    """A model for scoring: the fast reader (`nlp.scoring.load_scorer`, no scikit-learn), or
    `RumorModel.load` for a file layout it does not know (both enforce the same allowlist)."""
    try:
        return load_scorer(path)
    except ModelFileError as e:
        log.warning("fast model reader declined; loading with skops", extra={"path": str(path), "reason": str(e)})
        from nlp.classifier import RumorModel

        return RumorModel.load(path)


class ModelHolder:
    """The active model of a running process, switched without a restart when another is promoted.

    ``get(session)`` costs one small query; the model itself is loaded only when the active
    version changes. Loading happens before the swap, so callers never see a half-loaded model.
    """

    def __init__(self, name: str = MODEL_NAME) -> None:
        self.name = name
        self._current: tuple[int, str, RumorScorer] | None = None
        self._lock = threading.Lock()

    def get(self, session: Session) -> tuple[int, RumorScorer]:
        row = active_version(session, self.name)
        current = self._current
        if current is not None and current[:2] == (row.id, row.path):
            return current[0], current[2]
        with self._lock:
            if self._current is None or self._current[:2] != (row.id, row.path):
                model = load_for_scoring(row.path)
                self._current = (row.id, row.path, model)  # one assignment: the atomic switch
                log.info("active model loaded", extra={"version": row.version})
            return self._current[0], self._current[2]


#: One holder per process for the default model name.
holder = ModelHolder()


def load_active_model(session: Session) -> tuple[RumorScorer, int]:
    """The active rumor model and its ``model_versions`` id (the shipped one on a fresh database)."""
    version_id, model = holder.get(session)
    return model, version_id
