"""A learned concern-category classifier, for when the office has labelled categories.

The keyword rules of `taxonomy` need no labels. Once staff have labelled posts with categories of
the office's taxonomy (``labels.category``, or a ``text,category`` CSV), ``yuqing
categories-train`` fits this model and saves it under ``<data_dir>/models/category/``; from then
on the concern stage lets it decide a post's category where it is confident and keeps the rules
for the rest (see ``nlp.concerns.stage.ConcernText.categories``). Features are hashed (word unigrams/bigrams from our segmenter plus character 1-3-grams),
so a saved model holds numbers only, no vocabulary strings or texts; it is persisted with skops
and loaded with an explicit list of trusted types.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.svm import LinearSVC

from core.arrays import reading_arrays
from nlp.segment import Segmenter

log = logging.getLogger(__name__)

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
        self.svm_ = LinearSVC(C=self.C, class_weight=self.class_weight, random_state=0).fit(self.tfidf_.transform(X), list(labels))
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
    with reading_arrays():
        model: Any = sio.load(path, trusted=untrusted)
    return model


MIN_PER_CATEGORY = 5
PRODUCT_FEATURES = 1 << 18  # per n-gram kind: ~40 MB of weights for ten categories, not 160 MB
CONFIDENT_MARGIN = 0.2


def default_path(settings: Any) -> Path:
    """Where `yuqing categories-train` saves the office's model, and analyze looks for it."""
    return Path(settings.data_dir) / "models" / "category" / "category.skops"


def model_path(settings: Any) -> Path:
    return Path(settings.concern_category_model) if settings.concern_category_model else default_path(settings)


@lru_cache(maxsize=2)
def _cached(path: str, mtime: float) -> CategoryClassifier:
    return load(path)


def load_for_taxonomy(settings: Any, taxonomy: Any) -> CategoryClassifier | None:
    """The office's trained category model, if one was saved (None: the keyword rules alone).

    Categories the model knows but the taxonomy no longer has are ignored by the stage, so an
    edited taxonomy never yields a category the office removed.
    """
    path = model_path(settings)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        if settings.concern_category_model:
            from nlp.concerns.errors import ConcernConfigError

            raise ConcernConfigError(
                f"类别模型 {path} 不存在：请检查 YUQING_CONCERN_CATEGORY_MODEL，或运行 yuqing categories-train。"
            ) from None
        return None
    model = _cached(str(path), mtime)
    unknown = sorted(set(map(str, model.classes_)) - set(taxonomy.categories))
    if unknown:
        log.warning("category model knows categories the taxonomy lacks; they are ignored",
                    extra={"model": str(path), "categories": unknown})
    return model


@dataclass(frozen=True)
class LabelledText:
    text: str
    category: str
    origin: str  # "labels" (the labels table) or "<file>:<line>"


def read_category_csv(path: str | Path, taxonomy: Any) -> list[LabelledText]:
    """Rows of a CSV with columns ``text,category``, every category checked against the taxonomy."""
    from nlp.concerns.errors import ConcernConfigError
    from nlp.labels import csv_rows

    p = Path(path)
    if not p.is_file():
        raise ConcernConfigError(f"找不到类别标注文件 {p}：请检查路径。")
    out: list[LabelledText] = []
    problems: list[str] = []
    for line, row in csv_rows(p, ("text", "category"), "text,category", ConcernConfigError):
        text, cat = (row.get("text") or "").strip(), (row.get("category") or "").strip()
        if not text or not cat:
            problems.append(f"第 {line} 行：text 或 category 为空")
            continue
        out.append(LabelledText(text, cat, f"{p.name}:{line}"))
    check_categories(out, taxonomy, problems)
    return out


def check_categories(rows: Sequence[LabelledText], taxonomy: Any, problems: list[str] | None = None) -> None:
    """Every category must be one of the taxonomy's; else one error naming each unknown one and where."""
    from nlp.concerns.errors import ConcernConfigError

    problems = list(problems or [])
    allowed = set(taxonomy.categories)
    unknown: dict[str, list[str]] = {}
    for r in rows:
        if r.category not in allowed:
            unknown.setdefault(r.category, []).append(r.origin)
    for cat, where in sorted(unknown.items()):
        shown = "、".join(where[:5]) + (f" 等 {len(where)} 处" if len(where) > 5 else "")
        problems.append(f"类别“{cat}”不在分类文件中（{shown}）")
    if problems:
        raise ConcernConfigError(
            "类别标注有误：" + "；".join(problems[:20]) + f"。可用的类别：{'、'.join(taxonomy.categories)}。"
            f"请改正标注，或先在分类文件 {taxonomy.source or 'taxonomy.yaml'} 中添加类别。"
        )


def labels_from_table(session: Any) -> list[LabelledText]:
    """Category labels analysts gave posts (``labels.category``, via the console, API or label import)."""
    from sqlalchemy import select

    from core.tables import Label

    rows = session.execute(select(Label.id, Label.text, Label.category).where(Label.category.is_not(None))).all()
    return [LabelledText(t, c, f"标注#{i}") for i, t, c in rows if t and c]


def train_categories(rows: Sequence[LabelledText], *, min_per_category: int = MIN_PER_CATEGORY,
                     n_features: int = PRODUCT_FEATURES) -> tuple[CategoryClassifier, dict]:
    """Train on labelled texts (one label per distinct normalised text, the last given wins).

    Categories with fewer than ``min_per_category`` texts are left out (the rules keep them).
    """
    from collections import Counter

    from nlp.concerns.errors import ConcernConfigError
    from nlp.normalize import normalize

    by_text = {normalize(r.text): r.category for r in rows}
    counts = Counter(by_text.values())
    keep = {c for c, n in counts.items() if n >= min_per_category}
    if len(keep) < 2:
        raise ConcernConfigError(
            f"带类别的标注不足：至少需要 2 个类别、每类至少 {min_per_category} 条不同的文本（现有 {dict(counts)}）。"
            "请先在审核台为帖子标注类别，或用 --csv 提供 text,category 文件。"
        )
    data = [(t, c) for t, c in by_text.items() if c in keep]
    model = CategoryClassifier(n_features=n_features).fit([t for t, _ in data], [c for _, c in data])
    return model, {"labels": len(data), "categories": {c: counts[c] for c in sorted(keep)},
                   "skipped": {c: n for c, n in sorted(counts.items()) if c not in keep}}


def save_with_card(model: CategoryClassifier, path: str | Path, info: dict, taxonomy: Any) -> Path:
    """Save the model and, next to it, its card (what it was trained on, when)."""
    import datetime as dt
    import json

    save(model, path)
    card = Path(path).with_suffix(".card.json")
    card.write_text(json.dumps({**info, "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                "taxonomy": taxonomy.source, "n_features": model.n_features},
                               ensure_ascii=False, indent=2), encoding="utf-8")
    return card
