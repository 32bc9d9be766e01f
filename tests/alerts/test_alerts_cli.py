"""`yuqing alerts ...` and `yuqing notify deliver` from the command line, and the scheduler's jobs."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from core.db import make_engine, session_scope
from core.settings import get_settings
from core.tables import Alert, Notification
from tests.factories import story_with_posts
from yuqing.cli import app
from yuqing.scheduler import collect_jobs

runner = CliRunner()


def test_rules_validate_default_and_broken_files(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["alerts", "rules", "validate"])
    assert ok.exit_code == 0, ok.output
    assert "规则文件有效" in ok.output and "通知路由有效" in ok.output
    broken = tmp_path / "rules.yaml"
    broken.write_text(
        "rules:\n  - {id: r1, name: 太宽, kind: rumor_probability, min_probability: 3}\n", encoding="utf-8"
    )
    bad = runner.invoke(app, ["alerts", "rules", "validate", str(broken)])
    assert bad.exit_code == 1 and "rules.0" in bad.output and "min_probability" in bad.output
    missing = runner.invoke(app, ["alerts", "rules", "validate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "找不到规则文件" in missing.output
    routes = tmp_path / "notify.yaml"
    routes.write_text("routes:\n  - {name: x, channel: webhook}\n", encoding="utf-8")
    from alerts.rules import DEFAULT_RULES_FILE

    bad_routes = runner.invoke(
        app, ["alerts", "rules", "validate", str(DEFAULT_RULES_FILE), "--notify", str(routes)]
    )
    assert bad_routes.exit_code == 1 and "规则文件有效" in bad_routes.output and "url" in bad_routes.output


def test_evaluate_and_deliver_commands(fresh_db_url: str, tmp_path: Path, monkeypatch, webhook) -> None:
    routes = tmp_path / "notify.yaml"
    routes.write_text(
        f"routes:\n  - {{name: 群, channel: wecom, url: '{webhook.url}', min_severity: low, "
        "quiet_hours: false}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("YUQING_NOTIFY_CONFIG_FILE", str(routes))
    get_settings.cache_clear()
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        story_with_posts(s, 5, groups=3, probability=0.95)
    first = runner.invoke(app, ["alerts", "evaluate"])
    assert first.exit_code == 0, first.output
    assert "新预警" in first.output
    again = runner.invoke(app, ["alerts", "evaluate"])
    assert again.exit_code == 0
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 1
        assert s.scalar(select(func.count()).select_from(Notification)) == 1
    sent = runner.invoke(app, ["notify", "deliver"])
    assert sent.exit_code == 0 and "已发送 1 条" in sent.output, sent.output
    assert len(webhook.received) == 1 and webhook.received[0]["json"]["msgtype"] == "markdown"
    assert runner.invoke(app, ["alerts", "escalate"]).exit_code == 0
    engine.dispose()


def test_scheduler_has_the_alert_jobs() -> None:
    jobs = {job.id: job for job in collect_jobs(get_settings())}
    assert {"alerts-evaluate", "notify-deliver", "alerts-escalate"} <= set(jobs)
    assert jobs["notify-deliver"].seconds == 30
