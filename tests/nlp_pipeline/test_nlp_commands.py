"""The stage's commands: debunks import/list, analyze, classify (CSV in, CSV out, no database)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from core.db import make_engine, session_scope
from core.ingest import ingest_posts
from nlp.cues import term_label
from nlp.debunks import read_debunk_file
from nlp.prevalence import adjust
from nlp.prevalence_store import train_prior_of
from nlp.scoring import default_model_path
from tests.nlp_pipeline.conftest import DEMO_DEBUNKS, ORDINARY, STORY_A, sample_items
from yuqing.cli import app

STREAM = Path(__file__).resolve().parents[1] / "fixtures" / "prevalence" / "stream.csv"

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
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)  # inside the rumor-share window
    with session_scope(engine) as session:
        ingest_posts(session, [{**item, "published_at": recent + dt.timedelta(minutes=n)}
                               for n, item in enumerate(sample_items())])
    result = runner.invoke(app, ["analyze", "--quiet"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"已分析 {len(sample_items())} 条" in said and "无法判断 1 条" in said  # "收到"
    # the first run estimates the rumor share (too few chat posts for their own: the default)
    assert "谣言占比估计：全部 1.0%" in said and "默认值" in said
    again = runner.invoke(app, ["analyze", "--quiet"])
    assert "没有待分析的帖子" in again.output
    now = runner.invoke(app, ["analyze", "--quiet", "--reestimate"])
    assert now.exit_code == 0 and "谣言占比估计：全部" in now.output
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
            "--prevalence",
            "0.2",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "使用模型 2026.11.0" in said and "按指定的谣言占比 20.0%" in said
    assert out.read_bytes().startswith(b"\xef\xbb\xbfid,") and out.read_bytes().count(b"\xef\xbb\xbf") == 1
    with out.open(encoding="utf-8-sig") as fh:  # one BOM, at the start: Excel reads it as UTF-8
        scored = list(csv.DictReader(fh))
    assert [r["id"] for r in scored] == [r["id"] for r in rows]
    assert list(scored[0]) == ["id", "content", "group", "rumor_probability", "label", "raw_score",
                               "abstain_reason", "top_terms"]
    expected = rumor_model.predict_proba([r["content"] for r in rows])
    prior = train_prior_of(rumor_model.card, default_model_path())
    judged = []
    for row, p in zip(scored, expected, strict=True):
        assert abs(float(row["raw_score"]) - p) < 1e-3
        if row["label"] == "无法判断":  # "收到", the empty row: no number, a reason
            assert row["rumor_probability"] == "" and row["abstain_reason"]
            continue
        q = float(row["rumor_probability"])
        assert abs(q - float(adjust(p, prior, 0.2))) < 1e-3
        judged.append((q, row["label"]))
    assert {r["label"] for r in scored if r["content"] in ("收到", "")} == {"无法判断"}
    # one threshold: every row called a rumor is more probable than every row that is not
    ones = [q for q, lab in judged if lab == "1"]
    zeros = [q for q, lab in judged if lab == "0"]
    assert ones and zeros and min(ones) > max(zeros)
    assert any(r["top_terms"] for r in scored)
    # the same terms the model explains, cues named in Chinese as staff read them
    explained = rumor_model.explain([r["content"] for r in rows], k=5)
    for row, terms in zip(scored, explained, strict=True):
        assert [t.rsplit(":", 1)[0] for t in row["top_terms"].split()] == [term_label(t) for t, w in terms if w > 0]
    assert not any("cue:" in r["top_terms"] for r in scored)
    assert not (tmp_path / "scored.csv.part").exists() and not (tmp_path / "scored.csv.scored.part").exists()


def test_classify_estimates_the_rumor_share_of_the_file(tmp_path) -> None:
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["classify", "-i", str(STREAM), "-o", str(out), "--text-column", "正文",
                                 "--prevalence", "auto", "-q"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "由文件估计的谣言占比" in said and "方法 BBE" in said and "随软件发布的模型" in said
    with out.open(encoding="utf-8-sig") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    # chatter gets no decision, whatever the model's raw score ("恭喜…考上大学" scores 0.9)
    for i in ("36", "37", "38", "39", "40"):
        assert rows[i]["label"] == "无法判断" and rows[i]["rumor_probability"] == ""
    assert float(rows["38"]["raw_score"]) > 0.8
    # the notices are not rumors, and the clearest claims are
    assert sum(rows[str(i)]["label"] == "1" for i in range(1, 31)) <= 2
    assert sum(rows[str(i)]["label"] == "1" for i in range(31, 36)) >= 2
    # 5 claims among the 33 rows it can judge (15%): the estimate is near that
    share = float(said.split("由文件估计的谣言占比 ")[1].split("%")[0]) / 100
    assert 0.15 / 1.5 <= share <= 0.15 * 1.5
    # a share given by hand moves the probabilities, not the raw scores
    low = tmp_path / "low.csv"
    assert runner.invoke(app, ["classify", "-i", str(STREAM), "-o", str(low), "--text-column", "正文",
                               "--prevalence", "1%", "-q"]).exit_code == 0
    with low.open(encoding="utf-8-sig") as fh:
        low_rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert low_rows["31"]["raw_score"] == rows["31"]["raw_score"]
    assert float(low_rows["31"]["rumor_probability"]) < float(rows["31"]["rumor_probability"])
    bad = runner.invoke(app, ["classify", "-i", str(STREAM), "-o", str(low), "--text-column", "正文",
                              "--prevalence", "1.5"])
    assert bad.exit_code == 1 and "--prevalence" in bad.output


def test_classify_uses_the_active_model_of_the_registry(fresh_db_url: str, tmp_path) -> None:
    from core.tables import ModelVersion
    from nlp.registry import ensure_registered

    with session_scope(make_engine(fresh_db_url)) as session:
        row = ensure_registered(session)
        row.note = "测试"
        version = row.version
        assert session.query(ModelVersion).count() == 1
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["classify", "-i", str(STREAM), "-o", str(out), "--text-column", "正文", "-q"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"使用模型 {version}（数据库中当前启用的模型）" in said


def test_classify_reads_a_gbk_csv_as_excel_saves_it(tmp_path) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes("编号,正文\r\n1,紧急扩散！！明天全县封城，赶紧去超市抢购\r\n2,县卫生健康局通报今日新增病例0例\r\n"
                       .encode("gbk"))
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["classify", "-i", str(source), "-o", str(out), "--text-column", "正文",
                                 "--prevalence", "0.3", "-q"])
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


def test_classify_keeps_an_input_column_named_like_its_own(tmp_path) -> None:
    source = tmp_path / "labelled.csv"
    source.write_text("text,label\n紧急扩散！！明天全县封城，赶紧去超市抢购,0\n县卫生健康局通报今日新增病例0例,1\n",
                      encoding="utf-8")
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["classify", "-i", str(source), "-o", str(out), "--prevalence", "0.3", "-q"])
    assert result.exit_code == 0, result.output
    assert "label → label_原始" in result.output
    with out.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label_原始"] for r in rows] == ["0", "1"]  # the analyst's own verdicts, untouched
    assert [r["label"] for r in rows] == ["1", "0"]  # the model's


def test_classify_reads_standard_input_and_writes_standard_output() -> None:
    result = runner.invoke(app, ["classify", "-i", "-", "-o", "-", "--prevalence", "0.3", "-q"],
                           input="text\n紧急扩散！！明天全县封城，赶紧去超市抢购\n县卫生健康局通报今日新增病例0例\n")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["label"] for r in rows] == ["1", "0"] and "rumor_probability" in rows[0]
