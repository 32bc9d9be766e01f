"""Scoring without scikit-learn (nlp.scoring): the same scores and explanations as the trained
RumorModel, a model file read without running anything in it, and explanations that mean what
they say (the terms of the text that pushed its score up)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlp.classifier import RumorModel, default_model_path, train_rumor_model
from nlp.normalize import normalize
from nlp.scoring import (
    BoostedTrees,
    ModelFileError,
    RumorScorer,
    ScaledLogistic,
    _display,
    is_telling_term,
    load_scorer,
    numpy_twin,
    snap_to_words,
    word_text,
)

REPO = Path(__file__).resolve().parents[2]

# Our own sentences (never taken from the research data).
RUMORS = [
    "紧急扩散！！内部消息：明天全镇封路，赶紧去超市抢购大米",
    "听说水库的水被污染了，千万别喝自来水，转给家里人！！",
    "不转不是中国人！这种蔬菜有毒，吃了会致癌！！http://t.cn/abc",
    "@青禾小王 网传镇上要拆迁，每户赔五十万，消息可靠😀",
    "震惊！！！有人开面包车在小学门口抢孩子，看到的都转",
]
OFFICIAL = [
    "镇卫生院通报：今日全镇新增病例0例，请居民继续做好个人防护",
    "镇政府公告：冬季取暖补贴将于下周一开始发放，详见公告",
    "经核实，网传本镇封路消息不实，请以官方发布为准",
    "镇气象站发布大风蓝色预警，请注意出行安全",
    "镇派出所提醒：谨防冒充客服的电信诈骗，遇到可疑电话请报警",
]
TEXTS = RUMORS + OFFICIAL
LABELS = [1] * len(RUMORS) + [0] * len(OFFICIAL)


@pytest.fixture(scope="module")
def small_model() -> RumorModel:
    params = {"features__n_features": 2**12, "clf__calibration_cv": 2}
    return train_rumor_model(TEXTS * 2, LABELS * 2, seed=3, params=params)


@pytest.fixture(scope="module")
def saved(small_model, tmp_path_factory) -> Path:
    return small_model.save(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture(scope="module")
def shipped() -> RumorModel:
    try:
        return RumorModel.load(default_model_path())
    except FileNotFoundError as e:
        pytest.skip(str(e))


def _reference(model: RumorModel, text: str, k: int, *, with_ties: bool) -> dict[str, float]:
    """The terms of ``text`` with their positive contribution to the margin, one text at a time:
    feature value x coefficient of each of the row's ``4k + 8`` strongest columns (with or
    without the columns tied with the last one), each column named by the longest of the
    text's own n-grams hashed into it, equal strings added up."""
    feats, coef = model.features, model.clf.coef_
    norm = normalize(text)
    x = feats.transform_normalized([norm])
    names = feats.feature_names_for(norm)
    contrib = x.data * coef[x.indices]
    positive = np.sort(contrib[contrib > 0])[::-1]
    top = 4 * k + 8
    if len(positive) > top:
        cut = positive[top - 1]
        keep = (contrib >= cut) if with_ties else (contrib > cut)
    else:
        keep = contrib > 0
    spans = word_text(feats._tokens(norm))
    merged: dict[str, float] = {}
    for j, v in zip(x.indices[keep].tolist(), contrib[keep].tolist(), strict=True):
        name = names[j]
        term = name if name.startswith("cue:") else _display(snap_to_words(name.replace(" ", ""), *spans))
        merged[term] = merged.get(term, 0.0) + v
    return {t: v for t, v in merged.items() if t.startswith("cue:") or is_telling_term(t)}


def _overlap(a: str, b: str) -> bool:
    return not a.startswith("cue:") and not b.startswith("cue:") and (a in b or b in a)


@pytest.mark.parametrize("k", [3, 5])
def test_explanations_agree_with_a_per_text_reference(shipped, k):
    proba, explained = shipped.predict_and_explain(TEXTS, k=k)
    np.testing.assert_allclose(proba, shipped.predict_proba(TEXTS), rtol=1e-12)
    assert explained == shipped.explain(TEXTS, k=k)
    for text, terms in zip(TEXTS, explained, strict=True):
        low, high = _reference(shipped, text, k, with_ties=False), _reference(shipped, text, k, with_ties=True)
        assert 0 < len(terms) <= k
        values = [v for _, v in terms]
        assert values == sorted(values, reverse=True)
        for n, (term, v) in enumerate(terms):
            assert term in high and low.get(term, 0.0) - 1e-4 <= v <= high[term] + 1e-4, (text, term)
            assert not any(_overlap(term, t) for t, _ in terms[:n]), (text, term)
        # nothing stronger was left out, unless it overlaps a chosen term at least as strong
        weakest = values[-1] if len(terms) == k else 0.0
        chosen = {t for t, _ in terms}
        for term, v in low.items():
            if v > weakest + 1e-4 and term not in chosen:
                assert any(_overlap(term, t) and w >= v - 1e-4 for t, w in terms), (text, term, v)


