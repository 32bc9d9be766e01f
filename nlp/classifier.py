"""The rumor classifier: hashed character + word n-grams and cue features, a collapsed
linear ensemble (LinearSVC + NB-scaled LinearSVC), Platt-calibrated.

Why this shape:

* **Hashing only.** The training data is research-only, so the saved model must hold no
  vocabulary strings and no texts. Character and word n-grams are hashed into fixed spaces;
  the model keeps only numbers (idf per hashed column, one coefficient per column).
* **One linear model at the end.** Every ensemble member is linear in the same features, so
  their (scaled) weights add up to one coefficient vector. Prediction is one sparse dot
  product, and `RumorModel.explain` reads each input term's contribution by hashing the
  text's own n-grams: no vocabulary needed.
* **Calibrated.** A sigmoid fitted on out-of-fold ensemble scores maps the margin to
  P(rumor).
* **Scoring without scikit-learn.** The transform and scoring math lives in `nlp.scoring`
  (the estimators here inherit it), so a scorer loads and scores without importing
  scikit-learn (`nlp.scoring.load_scorer`); this module adds training and persistence.

Public API (stable): `RumorModel`, `train_rumor_model`, `evaluate`, `default_model_path`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from core.arrays import reading_arrays
from nlp.cues import CUE_NAMES
from nlp.normalize import normalize
from nlp.scoring import (
    MODEL_TYPES,
    REPO_ROOT,  # noqa: F401  (re-exported: nlp.training reads it from here)
    HashedFeatureMath,
    LinearScoreMath,
    RumorScorer,
    default_model_path,
    model_file,
    read_card,
)
from nlp.segment import Segmenter

__all__ = [
    "MODEL_FORMAT",
    "HashedTextFeatures",
    "LinearEnsembleClassifier",
    "RumorModel",
    "UntrustedModelError",
    "default_model_path",
    "evaluate",
    "train_rumor_model",
]

log = logging.getLogger(__name__)

MODEL_FORMAT = 1


class HashedTextFeatures(HashedFeatureMath, TransformerMixin, BaseEstimator):
    """Raw texts -> [char n-gram TF-IDF | word n-gram TF-IDF | cue values], all hashed.

    Each n-gram block has ``n_features`` hashed columns, sublinear tf, an idf learned per
    hashed column (numbers only) and its own l2 norm; blocks are weighted and stacked. The
    cue block holds `nlp.cues.CUE_NAMES` in order, times ``cue_weight``.
    """

    def __init__(
        self,
        *,
        char_ngram_range: tuple[int, int] = (1, 3),
        word_ngram_range: tuple[int, int] = (1, 2),
        n_features: int = 2**20,
        sublinear_tf: bool = True,
        char_weight: float = 1.0,
        word_weight: float = 1.0,
        cue_weight: float = 0.05,
        segmenter: Segmenter | None = None,
    ) -> None:
        self.char_ngram_range = char_ngram_range
        self.word_ngram_range = word_ngram_range
        self.n_features = n_features
        self.sublinear_tf = sublinear_tf
        self.char_weight = char_weight
        self.word_weight = word_weight
        self.cue_weight = cue_weight
        self.segmenter = segmenter

    def _check_fitted(self) -> None:
        check_is_fitted(self, "char_idf_")

    @staticmethod
    def _idf(x: sp.csr_matrix) -> np.ndarray:
        df = np.bincount(x.indices, minlength=x.shape[1])
        n = x.shape[0]
        return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)

    def fit(self, X: Iterable[str], y: Any = None) -> HashedTextFeatures:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Iterable[str], y: Any = None, **fit_params: Any) -> sp.csr_matrix:
        if self.n_features & (self.n_features - 1):
            raise ValueError(f"n_features must be a power of two, got {self.n_features}")
        norms = [normalize(t) for t in X]
        xc, xw = self._counts(norms)
        self.char_idf_ = self._idf(xc)
        self.word_idf_ = self._idf(xw)
        self.n_features_out_ = 2 * self.n_features + len(CUE_NAMES)
        return self._stack(xc, xw, norms)



def _nb_ratio(
    X: sp.csr_matrix, y: np.ndarray, alpha: float, w: np.ndarray | None = None
) -> np.ndarray:
    """NB log-count ratio per column (Wang & Manning 2012), on TF-IDF values."""
    w = np.ones(X.shape[0]) if w is None else w
    p = alpha + np.asarray(X.T @ (w * (y == 1))).ravel()
    q = alpha + np.asarray(X.T @ (w * (y == 0))).ravel()
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float64)


class LinearEnsembleClassifier(LinearScoreMath, ClassifierMixin, BaseEstimator):
    """LinearSVC and/or NB-scaled LinearSVC / LogisticRegression, summed into one linear
    model and Platt-calibrated on out-of-fold scores.

    Members (``members``): ``"svc"`` (LinearSVC), ``"nbsvc"`` (LinearSVC on NB-scaled
    features), ``"lr"`` (LogisticRegression), ``"nblr"``. Each member's weights are divided
    by the standard deviation of its training scores, then summed, so no member dominates by
    scale. Learned: ``coef_`` (float32, one per column), ``intercept_``, ``calib_a_``,
    ``calib_b_`` (P = sigmoid(a * score + b)).
    """

    def __init__(
        self,
        *,
        members: tuple[str, ...] = ("svc", "nbsvc"),
        C_svc: float = 2.0,
        C_nb: float = 1.0,
        C_lr: float = 30.0,
        nb_alpha: float = 0.005,
        calibration_cv: int = 3,
        random_state: int = 0,
    ) -> None:
        self.members = members
        self.C_svc = C_svc
        self.C_nb = C_nb
        self.C_lr = C_lr
        self.nb_alpha = nb_alpha
        self.calibration_cv = calibration_cv
        self.random_state = random_state

    def _fit_linear(self, X: sp.csr_matrix, y: np.ndarray, w: np.ndarray | None = None
                    ) -> tuple[np.ndarray, float]:
        unknown = set(self.members) - {"svc", "nbsvc", "lr", "nblr"}
        if unknown or not self.members:
            raise ValueError(f"unknown ensemble members {sorted(unknown)}: use svc, nbsvc, lr, nblr")
        coef = np.zeros(X.shape[1], dtype=np.float64)
        intercept = 0.0
        r = _nb_ratio(X, y, self.nb_alpha, w) if any(m.startswith("nb") for m in self.members) else None
        for m in self.members:
            Xm = X @ sp.diags(r) if m.startswith("nb") else X
            if m.endswith("svc"):
                c = self.C_nb if m == "nbsvc" else self.C_svc
                est: Any = LinearSVC(C=c, random_state=self.random_state)
            else:
                est = LogisticRegression(C=self.C_lr, max_iter=3000, random_state=self.random_state)
            est.fit(Xm, y, sample_weight=w)
            wm = est.coef_.ravel().astype(np.float64)
            if m.startswith("nb"):
                wm = wm * r
            b = float(est.intercept_[0])
            s = float(np.std(X @ wm + b)) or 1.0
            coef += wm / s
            intercept += b / s
        return coef, intercept

    def fit(self, X: sp.csr_matrix, y: Sequence[int] | np.ndarray,
            sample_weight: np.ndarray | None = None) -> LinearEnsembleClassifier:
        """Fit; ``sample_weight`` weights the members' training (not the calibration, which
        should reflect the unweighted label mix)."""
        X = sp.csr_matrix(X, dtype=np.float64)
        labels = np.asarray(y).astype(int)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.classes_ = np.array([0, 1])
        # out-of-fold scores for calibration
        oof = np.zeros(X.shape[0])
        if self.calibration_cv and self.calibration_cv > 1:
            for tr, te in self._calibration_folds(X, labels):
                c, b = self._fit_linear(X[tr], labels[tr], None if w is None else w[tr])
                oof[te] = X[te] @ c + b
        coef, intercept = self._fit_linear(X, labels, w)
        if not (self.calibration_cv and self.calibration_cv > 1):
            oof = X @ coef + intercept
        cal = LogisticRegression(C=1e4).fit(oof.reshape(-1, 1), labels)
        self.calib_a_ = float(cal.coef_[0, 0])
        self.calib_b_ = float(cal.intercept_[0])
        # float32 halves the artifact; scores change by ~1e-7
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = float(intercept)
        self.n_features_in_ = X.shape[1]
        return self

    def _calibration_folds(self, X: sp.csr_matrix, labels: np.ndarray) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """Stratified folds in which copies of a text (identical feature rows) stay together.

        A copy in the training fold makes its twin's out-of-fold score as confident as a training
        score, which pulls the sigmoid towards overconfidence; reviewed labels of forwarded posts
        and the datasets' own repeats are full of copies. Without copies this is the plain
        stratified split (so deduplicated training data gives the same model as before).
        """
        groups = _identical_row_groups(X)
        zeros = np.zeros(len(labels))
        # grouping needs each class in more groups than folds (else a fold trains on one class)
        fewest = min(len(np.unique(groups[labels == c])) for c in (0, 1))
        if len(np.unique(groups)) == len(groups) or fewest < self.calibration_cv:
            return StratifiedKFold(self.calibration_cv, shuffle=True,
                                   random_state=self.random_state).split(zeros, labels)
        return StratifiedGroupKFold(self.calibration_cv, shuffle=True,
                                    random_state=self.random_state).split(zeros, labels, groups)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "coef_")


def _identical_row_groups(X: sp.csr_matrix) -> np.ndarray:
    """One group id per row; rows with the same non-zero columns and values share it."""
    ids: dict[bytes, int] = {}
    out = np.empty(X.shape[0], dtype=np.int64)
    for i in range(X.shape[0]):
        a, b = X.indptr[i], X.indptr[i + 1]
        key = X.indices[a:b].tobytes() + X.data[a:b].tobytes()
        out[i] = ids.setdefault(key, len(ids))
    return out


# --------------------------------------------------------------------------- persistence
class UntrustedModelError(RuntimeError):
    """A model file holds a type outside our allowlist; it is not loaded."""


# Types a yuqing model file may contain beyond skops' own defaults (numpy, scipy, builtins).
TRUSTED_TYPES: frozenset[str] = MODEL_TYPES


def _load_pipeline(file: Path) -> Pipeline:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=file)
    bad = sorted(set(untrusted) - TRUSTED_TYPES)
    if bad:
        raise UntrustedModelError(
            f"model file {file} contains types outside yuqing's allowlist: {bad}; "
            "refusing to load it (retrain with nlp.training or check where the file came from)"
        )
    with reading_arrays():
        return sio.load(file, trusted=list(untrusted))


class RumorModel(RumorScorer):
    """A trained rumor classifier (an sklearn pipeline) plus its version and model card; scores,
    explains and does both like any `RumorScorer`."""

    def __init__(
        self, pipeline: Pipeline, *, version: str = "dev", card: dict[str, Any] | None = None
    ) -> None:
        self.pipeline = pipeline
        self.version = version
        self.card: dict[str, Any] = dict(card or {})

    @property
    def features(self) -> HashedTextFeatures:
        return self.pipeline.named_steps["features"]

    @property
    def clf(self) -> LinearEnsembleClassifier:
        return self.pipeline.named_steps["clf"]

    # -- persistence
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.skops`` and ``card.json`` into ``directory`` (created)."""
        import skops.io as sio

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        sio.dump(self.pipeline, d / "model.skops", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        return self.save_card(d)

    def save_card(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``card.json`` only (the weights in ``model.skops`` stay as they are)."""
        d = Path(directory)
        card = {**self.card, "version": self.version, "format": MODEL_FORMAT}
        (d / "card.json").write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")
        return d

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> RumorModel:
        """Load a model directory (or its ``model.skops``); default: the shipped model.

        Only types on our allowlist are accepted (`UntrustedModelError` otherwise).
        """
        file = model_file(path)
        pipeline = _load_pipeline(file)
        version, card = read_card(file)
        return cls(pipeline, version=version, card=card)

    def __repr__(self) -> str:
        return f"RumorModel(version={self.version!r})"


# --------------------------------------------------------------------------- training
DEFAULT_PARAMS: dict[str, Any] = {}


def build_pipeline(params: dict[str, Any] | None = None, *, seed: int = 0,
                   segmenter: Segmenter | None = None) -> Pipeline:
    """The untrained pipeline; ``params`` use Pipeline names (``features__cue_weight``);
    ``segmenter`` defaults to ours with the domain dictionary only."""
    pipe = Pipeline(
        [
            ("features", HashedTextFeatures(segmenter=segmenter or Segmenter())),
            ("clf", LinearEnsembleClassifier(random_state=seed)),
        ]
    )
    pipe.set_params(**{**DEFAULT_PARAMS, **(params or {})})
    return pipe


def train_rumor_model(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    version: str = "dev",
    card: dict[str, Any] | None = None,
    sample_weight: Sequence[float] | None = None,
    segmenter: Segmenter | None = None,
) -> RumorModel:
    """Fit a `RumorModel` on raw texts and 0/1 labels (1 = rumor); ``segmenter`` see `build_pipeline`."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    pipe = build_pipeline(params, seed=seed, segmenter=segmenter)
    fit_params = {}
    if sample_weight is not None:
        fit_params["clf__sample_weight"] = np.asarray(sample_weight, dtype=float)
    pipe.fit(list(texts), np.asarray(labels, dtype=int), **fit_params)
    info = {
        "trained_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "n_train": len(texts),
        "seed": seed,
        "params": {k: repr(v) for k, v in pipe.get_params(deep=True).items()
                   if "__" in k and not k.startswith("features__segmenter")},
    }
    return RumorModel(pipe, version=version, card={**info, **(card or {})})


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE of P(rumor) with equal-width bins."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)


def evaluate(model: RumorModel, texts: Sequence[str], labels: Sequence[int]) -> dict[str, float]:
    """macro-F1, accuracy, rumor precision / recall / F1 and expected calibration error."""
    y = np.asarray(labels, dtype=int)
    p = model.predict_proba(list(texts))
    pred = (p >= 0.5).astype(int)
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, labels=[1], zero_division=0)
    return {
        "n": len(y),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "accuracy": float(accuracy_score(y, pred)),
        "rumor_precision": float(prec[0]),
        "rumor_recall": float(rec[0]),
        "rumor_f1": float(f1[0]),
        "ece": expected_calibration_error(y, p),
    }
