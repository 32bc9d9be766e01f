"""``yuqing tips``: residents' tips from outside the running server (hotline exports)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

tips_app = typer.Typer(help="群众举报线索：导入热线工单。", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


@tips_app.command("import")
def tips_import(
    file: Annotated[Path, typer.Argument(help="12345 热线导出的 CSV（表头：时间,来电人,内容；编码自动识别）；- 表示标准输入")],
) -> None:
    """Import a 12345-style hotline CSV as tips; importing the same file again changes nothing."""
    from rich.progress import BarColumn, Progress, TextColumn

    from alerts.tip_import import HotlineFileError, import_hotline
    from core.db import session_scope
    from yuqing.stdio import readable

    try:
        with readable(file, ".csv") as path, session_scope() as session, Progress(
            TextColumn("导入热线线索"), BarColumn(), TextColumn("{task.completed} 行"), console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("rows", total=None)
            result = import_hotline(session, path, progress=lambda n: bar.update(task, completed=n))
    except (HotlineFileError, OSError) as err:
        err_console.print(f"错误：{err}", highlight=False, markup=False)
        raise typer.Exit(1) from err
    console.print(f"热线线索导入完成：共 {result.rows} 行，新增 {result.new} 条，已存在 {result.unchanged} 条，"
                  f"无效 {len(result.rejected)} 行。", highlight=False, markup=False)
    for line, reason in result.rejected[:20]:
        err_console.print(f"  第 {line} 行：{reason}", highlight=False, markup=False)
    if result.rejected and not (result.new or result.unchanged):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(tips_app, name="tips")
