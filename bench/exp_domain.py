"""Round 4 of the classifier quality experiments (issue 9): weibo21's topic domain as input.

MDFEND and M3FEND, the published models our weibo21 target compares with, read the post's
domain (weibo21's nine categories) next to its text. The linear counterpart is feature
augmentation ("frustratingly easy domain adaptation", Daumé 2007): every row carries the
shared features plus a copy in its own domain's block, so the model learns one general
weight per column and a per-domain correction. Rows without a known domain (weibo_ced,
weibo_ma2016, and every post the product scores) get the shared block only.

Same selection protocols, shipped features and calibration as `exp_quality.py --round2`
(val: weibo21 train -> val, where the domain is known on both sides; proxy: the shared
part alone on an unseen corpus). Run:

    /work/venv/bin/python bench/exp_domain.py [--test] [--seeds 0,1,2] [--out F.jsonl] [VARIANT ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from bench.exp_quality import (  # noqa: E402
    calibrated_report,
    counts,
    design,
    dup_groups,
    fit_ens,
    frame,
    protocols,
    record,
    seeds_and_out,
    versus_base,
)


def domains(df, kind: str = "category") -> np.ndarray:
    """Domain id per row: weibo21's category (``"category"``: -1 for the other datasets), the
    dataset (``"dataset"``), or the category for weibo21 rows and the dataset for the others
    (``"both"``). The scoring side of a cross-dataset protocol is set to -1 in `main`: an
    unseen corpus has no domain block."""
    ds = df["dataset"]
    if kind == "dataset":
        lab = ds
    elif kind == "both":
        lab = df["category"].where(ds == "weibo21", ds)
    else:
        lab = df["category"].where(ds == "weibo21")
    codes, _ = lab.factorize(sort=True)  # NaN -> -1
    return codes.astype(np.int64)


def augment(X: sp.csr_matrix, dom: np.ndarray, lam: float, n_dom: int) -> sp.csr_matrix:
    """``[X, lam * X * 1{dom == 0}, ..., lam * X * 1{dom == n_dom - 1}]`` (EasyAdapt)."""
    blocks = [X]
    for d in range(n_dom):
        keep = sp.diags((dom == d).astype(np.float64) * lam)
        blocks.append(sp.csr_matrix(keep @ X))
    return sp.hstack(blocks, format="csr")


def soft_augment(X: sp.csr_matrix, P: np.ndarray, lam: float) -> sp.csr_matrix:
    """EasyAdapt with domain weights: ``[X, lam * P[:, 0] * X, ..., lam * P[:, D-1] * X]``
    (a row of ``P`` is one-hot for a known domain, predicted probabilities otherwise)."""
    blocks = [X] + [sp.csr_matrix(sp.diags(P[:, d] * lam) @ X) for d in range(P.shape[1])]
    return sp.hstack(blocks, format="csr")


def domain_weights(Xtr, Xte, dtr, dte, cfg, n_dom):
    """Per-row domain weights for the train and scoring sides: one-hot where the domain is
    known (and ``cfg["test_gold"]`` for the scoring side), else the prediction of a domain
    classifier fitted on the known-domain training rows (``pred``: "hard" or "soft")."""
    known = dtr >= 0
    dc = LogisticRegression(C=cfg.get("dom_C", 10.0), max_iter=1000).fit(Xtr[known], dtr[known])

    def weights(X, d, use_gold):
        P = np.zeros((X.shape[0], n_dom))
        pred = dc.predict_proba(X)
        if cfg["pred"] == "hard":
            pred = np.eye(n_dom)[pred.argmax(axis=1)]
        P[:] = pred
        if use_gold:
            g = d >= 0
            P[g] = np.eye(n_dom)[d[g]]
        return P

    return weights(Xtr, dtr, True), weights(Xte, dte, cfg.get("test_gold", False))


def domain_bias(X: sp.csr_matrix, dom: np.ndarray, n_dom: int, w: float) -> sp.csr_matrix:
    """``X`` plus one indicator column per domain (a per-domain intercept)."""
    ind = sp.csr_matrix((np.full((dom >= 0).sum(), w), (np.flatnonzero(dom >= 0), dom[dom >= 0])),
                        shape=(X.shape[0], n_dom))
    return sp.hstack([X, ind], format="csr")


VARIANTS: dict[str, dict] = {
    "base": {},
    "domain bias": {"bias": 1.0},
    "easyadapt lam .5": {"lam": 0.5},
    "easyadapt lam 1": {"lam": 1.0},
    "easyadapt lam .3": {"lam": 0.3},
    "pred hard lam .5": {"lam": 0.5, "pred": "hard"},
    "pred soft lam .5": {"lam": 0.5, "pred": "soft"},
    "pred soft lam .5, gold on val": {"lam": 0.5, "pred": "soft", "test_gold": True},
    "pred soft lam 1": {"lam": 1.0, "pred": "soft"},
    "dataset easyadapt lam 1": {"lam": 1.0, "kind": "dataset"},
    "cat+dataset easyadapt lam 1": {"lam": 1.0, "kind": "both"},
    "cat+dataset easyadapt lam .5": {"lam": 0.5, "kind": "both"},
}


def features(mats, tr, te, dom, cfg, n_dom):
    Xtr, Xte = design(mats, tr, te, {})
    if cfg.get("pred"):
        Ptr, Pte = domain_weights(Xtr, Xte, dom[tr], dom[te], cfg, n_dom)
        return soft_augment(Xtr, Ptr, cfg["lam"]), soft_augment(Xte, Pte, cfg["lam"])
    if cfg.get("lam"):
        Xtr, Xte = augment(Xtr, dom[tr], cfg["lam"], n_dom), augment(Xte, dom[te], cfg["lam"], n_dom)
    if cfg.get("bias"):
        Xtr, Xte = domain_bias(Xtr, dom[tr], n_dom, cfg["bias"]), domain_bias(Xte, dom[te], n_dom, cfg["bias"])
    return Xtr, Xte


def run(mats, y, tr, te, dom, cfg, seed, groups, n_dom):
    """Shipped ensemble, 3-fold out-of-fold Platt with copies of a text in one fold."""
    Xtr, Xte = features(mats, tr, te, dom, cfg, n_dom)
    ytr = y[tr]
    oof = np.zeros(len(tr))
    for a, b in GroupKFold(3, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr, groups):
        oof[b] = fit_ens(Xtr[a], ytr[a], {}, seed).decision_function(Xtr[b])
    cal = LogisticRegression(C=1e4).fit(oof.reshape(-1, 1), ytr)
    clf = fit_ens(Xtr, ytr, {}, seed)
    return calibrated_report(y[te], clf.decision_function(Xte), cal)


def main(names: list[str], seeds: tuple[int, ...], out: Path | None,
         prots_run: tuple[str, ...] = ("val", "proxy")) -> None:
    df = frame()
    y = df["label"].to_numpy()
    prots = protocols(df)
    mats = counts(df)
    ds = df["dataset"].to_numpy()
    groups = {k: dup_groups(df, prots[k][0]) for k in prots_run}
    base: dict[tuple[str, int], np.ndarray] = {}
    for name in names or list(VARIANTS):
        cfg = VARIANTS[name]
        dom_all = domains(df, cfg.get("kind", "category"))
        n_dom = int(dom_all.max()) + 1
        for seed in seeds:
            res = {}
            for k in prots_run:
                dom = dom_all.copy()
                if k == "proxy":
                    dom[ds == "weibo_ma2016"] = -1  # the unseen corpus
                r, pred = run(mats, y, *prots[k], dom, cfg, seed, groups[k], n_dom)
                res[k] = versus_base(r, pred, y[prots[k][1]], base, (k, seed), is_base=name == "base")
            record(out, {"name": name, "seed": seed, **res})


if __name__ == "__main__":
    # --test: score on the weibo21 test protocols instead (train -> test and train + val ->
    # test, deduplicated); only for a candidate chosen on val and proxy before.
    test = "--test" in sys.argv
    argv = [a for a in sys.argv[1:] if a != "--test"]
    main(*seeds_and_out(argv), prots_run=("test", "test_trval") if test else ("val", "proxy"))
