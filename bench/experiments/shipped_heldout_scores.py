"""Held-out scores of the shipped recipe, for the prevalence estimators (run once, ~5 minutes).

    python -m bench.experiments.shipped_heldout_scores

A 3-fold cross-validation of the shipped training recipe (all three datasets, deduplicated,
shipped parameters) gives every training text a score from a model that never saw it. Their
quantiles per class (numbers only) go into models/rumor/<version>/prevalence.json: the positive
class's tail is what the best-bin estimator (nlp.prevalence.bbe_prior) anchors on, and the rates
at P >= 0.5 are black-box shift estimation's confusion matrix. The shipped model itself is not
retrained.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from nlp import data, training  # noqa: E402
from nlp.classifier import train_rumor_model  # noqa: E402


def main(folds: int = 3) -> None:
    s = data.all_three_dedup()
    texts, y = np.asarray(s.texts, dtype=object), np.asarray(s.labels)
    oof = np.zeros(len(y))
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=training.SEED).split(texts, y)):
        m = train_rumor_model(list(texts[tr]), y[tr], seed=training.SEED, params=training.SHIPPED_PARAMS)
        oof[te] = m.predict_proba(list(texts[te]))
        print(f"fold {k} done", flush=True)
    target = ROOT / "models" / "rumor" / training.DEFAULT_VERSION / "prevalence.json"
    profile = json.loads(target.read_text(encoding="utf-8"))
    levels = np.linspace(0, 1, 201)
    profile["train_prior"] = round(float(y.mean()), 6)
    profile["heldout_rates"] = {
        "threshold": 0.5, "tpr": round(float((oof[y == 1] >= 0.5).mean()), 6),
        "fpr": round(float((oof[y == 0] >= 0.5).mean()), 6),
        "source": f"{folds}-fold CV of the shipped recipe on its training data (bench/experiments/shipped_heldout_scores.py)"}
    profile["heldout_quantiles"] = {
        "levels": 201, "positive": [round(float(v), 6) for v in np.quantile(oof[y == 1], levels)],
        "negative": [round(float(v), 6) for v in np.quantile(oof[y == 0], levels)],
        "source": f"{folds}-fold CV of the shipped recipe on its training data"}
    target.write_text(json.dumps(profile, ensure_ascii=False, indent=2), encoding="utf-8")
    print(profile["heldout_rates"])


if __name__ == "__main__":
    main()
