"""The command line: every command explains itself, and the main job comes up serving /health."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from yuqing.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _all_command_paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]

    def walk(cmd, prefix: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(get_command(app), [])
    return paths


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "yuqing")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "用法：" in result.output and "Show this message" not in result.output


def test_users_add_and_list(fresh_db_url: str) -> None:
    added = runner.invoke(app, ["users", "add", "zhao", "--role", "analyst", "--password-stdin"],
                          input="a-good-password\n")
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    assert token.startswith("yq_")
    listed = runner.invoke(app, ["users", "list"])
    assert "zhao" in listed.output and "分析员" in listed.output  # the role as `users add` names it
    again = runner.invoke(app, ["users", "add", "zhao", "--password-stdin"], input="a-good-password\n")
    assert again.exit_code == 1 and "已存在" in again.output
    short = runner.invoke(app, ["users", "add", "qian", "--password-stdin"], input="short\n")
    assert short.exit_code == 1
    tok = runner.invoke(app, ["tokens", "create", "bot1", "--user", "zhao", "--bot"])
    assert tok.exit_code == 0 and tok.output.strip().splitlines()[-1].startswith("yq_")
    missing = runner.invoke(app, ["tokens", "create", "x", "--user", "nobody"])
    assert missing.exit_code == 1 and "不存在" in missing.output


def test_db_upgrade_names_what_an_older_development_database_lacks(fresh_db_url: str) -> None:
    from sqlalchemy import text

    from core.db import make_engine

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0  # a current database passes
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:  # as a database made before these were added would be
        conn.execute(text("DROP TABLE ended_sessions"))
        conn.execute(text("ALTER TABLE users DROP COLUMN sessions_valid_from"))
    engine.dispose()
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "ended_sessions" in result.output and "users.sessions_valid_from" in result.output
    assert "删除该数据库" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_make_run_setup_serves_health(tmp_path: Path) -> None:
    """What `make run` does after installing: `yuqing run --demo` in an empty folder."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUQING_")}
    env |= {"YUQING_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(REPO), "YUQING_DEMO_SITE_PORT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "yuqing.cli", "run", "--demo", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert body == {"status": "ok", "database": "ok"}, proc.stdout.read() if proc.poll() is not None else ""
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "admin" in out and "密码" in out
    assert (tmp_path / "var" / "yuqing.db").exists()
