"""Rumor scoring without scikit-learn: the inference half of `nlp.classifier`.

Why a module of its own: importing scikit-learn pulls in scipy.stats and pandas, about a
second on this machine, which alone breaks the cold-start budget of scoring (issue 9: under
1 s from a fresh interpreter to the first score). A trained rumor model is numbers (an idf per
hashed column, one coefficient per column, a sigmoid calibration) plus a few parameters, and
scoring is hashing, a sparse matrix and a dot product: numpy and scipy.sparse are enough.

* `HashedFeatureMath` and `LinearScoreMath` hold the featurisation and scoring math. The
  sklearn estimators in `nlp.classifier` inherit them, so training and inference run the
  same code.
* `RumorScorer` scores, explains and does both in one featurisation; `RumorModel` (the
  trainable, savable model) is one.
* `load_scorer` reads a model file's numbers straight from the skops archive (its JSON
  schema and ``.npy`` arrays, ``allow_pickle=False``): nothing in the file is executed or
  imported, and a file holding any type outside `nlp.classifier.TRUSTED_TYPES` is refused,
  like `RumorModel.load` does.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from core.arrays import load_npy
from nlp.cues import CUE_NAMES, cue_matrix
from nlp.normalize import PLACEHOLDER_RE, PLACEHOLDERS, normalize
from nlp.segment import Segmenter, load_stopwords

__all__ = [
    "HashedFeatureMath",
    "LinearScoreMath",
    "ModelFileError",
    "NotFittedYet",
    "RumorScorer",
    "default_model_path",
    "hash_char_ngrams",
    "hash_word_ngrams",
    "is_telling_term",
    "load_scorer",
    "snap_to_words",
    "word_text",
]

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


def _l2_normalize_rows(x: sp.csr_matrix) -> None:
    """Scale each row of ``x`` to unit l2 norm in place (all-zero rows stay zero)."""
    per_row = np.diff(x.indptr)
    rows = np.repeat(np.arange(x.shape[0]), per_row)
    norms = np.sqrt(np.bincount(rows, weights=np.square(x.data, dtype=np.float64), minlength=x.shape[0]))
    norms[norms == 0] = 1.0
    x.data /= np.repeat(norms, per_row).astype(x.data.dtype)


class NotFittedYet(RuntimeError):
    """Scoring asked of a model that has not been trained."""


class HashedFeatureMath:
    """Raw texts -> [char n-gram TF-IDF | word n-gram TF-IDF | cue values], all hashed: the
    transform half of `nlp.classifier.HashedTextFeatures` (which documents the parameters).

    Reads the parameters ``char_ngram_range``, ``word_ngram_range``, ``n_features``,
    ``sublinear_tf``, ``char_weight``, ``word_weight``, ``cue_weight``, ``segmenter`` and the
    fitted ``char_idf_`` / ``word_idf_`` as attributes.
    """

    char_ngram_range: tuple[int, int]
    word_ngram_range: tuple[int, int]
    n_features: int
    sublinear_tf: bool
    char_weight: float
    word_weight: float
    cue_weight: float
    segmenter: Segmenter | None
    char_idf_: np.ndarray
    word_idf_: np.ndarray

    def _check_fitted(self) -> None:
        if not hasattr(self, "char_idf_"):
            raise NotFittedYet(f"{type(self).__name__} is not fitted yet: call fit first")

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
                entries["word_starts"] = np.cumsum([0] + [len(d) for d in toks]).tolist()
        else:
            xw = sp.csr_matrix((n, nf), dtype=np.float32)
        return xc, xw

    def transform_with_entries(self, norms: Sequence[str]) -> tuple[sp.csr_matrix, dict[str, Any]]:
        """`transform_normalized` plus the hashed n-gram entries (see `_counts`)."""
        self._check_fitted()
        entries: dict[str, Any] = {}
        xc, xw = self._counts(norms, entries)
        return self._stack(xc, xw, norms), entries

    def _weight(self, x: sp.csr_matrix, idf: np.ndarray, w: float) -> sp.csr_matrix:
        x = x.astype(np.float32, copy=True)
        x.sum_duplicates()
        if self.sublinear_tf:
            np.log(x.data, out=x.data)
            x.data += 1.0
        x.data *= idf[x.indices]
        _l2_normalize_rows(x)
        if w != 1.0:
            x.data *= w
        return x

    def transform(self, X: Iterable[str]) -> sp.csr_matrix:
        self._check_fitted()
        norms = [normalize(t) for t in X]
        return self._stack(*self._counts(norms), norms)

    def transform_normalized(self, norms: Sequence[str]) -> sp.csr_matrix:
        """`transform` for texts already passed through `normalize`."""
        self._check_fitted()
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


class LinearScoreMath:
    """The scoring half of `nlp.classifier.LinearEnsembleClassifier`: one linear margin
    (``coef_``, ``intercept_``) and its sigmoid calibration (``calib_a_``, ``calib_b_``)."""

    coef_: np.ndarray
    intercept_: float
    calib_a_: float
    calib_b_: float

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedYet(f"{type(self).__name__} is not fitted yet: call fit first")

    def decision_function(self, X: sp.csr_matrix) -> np.ndarray:
        self._check_fitted()
        return np.asarray(X @ self.coef_, dtype=np.float64).ravel() + self.intercept_

    def predict_proba(self, X: sp.csr_matrix) -> np.ndarray:
        z = self.calib_a_ * self.decision_function(X) + self.calib_b_
        p1 = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: sp.csr_matrix) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(int)


class RumorScorer:
    """Scores raw texts with fitted features and a fitted linear classifier.

    ``features`` / ``clf`` are `HashedFeatureMath` / `LinearScoreMath` objects (the sklearn
    estimators of a trained pipeline, or the plain ones `load_scorer` builds).
    """

    def __init__(
        self,
        features: HashedFeatureMath,
        clf: LinearScoreMath,
        *,
        version: str = "dev",
        card: dict[str, Any] | None = None,
    ) -> None:
        self._features = features
        self._clf = clf
        self.version = version
        self.card: dict[str, Any] = dict(card or {})

    @property
    def features(self) -> HashedFeatureMath:
        return self._features

    @property
    def clf(self) -> LinearScoreMath:
        return self._clf

    def portable(self) -> RumorScorer:
        """A scorer over plain copies of the fitted attributes (arrays shared, not copied):
        unpickling it imports no scikit-learn, so worker processes start fast."""
        features = _LoadedFeatures(dict(vars(self.features)))
        return RumorScorer(features, _LoadedLinear(dict(vars(self.clf))), version=self.version, card=self.card)

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
    names, from_chars = _name_candidates(X, row_of, n_cols, slot, len(pos), entries)
    cols = X.indices[pos]
    for i in np.flatnonzero(cols >= cue_base).tolist():
        names[i] = "cue:" + CUE_NAMES[cols[i] - cue_base]
    placeholder_rows = {i for i, t in enumerate(norms) if "<" in t or _PH_CHAR_RE.search(t)}
    # the per-row choice (candidates arrive grouped by row, strongest first)
    val_list = vals.tolist()
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    bounds = [*starts.tolist(), len(val_list)]
    tokens: list[str] | None = entries["word"][4] if "word" in entries else None
    word_starts: list[int] = entries.get("word_starts", [])
    for i, lo, hi in zip(rows[starts].tolist(), bounds, bounds[1:], strict=False):
        merged: dict[str, float] = {}
        shown = i in placeholder_rows
        spans = word_text(tokens[word_starts[i] : word_starts[i + 1]]) if tokens is not None else None
        for term, v, char_ngram in zip(names[lo:hi], val_list[lo:hi], from_chars[lo:hi], strict=True):
            if term is not None:
                if char_ngram:  # word n-grams are whole words already
                    term = snap_to_words(term, *spans) if spans is not None else _longest_piece(term)
                elif not term.startswith("cue:"):
                    term = _longest_piece(term)
                if shown:
                    term = _display(term)
                merged[term] = merged.get(term, 0.0) + v
        out[i] = _choose_terms(merged, k)
    return out


def _name_candidates(
    X: sp.csr_matrix,
    row_of: np.ndarray,
    n_cols: int,
    slot: np.ndarray,
    n_slots: int,
    entries: dict[str, Any],
) -> tuple[list[str | None], list[bool]]:
    """The longest n-gram of its own row hashed into each candidate (row, column) slot; on a
    tie the first hashed (char before word, shorter n first, earlier position first); and
    whether that name is a char n-gram (the ones `snap_to_words` widens to whole words)."""
    x_keys = row_of * n_cols + X.indices
    parts: list[Any] = []  # (slot, length, kind, start, n) of the entries that land on a candidate
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
    from_chars = [False] * n_slots
    s_all = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    if not len(s_all):
        return names, from_chars
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
                from_chars[sl] = True
        else:
            for sl, st, nn in zip(slots, a[mine].tolist(), m[mine].tolist(), strict=True):
                names[sl] = "".join(src[st : st + nn])
    return names, from_chars


# Punctuation a shown term should not start or end with ("开幕，" -> "开幕").
_EDGE_PUNCT = " ,，.。、:：;；!！?？\"'“”‘’()（）[]【】《》…~～-—·/|#@"
_SNAP_LIMIT = 6  # characters: a fragment inside a long run of short words stays as it is


def word_text(tokens: Sequence[str]) -> tuple[str, list[int]]:
    """A row's character text (as char n-grams see it) rebuilt from its words, and the end
    offset of each word in it (a whitespace word ends where the word before it does)."""
    parts = [_PH_CHARS.get(w, w) for w in tokens]
    if any(" " in w for w in parts):
        parts = [w.replace(" ", "") for w in parts]
    return "".join(parts), list(accumulate(map(len, parts)))


def snap_to_words(term: str, text: str, ends: list[int]) -> str:
    """The whole words a char n-gram cuts through ("正式通" -> "正式通知", "管" -> "管道"),
    without punctuation.

    Character n-grams carry much of the model's weight but often straddle words ("午临",
    "罩等生"); staff reading why a post was flagged should see words. ``text`` and ``ends``
    come from `word_text`. When the words run past `_SNAP_LIMIT` characters, the covered word
    sharing most characters with the term is shown; a term not found is kept. A term spanning
    punctuation ("持平。对") keeps its longest piece.
    """
    at = text.find(term)
    if at >= 0 and ends:
        i = bisect_right(ends, at)
        j = bisect_left(ends, at + len(term))
        if j < len(ends):
            # word n starts where word n - 1 ends (the first at 0)
            snapped = _longest_piece(text[ends[i - 1] if i else 0 : ends[j]])
            if not snapped or len(snapped) > _SNAP_LIMIT:
                starts = [0, *ends]
                covered = [(min(ends[n], at + len(term)) - max(starts[n], at), text[starts[n] : ends[n]])
                           for n in range(i, j + 1)]
                snapped = _longest_piece(max(covered, key=_overlap_size)[1])
            if snapped and len(snapped) <= _SNAP_LIMIT:
                return snapped
    return _longest_piece(term)


def _overlap_size(item: tuple[int, str]) -> int:
    return item[0]


_PUNCT_RUN_RE = re.compile("[" + re.escape(_EDGE_PUNCT) + "]+")


# Pure functions of a term, and the explanation's terms repeat from post to post (a few thousand
# distinct ones per batch): remembered rather than worked out for each of a row's candidates.
_TERM_CACHE = 1 << 16


@lru_cache(maxsize=_TERM_CACHE)
def _longest_piece(term: str) -> str:
    """The longest run of ``term`` between punctuation (the first of equal length)."""
    pieces = _PUNCT_RUN_RE.split(term)
    return max(pieces, key=len) if len(pieces) > 1 else term


# Terms a reader learns nothing from ("了", "被", "的是"): the model may lean on them, but staff
# reading "why was this flagged" should see the next strongest term instead.
_STOPWORDS = load_stopwords()
_FUNCTION_CHARS = frozenset(w for w in _STOPWORDS if len(w) == 1) | frozenset(" ,，.。、:：;；")


@lru_cache(maxsize=_TERM_CACHE)
def is_telling_term(term: str) -> bool:
    """False for a stopword, a term made only of stopword characters and separators, or one
    with no letter at all (digits of a phone number, punctuation)."""
    return (term not in _STOPWORDS and not all(ch in _FUNCTION_CHARS for ch in term)
            and any(ch.isalpha() for ch in term))


def _choose_terms(merged: dict[str, float], k: int) -> list[tuple[str, float]]:
    """The ``k`` strongest telling terms, skipping a term that overlaps one already chosen."""
    chosen: list[tuple[str, float]] = []
    words: list[str] = []  # the chosen terms that are not cues, for the overlap test
    for term, v in sorted(merged.items(), key=_by_weight):
        if not term.startswith("cue:"):
            if not is_telling_term(term) or any(term in t or t in term for t in words):
                continue
            words.append(term)
        chosen.append((term, round(v, 4)))
        if len(chosen) >= k:
            break
    return chosen


def _by_weight(item: tuple[str, float]) -> float:
    return -item[1]


# --------------------------------------------------------------------------- loading
class ModelFileError(ValueError):
    """A model file is not a yuqing rumor model we can read; nothing in it was run."""


# Types a yuqing model file may hold beyond the builtins and numpy arrays of skops' own
# schema (nlp.classifier passes the same list to skops).
MODEL_TYPES: frozenset[str] = frozenset(
    {
        "nlp.classifier.HashedTextFeatures",
        "nlp.classifier.LinearEnsembleClassifier",
        "nlp.segment.Segmenter",
        "sklearn.pipeline.Pipeline",
    }
)
_PLAIN = {"JsonNode", "ListNode", "TupleNode", "DictNode", "NdArrayNode", "ObjectNode"}


class _Fitted:
    """A bag of attributes read from a model file (what skops would set on the estimator)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class _LoadedFeatures(_Fitted, HashedFeatureMath):
    pass


