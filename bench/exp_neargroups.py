"""Experiment (round 5): calibration folds that keep near-copies together.

`nlp.classifier` keeps exact copies of a text in one calibration fold. This asks whether near
copies (char n-gram TF-IDF cosine >= t, joined transitively) should be kept together too. Selection
protocols only (val, proxy), seeds 0-2; raw output: bench/results/classifier_near_groups.jsonl.

    PYTHONPATH=. python bench/exp_neargroups.py val,proxy
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.exp_quality import counts, dup_groups, frame, idf, protocols, run_cal, weight


def near_groups(mats, rows, t, chunk=1500):
    """Union-find over pairs of training rows with char n-gram cosine >= t."""
    X = weight(mats[0][rows], idf(mats[0][rows]))
    parent = np.arange(len(rows))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    XT = X.T.tocsc()
    for s in range(0, len(rows), chunk):
        S = (X[s:s+chunk] @ XT).tocoo()
        m = (S.data >= t) & (S.row + s < S.col)
        for a, b in zip(S.row[m] + s, S.col[m], strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb
    return np.array([find(i) for i in range(len(rows))])


def main(names):
    df = frame()
    y = df.label.to_numpy()
    mats = counts(df)
    P = protocols(df)
    for k in names:
        tr, te = P[k]
        for seed in (0, 1, 2):
            r0 = run_cal(mats, y, tr, te, {}, seed, groups=dup_groups(df, tr))
            out = {"prot": k, "seed": seed, "copies": r0}
            for t in (0.8, 0.6):
                g = near_groups(mats, tr, t)
                out[f"near{t}"] = run_cal(mats, y, tr, te, {}, seed, groups=g)
                out[f"n_groups{t}"] = len(np.unique(g))
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1].split(","))
