"""Scoring a table of texts outside the database (`yuqing classify`)."""

from __future__ import annotations

import pandas as pd

from nlp.cues import term_label
from nlp.normalize import normalize
from nlp.pipeline import LABEL_THRESHOLD, Classifier, _positive_column

__all__ = ["classify_frame"]


def classify_frame(
    frame: pd.DataFrame, model: Classifier, text_column: str = "text", k: int = 5
) -> pd.DataFrame:
    """A copy of ``frame`` with ``rumor_probability``, ``label`` (1 = likely rumor) and ``top_terms``.

    ``top_terms`` lists the terms that pushed the score up, as ``term:weight`` joined by spaces;
    cues are named as staff read them (`nlp.cues.term_label`: "消息来源不明（…）", not "cue:hearsay").
    """
    if text_column not in frame.columns:
        raise KeyError(text_column)
    texts = [normalize(t) if isinstance(t, str) else "" for t in frame[text_column].tolist()]
    out = frame.copy()
    if not texts:
        out["rumor_probability"] = pd.Series(dtype=float)
        out["label"] = pd.Series(dtype=int)
        out["top_terms"] = pd.Series(dtype=str)
        return out
    proba = _positive_column(model.predict_proba(texts))
    explained = model.explain(texts, k=k)
    out["rumor_probability"] = proba.round(4)
    out["label"] = (proba >= LABEL_THRESHOLD).astype(int)
    out["top_terms"] = [
        " ".join(f"{term_label(term)}:{weight:.3f}" for term, weight in row if weight > 0) for row in explained
    ]
    return out
