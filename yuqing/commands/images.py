"""`yuqing images work` / `images status`: the picture worker (fetch, deduplicate, OCR) and its queue."""

from __future__ import annotations

import contextlib
import os
from typing import Annotated

import typer
from rich.console import Console

images_app = typer.Typer(help="图片：抓取、去重、文字识别。", no_args_is_help=True)
console = Console()


@images_app.command("work")
def work(
    once: Annotated[bool, typer.Option("--once", help="处理完当前队列就退出（默认一直运行）")] = False,
    per_minute: Annotated[int | None, typer.Option(help="每分钟最多识别多少张；默认 YUQING_IMAGE_OCR_PER_MINUTE",
                                                   min=1)] = None,
    nice: Annotated[int | None, typer.Option(help="把本进程的 CPU 优先级降低多少（0–19），让文本分析优先；"
                                                  "默认 YUQING_IMAGE_WORKER_NICE", min=0, max=19)] = None,
) -> None:
    """Fetch queued pictures, store them once, and read them (OCR) within a budget per minute."""
    from core.db import session_scope
    from core.settings import get_settings
    from crawler.image_fetch import fetch_pending
    from nlp.images import OcrUnavailable
    from nlp.images import work as run_worker

    console.print(f"图片识别进程优先级：nice {_lower_priority(get_settings().image_worker_nice if nice is None else nice)}")
    try:
        report = run_worker(session_scope, per_minute=per_minute, once=once, fetch=fetch_pending)
    except OcrUnavailable as err:
        console.print(f"[red]错误：[/red]{err}")
        raise typer.Exit(1) from err
    except KeyboardInterrupt:
        return
    console.print(f"识别图片 {report.read} 张（失败 {report.failed}，疑似公文 {report.documents}），"
                  f"{report.posts_changed} 条帖子的图片文字已更新，待重新分析。")
    if report.unavailable:
        console.print(f"[yellow]图片存储不可用，未处理的图片留在队列中：[/yellow]{report.unavailable}")


def _lower_priority(by: int) -> int:
    """Lower this process's CPU priority (OCR is the slow part: on a small office machine the text
    analysis must keep the cores when both are busy); the niceness it now has."""
    if by > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(by)
    return os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0


@images_app.command("status")
def status() -> None:
    """Where pictures are stored (and whether the store answers), pictures by OCR status and
    picture references by fetch status."""
    from core.db import session_scope
    from core.images import counts
    from core.picture_store import StoreUnavailable, picture_store

    try:
        store = picture_store()
        store.check()
        console.print(f"图片存储\t{store.where}（可用）")
    except StoreUnavailable as err:
        console.print(f"[yellow]图片存储\t不可用：{err}[/yellow]")
    with session_scope() as session:
        found = counts(session)
    names = {"images.pending": "待识别", "images.reading": "识别中", "images.done": "已识别", "images.failed": "识别失败",
             "refs.pending": "待抓取", "refs.fetching": "抓取中", "refs.stored": "已保存", "refs.failed": "抓取失败",
             "refs.refused": "已拒绝", "refs.retry": "抓取失败，稍后重试", "refs.missing": "导出中缺少文件"}
    for key, n in sorted(found.items()):
        console.print(f"{names.get(key, key)}\t{n}")


@images_app.command("copy-to-store")
def copy_to_store() -> None:
    """Copy the pictures kept in the data dir into the S3 store now configured (switching stores)."""
    from core.db import session_scope
    from core.errors import InvalidInput
    from core.images import copy_local_to_store
    from core.picture_store import StoreUnavailable, picture_store

    try:
        with session_scope() as session:
            report = copy_local_to_store(session)
    except (InvalidInput, StoreUnavailable) as err:
        console.print(f"[red]错误：[/red]{err}")
        raise typer.Exit(1) from err
    console.print(f"已复制 {report.copied} 张图片到 {picture_store().where}（已有的不重复写入）。")
    if report.missing:
        console.print(f"[yellow]{len(report.missing)} 张图片的文件不在数据目录中，未复制：{', '.join(report.missing[:5])}[/yellow]")


def register(app: typer.Typer) -> None:
    app.add_typer(images_app, name="images")
