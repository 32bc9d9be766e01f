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
    assert again.predict_confident(tests, margin=-10.0) == list(model.predict(tests))
