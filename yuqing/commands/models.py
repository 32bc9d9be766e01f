"""`yuqing train`, `yuqing recalibrate`, `yuqing models ...`, `yuqing labels ...`, `yuqing rescore`: retraining for analysts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from nlp.retrain import TrainResult


def _console() -> Console:
    # Made at use time so that COLUMNS set by the caller (or a test) is honoured.
    return Console()
models_app = typer.Typer(help="模型版本：列出、启用（promote）、回滚（rollback）。", no_args_is_help=True)
labels_app = typer.Typer(help="训练标注：导入 CSV、查看冲突、主动学习队列。", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]错误：[/red]{message}")
    return typer.Exit(1)


def _user_id(session: Session, username: str | None) -> int | None:
    if not username:
        return None
    from api.accounts import get_user

    return get_user(session, username).id


def _f(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


def _candidate_with_progress(make: Callable[[Session, Callable[[str], None]], TrainResult]) -> TrainResult:
    """Run a candidate-making step in one transaction, its progress messages on a spinner line."""
    from core.db import session_scope
    from core.errors import YuqingError

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=_console()) as bar:
        task = bar.add_task("准备", total=None)
        try:
            with session_scope() as session:
                return make(session, lambda msg: bar.update(task, description=msg))
        except YuqingError as err:
            raise _fail(str(err)) from err


def train(
    data: Annotated[list[Path] | None, typer.Option("--data", help="标注 CSV（列 text,label），可多次指定；- 表示标准输入")] = None,
    include_db_labels: Annotated[bool, typer.Option("--include-db-labels", help="加入数据库中的审核与人工标注")] = False,
    base: Annotated[str, typer.Option(help="shipped：加上研究数据集（../shared/data，或 YUQING_SHARED_DATA）；none：只用给出的标注（只用本单位标注重新训练）")] = "none",
    name: Annotated[str | None, typer.Option(help="版本名，默认按时间生成")] = None,
    seed: Annotated[int, typer.Option(help="随机种子（记录在模型卡中）")] = 20261128,
    cv_folds: Annotated[int, typer.Option(help="交叉验证折数，0 为跳过")] = 5,
    jobs: Annotated[int | None, typer.Option("--jobs", help="交叉验证并行的进程数，默认每个 CPU 核一个")] = None,
) -> None:
    """Train a candidate rumor model (not used until `yuqing models promote`)."""
    import tempfile

    from nlp.retrain import train_candidate

    tmp = tempfile.TemporaryDirectory()
    data = [_stdin_to_file(p, tmp.name) for p in data or []]
    result = _candidate_with_progress(lambda session, progress: train_candidate(
        session, data=data or [], include_db_labels=include_db_labels, base=base, name=name, seed=seed,
        cv_folds=cv_folds, progress=progress, n_jobs=jobs))
    ev, cv = result.metrics.get("evalset", {}), result.metrics.get("cv", {})
    _console().print(f"已训练候选模型 [bold]{result.version}[/bold]：{result.path}")
    _console().print(f"固定评估集（{result.metrics['evalset_size']} 条）macro-F1 {_f(ev.get('macro_f1'))}；"
                  f"交叉验证 macro-F1 {_f(cv.get('macro_f1'))}")
    _console().print(f"启用：yuqing models promote {result.version}")


def recalibrate(
    data: Annotated[list[Path] | None, typer.Option("--data", help="标注 CSV（列 text,label），可多次指定")] = None,
    include_db_labels: Annotated[bool, typer.Option("--include-db-labels", help="加入数据库中的审核与人工标注")] = False,
    name: Annotated[str | None, typer.Option(help="版本名，默认按时间生成")] = None,
) -> None:
    """Refit only the current model's probability threshold on your own labels (a candidate).

    Keeps the weights; needs at least 20 rumor and 20 non-rumor labels outside the evaluation
    set. Use it when alerts on your posts run too high or too low but the ranking looks right;
    retrain (`yuqing train`) when the model misses whole kinds of rumor.
    """
    from nlp.retrain import recalibrate_candidate

    if not data and not include_db_labels:
        raise _fail("没有标注可用：用 --include-db-labels 使用数据库中的审核与人工标注，或用 --data 给出标注 CSV")
    result = _candidate_with_progress(lambda session, progress: recalibrate_candidate(
        session, data=data or [], include_db_labels=include_db_labels, name=name, progress=progress))
    before, after = result.metrics.get("evalset_before", {}), result.metrics.get("evalset", {})
    _console().print(f"已校准候选模型 [bold]{result.version}[/bold]：{result.path}")
    _console().print(f"固定评估集（{result.metrics['evalset_size']} 条）macro-F1 {_f(before.get('macro_f1'))} -> "
                     f"{_f(after.get('macro_f1'))}")
    _console().print(f"启用：yuqing models promote {result.version}")


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """List model versions with their status and metrics."""
    from core.db import session_scope
    from nlp.registry import list_versions

    with session_scope() as session:
        if as_json:
            _print_json([{k: getattr(v, k) for k in ("version", "status", "metrics", "trained_at", "promoted_at",
                                                     "note", "path")} for v in list_versions(session)])
            return
        table = Table("版本", "状态", "训练时间", "评估集 macro-F1", "交叉验证 macro-F1", "备注")
        for v in list_versions(session):
            m = v.metrics or {}
            status = {"active": "[green]使用中[/green]", "candidate": "候选", "retired": "已停用", "rolled_back": "已回滚"}.get(v.status, v.status)
            table.add_row(v.version, status, v.trained_at.isoformat(timespec="minutes") if v.trained_at else "-",
                          _f((m.get("evalset") or {}).get("macro_f1")), _f((m.get("cv") or {}).get("macro_f1")),
                          v.note or "")
        notes = _prevalence_lines(session)
    _console().print(table)
    for line in notes:
        _console().print(line, highlight=False, markup=False)


def _prevalence_lines(session: Any) -> list[str]:
    """The rumor share estimates and the rumor threshold, as `yuqing models list` prints them."""
    from alerts.rules import load_rules, resolve_rumor_thresholds, rumor_threshold_note
    from nlp.prevalence_store import CHANNELS, DEFAULT_PRIORS, current, describe

    latest = current(session)
    lines = ["谣言占比估计：" + ("；".join(describe(latest[ch]) for ch in (*CHANNELS, "all") if ch in latest)
                            if latest else f"尚无（按默认占比：网页 {DEFAULT_PRIORS['web']:.0%}、群聊 {DEFAULT_PRIORS['chat']:.0%}）")]
    note = rumor_threshold_note(resolve_rumor_thresholds(load_rules(), session))
    if note:
        lines.append("判定阈值：" + note)
    return lines


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="要启用的版本")],
    force: Annotated[bool, typer.Option("--force", help="即使评估更差也启用（必须给 --reason）")] = False,
    reason: Annotated[str | None, typer.Option(help="强制启用的理由，会记录下来")] = None,
    user: Annotated[str | None, typer.Option(help="操作人用户名")] = None,
) -> None:
    """Make a version active; refused if worse than the active one on the evaluation set."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.registry import promote

    try:
        with session_scope() as session:
            row, comparison = promote(session, version, force=force, reason=reason, user_id=_user_id(session, user))
    except YuqingError as err:
        raise _fail(str(err)) from err
    if comparison is not None:
        _console().print(comparison.sentence())
    _console().print(f"已启用模型 {row.version}；运行中的服务会自动切换。")