class _LoadedLinear(_Fitted, LinearScoreMath):
    pass


@dataclass(frozen=True)
class _Object:
    """An object node of the schema: its type and its attributes (never instantiated)."""

    kind: str
    state: dict[str, Any]


class _SchemaReader:
    """Rebuilds the values of a skops schema: JSON scalars, lists, tuples, dicts, numpy arrays
    (``allow_pickle=False``) and objects of `MODEL_TYPES` as plain attribute dicts."""

    def __init__(self, archive: zipfile.ZipFile, file: Path) -> None:
        self.archive, self.file = archive, file

    def value(self, node: dict[str, Any]) -> Any:
        loader = node.get("__loader__")
        if loader not in _PLAIN:
            raise ModelFileError(f"model file {self.file}: unsupported node {loader!r}")
        content: Any = node.get("content")
        if loader == "JsonNode":
            return json.loads(content)
        if loader in ("ListNode", "TupleNode"):
            items = [self.value(v) for v in content]
            return items if loader == "ListNode" else tuple(items)
        if loader == "DictNode":
            return {k: self.value(v) for k, v in content.items()}
        if loader == "NdArrayNode":
            if node.get("type") != "numpy":
                raise ModelFileError(f"model file {self.file}: array stored as {node.get('type')!r}")
            with self.archive.open(node["file"]) as fh:
                return load_npy(fh)
        kind = f"{node.get('__module__')}.{node.get('__class__')}"
        if kind not in MODEL_TYPES:
            raise ModelFileError(
                f"model file {self.file} contains type {kind} outside yuqing's allowlist; "
                "refusing to load it (retrain with nlp.training or check where the file came from)"
            )
        return _Object(kind, self.value(content))


