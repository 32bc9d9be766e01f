"""`yuqing import-chats`, `yuqing purge` and `yuqing groups ...`: group messages from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from core.settings import get_settings

if TYPE_CHECKING:
    from crawler.chats import ImportReport

console = Console()
err_console = Console(stderr=True)

groups_app = typer.Typer(help="群：列表、标签、保留昵称、停用。", no_args_is_help=True)

SHOW_ISSUES = 50
EXPORT_SUFFIXES = {".txt", ".csv", ".json"}
SKIP_NAMES = {"system": "系统消息", "private": "私聊", "empty": "无内容", "disabled": "群已停用"}


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]错误：[/red]{message}")
    return typer.Exit(code)


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for every export file in it and below, in name order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in EXPORT_SUFFIXES)
        else:
            out.append(path)
    return out


def import_chats(
    paths: Annotated[
        list[Path], typer.Argument(help="导出文件或文件夹（QQ .txt 或 QQ Chat Exporter 的 .json、微信 .csv、Telegram result.json）；- 表示标准输入（需 --format）")
    ],
    group: Annotated[
        str | None, typer.Option("--group", help="群名：文件里没有群名时使用，或覆盖文件里的群名")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto | qq-txt | qq-json | wechat-csv | telegram-json")] = "auto",
    batch_size: Annotated[int, typer.Option(help="每批入库条数", min=1, max=20_000)] = 1000,
) -> None:
    """Import chat export files or folders (streamed; re-running stores nothing twice)."""
    from core.db import session_scope
    from crawler.chats import ChatFormatError, import_chat_file

    if fmt not in ("auto", "qq-txt", "qq-json", "wechat-csv", "telegram-json"):
        raise _fail(f"未知格式 '{fmt}'：可选 auto、qq-txt、qq-json、wechat-csv、telegram-json。")
    if any(str(p) == "-" for p in paths):
        if fmt == "auto" or len(paths) > 1:
            raise _fail("从标准输入（-）导入时只能给这一个来源，并用 --format 指明格式（qq-txt、qq-json、wechat-csv 或 telegram-json）。")
        from yuqing.stdio import readable

        suffix = {"qq-txt": ".txt", "qq-json": ".json", "wechat-csv": ".csv", "telegram-json": ".json"}[fmt]
        with readable(paths[0], suffix) as spooled:
            import_chats([spooled], group=group, fmt=fmt, batch_size=batch_size)
        return
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise _fail(f"找不到文件：{'、'.join(missing)}。请检查路径。")
    paths = _expand(paths)
    if not paths:
        raise _fail("文件夹里没有 .txt / .csv / .json 导出文件。")
    failed = 0
    for path in paths:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[messages]} 条"),
            console=console,
            transient=False,
        ) as bar:
            task = bar.add_task(path.name, total=path.stat().st_size or 1, messages=0)

            def progress(done: int, messages: int, task: TaskID = task, bar: Progress = bar) -> None:
                bar.update(task, completed=done, messages=messages)

            try:
                with session_scope() as session:
                    report = import_chat_file(
                        session, path, fmt=fmt, group=group, batch_size=batch_size, progress=progress
                    )
            except ChatFormatError as err:
                failed += 1
                err_console.print(f"[red]错误：[/red]{path}：{err}")
                continue
            except KeyboardInterrupt:
                err_console.print(
                    f"已中断：{path} 已入库的部分保留；重新运行同一命令即可继续，不会重复保存。"
                )
                raise typer.Exit(130) from None
        _summary(report)
    if failed:
        raise typer.Exit(1)


def _summary(report: ImportReport) -> None:
    c = report.counts
    skipped = "，".join(f"{SKIP_NAMES.get(k, k)} {v}" for k, v in sorted(c.skipped.items())) or "0"
    table = Table(title=f"{Path(report.path).name}（{report.format}）", show_header=False)
    table.add_row("消息", str(c.messages))
    table.add_row("新增 / 更新 / 未变", f"{c.new} / {c.updated} / {c.unchanged}")
    table.add_row("跳过", skipped)
    table.add_row("无法解析", str(report.issue_count))
    table.add_row("未入库", str(c.rejected_count))
    table.add_row("群", "、".join(f"{name}（{n}）" for name, n in c.groups.most_common(10)) or "-")
    table.add_row("用时", f"{report.seconds:.1f} 秒，{report.messages_per_second:,.0f} 条/秒")
    console.print(table)
    problems = [i.describe() for i in report.issues]
    problems += [f"第 {line} 行：未入库：{reason}" for line, reason in c.rejected]
    if problems:
        console.print(f"以下 {report.issue_count + c.rejected_count} 处未导入（其余已导入）：")
        for text in problems[:SHOW_ISSUES]:
            console.print(f"  {text}", markup=False, highlight=False)
        if len(problems) > SHOW_ISSUES or report.issue_count + c.rejected_count > len(problems):
            console.print(
                f"  …… 其余见数据库 source_runs 表（共 {report.issue_count + c.rejected_count} 处）"
            )


def purge(
    days: Annotated[int | None, typer.Option(help="保留天数；默认 YUQING_RETENTION_DAYS", min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只统计，不删除")] = False,
) -> None:
    """Delete raw chat messages older than the retention period (alert evidence and stories stay)."""
    from core.db import session_scope
    from crawler.chats import purge_chat_messages

    with session_scope() as session:
        result = purge_chat_messages(session, days=days, dry_run=dry_run)
        from core.images import purge_orphans  # pictures no remaining message refers to
        from core.picture_store import StoreUnavailable

        try:
            pictures: int | str = purge_orphans(session, dry_run=dry_run)
        except StoreUnavailable as err:  # the messages are purged all the same; pictures next time
            pictures = "部分"
            console.print(f"[yellow]图片存储不可用，其余不再被引用的图片下次清理时删除：{err}[/yellow]")
        session.commit()
    when = result.cutoff.astimezone(ZoneInfo(get_settings().timezone)).strftime("%Y-%m-%d %H:%M")
    verb = "将删除" if dry_run else "已删除"
    console.print(
        f"{verb} {when} 之前的群消息 {result.deleted} 条；作为预警证据保留 {result.kept_as_evidence} 条；"
        f"{verb}不再被引用的图片 {pictures} 张。"
    )


@groups_app.command("list")
def groups_list(
    platform: Annotated[str | None, typer.Option(help="qq / wechat / telegram")] = None,
    limit: Annotated[int, typer.Option(help="最多显示多少个", min=1)] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
) -> None:
    """List chat groups with their message counts."""
    from core.db import session_scope
    from crawler.chats.groups import list_groups
    from yuqing.jsonout import print_json

    with session_scope() as session:
        rows, total = list_groups(session, platform=platform, limit=limit)
    if as_json:
        print_json({"total": total, "items": rows})
        return
    tz = ZoneInfo(get_settings().timezone)
    table = Table("ID", "平台", "群名", "消息数", "最近消息", "标签", "保留昵称", "启用")
    for r in rows:
        last = r["last_message_at"].astimezone(tz).strftime("%Y-%m-%d %H:%M") if r["last_message_at"] else "-"
        table.add_row(
            str(r["id"]),
            r["platform"],
            r["name"],
            str(r["message_count"]),
            last,
            "、".join(r["tags"]) or "-",
            "是" if r["keep_names"] else "否",
            "是" if r["enabled"] else "否",
        )
    console.print(table)
    console.print(f"共 {total} 个群")


@groups_app.command("set")
def groups_set(
    group_id: Annotated[int, typer.Argument(help="群 ID（见 yuqing groups list）")],
    name: Annotated[str | None, typer.Option(help="新群名")] = None,
    tags: Annotated[str | None, typer.Option(help="标签，逗号分隔，如 村民群,东湾村")] = None,
    member_count: Annotated[int | None, typer.Option(help="成员数", min=0)] = None,
    keep_names: Annotated[
        bool | None, typer.Option("--keep-names/--pseudonymize", help="保存昵称 / 以化名保存")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="启用 / 停用（停用后不再收消息）")
    ] = None,
) -> None:
    """Change a group's name, tags, member count, name keeping or enabled flag."""
    from core.db import session_scope
    from core.errors import YuqingError
    from crawler.chats.groups import update_group

    changes: dict[str, object] = {}
    if name is not None:
        changes["name"] = name
    if tags is not None:
        changes["tags"] = [t for t in tags.replace("，", ",").split(",") if t.strip()]
    if member_count is not None:
        changes["member_count"] = member_count
    if keep_names is not None:
        changes["keep_names"] = keep_names
    if enabled is not None:
        changes["enabled"] = enabled
    if not changes:
        raise _fail(
            "没有要修改的内容：加 --name / --tags / --member-count / --keep-names / --disable 等选项。"
        )
    try:
        with session_scope() as session:
            group = update_group(session, group_id, changes)
            label = group.name
    except YuqingError as err:
        raise _fail(str(err)) from err
    console.print(f"已更新群 {group_id}（{label}）。")


def register(app: typer.Typer) -> None:
    """Attach the chat commands to the top-level CLI."""
    app.command("import-chats")(import_chats)
    app.command("purge")(purge)
    app.add_typer(groups_app, name="groups")
