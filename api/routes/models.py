"""Model versions (recalibrate, promote, roll back), scoring with the active model, labels for retraining."""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, File, Path, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AnalystUser, SessionDep, StaffUser
from api.pagination import Page, PageDep
from core.tables import ModelVersion
from nlp import labels as label_service
from nlp import registry, retrain
from nlp.cues import term_label

router = APIRouter(tags=["models"])


class ModelVersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    version: str
    status: str
    metrics: dict[str, Any]
    trained_at: dt.datetime | None
    promoted_at: dt.datetime | None
    note: str | None


class PromoteBody(BaseModel):
    force: bool = False
    reason: Annotated[str | None, Field(max_length=1000)] = None


class PromoteResult(BaseModel):
    active: ModelVersionPublic
    evalset_size: int | None
    candidate_macro_f1: float | None
    previous_macro_f1: float | None


class ScoreBody(BaseModel):
    texts: Annotated[list[Annotated[str, Field(max_length=20_000)]], Field(min_length=1, max_length=500)]
    channel: Annotated[Literal["web", "chat"], Field(description="按哪个渠道的谣言占比换算概率")] = "chat"


class Scored(BaseModel):
    rumor_probability: Annotated[float, Field(description="按渠道估计的谣言占比换算后的概率（无法判断时为该占比）")]
    raw_score: Annotated[float, Field(description="模型原始分（训练数据的谣言占比下）")]
    label: Annotated[int, Field(description="1 疑似谣言，0 否，-1 无法判断")]
    abstain_reason: str | None = None
    top_terms: list[tuple[str, float]]


class ScoreResult(BaseModel):
    model_version: str
    items: list[Scored]


class LabelBody(BaseModel):
    post_id: Annotated[int, Field(ge=1, le=2**62)]
    label: Annotated[int, Field(ge=0, le=1, description="1 谣言，0 非谣言")]
    category: Annotated[str | None, Field(max_length=50)] = None
    role: Annotated[Literal["claim", "question", "reaction", "refutation", "notice", "complaint", "other"] | None,
                    Field(description="这条帖子的作用（人工判断），供作用模型学习")] = None


class LabelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    post_id: int | None
    label: int
    origin: str
    created_at: dt.datetime
    text: str
    text_hash: str
    category: str | None
    role: str | None
    user_id: int | None
    updated_at: dt.datetime | None


class LabelUpdate(BaseModel):
    """A correction: the new verdict and/or category (omitted fields stay as they are)."""

    model_config = ConfigDict(extra="forbid")
    label: Annotated[int | None, Field(ge=0, le=1, description="1 谣言，0 非谣言")] = None
    category: Annotated[str | None, Field(max_length=50)] = None


class BulkLabelBody(BaseModel):
    items: Annotated[list[LabelBody], Field(min_length=1, max_length=500)]


class ResolveBody(BaseModel):
    label: Annotated[int, Field(ge=0, le=1, description="选定的结论：1 谣言，0 非谣言")]


class ResolveResult(BaseModel):
    text_hash: str
    label: int
    changed: int


class LabelEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    label_id: int | None
    action: str
    old_label: int | None
    new_label: int | None
    old_category: str | None
    new_category: str | None
    user_id: int | None
    at: dt.datetime


class LabelImportResult(BaseModel):
    new: int
    unchanged: int
    errors: list[str]


class ConflictPublic(BaseModel):
    text_hash: str
    text: str
    rumor_votes: int
    not_rumor_votes: int
    origins: list[str]


class QueueItemPublic(BaseModel):
    post_id: int
    text: str
    rumor_probability: float
    reach: int
    priority: float


@router.get("/models", response_model=Page[ModelVersionPublic], summary="模型版本列表")
def list_models(_: AnalystUser, session: SessionDep, page: PageDep) -> Page[ModelVersionPublic]:
    versions = registry.list_versions(session)
    chunk = versions[page.offset:page.offset + page.page_size]
    return Page(items=[ModelVersionPublic.model_validate(v) for v in chunk], total=len(versions),
                page=page.page, page_size=page.page_size)


class ModelEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    version: str
    action: str
    previous_version: str | None
    reason: str | None
    detail: dict[str, Any]
    user_id: int | None
    at: dt.datetime


@router.get("/models/compare", summary="比较两个模型版本（只读，只用两者都没训练过的评估标注）")
def compare_models(
    _: AnalystUser, session: SessionDep,
    candidate: Annotated[str, Query(max_length=100, description="候选版本")],
    active: Annotated[str | None, Query(max_length=100, description="对照版本，默认为在用版本")] = None,
) -> dict[str, Any]:
    """Both versions on the fixed evaluation set's texts that neither was trained on: n, a paired
    bootstrap interval of the macro-F1 difference, per category/source/channel, the texts they
    disagree on, calibration. Nothing is written."""
    cmp = registry.compare_versions(session, candidate, active)
    return cmp.as_dict() | {"sentence": cmp.sentence(), "refusal": registry.gate(cmp)}


@router.get("/models/history", response_model=list[ModelEventPublic], summary="模型操作记录")
def model_history(_: AnalystUser, session: SessionDep) -> list[ModelEventPublic]:
    return [ModelEventPublic.model_validate(e) for e in registry.model_history(session)]


@router.delete("/models/{version}", status_code=204, summary="删除从未启用过的候选版本")
def delete_model(version: Annotated[str, Path(max_length=100)], user: AnalystUser, session: SessionDep) -> Response:
    registry.delete_version(session, version, user_id=user.id)
    return Response(status_code=204)


@router.post("/models/{version}/promote", response_model=PromoteResult, summary="启用模型版本（评估更差时拒绝）")
def promote_model(version: str, body: PromoteBody, user: AnalystUser, session: SessionDep) -> PromoteResult:
    row, comparison = registry.promote(session, version, force=body.force, reason=body.reason, user_id=user.id)
    return PromoteResult(active=ModelVersionPublic.model_validate(row),
                         evalset_size=comparison.n if comparison else None,
                         candidate_macro_f1=comparison.candidate["macro_f1"] if comparison else None,
                         previous_macro_f1=comparison.active["macro_f1"] if comparison else None)


@router.post("/models/recalibrate", response_model=ModelVersionPublic, status_code=201,
             summary="用本单位的标注重新校准当前模型（生成候选版本）")
def recalibrate_model(user: AnalystUser, session: SessionDep) -> ModelVersionPublic:
    """Keeps the active model's weights and refits its rumor-probability sigmoid on the database's
    labels outside the fixed evaluation set (at least 20 per class); the result is a candidate,
    promoted like any other. Same as `yuqing recalibrate --include-db-labels`."""
    result = retrain.recalibrate_candidate(session, include_db_labels=True, user_id=user.id)
    return ModelVersionPublic.model_validate(registry.get_version(session, result.version))


@router.post("/models/rollback", response_model=ModelVersionPublic, summary="回滚到上一个模型版本")
def rollback_model(user: AnalystUser, session: SessionDep) -> ModelVersionPublic:
    return ModelVersionPublic.model_validate(registry.rollback(session, user_id=user.id))


class CalibrationPublic(BaseModel):
    kind: Annotated[str, Field(description="heldout：模型留出数据的校准；labels：按本渠道审核结论拟合")]
    a: float
    b: float
    n_labels: int
    n_rumors: int
    description: str


class PrevalencePublic(BaseModel):
    channel: Annotated[str, Field(description="web、chat 或 all（合并）")]
    estimate: float
    lower: float
    upper: float
    method: str
    n: int
    n_labels: int
    threshold: float
    target_precision: float
    window_start: dt.datetime
    window_end: dt.datetime
    created_at: dt.datetime
    calibration: CalibrationPublic | None
    too_uncertain: Annotated[bool, Field(description="90% 区间上下限相差超过 2.25 倍：可判断的帖子太少，估计仅供参考")]
    description: str