def _segmenter(state: dict[str, Any]) -> Segmenter:
    seg = Segmenter.__new__(Segmenter)
    seg.__setstate__(state)
    return seg


def read_model_file(file: Path) -> tuple[HashedFeatureMath, LinearScoreMath]:
    """The fitted features and classifier of a ``model.skops`` file, as plain objects."""
    try:
        with zipfile.ZipFile(file) as archive:
            root = _SchemaReader(archive, file).value(json.loads(archive.read("schema.json")))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"model file {file} is not a skops archive we can read: {e}") from e
    steps = dict(root.state.get("steps") or []) if isinstance(root, _Object) else {}
    feats, clf = steps.get("features"), steps.get("clf")
    if (
        not isinstance(root, _Object)
        or root.kind != "sklearn.pipeline.Pipeline"
        or set(steps) != {"features", "clf"}
        or not isinstance(feats, _Object)
        or feats.kind != "nlp.classifier.HashedTextFeatures"
        or not isinstance(clf, _Object)
        or clf.kind != "nlp.classifier.LinearEnsembleClassifier"
    ):
        raise ModelFileError(f"model file {file} is not a yuqing rumor pipeline (features + clf)")
    fstate = dict(feats.state)
    seg = fstate.get("segmenter")
    if seg is not None:
        if not isinstance(seg, _Object) or seg.kind != "nlp.segment.Segmenter":
            raise ModelFileError(f"model file {file}: the segmenter is not an nlp.segment.Segmenter")
        fstate["segmenter"] = _segmenter(seg.state)
    return _LoadedFeatures(fstate), _LoadedLinear(clf.state)


