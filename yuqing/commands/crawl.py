"""`yuqing crawl`, `yuqing sources ...`, and the crawl jobs of `yuqing run` (with its demo site).

Why a subprocess per scheduled crawl: Scrapy runs on Twisted's reactor, which can be started only
once per process. `yuqing run` therefore starts `python -m yuqing.cli crawl --source NAME` for
each source on its interval; a crash or a memory-hungry site then never takes the API down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.errors import YuqingError
from core.settings import PROJECT_ROOT, Settings, get_settings

log = logging.getLogger(__name__)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

sources_app = typer.Typer(help="信息源：检查和查看信息源配置文件（YAML）。", no_args_is_help=True)

STATUS_ZH = {"ok": "正常", "partial": "部分失败", "failed": "失败", "running": "运行中", "interrupted": "已中断"}



def _sources_path(path: Path | None) -> Path:
    found = path or get_settings().sources_file
    if found is None:
        raise typer.BadParameter(
            "没有指定信息源文件：请用 --sources 文件路径，或设置 YUQING_SOURCES_FILE（示例见 crawler/demo/sources.yaml）。",
            param_hint="--sources")
    return Path(found)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]错误：[/red]{message}")
    return typer.Exit(code)


@sources_app.command("validate")
def sources_validate(
    file: Annotated[Path | None, typer.Argument(help="信息源 YAML 文件；不写则用 YUQING_SOURCES_FILE；- 表示标准输入")] = None,
) -> None:
    """Check a sources file and point at the exact source and key of every error."""
    from crawler.config import load_sources
    from crawler.spiders import spider_class
    from yuqing.stdio import is_stdin, readable

    path = Path("-") if is_stdin(file) else _sources_path(file)
    try:
        with readable(path, ".yaml") as readable_path:
            parsed = load_sources(readable_path)
        for src in parsed.sources:
            spider_class(src)  # custom spiders must import
    except YuqingError as err:
        raise _fail(str(err)) from err
    table = Table("名称", "类型", "网址数", "间隔", "启用", "遵守 robots")
    for src in parsed.sources:
        table.add_row(src.name, src.kind, str(len(src.urls)), _human_interval(src.interval),
                      "是" if src.enabled else "否", "是" if src.obey_robots else "否")
    console.print(table)
    console.print(f"[green]{path} 检查通过[/green]：共 {len(parsed.sources)} 个信息源。")


@sources_app.command("list")
def sources_list(as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """List the sources in the database with their last run."""
    from core.db import session_scope
    from crawler import service
    from yuqing.jsonout import print_json

    with session_scope() as session:
        rows, total = service.list_sources(session, limit=10_000)
        if as_json:
            print_json({"total": total, "items": [
                {"id": r.source.id, "name": r.source.name, "kind": r.source.kind, "enabled": r.source.enabled,
                 "posts": r.post_count,
                 "last_run": None if r.last_run is None else {
                     "started_at": r.last_run.started_at, "finished_at": r.last_run.finished_at,
                     "status": r.last_run.status, "items_new": r.last_run.items_new,
                     "errors": len(r.last_run.errors or [])}} for r in rows]})
            return
        table = Table("ID", "名称", "类型", "启用", "最近运行", "状态", "新增", "错误", "已存帖子")
        for row in rows:
            run = row.last_run
            table.add_row(str(row.source.id), row.source.name, row.source.kind, "是" if row.source.enabled else "否",
                          service.utc_iso(run.started_at) if run else "-",
                          STATUS_ZH.get(run.status, run.status) if run else "-",
                          str(run.items_new) if run else "-", str(len(run.errors or [])) if run else "-",
                          str(row.post_count))
    console.print(table)
    console.print(f"共 {total} 个信息源")


def _human_interval(seconds: int) -> str:
    for unit, size in (("天", 86400), ("小时", 3600), ("分钟", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}秒"


def crawl(
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="只抓这个信息源（可重复）")] = None,
    sources_file: Annotated[Path | None, typer.Option("--sources", help="信息源 YAML 文件")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="重新抓取已入库的页面（忽略增量记录）")] = False,
    distributed: Annotated[bool, typer.Option("--distributed",
                                              help="多进程/多机共享 Redis 队列抓取（需要 YUQING_REDIS_URL）")] = False,
) -> None:
    """Crawl the sources once and print a summary; exits 1 only when a source failed entirely."""
    from core.db import session_scope
    from crawler import service
    from crawler.config import load_sources
    from crawler.runner import run_crawl

    path = _sources_path(sources_file)
    try:
        parsed = load_sources(path)
        if source:
            chosen = [parsed.get(name) for name in source]
        else:
            with session_scope() as session:
                service.sync_sources(session, parsed.sources)
                chosen = [s for s in parsed.sources if service.source_enabled(session, s.name)]
        if not chosen:
            console.print("没有启用的信息源，未抓取。")
            return
        results = run_crawl(chosen, refresh=refresh, distributed=distributed)
    except YuqingError as err:
        raise _fail(str(err)) from err
    table = Table("信息源", "状态", "页面", "新增", "更新", "未变", "丢弃", "错误", title="抓取结果")
    for r in results:
        style = {"ok": "green", "partial": "yellow", "failed": "red", "interrupted": "yellow"}.get(r.status, "")
        table.add_row(r.source, f"[{style}]{STATUS_ZH.get(r.status, r.status)}[/{style}]", str(r.pages_fetched),
                      str(r.items_new), str(r.items_updated), str(r.items_unchanged), str(r.items_dropped),
                      str(r.stats.get("errors_total", len(r.errors))))
    console.print(table)
    for r in results:
        for e in r.errors[:10]:
            console.print(f"  [{r.source}] {e.get('reason')}  {e.get('url') or ''}")
        if len(r.errors) > 10:
            console.print(f"  [{r.source}] ……另有 {len(r.errors) - 10} 条错误，见接口 /api/v1/sources/{{id}}/runs")
    failed = [r.source for r in results if r.status == "failed"]
    if failed:
        raise _fail(f"以下信息源完全失败：{'、'.join(failed)}。请检查网址、网络或选择器。")


# ----------------------------------------------------------------------------- `yuqing run`


#: Crawl children now running, so a stopping `yuqing run` can ask each to stop cleanly.
_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()


def crawl_subprocess(name: str, sources_file: Path, timeout: float) -> int:
    """Run one source's crawl in a child process (see the module docstring for why).

    The child runs in its own session: Ctrl+C in the terminal reaches `yuqing run` only, which then
    sends each child exactly one SIGINT (:func:`stop_crawls`). Two signals would make Scrapy stop
    uncleanly, without recording the run.
    """
    from core.db import session_scope
    from crawler import service

    with session_scope() as session:
        if service.source_enabled(session, name) is False:
            log.info("信息源 %r 已停用，不抓取", name)
            return 0
    cmd = [sys.executable, "-m", "yuqing.cli", "crawl", "--source", name, "--sources", str(sources_file)]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        log.error("信息源 %r 的抓取超过 %.0f 秒，已被终止", name, timeout)
        return -1
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    level = logging.INFO if proc.returncode == 0 else logging.WARNING
    log.log(level, "信息源 %r 抓取结束（退出码 %d）\n%s", name, proc.returncode, stdout[-2000:])
    return proc.returncode


def stop_crawls(grace_seconds: float = 20.0) -> int:
    """Ask every running crawl child to stop and wait for it to record its run as interrupted.

    A child still running after the grace period is killed; the next run of its source then finds
    the run left open. Returns how many children were asked to stop.
    """
    with _RUNNING_LOCK:
        procs = list(_RUNNING)
    if not procs:
        return 0
    log.info("正在停止 %d 个抓取进程（最多等待 %.0f 秒，让它们记下进度）", len(procs), grace_seconds)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("抓取进程 %d 未在 %.0f 秒内停止，已强制结束", proc.pid, grace_seconds)
            proc.kill()
    return len(procs)


def crawl_schedule(settings: Settings) -> list[tuple[str, int, Callable[[], object]]]:
    """(job id, interval seconds, function) for every source in the sources file."""
    from core.db import session_scope
    from crawler import service
    from crawler.config import load_sources

    if settings.sources_file is None:
        return []
    path = Path(settings.sources_file)
    try:
        parsed = load_sources(path)
        with session_scope() as session:
            service.sync_sources(session, parsed.sources)
    except YuqingError as err:
        log.error("sources file not usable, no crawl jobs: %s", err)
        return []
    jobs: list[tuple[str, int, Callable[[], object]]] = []
    for src in parsed.sources:
        timeout = max(600.0, src.interval * 3.0)
        jobs.append((f"crawl:{src.name}", src.interval, partial(crawl_subprocess, src.name, path, timeout)))
    return jobs


def start_demo_sources(settings: Settings) -> str:
    """Serve the bundled demo site on loopback and point the sources file at it; returns its URL."""
    from crawler.demo import demo_sources_text, serve_demo_site

    base = serve_demo_site(port=settings.demo_site_port)
    target = settings.data_dir / "demo-sources.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(demo_sources_text(base), encoding="utf-8")
    os.environ["YUQING_SOURCES_FILE"] = str(target)
    get_settings.cache_clear()
    console.print(f"演示信息源网站：{base}/  （信息源文件 {target}）")
    return base
