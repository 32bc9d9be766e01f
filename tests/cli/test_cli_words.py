"""The command line in staff's words, run as staff and scripts run it (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _yuqing(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "yuqing.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120, check=False)


def test_users_add_from_a_script_reads_the_password_from_stdin(fresh_db_url: str) -> None:
    """No terminal: getpass used to abort with a GetPassWarning."""
    added = _yuqing("users", "add", "wuqiang", "--role", "staff", stdin="a-good-password\n")
    assert added.returncode == 0, added.stderr
    assert "已创建用户 wuqiang（工作人员）" in added.stdout and "GetPassWarning" not in added.stderr
    listed = _yuqing("users", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "wuqiang" in line)
    assert "工作人员" in row and "staff" not in row  # the word `users add` used
    short = _yuqing("users", "add", "zhaoliu", stdin="short\n")
    assert short.returncode == 1 and "密码至少 8 个字符" in short.stderr + short.stdout


def test_help_pages_read_chinese_to_the_end() -> None:
    out = _yuqing("users", "add", "--help").stdout
    assert "用法：" in out and "选项" in out and "显示本帮助并退出" in out and "必填" in out
    assert "Show this message" not in out and "Usage:" not in out