def default_model_path() -> Path:
    """The shipped model directory: ``$YUQING_MODEL_DIR`` (or ``<repo>/models``) +
    ``rumor/<version in rumor/ACTIVE>/``."""
    base = Path(os.environ.get("YUQING_MODEL_DIR") or (REPO_ROOT / "models"))
    rumor = base / "rumor"
    active = rumor / "ACTIVE"
    if not active.is_file():
        raise FileNotFoundError(
            f"no active rumor model: {active} is missing (train one with `python -m nlp.training ship`)"
        )
    return rumor / active.read_text(encoding="utf-8").strip()


def model_file(path: str | os.PathLike[str] | None = None) -> Path:
    """``model.skops`` of a model directory (default: the shipped model), or the file itself."""
    p = Path(path) if path is not None else default_model_path()
    file = p / "model.skops" if p.is_dir() else p
    if not file.is_file():
        raise FileNotFoundError(
            f"rumor model file {file} not found (train one with `python -m nlp.training ship`)"
        )
    return file


def read_card(file: Path) -> tuple[str, dict[str, Any]]:
    """Version and card of the model whose file is ``file`` (its folder's ``card.json``)."""
    card_file = file.parent / "card.json"
    card = json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}
    return str(card.get("version") or file.parent.name), card


def load_scorer(path: str | os.PathLike[str] | None = None) -> RumorScorer:
    """A `RumorScorer` for a model directory (or its ``model.skops``); default: the shipped model.

    The fast way to score: no scikit-learn, no skops, no object from the file is constructed
    (see the module docstring). `nlp.classifier.RumorModel.load` gives the same scores and
    can also be retrained and saved.
    """
    file = model_file(path)
    features, clf = read_model_file(file)
    version, card = read_card(file)
    return RumorScorer(features, clf, version=version, card=card)