def test_small_model_scores_and_explains_in_one_pass(small_model):
    proba, explained = small_model.predict_and_explain(TEXTS, k=3)
    np.testing.assert_allclose(proba, small_model.predict_proba(TEXTS), rtol=1e-12)
    assert explained == small_model.explain(TEXTS, k=3)
    for text, terms in zip(TEXTS, explained, strict=True):
        norm = normalize(text).replace(" ", "").lower()
        assert all(w >= 0 and (t.startswith("cue:") or t.lower() in norm) for t, w in terms), (text, terms)


def test_the_pipeline_entry_skips_normalisation_only(small_model):
    norms = [normalize(t) for t in TEXTS]
    p1, e1 = small_model.predict_and_explain_normalized(norms, k=4)
    p2, e2 = small_model.predict_and_explain(TEXTS, k=4)
    np.testing.assert_array_equal(p1, p2)
    assert e1 == e2
    assert small_model.predict_and_explain_normalized([], k=4)[0].shape == (0,)


def test_load_scorer_matches_the_trained_model(small_model, saved):
    scorer = load_scorer(saved)
    assert isinstance(scorer, RumorScorer) and scorer.version == small_model.version
    np.testing.assert_allclose(scorer.predict_proba(TEXTS), small_model.predict_proba(TEXTS), rtol=1e-12)
    assert scorer.explain(TEXTS, k=5) == small_model.explain(TEXTS, k=5)


def test_portable_scorer_pickles_without_sklearn_types(small_model):
    portable = small_model.portable()
    blob = pickle.dumps(portable)
    assert b"sklearn" not in blob
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.predict_proba(TEXTS), small_model.predict_proba(TEXTS))
    assert back.explain(TEXTS) == small_model.explain(TEXTS)


def test_foreign_type_in_model_file_is_refused(small_model, tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    bad = tmp_path / "model.skops"
    pipe = small_model.pipeline
    pipe_bad = type(pipe)([("features", pipe.named_steps["features"]), ("clf", FunctionTransformer())])
    sio.dump(pipe_bad, bad)
    with pytest.raises(ModelFileError, match="FunctionTransformer"):
        load_scorer(bad)
    with pytest.raises(FileNotFoundError):
        load_scorer(tmp_path / "missing")


def test_files_that_are_not_a_rumor_pipeline_are_refused(tmp_path):
    import skops.io as sio

    plain = tmp_path / "plain.skops"
    sio.dump({"a": 1, "b": 2}, plain)  # readable, but not a model
    with pytest.raises(ModelFileError, match="not a yuqing rumor pipeline"):
        load_scorer(plain)
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"not a zip archive")
    with pytest.raises(ModelFileError, match="not a skops archive"):
        load_scorer(junk)


