"""The learned category classifier: sklearn conventions, skops round trip, learns our labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.base import clone

from nlp.concerns.classifier import CategoryClassifier, load, save
from nlp.normalize import normalize

TRAIN = [
    ("东湾村的口罩卖完了", "物资供应"), ("药店口罩断货好几天了", "物资供应"), ("超市的米和油还有货吗", "物资供应"),
    ("镇上什么时候发口罩", "物资供应"), ("消毒液在哪里能买到", "物资供应"), ("送菜的车今天来不来", "物资供应"),
    ("去县城的班车停了", "交通出行"), ("公交车什么时候恢复", "交通出行"), ("高速路口还让过吗", "交通出行"),
    ("客运站今天有车吗", "交通出行"), ("回村的路封了怎么走", "交通出行"), ("出租车还能进镇吗", "交通出行"),
    ("中学下周开学吗", "教育"), ("网课要上到什么时候", "教育"), ("孩子的中考推迟了吗", "教育"),
    ("小学的作业怎么交", "教育"), ("幼儿园什么时候复课", "教育"), ("老师说明天停课", "教育"),
]


def _fit() -> CategoryClassifier:
    texts = [normalize(t) for t, _ in TRAIN]
    return CategoryClassifier(n_features=1 << 16).fit(texts, [c for _, c in TRAIN])


def test_sklearn_conventions() -> None:
    model = CategoryClassifier(n_features=1 << 16, C=2.0)
    assert clone(model).get_params() == model.get_params()
    assert model.get_params()["C"] == 2.0


def test_learns_and_round_trips(tmp_path: Path) -> None:
    model = _fit()
    tests = [normalize("南坪村的口罩也卖完了"), normalize("班车今天停了吗"), normalize("网课什么时候结束")]
    assert list(model.predict(tests)) == ["物资供应", "交通出行", "教育"]
    path = tmp_path / "category.skops"
    save(model, path)
    again = load(path)
    assert list(again.predict(tests)) == list(model.predict(tests))
    assert again.predict_confident(tests, margin=0.0) == list(model.predict(tests))
    assert again.predict_confident(tests, margin=100.0) == [None, None, None]


OFFICE_TAXONOMY = """default: 其他
categories:
  - name: 物资供应
    keywords: {口罩: 3, 超市: 1.5}
  - name: 交通出行
    keywords: {班车: 3, 公交: 3}
  - name: 教育
    keywords: {开学: 3, 网课: 3}
  - name: 防汛
    keywords: {洪水: 3}
  - name: 其他
"""
FLOOD = ["河堤有裂缝了", "南坪村河边水位涨得很快", "上游水库要泄洪吗", "河堤加固什么时候开始",
         "昨晚河水漫过了桥面", "沙袋在哪里领"]


def _office_config(tmp_path: Path, monkeypatch) -> None:
    """An office taxonomy with a category of its own (防汛, flood control) in YUQING_CONFIG_DIR."""
    from core.settings import get_settings

    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "taxonomy.yaml").write_text(OFFICE_TAXONOMY, encoding="utf-8")
    monkeypatch.setenv("YUQING_CONFIG_DIR", str(cfg))
    get_settings.cache_clear()


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    import csv

    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        w.writerows(rows)
    return path


def test_train_from_office_labels_and_use_in_the_stage(fresh_db_url: str, tmp_path: Path, monkeypatch) -> None:
    """Labels (table + CSV) on the office's taxonomy -> `yuqing categories-train` -> analyze uses the model."""
    import datetime as dt
    import hashlib

    from sqlalchemy import select
    from typer.testing import CliRunner

    from core.db import make_engine, session_scope
    from core.ingest import ingest_posts
    from core.settings import get_settings
    from core.tables import Label, Post
    from nlp.concerns import ConcernAnalyzer, update_concerns
    from nlp.concerns.classifier import default_path
    from tests.concerns.conftest import DAY, views
    from yuqing.cli import app

    _office_config(tmp_path, monkeypatch)
    runner = CliRunner()
    engine = make_engine(fresh_db_url)
    saved = default_path(get_settings())
    try:
        few = runner.invoke(app, ["categories-train"])
        assert few.exit_code == 1 and "标注不足" in few.output and not saved.exists()
        # Analysts labelled categories on posts (labels table) ...
        with session_scope(engine) as s:
            for i, (text, cat) in enumerate(TRAIN):
                s.add(Label(dedup_key=f"l{i}", text=text, text_hash=hashlib.sha256(text.encode()).hexdigest(),
                            label=0, category=cat, origin="manual"))
        # ... and the flood-control texts come as a CSV. A category outside the taxonomy is refused.
        bad = _write_csv(tmp_path / "bad.csv", [(t, "防汛") for t in FLOOD] + [("水电费涨了", "水电")])
        refused = runner.invoke(app, ["categories-train", "--csv", str(bad)])
        assert refused.exit_code == 1 and "类别“水电”不在分类文件中" in refused.output
        assert "bad.csv:8" in refused.output and "防汛" in refused.output and not saved.exists()
        good = _write_csv(tmp_path / "flood.csv", [(t, "防汛") for t in FLOOD])
        done = runner.invoke(app, ["categories-train", "--csv", str(good)])
        assert done.exit_code == 0, done.output
        assert saved.exists() and saved.with_suffix(".card.json").exists()
        assert "4 类" in done.output and "自动使用" in done.output

        # No setting needed: the next analysis finds the model under the data folder.
        with session_scope(engine) as s:
            ingest_posts(s, [{"source": "青禾镇论坛", "external_id": "x1", "text": "河水涨到河堤了，要不要转移",
                              "published_at": DAY},
                             {"source": "青禾镇论坛", "external_id": "x2", "text": "今天天气不错",
                              "published_at": DAY}])
            analyzer = ConcernAnalyzer()
            assert analyzer.category_model is not None
            update_concerns(s, views(s), now=DAY + dt.timedelta(hours=1), analyzer=analyzer)
            cats = dict(s.execute(select(Post.external_id, Post.category)).all())
        # The rules know nothing of 河堤; the model is sure. A text it is unsure of keeps the rules' 其他.
        assert cats == {"x1": "防汛", "x2": "其他"}
    finally:
        engine.dispose()
        get_settings.cache_clear()


def test_label_categories_must_be_in_the_taxonomy(session, tmp_path: Path) -> None:
    from core.errors import InvalidInput
    from nlp.labels import check_category, import_labels_csv

    assert check_category(" 物价 ") == "物价" and check_category("") is None
    with pytest.raises(InvalidInput, match="不在分类文件中"):
        check_category("水电")
    path = tmp_path / "labels.csv"
    path.write_text("text,label,category\n口罩涨价了,0,物价\n水电费涨了,0,水电\n", encoding="utf-8")
    result = import_labels_csv(session, path)
    assert result.new == 1 and len(result.errors) == 1 and "第 3 行" in result.errors[0]
