"""A learned concern-category classifier, for when the office has labelled categories.

The keyword rules of `taxonomy` need no labels; once staff have labelled enough posts with a
category, this model learns from them and takes over the posts the rules leave in the default
category (``ConcernAnalyzer`` does that when ``YUQING_CONCERN_CATEGORY_MODEL`` points at a saved
model). Features are hashed (word unigrams/bigrams from our segmenter plus character 1-3-grams),
so a saved model holds numbers only, no vocabulary strings or texts; it is persisted with skops
and loaded with an explicit list of trusted types.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.svm import LinearSVC

from nlp.segment import Segmenter

TRUSTED_TYPES = [
    "nlp.concerns.classifier.CategoryClassifier",
    "nlp.concerns.classifier._WordAnalyzer",
    "nlp.segment.Segmenter",
]


@lru_cache(maxsize=1)
def _default_segmenter() -> Segmenter:
    return Segmenter()


class _WordAnalyzer:
    """Word 1-2-grams of a text from the segmenter (a named class, so skops can save it)."""

    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter

    def __call__(self, text: str) -> list[str]:
        words = [w for w in self.segmenter.cut(text) if w.strip()]
        return words + [a + " " + b for a, b in itertools.pairwise(words)]


class CategoryClassifier(ClassifierMixin, BaseEstimator):
    """Linear SVM on hashed TF-IDF word and character n-grams of normalised texts."""

    def __init__(self, n_features: int = 1 << 20, C: float = 1.0, char_ngrams: tuple[int, int] = (1, 3),
                 class_weight: str | None = "balanced", segmenter: Segmenter | None = None) -> None:
        self.n_features = n_features
        self.C = C
        self.class_weight = class_weight
        self.char_ngrams = char_ngrams
        self.segmenter = segmenter

    def _vectorizers(self) -> tuple[HashingVectorizer, HashingVectorizer]:
        seg = self.segmenter if self.segmenter is not None else _default_segmenter()
        words = HashingVectorizer(analyzer=_WordAnalyzer(seg), n_features=self.n_features,
                                  alternate_sign=False, norm=None)
        chars = HashingVectorizer(analyzer="char", ngram_range=self.char_ngrams, n_features=self.n_features,
                                  alternate_sign=False, norm=None)
        return words, chars

    def _features(self, texts: Sequence[str]) -> sp.csr_matrix:
        words, chars = self._vectorizers()
        return sp.hstack([words.transform(texts), chars.transform(texts)], format="csr")

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> CategoryClassifier:
        X = self._features(list(texts))
        self.tfidf_ = TfidfTransformer(sublinear_tf=True).fit(X)
        # Balanced class weights: office labels are uneven (weibo21 test: macro-F1 0.726 -> 0.756).
        self.svm_ = LinearSVC(C=self.C, class_weight=self.class_weight).fit(self.tfidf_.transform(X), list(labels))
        self.classes_ = self.svm_.classes_
        return self

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        return self.svm_.decision_function(self.tfidf_.transform(self._features(list(texts))))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.svm_.predict(self.tfidf_.transform(self._features(list(texts))))

    def predict_confident(self, texts: Sequence[str], margin: float = 0.2) -> list[str | None]:
        """The predicted category where the model is sure enough: its score leads the runner-up
        by at least ``margin`` (one-vs-rest scores of small training sets are often all negative,
        so the lead, not the sign, tells a clear case)."""
        if not texts:
            return []
        scores = np.atleast_2d(self.decision_function(texts))
        if scores.shape[0] != len(texts):  # binary problems give one column
            scores = scores.T
        if scores.shape[1] == 1:
            scores = np.hstack([-scores, scores])
        order = np.argsort(-scores, axis=1)
        best, second = order[:, 0], order[:, 1]
        rows = np.arange(len(best))
        lead = scores[rows, best] - scores[rows, second]
        return [str(self.classes_[b]) if lead[i] >= margin else None for i, b in enumerate(best)]


def load_for_taxonomy(settings: Any, taxonomy: Any) -> CategoryClassifier | None:
    """The office's trained model, if any (placeholder: the configured path)."""
    if settings.concern_category_model is None:
        return None
    return load(settings.concern_category_model)


def save(model: CategoryClassifier, path: str | Path) -> None:
    import skops.io as sio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)


def load(path: str | Path) -> CategoryClassifier:
    """Load a saved model, trusting only our own types besides sklearn's and numpy's."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    unknown = [t for t in untrusted if t not in TRUSTED_TYPES]
    if unknown:
        from nlp.concerns.errors import ConcernConfigError

        raise ConcernConfigError(
            f"类别模型 {path} 含有未知类型 {unknown}：拒绝加载。请用 yuqing 重新训练并保存。"
        )
    model: Any = sio.load(path, trusted=untrusted)
    return model


MIN_PER_CATEGORY = 5


def train_from_labels(session: Any, *, min_per_category: int = MIN_PER_CATEGORY) -> tuple[CategoryClassifier, dict]:
    """Train on the office's labelled categories (``labels.category``); returns the model and counts.

    Categories with fewer than ``min_per_category`` labels are left out (the rules keep them).
    """
    from collections import Counter

    from sqlalchemy import select

    from core.tables import Label
    from nlp.concerns.errors import ConcernConfigError
    from nlp.normalize import normalize

    rows = session.execute(select(Label.text, Label.category).where(Label.category.is_not(None))).all()
    counts = Counter(c for _, c in rows)
    keep = {c for c, n in counts.items() if n >= min_per_category}
    data = [(normalize(t), c) for t, c in rows if c in keep and t]
    if len(keep) < 2:
        raise ConcernConfigError(
            f"带类别的标注不足：至少需要 2 个类别、每类至少 {min_per_category} 条（现有 {dict(counts)}）。"
            "请先在审核台为帖子标注类别。"
        )
    model = CategoryClassifier().fit([t for t, _ in data], [c for _, c in data])
    return model, {"labels": len(data), "categories": {c: counts[c] for c in sorted(keep)},
                   "skipped": {c: n for c, n in counts.items() if c not in keep}}
