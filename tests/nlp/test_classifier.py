from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from nlp.classifier import (
    HashedTextFeatures,
    LinearEnsembleClassifier,
    RumorModel,
    UntrustedModelError,
    build_pipeline,
    default_model_path,
    evaluate,
    train_rumor_model,
)
from nlp.normalize import normalize

# Our own sentences (never taken from the research data).
RUMOR_LIKE = [
    "紧急扩散！！内部消息：明天全县封城，赶紧去超市抢购",
    "听说自来水被污染了，千万别喝，转给家里人！！",
    "震惊！某小区有人贩子用迷药偷孩子，看到的都转",
    "网传吃大蒜能预防病毒，朋友的医生朋友说的，速转",
    "马上删！内部人士透露下周全市停电三天，快囤货",
    "据说学校明天全部停课，群里都在传，赶紧告诉身边人",
    "不转不是中国人！这种水果有毒，吃了会致癌！！",
    "紧急通知：明晚高速全部封路，消息可靠，求扩散",
]
OFFICIAL_LIKE = [
    "县卫生健康局通报：今日全县新增确诊病例0例，请市民继续做好个人防护",
    "县气象台发布暴雨蓝色预警，请注意出行安全",
    "经核实，网传本县封城消息不实，请以官方发布为准",
    "县教育局公告：秋季学期将于9月1日正常开学",
    "县人民医院发热门诊今日起调整开放时间，详见公告",
    "县市场监管局开展节前食品安全检查，抽检结果全部合格",
    "县融媒体中心报道：新建的便民服务中心今天投入使用",
    "县公安局提醒：谨防冒充客服的电信诈骗，遇到可疑电话请报警",
]
TEXTS = RUMOR_LIKE + OFFICIAL_LIKE
LABELS = [1] * len(RUMOR_LIKE) + [0] * len(OFFICIAL_LIKE)
SMALL = {"features__n_features": 2**12, "clf__calibration_cv": 2}


@pytest.fixture(scope="module")
def small_model() -> RumorModel:
    return train_rumor_model(TEXTS * 2, LABELS * 2, seed=1, params=SMALL)


def test_clone_and_get_params():
    ests = (HashedTextFeatures(cue_weight=0.1), LinearEnsembleClassifier(C_svc=0.5), build_pipeline(SMALL))
    for est in ests:
        c = clone(est)
        assert c.get_params().keys() == est.get_params().keys()
        assert type(c) is type(est)
    assert HashedTextFeatures(n_features=2**10).get_params()["n_features"] == 2**10


def test_fit_sets_underscore_attributes_only():
    f = HashedTextFeatures(n_features=2**10)
    assert not any(k.endswith("_") for k in vars(f))
    X = f.fit_transform(TEXTS)
    assert X.shape == (len(TEXTS), f.n_features_out_)
    assert f.char_idf_.dtype == np.float32


def test_n_features_power_of_two():
    with pytest.raises(ValueError):
        HashedTextFeatures(n_features=1000).fit(TEXTS)


def test_predict_and_explain(small_model):
    p = small_model.predict_proba(
        ["紧急扩散！！内部消息：明天封城，快去抢购", "县卫生健康局通报：今日新增确诊病例0例"]
    )
    assert p.shape == (2,) and p[0] > p[1]
    for text, terms in zip(TEXTS, small_model.explain(TEXTS, k=3), strict=True):
        assert len(terms) <= 3
        norm = normalize(text).replace(" ", "").lower()
        for term, weight in terms:
            assert weight > 0
            assert term.startswith("cue:") or term.replace(" ", "").lower() in norm, (term, text)
    assert small_model.predict_proba([]).shape == (0,)


def test_save_load_round_trip(small_model, tmp_path):
    d = small_model.save(tmp_path / "m")
    m2 = RumorModel.load(d)
    np.testing.assert_allclose(m2.predict_proba(TEXTS), small_model.predict_proba(TEXTS), rtol=1e-6)
    assert m2.explain(TEXTS[:2]) == small_model.explain(TEXTS[:2])


def test_saved_model_has_no_text(small_model, tmp_path):
    import zipfile

    d = small_model.save(tmp_path / "m")
    with zipfile.ZipFile(d / "model.skops") as z:
        blob = b"".join(z.read(n) for n in z.namelist())
    for word in ("封城", "抢购", "卫生健康局"):
        for enc in ("utf-8", "utf-16-le", "utf-32-le"):
            assert word.encode(enc) not in blob


