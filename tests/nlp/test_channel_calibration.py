"""Per-channel calibration maps (nlp.channel_calibration) on synthetic scores whose miscalibration
is known: the map recovers it from reviewed verdicts, falls back to the held-out calibration when
they are too few, stays increasing, and the share it implies agrees with the adjusted posteriors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlp.channel_calibration import HELDOUT, CalibrationMap, calibrated_estimate, fit_channel_map
from nlp.prevalence import adjust

TRAIN_PRIOR = 0.4


def _stream(n: int = 4000, share: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw score, label, truly calibrated training-frame score): classes N(+-1.5, 1), the model's
    logit half the true one plus 1 (overconfident towards rumor, like short posts)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < share).astype(float)
    z = rng.normal(np.where(y == 1, 1.5, -1.5), 1.0)
    true_logit = 3.0 * z + math.log(TRAIN_PRIOR / (1 - TRAIN_PRIOR))
    raw = 1 / (1 + np.exp(-(0.5 * true_logit + 1.0)))
    return raw, y, 1 / (1 + np.exp(-true_logit))


def _reviewed_top(raw: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    known = np.full(len(raw), -1.0)
    top = np.argsort(-raw)[:k]
    known[top] = y[top]
    return known


def test_the_map_undoes_a_known_miscalibration_from_reviewed_top_posts() -> None:
    raw, y, truth = _stream()
    cal, share = fit_channel_map(raw, _reviewed_top(raw, y, 200), TRAIN_PRIOR, prior_guess=0.1)
    assert cal.kind == "labels" and cal.n_labels == 200 and 0 < cal.n_rumors < 200
    before = np.abs(raw - truth).mean()
    after = np.abs(cal.apply(raw) - truth).mean()
    assert after < before / 3
    assert share is not None and abs(share - y.mean()) < 0.3 * y.mean()


def test_too_few_verdicts_keep_the_heldout_calibration() -> None:
    raw, y, _ = _stream()
    known = _reviewed_top(raw, y, 20)
    cal, share = fit_channel_map(raw, known, TRAIN_PRIOR, 0.1)
    assert cal == HELDOUT and share is None
    assert np.array_equal(cal.apply(raw), raw)
    # enough verdicts, but all of one class
    known = np.full(len(raw), -1.0)
    known[np.flatnonzero(y == 0)[:100]] = 0
    assert fit_channel_map(raw, known, TRAIN_PRIOR, 0.1)[0] == HELDOUT


def test_the_map_is_increasing_and_round_trips() -> None:
    raw, y, _ = _stream(seed=3)
    cal, _ = fit_channel_map(raw, _reviewed_top(raw, y, 150), TRAIN_PRIOR, 0.05)
    grid = np.linspace(0.001, 0.999, 400)
    mapped = cal.apply(grid)
    assert np.all(np.diff(mapped) > 0)
    assert cal.invert(mapped) == pytest.approx(grid, abs=1e-6)
    assert CalibrationMap.from_json(cal.to_json()).apply(0.7) == pytest.approx(float(cal.apply(0.7)), abs=1e-5)
    assert CalibrationMap.from_json(None) == HELDOUT


def test_the_implied_share_is_the_mean_adjusted_posterior() -> None:
    """The map is in the training frame: moved to the share it implies, the unreviewed posts'
    probabilities and the verdicts average to that share (the EM fixed point)."""
    raw, y, _ = _stream(seed=5)
    known = _reviewed_top(raw, y, 120)
    cal, share = fit_channel_map(raw, known, TRAIN_PRIOR, 0.2)
    assert share is not None
    q = adjust(cal.apply(raw), TRAIN_PRIOR, share)
    q = np.where(known >= 0, known, q)
    assert q.mean() == pytest.approx(share, rel=1e-3)


def test_the_estimate_has_an_interval_around_it() -> None:
    raw, y, _ = _stream(seed=7)
    cal, e = calibrated_estimate(raw, _reviewed_top(raw, y, 200), TRAIN_PRIOR, 0.1, resamples=30)
    assert e is not None and cal.kind == "labels"
    assert e.lower <= e.value <= e.upper and e.upper - e.lower > 0
    assert e.n_labels == 200 and e.method == "calibrated"
    assert calibrated_estimate(raw, np.full(len(raw), -1.0), TRAIN_PRIOR, 0.1)[1] is None
