"""The `yuqing` command line: the only module that may import every stage."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.settings import get_settings
from yuqing.logs import configure_logging

app = typer.Typer(
    help="舆情哨兵 yuqing：监测公开帖子和群消息中的谣言与热点关切。每个子命令都有 --help。",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="数据库：建表与升级。", no_args_is_help=True)
users_app = typer.Typer(help="用户与角色（admin 管理员 / analyst 分析员 / staff 工作人员 / viewer 只读）。",
                        no_args_is_help=True)
tokens_app = typer.Typer(help="API 令牌：给脚本和机器人使用。", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("yuqing")


@app.callback()
def _main(
    log_level: Annotated[str, typer.Option(help="日志级别：DEBUG / INFO / WARNING")] = "",
) -> None:
    configure_logging(log_level or get_settings().log_level)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]错误：[/red]{message}")
    return typer.Exit(code)


# ----------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema to the latest version (safe to run again)."""
    from sqlalchemy.exc import OperationalError

    from core.migrate import missing_schema, upgrade

    url = get_settings().effective_database_url
    try:
        upgrade(url)
        missing = missing_schema(url)
    except OperationalError as err:
        raise _fail(f"无法连接数据库 {_safe_url(url)}：{err.orig}。请检查 YUQING_DATABASE_URL 和数据库服务。") from err
    if missing:
        raise _fail(
            f"数据库 {_safe_url(url)} 是用较早的开发版建的，缺少本版本的 {', '.join(missing[:8])}"
            f"{' 等' if len(missing) > 8 else ''}。发布前的结构变更没有升级脚本：请备份后删除该数据库"
            "（演示库在 var/yuqing.db）再运行，或换一个新的 YUQING_DATABASE_URL。"
        )
    console.print(f"数据库已是最新结构：{_safe_url(url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ----------------------------------------------------------------------------- users and tokens


def _read_password(password_stdin: bool) -> str:
    # Without a terminal (a script, a pipe, CI) getpass cannot hide the input and aborted with a
    # GetPassWarning: read one line from stdin, as --password-stdin does.
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("密码", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise _fail("密码至少 8 个字符。")
    return password


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="登录名")],
    role: Annotated[str, typer.Option("--role", help="admin 管理员 | analyst 分析员 | staff 工作人员 | viewer 只读")] = "staff",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="从标准输入读取密码（一行）；没有终端时自动如此")] = False,
    display_name: Annotated[str | None, typer.Option(help="显示名，如 张科长")] = None,
    email: Annotated[str | None, typer.Option(help="邮箱，用于预警与日报")] = None,
) -> None:
    """Add a user with a role and print a new API bearer token once (the password is asked for)."""
    from api import accounts
    from core.db import session_scope
    from core.errors import YuqingError

    password = _read_password(password_stdin)
    try:
        with session_scope() as session:
            user = accounts.create_user(session, username=name, role=role, password=password,
                                        display_name=display_name, email=email)
            token = accounts.create_token(session, user, f"{name}-cli")
    except YuqingError as err:
        raise _fail(str(err)) from err
    console.print(f"已创建用户 {name}（{accounts.ROLE_NAMES_ZH[role]}）。")
    console.print("API 令牌（只显示这一次，请妥善保存）：")
    print(token)


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """List users with their roles."""
    from api import accounts
    from core.db import session_scope
    from yuqing.jsonout import print_json

    with session_scope() as session:
        users, total = accounts.list_users(session, limit=10_000)
        if as_json:
            print_json({"total": total, "items": [
                {"id": u.id, "username": u.username, "role": u.role, "display_name": u.display_name,
                 "is_active": u.is_active, "last_login_at": u.last_login_at} for u in users]})
            return
        table = Table("ID", "用户名", "角色", "显示名", "启用", "最近登录")
        for u in users:
            table.add_row(str(u.id), u.username, accounts.ROLE_NAMES_ZH.get(u.role, u.role), u.display_name or "",
                          "是" if u.is_active else "否",
                          u.last_login_at.isoformat(timespec="minutes") if u.last_login_at else "-")
    console.print(table)
    console.print(f"共 {total} 个用户")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="令牌名称，如 qq-bot-1 或 report-script")],
    user: Annotated[str, typer.Option("--user", help="令牌属于哪个用户")] = "admin",
    bot: Annotated[bool, typer.Option("--bot", help="机器人令牌：只能推送消息 (/api/v1/ingest)")] = False,
) -> None:
    """Create an API token for a user and print it once."""
    from api import accounts
    from core.db import session_scope
    from core.errors import YuqingError

    try:
        with session_scope() as session:
            owner = accounts.get_user(session, user)
            token = accounts.create_token(session, owner, name, kind="bot" if bot else "user")
    except YuqingError as err:
        raise _fail(str(err)) from err
    console.print(f"已为 {user} 创建令牌 '{name}'（只显示这一次）：")
    print(token)


