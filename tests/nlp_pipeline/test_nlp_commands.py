"""The stage's commands: debunks import/list, analyze, classify (CSV in, CSV out, no database)."""

from __future__ import annotations

import csv
import json

from sqlalchemy import text
from typer.testing import CliRunner

from core.db import make_engine, session_scope
from core.ingest import ingest_posts
from nlp.cues import term_label
from nlp.debunks import read_debunk_file
from tests.nlp_pipeline.conftest import DEMO_DEBUNKS, ORDINARY, STORY_A, sample_items
from yuqing.cli import app

runner = CliRunner()


def test_debunks_import_twice_and_list(fresh_db_url: str) -> None:
    first = runner.invoke(app, ["debunks", "import", str(DEMO_DEBUNKS)])
    assert first.exit_code == 0, first.output
    n = len(read_debunk_file(DEMO_DEBUNKS))
    assert f"新增 {n} 条" in first.output
    again = runner.invoke(app, ["debunks", "import", str(DEMO_DEBUNKS)])
    assert "新增 0 条" in again.output and f"未变 {n} 条" in again.output
    listed = runner.invoke(app, ["debunks", "list", "--search", "自来水", "--json"])
    body = json.loads(listed.output)
    assert body["total"] == 1 and body["items"][0]["publisher"] == "青禾县水务局"
    table = runner.invoke(app, ["debunks", "list"])
    assert f"共 {n} 条" in table.output and "[转]" not in table.output


def test_debunks_import_bad_file(fresh_db_url: str, tmp_path) -> None:
    bad = tmp_path / "wrong.csv"
    bad.write_text("text,label\n青禾镇封城,1\n", encoding="utf-8")
    result = runner.invoke(app, ["debunks", "import", str(bad)])
    assert result.exit_code == 1 and "缺少列" in result.output


def test_analyze_command(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as session:
        ingest_posts(session, sample_items())
    result = runner.invoke(app, ["analyze", "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"已分析 {len(sample_items())} 条" in result.output
    again = runner.invoke(app, ["analyze", "--quiet"])
    assert "没有待分析的帖子" in again.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM posts WHERE analyzed_at IS NULL")).scalar() == 0
    engine.dispose()


def test_classify_csv_streams_in_chunks(tmp_path, rumor_model) -> None:
    source = tmp_path / "posts.csv"
    rows = [{"id": str(i), "content": t, "group": "青禾镇群"} for i, t in enumerate(STORY_A + ORDINARY)]
    rows.append({"id": "99", "content": "", "group": "空"})
    with source.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "content", "group"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "scored.csv"
    result = runner.invoke(
        app,
        [
            "classify",
            "--input",
            str(source),
            "--output",
            str(out),
            "--text-column",
            "content",
            "--chunk-size",
            "3",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbfid,") and out.read_bytes().count(b"\xef\xbb\xbf") == 1
    with out.open(encoding="utf-8-sig") as fh:  # one BOM, at the start: Excel reads it as UTF-8
        scored = list(csv.DictReader(fh))
    assert [r["id"] for r in scored] == [r["id"] for r in rows]
    assert list(scored[0]) == ["id", "content", "group", "rumor_probability", "label", "top_terms"]
    expected = rumor_model.predict_proba([r["content"] for r in rows])
    for row, p in zip(scored, expected, strict=True):
        assert abs(float(row["rumor_probability"]) - p) < 1e-3
        assert row["label"] == ("1" if p >= 0.5 else "0")
    assert any(r["top_terms"] for r in scored)
    # the same terms the model explains, cues named in Chinese as staff read them
    explained = rumor_model.explain([r["content"] for r in rows], k=5)
    for row, terms in zip(scored, explained, strict=True):
        assert [t.rsplit(":", 1)[0] for t in row["top_terms"].split()] == [term_label(t) for t, w in terms if w > 0]
    assert not any("cue:" in r["top_terms"] for r in scored)
    assert not (tmp_path / "scored.csv.part").exists()


def test_classify_reads_a_gbk_csv_as_excel_saves_it(tmp_path) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes("编号,正文\r\n1,紧急扩散！！明天全县封城，赶紧去超市抢购\r\n2,县卫生健康局通报今日新增病例0例\r\n"
                       .encode("gbk"))
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["classify", "-i", str(source), "-o", str(out), "--text-column", "正文", "-q"])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["正文"][:4] for r in rows] == ["紧急扩散", "县卫生健"]
    assert rows[0]["label"] == "1" and rows[1]["label"] == "0"
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\xe6\xad\xa3\xe6\x96\x87\n" + b"\x80\xff\x80\n" * 3)
    bad = runner.invoke(app, ["classify", "-i", str(garbage), "-o", str(tmp_path / "g.csv"), "--text-column", "正文", "-q"])
    said = " ".join(bad.output.split())  # rich wraps long lines at the runner's width
    assert bad.exit_code == 1 and "CSV UTF-8" in said and not (tmp_path / "g.csv").exists()


def test_classify_missing_column_says_which_columns_exist(tmp_path) -> None:
    source = tmp_path / "posts.csv"
    source.write_text("id,正文\n1,青禾镇明天封城\n", encoding="utf-8")
    result = runner.invoke(app, ["classify", "--input", str(source), "--output", str(tmp_path / "o.csv")])
    assert result.exit_code == 1
    assert (
        "没有名为 'text' 的列" in result.output
        and "正文" in result.output
        and "--text-column" in result.output
    )
    assert not (tmp_path / "o.csv").exists()
    missing = runner.invoke(
        app, ["classify", "--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.csv")]
    )
    assert missing.exit_code == 1 and "不存在" in missing.output
    same = runner.invoke(app, ["classify", "--input", str(source), "--output", str(source)])
    assert same.exit_code == 1 and "不能和输入文件相同" in same.output
