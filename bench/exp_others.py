"""Experiment: weibo21 protocols with the other two datasets' labels added (round 5).

The shipped model trains on all three datasets; the published weibo21 protocol trains on
weibo21 only. This harness measures what the other two add on weibo21: every weibo_ced /
weibo_ma2016 row whose text occurs in the protocol's test side is removed first, and with
``--strict`` also every row whose char n-gram cosine to a test text is >= 0.5 (near copies).
Same features, ensemble and out-of-fold Platt (copies of a text in one fold) as rounds 2-4;
``w`` is the weight of an added row.

    PYTHONPATH=. python bench/exp_others.py --protocols val,test,test_trval --seeds 0,1,2 \
        --weights 0,0.3,0.6,1 [--strict] [--calibrate-on-weibo21]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from bench.exp_quality import (  # noqa: E402
    _drop_seen,
    calibrated_report,
    counts,
    design,
    dup_groups,
    frame,
    idf,
    paired_se,
    protocols,
    weight,
)
from nlp.classifier import LinearEnsembleClassifier  # noqa: E402


def fit(X, y, w, seed):
    return LinearEnsembleClassifier(calibration_cv=0, random_state=seed).fit(X, y, sample_weight=w)


def added_rows(df, mats, tr, te, strict):
    """weibo_ced and weibo_ma2016 rows minus copies (and, strict, near copies) of test texts."""
    others = _drop_seen(df, np.flatnonzero(df["dataset"].to_numpy() != "weibo21"), te)
    if strict:
        ic = idf(mats[0][np.concatenate([tr, others, te])])
        near = (weight(mats[0][others], ic) @ weight(mats[0][te], ic).T).max(axis=1).toarray().ravel()
        others = others[near < 0.5]
    return others


def run(df, mats, tr, extra, te, w_extra, seed, calibrate_on_weibo21):
    y = df["label"].to_numpy()
    rows = np.concatenate([tr, extra]) if w_extra else tr
    w = np.concatenate([np.ones(len(tr)), np.full(len(extra), w_extra)]) if w_extra else np.ones(len(tr))
    Xtr, Xte = design(mats, rows, te, {})
    ytr = y[rows]
    oof = np.zeros(len(rows))
    for a, b in GroupKFold(3, shuffle=True, random_state=seed).split(np.zeros(len(rows)), ytr,
                                                                     dup_groups(df, rows)):
        oof[b] = fit(Xtr[a], ytr[a], w[a], seed).decision_function(Xtr[b])
    own = np.arange(len(rows)) < len(tr) if calibrate_on_weibo21 else np.ones(len(rows), bool)
    cal = LogisticRegression(C=1e4).fit(oof[own].reshape(-1, 1), ytr[own])
    return calibrated_report(y[te], fit(Xtr, ytr, w, seed).decision_function(Xte), cal)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocols", default="val")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--weights", default="0,1")
    ap.add_argument("--strict", action="store_true", help="also drop near copies (cosine >= 0.5) of test texts")
    ap.add_argument("--calibrate-on-weibo21", action="store_true", help="Platt on the weibo21 rows' scores only")
    a = ap.parse_args()
    df = frame()
    y = df["label"].to_numpy()
    mats = counts(df)
    prots = protocols(df)
    for k in a.protocols.split(","):
        tr, te = prots[k]
        extra = added_rows(df, mats, tr, te, a.strict)
        for seed in map(int, a.seeds.split(",")):
            base = None
            for w_extra in map(float, a.weights.split(",")):
                r, pred = run(df, mats, tr, extra, te, w_extra, seed, a.calibrate_on_weibo21)
                if base is None:
                    base = pred
                else:
                    r["d"] = round(r["f1"] - float(f1_score(y[te], base, average="macro")), 4)
                    r["se"] = round(paired_se(y[te], base, pred), 4)
                print(json.dumps({"protocol": k, "seed": seed, "w": w_extra, "n_test": len(te),
                                  "n_added": len(extra), "strict": a.strict,
                                  "cal_w21": a.calibrate_on_weibo21, **r}), flush=True)


if __name__ == "__main__":
    main()