# ----------------------------------------------------------------------------- serving and the main job


# Longer than clients keep an idle connection (httpx and many bot frameworks: 5 s, uvicorn's own
# default): a server that closes a kept-alive connection just as the client reuses it makes that
# request fail with no answer (a push lost unless the bot retries).
KEEP_ALIVE_SECONDS = 75


def _serve(host: str, port: int, on_started: Callable[[], object] | None = None) -> None:
    """Serve the API; ``on_started`` runs once it answers (in a thread, the server keeps serving)."""
    import uvicorn

    from api.app import create_app
    from yuqing.digest_actions import register as register_digest_actions

    register_digest_actions()  # the console's digest preview and "send now" (api cannot import digest)
    server = uvicorn.Server(uvicorn.Config(create_app(), host=host, port=port, log_level="warning",
                                           proxy_headers=False, timeout_keep_alive=KEEP_ALIVE_SECONDS))
    if on_started is not None:
        def wait_then_start() -> None:
            while not server.started:
                if server.should_exit:
                    return
                time.sleep(0.1)
            on_started()

        threading.Thread(target=wait_then_start, name="start-jobs", daemon=True).start()
    server.run()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="监听地址")] = "",
    port: Annotated[int, typer.Option(help="端口")] = 0,
) -> None:
    """Serve the API and the review console (default http://127.0.0.1:8000)."""
    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    console.print(f"API 与审核台：http://{host}:{port}/  （接口文档 /docs）")
    _serve(host, port)


def ensure_demo_admin(data_dir: Path) -> None:
    """Create the demo admin once and print its password once (kept nowhere in clear)."""
    from api import accounts
    from api.security import new_password
    from core.db import session_scope
    from core.tables import User

    with session_scope() as session:
        if session.query(User).filter_by(username="admin").first() is not None:
            console.print("演示管理员 admin 已存在（密码在第一次运行时显示过；忘记可运行 `yuqing users passwd admin`）。")
            return
        password = new_password()
        user = accounts.create_user(session, username="admin", role="admin", password=password,
                                    display_name="演示管理员")
        token = accounts.create_token(session, user, "demo")
    console.print("[bold]已创建演示管理员[/bold] 用户名 admin  密码 " + password + "（只显示这一次）")
    console.print("API 令牌：" + token)


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="登录名")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="从标准输入读取密码")] = False,
) -> None:
    """Set a user's password; the user's open console sessions end (log in again)."""
    from api import accounts
    from core.db import session_scope
    from core.errors import YuqingError

    password = _read_password(password_stdin)
    try:
        with session_scope() as session:
            accounts.set_password(session, accounts.get_user(session, name), password)
    except YuqingError as err:
        raise _fail(str(err)) from err
    console.print(f"已更新 {name} 的密码；该用户已登录的控制台会话均已失效，需重新登录。")


def load_demo_debunks() -> None:
    """The sample debunk library (fictional 青禾镇 refutations); importing it again changes nothing."""
    from core.db import session_scope
    from nlp.debunks import DEMO_DEBUNKS, import_debunks

    with session_scope() as session:
        result = import_debunks(session, DEMO_DEBUNKS)
    console.print(f"示例辟谣库：{DEMO_DEBUNKS.name}（新增 {result.new} 条）")


