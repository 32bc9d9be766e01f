"""`-` reads standard input wherever a command reads a file (for scripts and pipes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from core.db import make_engine, session_scope
from core.settings import get_settings
from core.tables import Debunk, Post
from yuqing.cli import app

runner = CliRunner()


@pytest.fixture
def env(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("YUQING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    return fresh_db_url


def _count(url: str, table: type) -> int:
    engine = make_engine(url)
    with session_scope(engine) as s:
        n = s.scalar(select(func.count()).select_from(table)) or 0
    engine.dispose()
    return n


def test_debunks_and_chats_import_from_standard_input(env: str) -> None:
    csv_text = "claim,refutation,publisher\n东湾村自来水被化工厂污染,经检测水质合格,青禾镇人民政府\n"
    assert runner.invoke(app, ["debunks", "import", "-"], input=csv_text).exit_code == 0
    assert _count(env, Debunk) == 1
    yaml_text = "- claim: 石桥村明天停电三天\n  refutation: 供电所没有停电计划\n"
    assert runner.invoke(app, ["debunks", "import", "-", "--format", "yaml"], input=yaml_text).exit_code == 0
    assert _count(env, Debunk) == 2
    chat = "时间,发送者,内容\n2026-11-28 19:02:00,张大姐,听说东湾村的水不能喝了\n2026-11-28 19:03:00,老李,真的假的？\n"
    auto = runner.invoke(app, ["import-chats", "-"], input=chat)
    assert auto.exit_code == 1 and "--format" in auto.output
    done = runner.invoke(app, ["import-chats", "-", "--format", "wechat-csv", "--group", "东湾村村民群"], input=chat)
    assert done.exit_code == 0, done.output
    assert _count(env, Post) == 2


def test_config_files_validate_from_standard_input(env: str) -> None:
    rules = (Path(__file__).resolve().parents[2] / "alerts" / "rules.yaml").read_text(encoding="utf-8")
    assert runner.invoke(app, ["alerts", "rules", "validate", "-"], input=rules).exit_code == 0
    broken = runner.invoke(app, ["alerts", "rules", "validate", "-"], input="rules: [{kind: nonsense}]\n")
    assert broken.exit_code == 1
    sources = ("sources:\n  - name: 青禾镇新闻网\n    kind: feed\n    urls: [\"http://127.0.0.1:9/feed.xml\"]\n"
               "    interval: 10m\n")
    ok = runner.invoke(app, ["sources", "validate", "-"], input=sources)
    assert ok.exit_code == 0 and "检查通过" in ok.output


def test_categories_train_reads_its_csv_from_standard_input(env: str, tmp_path: Path) -> None:
    texts = ["河水涨到河堤了", "堤坝有渗水", "防汛物资到了吗", "水库开闸泄洪", "河道水位上涨", "沙袋够不够"]
    rows = "".join(f"{t}{i},防汛\n" for i in range(2) for t in texts)
    few = runner.invoke(app, ["categories-train", "--csv", "-", "--min-per-category", "2"],
                        input="text,category\n" + rows)
    # our default taxonomy has no 防汛: the refusal names the line, read from standard input
    assert few.exit_code == 1 and "防汛" in few.output
