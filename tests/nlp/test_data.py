from __future__ import annotations

import pytest

from nlp import data
from nlp.normalize import normalize


def test_missing_shared_data(monkeypatch, tmp_path):
    monkeypatch.setenv("YUQING_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(data.SharedDataMissing):
        data.shared_data_dir()


def test_weibo21_official_dedup(shared_data):
    o = data.weibo21_official()
    assert len(o["train"]) > 5000 and len(o["val"]) > 1500
    train_norm = {normalize(t) for t in o["train"].texts}
    assert not any(normalize(t) in train_norm for t in o["test"].texts)
    assert len(data.weibo21_official(dedup_test=False)["test"]) == 1830


def test_cross_dataset_disjoint(shared_data):
    c = data.cross_dataset("weibo_ced")
    test_norm = {normalize(t) for t in c["test"].texts}
    assert not any(normalize(t) in test_norm for t in c["train"].texts)


def test_all_three_dedup(shared_data):
    s = data.all_three_dedup()
    norms = [normalize(t) for t in s.texts]
    assert len(norms) == len(set(norms)) and set(s.labels) == {0, 1}


@pytest.mark.shared_data
def test_quick_fit_on_real_data(shared_data):
    from nlp.classifier import evaluate, train_rumor_model

    o = data.weibo21_official()
    m = train_rumor_model(o["train"].texts[:2500], o["train"].labels[:2500], seed=0,
                          params={"features__n_features": 2**18, "clf__calibration_cv": 0})
    r = evaluate(m, o["val"].texts[:800], o["val"].labels[:800])
    assert r["macro_f1"] > 0.8


def test_weibo21_train_val_test_has_no_val_copies(shared_data):
    tv = data.weibo21_train_val()
    seen = {normalize(t) for t in tv["train"].texts}
    assert not any(normalize(t) in seen for t in tv["test"].texts)
    assert 1600 < len(tv["test"]) < len(data.weibo21_official()["test"])


def test_weibo21_with_others_never_sees_a_test_text(shared_data):
    official = data.weibo21_official()
    for with_val, same_test in ((False, official), (True, data.weibo21_train_val())):
        s = data.weibo21_with_others(with_val=with_val)
        assert s["test"].texts == same_test["test"].texts
        test_norm = {normalize(t) for t in s["test"].texts}
        assert not any(normalize(t) in test_norm for t in s["train"].texts)
        own = len(official["train"]) + (len(official["val"]) if with_val else 0)
        assert len(s["train"]) > own + 6000  # most of weibo_ced and weibo_ma2016 stay
