"""`yuqing alerts ...` and `yuqing notify ...`: turn analysis into alerts, check rules, deliver the outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

alerts_app = typer.Typer(
    help="预警：根据分析结果生成或合并预警、检查规则、升级无人处理的预警。", no_args_is_help=True
)
rules_app = typer.Typer(help="预警规则与通知路由。", no_args_is_help=True)
notify_app = typer.Typer(
    help="预警通知：发送待发的邮件和群机器人消息（失败自动重试）。", no_args_is_help=True
)
alerts_app.add_typer(rules_app, name="rules")

console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]错误：[/red]{message}")
    return typer.Exit(1)


def evaluate_job(full: bool = False) -> dict[str, int]:
    """One evaluation in its own transaction (the scheduler's job and the command)."""
    from alerts import evaluate as evaluation
    from core.db import session_scope

    with session_scope() as session:
        result = evaluation.evaluate(session, full=full)
    if result.notify_error:
        err_console.print(f"[yellow]警告：[/yellow]预警已生成，但没有写入通知：{result.notify_error}")
    return result.as_dict()


def escalate_job() -> int:
    from alerts import workflow
    from core.db import session_scope

    with session_scope() as session:
        return len(workflow.escalate(session))


def deliver_job(limit: int = 200) -> dict[str, int]:
    from alerts.notify import deliver_due

    stats = deliver_due(limit=limit)
    return {"due": stats.due, "sent": stats.sent, "failed": stats.failed}


def publish_deliver_job(limit: int = 100) -> dict[str, int]:
    """Approved publications' group messages still due (the API sends them right after approval;
    this sends what that left: retries, and rows of a process that stopped)."""
    from alerts.publish_delivery import deliver_publications

    stats = deliver_publications(limit=limit)
    return {"due": stats.due, "sent": stats.sent, "failed": stats.failed, "unknown": stats.unknown}


@alerts_app.command("evaluate")
def evaluate(
    full: Annotated[
        bool, typer.Option("--full", help="重新检查全部已分析的帖子（默认只看上次之后的）")
    ] = False,
) -> None:
    """Raise or fold alerts for the posts, stories and hot topics analysed since the last run."""
    from core.errors import YuqingError

    try:
        stats = evaluate_job(full)
    except YuqingError as err:
        raise _fail(str(err)) from err
    table = Table("项目", "数量")
    for key, name in (
        ("posts_seen", "新分析的帖子"),
        ("stories_seen", "涉及事件"),
        ("topics_seen", "热点话题"),
        ("created", "新预警"),
        ("folded", "合并到已有预警"),
        ("rising", "正在扩散"),
        ("realerted", "已排除后再次预警"),
        ("notifications", "待发送通知"),
        ("responses_measured", "更新回应效果"),
    ):
        table.add_row(name, str(stats[key]))
    console.print(table)


@alerts_app.command("escalate")
def escalate() -> None:
    """Escalate high and urgent alerts nobody acknowledged in time (see the routing config)."""
    from core.errors import YuqingError

    try:
        n = escalate_job()
    except YuqingError as err:
        raise _fail(str(err)) from err
    console.print(f"已升级 {n} 条无人认领的预警。")


@rules_app.command("validate")
def validate(
    file: Annotated[Path | None, typer.Argument(help="规则文件（默认为当前使用的规则）；- 表示标准输入")] = None,
    notify_file: Annotated[Path | None, typer.Option("--notify", help="同时检查这个通知路由文件")] = None,
) -> None:
    """Check an alert rules YAML file (and optionally a notification routing file); exit 1 if invalid."""
    from alerts.notify import load_notify_config, notify_config_path
    from alerts.rules import AlertsConfigError, load_rules, rules_path
    from yuqing.stdio import readable

    path = file or rules_path()
    try:
        with readable(path, ".yaml") as readable_path:
            cfg = load_rules(readable_path)
    except AlertsConfigError as err:
        raise _fail(str(err)) from err
    table = Table("规则", "名称", "类型", "加分", "启用")
    for rule in cfg.rules:
        table.add_row(rule.id, rule.name, rule.kind, f"{rule.severity:g}", "是" if rule.enabled else "否")
    console.print(table)
    console.print(
        f"规则文件有效：{path}（{len(cfg.rules)} 条规则，"
        f"阈值 中 {cfg.thresholds.medium:g} / 高 {cfg.thresholds.high:g} / 紧急 {cfg.thresholds.urgent:g}）"
    )
    if notify_file is not None or file is None:
        npath = notify_file or notify_config_path()
        try:
            ncfg = load_notify_config(npath)
        except AlertsConfigError as err:
            raise _fail(str(err)) from err
        console.print(f"通知路由有效：{npath}（{len(ncfg.routes)} 条路由，{len(ncfg.escalation)} 级升级）")


@notify_app.command("deliver")
def deliver(
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="本次最多发送多少条")] = 200,
) -> None:
    """Send the notifications that are due; failures are retried later with backoff, never dropped."""
    stats = deliver_job(limit)
    console.print(
        f"到期 {stats['due']} 条：已发送 {stats['sent']} 条，失败 {stats['failed']} 条（稍后自动重试）。"
    )
