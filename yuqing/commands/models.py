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
    data: Annotated[list[Path] | None, typer.Option("--data", help="标注 CSV（列 text,label），可多次指定")] = None,
    include_db_labels: Annotated[bool, typer.Option("--include-db-labels", help="加入数据库中的审核与人工标注")] = False,
    base: Annotated[str, typer.Option(help="shipped：加上研究数据集（../shared/data）；none：只用给出的标注")] = "none",
    name: Annotated[str | None, typer.Option(help="版本名，默认按时间生成")] = None,
    seed: Annotated[int, typer.Option(help="随机种子（记录在模型卡中）")] = 20261128,
    cv_folds: Annotated[int, typer.Option(help="交叉验证折数，0 为跳过")] = 5,
) -> None:
    """Train a candidate rumor model (not used until `yuqing models promote`)."""
    from nlp.retrain import train_candidate

    result = _candidate_with_progress(lambda session, progress: train_candidate(
        session, data=data or [], include_db_labels=include_db_labels, base=base, name=name, seed=seed,
        cv_folds=cv_folds, progress=progress))
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
def models_list() -> None:
    """List model versions with their status and metrics."""
    from core.db import session_scope
    from nlp.registry import list_versions

    with session_scope() as session:
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
        _console().print(f"评估集 {comparison.n} 条：新 {comparison.candidate['macro_f1']:.4f} / 旧 {comparison.active['macro_f1']:.4f}")
    _console().print(f"已启用模型 {row.version}；运行中的服务会自动切换。")


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


@labels_app.command("import")
def labels_import(
    file: Annotated[Path, typer.Argument(help="CSV，列 text,label（1/0 或 谣言/非谣言），可选 category")],
    user: Annotated[str | None, typer.Option(help="标注人用户名")] = None,
) -> None:
    """Import labelled texts for retraining (re-importing the same file changes nothing)."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.labels import import_labels_csv, label_conflicts

    try:
        with session_scope() as session:
            result = import_labels_csv(session, file, user_id=_user_id(session, user))
            conflicts = len(label_conflicts(session))
    except YuqingError as err:
        raise _fail(str(err)) from err
    _console().print(f"新增或更新 {result.new} 条，未变 {result.unchanged} 条，跳过 {len(result.errors)} 行。")
    for line in result.errors[:20]:
        _console().print(f"  {line}")
    if conflicts:
        _console().print(f"[yellow]有 {conflicts} 条文本的标注互相矛盾[/yellow]：用 `yuqing labels conflicts` 查看；训练时不使用它们。")


@labels_app.command("conflicts")
def labels_conflicts() -> None:
    """Texts labelled both rumor and not rumor (left out of training until resolved)."""
    from core.db import session_scope
    from nlp.labels import label_conflicts

    with session_scope() as session:
        table = Table("文本", "谣言票", "非谣言票", "来源")
        for c in label_conflicts(session):
            table.add_row(c.text[:60], str(c.labels.get(1, 0)), str(c.labels.get(0, 0)), ", ".join(c.origins))
    _console().print(table)


@labels_app.command("queue")
def labels_queue(limit: Annotated[int, typer.Option(help="显示条数")] = 20) -> None:
    """Posts the model is least sure about, weighted by reach: label these first."""
    from core.db import session_scope
    from nlp.labels import active_learning_queue
    from nlp.registry import active_version

    with session_scope() as session:
        items, total = active_learning_queue(session, model_version_id=active_version(session).id, limit=limit)
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
