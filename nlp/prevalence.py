"""Prevalence-aware rumor decisions: the math, without a database.

Why: the classifier's probabilities assume the research sets' rumor share (about half), while a
township's stream holds perhaps 1-3% rumors. At a fixed P >= 0.5 most "rumors" on such a stream
are not. Bayes' rule fixes the probabilities once the stream's rumor share (the prior) is known,
and that share can be estimated from the model's own unlabelled scores:

* `em_prior`: the EM of Saerens, Latinne & Decaestecker (Neural Computation 14(1), 2002):
  alternately adjust the posteriors to a prior and re-estimate the prior as their mean. Needs
  calibrated posteriors on the training distribution; uses every score. Reviewed posts enter
  with their known class (their posterior is fixed at 0 or 1), so verdicts refine the estimate.
* `bbse_prior`: black-box shift estimation (Lipton, Wang & Smola, ICML 2018), binary case: the
  share of hard "rumor" predictions on the stream, corrected by the model's true and false
  positive rates measured on held-out data. Needs those rates; insensitive to calibration.
* `bbe_prior`: best-bin estimation (Garg, Wu, Smola, Balakrishnan & Lipton, "Mixture proportion
  estimation and PU learning: a modern approach", NeurIPS 2021), anchored on the rumor class: for
  every cut-off t, the stream's share above t is at least the rumor share times the rumors'
  held-out share above t, so their ratio bounds the rumor share from above; the tightest bound
  (over cut-offs that keep enough rumors) is the estimate. It assumes only that rumors score on
  a new stream as they did on held-out data, not that non-rumors do: on weibo_ced the model's
  non-rumors reach P >= 0.5 three times as often as held out (0.17 against 0.05), which makes EM
  and BBSE overestimate 2-14 times, while rumors keep their rate (recall 0.93 against 0.92).
  Reviewed non-rumors leave the stream's share above t, which tightens the bound.
* `adjust`: posteriors moved from the training prior to a new one (Saerens et al., eq. 2.4).
* `precision_threshold`: the decision threshold for a target precision: the lowest adjusted
  probability t such that the posts with P >= t are, by their own calibrated probabilities,
  expected to be rumors at least ``target`` of the time.

`bench/bench_prevalence.py` measures which estimator works on a realistic stream (results in
`bench/results/prevalence.md`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_TARGET_PRECISION",
    "Estimate",
    "PositiveTail",
    "adjust",
    "bbe_prior",
    "bbse_prior",
    "em_prior",
    "estimate_prior",
    "expected_precision",
    "precision_threshold",
    "unadjust",
]

DEFAULT_TARGET_PRECISION = 0.8
# Priors are kept inside these bounds: a share of exactly 0 or 1 would turn every adjusted
# probability into 0 or 1, and no stream we watch is that pure.
PRIOR_FLOOR, PRIOR_CEIL = 1e-4, 0.9999
_EPS = 1e-9


def _clip_prior(prior: float) -> float:
    return float(min(max(prior, PRIOR_FLOOR), PRIOR_CEIL))


def adjust(p: np.ndarray | float, train_prior: float, new_prior: float) -> np.ndarray:
    """P(rumor | x) under ``new_prior``, from the model's P(rumor | x) under ``train_prior``.

    Bayes with unchanged class-conditional densities: the posterior odds scale by the ratio of
    the prior odds. Vectorised; probabilities of exactly 0 or 1 stay there.
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    a = _clip_prior(new_prior) / _clip_prior(train_prior)
    b = (1.0 - _clip_prior(new_prior)) / (1.0 - _clip_prior(train_prior))
    num = a * p
    den = num + b * (1.0 - p)
    return np.divide(num, den, out=np.zeros_like(p), where=den > 0)


def unadjust(q: np.ndarray | float, train_prior: float, new_prior: float) -> np.ndarray:
    """The inverse of `adjust`: the raw score back from an adjusted probability."""
    return adjust(q, new_prior, train_prior)