@models_app.command("compare")
def models_compare(
    candidate: Annotated[str, typer.Argument(help="候选版本")],
    other: Annotated[str | None, typer.Argument(help="对照版本，默认为当前在用的版本")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON（含分类别、来源、渠道的结果和判断不同的文本）")] = False,
) -> None:
    """Compare two versions on the evaluation texts neither was trained on (a dry run: writes nothing)."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.registry import compare_versions, gate

    try:
        with session_scope() as session:
            cmp = compare_versions(session, candidate, other)
            session.rollback()  # a dry run, whatever a lazy registration did
    except YuqingError as err:
        raise _fail(str(err)) from err
    except FileNotFoundError as err:
        raise _fail(f"模型文件找不到：{err}") from err
    if as_json:
        _print_json(cmp.as_dict())
        return
    _console().print(cmp.sentence())
    verdict = gate(cmp)
    _console().print(verdict.split("。确需")[0] if verdict else "可以启用：候选模型不比对照版本明显更差。")
    for dim, title in (("category", "类别"), ("source", "来源"), ("channel", "渠道")):
        rows = cmp.slices.get(dim) or []
        if rows:
            table = Table(title, "条数", "谣言", cmp.candidate_version, cmp.active_version)
            for r in rows[:15]:
                table.add_row(str(r["value"]), str(r["n"]), str(r["rumors"]), f"{r['candidate_macro_f1']:.3f}",
                              f"{r['active_macro_f1']:.3f}")
            _console().print(table)
    if cmp.disagreements:
        _console().print(f"判断不同的文本 {len(cmp.disagreements)} 条（--json 查看全部），前 5 条：")
        for d in cmp.disagreements[:5]:
            _console().print(f"  [{'谣言' if d['label'] else '非谣言'}] {d['candidate']:.2f} / {d['active']:.2f}  {d['text'][:40]}")


@models_app.command("delete")
def models_delete(
    version: Annotated[str, typer.Argument(help="要删除的候选版本（从未启用过）")],
    user: Annotated[str | None, typer.Option(help="操作人用户名")] = None,
) -> None:
    """Delete a candidate that was never active (its files under this instance's registry too)."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.registry import delete_version

    try:
        with session_scope() as session:
            delete_version(session, version, user_id=_user_id(session, user))
    except YuqingError as err:
        raise _fail(str(err)) from err
    _console().print(f"已删除候选模型 {version}。")


_EVENT_ZH = {"registered": "登记", "trained": "训练", "recalibrated": "校准", "promoted": "启用",
             "forced": "强制启用", "rolled_back": "回滚", "deleted": "删除"}


@models_app.command("history")
def models_history(as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """The registry's log: trained, recalibrated, promoted, forced (with the reason), rolled back, deleted."""
    from core.db import session_scope
    from nlp.registry import model_history

    with session_scope() as session:
        events: list[dict[str, Any]] = [{"at": e.at, "action": e.action, "version": e.version, "previous_version": e.previous_version,
                   "reason": e.reason, "user_id": e.user_id, "detail": e.detail} for e in model_history(session)]
    if as_json:
        _print_json(events)
        return
    table = Table("时间", "操作", "版本", "之前在用", "理由")
    for e in events:
        table.add_row(e["at"].isoformat(timespec="minutes"), _EVENT_ZH.get(str(e["action"]), str(e["action"])),
                      str(e["version"]), str(e["previous_version"] or "-"), str(e["reason"] or ""))
    _console().print(table)


@models_app.command("rollback")
def models_rollback(user: Annotated[str | None, typer.Option(help="操作人用户名")] = None) -> None:
    """Re-activate the previously active version."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.registry import rollback

    try:
        with session_scope() as session:
            row = rollback(session, user_id=_user_id(session, user))
    except YuqingError as err:
        raise _fail(str(err)) from err
    _console().print(f"已回滚到模型 {row.version}。")


def _stdin_to_file(file: Path, tmp: str) -> Path:
    """``-`` means standard input: spooled to a file so the CSV reader can sniff its encoding."""
    if str(file) != "-":
        return file
    import sys

    path = Path(tmp) / "stdin.csv"
    path.write_bytes(sys.stdin.buffer.read())
    return path


@labels_app.command("import")
def labels_import(
    file: Annotated[Path, typer.Argument(help="CSV，列 text,label（1/0 或 谣言/非谣言），可选 category；- 表示标准输入")],
    user: Annotated[str | None, typer.Option(help="标注人用户名")] = None,
) -> None:
    """Import labelled texts for retraining (re-importing the same file changes nothing)."""
    import tempfile

    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.labels import import_labels_csv, label_conflicts

    try:
        with tempfile.TemporaryDirectory() as tmp, session_scope() as session:
            result = import_labels_csv(session, _stdin_to_file(file, tmp), user_id=_user_id(session, user))
            conflicts = len(label_conflicts(session))
    except YuqingError as err:
        raise _fail(str(err)) from err
    _console().print(f"新增或更新 {result.new} 条，未变 {result.unchanged} 条，跳过 {len(result.errors)} 行。")
    for line in result.errors[:20]:
        _console().print(f"  {line}")
    if conflicts:
        _console().print(f"[yellow]有 {conflicts} 条文本的标注互相矛盾[/yellow]：用 `yuqing labels conflicts` 查看；训练时不使用它们。")


@labels_app.command("conflicts")
def labels_conflicts(as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """Texts labelled both rumor and not rumor (left out of training until resolved)."""
    from core.db import session_scope
    from nlp.labels import label_conflicts

    with session_scope() as session:
        conflicts = label_conflicts(session)
    if as_json:
        _print_json([{"text_hash": c.text_hash, "text": c.text, "rumor_votes": c.labels.get(1, 0),
                      "not_rumor_votes": c.labels.get(0, 0), "origins": c.origins} for c in conflicts])
        return
    table = Table("编号", "文本", "谣言票", "非谣言票", "来源")
    for c in conflicts:
        table.add_row(c.text_hash[:10], c.text[:60], str(c.labels.get(1, 0)), str(c.labels.get(0, 0)),
                      ", ".join(c.origins))
    _console().print(table)
    if conflicts:
        _console().print("裁定：yuqing labels resolve 编号 谣言|非谣言")


_ORIGIN_ZH = {"review": "审核", "manual": "人工", "import": "导入"}


def _print_json(payload: object) -> None:
    from yuqing.jsonout import print_json

    print_json(payload)


def _label_dict(row: object) -> dict[str, object]:
    return {k: getattr(row, k) for k in ("id", "text", "text_hash", "label", "category", "role", "origin",
                                         "post_id", "user_id", "created_at", "updated_at")}


@labels_app.command("list")
def labels_list(
    origin: Annotated[str | None, typer.Option(help="来源：review（审核）、manual（人工）、import（导入）")] = None,
    label: Annotated[str | None, typer.Option(help="只看某一结论：谣言 / 非谣言（或 1 / 0）")] = None,
    conflicts: Annotated[bool, typer.Option("--conflicts", help="只看结论互相矛盾的文本")] = False,
    search: Annotated[str | None, typer.Option(help="文本包含的字词")] = None,
    limit: Annotated[int, typer.Option(help="显示条数")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
) -> None:
    """List labels, newest first."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.labels import LabelFilters, list_labels, parse_label

    try:
        verdict = parse_label(label) if label is not None else None
        if origin is not None and origin not in _ORIGIN_ZH:
            raise _fail(f"未知来源 '{origin}'：可选 review、manual、import")
        with session_scope() as session:
            rows, total = list_labels(session, LabelFilters(origin=origin, label=verdict, conflicts_only=conflicts,
                                                            q=search), limit=limit)
            items = [_label_dict(r) for r in rows]
    except YuqingError as err:
        raise _fail(str(err)) from err
    if as_json:
        _print_json({"total": total, "items": items})
        return
    table = Table("编号", "结论", "类别", "来源", "文本")
    for r in items:
        table.add_row(str(r["id"]), "谣言" if r["label"] == 1 else "非谣言", str(r["category"] or "-"),
                      _ORIGIN_ZH.get(str(r["origin"]), str(r["origin"])), str(r["text"])[:50])
    _console().print(table)
    _console().print(f"共 {total} 条")


@labels_app.command("set")
def labels_set(
    label_id: Annotated[int, typer.Argument(help="标注编号（yuqing labels list 的第一列）")],
    label: Annotated[str, typer.Argument(help="新结论：谣言 / 非谣言（或 1 / 0）")],
    category: Annotated[str | None, typer.Option(help="同时更改类别")] = None,
    user: Annotated[str | None, typer.Option(help="操作人用户名")] = None,
) -> None:
    """Correct a label (the earlier verdict stays in its history)."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.labels import correct_label, parse_label

    try:
        with session_scope() as session:
            changes = {"category": category} if category is not None else {}
            row = correct_label(session, label_id, label=parse_label(label), user_id=_user_id(session, user),
                                **changes)
            verdict = "谣言" if row.label == 1 else "非谣言"
    except YuqingError as err:
        raise _fail(str(err)) from err
    _console().print(f"标注 {label_id} 现为：{verdict}")


@labels_app.command("delete")
def labels_delete(
    label_id: Annotated[int, typer.Argument(help="标注编号")],
    user: Annotated[str | None, typer.Option(help="操作人用户名")] = None,
) -> None:
    """Delete a label (its history stays)."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.labels import delete_label

    try:
        with session_scope() as session:
            delete_label(session, label_id, user_id=_user_id(session, user))
    except YuqingError as err:
        raise _fail(str(err)) from err
    _console().print(f"已删除标注 {label_id}。")


@labels_app.command("resolve")
def labels_resolve(
    text: Annotated[str, typer.Argument(help="矛盾文本的编号（yuqing labels conflicts 的第一列，至少 8 位）")],
    label: Annotated[str, typer.Argument(help="裁定的结论：谣言 / 非谣言（或 1 / 0）")],
    user: Annotated[str | None, typer.Option(help="操作人用户名")] = None,
) -> None:
    """Decide a conflict: every label on that text takes the chosen verdict."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.labels import find_text_hash, parse_label, resolve_conflict

    try:
        with session_scope() as session:
            changed = resolve_conflict(session, find_text_hash(session, text), label=parse_label(label),
                                       user_id=_user_id(session, user))
    except YuqingError as err:
        raise _fail(str(err)) from err
    _console().print(f"已裁定，更改了 {changed} 条标注。")


@labels_app.command("export")
def labels_export(
    output: Annotated[str, typer.Argument(help="输出 CSV 文件；- 表示标准输出")] = "-",
) -> None:
    """Export every label as CSV (UTF-8 with BOM for Excel; text,label,category re-import as they are)."""
    import sys

    from core.db import session_scope
    from nlp.labels import write_export

    with session_scope() as session:
        if output == "-":
            write_export(session, sys.stdout)
            return
        with open(output, "w", encoding="utf-8-sig", newline="") as handle:
            n = write_export(session, handle)
    _console().print(f"已导出 {n} 条标注到 {output}")


@labels_app.command("queue")
def labels_queue(limit: Annotated[int, typer.Option(help="显示条数")] = 20,
                 as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """Posts the model is least sure about, weighted by reach: label these first."""
    from core.db import session_scope
    from nlp.retrain import labelling_queue

    with session_scope() as session:
        items, total = labelling_queue(session, limit=limit)
        if as_json:
            _print_json({"total": total, "items": [i.__dict__ for i in items]})
            return
        table = Table("帖子", "谣言概率", "传播", "优先级", "文本")
        for i in items:
            table.add_row(str(i.post_id), f"{i.rumor_probability:.2f}", str(i.reach), f"{i.priority:.2f}", i.text[:50])
    _console().print(table)
    _console().print(f"共 {total} 条待标注")


def rescore(
    days: Annotated[int, typer.Option(help="重新评分最近几天发布的帖子")] = 7,
    batch_size: Annotated[int, typer.Option(help="每批条数（每批单独提交，中断后可继续）")] = 2000,
) -> None:
    """Score recent posts with the active model (resumable; already-scored posts are skipped)."""
    from sqlalchemy import func, select

    from core.db import session_factory
    from core.tables import Post
    from nlp.retrain import rescore as run_rescore

    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    session = session_factory()()
    try:
        total = session.scalar(select(func.count()).select_from(Post).where(Post.published_at >= since)) or 0
        with Progress(TextColumn("重新评分"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=_console()) as bar:
            task = bar.add_task("rescore", total=total)
            done = run_rescore(session, since=since, batch_size=batch_size,
                               progress=lambda n: bar.advance(task, n))
    finally:
        session.close()
    _console().print(f"已用当前模型评分 {done} 条帖子。")
