"""nlp.prevalence on synthetic scores whose true rumor share is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlp.prevalence import (
    adjust,
    bbse_prior,
    em_prior,
    estimate_prior,
    expected_precision,
    precision_threshold,
    unadjust,
)

MU = 1.5  # class means at -MU / +MU, unit variance: log-likelihood ratio 2 * MU * x


def _stream(prior: float, n: int, seed: int, train_prior: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores (at ``train_prior``) of a stream whose rumor share is ``prior``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prior).astype(int)
    x = rng.normal(np.where(y == 1, MU, -MU), 1.0)
    logit = 2 * MU * x + math.log(train_prior / (1 - train_prior))
    return 1 / (1 + np.exp(-logit)), y


def _tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


@pytest.mark.parametrize("prior", [0.01, 0.03, 0.1, 0.5])
def test_em_recovers_a_known_prior(prior: float) -> None:
    p, y = _stream(prior, 20_000, seed=1)
    est = em_prior(p, 0.5)
    assert est == pytest.approx(y.mean(), rel=0.25, abs=0.004)
    # the naive mean of the scores is far off at low prevalence: the adjustment is what helps
    if prior <= 0.03:
        assert p.mean() > 2 * prior


def test_em_works_from_another_training_prior() -> None:
    p, y = _stream(0.03, 20_000, seed=2, train_prior=0.44)
    assert em_prior(p, 0.44) == pytest.approx(y.mean(), rel=0.25)


def test_known_labels_refine_em() -> None:
    p, y = _stream(0.05, 4_000, seed=3)
    known = np.full(len(p), -1.0)
    top = np.argsort(-p)[:200]
    known[top] = y[top]
    est = em_prior(p, 0.5, known=known)
    assert est == pytest.approx(y.mean(), rel=0.3)
    all_known = em_prior(p, 0.5, known=y.astype(float))
    assert all_known == pytest.approx(y.mean(), abs=1e-4)


@pytest.mark.parametrize("prior", [0.03, 0.1, 0.3])
def test_bbse_recovers_a_known_prior(prior: float) -> None:
    p, y = _stream(prior, 20_000, seed=4)
    # the threshold p >= 0.5 is x >= 0; rates from the class-conditional normals
    tpr, fpr = _tail(-MU), _tail(MU)
    assert bbse_prior(p, 0.5, tpr, fpr) == pytest.approx(y.mean(), rel=0.3, abs=0.005)


def test_bbse_refuses_a_model_that_does_not_separate() -> None:
    with pytest.raises(ValueError, match="barely separates"):
        bbse_prior(np.array([0.2, 0.8]), 0.5, 0.5, 0.48)


def test_estimate_interval_covers_the_truth() -> None:
    p, y = _stream(0.05, 5_000, seed=5)
    e = estimate_prior(p, 0.5, resamples=60)
    assert e.lower <= e.value <= e.upper
    assert e.lower <= y.mean() * 1.2 and e.upper >= y.mean() / 1.2
    assert e.n == len(p) and e.method == "em"


def test_adjusted_probabilities_round_trip() -> None:
    raw = np.array([0.0, 0.01, 0.3, 0.5, 0.77, 0.99, 1.0])
    q = adjust(raw, 0.44, 0.02)
    assert np.all(q[1:-1] < raw[1:-1])  # a lower prior lowers every non-certain probability
    assert q[0] == 0.0 and q[-1] == 1.0
    assert np.allclose(unadjust(q, 0.44, 0.02), raw, atol=1e-9)
    assert np.allclose(adjust(raw, 0.3, 0.3), raw)


def test_adjusted_scores_are_calibrated_at_the_new_prior() -> None:
    p, y = _stream(0.03, 50_000, seed=6)
    q = adjust(p, 0.5, y.mean())
    high = q >= 0.5
    assert y[high].mean() == pytest.approx(q[high].mean(), abs=0.05)


def test_threshold_meets_the_target_and_moves_with_the_prior() -> None:
    p, y = _stream(0.03, 20_000, seed=7)
    t = precision_threshold(adjust(p, 0.5, 0.03), 0.8)
    q = adjust(p, 0.5, 0.03)
    assert expected_precision(q, t) >= 0.8 - 1e-9
    assert y[q >= t].mean() == pytest.approx(0.8, abs=0.08)
    # the same raw scores on a stream believed to hold more rumors: a lower raw cut-off
    raw_cut_low = unadjust(t, 0.5, 0.03)
    t_high = precision_threshold(adjust(p, 0.5, 0.10), 0.8)
    raw_cut_high = unadjust(t_high, 0.5, 0.10)
    assert raw_cut_high < raw_cut_low
    assert precision_threshold(np.array([]), 0.8) == 0.8
    assert precision_threshold(np.array([0.1, 0.2]), 0.8) == 0.8  # nothing reaches it: the target itself


@pytest.mark.parametrize("prior", [0.01, 0.03, 0.1])
def test_bbe_recovers_a_known_prior_when_non_rumors_drift(prior: float) -> None:
    from nlp.prevalence import PositiveTail, bbe_prior

    held_out, y_held = _stream(0.5, 20_000, seed=8)
    tail = PositiveTail.from_scores(held_out[y_held == 1])
    p, y = _stream(prior, 20_000, seed=9)
    assert bbe_prior(p, tail) == pytest.approx(y.mean(), rel=0.3, abs=0.003)
    # non-rumors that look more rumor-like on the new stream: EM overestimates, BBE much less
    logit = np.log(p / (1 - p))
    drifted = np.where(y == 0, 1 / (1 + np.exp(-(logit + 1.0))), p)
    em, bbe = em_prior(drifted, 0.5), bbe_prior(drifted, tail)
    assert em > 1.3 * y.mean()
    assert bbe < em and bbe < 1.6 * y.mean()
    # reviewed non-rumors tighten the bound
    known = np.where((y == 0) & (drifted > 0.5), 0.0, -1.0)
    assert bbe_prior(drifted, tail, known=known) <= bbe_prior(drifted, tail)


def test_bbe_estimate_with_interval() -> None:
    from nlp.prevalence import PositiveTail

    held_out, y_held = _stream(0.5, 10_000, seed=11)
    p, y = _stream(0.05, 5_000, seed=12)
    e = estimate_prior(p, 0.5, method="bbe", tail=PositiveTail.from_scores(held_out[y_held == 1]), resamples=40)
    assert e.method == "bbe" and e.lower <= e.value <= e.upper
    assert e.value == pytest.approx(y.mean(), rel=0.3)
    with pytest.raises(ValueError, match="held-out"):
        estimate_prior(p, 0.5, method="bbe")
