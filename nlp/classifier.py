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

Public API (stable): `RumorModel`, `train_rumor_model`, `evaluate`, `default_model_path`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import normalize as l2_normalize
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from nlp.cues import CUE_NAMES, cue_matrix
from nlp.normalize import PLACEHOLDER_RE, PLACEHOLDERS, normalize
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
REPO_ROOT = Path(__file__).resolve().parent.parent

# Placeholders become one private-use character each before character n-grams, so "<URL>"
# is a single "character" and never produces n-grams like "RL>".
_PH_CHARS = {f"<{name}>": chr(0xE000 + i) for i, name in enumerate(sorted(PLACEHOLDERS))}
_PH_NAMES = {c: p for p, c in _PH_CHARS.items()}


def _ph_char(m: Any) -> str:
    return _PH_CHARS[m.group(0)]


def _char_text(norm: str) -> str:
    if "<" in norm:
        norm = PLACEHOLDER_RE.sub(_ph_char, norm)
    return norm.replace(" ", "").lower()


def _char_ngrams(t: str, lo: int, hi: int) -> list[str]:
    out: list[str] = []
    n_chars = len(t)
    for n in range(lo, hi + 1):
        out.extend([t[i : i + n] for i in range(n_chars - n + 1)])
    return out


def _word_ngrams(toks: list[str], lo: int, hi: int) -> list[str]:
    out: list[str] = toks[:] if lo <= 1 else []
    for n in range(max(lo, 2), hi + 1):
        out.extend([" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)])
    return out


def _display(term: str) -> str:
    """Human-readable form of a char/word n-gram (placeholders restored)."""
    if any(c in _PH_NAMES for c in term):
        term = "".join(_PH_NAMES.get(c, c) for c in term)
    return term


# --------------------------------------------------------------------------- hashing
# A vectorised n-gram hasher. sklearn's FeatureHasher hashes one Python string at a time
# (~0.5 us per n-gram: under 2,000 posts/s for char 1-4-grams); this one hashes every
# n-gram of a batch with a few numpy operations on the code points (~10x faster).
# splitmix64 mixing, wrapping uint64 arithmetic: deterministic on every platform.
_U = np.uint64
_C1, _C2, _C3 = _U(0xBF58476D1CE4E5B9), _U(0x94D049BB133111EB), _U(0x9E3779B97F4A7C15)
_SEED_CHAR, _SEED_WORD = _U(0x5EED0001), _U(0x5EED0002)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> _U(30))
    x = x * _C1
    x = x ^ (x >> _U(27))
    x = x * _C2
    return x ^ (x >> _U(31))


def _codepoints(strings: Sequence[str]) -> np.ndarray:
    """Code points of the strings joined by NUL (the separator is code point 0)."""
    return np.frombuffer("\x00".join(strings).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def hash_char_ngrams(texts: Sequence[str], lo: int, hi: int, n_features: int):
    """(row, column, start, n) of every char n-gram (lo <= n <= hi) of every text.

    ``start`` is the offset in the text joined with NUL separators (see `_codepoints`);
    explanations use it to cut the n-gram back out of the input.
    """
    mask = _U(n_features - 1)
    cp = _codepoints(texts)
    sep = cp == 0
    doc = np.cumsum(sep)
    sep_cum = np.concatenate([[0], np.cumsum(sep)])
    base = _mix(cp + _SEED_CHAR)
    rows, cols, starts, ns = [], [], [], []
    h = base
    for n in range(1, hi + 1):
        if n > 1:
            h = _mix(h[:-1] * _C3 + base[n - 1 :])
        if n < lo:
            continue
        m = len(h)
        ok = (sep_cum[n : n + m] - sep_cum[:m]) == 0
        idx = np.flatnonzero(ok)
        rows.append(doc[idx])
        cols.append((h[idx] & mask).astype(np.int64))
        starts.append(idx)
        ns.append(np.full(len(idx), n, dtype=np.int64))
    if not rows:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e, e
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(starts), np.concatenate(ns)


def hash_word_ngrams(docs: Sequence[Sequence[str]], lo: int, hi: int, n_features: int):
    """(row, column, first token index, n) of every word n-gram of every token list."""
    mask = _U(n_features - 1)
    lens = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    tokens = [t for d in docs for t in d]
    e = np.zeros(0, dtype=np.int64)
    if not tokens:
        return e, e, e, e
    cp = _codepoints(tokens)
    sep = cp == 0
    tok_id = np.cumsum(sep)
    starts_tok = np.concatenate([[0], np.flatnonzero(sep) + 1])
    pos = np.arange(len(cp)) - starts_tok[tok_id]
    vals = _mix(cp + pos.astype(np.uint64) * _C3 + _SEED_WORD)
    vals[sep] = _U(0)
    th = _mix(np.add.reduceat(vals, starts_tok))  # one hash per token (order-sensitive)
    tdoc = np.repeat(np.arange(len(docs)), lens)
    rows, cols, firsts, ns = [], [], [], []
    h = th
    for n in range(1, hi + 1):
        if n > 1:
            h = _mix(h[:-1] * _C3 + th[n - 1 :])
        if n < lo:
            continue
        m = len(h)
        idx = np.flatnonzero(tdoc[:m] == tdoc[n - 1 : n - 1 + m])
        rows.append(tdoc[idx])
        cols.append((h[idx] & mask).astype(np.int64))
        firsts.append(idx)
        ns.append(np.full(len(idx), n, dtype=np.int64))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(firsts), np.concatenate(ns)


def _count_matrix(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_rows, n_cols))
    x.sum_duplicates()
    return x


class HashedTextFeatures(TransformerMixin, BaseEstimator):
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

    # -- analysis (shared by transform and explain)
    def _seg(self) -> Segmenter:
        seg = self.segmenter
        if seg is None:
            # a per-estimator default, kept out of get_params so clone() stays exact
            seg = self.__dict__.get("_default_seg")
            if seg is None:
                seg = self.__dict__["_default_seg"] = Segmenter()
        return seg

    def _tokens(self, norm: str) -> list[str]:
        return [w if w in _PH_CHARS else w.lower() for w in self._seg().cut(norm)]

    def _counts(self, norms: Sequence[str], entries: dict[str, Any] | None = None
                ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Hashed count matrices; with ``entries`` (a dict) also keep every hashed n-gram's
        (row, column, position, n) and the analysed strings, for explanations."""
        n, nf = len(norms), self.n_features
        if self.char_weight:
            ctexts = [_char_text(t) for t in norms]
            r, c, a, k = hash_char_ngrams(ctexts, *self.char_ngram_range, nf)
            xc = _count_matrix(r, c, n, nf)
            if entries is not None:
                entries["char"] = (r, c, a, k, "\x00".join(ctexts))
        else:
            xc = sp.csr_matrix((n, nf), dtype=np.float32)
        if self.word_weight:
            toks = [self._tokens(t) for t in norms]
            r, c, a, k = hash_word_ngrams(toks, *self.word_ngram_range, nf)
            xw = _count_matrix(r, c, n, nf)
            if entries is not None:
                entries["word"] = (r, c + nf, a, k, [t for d in toks for t in d])
        else:
            xw = sp.csr_matrix((n, nf), dtype=np.float32)
        return xc, xw

    def transform_with_entries(self, norms: Sequence[str]) -> tuple[sp.csr_matrix, dict[str, Any]]:
        """`transform_normalized` plus the hashed n-gram entries (see `_counts`)."""
        check_is_fitted(self, "char_idf_")
        entries: dict[str, Any] = {}
        xc, xw = self._counts(norms, entries)
        return self._stack(xc, xw, norms), entries

    @staticmethod
    def _idf(x: sp.csr_matrix) -> np.ndarray:
        df = np.bincount(x.indices, minlength=x.shape[1])
        n = x.shape[0]
        return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)

    def _weight(self, x: sp.csr_matrix, idf: np.ndarray, w: float) -> sp.csr_matrix:
        x = x.astype(np.float32, copy=True)
        x.sum_duplicates()
        if self.sublinear_tf:
            np.log(x.data, out=x.data)
            x.data += 1.0
        x.data *= idf[x.indices]
        x = l2_normalize(x, copy=False)
        if w != 1.0:
            x.data *= w
        return x

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

    def transform(self, X: Iterable[str]) -> sp.csr_matrix:
        check_is_fitted(self, "char_idf_")
        norms = [normalize(t) for t in X]
        return self._stack(*self._counts(norms), norms)

    def transform_normalized(self, norms: Sequence[str]) -> sp.csr_matrix:
        """`transform` for texts already passed through `normalize`."""
        check_is_fitted(self, "char_idf_")
        return self._stack(*self._counts(norms), norms)

    def _stack(self, xc: sp.csr_matrix, xw: sp.csr_matrix, norms: Sequence[str]) -> sp.csr_matrix:
        blocks = [
            self._weight(xc, self.char_idf_, self.char_weight),
            self._weight(xw, self.word_idf_, self.word_weight),
        ]
        cues = cue_matrix(list(norms), normalized=True) if self.cue_weight else np.zeros(
            (len(norms), len(CUE_NAMES)), dtype=np.float32)
        blocks.append(sp.csr_matrix(cues * np.float32(self.cue_weight)))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def feature_names_for(self, norm: str) -> dict[int, str]:
        """Column index -> readable term, for the n-grams present in one normalised text.

        Hashes the text's own n-grams (that is how explanations work without a vocabulary).
        Where several terms share a column, the longest wins.
        """
        out: dict[int, str] = {}
        nf = self.n_features
        if self.char_weight:
            ct = _char_text(norm)
            _, cols, starts, ns = hash_char_ngrams([ct], *self.char_ngram_range, nf)
            for j, a, n in zip(cols.tolist(), starts.tolist(), ns.tolist(), strict=True):
                prev = out.get(j)
                if prev is None or n > len(prev):
                    out[j] = ct[a : a + n]
        if self.word_weight:
            toks = self._tokens(norm)
            _, cols, firsts, ns = hash_word_ngrams([toks], *self.word_ngram_range, nf)
            for j, a, n in zip(cols.tolist(), firsts.tolist(), ns.tolist(), strict=True):
                term = " ".join(toks[a : a + n])
                prev = out.get(j + nf)
                if prev is None or len(term) > len(prev):
                    out[j + nf] = term
        base = 2 * nf
        for i, name in enumerate(CUE_NAMES):
            out[base + i] = "cue:" + name
        return out


def _nb_ratio(
    X: sp.csr_matrix, y: np.ndarray, alpha: float, w: np.ndarray | None = None
) -> np.ndarray:
    """NB log-count ratio per column (Wang & Manning 2012), on TF-IDF values."""
    w = np.ones(X.shape[0]) if w is None else w
    p = alpha + np.asarray(X.T @ (w * (y == 1))).ravel()
    q = alpha + np.asarray(X.T @ (w * (y == 0))).ravel()
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float64)


class LinearEnsembleClassifier(ClassifierMixin, BaseEstimator):
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
            skf = StratifiedKFold(self.calibration_cv, shuffle=True, random_state=self.random_state)
            for tr, te in skf.split(np.zeros(len(labels)), labels):
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

    def decision_function(self, X: sp.csr_matrix) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(X @ self.coef_, dtype=np.float64).ravel() + self.intercept_

    def predict_proba(self, X: sp.csr_matrix) -> np.ndarray:
        z = self.calib_a_ * self.decision_function(X) + self.calib_b_
        p1 = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: sp.csr_matrix) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(int)


# --------------------------------------------------------------------------- persistence
class UntrustedModelError(RuntimeError):
    """A model file holds a type outside our allowlist; it is not loaded."""


# Types a yuqing model file may contain beyond skops' own defaults (numpy, scipy, builtins).
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "nlp.classifier.HashedTextFeatures",
        "nlp.classifier.LinearEnsembleClassifier",
        "nlp.segment.Segmenter",
        "sklearn.pipeline.Pipeline",
    }
)


def _load_pipeline(file: Path) -> Pipeline:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=file)
    bad = sorted(set(untrusted) - TRUSTED_TYPES)
    if bad:
        raise UntrustedModelError(
            f"model file {file} contains types outside yuqing's allowlist: {bad}; "
            "refusing to load it (retrain with nlp.training or check where the file came from)"
        )
    return sio.load(file, trusted=list(untrusted))


def _repo_root() -> Path:
    return REPO_ROOT


def default_model_path() -> Path:
    """The shipped model directory: ``$YUQING_MODEL_DIR`` (or ``<repo>/models``) +
    ``rumor/<version in rumor/ACTIVE>/``."""
    base = Path(os.environ.get("YUQING_MODEL_DIR") or (_repo_root() / "models"))
    rumor = base / "rumor"
    active = rumor / "ACTIVE"
    if not active.is_file():
        raise FileNotFoundError(
            f"no active rumor model: {active} is missing (train one with `python -m nlp.training ship`)"
        )
    return rumor / active.read_text(encoding="utf-8").strip()


class RumorModel:
    """A trained rumor classifier plus its version and model card."""

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

    # -- scoring
    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        norms = [normalize(t) for t in texts]
        return self.clf.decision_function(self.features.transform_normalized(norms))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(rumor) for each raw text, shape (n,)."""
        texts = list(texts)
        if not texts:
            return np.zeros(0)
        norms = [normalize(t) for t in texts]
        X = self.features.transform_normalized(norms)
        return self.clf.predict_proba(X)[:, 1]

    def explain(self, texts: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
        """For each text, up to ``k`` terms or cues that pushed its rumor score up, with
        their contribution to the margin (largest first).

        Terms come from the text itself: its n-grams are hashed again and matched to the
        columns with the largest positive contributions (weight x feature value). A term
        overlapping one already chosen (a substring or superstring) is skipped.
        """
        return self.predict_and_explain(texts, k)[1]

    def predict_and_explain(
        self, texts: Sequence[str], k: int = 5
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """`predict_proba` and `explain` from one featurisation (cheaper than calling both)."""
        texts = list(texts)
        if not texts:
            return np.zeros(0), []
        return self.predict_and_explain_normalized([normalize(t) for t in texts], k)

    def predict_and_explain_normalized(
        self, norms: Sequence[str], k: int = 5
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """`predict_and_explain` for texts already passed through `normalize` (the pipeline
        normalises once for every stage)."""
        norms = list(norms)
        if not norms:
            return np.zeros(0), []
        feats = self.features
        X, entries = feats.transform_with_entries(norms)
        proba = self.clf.predict_proba(X)[:, 1]
        return proba, _top_terms(X, entries, self.clf.coef_, 2 * feats.n_features, norms, k)

    # -- persistence
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.skops`` and ``card.json`` into ``directory`` (created)."""
        import skops.io as sio

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        sio.dump(self.pipeline, d / "model.skops", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        card = {**self.card, "version": self.version, "format": MODEL_FORMAT}
        (d / "card.json").write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")
        return d

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> RumorModel:
        """Load a model directory (or its ``model.skops``); default: the shipped model.

        Only types on our allowlist are accepted (`UntrustedModelError` otherwise).
        """
        p = Path(path) if path is not None else default_model_path()
        file = p / "model.skops" if p.is_dir() else p
        if not file.is_file():
            raise FileNotFoundError(
                f"rumor model file {file} not found (train one with `python -m nlp.training ship`)"
            )
        pipeline = _load_pipeline(file)
        card_file = file.parent / "card.json"
        card = json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}
        version = str(card.get("version") or file.parent.name)
        return cls(pipeline, version=version, card=card)

    def __repr__(self) -> str:
        return f"RumorModel(version={self.version!r})"


# --------------------------------------------------------------------------- explanations
_PH_CHAR_RE = re.compile(f"[{min(_PH_NAMES)}-{max(_PH_NAMES)}]")


def _top_terms(
    X: sp.csr_matrix,
    entries: dict[str, Any],
    coef: np.ndarray,
    cue_base: int,
    norms: Sequence[str],
    k: int,
) -> list[list[tuple[str, float]]]:
    """Up to ``k`` terms per row of ``X`` with the largest positive contribution to the margin.

    A contribution is feature value x coefficient. Each row keeps its ``4k + 8`` strongest
    columns; a column is named by the longest of the row's own n-grams hashed into it
    (``entries`` from `HashedTextFeatures.transform_with_entries`), cue columns by
    ``cue:<name>``. Equal strings (a char n-gram that is also a word) add up; then the
    strongest terms are taken, skipping one that overlaps (substring or superstring) a term
    already chosen. Everything up to the per-row choice is whole-batch numpy: the Python
    loop only sees the few candidates of each row.
    """
    n_rows, n_cols = X.shape
    out: list[list[tuple[str, float]]] = [[] for _ in range(n_rows)]
    if not X.has_sorted_indices:
        X = X.sorted_indices()
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(X.indptr))
    contrib = X.data * coef[X.indices]
    pos = np.flatnonzero(contrib > 0)
    if not len(pos):
        return out
    # each row's strongest positive columns, strongest first
    rows, vals = row_of[pos], contrib[pos]
    order = np.lexsort((-vals, rows))
    pos, rows, vals = pos[order], rows[order], vals[order]
    keep = np.arange(len(rows)) - np.searchsorted(rows, rows) < 4 * k + 8
    pos, rows, vals = pos[keep], rows[keep], vals[keep]
    slot = np.full(len(X.data), -1, dtype=np.int64)
    slot[pos] = np.arange(len(pos))
    names = _name_candidates(X, row_of, n_cols, slot, len(pos), entries)
    cols = X.indices[pos]
    for i in np.flatnonzero(cols >= cue_base).tolist():
        names[i] = "cue:" + CUE_NAMES[cols[i] - cue_base]
    placeholder_rows = {i for i, t in enumerate(norms) if "<" in t or _PH_CHAR_RE.search(t)}
    # the per-row choice (candidates arrive grouped by row, strongest first)
    row_list, val_list = rows.tolist(), vals.tolist()
    start = 0
    n = len(row_list)
    while start < n:
        i = row_list[start]
        stop = start
        while stop < n and row_list[stop] == i:
            stop += 1
        merged: dict[str, float] = {}
        for term, v in zip(names[start:stop], val_list[start:stop], strict=True):
            if term is None:
                continue
            if i in placeholder_rows:
                term = _display(term)
            merged[term] = merged.get(term, 0.0) + v
        out[i] = _choose_terms(merged, k)
        start = stop
    return out


def _name_candidates(
    X: sp.csr_matrix,
    row_of: np.ndarray,
    n_cols: int,
    slot: np.ndarray,
    n_slots: int,
    entries: dict[str, Any],
) -> list[str | None]:
    """The longest n-gram of its own row hashed into each candidate (row, column) slot; on a
    tie the first hashed (char before word, shorter n first, earlier position first)."""
    x_keys = row_of * n_cols + X.indices
    parts = []  # (slot, length, kind, start, n) of the entries that land on a candidate
    for kind in ("char", "word"):
        if kind not in entries:
            continue
        er, ec, ea, en, src = entries[kind]
        at = np.searchsorted(x_keys, er * n_cols + ec)
        s = slot[np.minimum(at, len(slot) - 1)]
        hit = np.flatnonzero(s >= 0)
        a, m = ea[hit], en[hit]
        if kind == "char":
            length = m
        else:
            ends = np.concatenate([[0], np.cumsum([len(t) for t in src])])
            length = ends[a + m] - ends[a]
        parts.append((s[hit], length, np.full(len(hit), len(parts)), a, m, hit, kind, src))
    names: list[str | None] = [None] * n_slots
    if not parts:
        return names
    s_all = np.concatenate([p[0] for p in parts])
    len_all = np.concatenate([p[1] for p in parts])
    kind_all = np.concatenate([p[2] for p in parts])
    seq_all = np.concatenate([p[5] for p in parts])
    order = np.lexsort((seq_all, kind_all, -len_all, s_all))
    s_sorted = s_all[order]
    first = order[np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])]
    offsets = np.cumsum([0] + [len(p[0]) for p in parts])
    for j, (_s, _len, _kind, a, m, _hit, kind, src) in enumerate(parts):
        mine = first[(first >= offsets[j]) & (first < offsets[j + 1])] - offsets[j]
        slots = _s[mine].tolist()
        if kind == "char":
            for sl, st, nn in zip(slots, a[mine].tolist(), m[mine].tolist(), strict=True):
                names[sl] = src[st : st + nn]
        else:
            for sl, st, nn in zip(slots, a[mine].tolist(), m[mine].tolist(), strict=True):
                names[sl] = "".join(src[st : st + nn])
    return names


def _choose_terms(merged: dict[str, float], k: int) -> list[tuple[str, float]]:
    """The ``k`` strongest terms, skipping a term that overlaps one already chosen."""
    chosen: list[tuple[str, float]] = []
    for term, v in sorted(merged.items(), key=lambda kv: -kv[1]):
        if not term.startswith("cue:") and any(
            term in t or t in term for t, _ in chosen if not t.startswith("cue:")
        ):
            continue
        chosen.append((term, round(float(v), 4)))
        if len(chosen) >= k:
            break
    return chosen


# --------------------------------------------------------------------------- training
DEFAULT_PARAMS: dict[str, Any] = {}


def build_pipeline(params: dict[str, Any] | None = None, *, seed: int = 0) -> Pipeline:
    """The untrained pipeline; ``params`` use Pipeline names (``features__cue_weight``)."""
    pipe = Pipeline(
        [
            ("features", HashedTextFeatures(segmenter=Segmenter())),
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
) -> RumorModel:
    """Fit a `RumorModel` on raw texts and 0/1 labels (1 = rumor)."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    pipe = build_pipeline(params, seed=seed)
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