@router.get("/models/prevalence", response_model=list[PrevalencePublic], summary="各渠道的谣言占比估计与校准")
def prevalence_estimates(_: StaffUser, session: SessionDep) -> list[PrevalencePublic]:
    """The latest rumor-share estimate per channel (web, chat, all) with its interval, the
    calibration map its channel's scores went through, and the threshold it implies."""
    from nlp.channel_calibration import CalibrationMap
    from nlp.prevalence_store import calibration_zh, current, describe, too_uncertain

    out = []
    for ch, e in current(session).items():
        cal = None
        if ch != "all":
            m = CalibrationMap.from_json(e.calibration)
            cal = CalibrationPublic(kind=m.kind, a=m.a, b=m.b, n_labels=m.n_labels, n_rumors=m.n_rumors,
                                    description=calibration_zh(e))
        out.append(PrevalencePublic(
            channel=ch, estimate=e.estimate, lower=e.lower, upper=e.upper, method=e.method, n=e.n,
            n_labels=e.n_labels, threshold=e.threshold, target_precision=e.target_precision,
            window_start=e.window_start, window_end=e.window_end, created_at=e.created_at, calibration=cal,
            too_uncertain=too_uncertain(e),
            description=describe(e)))
    return out


@router.post("/models/score", response_model=ScoreResult, summary="用当前模型给文本打谣言分")
def score_texts(body: ScoreBody, _: StaffUser, session: SessionDep) -> ScoreResult:
    """The same decision the analysis makes: the probability adjusted to the channel's estimated
    rumor share, the label at the current threshold, and no decision on texts the model cannot judge."""
    from nlp.abstain import REASON_ZH, load_abstainer
    from nlp.normalize import normalize
    from nlp.prevalence_store import decider_for

    version_id, model = registry.holder.get(session)
    row = session.get(ModelVersion, version_id)
    norms = [normalize(t) for t in body.texts]
    raw = model.predict_proba(norms)
    reasons = model.explain(norms, k=5)
    why_not = load_abstainer(row.path if row is not None else None).reasons(norms)
    q, labels = decider_for(session, version_id).decide(raw, [body.channel] * len(norms),
                                                        np.array([r is not None for r in why_not]))
    return ScoreResult(model_version=model.version, items=[
        Scored(rumor_probability=float(p), raw_score=float(r), label=int(lab),
               abstain_reason=REASON_ZH[w] if w else None,
               top_terms=[(term_label(term), weight) for term, weight in why])  # cues in Chinese
        for p, r, lab, w, why in zip(q, raw, labels, why_not, reasons, strict=True)
    ])


@router.post("/labels", response_model=LabelPublic, status_code=201, summary="给帖子打标注（分析员）")
def create_label(body: LabelBody, user: AnalystUser, session: SessionDep) -> LabelPublic:
    row = label_service.label_post(session, post_id=body.post_id, label=body.label, user_id=user.id,
                                   category=body.category, role=body.role)
    return LabelPublic.model_validate(row)


@router.post("/labels/import", response_model=LabelImportResult, summary="导入标注 CSV（text,label）")
def import_labels(user: AnalystUser, session: SessionDep,
                  file: Annotated[UploadFile, File(description="CSV（UTF-8 或 GBK），列 text,label")]
                  ) -> LabelImportResult:
    with tempfile.TemporaryDirectory() as tmp:
        path = FilePath(tmp) / "labels.csv"
        path.write_bytes(file.file.read(50 * 1024 * 1024))
        result = label_service.import_labels_csv(session, path, user_id=user.id)
    return LabelImportResult(new=result.new, unchanged=result.unchanged, errors=result.errors)


@router.get("/labels/conflicts", response_model=Page[ConflictPublic], summary="互相矛盾的标注")
def list_conflicts(_: AnalystUser, session: SessionDep, page: PageDep) -> Page[ConflictPublic]:
    conflicts = label_service.label_conflicts(session)
    chunk = conflicts[page.offset:page.offset + page.page_size]
    return Page(items=[ConflictPublic(text_hash=c.text_hash, text=c.text, rumor_votes=c.labels.get(1, 0), not_rumor_votes=c.labels.get(0, 0),
                                      origins=c.origins) for c in chunk],
                total=len(conflicts), page=page.page, page_size=page.page_size)