def em_prior(
    p: np.ndarray,
    train_prior: float,
    *,
    known: np.ndarray | None = None,
    start: float | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> float:
    """The stream's rumor share by the EM of Saerens et al. (2002).

    ``p``: calibrated model posteriors (trained at ``train_prior``). ``known``: optional array
    parallel to ``p`` with 1 / 0 for reviewed posts and -1 (or NaN) for the rest; a reviewed
    post counts with its verdict instead of its posterior.
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    if not len(p):
        raise ValueError("no scores to estimate a prior from")
    fixed = np.zeros(len(p), dtype=bool)
    fixed_val = np.zeros(len(p))
    if known is not None:
        k = np.asarray(known, dtype=np.float64)
        fixed = np.isin(k, (0.0, 1.0))
        fixed_val = np.where(fixed, k, 0.0)
    prior = _clip_prior(start if start is not None else float(p.mean()))
    for _ in range(max_iter):
        post = adjust(p, train_prior, prior)
        post = np.where(fixed, fixed_val, post)
        new = _clip_prior(float(post.mean()))
        if abs(new - prior) < tol:
            return new
        prior = new
    return prior


def bbse_prior(p: np.ndarray, threshold: float, tpr: float, fpr: float) -> float:
    """The stream's rumor share by black-box shift estimation (Lipton et al. 2018), binary case.

    The stream's share of hard predictions ``q = P(p >= threshold)`` is ``tpr * pi + fpr * (1 -
    pi)``, where ``tpr`` / ``fpr`` are the model's rates at ``threshold`` on held-out data; solved
    for ``pi`` and clipped to [0, 1] (the confusion matrix inverted, as in the paper).
    """
    p = np.asarray(p, dtype=np.float64)
    if not len(p):
        raise ValueError("no scores to estimate a prior from")
    if tpr - fpr <= 0.05:
        raise ValueError(f"the model barely separates the classes at {threshold} (tpr {tpr:.2f}, fpr {fpr:.2f})")
    q = float((p >= threshold).mean())
    return _clip_prior((q - fpr) / (tpr - fpr))


@dataclass(frozen=True)
class PositiveTail:
    """The rumor class's held-out score distribution, as quantiles (``quantiles[i]`` is the
    ``i / (len - 1)`` quantile): numbers only, stored beside a model."""

    quantiles: np.ndarray

    @classmethod
    def from_scores(cls, scores: np.ndarray, levels: int = 201) -> PositiveTail:
        return cls(np.quantile(np.asarray(scores, dtype=np.float64), np.linspace(0, 1, levels)))

    def share_above(self, t: np.ndarray) -> np.ndarray:
        """Held-out share of rumors scoring at least ``t``."""
        levels = np.linspace(0, 1, len(self.quantiles))
        return 1.0 - np.interp(t, self.quantiles, levels, left=0.0, right=1.0)


#: Cut-offs BBE tries, and the least share of held-out rumors a cut-off must keep above it (a
#: tail with a handful of rumors gives a noisy ratio).
BBE_GRID = np.linspace(0.5, 0.995, 100)
BBE_MIN_TAIL = 0.2
BBE_Z = 1.645  # one-sided 95%
BBE_MIN_ABOVE = 3  # posts of the stream a cut-off must keep above it


def bbe_prior(
    p: np.ndarray, tail: PositiveTail, *, known: np.ndarray | None = None,
    grid: np.ndarray = BBE_GRID, min_tail: float = BBE_MIN_TAIL,
) -> float:
    """The stream's rumor share by best-bin estimation anchored on the rumor class (see the
    module docstring). ``known``: 1 / 0 for reviewed posts, -1 for the rest; a reviewed
    non-rumor no longer counts in the stream's share above any cut-off."""
    p = np.asarray(p, dtype=np.float64)
    if not len(p):
        raise ValueError("no scores to estimate a prior from")
    counted = np.ones(len(p), dtype=bool)
    if known is not None:
        counted = np.asarray(known, dtype=np.float64) != 0.0
    pos_share = tail.share_above(grid)
    keep = pos_share >= min_tail
    if not keep.any():
        raise ValueError("the held-out rumor scores leave no usable cut-off")
    sorted_p = np.sort(p[counted])
    above = (len(sorted_p) - np.searchsorted(sorted_p, grid[keep], side="left")) / len(p)
    # The cut-off is the one with the lowest upper confidence bound on the ratio (the stream's
    # share above it is binomial), as in Garg et al.; the estimate is the plain ratio there.
    # Without the slack, and without a few posts above it, a small window's emptiest tail would
    # win with a ratio of 0.
    n = len(p)
    slack = BBE_Z * np.sqrt(np.maximum(above, 1.0 / n) * (1.0 - above) / n)
    usable = above * n >= BBE_MIN_ABOVE
    ucb = np.where(usable, (above + slack) / pos_share[keep], np.inf)
    best = int(np.argmin(ucb)) if usable.any() else 0
    bound = float(above[best] / pos_share[keep][best])
    # reviewed rumors are rumors whatever the bound says
    confirmed = float((np.asarray(known) == 1.0).sum()) / len(p) if known is not None else 0.0
    return _clip_prior(max(bound, confirmed))


