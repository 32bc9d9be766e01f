"""Every list command has --json: one JSON document on standard output, for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.db import make_engine, session_scope
from core.ingest import ingest_posts
from core.settings import get_settings
from yuqing.cli import app

runner = CliRunner()

LIST_COMMANDS = [["users", "list"], ["groups", "list"], ["sources", "list"], ["debunks", "list"],
                 ["models", "list"], ["models", "history"], ["labels", "list"], ["labels", "conflicts"],
                 ["labels", "queue"], ["topics"]]


@pytest.fixture
def env(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped_model_dir: Path) -> str:
    monkeypatch.setenv("YUQING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        ingest_posts(s, [{"source": "青禾论坛", "external_id": "j1", "text": "东湾村明天停水，大家存点水"},
                         {"channel": "chat", "group": {"platform": "qq", "external_id": "g9", "name": "东湾村村民群"},
                          "external_id": "m1", "text": "收到"}])
    engine.dispose()
    assert runner.invoke(app, ["users", "add", "zhao", "--role", "analyst", "--password-stdin"],
                         input="a-good-password\n").exit_code == 0
    return fresh_db_url


@pytest.mark.parametrize("command", LIST_COMMANDS, ids=" ".join)
def test_list_commands_print_json(env: str, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert isinstance(payload, dict | list)
    if command == ["users", "list"]:
        assert [u["username"] for u in payload["items"]] == ["zhao"] and payload["items"][0]["role"] == "analyst"
    if command == ["groups", "list"]:
        assert payload["items"][0]["name"] == "东湾村村民群"
    if command == ["sources", "list"]:
        assert any(s["name"] == "青禾论坛" for s in payload["items"])
    if command == ["models", "list"]:
        assert payload[0]["status"] == "active"