def test_shipped_model_scores_in_a_fresh_interpreter_without_sklearn():
    try:
        default_model_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    code = (
        "import sys\n"
        "from nlp.scoring import load_scorer\n"
        "s = load_scorer()\n"
        "p = s.predict_proba(['紧急扩散！！内部消息：明天全县封城，赶紧去超市抢购，不转不是中国人',"
        " '县卫生健康局通报：今日全县新增确诊病例0例，请市民继续做好个人防护'])\n"
        "assert p[0] > 0.5 > p[1], p\n"
        "heavy = sorted(m for m in ('sklearn', 'pandas', 'skops', 'sqlalchemy') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "none"


def test_empty_texts_anywhere_in_a_batch(small_model):
    batch = ["", TEXTS[0], "", "   ", TEXTS[5], ""]
    proba, explained = small_model.predict_and_explain(batch, k=3)
    singles = [small_model.predict_and_explain([t], k=3) for t in batch]
    np.testing.assert_allclose(proba, [p[0] for p, _ in singles], rtol=1e-6)
    assert explained == [e[0] for _, e in singles]


def test_function_words_are_not_shown_as_reasons():
    assert not is_telling_term("了") and not is_telling_term("被") and not is_telling_term("的了")
    assert not is_telling_term("，") and not is_telling_term("一个")
    assert is_telling_term("封城") and is_telling_term("是真是假") and is_telling_term("紧急扩散")
    assert is_telling_term("<URL>")
    assert not is_telling_term("12345") and not is_telling_term(":2")


def _snap(term: str, words: list[str]) -> str:
    return snap_to_words(term, *word_text(words))


def test_explained_fragments_snap_to_whole_words():
    words = ["停水", "是因为", "主管道", "维修", "，", "有", "正式", "通知", "。"]
    assert _snap("正式通", words) == "正式通知"  # straddles two words: both, whole
    assert _snap("管", words) == "主管道"  # inside one word: that word
    assert _snap("维修，", words) == "维修"  # punctuation at an edge goes
    assert _snap("修，有", words) == "维修"  # across punctuation: the longest piece
    assert _snap("停水是因为主", words) == "是因为"  # past six characters: the word it covers most
    assert _snap("水库", words) == "水库"  # not in the text: kept
    assert _snap("<URL>", ["看", "<URL>"]) == "<URL>"


def test_shipped_explanations_skip_function_words(shipped):
    text = "听说下周要封城了？超市米面都被抢光了，群里都在传，说是所有路口都要设卡，有没有人知道是真是假？"
    (terms,) = shipped.explain([text], k=5)
    shown = [t for t, _ in terms if not t.startswith("cue:")]
    assert shown and all(is_telling_term(t) for t in shown)
    assert "了" not in shown and "被" not in shown


def test_scaled_logistic_gives_the_fitted_pipelines_probabilities_to_the_bit():
    """The claim matcher's model in the analysis workers (nlp.scoring.ScaledLogistic): the same
    probabilities as scikit-learn's StandardScaler + LogisticRegression, bit for bit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 12)) * rng.uniform(0.1, 50, size=12) + rng.normal(size=12)
    y = (x[:, 0] / 50 + x[:, 3] + rng.normal(size=400) > 0).astype(int)
    for scaler in (StandardScaler(), StandardScaler(with_mean=False)):
        model = make_pipeline(scaler, LogisticRegression(C=0.1)).fit(x, y)
        twin = ScaledLogistic.of(model)
        assert twin is not None
        probe = rng.normal(size=(1000, 12)) * 80
        np.testing.assert_array_equal(twin.predict_proba(probe), model.predict_proba(probe))
        np.testing.assert_array_equal(twin.predict_proba(probe.astype(np.float32)),
                                      model.predict_proba(probe.astype(np.float32)))
    # anything else has no twin: it keeps its own predict_proba
    assert ScaledLogistic.of(LogisticRegression().fit(x, y)) is None
    assert ScaledLogistic.of(make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y % 1 + (x[:, 1] > 0) +
                                                                                         (x[:, 2] > 0))) is None


def test_boosted_trees_give_the_fitted_classifiers_probabilities_to_the_bit():
    """The claim matcher's tree model in the analysis workers (nlp.scoring.BoostedTrees), built
    from the fitted estimator's own trees: the same probabilities as scikit-learn's
    HistGradientBoostingClassifier, bit for bit, missing values included; and for the shipped
    claim model, whichever version is active."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from nlp.claims import load_claim_matcher

    rng = np.random.default_rng(11)
    x = rng.normal(size=(3000, 9)) * rng.uniform(0.1, 40, size=9) + rng.normal(size=9)
    x[rng.random(x.shape) < 0.03] = np.nan
    y = (np.nan_to_num(x[:, 0]) / 40 + np.nan_to_num(x[:, 4]) + rng.normal(size=3000) > 0).astype(int)
    shipped = load_claim_matcher().model
    for model in (HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, random_state=0).fit(x, y), shipped):
        twin = numpy_twin(model)
        assert isinstance(twin, BoostedTrees)
        k = model.n_features_in_
        probe = rng.normal(size=(5_000, k)) * rng.uniform(0.05, 60, size=k) + rng.normal(size=k)
        probe[rng.random(probe.shape) < 0.05] = np.nan
        np.testing.assert_array_equal(twin.predict_proba(probe), model.predict_proba(probe))
        np.testing.assert_array_equal(twin.predict_proba(probe[:1]), model.predict_proba(probe[:1]))
        np.testing.assert_array_equal(twin.predict_proba(probe.astype(np.float32)),
                                      model.predict_proba(probe.astype(np.float32)))
    # a multi-class or categorical model has no twin: it keeps its own predict_proba
    assert BoostedTrees.of(HistGradientBoostingClassifier(max_iter=5).fit(x, y + (x[:, 1] > 0))) is None
    cat = np.column_stack([x[:, :3], rng.integers(0, 4, size=3000)])
    assert BoostedTrees.of(HistGradientBoostingClassifier(max_iter=5, categorical_features=[3]).fit(cat, y)) is None


def test_the_workers_debunk_matcher_imports_no_scikit_learn(tmp_path):
    """What the analysis workers unpickle (DebunkMatcher.portable) names no scikit-learn class:
    a fresh interpreter loads it, matches and scores without importing scikit-learn."""
    from nlp.debunks import DebunkMatcher

    matcher = DebunkMatcher([1], ["青禾镇自来水被污染了 千万不要喝"]).portable()
    file = tmp_path / "matcher.pickle"
    file.write_bytes(pickle.dumps(matcher))
    code = ("import pickle, sys; m = pickle.load(open(sys.argv[1], 'rb'));"
            "hits = m.match(['听说青禾镇的自来水被污染了不能喝']);"
            "print(hits[0] is not None, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(file)], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.split() == ["True", "False"]