def test_untrusted_type_refused(small_model, tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    class Sneaky(FunctionTransformer):
        pass

    bad = tmp_path / "bad.skops"
    sio.dump({"model": small_model.pipeline, "x": Sneaky()}, bad)
    with pytest.raises(UntrustedModelError):
        RumorModel.load(bad)


def test_evaluate_keys(small_model):
    r = evaluate(small_model, TEXTS, LABELS)
    for k in ("macro_f1", "accuracy", "rumor_precision", "rumor_recall", "rumor_f1", "ece"):
        assert 0.0 <= r[k] <= 1.0


# ---------------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def shipped() -> RumorModel:
    try:
        path = default_model_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    return RumorModel.load(path)


def test_shipped_model_loads_with_its_card():
    # How fast it loads is measured in bench/ (cold start), not asserted here.
    path = default_model_path()
    m = RumorModel.load(path)
    assert m.version == path.name and m.card


def test_shipped_model_scores_sensibly(shipped):
    p = shipped.predict_proba([
        "紧急扩散！！内部消息：明天全县封城，赶紧去超市抢购，不转不是中国人",
        "县卫生健康局通报：今日全县新增确诊病例0例，请市民继续做好个人防护",
    ])
    assert p[0] > 0.5 > p[1]


def test_shipped_explanations_use_input_terms(shipped):
    text = "紧急扩散！！内部消息：明天全县封城，赶紧去超市抢购，不转不是中国人"
    (terms,) = shipped.explain([text], k=5)
    assert terms
    norm = normalize(text).replace(" ", "")
    assert any(not t.startswith("cue:") and not t.startswith("<") and t in norm for t, _ in terms)


def test_shipped_card_files():
    d = default_model_path()
    for name in ("model.skops", "card.md", "metrics.json", "card.json"):
        assert (d / name).is_file(), name
    card = (d / "card.md").read_text(encoding="utf-8")
    for s in ("research", "1811.04175", "IJCAI 2016", "CIKM 2021", "retrain"):
        assert s in card


def test_sample_weight_accepted():
    w = [2.0] * len(RUMOR_LIKE) + [1.0] * len(OFFICIAL_LIKE)
    m = train_rumor_model(TEXTS, LABELS, seed=0, params=SMALL, sample_weight=w)
    assert m.predict_proba(TEXTS).shape == (len(TEXTS),)


def test_predict_and_explain_matches(small_model):
    p, e = small_model.predict_and_explain(TEXTS, k=4)
    np.testing.assert_allclose(p, small_model.predict_proba(TEXTS))
    assert e == small_model.explain(TEXTS, k=4)


def _noisy_sparse_problem(n: int, seed: int):
    rng = np.random.default_rng(seed)
    import scipy.sparse as sp

    X = sp.random(n, 400, density=0.03, random_state=seed, format="csr", dtype=np.float64)
    w = rng.normal(size=400)
    y = ((X @ w) + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return X, y


def test_copies_of_a_text_stay_in_one_calibration_fold():
    import scipy.sparse as sp

    X, y = _noisy_sparse_problem(300, 0)
    X3, y3 = sp.vstack([X, X, X]).tocsr(), np.concatenate([y, y, y])
    clf = LinearEnsembleClassifier(calibration_cv=3, random_state=0)
    fold_of = np.empty(len(y3), dtype=int)
    for k, (_, te) in enumerate(clf._calibration_folds(X3, y3)):
        fold_of[te] = k
    assert (fold_of[:300] == fold_of[300:600]).all() and (fold_of[:300] == fold_of[600:]).all()


def test_copies_do_not_make_the_calibration_overconfident():
    import scipy.sparse as sp

    X, y = _noisy_sparse_problem(300, 0)
    once = LinearEnsembleClassifier(calibration_cv=3, random_state=0).fit(X, y)
    thrice = LinearEnsembleClassifier(calibration_cv=3, random_state=0).fit(
        sp.vstack([X, X, X]).tocsr(), np.concatenate([y, y, y]))
    # out-of-fold scores of copies whose twin was trained on would be training scores: a far
    # steeper sigmoid. With copies kept together the slope stays that of the distinct texts.
    assert 0.6 < thrice.calib_a_ / once.calib_a_ < 1.6


def test_a_class_with_fewer_distinct_texts_than_folds_still_trains():
    texts = [RUMOR_LIKE[0]] * 3 + OFFICIAL_LIKE
    labels = [1] * 3 + [0] * len(OFFICIAL_LIKE)
    m = train_rumor_model(texts, labels, seed=0, params={**SMALL, "clf__calibration_cv": 3})
    assert m.predict_proba([RUMOR_LIKE[0]])[0] > m.predict_proba([OFFICIAL_LIKE[0]])[0]
