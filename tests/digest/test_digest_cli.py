"""`yuqing digest` end to end: files, printing, sending once, clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.db import make_engine
from core.settings import get_settings
from core.tables import Digest
from tests.digest.scenario import DAY, seed_busy_day
from tests.digest.smtp import SmtpServer
from yuqing.cli import app

runner = CliRunner()


@pytest.fixture
def cli_db(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The busy day in a fresh database, and a recipients file, configured through the environment."""
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        seed_busy_day(s)
        s.commit()
    recipients = tmp_path / "digest.yaml"
    recipients.write_text(yaml.safe_dump({"title": "青禾镇舆情日报",
                                          "recipients": [{"email": "shuji@qinghe.example", "name": "王书记"}]},
                                         allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("YUQING_DIGEST_RECIPIENTS_FILE", str(recipients))
    monkeypatch.setenv("YUQING_SMTP_TIMEOUT", "5")
    get_settings.cache_clear()
    yield fresh_db_url
    engine.dispose()
    get_settings.cache_clear()


def _use_smtp(monkeypatch: pytest.MonkeyPatch, server: SmtpServer) -> None:
    monkeypatch.setenv("YUQING_SMTP_HOST", server.host)
    monkeypatch.setenv("YUQING_SMTP_PORT", str(server.port))
    get_settings.cache_clear()


def _digests(url: str) -> list[tuple[int, str]]:
    engine = make_engine(url)
    with Session(engine) as s:
        rows = [(d.revision, d.status) for d in s.scalars(select(Digest).order_by(Digest.id))]
    engine.dispose()
    return rows


def test_out_writes_html_text_and_charts(cli_db: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["digest", "--date", DAY.isoformat(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["categories.png", "digest.html", "digest.txt", "spread.png"]
    text = (out / "digest.txt").read_text(encoding="utf-8")
    html = (out / "digest.html").read_text(encoding="utf-8")
    assert "合计 42 条" in text and "合计 42 条" in html
    assert 'src="spread.png"' in html and "cid:" not in html  # opens in a browser from the folder
    assert (out / "spread.png").read_bytes().startswith(b"\x89PNG")
    assert _digests(cli_db) == []  # a preview stores nothing


def test_without_options_prints_the_text(cli_db: str) -> None:
    result = runner.invoke(app, ["digest", "--date", DAY.isoformat()])
    assert result.exit_code == 0, result.output
    assert "青禾镇舆情日报" in result.output and "【今日概况】" in result.output


def test_send_twice_sends_once_and_force_sends_again(cli_db: str, smtp_server: SmtpServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _use_smtp(monkeypatch, smtp_server)
    first = runner.invoke(app, ["digest", "--date", DAY.isoformat(), "--send"])
    assert first.exit_code == 0, first.output
    assert "已发送" in first.output and "shuji@qinghe.example" in first.output
    second = runner.invoke(app, ["digest", "--date", DAY.isoformat(), "--send"])
    assert second.exit_code == 0 and "未重复发送" in second.output and "--force" in second.output
    assert len(smtp_server.inbox.envelopes) == 1
    forced = runner.invoke(app, ["digest", "--date", DAY.isoformat(), "--send", "--force"])
    assert forced.exit_code == 0 and "第 2 版" in forced.output
    assert len(smtp_server.inbox.envelopes) == 2
    assert _digests(cli_db) == [(0, "sent"), (1, "sent")]


def test_send_with_mail_server_down_keeps_the_digest(cli_db: str, smtp_down: SmtpServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _use_smtp(monkeypatch, smtp_down)
    result = runner.invoke(app, ["digest", "--date", DAY.isoformat(), "--send"])
    assert result.exit_code == 1
    assert "发送失败" in result.output and "自动重试" in result.output
    assert _digests(cli_db) == [(0, "failed")]


@pytest.mark.parametrize("args, needle", [
    (["--date", "2026-13-01"], "YYYY-MM-DD"),
    (["--date", "2999-01-01"], "还没有到"),
    (["--force"], "--send"),
])
def test_bad_options_are_explained(cli_db: str, args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["digest", *args])
    assert result.exit_code == 2 and needle in result.output


def test_bad_timezone_is_explained(cli_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_TIMEZONE", "Asia/Qinghe")
    get_settings.cache_clear()
    result = runner.invoke(app, ["digest"])
    assert result.exit_code == 2 and "YUQING_TIMEZONE" in result.output


def test_send_without_recipients_is_explained(cli_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUQING_DIGEST_RECIPIENTS_FILE")
    get_settings.cache_clear()
    result = runner.invoke(app, ["digest", "--date", DAY.isoformat(), "--send"])
    assert result.exit_code == 1 and "YUQING_DIGEST_RECIPIENTS_FILE" in result.output


def test_empty_day_prints_the_short_digest(cli_db: str) -> None:
    result = runner.invoke(app, ["digest", "--date", "2026-06-01"])
    assert result.exit_code == 0 and "今日无异常" in result.output


def test_uninitialised_database_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["digest", "--date", DAY.isoformat()])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "yuqing db upgrade" in " ".join(result.output.split())
