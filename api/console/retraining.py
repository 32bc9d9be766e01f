"""The console's retraining pages: labelling posts, the active-learning list, recalibrating,
promoting and rolling back model versions. Routes stay thin: they call the same nlp functions as the API's /labels and
/models routes (``nlp.labels``, ``nlp.registry``) and read through :mod:`api.console.queries`.

Every action is a plain form POST with the session's CSRF token, answered by a redirect with a
message (works without JS on a slow office PC); promotion and rollback first show a confirmation
page instead of a script dialog.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import Response

from api.console import queries, services
from api.console.render import render
from api.console.web import (
    ConsolePageError,
    PageUser,
    back,
    check_csrf,
    committing,
    need_role,
    note_drift,
    safe_next,
)
from api.deps import RowId, SessionDep
from core.errors import NotFound

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf), Depends(note_drift)])

LABEL_PAGE_SIZE = 20
LABEL_ZH = {"1": "谣言", "0": "非谣言"}
NextField = Annotated[str | None, Form(max_length=2000)]
LabelId = Annotated[int, Path(ge=1, le=2**62)]


def _page_number(page: str) -> int:
    return max(1, min(int(page), 100_000)) if page.isdigit() else 1


# --------------------------------------------------------------------------- labels (nlp.labels)


@router.get("/labels")
def labels_page(request: Request, user: PageUser, session: SessionDep, page: str = "1", q: str = "") -> Response:
    """待标注: the posts the active model is least sure about, weighted by reach (as GET /api/v1/labels/queue)."""
    need_role(user, "analyst", "查看待标注帖子")
    page_no = _page_number(page)
    active = services.models().active_version(session)
    items, total = services.retraining().labelling_queue(session, limit=LABEL_PAGE_SIZE,
                                                         offset=(page_no - 1) * LABEL_PAGE_SIZE)
    posts = [{"id": i.post_id, "raw_text": i.text} for i in items]
    conflicts = services.labels().label_conflicts(session)
    q = q.strip()[:200].replace("\x00", "")
    labels, label_total = services.labels().list_labels(
        session, services.labels().LabelFilters(q=q or None), limit=LABEL_PAGE_SIZE)
    return render(request, "labels.html", {
        "nav": "labels", "items": items, "info": queries.label_info(session, posts), "total": total,
        "page": page_no, "pages": max(1, -(-total // LABEL_PAGE_SIZE)), "page_size": LABEL_PAGE_SIZE,
        "active": active, "conflicts": conflicts[:20], "conflict_total": len(conflicts), "can_label": True,
        "labels": labels, "label_total": label_total, "q": q,
    })


@router.post("/labels/resolve")
def resolve_conflict(user: PageUser, session: SessionDep, text_hash: Annotated[str, Form(max_length=64)] = "",
                     label: Annotated[str, Form(max_length=2)] = "") -> Response:
    """Decide a conflict: every label on that text takes the chosen verdict (as the API's resolve)."""
    need_role(user, "analyst", "裁定标注")
    if label not in LABEL_ZH:
        return back("/labels#conflicts", err="请用页面上的按钮选择“谣言”或“非谣言”。")
    with committing(session, "/labels#conflicts"):
        changed = services.labels().resolve_conflict(session, text_hash, label=int(label), user_id=user.id)
    return back("/labels#conflicts", msg=f"已裁定为「{LABEL_ZH[label]}」，更改了 {changed} 条标注")


@router.post("/labels/{label_id}/set")
def correct_label(label_id: LabelId, user: PageUser, session: SessionDep,
                  label: Annotated[str, Form(max_length=2)] = "") -> Response:
    need_role(user, "analyst", "更正标注")
    if label not in LABEL_ZH:
        return back("/labels#all-labels", err="请用页面上的按钮更正标注。")
    with committing(session, "/labels#all-labels"):
        services.labels().correct_label(session, label_id, label=int(label), user_id=user.id)
    return back("/labels#all-labels", msg=f"标注 {label_id} 已改为「{LABEL_ZH[label]}」（原结论记入修改记录）")


@router.post("/labels/{label_id}/delete")
def delete_label(label_id: LabelId, user: PageUser, session: SessionDep) -> Response:
    need_role(user, "analyst", "删除标注")
    with committing(session, "/labels#all-labels"):
        services.labels().delete_label(session, label_id, user_id=user.id)
    return back("/labels#all-labels", msg=f"已删除标注 {label_id}（修改记录保留）")


@router.get("/labels/export.csv")
def export_labels(user: PageUser, session: SessionDep) -> Response:
    need_role(user, "analyst", "导出标注")
    import io

    buffer = io.StringIO()
    buffer.write("\ufeff")  # Excel on Chinese Windows opens UTF-8 with a BOM as it is
    services.labels().write_export(session, buffer)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="labels.csv"'})


@router.post("/posts/{post_id}/label")
def label_post(post_id: RowId, user: PageUser, session: SessionDep,
               label: Annotated[str, Form(max_length=10)] = "", next: NextField = None) -> Response:
    """Label a post 谣言 (1) / 非谣言 (0), or clear one's own label ("clear"); labelling again replaces."""
    need_role(user, "analyst", "标注帖子")
    target = safe_next(next) if next else "/labels"
    svc = services.labels()
    if label != "clear" and label not in LABEL_ZH:
        return back(target, err="标注只能是“谣言”或“非谣言”，请用页面上的按钮。")
    with committing(session, target):
        if label == "clear":
            cleared = svc.clear_post_label(session, post_id=post_id, user_id=user.id)
            msg = f"已清除您对帖子 #{post_id} 的标注" if cleared else f"您没有标注过帖子 #{post_id}，无需清除"
        else:
            svc.label_post(session, post_id=post_id, label=int(label), user_id=user.id)
            msg = f"已将帖子 #{post_id} 标注为「{LABEL_ZH[label]}」"
    return back(target, msg=msg)


# --------------------------------------------------------------------------- model versions (nlp.registry)


@router.get("/models")
def models_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    need_role(user, "analyst", "查看模型")
    reg = services.models()
    rows = queries.models(session)
    active = [r for r in rows if r["model"].status == "active"]
    target = reg.rollback_target(session) if active else None
    return render(request, "models.html", {"nav": "models", "rows": rows, "active": active,
                                           "rollback_to": target, "drift_status": queries.drift(session),
                                           "history": queries.model_history(session),
                                           "prevalence": queries.prevalence(session)})


def _version_or_404(session: Any, version: str) -> Any:
    try:
        return services.models().get_version(session, version)
    except NotFound as err:
        raise ConsolePageError(404, str(err)) from err


def _promote_url(version: str) -> str:
    return f"/models/{quote(version, safe='')}/promote"


@router.get("/models/{version}/promote")
def promote_confirm(request: Request, version: str, user: PageUser, session: SessionDep,
                    refused: str = "") -> Response:
    """The confirmation step: what will change, and (after a refusal) the force option with a reason."""
    need_role(user, "analyst", "启用模型")
    candidate = _version_or_404(session, version)
    current = services.models().active_version(session)
    ctx = _comparison(session, candidate.version, current.version) if candidate.id != current.id else {}
    return render(request, "model_promote.html", {
        "nav": "models", "m": candidate, "current": current, "refused": refused == "1",
        "action": _promote_url(version), **ctx})


def _comparison(session: Any, candidate: str, active: str) -> dict[str, Any]:
    """The dry-run comparison for a template (``cmp``, ``sentence``), or why it could not run."""
    try:
        cmp = services.models().compare_versions(session, candidate, active)
    except FileNotFoundError:
        return {"compare_error": f"模型 {candidate} 或 {active} 的文件找不到，无法比较：请检查模型目录。"}
    return {"cmp": cmp.as_dict(), "sentence": cmp.sentence()}


@router.get("/models/compare")
def compare_page(request: Request, user: PageUser, session: SessionDep, candidate: str = "",
                 active: str = "") -> Response:
    """Two versions side by side on the evaluation texts neither was trained on; writes nothing."""
    need_role(user, "analyst", "比较模型")
    reg = services.models()
    a = _version_or_404(session, candidate) if candidate else None
    b = _version_or_404(session, active) if active else reg.active_version(session)
    ctx = _comparison(session, a.version, b.version) if a is not None and a.id != b.id else {}
    return render(request, "model_compare.html", {
        "nav": "models", "versions": [r["model"] for r in queries.models(session)], "a": a, "b": b, **ctx})


@router.post("/models/{version}/promote")
def promote(version: str, user: PageUser, session: SessionDep,
            force: Annotated[str, Form(max_length=5)] = "",
            reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    need_role(user, "analyst", "启用模型")
    forced, reason = force == "1", reason.strip()
    confirm = _promote_url(version) + "?refused=1"
    if forced and not reason:
        return back(confirm, err="强制启用必须填写理由（会记录在模型备注中）。")
    try:
        with committing(session, confirm):
            row, comparison = services.models().promote(session, version, force=forced, reason=reason or None,
                                                        user_id=user.id)
    except FileNotFoundError:
        session.rollback()
        return back(confirm, err=f"模型 {version} 或当前模型的文件找不到，无法比较：请检查模型目录或重新训练。")
    queries.forget_drift()
    msg = f"已启用模型 {row.version}，正在运行的服务会自动切换到新模型"
    if comparison is not None:
        msg += f"（{comparison.sentence()}）"
    if forced:
        msg += "；强制启用的理由已记录"
    return back("/models", msg=msg)


@router.post("/models/recalibrate")
def recalibrate(user: PageUser, session: SessionDep) -> Response:
    """A candidate with the active model's weights and its sigmoid refitted on this office's labels
    (`yuqing recalibrate --include-db-labels`); it is promoted like any other candidate."""
    need_role(user, "analyst", "校准模型")
    with committing(session, "/models"):
        result = services.retraining().recalibrate_candidate(session, include_db_labels=True, user_id=user.id)
    before = (result.metrics.get("evalset_before") or {}).get("macro_f1")
    after = (result.metrics.get("evalset") or {}).get("macro_f1")
    msg = f"已生成候选模型 {result.version}（只重新校准了谣言概率的换算）"
    if before is not None and after is not None:
        msg += f"：固定评估集 {result.metrics['evalset_size']} 条上宏平均 F1 {before:.3f} → {after:.3f}"
    return back("/models", msg=msg + "。确认无误后在下方点“启用…”。")


@router.get("/models/rollback")
def rollback_confirm(request: Request, user: PageUser, session: SessionDep) -> Response:
    need_role(user, "analyst", "回滚模型")
    reg = services.models()
    return render(request, "model_rollback.html", {
        "nav": "models", "current": reg.active_version(session), "target": reg.rollback_target(session)})


@router.post("/models/rollback")
def rollback(user: PageUser, session: SessionDep) -> Response:
    need_role(user, "analyst", "回滚模型")
    with committing(session, "/models"):
        row = services.models().rollback(session, user_id=user.id)
    queries.forget_drift()
    return back("/models", msg=f"已回滚到模型 {row.version}，正在运行的服务会自动切换")
