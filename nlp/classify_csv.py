"""Scoring a table of texts outside the database (`yuqing classify`), with the same decisions as
the analysis pipeline: prior-adjusted probabilities, the precision-target threshold, abstention.

Two steps, so the rumor share can be estimated from the file itself before anything is decided:
`score_frame` adds the model's raw score, why it abstains (if it does) and the top terms;
`decide_frame` adds the adjusted probability and the label for a `Decider`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from nlp.abstain import ABSTAIN_ZH, REASON_ZH, Abstainer
from nlp.cues import term_label
from nlp.normalize import normalize
from nlp.pipeline import Classifier, _positive_column
from nlp.prevalence import Estimate, adjust, estimate_prior, precision_threshold
from nlp.prevalence_store import Decider, ModelProfile

__all__ = ["RAW_COLUMN", "REASON_COLUMN", "classify_frame", "decide_frame", "estimate_from_scores", "score_frame"]

RAW_COLUMN = "raw_score"
REASON_COLUMN = "abstain_reason"
CHANNEL = "file"  # one channel: the file's own rows


def score_frame(
    frame: pd.DataFrame, model: Classifier, text_column: str = "text", k: int = 5,
    abstainer: Abstainer | None = None,
) -> pd.DataFrame:
    """A copy of ``frame`` with the model's ``raw_score``, ``abstain_reason`` (empty, or why the
    model cannot judge the row, in Chinese) and ``top_terms`` (``term:weight`` joined by spaces,
    cues named as staff read them: `nlp.cues.term_label`)."""
    if text_column not in frame.columns:
        raise KeyError(text_column)
    texts = [normalize(t) if isinstance(t, str) else "" for t in frame[text_column].tolist()]
    out = frame.copy()
    if not texts:
        out[RAW_COLUMN] = pd.Series(dtype=float)
        out[REASON_COLUMN] = pd.Series(dtype=str)
        out["top_terms"] = pd.Series(dtype=str)
        return out
    proba = _positive_column(model.predict_proba(texts))
    explained = model.explain(texts, k=k)
    reasons = (abstainer or Abstainer()).reasons(texts)
    out[RAW_COLUMN] = proba.round(6)
    out[REASON_COLUMN] = [REASON_ZH[r] if r else "" for r in reasons]
    out["top_terms"] = [
        " ".join(f"{term_label(term)}:{weight:.3f}" for term, weight in row if weight > 0) for row in explained
    ]
    return out


def estimate_from_scores(raw: Sequence[float], profile: ModelProfile, *, resamples: int = 50) -> Estimate:
    """The rumor share of a file's judged rows, by the model's estimator (BBE or EM)."""
    return estimate_prior(np.asarray(raw, dtype=np.float64), profile.train_prior, method=profile.method,
                          tail=profile.tail, resamples=resamples)


def threshold_for(raw: Sequence[float], decider: Decider) -> float:
    """The precision-target threshold on the adjusted probabilities of these (judged) rows."""
    q = adjust(np.asarray(raw, dtype=np.float64), decider.train_prior, decider.prior(CHANNEL))
    return precision_threshold(q, decider.target_precision)


def decide_frame(scored: pd.DataFrame, decider: Decider) -> pd.DataFrame:
    """``scored`` (from `score_frame`) with ``rumor_probability`` (adjusted; empty where the model
    abstains) and ``label`` (1, 0 or 无法判断), columns in the order staff read them."""
    raw = scored[RAW_COLUMN].astype(float).to_numpy()
    abstain = (scored[REASON_COLUMN].astype(str) != "").to_numpy()
    q, labels = decider.decide(raw, [CHANNEL] * len(raw), abstain)
    out = scored.copy()
    out["rumor_probability"] = [None if a else round(float(p), 4) for p, a in zip(q, abstain, strict=True)]
    out["label"] = [ABSTAIN_ZH if a else int(lab) for lab, a in zip(labels, abstain, strict=True)]
    first = [c for c in scored.columns if c not in (RAW_COLUMN, REASON_COLUMN, "top_terms")]
    return out[[*first, "rumor_probability", "label", RAW_COLUMN, REASON_COLUMN, "top_terms"]]


def classify_frame(
    frame: pd.DataFrame, model: Classifier, text_column: str = "text", k: int = 5, *,
    decider: Decider | None = None, abstainer: Abstainer | None = None, **_: Any,
) -> pd.DataFrame:
    """`score_frame` then `decide_frame` in one step (default decider: the model's training
    rumor share kept, i.e. no adjustment, threshold at the target precision)."""
    scored = score_frame(frame, model, text_column, k, abstainer)
    if decider is None:
        prior = float(getattr(model, "card", {}).get("train_prior", 0.5) or 0.5)
        decider = Decider(prior, {CHANNEL: prior})
    return decide_frame(scored, decider)
