"""`yuqing import-chats`, `yuqing groups` and `yuqing purge` as staff use them."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.chats.conftest import FIXTURES
from yuqing.cli import app

runner = CliRunner()


def test_import_chats_reports_and_is_idempotent(fresh_db_url: str) -> None:
    files = [str(FIXTURES / n) for n in ("qq_dongwan.txt", "qq_owners_gbk.txt", "石桥村群_utf8.csv")]
    first = runner.invoke(app, ["import-chats", *files])
    assert first.exit_code == 0, first.output
    out = first.output
    assert "qq_dongwan.txt（qq-txt）" in out and "6 / 0 / 0" in out and "系统消息 2" in out
    assert "第 28 行：消息头不完整" in out and "第 31 行：消息时间无效" in out
    assert "私聊 1" in out and "第 12 行：列数不足" in out
    again = runner.invoke(app, ["import-chats", files[0]])
    assert again.exit_code == 0 and "0 / 0 / 6" in again.output
    listed = runner.invoke(app, ["groups", "list"])
    assert listed.exit_code == 0 and "东湾村村民群" in listed.output and "共 3 个群" in listed.output
    changed = runner.invoke(app, ["groups", "set", "1", "--tags", "村民群，东湾村", "--keep-names"])
    assert changed.exit_code == 0, changed.output
    assert "东湾村" in runner.invoke(app, ["groups", "list"]).output
    assert runner.invoke(app, ["groups", "set", "99"]).exit_code == 1
    missing = runner.invoke(app, ["groups", "set", "99", "--name", "x"])
    assert missing.exit_code == 1 and "不存在" in missing.output


def test_import_chats_group_and_format_options(fresh_db_url: str) -> None:
    res = runner.invoke(
        app,
        [
            "import-chats",
            str(FIXTURES / "simple_liushu.csv"),
            "--group",
            "柳树村网格群",
            "--format",
            "wechat-csv",
        ],
    )
    assert res.exit_code == 0 and "柳树村网格群（4）" in res.output
    wrong = runner.invoke(app, ["import-chats", str(FIXTURES / "simple_liushu.csv"), "--format", "qq-csv"])
    assert wrong.exit_code == 1 and "未知格式" in wrong.output


def test_import_chats_bad_files(fresh_db_url: str, tmp_path) -> None:
    files = [str(FIXTURES / "unknown_layout.csv"), str(FIXTURES / "telegram_single.json")]
    res = runner.invoke(app, ["import-chats", *files])
    assert res.exit_code == 1
    assert "至少需要" in res.output and "南坪村通知频道（2）" in res.output  # the good file still imports
    gone = runner.invoke(app, ["import-chats", str(tmp_path / "nothing.txt")])
    assert gone.exit_code == 1 and "找不到文件" in gone.output
    assert "没有" in runner.invoke(app, ["import-chats", str(tmp_path)]).output


def test_import_a_whole_folder(fresh_db_url: str, tmp_path) -> None:
    import shutil

    for name in ("qq_dongwan.txt", "simple_liushu.csv", "telegram_single.json"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    (tmp_path / "readme.md").write_text("不是导出文件", encoding="utf-8")
    res = runner.invoke(app, ["import-chats", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "qq_dongwan.txt（qq-txt）" in res.output and "telegram_single.json（telegram-json）" in res.output
    assert "readme" not in res.output


def test_purge_dry_run_and_real(fresh_db_url: str) -> None:
    runner.invoke(app, ["import-chats", str(FIXTURES / "qq_dongwan.txt")])
    dry = runner.invoke(app, ["purge", "--days", "1", "--dry-run"])
    assert dry.exit_code == 0 and "将删除" in dry.output and "群消息 6 条" in dry.output
    real = runner.invoke(app, ["purge", "--days", "1"])
    assert real.exit_code == 0 and "已删除" in real.output and "群消息 6 条" in real.output
    assert "群消息 0 条" in runner.invoke(app, ["purge", "--days", "1"]).output


def test_nightly_purge_job_is_scheduled_and_runs(fresh_db_url: str, monkeypatch) -> None:
    from sqlalchemy import func, select

    from core.db import session_scope
    from core.settings import get_settings
    from core.tables import Post
    from yuqing.scheduler import collect_jobs

    runner.invoke(app, ["import-chats", str(FIXTURES / "qq_dongwan.txt")])
    monkeypatch.setenv("YUQING_RETENTION_DAYS", "1")
    get_settings.cache_clear()
    job = next(j for j in collect_jobs(get_settings()) if j.id == "chats.purge")
    assert job.cron == "03:30"
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 6
    job.func()
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 0