# ----------------------------------------------------------------------------- small linear models


class ScaledLogistic:
    """``predict_proba`` of a fitted scikit-learn ``make_pipeline(StandardScaler(),
    LogisticRegression())`` (binary) with numpy alone: the claim matcher's model
    (nlp.claims) in the analysis workers, which otherwise import scikit-learn to unpickle it
    (about 3 CPU-seconds per worker here, more than the worker spends matching debunks).

    The arithmetic is the estimators' own, step for step (a float64 copy, minus the mean,
    divided by the scale, times the coefficients plus the intercept, scipy's expit), so the
    probabilities are the same to the bit.
    """

    def __init__(self, mean: np.ndarray | None, scale: np.ndarray | None, coef: np.ndarray,
                 intercept: np.ndarray, classes: np.ndarray) -> None:
        self.mean, self.scale, self.coef, self.intercept, self.classes_ = mean, scale, coef, intercept, classes
        # as scikit-learn names it: the claim matcher gives an older model only its own columns
        self.n_features_in_ = int(coef.shape[1])

    @classmethod
    def of(cls, model: Any) -> ScaledLogistic | None:
        """The twin of ``model`` when it is such a pipeline (fitted, binary, dense), else None."""
        steps = getattr(model, "steps", None)
        if not steps or len(steps) != 2:
            return None
        scaler, clf = steps[0][1], steps[1][1]
        if type(scaler).__name__ != "StandardScaler" or type(clf).__name__ != "LogisticRegression":
            return None
        coef, classes = getattr(clf, "coef_", None), getattr(clf, "classes_", None)
        if coef is None or classes is None or len(classes) != 2 or coef.shape[0] != 1 or not hasattr(scaler, "scale_"):
            return None
        return cls(scaler.mean_ if scaler.with_mean else None, scaler.scale_ if scaler.with_std else None,
                   np.asarray(coef), np.asarray(clf.intercept_), np.asarray(classes))

    def predict_proba(self, x: Any) -> np.ndarray:
        from scipy.special import expit

        x = np.asarray(x)
        # a copy (StandardScaler.transform(copy=True)), float32 kept as float32 like the scaler does
        x = np.array(x, dtype=x.dtype if x.dtype in (np.float32, np.float64) else np.float64)
        if self.mean is not None:
            x -= self.mean.astype(x.dtype)
        if self.scale is not None:
            x /= self.scale.astype(x.dtype)
        scores = (x @ self.coef.T + self.intercept).reshape(-1)  # LogisticRegression.decision_function
        p = expit(scores, out=scores)
        return np.stack([1 - p, p], axis=1)


