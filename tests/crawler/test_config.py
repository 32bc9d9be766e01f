"""The sources file: validation names the source and key of every error; `yuqing sources validate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crawler.config import SourcesFileError, load_sources, parse_interval, parse_sources
from crawler.demo import demo_sources_text
from yuqing.cli import app

runner = CliRunner()


def test_issue_example_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(demo_sources_text("http://127.0.0.1:1"), encoding="utf-8")
    parsed = load_sources(path)
    assert [s.kind for s in parsed.sources] == ["html", "html", "html", "feed", "feed", "json"]
    assert parsed.get("东湾村村民交流区").group is not None
    forum = parsed.get("青禾论坛")
    assert forum.interval == 120 and forum.obey_robots and forum.enabled
    assert forum.detail is not None and forum.detail.replies is not None
    assert forum.public()["list"]["item_links"] == "a.thread-title::attr(href)"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), (60, 60)])
def test_intervals(text: str | int, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("bad", ["5x", "m", "1s", "", "-3m", True])
def test_bad_intervals(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_interval(bad)  # type: ignore[arg-type]


def test_errors_point_at_source_and_key() -> None:
    raw = {"sources": [
        {"name": "好的源", "kind": "feed", "urls": ["https://a.example.cn/rss"], "interval": "15m"},
        {"name": "乡镇论坛", "kind": "html", "urls": ["bbs.example.cn"], "interval": "10x",
         "detail": {"body": "div[", "titel": "h1"}},
        {"name": "本地App", "kind": "json", "urls": ["https://api.example.cn/p?page={page}"], "interval": "5m",
         "items": "data.list", "fields": {"id": "id", "text": "content"}},
        {"name": "好的源", "kind": "rss", "urls": ["https://b.example.cn/"], "interval": "1h"},
    ]}
    with pytest.raises(SourcesFileError) as err:
        parse_sources(raw)
    message = str(err.value)
    assert "第 2 个信息源「乡镇论坛」的 urls" in message
    assert "第 2 个信息源「乡镇论坛」的 interval" in message and "10x" in message
    assert "detail.body" in message and "div[" in message
    assert "detail.titel" in message and "不认识这个键" in message
    assert "第 3 个信息源「本地App」" in message and "text" in message
    assert "第 4 个信息源「好的源」的 kind" in message


def test_duplicate_names_and_missing_keys() -> None:
    entry = {"name": "重复", "kind": "feed", "urls": ["https://a.example.cn/rss"], "interval": "15m"}
    with pytest.raises(SourcesFileError, match="重复"):
        parse_sources({"sources": [entry, entry]})
    with pytest.raises(SourcesFileError, match="html 类信息源必须有 detail"):
        parse_sources({"sources": [entry | {"kind": "html"}]})
    with pytest.raises(SourcesFileError, match="顶层必须是"):
        parse_sources(["not", "a", "mapping"])
    with pytest.raises(SourcesFileError, match="spider"):
        parse_sources({"sources": [entry | {"kind": "custom"}]})


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: x\n    urls: [unclosed\n", encoding="utf-8")
    with pytest.raises(SourcesFileError, match="YAML 格式有误（第"):
        load_sources(bad)
    with pytest.raises(SourcesFileError, match="不存在"):
        load_sources(tmp_path / "none.yaml")
    gbk = tmp_path / "gbk.yaml"
    gbk.write_bytes("sources:\n  - name: 青禾\n".encode("gbk"))
    with pytest.raises(SourcesFileError, match="UTF-8"):
        load_sources(gbk)


def test_validate_command(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(demo_sources_text("http://127.0.0.1:1"), encoding="utf-8")
    ok = runner.invoke(app, ["sources", "validate", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "检查通过" in ok.output and "共 6 个信息源" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text(encoding="utf-8").replace("interval: 2m", "interval: soon", 1), encoding="utf-8")
    failed = runner.invoke(app, ["sources", "validate", str(bad)])
    assert failed.exit_code == 1
    assert "青禾镇新闻网" in failed.output and "interval" in failed.output
    custom = tmp_path / "custom.yaml"
    custom.write_text("sources:\n  - {name: 自定义, kind: custom, spider: nosuch.module.Spider,"
                      " urls: ['https://x.example.cn/'], interval: 1h}\n", encoding="utf-8")
    failed = runner.invoke(app, ["sources", "validate", str(custom)])
    assert failed.exit_code == 1 and "无法导入" in failed.output


def test_crawl_command_errors_before_crawling(tmp_path: Path, fresh_db_url: str) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(demo_sources_text("http://127.0.0.1:1"), encoding="utf-8")
    unknown = runner.invoke(app, ["crawl", "--sources", str(good), "--source", "不存在的源"])
    assert unknown.exit_code == 1 and "没有名为 '不存在的源' 的信息源" in unknown.output
    missing = runner.invoke(app, ["crawl", "--sources", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "不存在" in missing.output


def test_distributed_without_redis_is_a_clear_error(tmp_path: Path, fresh_db_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings

    monkeypatch.delenv("YUQING_REDIS_URL", raising=False)
    get_settings.cache_clear()
    good = tmp_path / "good.yaml"
    good.write_text(demo_sources_text("http://127.0.0.1:1"), encoding="utf-8")
    result = runner.invoke(app, ["crawl", "--sources", str(good), "--distributed"])
    assert result.exit_code == 1 and "YUQING_REDIS_URL" in result.output
