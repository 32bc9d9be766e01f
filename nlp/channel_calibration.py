"""Per-channel calibration of the rumor model's scores: a map fitted on a channel's reviewed
verdicts, applied before the channel's prevalence estimate and its decisions.

Why: the prevalence estimators and the prior adjustment (`nlp.prevalence`) assume the model's
scores are calibrated on the training distribution: a score of 0.9 means nine rumors in ten at
the training rumor share. Held out, the shipped recipe is (its Platt step is fitted on
cross-validated scores), but not on every stream: on weibo_ced its non-rumors reach P >= 0.5
three times as often as held out, and on texts unlike its training data its rumors score lower
(bench/results/prevalence.md). No label-free fix held on both kinds of stream
(bench/experiments/results/prevalence_calibration_notes.md); a channel's own reviewed verdicts can.

The map is Platt scaling on the logit of the score, ``c = sigmoid(a + b * logit(s))``, in the
*training* frame (so the estimators and `adjust` keep their meaning):

* fitted by penalised maximum likelihood on the channel's reviewed posts, whose verdicts are
  drawn at the stream's own rumor share, with a Gaussian prior centred on the held-out
  calibration (a = the prior-odds shift to the stream, b = 1); a handful of verdicts barely moves
  it, a few hundred decide it. Two parameters extrapolate tamely beyond the reviewed scores
  (staff review mostly high-scoring posts), which an isotonic map would not.
* the stream frame is turned into the training frame by the channel's rumor share estimated with
  the same map (the mean calibrated probability over the window, verdicts counting as known),
  so the estimate and the map agree: `adjust(c, train_prior, share)` is the fitted stream
  probability.
* with too few verdicts (fewer than `MIN_LABELS`, or fewer than `MIN_PER_CLASS` of a class) the
  map is the held-out calibration: the identity, since the model's scores are already calibrated
  on held-out folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nlp.prevalence import Estimate

__all__ = ["HELDOUT", "MIN_LABELS", "MIN_PER_CLASS", "CalibrationMap", "calibrated_estimate", "fit_channel_map"]

#: Fewest reviewed posts of a channel (and of each class among them) before its own map replaces
#: the held-out calibration.
MIN_LABELS = 30
MIN_PER_CLASS = 5
#: Strength of the pull towards the held-out calibration (a Gaussian prior's precision on a and
#: b). On the tune half of weibo_ced every value from 0.25 to 64 did about as well with 50-100
#: reviewed posts (bench/experiments/results/prevalence_heldout.md), so it is the one that still
#: learns a strong miscalibration from a few hundred verdicts (tests/nlp/test_channel_calibration.py).
PRIOR_STRENGTH = 1.0
_B_FLOOR = 0.1  # the map stays increasing: a higher score never means a lower probability
_LOGIT_CLIP = 12.0


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.clip(np.log(p / (1 - p)), -_LOGIT_CLIP, _LOGIT_CLIP)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))


@dataclass(frozen=True)
class CalibrationMap:
    """``c = sigmoid(a + b * logit(raw))``; ``kind`` is ``heldout`` (the identity: the model's own
    held-out calibration) or ``labels`` (fitted on ``n_labels`` verdicts, ``n_rumors`` rumors)."""

    a: float = 0.0
    b: float = 1.0
    kind: str = "heldout"
    n_labels: int = 0
    n_rumors: int = 0

    def apply(self, raw: np.ndarray | float) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.kind == "heldout" and self.a == 0.0 and self.b == 1.0:
            return raw.copy()
        return _sigmoid(self.a + self.b * _logit(raw))

    def invert(self, c: np.ndarray | float) -> np.ndarray:
        """The raw score that maps to ``c`` (a threshold on calibrated scores back to raw)."""
        c = np.asarray(c, dtype=np.float64)
        if self.kind == "heldout" and self.a == 0.0 and self.b == 1.0:
            return c.copy()
        return _sigmoid((_logit(c) - self.a) / self.b)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": round(self.a, 6), "b": round(self.b, 6), "n_labels": self.n_labels,
                "n_rumors": self.n_rumors}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> CalibrationMap:
        if not d:
            return HELDOUT
        return cls(float(d.get("a", 0.0)), float(d.get("b", 1.0)), str(d.get("kind", "heldout")),
                   int(d.get("n_labels", 0)), int(d.get("n_rumors", 0)))


HELDOUT = CalibrationMap()


def _fit_platt(x: np.ndarray, y: np.ndarray, a0: float, b0: float, strength: float) -> tuple[float, float]:
    """Penalised logistic regression of ``y`` on ``x`` (Newton steps), prior N((a0, b0), 1/strength)."""
    a, b = a0, b0
    for _ in range(50):
        p = _sigmoid(a + b * x)
        w = p * (1 - p)
        g = np.array([np.sum(y - p) - strength * (a - a0), np.sum((y - p) * x) - strength * (b - b0)])
        h = np.array([[np.sum(w) + strength, np.sum(w * x)], [np.sum(w * x), np.sum(w * x * x) + strength]])
        step = np.linalg.solve(h, g)
        a, b = a + float(step[0]), max(b + float(step[1]), _B_FLOOR)
        if np.abs(step).max() < 1e-7:
            break
    return a, b


def fit_channel_map(
    raw: np.ndarray,
    known: np.ndarray,
    train_prior: float,
    prior_guess: float,
    *,
    min_labels: int = MIN_LABELS,
    min_per_class: int = MIN_PER_CLASS,
    strength: float = PRIOR_STRENGTH,
) -> tuple[CalibrationMap, float | None]:
    """The channel's map and the rumor share it implies over the window.

    ``raw``: the window's raw scores; ``known``: parallel, 1 / 0 for reviewed posts, -1 for the
    rest; ``prior_guess``: the channel's share estimated without the map (the prior's centre).
    Returns (`HELDOUT`, None) when the verdicts are too few.
    """
    raw = np.asarray(raw, dtype=np.float64)
    k = np.asarray(known, dtype=np.float64)
    reviewed = np.isin(k, (0.0, 1.0))
    y = k[reviewed]
    n_pos = int((y == 1).sum())
    if len(y) < min_labels or n_pos < min_per_class or len(y) - n_pos < min_per_class:
        return HELDOUT, None
    x = _logit(raw)
    shift = float(_logit(prior_guess) - _logit(train_prior))
    a_stream, b = _fit_platt(x[reviewed], y, shift, 1.0, strength)
    stream_p = _sigmoid(a_stream + b * x)
    share = float(np.where(reviewed, k, stream_p).mean())
    share = min(max(share, 1e-4), 0.9999)
    a_train = a_stream - float(_logit(share)) + float(_logit(train_prior))
    return CalibrationMap(a_train, b, "labels", len(y), n_pos), share


def calibrated_estimate(
    raw: np.ndarray,
    known: np.ndarray,
    train_prior: float,
    prior_guess: float,
    *,
    resamples: int = 50,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[CalibrationMap, Estimate | None]:
    """`fit_channel_map` with a percentile bootstrap interval on the share it implies (posts and
    verdicts resampled together, the map refitted each time). (`HELDOUT`, None) with too few
    verdicts."""
    raw = np.asarray(raw, dtype=np.float64)
    k = np.asarray(known, dtype=np.float64)
    cal, share = fit_channel_map(raw, k, train_prior, prior_guess)
    if share is None:
        return cal, None
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, len(raw), len(raw))
        _, s = fit_channel_map(raw[idx], k[idx], train_prior, prior_guess)
        draws.append(s if s is not None else share)
    edge = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(np.asarray(draws or [share]), [edge, 100 - edge])
    return cal, Estimate(share, float(min(lo, share)), float(max(hi, share)), "calibrated", len(raw), cal.n_labels)