@router.get("/labels/queue", response_model=Page[QueueItemPublic], summary="主动学习：最值得标注的帖子")
def labelling_queue(_: AnalystUser, session: SessionDep, page: PageDep) -> Page[QueueItemPublic]:
    items, total = retrain.labelling_queue(session, limit=page.page_size, offset=page.offset)
    return Page(items=[QueueItemPublic(post_id=i.post_id, text=i.text, rumor_probability=i.rumor_probability,
                                       reach=i.reach, priority=i.priority) for i in items],
                total=total, page=page.page, page_size=page.page_size)


_HASH = Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="标注文本的编号（text_hash）")]


@router.get("/labels", response_model=Page[LabelPublic], summary="标注列表（可筛选）")
def list_labels(
    _: AnalystUser, session: SessionDep, page: PageDep,
    origin: Annotated[Literal["review", "manual", "import"] | None, Query(description="来源")] = None,
    label: Annotated[int | None, Query(ge=0, le=1)] = None,
    conflicts: Annotated[bool, Query(description="只看结论互相矛盾的文本")] = False,
    q: Annotated[str | None, Query(max_length=200)] = None,
    post_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Page[LabelPublic]:
    filters = label_service.LabelFilters(origin=origin, label=label, conflicts_only=conflicts, q=q, post_id=post_id)
    rows, total = label_service.list_labels(session, filters, limit=page.page_size, offset=page.offset)
    return Page(items=[LabelPublic.model_validate(r) for r in rows], total=total, page=page.page,
                page_size=page.page_size)


@router.get("/labels/export", summary="导出标注 CSV（UTF-8 带 BOM，Excel 可直接打开）",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_labels(_: AnalystUser, session: SessionDep) -> Response:
    buffer = io.StringIO()
    buffer.write("\ufeff")
    label_service.write_export(session, buffer)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="labels.csv"'})


@router.post("/labels/bulk", response_model=list[LabelPublic], status_code=201, summary="批量标注帖子")
def bulk_labels(body: BulkLabelBody, user: AnalystUser, session: SessionDep) -> list[LabelPublic]:
    items = [label_service.BulkItem(post_id=i.post_id, label=i.label, category=i.category, role=i.role)
             for i in body.items]
    return [LabelPublic.model_validate(r) for r in label_service.label_posts(session, items, user_id=user.id)]


@router.post("/labels/conflicts/{text_hash}/resolve", response_model=ResolveResult, summary="裁定矛盾的标注")
def resolve_conflict(text_hash: _HASH, body: ResolveBody, user: AnalystUser, session: SessionDep) -> ResolveResult:
    changed = label_service.resolve_conflict(session, text_hash, label=body.label, user_id=user.id)
    return ResolveResult(text_hash=text_hash, label=body.label, changed=changed)


@router.get("/labels/{label_id}", response_model=LabelPublic, summary="一条标注")
def get_label(label_id: Annotated[int, Path(ge=1, le=2**62)], _: AnalystUser, session: SessionDep) -> LabelPublic:
    return LabelPublic.model_validate(label_service.get_label(session, label_id))


@router.get("/labels/{label_id}/history", response_model=list[LabelEventPublic], summary="标注的修改记录")
def label_history(label_id: Annotated[int, Path(ge=1, le=2**62)], _: AnalystUser,
                  session: SessionDep) -> list[LabelEventPublic]:
    return [LabelEventPublic.model_validate(e) for e in label_service.label_history(session, label_id)]


@router.patch("/labels/{label_id}", response_model=LabelPublic, summary="更正标注（旧值记入修改记录）")
def correct_label(label_id: Annotated[int, Path(ge=1, le=2**62)], body: LabelUpdate, user: AnalystUser,
                  session: SessionDep) -> LabelPublic:
    changes: dict[str, Any] = {"label": body.label}
    if "category" in body.model_fields_set:
        changes["category"] = body.category
    row = label_service.correct_label(session, label_id, user_id=user.id, **changes)
    return LabelPublic.model_validate(row)


@router.delete("/labels/{label_id}", status_code=204, summary="删除标注（修改记录保留）")
def delete_label(label_id: Annotated[int, Path(ge=1, le=2**62)], user: AnalystUser, session: SessionDep) -> Response:
    label_service.delete_label(session, label_id, user_id=user.id)
    return Response(status_code=204)
