"""Cross-validation folds train in parallel and give the same figures as one after another."""

from __future__ import annotations

import pytest

from nlp.retrain import cross_validate
from tests.fixtures.labelled_texts import labelled_texts


@pytest.mark.slow
def test_parallel_folds_match_sequential_ones_and_report_progress() -> None:
    texts, labels = labelled_texts(60, seed=9)
    messages: list[str] = []
    parallel = cross_validate(texts, labels, folds=3, seed=1, n_jobs=2, progress=messages.append)
    sequential = cross_validate(texts, labels, folds=3, seed=1, n_jobs=1)
    assert parallel["folds"] == 3 and parallel == pytest.approx(sequential)
    assert messages[0] == "交叉验证：3 折，2 个进程并行" and messages[-1] == "交叉验证：已完成 3/3 折"
