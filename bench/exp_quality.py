"""Experiment harness for the rumor classifier's quality targets (issue 9).

Featurises every row of the three datasets once per n-gram configuration (hashed counts
cached under var/cache), then re-weights and fits per protocol, so a candidate costs a few
linear fits. Selection protocols (never the test sets):

* ``val``: weibo21 official train -> val;
* ``proxy``: train weibo21 + weibo_ced minus texts shared with weibo_ma2016, test weibo_ma2016.

Reported only for the chosen candidates: weibo21 train(+val) -> test (dedup) and the
cross-dataset weibo_ced protocol (with the real training code, `nlp.training`).

    /work/venv/bin/python bench/exp_quality.py [VARIANT ...]   # default: every variant

prints val and proxy scores of the calibrated variants (results of a full run:
bench/results/classifier_quality_experiments.{json,md}).
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score, precision_recall_fscore_support  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from nlp import data  # noqa: E402
from nlp.classifier import HashedTextFeatures, LinearEnsembleClassifier  # noqa: E402
from nlp.cues import cue_matrix  # noqa: E402

CACHE = ROOT / "var" / "cache" / "exp_quality"


def frame():
    df = data.load_combined()
    return df


def counts(df, char_range=(1, 3), word_range=(1, 2), nf=2**20):
    """Hashed char and word count matrices for every row of ``df`` (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(repr((len(df), char_range, word_range, nf)).encode()).hexdigest()[:12]
    f = CACHE / f"counts_{key}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    feats = HashedTextFeatures(char_ngram_range=char_range, word_ngram_range=word_range, n_features=nf)
    xc, xw = feats._counts(df["norm"].tolist())
    cues = cue_matrix(df["norm"].tolist(), normalized=True)
    out = (xc.tocsr(), xw.tocsr(), cues)
    f.write_bytes(pickle.dumps(out, protocol=5))
    return out


def idf(x, smooth=True):
    df_ = np.bincount(x.indices, minlength=x.shape[1])
    n = x.shape[0]
    return (np.log((1.0 + n) / (1.0 + df_)) + 1.0).astype(np.float32)


def weight(x, idf_vec, *, tf="log", use_idf=True, w=1.0):
    x = x.astype(np.float32, copy=True)
    if tf == "log":
        np.log(x.data, out=x.data)
        x.data += 1.0
    elif tf == "binary":
        x.data[:] = 1.0
    if use_idf:
        x.data *= idf_vec[x.indices]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    x = sp.diags((1.0 / norms).astype(np.float32)) @ x
    x.data *= w
    return x.tocsr()


def design(mats, tr, te, cfg):
    """Train / test feature matrices for row indices ``tr`` / ``te``."""
    xc, xw, cues = mats
    out = []
    icf = idf(xc[tr])
    iwf = idf(xw[tr])
    for rows in (tr, te):
        blocks = []
        if cfg.get("char_w", 1.0):
            blocks.append(weight(xc[rows], icf, tf=cfg.get("tf", "log"), use_idf=cfg.get("idf", True),
                                 w=cfg.get("char_w", 1.0)))
        if cfg.get("word_w", 1.0):
            blocks.append(weight(xw[rows], iwf, tf=cfg.get("tf", "log"), use_idf=cfg.get("idf", True),
                                 w=cfg.get("word_w", 1.0)))
        cw = cfg.get("cue_w", 0.05)
        if cw:
            c = cues[rows]
            if cfg.get("cue_scale"):
                c = c / np.maximum(cues[tr].max(axis=0), 1e-6)
            blocks.append(sp.csr_matrix(c * np.float32(cw)))
        out.append(sp.hstack(blocks, format="csr", dtype=np.float64))
    return out


def fit_clf(X, y, cfg, seed=0):
    w = None
    if cfg.get("balanced"):
        w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    clf = LinearEnsembleClassifier(
        members=cfg.get("members", ("svc", "nbsvc")), C_svc=cfg.get("C_svc", 2.0), C_nb=cfg.get("C_nb", 1.0),
        C_lr=cfg.get("C_lr", 30.0), nb_alpha=cfg.get("nb_alpha", 0.005),
        calibration_cv=cfg.get("cv", 0), random_state=seed)
    return clf.fit(X, y, sample_weight=w)


def scores(y, p, thr=0.5):
    pred = (p >= thr).astype(int)
    prec, rec, _, _ = precision_recall_fscore_support(y, pred, labels=[1], zero_division=0)
    return {"f1": round(float(f1_score(y, pred, average="macro")), 4), "P": round(float(prec[0]), 3),
            "R": round(float(rec[0]), 3)}


def best_threshold_f1(y, s):
    """Oracle: best macro-F1 over thresholds on the decision score (diagnostic only)."""
    qs = np.quantile(s, np.linspace(0.02, 0.98, 193))
    return round(max(f1_score(y, (s >= q).astype(int), average="macro") for q in qs), 4)


def run(mats, y, tr, te, cfg, seed=0):
    Xtr, Xte = design(mats, tr, te, cfg)
    clf = fit_clf(Xtr, y[tr], cfg, seed)
    p = clf.predict_proba(Xte)[:, 1]
    r = scores(y[te], p)
    r["oracle"] = best_threshold_f1(y[te], clf.decision_function(Xte))
    return r


def protocols(df):
    """Row-index pairs of every protocol."""
    ds, split = df["dataset"].to_numpy(), df["split"].fillna("").to_numpy()
    w21 = ds == "weibo21"
    tr = np.flatnonzero(w21 & (split == "train"))
    va = np.flatnonzero(w21 & (split == "val"))
    te = np.flatnonzero(w21 & (split == "test"))
    te_dedup = _drop_seen(df, te, tr)

    def cross(test_ds):
        test = np.flatnonzero(ds == test_ds)
        train = _drop_seen(df, np.flatnonzero(ds != test_ds), test)
        return train, test

    return {"val": (tr, va), "proxy": cross("weibo_ma2016"), "test": (tr, te_dedup),
            "test_trval": (np.concatenate([tr, va]), te_dedup), "ced": cross("weibo_ced")}


def _drop_seen(df, rows, seen):
    keys = set(df["text_key"].to_numpy()[seen])
    norms = set(df["norm"].to_numpy()[seen])
    tk, nm = df["text_key"].to_numpy(), df["norm"].to_numpy()
    return np.array([i for i in rows if tk[i] not in keys and nm[i] not in norms], dtype=np.int64)


def oof_calibrate(Xtr, ytr, groups, cfg, seed=0):
    """Platt parameters from out-of-fold scores; folds = ``groups`` (e.g. dataset) when given."""
    oof = np.zeros(len(ytr))
    if groups is None:
        splits = StratifiedKFold(3, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr)
    else:
        splits = [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in np.unique(groups)]
    for a, b in splits:
        c = fit_clf(Xtr[a], ytr[a], cfg, seed)
        oof[b] = c.decision_function(Xtr[b])
    cal = LogisticRegression(C=1e4).fit(oof.reshape(-1, 1), ytr)
    return float(cal.coef_[0, 0]), float(cal.intercept_[0])


def dedup_rows(df, rows):
    """``rows`` with one row per distinct text (text_key, then normalised text); texts whose
    copies disagree on the label are dropped (as `nlp.data.all_three_dedup` does)."""
    s = df.iloc[rows].assign(_row=rows)
    ck = s.groupby("text_key")["label"].nunique()
    cn = s.groupby("norm")["label"].nunique()
    s = s[~s["text_key"].isin(ck[ck > 1].index) & ~s["norm"].isin(cn[cn > 1].index)]
    s = s.drop_duplicates("text_key").drop_duplicates("norm")
    return np.sort(s["_row"].to_numpy())


def run_cal(mats, y, tr, te, cfg, seed=0, groups=None, folds=3):
    """Like `run` with out-of-fold Platt; ``groups`` (per train row) keep copies in one fold."""
    from sklearn.model_selection import GroupKFold
    Xtr, Xte = design(mats, tr, te, cfg)
    ytr = y[tr]
    oof = np.zeros(len(tr))
    if groups is None:
        sp_ = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr)
    else:
        sp_ = GroupKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr, groups)
    for a, b in sp_:
        oof[b] = fit_clf(Xtr[a], ytr[a], cfg, seed).decision_function(Xtr[b])
    cw = np.where(ytr == 1, 0.5 / ytr.mean(), 0.5 / (1 - ytr.mean())) if cfg.get("balanced") else None
    cal = LogisticRegression(C=1e4).fit(oof.reshape(-1, 1), ytr, sample_weight=cw)
    clf = fit_clf(Xtr, ytr, cfg, seed)
    s = clf.decision_function(Xte)
    p = cal.predict_proba(s.reshape(-1, 1))[:, 1]
    r = scores(y[te], p)
    r["thr_margin"] = round(-float(cal.intercept_[0]) / float(cal.coef_[0, 0]), 3)
    r["oracle"] = best_threshold_f1(y[te], s)
    r["m0"] = scores(y[te], (s > 0).astype(float))["f1"]
    return r