@dataclass(frozen=True)
class Estimate:
    """A prior estimate with its bootstrap interval."""

    value: float
    lower: float
    upper: float
    method: str
    n: int
    n_labels: int = 0


def estimate_prior(
    p: np.ndarray,
    train_prior: float,
    *,
    method: str = "em",
    known: np.ndarray | None = None,
    rates: tuple[float, float, float] | None = None,
    tail: PositiveTail | None = None,
    resamples: int = 100,
    level: float = 0.9,
    seed: int = 0,
) -> Estimate:
    """`em_prior` (``method="bbe"`` with the rumors' held-out ``tail``: `bbe_prior`;
    ``method="bbse"`` with ``rates = (threshold, tpr, fpr)``: `bbse_prior`) with a percentile
    bootstrap interval over the scores (``resamples`` draws, ``level`` coverage)."""
    p = np.asarray(p, dtype=np.float64)
    k = None if known is None else np.asarray(known, dtype=np.float64)

    def one(idx: np.ndarray | None) -> float:
        pp = p if idx is None else p[idx]
        if method == "em":
            kk = None if k is None else (k if idx is None else k[idx])
            return em_prior(pp, train_prior, known=kk, tol=1e-5)
        if method == "bbe":
            if tail is None:
                raise ValueError("bbe needs the rumor class's held-out scores (tail=PositiveTail)")
            kk = None if k is None else (k if idx is None else k[idx])
            return bbe_prior(pp, tail, known=kk)
        if method == "bbse":
            if rates is None:
                raise ValueError("bbse needs rates=(threshold, tpr, fpr) from held-out data")
            return bbse_prior(pp, *rates)
        raise ValueError(f"unknown prevalence method {method!r}: use 'bbe', 'em' or 'bbse'")

    value = one(None)
    rng = np.random.default_rng(seed)
    draws = [one(rng.integers(0, len(p), len(p))) for _ in range(resamples)] if resamples else [value]
    edge = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(np.asarray(draws, dtype=np.float64), [edge, 100 - edge])
    n_labels = int(np.isin(k, (0.0, 1.0)).sum()) if k is not None else 0
    return Estimate(value, float(min(lo, value)), float(max(hi, value)), method, len(p), n_labels)


def expected_precision(q: np.ndarray, threshold: float) -> float | None:
    """The mean calibrated probability of the posts at or above ``threshold``: the share of them
    expected to be rumors. None when no post is there."""
    q = np.asarray(q, dtype=np.float64)
    above = q[q >= threshold]
    return float(above.mean()) if len(above) else None


def precision_threshold(
    q: np.ndarray, target: float = DEFAULT_TARGET_PRECISION, *, known: np.ndarray | None = None
) -> float:
    """The lowest threshold t on adjusted probabilities ``q`` whose decisions (q >= t) are expected
    to be rumors at least ``target`` of the time.

    Expected precision of the top-k posts is the running mean of their probabilities (reviewed
    posts in ``known`` count with their verdict). The answer is never above ``target``: a post
    whose own probability reaches the target meets it alone. With no scores it is ``target``.
    """
    q = np.asarray(q, dtype=np.float64)
    if not len(q):
        return float(target)
    eff = q.copy()
    if known is not None:
        k = np.asarray(known, dtype=np.float64)
        fixed = np.isin(k, (0.0, 1.0))
        eff[fixed] = k[fixed]
    order = np.argsort(-q, kind="stable")
    running = np.cumsum(eff[order]) / np.arange(1, len(q) + 1)
    ok = np.flatnonzero(running >= target - _EPS)
    if not len(ok):
        return float(target)
    # the largest top set that meets the target; ties at its edge join it (q >= t)
    t = float(q[order][ok[-1]])
    return float(min(t, target))
