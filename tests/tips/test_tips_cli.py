"""`yuqing tips import`: a 12345-style hotline CSV in GBK, imported twice, stores each call once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from core.db import make_engine, session_scope
from core.tables import Tip
from yuqing.cli import app

runner = CliRunner()

CSV = "来电时间,来电人,诉求内容\n2026-12-01 08:30,13912345678,听说东湾村的桥塌了，是真的吗\n" \
      "2026/12/01 09:05:00,市民A,菜市场猪肉有猪瘟吗\n昨天,市民B,时间不对的一行\n2026-12-01 10:00,市民C,\n"


def test_hotline_csv_import_is_idempotent_and_reports_bad_rows(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "12345.csv"
    path.write_bytes(CSV.encode("gb18030"))
    first = runner.invoke(app, ["tips", "import", str(path)])
    assert first.exit_code == 0, first.output
    assert "新增 2 条" in first.output and "无效 2 行" in first.output and "第 4 行" in first.output
    second = runner.invoke(app, ["tips", "import", str(path)])
    assert "新增 0 条" in second.output and "已存在 2 条" in second.output
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        tips = list(s.scalars(select(Tip).order_by(Tip.received_at)))
        assert [t.channel for t in tips] == ["hotline", "hotline"]
        assert tips[0].received_at.hour == 0 and tips[0].received_at.minute == 30  # 08:30 Asia/Shanghai
        assert "13912345678" not in tips[0].text + (tips[0].contact_sealed or "") + tips[0].reporter_key
        assert all(t.status == "acknowledged" and not t.wants_answer for t in tips)
    engine.dispose()


def test_a_file_without_the_columns_names_them(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    result = runner.invoke(app, ["tips", "import", str(path)])
    assert result.exit_code == 1 and "时间" in result.output and "内容" in result.output
    help_page = runner.invoke(app, ["tips", "import", "--help"])
    assert "12345" in help_page.output and "用法：" in help_page.output
