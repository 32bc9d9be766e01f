"""Retraining reproduces the published benchmark figure (needs ../shared/data; skipped without it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlp.classifier import evaluate, train_rumor_model

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "classifier.json"


@pytest.mark.slow
def test_weibo21_train_to_test_matches_the_benchmark(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_SHARED_DATA", str(shared_data))
    from nlp import data, training

    expected = json.loads(RESULTS.read_text(encoding="utf-8"))["protocols"]["weibo21"]["train->test_dedup"]
    splits = data.weibo21_official()
    model = train_rumor_model(splits["train"].texts, splits["train"].labels, seed=training.SEED)
    got = evaluate(model, splits["test"].texts, splits["test"].labels)
    assert got["n"] == expected["n"]
    assert abs(got["macro_f1"] - expected["macro_f1"]) <= 0.005, (got["macro_f1"], expected["macro_f1"])