@app.command()
def run(
    demo: Annotated[bool, typer.Option("--demo", help="演示模式：建库、建演示管理员、在本机提供示例信息源，并重放青禾镇的一天")] = False,
    demo_speed: Annotated[float, typer.Option(
        "--demo-speed", min=0.01, help="演示的一天按几倍速重放：1 约 15 分钟，10 约 1.5 分钟；0.01 以上")] = 1.0,
    host: Annotated[str, typer.Option(help="监听地址")] = "",
    port: Annotated[int, typer.Option(help="端口")] = 0,
) -> None:
    """The main job: crawl, import, analyse, alert, notify and send digests on schedule, while serving the API."""
    from yuqing.scheduler import build_scheduler, collect_jobs

    settings = get_settings()
    if demo:
        db_upgrade()
        ensure_demo_admin(settings.data_dir)
        _crawl.start_demo_sources(settings)  # the bundled sample site on loopback, and sources pointing at it
        settings = get_settings()
    jobs = collect_jobs(settings)
    scheduler = build_scheduler(settings, jobs)
    host, port = host or settings.api_host, port or settings.api_port

    def start_jobs() -> None:
        # Jobs start once the console answers: the first crawls and the first analysis load
        # Scrapy and the model, which on a fresh install would keep the console from starting.
        # The sample debunks too (their import loads the claim matcher: a third of the first
        # run's wall time), but before the jobs, so the first analysis matches against them.
        if demo:
            load_demo_debunks()
        scheduler.start()
        console.print(f"审核台：http://{host}:{port}/  接口文档：http://{host}:{port}/docs  "
                      f"（定时任务 {len(jobs)} 个已启动，按 Ctrl+C 停止）")
        if demo:
            _start_demo_day(demo_speed)

    console.print("正在启动审核台…")
    try:
        _serve(host, port, on_started=start_jobs)
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl+C it handled; stopping is what was asked for
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        _crawl.stop_crawls()  # crawls in progress record themselves as interrupted
    console.print("已停止。")


def _start_demo_day(speed: float) -> None:
    """The live demo: a scripted day of 青禾镇 (crawler/demo/day.yaml), pushed and posted as it goes."""
    from crawler.demo import post_demo_news
    from crawler.demo.replay import Replay, load_script

    script = load_script()
    Replay(script, speed=speed, post_news=post_demo_news).start()
    seconds = script.minutes * 60 / speed
    length = f"约 {seconds / 60:.0f} 分钟" if seconds >= 90 else f"约 {seconds:.0f} 秒"
    console.print(f"演示：正在按 {speed:g} 倍速重放青禾镇的一天（{length}）："
                  "谣言在几个群里传开又被辟谣，菜价关切升温，然后归于平静。")


# ----------------------------------------------------------------------------- stage commands
# Each stage keeps its subcommands in yuqing/commands/<stage>.py and registers them here.

from yuqing.commands import topics as _topics_cmd  # noqa: E402  (hot concerns)

app.command("topics")(_topics_cmd.topics)
app.command("categories-train")(_topics_cmd.categories_train)

from yuqing.commands import crawl as _crawl  # noqa: E402 - registered below the core commands

app.command("crawl")(_crawl.crawl)
app.add_typer(_crawl.sources_app, name="sources")
from yuqing.commands.alerts import alerts_app, notify_app  # noqa: E402 (registered at this marked place)

app.add_typer(alerts_app, name="alerts")
app.add_typer(notify_app, name="notify")

from yuqing.commands.digest import digest_command  # noqa: E402

app.command("digest")(digest_command)
from yuqing.commands import models as _models  # noqa: E402

app.command("train")(_models.train)
app.command("recalibrate")(_models.recalibrate)
app.command("rescore")(_models.rescore)
app.add_typer(_models.models_app, name="models")
app.add_typer(_models.labels_app, name="labels")

from yuqing.commands import chats as _chats_commands  # noqa: E402

_chats_commands.register(app)

from yuqing.commands import nlp as _nlp_commands  # noqa: E402  (analyze, classify, debunks)

_nlp_commands.register(app)

from yuqing.commands import images as _images_commands  # noqa: E402  (the picture worker)

_images_commands.register(app)

from yuqing.commands import tips as _tips_commands  # noqa: E402  (residents' tips)

_tips_commands.register(app)

from yuqing import help_zh as _help_zh  # noqa: E402

_help_zh.apply(app)
_help_zh.translate_framework()


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()


if __name__ == "__main__":
    main()