def dup_groups(df, rows):
    """Group id per row: rows sharing a text_key or a normalised text share a group."""
    parent = list(range(len(rows)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for col in ("text_key", "norm"):
        first = {}
        for i, v in enumerate(df[col].to_numpy()[rows]):
            j = first.setdefault(v, i)
            if j != i:
                parent[find(i)] = find(j)
    return np.array([find(i) for i in range(len(rows))])


def counts_stripped(df, chars, nf=2**20, char_range=(1, 3), word_range=(1, 2)):
    """`counts` with the characters in ``chars`` removed before char and word n-grams."""
    import re

    import nlp.classifier as C

    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(repr((len(df), chars, char_range, word_range, nf)).encode()).hexdigest()[:12]
    f = CACHE / f"counts_strip_{key}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    rx = re.compile("[" + re.escape(chars) + "]") if chars != "PUNCT" else re.compile(
        r"[^\w\s<>\u4e00-\u9fff]")
    norms = [rx.sub(" ", t) for t in df["norm"]]
    feats = C.HashedTextFeatures(char_ngram_range=char_range, word_ngram_range=word_range, n_features=nf)
    xc, xw = feats._counts(norms)
    cues = cue_matrix(df["norm"].tolist(), normalized=True)
    out = (xc.tocsr(), xw.tocsr(), cues)
    f.write_bytes(pickle.dumps(out, protocol=5))
    return out


# Calibrated variants: (characters stripped before n-grams, hashed width, harness config).
VARIANTS: dict[str, tuple[str | None, int, dict]] = {
    "base": (None, 2**20, {}),
    "strip 【】#": ("【】#", 2**20, {}),
    "strip PUNCT": ("PUNCT", 2**20, {}),
    "cue_w 0": (None, 2**20, {"cue_w": 0.0}),
    "nb_alpha 0.05": (None, 2**20, {"nb_alpha": 0.05}),
    "nf 2^18": (None, 2**18, {}),
    "strip + cue_w 0": ("【】#", 2**20, {"cue_w": 0.0}),
    "strip + cue_w 0.02": ("【】#", 2**20, {"cue_w": 0.02}),
}


def main(names: list[str]) -> None:
    import json

    df = frame()
    y = df["label"].to_numpy()
    prots = protocols(df)
    for name in names or list(VARIANTS):
        strip, nf, cfg = VARIANTS[name]
        mats = counts(df, nf=nf) if strip is None else counts_stripped(df, strip, nf=nf)
        res = {k: run_cal(mats, y, *prots[k], cfg, groups=dup_groups(df, prots[k][0])) for k in ("val", "proxy")}
        print(name, json.dumps(res, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
