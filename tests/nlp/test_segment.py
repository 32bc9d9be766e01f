from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from nlp.segment import DOMAIN_DICT, Segmenter, read_user_dict

BACKENDS = ["rjieba", "jieba"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_domain_words_stay_whole(backend, tmp_path):
    seg = Segmenter(backend=backend, cache_dir=tmp_path)
    toks = seg.cut("紧急扩散，县卫生健康局说明天全员核酸，不要囤货")
    for w in ("紧急扩散", "县卫生健康局", "全员核酸", "囤货"):
        assert w in toks, (w, toks)


@pytest.mark.parametrize("backend", BACKENDS)
def test_placeholders_are_single_tokens(backend, tmp_path):
    toks = Segmenter(backend=backend, cache_dir=tmp_path).cut("快看 <URL> 转给 <AT> 吧! <REPEAT_PUNCT>")
    assert "<URL>" in toks and "<AT>" in toks and "<REPEAT_PUNCT>" in toks
    assert " " not in toks


def test_extra_dictionary(tmp_path):
    d = tmp_path / "places.txt"
    d.write_text("# 地名\n青禾镇 100 ns\n", encoding="utf-8")
    assert "青禾镇" in Segmenter([d]).cut("青禾镇今天停水")


@pytest.mark.parametrize("backend", BACKENDS)
def test_dictionary_lines_kept_inside_the_segmenter(backend, tmp_path):
    plain = Segmenter(backend=backend, cache_dir=tmp_path)
    local = Segmenter(backend=backend, cache_dir=tmp_path, extra_entries=["# 本镇", "石桥村 3000 ns", "柳絮坪"])
    text = "石桥村又停水了，柳絮坪的路也封了"
    assert "石桥村" not in plain.cut(text) and "柳絮坪" not in plain.cut(text)
    assert {"石桥村", "柳絮坪"} <= set(local.cut(text))
    again = pickle.loads(pickle.dumps(local))  # the lines travel with it (into a model, to workers)
    assert again == local and hash(again) == hash(local) and again != plain
    assert {"石桥村", "柳絮坪"} <= set(again.cut(text))


def test_a_segmenter_saved_before_dictionary_lines_existed_loads_as_the_default():
    state = Segmenter().__getstate__()
    del state["extra_entries"]
    old = Segmenter.__new__(Segmenter)
    old.__setstate__(state)
    assert old.extra_entries == () and old == Segmenter()


def test_pickle_round_trip():
    seg = Segmenter(drop_stopwords=True)
    before = seg.cut("我们的县政府发布了通知")
    seg2 = pickle.loads(pickle.dumps(seg))
    assert seg2._tok is None
    assert seg2 == seg and seg2.cut("我们的县政府发布了通知") == before
    assert "的" not in before


def test_global_instances_untouched():
    import jieba
    import rjieba

    Segmenter(backend="rjieba").cut("全员核酸")
    Segmenter(backend="jieba").cut("全员核酸")
    assert "全员核酸" not in rjieba.cut("全员核酸")
    assert jieba.dt.FREQ.get("紧急扩散") is None


def test_user_dict_parser(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("# comment\n甲乙\n丙丁 5\n戊己 n\n庚辛 3 v\n", encoding="utf-8")
    expected = [("甲乙", None, None), ("丙丁", 5, None), ("戊己", None, "n"), ("庚辛", 3, "v")]
    assert read_user_dict(p) == expected
    assert len(read_user_dict(DOMAIN_DICT)) >= 300


def test_bad_backend():
    with pytest.raises(ValueError):
        Segmenter(backend="thulac")


def test_remembered_texts_are_cut_once_and_alike(tmp_path):
    seg = Segmenter(cache_dir=tmp_path)
    texts = ["县卫生健康局说明天全员核酸", "不要囤货 <URL>", "县卫生健康局说明天全员核酸"]
    plain = [seg.cut(t) for t in texts]
    seg.remember_recent(2)
    first = seg.cut(texts[0])
    assert first == plain[0] and seg.cut(texts[0]) is first  # the second cut is the remembered list
    assert [seg.cut(t) for t in texts] == plain  # the memo is bounded (cleared when full), never wrong
    assert seg == Segmenter(cache_dir=tmp_path) and pickle.loads(pickle.dumps(seg)).cut(texts[1]) == plain[1]
    seg.remember_recent(0)
    assert seg.cut(texts[0]) is not first


def test_rjieba_serves_without_jieba(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "jieba", None)  # what `import jieba` meets when the extra is absent
    seg = Segmenter(cache_dir=tmp_path)
    assert "全员核酸" in seg.cut("县卫生健康局说明天全员核酸") and seg.backend_used == "rjieba"
    with pytest.raises(ImportError, match=r"yuqing\[jieba\]"):
        Segmenter(backend="jieba", cache_dir=tmp_path).cut("全员核酸")


def test_no_segmentation_library_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "jieba", None)
    monkeypatch.setitem(sys.modules, "rjieba", None)
    with pytest.raises(ImportError, match="pip install rjieba"):
        Segmenter(cache_dir=tmp_path).cut("全员核酸")


RUNTIME_ONLY = """
import sys
sys.modules["jieba"] = None  # the optional extra is not installed
from yuqing.cli import main
sys.argv = ["yuqing", "analyze", "--quiet"]
main()
"""


@pytest.mark.slow
def test_analyze_needs_no_jieba(fresh_db_url: str) -> None:
    """`yuqing analyze` with the shipped model, on simplified and traditional posts, with jieba absent."""
    import datetime as dt

    from core.db import make_engine, session_scope
    from core.ingest import ingest_posts

    texts = ["青禾镇明天封城，所有人不准出门，赶紧去超市囤货", "聽說青禾鎮自來水被污染了，千萬不要喝",
             "县卫生健康局通知：本周六举办健康讲座", "收到"]
    engine = make_engine(fresh_db_url)
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with session_scope(engine) as s:
        ingest_posts(s, [{"source": "无结巴测试", "external_id": str(i), "text": t,
                          "published_at": recent + dt.timedelta(minutes=i)} for i, t in enumerate(texts)])
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", RUNTIME_ONLY], cwd=repo, capture_output=True, text=True,
                          env=os.environ | {"PYTHONPATH": str(repo)}, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"已分析 {len(texts)} 条" in " ".join(done.stdout.split())
    with session_scope(engine) as s:
        from sqlalchemy import select

        from core.tables import Post

        norm = set(s.scalars(select(Post.norm_text)))
    engine.dispose()
    assert any("自来水被污染" in t for t in norm)  # converted to simplified on the way in
