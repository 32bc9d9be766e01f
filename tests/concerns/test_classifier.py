"""The learned category classifier: sklearn conventions, skops round trip, learns our labels."""

from __future__ import annotations

from pathlib import Path

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


def test_train_from_office_labels_and_use_in_the_stage(fresh_db_url: str, tmp_path: Path,
                                                       monkeypatch) -> None:
    import datetime as dt
    import hashlib

    from sqlalchemy import select
    from typer.testing import CliRunner

    from core.db import make_engine, session_scope
    from core.settings import get_settings
    from core.tables import Label, Post
    from nlp.concerns import ConcernAnalyzer, update_concerns
    from tests.concerns.conftest import DAY, views
    from yuqing.cli import app

    runner = CliRunner()
    engine = make_engine(fresh_db_url)
    out = tmp_path / "category.skops"
    try:
        few = runner.invoke(app, ["categories-train", "--output", str(out)])
        assert few.exit_code == 1 and "标注不足" in few.output and not out.exists()
        # The office labels a category our rules do not know: 防汛 (flood control).
        flood = ["河堤有裂缝了", "南坪村河边水位涨得很快", "上游水库要泄洪吗", "河堤加固什么时候开始",
                 "昨晚河水漫过了桥面", "沙袋在哪里领"]
        with session_scope(engine) as s:
            for i, (text, cat) in enumerate([(t, "防汛") for t in flood] + TRAIN):
                s.add(Label(dedup_key=f"l{i}", text=text, text_hash=hashlib.sha256(text.encode()).hexdigest(),
                            label=0, category=cat, origin="manual"))
        done = runner.invoke(app, ["categories-train", "--output", str(out)])
        assert done.exit_code == 0, done.output
        assert out.exists() and "4 类" in done.output

        monkeypatch.setenv("YUQING_CONCERN_CATEGORY_MODEL", str(out))
        get_settings.cache_clear()
        from core.ingest import ingest_posts

        with session_scope(engine) as s:
            ingest_posts(s, [{"source": "青禾镇论坛", "external_id": "x1", "text": "河水涨到河堤了，要不要转移",
                              "published_at": DAY}])
            update_concerns(s, views(s), now=DAY + dt.timedelta(hours=1), analyzer=ConcernAnalyzer())
            assert s.scalar(select(Post.category).where(Post.external_id == "x1")) == "防汛"
    finally:
        engine.dispose()
        get_settings.cache_clear()