class BoostedTrees:
    """``predict_proba`` of a fitted binary scikit-learn ``HistGradientBoostingClassifier`` with
    numpy alone, built from its fitted trees: the claim matcher's model (nlp.claims) in the
    analysis workers, which otherwise import scikit-learn to unpickle it (about 3 CPU-seconds per
    worker here, a tenth of a worker's share of a 100k-post run).

    The arithmetic is scikit-learn's own (``_predictor.pyx``): float64 inputs; at each split a
    missing value goes where ``missing_go_to_left`` says, any other value left when ``<=`` the
    node's ``num_threshold``; the baseline plus each tree's leaf value, added one tree after the
    other in the fitted order; the logistic of the sum. So the probabilities are the same to the
    bit (tests/nlp/test_scoring.py compares them on random inputs). All trees are walked at once,
    one step of every tree per numpy operation.
    """

    def __init__(self, nodes: dict[str, np.ndarray], roots: np.ndarray, depth: int, baseline: float,
                 classes: np.ndarray, n_features: int) -> None:
        self.feature, self.threshold = nodes["feature_idx"], nodes["num_threshold"]
        self.missing_left, self.is_leaf = nodes["missing_go_to_left"], nodes["is_leaf"]
        self.left, self.right, self.value = nodes["left"], nodes["right"], nodes["value"]
        self.roots, self.depth, self.baseline = roots, depth, baseline
        self.classes_ = classes
        self.n_features_in_ = n_features  # as scikit-learn names it (the claim matcher reads it)

    @classmethod
    def of(cls, model: Any) -> BoostedTrees | None:
        """The twin of ``model`` when it is a fitted binary HistGradientBoostingClassifier on
        numeric features (no categorical ones, no preprocessor), else None."""
        if type(model).__name__ != "HistGradientBoostingClassifier":
            return None
        predictors = getattr(model, "_predictors", None)
        classes = getattr(model, "classes_", None)
        loss = type(getattr(model, "_loss", None)).__name__
        if not predictors or classes is None or len(classes) != 2 or loss != "HalfBinomialLoss" \
                or getattr(model, "n_trees_per_iteration_", 0) != 1 or getattr(model, "_preprocessor", None) is not None:
            return None
        is_categorical = getattr(model, "is_categorical_", None)
        if is_categorical is not None and np.any(is_categorical):
            return None
        trees = [it[0].nodes for it in predictors]
        if any(len(it) != 1 or t["is_categorical"].any() for it, t in zip(predictors, trees, strict=True)):
            return None
        sizes = np.array([len(t) for t in trees], dtype=np.int64)
        roots = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        offset = np.repeat(roots, sizes)
        flat = np.concatenate(trees)
        nodes = {
            "feature_idx": flat["feature_idx"].astype(np.int64),
            "num_threshold": flat["num_threshold"].astype(np.float64),
            "missing_go_to_left": flat["missing_go_to_left"].astype(bool),
            "is_leaf": flat["is_leaf"].astype(bool),
            "left": flat["left"].astype(np.int64) + offset,
            "right": flat["right"].astype(np.int64) + offset,
            "value": flat["value"].astype(np.float64),
        }
        baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
        return cls(nodes, roots, int(max(t["depth"].max() for t in trees)), float(baseline[0]), np.asarray(classes),
                   int(model.n_features_in_))

    def raw(self, x: Any) -> np.ndarray:
        """The sum of the baseline and every tree's leaf value (scikit-learn's ``_raw_predict``)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {x.shape[-1]} features, the model {self.n_features_in_}")
        n = x.shape[0]
        node = np.repeat(self.roots[None, :], n, axis=0)  # (samples, trees)
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            v = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
            node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
        values = self.value[node].T  # (trees, samples)
        raw = np.full(n, self.baseline)
        for column in values:  # one tree after the other, as scikit-learn adds them
            raw += column
        return raw

    def predict_proba(self, x: Any) -> np.ndarray:
        from scipy.special import expit

        p = expit(self.raw(x))
        out = np.empty((len(p), 2), dtype=np.float64)
        out[:, 1] = p
        out[:, 0] = 1 - p
        return out


def numpy_twin(model: Any) -> ScaledLogistic | BoostedTrees | None:
    """A scikit-learn-free stand-in with ``model``'s exact probabilities, or None (no twin)."""
    return ScaledLogistic.of(model) or BoostedTrees.of(model)
