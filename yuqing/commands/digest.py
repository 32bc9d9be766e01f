"""`yuqing digest`: build the daily digest (舆情日报), write it to a folder, or send it; and its jobs.

Heavy imports (matplotlib) happen inside the functions so `yuqing --help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.settings import get_settings

console = Console()
err_console = Console(stderr=True)
log = logging.getLogger(__name__)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]错误：[/red]{message}", highlight=False)
    return typer.Exit(code)


def _parse_day(value: str | None, tz_name: str) -> dt.date:
    from digest.build import today

    current = today(tz_name)
    if value is None:
        return current
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError as err:
        raise _fail(f"日期 '{value}' 无效：请用 YYYY-MM-DD 格式，例如 {current.isoformat()}。", 2) from err
    if day > current:
        raise _fail(f"日期 {day} 还没有到（今天是 {current}，时区 {tz_name}）：只能生成今天或以前的日报。", 2)
    return day


def digest_command(
    date: Annotated[str | None, typer.Option(
        "--date", help="日期 YYYY-MM-DD；默认今天（按 YUQING_TIMEZONE）")] = None,
    send: Annotated[bool, typer.Option(
        "--send", help="发送给配置的收件人；同一天同一收件人列表只发一次")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="与 --send 一起用：已发送过也生成新版本并重新发送")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="把 digest.html、digest.txt 和图表 PNG 写到此目录")] = None,
) -> None:
    """Build the daily digest for a day: print it, write it to a folder (--out), or email it (--send)."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from core.db import session_scope
    from core.errors import YuqingError
    from digest.config import audiences
    from digest.service import prepare, send_day, write_files

    settings = get_settings()
    if force and not send:
        raise _fail("--force 只能和 --send 一起使用（例如 yuqing digest --send --force）。", 2)
    try:
        day = _parse_day(date, settings.timezone)
    except YuqingError as err:
        raise _fail(str(err), 2) from err
    try:
        title, lists = audiences(settings)
        if send and not lists:
            raise _fail("没有配置日报收件人：在 YAML 文件中写好 recipients，"
                        "并用 YUQING_DIGEST_RECIPIENTS_FILE 指向它。")
        with session_scope() as session:
            prepared = prepare(session, day, settings=settings)
            if out is not None:
                for path in write_files(prepared, out, title=title, settings=settings):
                    console.print(f"已写入 {path}", highlight=False)
            if not send:
                if out is None:
                    from digest.render import render

                    print(render(prepared.summary, title=title, charts_note=prepared.charts_note,
                                 console_url=settings.base_url,
                                 template_dir=settings.digest_template_dir).text, end="")
                return
            outcomes = send_day(session, day, force=force, settings=settings, prepared=prepared)
    except (OperationalError, ProgrammingError) as err:
        raise _fail(f"读取数据库失败：{getattr(err, 'orig', err)}。"
                    "数据库是否已初始化？请先运行 `yuqing db upgrade`。") from err
    except YuqingError as err:
        raise _fail(str(err)) from err
    failed = False
    for o in outcomes:
        who = "、".join(o.recipients)
        if o.status == "sent":
            extra = f"（{o.message}）" if o.message else ""
            console.print(f"已发送 {day} 的日报（第 {o.revision + 1} 版）给 {who}{extra}", highlight=False)
        elif o.status == "skipped":
            console.print(f"未发送（{who}）：{o.message}", highlight=False)
        else:
            failed = True
            err_console.print(f"[red]发送失败[/red]（{who}）：{o.message}\n"
                              "日报已保存，`yuqing run` 的定时任务会自动重试。", highlight=False)
    if failed:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- jobs of `yuqing run`


def daily_job() -> None:
    """At YUQING_DIGEST_TIME: today's digest to every recipient list that has not had it."""
    from core.db import session_scope
    from digest.service import scheduled_send

    with session_scope() as session:
        for o in scheduled_send(session):
            log.info("digest daily: %s %s %s", o.status, o.recipients, o.message)


def retry_job() -> None:
    """Every few minutes: resend failed digests when due; after the digest time, send a missing one."""
    from core.db import session_scope
    from digest.service import scheduled_retry

    with session_scope() as session:
        for o in scheduled_retry(session):
            log.info("digest retry: %s %s %s", o.status, o.recipients, o.message)
